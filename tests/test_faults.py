"""Faults and security: a full disk while writing a plan, the same upload from two processes at once, ids that
point into another workspace, what static serving exposes, no shell, and upload limits enforced by the server.

A killed worker, a server restart mid-build, cancelling and two sessions building at once are in test_jobs.py.
"""

from __future__ import annotations

import ast
import contextlib
import http.client
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import onnx
import pytest

from tests import onnx_models
from tests.conftest import REPO
from workbench.errors import JobError, ModelError, WorkbenchError
from workbench.samples import get_sample
from workbench.spec import BuildSpec, profiles_from_args

CNN_SPEC = BuildSpec(
    profiles=profiles_from_args(["input:1x3x32x32"], ["input:4x3x32x32"], ["input:16x3x32x32"])
)


def _python(code: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# ---------------------------------------------------------------------------------------------- disk full

_BUILD_WITH_A_SMALL_DISK = """
    import json, resource, signal, sys
    from workbench.service import Workbench
    from workbench.spec import BuildSpec

    # A "disk" that holds 200 kB per file: writes past it fail with EFBIG (the worker inherits both settings).
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    wb = Workbench.open(sys.argv[1])
    job = wb.jobs.wait(wb.submit_build(wb.model(sys.argv[2]), BuildSpec.from_json(sys.argv[3])), timeout=120)
    print(json.dumps({"id": job.id, "status": job.status, "error": job.error, "hint": job.hint}))
"""


def test_a_full_disk_while_writing_the_plan_fails_cleanly_and_offers_no_half_plan(wb):
    ref = wb.import_path(get_sample("cnn_residual").path)  # its plan is ~350 kB, over the 200 kB "disk"
    proc = _python(_BUILD_WITH_A_SMALL_DISK, str(wb.ws.root), ref.digest, CNN_SPEC.to_json())
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err[-3000:]
    state = json.loads(out.strip().splitlines()[-1])
    job = wb.jobs.get(state["id"])
    assert job.status == "failed", (job.status, job.error)
    assert job.error.startswith("Could not write the plan (File too large); nothing was saved.")
    assert "Free disk space" in job.hint
    job_dir = wb.jobs.job_dir(job.id)
    assert not (job_dir / "engine.plan").exists()
    assert not list(job_dir.glob("*.part")) and not (job_dir / "bundle.zip").exists()
    with pytest.raises(JobError, match="not a finished build"):
        wb.plan_path(job.id)
    with pytest.raises(JobError, match="has no 'engine.plan'"):
        wb.jobs.artifact(job.id, "engine.plan")
    assert "Could not write the plan" in wb.jobs.read_log(job.id)[0]
    # With space again, the same build goes through and its plan is offered.
    again = wb.jobs.wait(wb.submit_build(ref, CNN_SPEC), timeout=120)
    assert again.status == "succeeded", again.error
    assert wb.plan_path(again.id).stat().st_size == again.result["plan_bytes"] > 200_000


# ---------------------------------------------------------------------------------------------- concurrent upload

_UPLOAD_WHEN_TOLD = """
    import sys, time
    from pathlib import Path
    from workbench.service import Workbench

    root, model, go, name = sys.argv[1:]
    wb = Workbench.open(root)
    data = Path(model).read_bytes()
    Path(go + "." + name).touch()  # ready
    while not Path(go).exists():
        time.sleep(0.001)
    print(wb.import_upload(data, name).digest)
"""


def test_the_same_model_uploaded_at_once_from_two_processes_is_stored_once(wb, tmp_path):
    go = tmp_path / "go"
    model = get_sample("transformer_block").path
    procs = [
        _python(_UPLOAD_WHEN_TOLD, str(wb.ws.root), str(model), str(go), name)
        for name in ("first.onnx", "second.onnx")
    ]
    deadline = time.monotonic() + 60
    while not all(Path(f"{go}.{n}").exists() for n in ("first.onnx", "second.onnx")):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), [
            p.communicate() for p in procs
        ]
        time.sleep(0.01)
    go.touch()
    results = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in results]
    digests = {out.strip() for out, _ in results}
    assert len(digests) == 1
    (digest,) = digests
    assert [p.name for p in wb.ws.models_dir.iterdir()] == [digest]
    assert not any(wb.ws.tmp_dir.iterdir())
    ref = wb.model(digest)
    assert json.loads((ref.path.parent / "meta.json").read_text())["digest"] == digest
    assert ref.path.read_bytes() == model.read_bytes()
    assert wb.summary(ref).node_count > 0


# ---------------------------------------------------------------------------------------------- CLI and disk

_WITH_A_SMALL_DISK = """
    import resource, signal, sys
    # A "disk" that holds 1 MiB per file: writes past it fail with EFBIG, the errno a full disk's ENOSPC shares
    # its code path with.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    if sys.argv[1] == "cli":
        from workbench.cli import main
        sys.exit(main(sys.argv[2:]))
    from pathlib import Path
    from workbench.archives import extract_archive
    from workbench.errors import ArchiveError
    try:
        extract_archive(Path(sys.argv[2]), Path(sys.argv[3]))
    except ArchiveError as err:
        print(err)
"""


def _weighty(path: Path, mib: int = 4) -> Path:
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    side = int(((mib << 20) / 4) ** 0.5)
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((side, side), dtype=np.float32), "w")
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="fc")], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, side])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, side])], [w])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_a_full_disk_while_the_cli_imports_a_model_is_exit_2_saying_so(tmp_path):
    model = _weighty(tmp_path / "weighty.onnx")
    home = tmp_path / "ws"
    proc = _python(_WITH_A_SMALL_DISK, "cli", "--workspace", str(home), "build", str(model), "-o",
                   str(tmp_path / "x.plan"))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err[-2000:]
    assert "Not enough disk space to store 'weighty.onnx'" in err and "Traceback" not in err, err
    assert not any((home / "models").iterdir()) and not any((home / "tmp").iterdir())


def test_a_full_disk_while_unpacking_an_archive_says_so_not_damaged(tmp_path):
    import io
    import tarfile

    src = tmp_path / "bundle.tar"
    with tarfile.open(src, "w") as tf:
        data = os.urandom(3 << 20)  # incompressible: only the small disk stops it
        info = tarfile.TarInfo("weights.bin")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    src2 = tmp_path / "in" / "bundle.tar"  # the archive itself is bigger than the "disk": read, never written
    src2.parent.mkdir()
    src.rename(src2)
    proc = _python(_WITH_A_SMALL_DISK, "archive", str(src2), str(tmp_path / "out"))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert "bundle.tar: the disk is full" in out and "damaged" not in out, out
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("where", ["output-under-a-file", "report-is-a-folder"])
def test_an_unwritable_cli_output_path_is_exit_2_naming_it_and_no_traceback(tmp_path, where):
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    (tmp_path / "folder.json").mkdir()
    plan = afile / "x.plan" if where == "output-under-a-file" else tmp_path / "x.plan"
    args = ["-m", "workbench.cli", "--workspace", str(tmp_path / "ws"), "build", str(get_sample("cnn_residual").path),
            "-o", str(plan), "--min-shapes", "input:1x3x32x32", "--opt-shapes", "input:1x3x32x32",
            "--max-shapes", "input:2x3x32x32"]
    if where == "report-is-a-folder":
        args += ["--report", str(tmp_path / "folder.json")]
    out = subprocess.run([sys.executable, *args], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    assert "Traceback" not in out.stderr, out.stderr[-2000:]
    named = str(afile) if where == "output-under-a-file" else str(tmp_path / "folder.json")
    assert f"error: cannot use '{named}'" in out.stderr and "hint:" in out.stderr, out.stderr[-2000:]


# ---------------------------------------------------------------------------------------------- other workspaces


def test_another_workspace_cannot_reach_a_finished_build_or_model_by_its_ids(session_wb, cnn_build, tmp_path):
    from workbench.service import Workbench

    victim = session_wb
    job_dir = victim.jobs.job_dir(cnn_build)
    plan = victim.plan_path(cnn_build).read_bytes()
    digest = victim.jobs.get(cnn_build).model_digest
    model_dir = victim.model(digest).path.parent
    other = Workbench.open(tmp_path / "other")  # another lab user's workspace on the same server

    job_ids = [
        cnn_build,
        cnn_build + "\n",
        cnn_build + "/",
        str(job_dir),
        os.path.relpath(job_dir, other.ws.jobs_dir),
        f"..%2f..%2f{cnn_build}",
        f"../{cnn_build}",
    ]
    for job_id in job_ids:
        for attempt in (
            other.plan_path,
            other.jobs.get,
            other.jobs.read_log,
            other.build_report_json,
            other.jobs.cancel,
            other.jobs.delete,
            lambda j: other.jobs.artifact(j, "engine.plan"),
        ):
            with pytest.raises(JobError):
                attempt(job_id)
    model_ids = [
        digest,
        digest.upper(),
        digest + "\n",
        str(model_dir),
        os.path.relpath(model_dir, other.ws.models_dir),
    ]
    for model_id in model_ids:
        with pytest.raises(ModelError, match="not a model id|not in this workspace"):
            other.model(model_id)
    assert other.builds() == [] and other.models() == []
    # The owner still has everything.
    assert victim.plan_path(cnn_build).read_bytes() == plan
    assert victim.jobs.get(cnn_build).status == "succeeded"


# ---------------------------------------------------------------------------------------------- static serving


def _published_folder(static_root: Path, url: str) -> Path:
    parts = urlsplit(url).path.split("/")
    assert parts[:4] == ["", "app", "static", "m"] and len(parts) == 6, url
    assert unquote(url) == url and not {".", ".."} & set(parts), url
    return static_root / "m" / parts[4]


def test_the_graph_view_publishes_only_the_model_under_an_unguessable_name(tmp_path):
    from workbench.netron import publish_model, viewer_url

    folder = tmp_path / "user folder"
    src = onnx_models.with_external_data(folder)
    hostile = src.rename(folder / "..%2f..%2fapp.py #?.onnx")  # a name that tries to climb out of the URL
    (folder / "secret.txt").write_text("not for the browser")
    static = tmp_path / "static"
    url = publish_model(static, hostile)
    pub = _published_folder(static, url)
    name = url.rsplit("/", 1)[1]
    assert (pub / name).resolve().is_relative_to(pub.resolve())
    assert onnx.load(str(pub / name)).graph == onnx.load(str(hostile)).graph  # external data renamed 0.bin
    assert sorted(p.name for p in pub.iterdir()) == sorted([".source", name, "0.bin"])
    assert len(pub.name) == 32  # 192 random bits: the URL is the only key
    # Publications are bounded: older ones stop being served (once out of the grace period that protects other
    # sessions' pages still loading them; here zero).
    others = [
        publish_model(static, onnx_models.with_external_data(tmp_path / f"m{i}"), keep=2, grace_seconds=0)
        for i in range(2)
    ]
    assert not pub.exists() and {p.name for p in (static / "m").iterdir()} == {
        _published_folder(static, u).name for u in others
    }
    # A model whose external data points outside its folder is not published at all.
    bad = onnx_models.with_external_data(tmp_path / "bad")
    model = onnx.load(str(bad), load_external_data=False)
    for t in model.graph.initializer:
        next(e for e in t.external_data if e.key == "location").value = "../user folder/secret.txt"
    onnx.save(model, str(bad))
    before = sorted(p.name for p in (static / "m").iterdir())
    with pytest.raises(ModelError, match="outside the model's folder"):
        publish_model(static, bad)
    assert sorted(p.name for p in (static / "m").iterdir()) == before
    for bad in (
        "//evil.example/m.onnx",
        "https://evil.example/m.onnx",
        "\\\\evil\\m.onnx",
        "javascript:alert(1)",
    ):
        with pytest.raises(WorkbenchError, match="same-origin"):
            viewer_url(bad)


ACTIVE_SUFFIXES = (".html", ".htm", ".shtml", ".xhtml", ".xht", ".svg", ".svgz", ".js", ".mjs", ".xml", ".xsl",
                   ".xslt", ".css", ".wasm", ".pdf")


def _page_named_archive(tmp_path: Path, name: str) -> tuple[bytes, onnx.ModelProto]:
    """An upload: a zip of model.onnx whose weights live in ``name`` (an HTML page, then the weights)."""
    import io
    import zipfile

    path = onnx_models.page_named_external_data(tmp_path / f"src-{name}", name)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.write(path, "model.onnx")
        zf.write(path.parent / name, name)
    return buf.getvalue(), onnx.load(str(path))


@pytest.mark.parametrize("name", ["pwn.html", "x.svg", "a.xhtml", "s.js", "m.mjs", "d.xml", "p.HTM"])
def test_external_data_named_like_a_page_is_published_as_inert_data(workspace, tmp_path, name):
    """An uploaded archive whose external data is a file named like a page (an HTML page, then the weights at
    offset 1024): the graph view publishes it under a neutral name, so static serving (which picks the content
    type from the suffix) never serves it as a page on the app's origin; the published model still loads with
    its weights."""
    from streamlit.web.server.component_file_utils import guess_content_type

    from workbench.model import import_model
    from workbench.netron import publish_model

    data, original = _page_named_archive(tmp_path, name)
    ref = import_model(workspace, data, "bundle.zip")
    static = tmp_path / "static"
    url = publish_model(static, ref.path)
    pub = _published_folder(static, url)
    served = sorted(pub.rglob("*"))
    assert served and all(p.is_file() for p in served)
    for p in served:
        assert not p.name.lower().endswith(ACTIVE_SUFFIXES), p.name
        assert guess_content_type(str(p)) == "application/octet-stream", (p.name, guess_content_type(str(p)))
    assert sorted(p.name for p in served) == [".source", "0.bin", "model.onnx"]
    loaded = onnx.load(str(pub / "model.onnx"))  # Netron resolves locations against the model's URL the same way
    assert [onnx.numpy_helper.to_array(t).tolist() for t in loaded.graph.initializer] == [
        onnx.numpy_helper.to_array(t).tolist() for t in original.graph.initializer]
    graph = onnx.load(str(pub / "model.onnx"), load_external_data=False).graph
    assert {e.value for t in graph.initializer for e in t.external_data if e.key == "location"} == {"0.bin"}


def test_the_real_app_serves_published_external_data_only_as_inert_bytes(workspace, tmp_path):
    """The same attack against the running app: the page's own name is not served, the neutral one is served as
    ``application/octet-stream`` (with ``nosniff``), so opening any published link never runs script."""
    from tests.browser_support import running_app
    from workbench.model import import_model
    from workbench.netron import publish_model

    data, _ = _page_named_archive(tmp_path, "pwn.html")
    ref = import_model(workspace, data, "bundle.zip")
    with running_app(tmp_path) as app:
        url = publish_model(app.static_dir, ref.path, keep=10_000)  # prunes nobody else's publication
        pub = _published_folder(app.static_dir, url)
        try:
            split = urlsplit(app.url)
            folder = url.rsplit("/", 1)[0]

            def get(path: str) -> tuple[int, str, bytes]:
                conn = http.client.HTTPConnection(split.hostname, split.port, timeout=10)
                conn.request("GET", path)
                resp = conn.getresponse()
                return resp.status, resp.getheader("Content-Type") or "", resp.read()

            assert get(f"{folder}/pwn.html")[0] == 404
            status, kind, body = get(f"{folder}/0.bin")
            assert status == 200 and kind == "application/octet-stream" and body.startswith(b"<!doctype html>")
            status, kind, _ = get(url)
            assert status == 200 and kind == "application/octet-stream"
        finally:
            shutil.rmtree(pub, ignore_errors=True)


def test_static_serving_answers_only_the_published_file(tmp_path):
    """Against the real app (started like ./run.sh app): traversal and listings get nothing."""
    from tests.browser_support import running_app
    from workbench.netron import publish_model

    model = tmp_path / "mine.onnx"  # a file of our own: its publication is new, not one another test reuses
    shutil.copyfile(get_sample("dynamic_2axis").path, model)
    with running_app(tmp_path) as app:
        url = publish_model(app.static_dir, model, keep=10_000)  # prunes nobody else's publication
        pub = _published_folder(app.static_dir, url)
        try:
            split = urlsplit(app.url)
            token = pub.name

            def get(path: str) -> tuple[int, bytes]:
                conn = http.client.HTTPConnection(split.hostname, split.port, timeout=10)
                conn.request("GET", path)  # sent as written: no client-side normalisation of '..'
                resp = conn.getresponse()
                return resp.status, resp.read()

            status, body = get(url)
            assert status == 200 and body == model.read_bytes()
            secret = (REPO / "pyproject.toml").read_bytes()
            for path in [
                "/app/static/../pyproject.toml",
                "/app/static/%2e%2e/pyproject.toml",
                f"/app/static/m/{token}/..%2f..%2f..%2fpyproject.toml",
                f"/app/static/m/{token}/%2e%2e/%2e%2e/%2e%2e/pyproject.toml",
                "/app/static/%2f" + str(REPO / "pyproject.toml").lstrip("/").replace("/", "%2f"),
                "/app/static/m/",
                f"/app/static/m/{token}/",
                "/app/static/m",
            ]:
                status, body = get(path)
                assert status in (400, 403, 404), (path, status)
                assert body != secret and token.encode() not in body, path
        finally:
            shutil.rmtree(pub, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- no shell


def test_no_shell_command_is_ever_built_in_the_core():
    """Every subprocess gets an argument list; nothing runs through a shell."""
    found = []
    for path in sorted((REPO / "workbench").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            where = f"{path.relative_to(REPO)}:{node.lineno}"
            func = ast.unparse(node.func)
            if any(
                k.arg == "shell" and not (isinstance(k.value, ast.Constant) and k.value.value is False)
                for k in node.keywords
            ):
                found.append(f"{where}: shell= in {func}(...)")
            if func in (
                "os.system",
                "os.popen",
                "subprocess.getoutput",
                "subprocess.getstatusoutput",
                "os.execl",
                "os.execlp",
                "os.spawnl",
                "pty.spawn",
            ):
                found.append(f"{where}: {func}(...)")
            if (
                func.startswith("subprocess.")
                and node.args
                and isinstance(node.args[0], ast.Constant | ast.JoinedStr)
            ):
                found.append(f"{where}: {func} with a command string")
    assert not found, "\n".join(found)


# ---------------------------------------------------------------------------------------------- upload limits


class EndlessUpload:
    """A client that never stops sending: the server must stop reading at its limit."""

    def __init__(self) -> None:
        self.sent = 0

    def read(self, n: int = -1) -> bytes:
        n = 1 << 16 if n is None or n < 0 else n
        self.sent += n
        return b"\x08" * n


def test_upload_limits_are_enforced_by_the_server_while_reading(wb):
    limit = 4 << 20
    stream = EndlessUpload()
    with pytest.raises(ModelError, match=r"'endless.onnx' is over the 4 MiB upload limit"):
        wb.import_upload(stream, "endless.onnx", max_bytes=limit)
    assert stream.sent <= limit + (1 << 20)  # stopped within one chunk of the limit
    data_stream = EndlessUpload()
    with pytest.raises(ModelError, match=r"'endless.npz' is over the 4 MiB limit"):
        from workbench.service import store_data_file

        store_data_file(wb.ws, data_stream, "endless.npz", max_bytes=limit)
    assert data_stream.sent <= limit + (1 << 20)
    assert not any(wb.ws.tmp_dir.iterdir()) and wb.models() == []
    assert not (wb.ws.root / "data").exists() or not any((wb.ws.root / "data").iterdir())


# ---------------------------------------------------------------------------------------------- parser-check cache


def test_a_damaged_parser_cache_is_treated_as_missing_and_a_failed_check_can_be_retried(wb):
    from workbench.backends import backend_info
    from workbench.errors import BackendError
    from workbench.parse_check import ParseResult, read_cache, write_cache

    if not backend_info("tensorrt-rtx").installed:
        pytest.skip("TensorRT-RTX is not installed")
    ref = wb.import_path(get_sample("cnn_residual").path)
    cache = ref.path.parent / "parse-tensorrt-rtx.json"
    _, job_id = wb.parse_check(ref, "tensorrt-rtx")
    assert wb.jobs.wait(job_id, timeout=180).status == "succeeded"
    good = read_cache(cache)
    assert good is not None and good.ok and not list(ref.path.parent.glob("*.part"))
    plain = json.loads(json.dumps(good.to_dict()))  # what parse_check returns: the result as JSON has it
    # What a worker killed in the middle of a plain write_text leaves: half a JSON document.
    cache.write_text(json.dumps(good.to_dict())[:25])
    result, none = wb.parse_check(ref, "tensorrt-rtx")
    assert none is None and result == plain, "the finished job's result is used"
    assert read_cache(cache) == good, "and the cache rewritten whole"
    # Not JSON at all, and JSON that is not a result: missing too.
    for junk in (b"\xff\xfe\x00", b'{"backend": 1}', b"[]"):
        cache.write_bytes(junk)
        assert read_cache(cache) is None
    # A check whose worker died: its reason, until the user asks again; then a new check runs.
    cache.unlink()
    job_dir = wb.jobs.job_dir(job_id)
    state = json.loads((job_dir / "job.json").read_text())
    state.update(status="failed", error="The worker process died (killed by signal 9) before finishing.",
                 result={})
    (job_dir / "job.json").write_text(json.dumps(state))
    with pytest.raises(BackendError, match="killed by signal 9"):
        wb.parse_check(ref, "tensorrt-rtx")
    result, retry_id = wb.parse_check(ref, "tensorrt-rtx", retry=True)
    assert result is None and retry_id != job_id
    assert wb.jobs.wait(retry_id, timeout=180).status == "succeeded"
    assert wb.parse_check(ref, "tensorrt-rtx")[0] == plain
    # Writing is atomic: a new result replaces the old one whole and leaves no temporary file.
    write_cache(cache, ParseResult("tensorrt-rtx", "x", True, 1))
    assert read_cache(cache) == ParseResult("tensorrt-rtx", "x", True, 1)
    assert sorted(p.name for p in cache.parent.glob("parse-*")) == ["parse-tensorrt-rtx.json"]


@pytest.fixture()
def small_disk(tmp_path):
    """A real, small file system (a 4 MiB tmpfs; mounting needs root, else the test is skipped)."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(folder: Path) -> None:
    """Write until the file system is really full (ENOSPC)."""
    with open(folder / "filler", "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError as err:
            assert err.errno == 28, err  # ENOSPC
    with contextlib.suppress(OSError):  # the last partial block too
        with open(folder / "filler2", "wb") as fh:
            while True:
                fh.write(b"\0" * 512)
                fh.flush()


def test_a_full_disk_at_submission_is_a_clear_error_and_leaves_no_job_folder(small_disk, monkeypatch):
    """The workspace's disk fills up: submitting a build says the disk is full and leaves no half-written job
    folder (a '.job.json.<pid>.tmp' orphan used to stay) — on a real full file system, not a simulation."""
    from workbench.service import Workbench

    monkeypatch.setenv("WORKBENCH_HOME", str(small_disk / "ws"))
    wb = Workbench.open(small_disk / "ws")
    ref = wb.import_path(onnx_models.with_external_data(small_disk / "src"))
    _fill(small_disk)
    before = sorted(p.name for p in wb.ws.jobs_dir.iterdir() if p.is_dir())
    with pytest.raises(JobError) as err:
        wb.submit_build(ref, BuildSpec())
    assert "Not enough disk space" in err.value.message and "nothing was kept" in err.value.message
    assert sorted(p.name for p in wb.ws.jobs_dir.iterdir() if p.is_dir()) == before == []
    assert wb.jobs.list() == []
