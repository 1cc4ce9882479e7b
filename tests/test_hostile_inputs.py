"""Hostile inputs: every model, archive, data file and form value a user can hand the workbench gets a specific
error naming the file, input or node; the app and the CLI stay up; nothing is written outside the workspace and
nothing is left in it after a refusal.

Cases that other test files already cover are not repeated here; docs/guarantees.md maps every item of the
list to the test that proves it.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import struct
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests import onnx_models
from workbench.errors import ArchiveError, DataError, ModelError, SpecError, WorkbenchError
from workbench.model import import_model, list_models
from workbench.samples import get_sample
from workbench.spec import BuildSpec, Profile, ShapeRange
from workbench.text import md

# ---------------------------------------------------------------------------------------------- helpers


def _tree(root: Path, skip: Path) -> set[str]:
    """Every path below ``root`` except the workspace ``skip`` (what a refusal must not change)."""
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_relative_to(skip)}


def refused(
    ws, tmp_path: Path, action: Callable[[], object], error: type[WorkbenchError] = ModelError
) -> str:
    """Run ``action``, expect ``error``; check that nothing was stored and nothing written anywhere else.

    Returns the user-facing text (message and hint)."""
    before = _tree(tmp_path, ws.root)
    with pytest.raises(error) as info:
        action()
    assert list_models(ws) == [] and not any(ws.models_dir.iterdir()), "a refused model was stored"
    assert not any(ws.tmp_dir.iterdir()), f"staging left behind: {list(ws.tmp_dir.iterdir())}"
    assert _tree(tmp_path, ws.root) == before, "something was written outside the workspace"
    err = info.value
    return err.message + (f" {err.hint}" if err.hint else "")


def _model(graph: onnx.GraphProto) -> bytes:
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def _relu(x: str = "x", y: str = "y", node: str = "relu", shape: list[int] | None = None) -> bytes:
    shape = shape or [1, 4]
    return _model(
        helper.make_graph(
            [helper.make_node("Relu", [x], [y], name=node)],
            "g",
            [helper.make_tensor_value_info(x, TensorProto.FLOAT, shape)],
            [helper.make_tensor_value_info(y, TensorProto.FLOAT, shape)],
        )
    )


def _initializer_2_31() -> bytes:
    w = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[2**31])  # declares 8 GiB, holds nothing
    return _model(
        helper.make_graph(
            [helper.make_node("Add", ["x", "w"], ["y"], name="add")],
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
            [w],
        )
    )


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _tar(entries: list[tarfile.TarInfo], data: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for info in entries:
            payload = (data or {}).get(info.name)
            if payload is not None:
                info.size = len(payload)
            tf.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return buf.getvalue()


def _external_archive(
    tmp_path: Path, location: str | None = None, key: str = "location", weights: bytes | None = None
) -> bytes:
    """The static MLP with its weights in weights.bin, zipped; optionally with one external-data entry changed."""
    path = onnx_models.with_external_data(tmp_path / "src")
    model = onnx.load(str(path), load_external_data=False)
    if location is not None:
        for t in model.graph.initializer:
            entry = next((e for e in t.external_data if e.key == key), None) or t.external_data.add()
            entry.key, entry.value = key, location
    real = (tmp_path / "src" / "weights.bin").read_bytes()
    return _zip(
        {"external.onnx": model.SerializeToString(), "weights.bin": real if weights is None else weights}
    )


# ---------------------------------------------------------------------------------------------- models


TINY = onnx_models.tiny_cnn().SerializeToString()


@pytest.mark.parametrize(
    ("content", "filename", "expected"),
    [
        (b"", "empty.onnx", "'empty.onnx' is empty (0 bytes)"),
        (
            b"name,value\nlr,0.1\n",
            "table.onnx",
            "'table.onnx' is not an ONNX model: it looks like a text file",
        ),
        (
            b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8,
            "photo.onnx",
            "'photo.onnx' is not a valid ONNX model",
        ),
        (TINY[: len(TINY) // 3], "cut.onnx", "'cut.onnx' is not a valid ONNX model"),
        (_relu(shape=[2**31, 4]), "wide.onnx", "Tensor 'x' declares dimension 0 = 2147483648, outside"),
        (_initializer_2_31(), "init.onnx", "Initializer 'w' has dimension 2147483648"),
        (
            _relu(node="relu\nLayers:\nName: fake"),
            "ctrl.onnx",
            r"Node #0 (Relu) 'relu\nLayers:\nName: fake' has control characters in its name",
        ),
        (_relu(y="out\x00put"), "nul.onnx", r"Graph output 'out\x00put' has control characters"),
        (_relu(x="in\x1b[31m"), "esc.onnx", r"Graph input 'in\x1b[31m' has control characters"),
    ],
    ids=[
        "0-byte",
        "text",
        "binary",
        "truncated",
        "dim-2^31",
        "initializer-2^31",
        "newline-node",
        "nul-output",
        "escape-input",
    ],
)
def test_a_hostile_model_upload_is_refused_naming_the_file_or_tensor(
    workspace, tmp_path, content, filename, expected
):
    text = refused(workspace, tmp_path, lambda: import_model(workspace, content, filename))
    assert expected in text


def test_a_model_over_2_gib_without_external_data_is_refused_by_its_size_unread(wb, tmp_path):
    """model.py decides by the file's size (protobuf cannot hold more than 2 GiB) before reading a byte: a
    sparse file of 2 GiB (no disk blocks) shows it, and the refusal is instant."""
    big = tmp_path / "in" / "huge.onnx"
    big.parent.mkdir()
    with open(big, "wb") as fh:
        fh.truncate(2**31)
    assert big.stat().st_blocks == 0, "the test file must be sparse"
    t0 = time.monotonic()
    text = refused(wb.ws, tmp_path, lambda: wb.import_path(big))  # the CLI's path import: no upload limit
    assert time.monotonic() - t0 < 1.0
    assert "'huge.onnx' is 2.0 GiB in one file" in text and "save_as_external_data" in text
    # As an upload the server-side limit stops it first (1 GiB by default).
    assert "over the 1024 MiB limit" in refused(
        wb.ws, tmp_path, lambda: import_model(wb.ws, big, "huge.onnx")
    )


@pytest.mark.parametrize(
    ("location", "key", "weights", "expected"),
    [
        (
            "../../../../outside.bin",
            "location",
            None,
            "'../../../../outside.bin', outside the model's folder",
        ),
        ("/etc/passwd", "location", None, "'/etc/passwd', outside the model's folder"),
        (
            None,
            "location",
            b"\0" * 10,
            "'weights.bin' is shorter than declared (needs bytes 0..512, file has 10)",
        ),
        ("summary.json", "location", None, "'summary.json', a name the workbench uses for its own files"),
        ("-1", "offset", None, "external data offset '-1' is not a byte count"),
    ],
    ids=["dotdot", "absolute", "short", "reserved-name", "bad-offset"],
)
def test_hostile_external_data_in_an_uploaded_archive(workspace, tmp_path, location, key, weights, expected):
    data = _external_archive(tmp_path, location, key, weights)
    text = refused(workspace, tmp_path, lambda: import_model(workspace, data, "bundle.zip"))
    assert "Initializer 'w'" in text and expected in text


def test_external_data_that_is_a_fifo_is_refused_without_being_opened(wb, tmp_path):
    """A named pipe next to the model: opening it would block forever; the check only stats it."""
    path = onnx_models.with_external_data(tmp_path / "in")
    (tmp_path / "in" / "weights.bin").unlink()
    os.mkfifo(tmp_path / "in" / "weights.bin")
    outcome: list[BaseException | None] = []

    def attempt() -> None:
        try:
            wb.import_path(path)
            outcome.append(None)
        except BaseException as err:  # handed to the test thread
            outcome.append(err)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(20)
    assert outcome, "the import blocked on the pipe (it opened it)"

    def rethrow() -> None:
        if outcome[0] is not None:
            raise outcome[0]

    text = refused(wb.ws, tmp_path, rethrow)
    assert "Initializer 'w': external data 'weights.bin' is not a regular file" in text


def test_an_upload_name_with_separators_and_control_characters_stays_a_plain_name(workspace, tmp_path):
    ref = import_model(workspace, TINY, "../../../evil\x1b[31m\n\\x.onnx")
    assert ref.path.parent == workspace.models_dir / ref.digest
    assert ref.path.name == ref.name and all(c.isprintable() for c in ref.name)
    assert "/" not in ref.name and "\\" not in ref.name and not ref.name.startswith(".")
    assert not any(
        p.name.startswith("evil") for p in tmp_path.rglob("*") if not p.is_relative_to(ref.path.parent)
    )
    assert not any(workspace.tmp_dir.iterdir())


def test_tensor_and_node_names_with_path_separators_are_data_not_paths(wb, tmp_path):
    """PyTorch exports name nodes '/layer1/Conv': such names are legal. A real build of a model whose names try
    to climb out of every folder succeeds, reports them verbatim, and writes only inside its job folder."""
    nodes = [
        helper.make_node("Gemm", ["/abs/input", "w", "b"], ["../../h"], name="../../../../etc/passwd"),
        helper.make_node("Relu", ["../../h"], ["C:\\out"], name="\\\\server\\share"),
    ]
    graph = helper.make_graph(
        nodes,
        "names",
        [helper.make_tensor_value_info("/abs/input", TensorProto.FLOAT, [2, 16])],
        [helper.make_tensor_value_info("C:\\out", TensorProto.FLOAT, [2, 8])],
        [
            numpy_helper.from_array(np.ones((16, 8), np.float32), "w"),
            numpy_helper.from_array(np.zeros(8, np.float32), "b"),
        ],
    )
    before = _tree(tmp_path, wb.ws.root)
    ref = wb.import_upload(_model(graph), "names.onnx")
    summary = wb.summary(ref)
    assert [t.name for t in summary.inputs] == ["/abs/input"] and [t.name for t in summary.outputs] == [
        "C:\\out"
    ]
    job = wb.jobs.wait(wb.submit_build(ref, BuildSpec()), timeout=120)
    assert job.status == "succeeded", (job.error, wb.jobs.read_log(job.id)[0][-2000:])
    from workbench.layers import load_layers

    layers = load_layers(wb.jobs.artifact(job.id, "layers.json"))
    assert "../../../../etc/passwd" in {n for ly in layers.layers for n in ly.onnx_nodes}
    job_dir = wb.jobs.job_dir(job.id)
    assert all(p.is_file() and p.parent == job_dir for p in job_dir.rglob("*")), sorted(job_dir.rglob("*"))
    assert _tree(tmp_path, wb.ws.root) == before


# ---------------------------------------------------------------------------------------------- archives


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


@pytest.mark.parametrize(
    ("archive", "filename", "expected"),
    [
        (
            _tar([_member("../../../../evil.onnx")], {"../../../../evil.onnx": TINY}),
            "up.tar.gz",
            "up.tar.gz: entry '../../../../evil.onnx' would unpack outside its folder",
        ),
        (
            _tar([_member("/tmp/evil-abs.onnx")], {"/tmp/evil-abs.onnx": TINY}),
            "abs.tar.gz",
            "abs.tar.gz: entry '/tmp/evil-abs.onnx' has an absolute path",
        ),
        (_zip({"..\\..\\..\\..\\evil.onnx": TINY}), "win.zip", "would unpack outside its folder"),
        (
            _tar(
                [_member("model.onnx"), _member("weights.bin", tarfile.LNKTYPE, "/etc/passwd")],
                {"model.onnx": TINY},
            ),
            "hard.tar.gz",
            "hard.tar.gz: entry 'weights.bin' is a link; links are not allowed",
        ),
        (
            _tar([_member("dev", tarfile.CHRTYPE)]),
            "dev.tar.gz",
            "dev.tar.gz: entry 'dev' is a device or special file",
        ),
        (b"", "empty.zip", "empty.zip: the archive is empty (0 bytes)"),
    ],
    ids=["tar-dotdot", "tar-absolute", "zip-backslashes", "tar-hardlink", "tar-device", "empty"],
)
def test_a_hostile_archive_upload_is_refused_naming_the_archive_and_entry(
    workspace, tmp_path, archive, filename, expected
):
    text = refused(workspace, tmp_path, lambda: import_model(workspace, archive, filename), ArchiveError)
    assert expected in text
    assert not (tmp_path / "evil.onnx").exists() and not Path("/tmp/evil-abs.onnx").exists()


def _patch_sizes(data: bytes, size: int) -> bytes:
    """Rewrite the uncompressed size an archive's first entry declares (local header and central directory)."""
    raw = bytearray(data)
    local, central = raw.find(b"PK\x03\x04"), raw.find(b"PK\x01\x02")
    raw[local + 22 : local + 26] = struct.pack("<I", size)
    raw[central + 24 : central + 28] = struct.pack("<I", size)
    return bytes(raw)


def test_a_zip_bomb_is_refused_by_its_declared_and_by_its_actual_size(workspace, tmp_path):
    from workbench.archives import ArchiveLimits, extract_archive

    honest = _zip({"model.onnx": b"\0" * (4 << 20)})  # 4 MiB of zeros in a few KiB
    # Declared: the directory claims 4 GiB - refused from the directory alone, nothing unpacked.
    declared = _patch_sizes(honest, 0xFFFFFFF0)
    text = refused(
        workspace, tmp_path, lambda: import_model(workspace, declared, "declared.zip"), ArchiveError
    )
    assert "declared.zip" in text and "zip bomb" in text
    # Actual: the directory claims 1 KiB but the data inflates to 4 MiB - unpacking stops at the claim.
    lying = tmp_path / "in" / "lying.zip"
    lying.parent.mkdir()
    lying.write_bytes(_patch_sizes(honest, 1024))
    out = tmp_path / "out"
    with pytest.raises(ArchiveError, match="lying.zip: the archive is damaged"):
        extract_archive(lying, out, ArchiveLimits(max_total_bytes=1 << 20))
    assert not out.exists()
    text = refused(
        workspace, tmp_path, lambda: import_model(workspace, lying.read_bytes(), "lying.zip"), ArchiveError
    )
    assert "lying.zip" in text


def test_an_archive_keeps_only_the_model_and_its_external_data(workspace, tmp_path):
    """Extra files in an upload (a forged summary cache, notes, scripts) are not stored next to the model."""
    with zipfile.ZipFile(io.BytesIO(_external_archive(tmp_path))) as zf:
        entries = {n: zf.read(n) for n in zf.namelist()}
    entries.update(
        {"summary.json": b'{"forged": true}', "run_me.sh": b"rm -rf /", "parse-tensorrt-rtx.json": b"{}"}
    )
    ref = import_model(workspace, _zip(entries), "bundle.zip")
    stored = {p.name for p in ref.path.parent.iterdir()}
    assert stored == {"external.onnx", "weights.bin", "meta.json", "summary.json"}
    assert "forged" not in (ref.path.parent / "summary.json").read_text()


# ---------------------------------------------------------------------------------------------- data


class _Payload:
    """Unpickling this creates a file: proof that a pickle was executed."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (Path.touch, (self.target,))


def test_a_pickle_in_calibration_data_is_never_executed_and_no_job_is_queued(wb, tmp_path):
    from workbench.quantize_task import QuantizeRequest

    ref = wb.import_path(get_sample("digits_mlp").path)
    sentinel = tmp_path / "pwned"
    buf = io.BytesIO()
    np.savez(buf, input=np.array([_Payload(sentinel)] * 4, dtype=object))
    pickle.loads(pickle.dumps(_Payload(tmp_path / "check")))  # the payload really works when unpickled
    assert (tmp_path / "check").exists()
    stored = wb.store_data(buf.getvalue(), "../../../calib\n.npz")
    assert stored.parent == wb.ws.root / "data" and stored.name.endswith("-calib.npz")
    with pytest.raises(DataError) as err:
        wb.submit_quantize(ref, QuantizeRequest(data_path=str(stored)))
    assert "'input'" in err.value.message and "objects" in err.value.message
    assert not sentinel.exists()
    assert wb.jobs.list() == []


@pytest.mark.parametrize(
    ("arrays", "expected"),
    [
        ({"inputs": np.zeros((4, 64), np.float32)}, "'inputs'"),
        ({"input": np.zeros((0, 64), np.float32)}, "empty"),
        ({"input": np.zeros((4, 63), np.float32)}, "dimension 1 must be 64"),
    ],
    ids=["wrong-name", "empty-array", "wrong-shape"],
)
def test_bad_calibration_data_is_refused_before_any_job_starts(wb, arrays, expected):
    """load_npz's checks are tested one by one in test_calibration_data.py; here: what the headers tell is
    refused before a job exists. Values (NaN/Inf) need the arrays read, which is the worker's job: the preview
    shows them, and a job given them fails naming file and input (test_quantize.py)."""
    from workbench.quantize_task import QuantizeRequest

    ref = wb.import_path(get_sample("digits_mlp").path)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    stored = wb.store_data(buf.getvalue(), "calib.npz")
    with pytest.raises(DataError, match="calib.npz") as err:
        wb.submit_quantize(ref, QuantizeRequest(data_path=str(stored)))
    assert expected in err.value.message
    assert wb.jobs.list() == []


# ---------------------------------------------------------------------------------------------- forms


@pytest.mark.parametrize(
    ("rng", "expected"),
    [
        (
            ShapeRange((2**31, 3, 32, 32), (2**31, 3, 32, 32), (2**31, 3, 32, 32)),
            "min = 2147483648 is not a valid",
        ),
        (ShapeRange((1, 3, 32, 32), (8, 3, 32, 32), (4, 3, 32, 32)), "need min <= opt <= max, got 1, 8, 4"),
    ],
    ids=["dim-2^31", "opt-over-max"],
)
def test_out_of_range_profiles_are_refused_before_any_job(wb, rng, expected):
    ref = wb.import_path(get_sample("cnn_residual").path)
    with pytest.raises(SpecError) as err:
        wb.submit_build(ref, BuildSpec(profiles=(Profile({"input": rng}),)))
    assert "input 'input', dim 0" in err.value.message and expected in err.value.message
    assert wb.jobs.list() == []


# ---------------------------------------------------------------------------------------------- CLI and app


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WORKBENCH_HOME": str(tmp_path / "cli-ws")}
    return subprocess.run(
        [sys.executable, "-m", "workbench.cli", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _cli_inputs(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "empty.onnx").write_bytes(b"")
    with open(folder / "huge.onnx", "wb") as fh:
        fh.truncate(2**31 + 1)
    (folder / "ctrl.onnx").write_bytes(_relu(node="relu\x07bell"))
    (folder / "evil.zip").write_bytes(_zip({"../../evil.onnx": TINY}))
    return {p.name: p for p in folder.iterdir()}


_SHAPES = "--min-shapes input:1x3x32x32 --opt-shapes input:1x3x32x32 --max-shapes input:1x3x32x32"


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("inspect {empty.onnx}", "'empty.onnx' is empty (0 bytes)"),
        ("inspect {huge.onnx}", "'huge.onnx' is 2.0 GiB in one file"),
        ("inspect {ctrl.onnx}", r"'relu\x07bell' has control characters"),
        ("build {evil.zip} -o x.plan", "evil.zip: entry '../../evil.onnx' would unpack outside"),
        ("build {ctrl.onnx} -o x.plan", r"'relu\x07bell' has control characters"),
        (f"build {{cnn}} -o x.plan --workspace-mb 99999999999 {_SHAPES}", "Workspace limit 99999999999 MiB"),
    ],
    ids=[
        "inspect-0-byte",
        "inspect-over-2GiB",
        "inspect-control-chars",
        "build-archive-dotdot",
        "build-control-chars",
        "build-absurd-workspace",
    ],
)
def test_the_cli_refuses_hostile_inputs_with_exit_2_and_no_traceback(tmp_path, command, expected):
    files = {**_cli_inputs(tmp_path), "cnn": get_sample("cnn_residual").path}
    out = _cli(tmp_path, *(str(files[a[1:-1]]) if a.startswith("{") else a for a in command.split()))
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    assert expected in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "x.plan").exists() and not (tmp_path / "evil.onnx").exists()
    home = tmp_path / "cli-ws"
    if home.exists():
        assert not any((home / "tmp").iterdir())
        assert not any((home / "jobs").glob("*/job.json")), "a job was queued for a refused input"
        if "{cnn}" not in command:  # a refused model is not stored (the sample is valid, its form is not)
            assert not any((home / "models").iterdir())


def test_a_hostile_upload_through_the_model_page_is_an_error_and_the_page_stays_usable(
    wb, tmp_path, monkeypatch
):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from tests.conftest import REPO
    from workbench import ui

    monkeypatch.chdir(REPO)
    st.cache_resource.clear()
    st.cache_data.clear()
    try:
        at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60).run()
        at.file_uploader(key="model.uploader").set_value(
            ("bomb.zip", _zip({"../../../../evil.onnx": TINY}), "application/zip")
        ).run()
        assert not at.exception, [e.value for e in at.exception]
        errors = [e.value for e in at.error]
        assert errors and "bomb.zip" in errors[0] and "outside its folder" in errors[0]
        assert ui.MODEL_DIGEST not in at.session_state
        assert wb.models() == [] and not any(wb.ws.tmp_dir.iterdir())
        assert not (tmp_path / "evil.onnx").exists()
        # The same session goes on: a bundled sample opens.
        at.selectbox(key="model.sample").select("cnn_residual").run()
        at.button(key="model.open_sample").click().run()
        assert not at.exception and at.subheader[0].value == "cnn_residual.onnx"
    finally:
        st.cache_resource.clear()
        st.cache_data.clear()


def test_a_model_folder_removed_while_the_model_page_lists_models_is_no_traceback(wb, tmp_path, monkeypatch):
    """Another session (or an admin) deletes a stored model while this page lists the recent ones."""
    import shutil

    import streamlit as st

    from tests.conftest import open_page
    from workbench import ui

    monkeypatch.chdir(Path(__file__).resolve().parent.parent)
    st.cache_resource.clear()
    st.cache_data.clear()
    try:
        keep = wb.import_path(get_sample("cnn_residual").path)
        gone = wb.import_upload(TINY, "tiny.onnx")
        half = wb.import_path(get_sample("dynamic_2axis").path)
        gone.path.unlink()  # its meta.json is still there: listed, then its file is missing
        shutil.rmtree(half.path.parent)
        at = open_page("model", 60, **{ui.MODEL_DIGEST: keep.digest})
        assert not at.exception, [e.value for e in at.exception]
        assert at.subheader[0].value == "cnn_residual.onnx"
        recent = at.selectbox(key=ui.recent_key(keep.digest))
        assert recent.options == [f"cnn_residual.onnx · {keep.short}"]
    finally:
        st.cache_resource.clear()
        st.cache_data.clear()


# ------------------------------------------------------------------------ a shared data folder under attack

SECRET = b"TOP-SECRET-KEY-MATERIAL!"


def _secret_bytes(size: int) -> bytes:
    return (SECRET * (size // len(SECRET) + 1))[:size]


def _workspace_holds_the_secret(ws) -> list[str]:
    """Every file of the workspace that holds the secret, and every link in it (a link could lead to it)."""
    found = []
    for p in ws.root.rglob("*"):
        if p.is_symlink():
            found.append(f"link {p}")
        elif p.is_file() and SECRET in p.read_bytes():
            found.append(str(p))
    return found


_SWAPPER = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
target, other, stop = (os.fsencode(a) for a in sys.argv[1:])
swaps = 0
while not os.path.exists(stop):
    if libc.renameat2(-100, target, -100, other, 2) != 0:  # AT_FDCWD, RENAME_EXCHANGE: atomic, never missing
        raise OSError(ctypes.get_errno(), "renameat2")
    swaps += 1
print(swaps)
"""


class _Swapper:
    """A process that swaps ``target`` again and again, atomically (``renameat2(RENAME_EXCHANGE)``), between a
    real file (or folder) and a symbolic link to ``secret``: what a user who can write the shared data folder
    can do."""

    def __init__(self, target: Path, secret: Path) -> None:
        link = target.with_name(target.name + ".link")
        link.symlink_to(secret)
        self.stop = target.with_name(".stop")
        self.proc = subprocess.Popen([sys.executable, "-c", _SWAPPER, str(target), str(link), str(self.stop)],
                                     stdout=subprocess.PIPE, text=True)

    def finish(self) -> int:
        """Stop swapping; the number of swaps done."""
        self.stop.touch()
        out, _ = self.proc.communicate(timeout=30)
        return int(out or 0)


@pytest.mark.parametrize("swapped", ["external-data", "model", "folder", "hard-linked-external-data"])
def test_a_file_swapped_for_a_link_to_a_secret_never_reaches_the_workspace(wb, tmp_path, monkeypatch, swapped):
    """A user who can write the shared data folder swaps the external-data file (or the model, or its folder)
    between a real file and a symbolic link to a secret, in a loop, while models are opened by path on the
    server: every file is opened once without following links and copied from that descriptor, so each open
    either stores the real model or is refused; the secret never lands in the workspace."""
    from workbench import model as model_mod

    if swapped == "hard-linked-external-data":  # big weights are hard-linked, not copied: the link is checked
        monkeypatch.setattr(model_mod, "LINK_AT_LEAST", 1)
    root = tmp_path / "shared"
    monkeypatch.setenv("WORKBENCH_DATA_ROOTS", str(root))
    src = onnx_models.with_external_data(root / "lab")
    weights = root / "lab" / "weights.bin"
    private = tmp_path / "private"
    private.mkdir()
    if swapped == "model":
        secret_model = onnx_models.static_mlp()
        secret_model.doc_string = SECRET.decode()
        onnx.save(secret_model, str(private / "secret.onnx"))
        target, secret = src, private / "secret.onnx"
    elif swapped == "folder":
        onnx_models.with_external_data(private / "lab")
        (private / "lab" / "weights.bin").write_bytes(_secret_bytes(weights.stat().st_size))
        target, secret = root / "lab", private / "lab"
    else:
        (private / "key").write_bytes(_secret_bytes(weights.stat().st_size))  # same size: passes size checks
        target, secret = weights, private / "key"
    swapper = _Swapper(target, secret)
    stored, refusals, deadline = 0, [], time.monotonic() + 6
    try:
        for _ in range(400):
            try:
                wb.import_server_model(str(src))
                stored += 1
            except ModelError as err:
                refusals.append(err.message)
            if time.monotonic() > deadline:
                break
    finally:
        swaps = swapper.finish()
    assert swaps > 50, "the swap loop barely ran: the test proved nothing"
    assert _workspace_holds_the_secret(wb.ws) == []
    assert stored and refusals, (stored, refusals[:3])  # both outcomes happened: the race was really run
    assert all(any(words in m for words in ("outside", "changed while", "not a regular file", "does not exist",
                                            "is missing", "could not be resolved")) for m in refusals), set(refusals)
    assert [m.digest for m in wb.models()] == [wb.models()[0].digest]  # only the real model was stored
    assert not any(wb.ws.tmp_dir.iterdir())


# ------------------------------------------------------------------------ Markdown from a model's strings

BEACON_PORT = 9  # nothing listens there; the test checks what the page would make a browser fetch
def beacon_text(port: int = BEACON_PORT) -> str:
    return (f"![x](http://127.0.0.1:{port}/beacon.png) [click](http://127.0.0.1:{port}/c) "
            f"www.example.com :red[red] $x^2$ <img src=http://127.0.0.1:{port}/i.png>")


BEACON = beacon_text()
_PLAIN_OPTIONS = {"selectbox", "multiselect"}
_NOT_MARKDOWN = {"plotly_chart", "arrow_data_frame", "iframe", "html", "code", "text", "json", "graphviz_chart"}


def beacon_model(tag: str = "", port: int = BEACON_PORT) -> bytes:
    """A real model whose producer, doc string, tensor, node and metadata strings are Markdown that would
    fetch an image and draw links."""
    b = beacon_text(port) + tag
    # (input and output keep plain names: TensorRT-RTX refuses profiles for an input named like this one)
    g = helper.make_graph(
        [helper.make_node("Relu", ["x"], [f"mid {b}"], name=f"node {b}"),
         helper.make_node("Sigmoid", [f"mid {b}"], ["y"], name=f"sigmoid {b}")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], doc_string=b)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name=b, doc_string=b)
    helper.set_model_props(m, {"author": b})
    return m.SerializeToString()


def _strings(msg) -> Iterator[str]:
    for _field, value in msg.ListFields():
        items = value if isinstance(value, Iterable) and not isinstance(value, str | bytes) else [value]
        for item in items:
            if isinstance(item, str):
                yield item
            elif hasattr(item, "ListFields"):
                yield from _strings(item)


def _markdown_texts(at) -> list[str]:
    """Every string of every element Streamlit renders as Markdown (bodies, labels, values, help), payload-
    derived ones only."""
    found: list[str] = []

    def walk(node) -> None:
        if getattr(node, "type", None) not in _NOT_MARKDOWN and getattr(node, "proto", None) is not None:
            if node.type in _PLAIN_OPTIONS:  # options of these are plain text; their label and help are not
                found.extend(s for s in (node.proto.label, node.proto.help) if "127.0.0.1" in s)
            elif not hasattr(node, "children") or not node.children:
                found.extend(s for s in _strings(node.proto) if "127.0.0.1" in s or "example.com" in s)
            elif hasattr(node.proto, "ListFields"):  # a block's own label (expander, tab)
                found.extend(s for f, s in node.proto.ListFields() if isinstance(s, str) and "127.0.0.1" in s)
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return found


def _live_markdown(text: str) -> list[str]:
    """What in ``text`` Markdown would turn into a link, an image, HTML, a directive or math."""
    live = []
    if re.search(r"(?<!\\)[\[\]<>$]", text):
        live.append("unescaped [ ] < > or $")
    if re.search(r"(?<!\\)://", text) or "www." in text.lower():
        live.append("an address GitHub Markdown links by itself")
    return live


def test_markdown_in_a_models_strings_is_shown_as_text_on_every_page(app_ws, tmp_path, monkeypatch):
    """A model whose producer, doc string, metadata, input, output and node names are Markdown images and
    links: the Model, Build, Engines and Fusion pages (layer names come from the node names) show them as
    text; an error message quoting such a name too. Nothing on a page would make the browser fetch or link."""
    from tests.conftest import open_page
    from workbench import ui
    from workbench.spec import BuildSpec

    ref = app_ws.import_upload(beacon_model(), "beacon.onnx")
    job_id = app_ws.submit_build(ref, BuildSpec())
    job = app_ws.jobs.wait(job_id, timeout=300)
    assert job.status == "succeeded", job.error
    shown = []
    for page, state in [("model", {ui.MODEL_DIGEST: ref.digest}),
                        ("build", {ui.MODEL_DIGEST: ref.digest, ui.BUILD_JOB: job_id}),
                        ("engines", {ui.MODEL_DIGEST: ref.digest}),
                        ("fusion", {ui.MODEL_DIGEST: ref.digest, ui.FUSION_JOB: job_id})]:
        at = open_page(page, **state)
        assert not at.exception, [e.value for e in at.exception]
        if page == "fusion":  # pick the first layer: its name (from the node's) is shown as a heading
            at.session_state["fusion.table"] = {"selection": {"rows": [0], "columns": []}}
            at.run()
            assert len(at.subheader) == 1, "no layer shown"  # (TensorRT names the fused layer itself)
        texts = _markdown_texts(at)
        bad = {t: _live_markdown(t) for t in texts if _live_markdown(t)}
        assert not bad, (page, list(bad))
        shown += texts
    assert any(md(BEACON) in t for t in shown), "the model's strings were not shown at all: the test proved nothing"
    # An error naming a tensor: a model on the server with an absurd dim on an input named like the payload.
    root = tmp_path / "server"
    root.mkdir()
    monkeypatch.setenv("WORKBENCH_DATA_ROOTS", str(root))
    g = helper.make_graph([helper.make_node("Relu", [BEACON], ["y"])], "g",
                          [helper.make_tensor_value_info(BEACON, TensorProto.FLOAT, [2**31, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2**31, 4])])
    onnx.save(helper.make_model(g), str(root / "huge.onnx"))
    at = open_page("model")
    at.text_input(key="model.server_path").input(str(root / "huge.onnx")).run()
    at.button(key="model.open_server").click().run()
    assert at.error and md(BEACON) in at.error[0].value, [e.value for e in at.error]
    assert not {t: _live_markdown(t) for t in _markdown_texts(at) if _live_markdown(t)}


def test_a_link_in_an_op_type_is_drawn_as_text_in_the_charts(app_ws):
    """Plotly draws <a href> in labels as a live link: an op type (a custom op) named like one is shown as text
    in the Model page's op chart."""
    from tests.conftest import open_page
    from workbench import ui

    link = f'<a href="http://127.0.0.1:{BEACON_PORT}/c">click</a><span style="color:red">x</span>'
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["h"], name="relu"),
                           helper.make_node(link, ["h"], ["y"], name="custom", domain="evil.ops")], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("evil.ops", 1)])
    ref = app_ws.import_upload(model.SerializeToString(), "custom.onnx")
    at = open_page("model", **{ui.MODEL_DIGEST: ref.digest})
    assert not at.exception, [e.value for e in at.exception]
    specs = [c.proto.spec for c in at.get("plotly_chart")]
    assert specs and any("&lt;a href" in spec for spec in specs), "the op type is not in the chart"
    assert not any(re.search(r"<a\b|<span\b", spec) for spec in specs)
