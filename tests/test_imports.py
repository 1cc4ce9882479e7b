"""Architecture guards: the core never imports Streamlit (except the UI adapter), pages stay thin, and heavy
backends load lazily so the app starts (and reports clearly) even when one is missing."""

from __future__ import annotations

import ast
import subprocess
import sys

from tests.conftest import REPO

HEAVY = ("tensorrt", "tensorrt_rtx", "polygraphy", "onnxruntime", "onnx_graphsurgeon", "torch", "modelopt")


def _top_level_imports(path):
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.Import):
            yield from (a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module.split(".")[0]


def test_the_core_does_not_import_streamlit_except_the_ui_adapter():
    offenders = []
    for path in (REPO / "workbench").rglob("*.py"):
        if path.name == "ui.py":
            continue
        text = path.read_text()
        if "import streamlit" in text or "from streamlit" in text:
            offenders.append(str(path.relative_to(REPO)))
    assert offenders == []


def test_heavy_backends_are_imported_lazily_in_the_core_and_pages():
    offenders = []
    for path in [*(REPO / "workbench").rglob("*.py"), *(REPO / "pages").glob("*.py"), REPO / "app.py"]:
        heavy = sorted(set(_top_level_imports(path)) & set(HEAVY))
        if heavy:
            offenders.append(f"{path.relative_to(REPO)}: {heavy}")
    assert offenders == []


def test_importing_every_core_module_loads_no_backend():
    modules = sorted(p.relative_to(REPO).with_suffix("").as_posix().replace("/", ".")
                     for p in (REPO / "workbench").rglob("*.py") if p.name not in ("ui.py", "__main__.py"))
    code = ("import sys, importlib\n"
            f"for m in {modules!r}:\n"
            "    importlib.import_module(m.removesuffix('.__init__'))\n"
            f"print(sorted(k for k in sys.modules if k.split('.')[0] in {HEAVY!r}))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_pages_are_thin():
    """Pages compose widgets and call the core: no file IO, subprocesses or long bodies of their own."""
    for path in (REPO / "pages").glob("*.py"):
        text = path.read_text()
        assert len(text.splitlines()) <= 220, f"{path.name} is long: move logic into workbench/"
        for banned in ("subprocess", "open(", "os.system", "pickle", "onnx.load"):
            assert banned not in text, f"{path.name} uses {banned}"
