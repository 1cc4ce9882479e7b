"""Opening a model: the summary a user reads, and the specific errors hostile files get."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests import onnx_models
from tests.conftest import REPO
from workbench.errors import ModelError
from workbench.model import get_model, import_model, list_models, safe_filename, summarize


def test_summary_names_inputs_outputs_and_marks_dynamic_dims(models_dir):
    s = summarize(models_dir / "tiny_cnn.onnx")
    model = onnx.load(str(models_dir / "tiny_cnn.onnx"))
    assert [t.name for t in s.inputs] == [i.name for i in model.graph.input]
    assert s.inputs[0].shape == ("N", 3, 16, 16) and s.inputs[0].dynamic_dims == (0,)
    assert s.outputs[0].dtype == "float32"
    assert s.node_count == len(model.graph.node)
    assert sum(s.op_histogram.values()) == len(model.graph.node)
    expected_params = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
    assert s.parameter_count == expected_params
    assert s.initializer_bytes == 4 * expected_params
    assert s.opsets == {"ai.onnx": 17}
    assert any("'x' is dynamic in dim 0 (N)" in w for w in s.warnings)


def test_custom_domain_ops_are_flagged(models_dir):
    s = summarize(models_dir / "custom_op.onnx")
    assert s.custom_domains == ("com.example",)
    assert any("com.example" in w and "FancyActivation" in w for w in s.warnings)


def test_external_data_is_checked_not_loaded(tmp_path):
    path = onnx_models.with_external_data(tmp_path / "m")
    s = summarize(path)
    assert s.external_files == ("weights.bin",)
    assert s.external_data_bytes == os.path.getsize(tmp_path / "m" / "weights.bin")


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"", r"empty \(0 bytes\)"),
        (b"hello, this is not a model\n", "looks like a text file"),
        (b"\x08\x07\x12\x04\xff\xff\xff\xff\xff\xff", "not a valid ONNX model"),
    ],
    ids=["empty", "text", "garbage"],
)
def test_bad_files_get_specific_errors(tmp_path, content, expected):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(content)
    with pytest.raises(ModelError, match=expected) as err:
        summarize(bad)
    assert "bad.onnx" in err.value.message


def test_truncated_model_is_refused(models_dir, tmp_path):
    data = (models_dir / "tiny_cnn.onnx").read_bytes()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="cut.onnx"):
        summarize(cut)


def _field(number: int, payload: bytes) -> bytes:
    """Protobuf wire format of a length-delimited field (protobuf itself refuses to build such a deep message)."""

    def varint(n: int) -> bytes:
        out = bytearray()
        while True:
            out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
            n >>= 7
            if not n:
                return bytes(out)

    return varint(number << 3 | 2) + varint(len(payload)) + payload


def test_deeply_nested_protobuf_is_refused_not_crashing(tmp_path):
    # An If whose then_branch holds an If ... 2000 levels deep: far beyond protobuf's recursion limit.
    graph = helper.make_graph([], "g", [], [helper.make_tensor_value_info("c", TensorProto.BOOL, [])])
    blob = graph.SerializeToString()
    for _ in range(2000):
        attr = _field(1, b"then_branch") + b"\xa0\x01\x05" + _field(6, blob)  # name, type=GRAPH, g
        node = _field(1, b"c") + _field(2, b"c") + _field(4, b"If") + _field(5, attr)
        blob = _field(1, node) + _field(2, b"g")
    model = helper.make_model(graph)
    path = tmp_path / "deep.onnx"
    path.write_bytes(model.SerializeToString().replace(_field(7, graph.SerializeToString()), _field(7, blob)))
    assert path.stat().st_size > 10_000
    with pytest.raises(ModelError, match="deep.onnx"):
        summarize(path)


@pytest.mark.parametrize("location", ["../../etc/passwd", "/etc/passwd", "sub/../../outside.bin"])
def test_external_data_outside_the_folder_is_refused(tmp_path, location):
    path = onnx_models.with_external_data(tmp_path / "m")
    model = onnx.load(str(path), load_external_data=False)
    for t in model.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = location
    onnx.save(model, str(path))
    with pytest.raises(ModelError, match="outside the model's folder"):
        summarize(path)


def test_external_data_shorter_than_declared_is_refused(tmp_path):
    path = onnx_models.with_external_data(tmp_path / "m")
    weights = tmp_path / "m" / "weights.bin"
    weights.write_bytes(weights.read_bytes()[:10])
    with pytest.raises(ModelError, match="shorter than declared"):
        summarize(path)


def test_external_data_pointing_at_a_device_is_refused(tmp_path):
    path = onnx_models.with_external_data(tmp_path / "m")
    (tmp_path / "m" / "weights.bin").unlink()
    os.symlink("/dev/zero", tmp_path / "m" / "weights.bin")
    with pytest.raises(ModelError, match="outside the model's folder|not a regular file"):
        summarize(path)


def test_absurd_dims_are_refused_with_the_tensor_name(tmp_path):
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2**31, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2**31, 4])])
    path = tmp_path / "huge.onnx"
    onnx.save(helper.make_model(g), str(path))
    with pytest.raises(ModelError, match="'x'.*2147483648"):
        summarize(path)


def test_import_is_content_addressed_and_idempotent(workspace, models_dir):
    data = (models_dir / "tiny_cnn.onnx").read_bytes()
    a = import_model(workspace, data, "tiny_cnn.onnx")
    b = import_model(workspace, (models_dir / "tiny_cnn.onnx"), "other name.onnx")
    assert a.digest == b.digest and a.path == b.path
    assert get_model(workspace, a.digest) == a
    assert list_models(workspace) == [a]
    assert not any(workspace.tmp_dir.iterdir()), "staging files are cleaned up"


def test_failed_import_leaves_nothing_behind(workspace):
    with pytest.raises(ModelError, match="x.onnx"):
        import_model(workspace, b"not a model at all", "x.onnx")
    assert list_models(workspace) == []
    assert not any(workspace.tmp_dir.iterdir())


def test_upload_limit_is_enforced_server_side(workspace, models_dir):
    data = (models_dir / "tiny_cnn.onnx").read_bytes()
    with pytest.raises(ModelError, match="upload limit"):
        import_model(workspace, data, "tiny_cnn.onnx", max_bytes=100)


def test_unknown_model_id_is_a_clear_error(workspace):
    with pytest.raises(ModelError, match="not a model id"):
        get_model(workspace, "../../etc")
    with pytest.raises(ModelError, match="not in this workspace"):
        get_model(workspace, "0" * 64)


@pytest.mark.parametrize("name", ["../../evil.onnx", "a/b\\c.onnx", "bad\x00\x1bname.onnx", ""])
def test_safe_filenames(name):
    safe = safe_filename(name)
    assert "/" not in safe and "\\" not in safe and ".." not in safe
    assert all(c.isprintable() for c in safe) and safe


def test_concurrent_uploads_of_the_same_model(workspace, models_dir):
    from concurrent.futures import ThreadPoolExecutor

    data = (models_dir / "tiny_cnn.onnx").read_bytes()
    with ThreadPoolExecutor(4) as pool:
        refs = list(pool.map(lambda i: import_model(workspace, data, f"copy{i}.onnx"), range(8)))
    assert len({r.digest for r in refs}) == 1
    assert len(list_models(workspace)) == 1
    assert json.loads((refs[0].path.parent / "meta.json").read_text())["digest"] == refs[0].digest


def test_resnet50_sized_model_summarizes(tmp_path):
    """~25M parameters in ~100 MB, like ResNet-50. How fast is measured by bench/open_model.py against Polygraphy,
    not here: a timed unit test only measures how busy the CI machine is."""
    rng = np.random.default_rng(0)
    inits, nodes, prev = [], [], "x"
    for i in range(50):
        w = rng.standard_normal((256, 256, 3, 3), dtype=np.float32) * 0.01 if i < 42 else np.zeros((256, 256, 1, 1), np.float32)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes.append(helper.make_node("Conv", [prev, f"w{i}"], [f"c{i}"], name=f"conv{i}", pads=[1, 1, 1, 1] if i < 42 else [0, 0, 0, 0]))
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"], name=f"relu{i}"))
        prev = f"r{i}"
    g = helper.make_graph(nodes, "big", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 256, 14, 14])],
                          [helper.make_tensor_value_info(prev, TensorProto.FLOAT, None)], inits)
    path = tmp_path / "big.onnx"
    onnx.save(helper.make_model(g), str(path))
    s = summarize(path)
    assert s.parameter_count > 24_000_000


def _weighty_model(path, mib: int = 24) -> None:
    """A static MLP-like model whose weights, inside the file, add up to about ``mib`` MiB."""
    rng = np.random.default_rng(3)
    side = int(((mib << 20) / 4) ** 0.5)
    w = numpy_helper.from_array(rng.standard_normal((side, side), dtype=np.float32), "w")
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="fc")], "weighty",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, side])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, side])], [w])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def _traced_peak(fn):
    """(result, peak bytes Python allocated while ``fn`` ran): reading a model with onnx.load allocates its
    whole file as one bytes object, so a re-upload that parsed would show the model's size here."""
    import tracemalloc

    tracemalloc.start()
    try:
        result = fn()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("how", ["stream", "bytes", "path"])
def test_uploading_the_same_model_again_costs_one_hash_and_no_parse(workspace, tmp_path, how):
    import io

    path = tmp_path / "weighty.onnx"
    _weighty_model(path)
    size = path.stat().st_size
    first = import_model(workspace, path.read_bytes(), "weighty.onnx")
    stored = first.path.parent / "summary.json"
    before = (stored.stat().st_ino, stored.stat().st_mtime_ns)
    data = path.read_bytes()
    source = {"stream": lambda: io.BytesIO(data), "bytes": lambda: data, "path": lambda: path}[how]()
    again, peak = _traced_peak(lambda: import_model(workspace, source, "renamed.onnx", max_bytes=1 << 40))
    assert again == first
    assert peak < size / 4, f"{peak / 2**20:.1f} MiB allocated for a {size / 2**20:.1f} MiB model: it was parsed"
    assert (stored.stat().st_ino, stored.stat().st_mtime_ns) == before, "the stored summary was rewritten"
    assert not any(workspace.tmp_dir.iterdir())
    assert sorted(p.name for p in first.path.parent.iterdir()) == ["meta.json", "summary.json", "weighty.onnx"]


def test_a_new_model_is_still_parsed_and_validated_after_the_hash(workspace, models_dir, tmp_path):
    import_model(workspace, (models_dir / "tiny_cnn.onnx").read_bytes(), "tiny_cnn.onnx")
    cut = (models_dir / "static_mlp.onnx").read_bytes()
    with pytest.raises(ModelError, match="mlp.onnx"):
        import_model(workspace, cut[: len(cut) // 2], "mlp.onnx")
    assert len(list_models(workspace)) == 1 and not any(workspace.tmp_dir.iterdir())


def test_a_model_folder_removed_meanwhile_is_left_out_of_the_list(workspace, models_dir):
    a = import_model(workspace, (models_dir / "tiny_cnn.onnx").read_bytes(), "a.onnx")
    b = import_model(workspace, (models_dir / "static_mlp.onnx").read_bytes(), "b.onnx")
    b.path.unlink()  # another session deleting b: its meta.json is still there, its model file is not
    assert list_models(workspace) == [a]
    import shutil

    shutil.rmtree(a.path.parent)
    assert list_models(workspace) == []


_OPEN_BIG = """
import json, sys, time, tracemalloc
from pathlib import Path
from workbench.service import Workbench

wb = Workbench.open(sys.argv[1])
tracemalloc.start()
t = time.perf_counter()
ref = wb.import_path(Path(sys.argv[2]))
s = wb.summary(ref)
seconds = time.perf_counter() - t
# VmHWM: this process's own peak RSS (ru_maxrss would carry the forking parent's over exec)
hwm = int(next(line for line in open("/proc/self/status") if line.startswith("VmHWM:")).split()[1])
print(json.dumps({"external": s.external_data_bytes, "files": s.external_files, "params": s.parameter_count,
                  "stored": str(ref.path), "seconds": seconds, "traced_peak": tracemalloc.get_traced_memory()[1],
                  "rss_kib": hwm}))
"""


def test_a_model_with_over_2_gib_of_external_data_opens_without_loading_its_weights(tmp_path):
    """Issue 2: import (by path, as the CLI does) and summary of a 2.05 GiB-weights model, in a fresh process:
    what Python allocates and the process's peak RSS stay a small fraction of the weights; the weights are
    hard-linked into the workspace (same file system), not copied."""
    path = onnx_models.big_external_model(tmp_path / "src")
    weights = os.stat(tmp_path / "src" / "weights.bin")
    out = subprocess.run([sys.executable, "-c", _OPEN_BIG, str(tmp_path / "ws"), str(path)], cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout)
    assert r["external"] == weights.st_size > 2**31 and r["files"] == ["weights.bin"]
    assert r["params"] == weights.st_size // 4
    assert r["traced_peak"] < 32 << 20, r
    assert r["rss_kib"] * 1024 < weights.st_size / 4, r  # the interpreter and onnx included
    stored = os.stat(os.path.join(os.path.dirname(r["stored"]), "weights.bin"))
    assert (stored.st_dev, stored.st_ino) == (weights.st_dev, weights.st_ino), "the weights were copied"


def _cli(*args: str, home) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "workbench.cli", "--workspace", str(home), *args], cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=300)


def test_the_parser_check_names_the_custom_op_node_and_the_page_and_the_cli_say_the_same(wb, models_dir):
    from workbench.backends import backend_info

    if not backend_info("tensorrt-rtx").installed:
        pytest.skip("TensorRT-RTX is not installed")
    model = models_dir / "custom_op.onnx"
    ref = wb.import_path(model)
    result, job_id = wb.parse_check(ref, "tensorrt-rtx")
    assert result is None and job_id
    job = wb.jobs.wait(job_id, timeout=180)
    assert job.status == "succeeded", (job.error, wb.jobs.read_log(job_id)[0][-2000:])
    result, none = wb.parse_check(ref, "tensorrt-rtx")
    assert none is None and result is not None and not result["ok"]
    assert [(i["node"], i["op"]) for i in result["issues"]] == [("my_fancy_node", "FancyActivation")]
    assert "Plugin not found" in result["issues"][0]["message"]

    out = _cli("inspect", str(model), "--json", home=wb.ws.root)
    assert out.returncode == 0, out.stderr[-2000:]
    doc = json.loads(out.stdout)  # stdout is the JSON alone: the backend's log does not leak into it
    assert doc["parser"] == result and doc["node_count"] == 2
    text = _cli("inspect", str(model), home=wb.ws.root)
    assert "rejects 1 node(s)" in text.stdout and "node 'my_fancy_node' (FancyActivation)" in text.stdout

    ok = json.loads(_cli("inspect", str(models_dir / "tiny_cnn.onnx"), "--json", home=wb.ws.root).stdout)
    assert ok["parser"]["ok"] is True and ok["parser"]["issues"] == [] and ok["parser"]["network_layers"] > 0
    skipped = json.loads(_cli("inspect", str(model), "--json", "--no-parse", home=wb.ws.root).stdout)
    assert skipped["parser"] is None and skipped["parser_skipped"] == "--no-parse"


def test_the_parser_tab_shows_the_rejected_node_and_offers_a_new_check_after_a_failed_one(app_ws, models_dir):
    from tests.conftest import open_page
    from workbench import ui
    from workbench.backends import backend_info

    if not backend_info("tensorrt-rtx").installed:
        pytest.skip("TensorRT-RTX is not installed")
    ref = app_ws.import_path(models_dir / "custom_op.onnx")
    at = open_page("model", 60, **{ui.MODEL_DIGEST: ref.digest})  # the Parser tab queues the check
    assert not at.exception, [e.value for e in at.exception]
    (job,) = app_ws.jobs_of("parse", ref)
    assert app_ws.jobs.wait(job.id, timeout=180).status == "succeeded"
    at.run()
    assert any("rejects 1 node(s)" in e.value for e in at.error), [e.value for e in at.error]
    table = next(df.value for df in at.dataframe if "node" in df.value.columns)
    assert table[["node", "op"]].values.tolist() == [["my_fancy_node", "FancyActivation"]]
    # The check's worker died, and its cache is gone: the tab says why and offers another check.
    (ref.path.parent / "parse-tensorrt-rtx.json").unlink()
    job_dir = app_ws.jobs.job_dir(job.id)
    state = json.loads((job_dir / "job.json").read_text())
    state.update(status="failed", error="The worker process died (killed by signal 9) before finishing.", result={})
    (job_dir / "job.json").write_text(json.dumps(state))
    at.run()
    assert any("killed by signal 9" in e.value for e in at.error), [e.value for e in at.error]
    at.button(key="model.parse_retry.tensorrt-rtx").click().run()
    assert not at.exception, [e.value for e in at.exception]
    again = [j for j in app_ws.jobs_of("parse", ref) if j.id != job.id]
    assert len(again) == 1 and app_ws.jobs.wait(again[0].id, timeout=180).status == "succeeded"
    at.run()
    assert any("rejects 1 node(s)" in e.value for e in at.error)


def test_a_model_on_the_server_opens_by_path_below_the_data_folders_only(wb, tmp_path, monkeypatch):
    """Models over the upload limit live on the lab server already: they open by path, but only below
    WORKBENCH_DATA_ROOTS (links resolved), and only .onnx files."""
    root = tmp_path / "models-on-server"
    monkeypatch.setenv("WORKBENCH_DATA_ROOTS", str(root))
    src = onnx_models.with_external_data(root / "mlp")
    ref = wb.import_server_model(str(src))
    assert ref.path.is_file() and ref.path.parent.parent == wb.ws.models_dir
    assert summarize(ref.path).external_files == ("weights.bin",)
    assert wb.import_server_model("mlp/external.onnx").digest == ref.digest  # relative: below the first root
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    onnx.save(onnx_models.static_mlp(), str(outside / "m.onnx"))
    (root / "sneaky.onnx").symlink_to(outside / "m.onnx")
    for path, words in [(str(outside / "m.onnx"), "outside the folders allowed for models on the server"),
                        (str(root / "mlp" / ".." / ".." / "elsewhere" / "m.onnx"), "outside the folders allowed"),
                        (str(root / "sneaky.onnx"), "(through a symbolic link) outside"),
                        ("/etc/passwd", "outside the folders allowed"),
                        (str(root / "mlp" / "weights.bin"), "is not an .onnx file"),
                        (str(root / "missing.onnx"), "does not exist"),
                        (str(root), "is not a model file"), ("", "No models on the server given")]:
        with pytest.raises(ModelError) as err:
            wb.import_server_model(path)
        assert words in err.value.message, (path, err.value.message)
    assert [m.digest for m in wb.models()] == [ref.digest]


def test_the_model_page_opens_a_model_on_the_server(app_ws, tmp_path, monkeypatch):
    from tests.conftest import open_page
    from workbench import ui

    root = tmp_path / "server"
    monkeypatch.setenv("WORKBENCH_DATA_ROOTS", str(root))
    src = onnx_models.with_external_data(root / "big")
    at = open_page("model")
    at.text_input(key="model.server_path").input("/etc/passwd").run()
    at.button(key="model.open_server").click().run()
    assert not at.exception and at.error and "outside the folders allowed" in at.error[0].value
    assert ui.MODEL_DIGEST not in at.session_state
    at.text_input(key="model.server_path").input(str(src)).run()
    at.button(key="model.open_server").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state[ui.MODEL_DIGEST] == app_ws.models()[0].digest
    assert at.subheader[0].value == "external.onnx"


# ---------------------------------------------------------------------------------------------- models users bring


@pytest.fixture(scope="module")
def intake_dir(tmp_path_factory):
    return onnx_models.write_intake(tmp_path_factory.mktemp("intake"))


def test_a_minus_one_dim_from_an_older_exporter_is_dynamic_with_a_warning(workspace, intake_dir):
    # Paddle2ONNX / Caffe2-era exports write dim_value -1 for "dynamic"; this used to be refused outright.
    ref = import_model(workspace, intake_dir / "neg_dim.onnx", "neg_dim.onnx")
    s = summarize(ref.path)
    assert s.inputs[0].shape == (None, 3, 16, 16) and s.inputs[0].dynamic_dims == (0,)
    assert s.outputs[0].shape == (None, 5) and s.producer == "PaddlePaddle 2.4"
    assert any("'x' declares dimension 0 = -1" in w and "treated as dynamic" in w for w in s.warnings)
    assert any("'softmax_0.tmp_0' declares dimension 0 = -1" in w for w in s.warnings)
    from workbench.calibration_data import model_inputs  # what calibration and comparison data are shaped by

    assert model_inputs(ref.path)[0].shape == (None, 3, 16, 16)


def test_dims_sharing_one_symbolic_name_are_flagged(intake_dir):
    s = summarize(intake_dir / "shared_sym_dims.onnx")
    assert any("Input 'image' dims 2 and 3 share the symbolic name 'S'" in w and "equal" in w for w in s.warnings)
    # batch and sequence shared by several inputs is the usual meaning: no warning (the profile check still holds)
    assert not any("share" in w for w in summarize(intake_dir / "shared_batch_seq.onnx").warnings)


def test_weights_in_constant_nodes_count_as_parameters_subgraphs_included(intake_dir):
    s = summarize(intake_dir / "constant_weights.onnx")
    assert s.parameter_count == 108 + 4 + 1 + 4  # conv weight, bias, the If's flag, the then-branch's scale
    assert s.initializer_bytes == 4 * (108 + 4 + 4) + 1
    # a real export: conv weights and biases as Constant nodes inside both If branches (2 x (216 + 8 + 288))
    assert summarize(intake_dir / "if_conv.onnx").parameter_count == 2 * (216 + 8 + 288) + 1  # + initializer 'zero'


def test_an_explicitly_quantized_model_is_detected_at_intake(intake_dir, models_dir):
    q = summarize(intake_dir / "qdq_cnn.onnx").quantization
    model = onnx.load(str(intake_dir / "qdq_cnn.onnx"))
    n_q = sum(n.op_type == "QuantizeLinear" for n in model.graph.node)
    assert q is not None and q.quantize_nodes == n_q == q.pairs and q.types == ("INT8",)
    assert q.weights == 4 and q.precisions == ("int8",)  # three convolutions and the Gemm
    assert q.describe() == f"explicitly quantized (Q/DQ: {n_q} Quantize/Dequantize pairs, 4 quantized weights, INT8)"
    assert summarize(models_dir / "tiny_cnn.onnx").quantization is None


def test_a_summary_kept_by_an_older_version_is_made_again(workspace, intake_dir):
    from workbench.model import SUMMARY_FILE, stored_summary

    ref = import_model(workspace, intake_dir / "qdq_cnn.onnx", "qdq_cnn.onnx")
    cache = ref.path.parent / SUMMARY_FILE
    old = json.loads(cache.read_text())
    old.pop("quantization")
    old["parameter_count"] = 0
    cache.write_text(json.dumps(old))
    again = stored_summary(ref.path)
    assert again.quantization is not None and again.parameter_count > 0
    assert json.loads(cache.read_text())["quantization"]["pairs"] == again.quantization.pairs


def test_an_fp8_qdq_model_is_detected_as_fp8_and_builds_as_fp8_only(tmp_path):
    from workbench.errors import SpecError
    from workbench.spec import BuildSpec, validate_spec

    zp = helper.make_tensor("zp", TensorProto.FLOAT8E4M3FN, [], [0.0])
    g = helper.make_graph(
        [helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["q"], name="q"),
         helper.make_node("DequantizeLinear", ["q", "s", "zp"], ["y"], name="dq")],
        "fp8", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
        [numpy_helper.from_array(np.array(0.5, np.float32), "s"), zp])
    path = tmp_path / "fp8.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)]), str(path))
    s = summarize(path)
    assert s.quantization is not None and s.quantization.types == ("FP8",) and s.quantization.precisions == ("fp8",)
    assert "1 Quantize/Dequantize pair, FP8)" in s.quantization.describe()
    validate_spec(BuildSpec(precision="fp8"), s)
    with pytest.raises(SpecError, match="Choose FP8"):
        validate_spec(BuildSpec(precision="int8"), s)


def test_a_qdq_model_with_int32_biases_is_warned_about_before_the_parser_refuses_it(tmp_path, models_dir):
    """ONNX Runtime's quantize_static quantizes biases to INT32 by default; TensorRT's parser refuses INT32
    DequantizeLinear ("input has type Int32 but must have type FP8, FP4, Int4, Int8, or UInt8")."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter([{"x": np.random.default_rng(i).normal(size=(1, 3, 16, 16)).astype(np.float32)}
                             for i in range(4)])

        def get_next(self):
            return next(self._it, None)

    out = tmp_path / "qdq_int32_bias.onnx"
    quantize_static(str(models_dir / "tiny_cnn.onnx"), str(out), Reader(), quant_format=QuantFormat.QDQ)
    s = summarize(out)
    assert s.quantization is not None and "INT32" in s.quantization.types
    assert any("dequantizes INT32 tensors" in w and "QuantizeBias=False" in w for w in s.warnings)
