"""The engine's layers, read from real TensorRT-RTX build logs and real engine-inspector JSON.

Golden logs in ``tests/golden`` were written by ``tests/golden/make_golden.py`` (the exact command of each build is
in the ``.cmd`` file beside it). Expected numbers are derived from the raw text or from TensorRT's own fields,
never typed in.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from tests.conftest import gpu_reason
from workbench.errors import BackendError, BackendUnavailable, WorkbenchError
from workbench.layers import (
    BUILD_LOG,
    COMPUTE_PRECISIONS,
    INSPECTOR,
    EngineLayers,
    inspect_plan,
    load_layers,
    normalize_dtype,
    parse_build_log,
    parse_inspector_json,
)

GOLDEN = Path(__file__).resolve().parent / "golden"
LOGS = sorted(GOLDEN.glob("*.build.log"))
DETAILED = [p for p in LOGS if "names_only" not in p.name]


def _read(name: str) -> str:
    return (GOLDEN / name).read_text()


def _listing_lines(text: str) -> list[str]:
    """The raw layer lines of the last detailed listing, found with plain string operations."""
    lines = text.split("\n")
    start = max(i for i, ln in enumerate(lines) if ln.endswith("] Layers:"))
    out = []
    for ln in lines[start + 1 :]:
        if ln.strip() == "I/O Tensors:" or (ln and not ln[0].isspace()):
            break
        if ln.strip().startswith("Name: ") and "LayerType: " in ln:
            out.append(ln.strip())
    return out


def test_golden_logs_and_their_commands_are_present():
    assert len(LOGS) >= 5
    for log in LOGS:
        cmd = log.with_name(log.name.replace(".build.log", ".cmd")).read_text()
        assert "polygraphy convert" in cmd and "POLYGRAPHY_USE_TENSORRT_RTX=1" in cmd


@pytest.mark.parametrize("log", DETAILED, ids=lambda p: p.stem)
def test_every_listed_layer_is_parsed_with_its_metadata(log):
    text = log.read_text()
    layers = parse_build_log(text)
    raw = _listing_lines(text)
    assert layers.source == BUILD_LOG and layers.detail == "detailed"
    assert len(layers.layers) == len(raw) and not layers.warnings
    for ly, line in zip(layers.layers, raw, strict=True):
        assert line.startswith(f"Name: {ly.name}, LayerType: {ly.type},")
        onnx_in_line = re.findall(r"\[ONNX Layer: ([^\]\x1f]*)\]", line)
        assert set(ly.onnx_nodes) == {re.sub(r" \[profile \d+\]$", "", n) for n in onnx_in_line}
        assert len(ly.outputs) == line.split("Outputs: [", 1)[1].split("], TacticName")[0].count("Name: ")


@pytest.mark.parametrize("log", DETAILED, ids=lambda p: p.stem)
def test_layers_survive_a_json_round_trip_and_flatten_to_rows(log):
    layers = parse_build_log(log.read_text())
    again = EngineLayers.from_json(layers.to_json())
    assert again == layers
    rows = layers.to_rows()
    assert [r["name"] for r in rows] == [ly.name for ly in layers.layers]
    assert all(isinstance(v, str | int) for r in rows for v in r.values())


def test_fp32_cnn_layers_all_compute_in_fp32_and_io_tensors_carry_the_profile():
    layers = parse_build_log(_read("cnn_fp32.build.log"))
    with_tensors = [ly for ly in layers.layers if ly.outputs]
    assert with_tensors and all(ly.precision == "FP32" for ly in with_tensors)
    cmd = _read("cnn_fp32.cmd")
    x = next(t for t in layers.io_tensors if t.mode == "Input")
    for which, shape in (("min", x.profiles[0].min), ("opt", x.profiles[0].opt), ("max", x.profiles[0].max)):
        assert f"--trt-{which}-shapes 'x:[{','.join(map(str, shape))}]'" in cmd
    shapeless = [ly for ly in layers.layers if not ly.inputs and not ly.outputs]
    assert all(ly.precision == "unknown" for ly in shapeless)


def _weights(ly) -> set[str]:
    """Datatypes of a layer's non-scalar constants (weights, per-channel parameters), read from the listing."""
    return {t.dtype for t in ly.constants if len(t.shape) and any(d > 1 for d in t.shape)}


def test_fp16_cnn_computes_in_half_even_where_it_writes_the_fp32_output():
    """keep_io_types puts a Cast to FP32 before the engine output; TensorRT fuses it into the FP16 GEMM, which
    then reads Half, holds Half weights and writes Float. It computes in FP16; it writes FP32."""
    layers = parse_build_log(_read("cnn_fp16.build.log"))
    out_name = next(t.name for t in layers.io_tensors if t.mode == "Output")
    out_dtype = next(t.dtype for t in layers.io_tensors if t.mode == "Output")
    half = normalize_dtype("Half")
    writer = next(ly for ly in layers.layers if any(t.name == out_name for t in ly.outputs))
    assert {t.dtype for t in writer.inputs} == _weights(writer) == {half} != {out_dtype}
    assert (writer.precision, writer.output_precision) == (half, out_dtype)
    assert writer.precision_label == f"{half} · writes {out_dtype}"
    others = [ly for ly in layers.layers if ly.outputs and ly is not writer]
    assert others and all({t.dtype for t in ly.outputs} == {half} for ly in others)
    assert {ly.precision for ly in others} == {half}


def test_an_fp32_layer_in_an_fp16_build_is_fp32_even_though_it_writes_half():
    """The Gemm kept in FP32 (node_block_list): TensorRT fuses the Cast back to FP16 into it, so it reads Float,
    holds Float weights and writes Half. Labelled by its output it would pass for FP16."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(GOLDEN / "cnn_fp16_fc_fp32.onnx"))
    fc = next(n for n in model.graph.node if n.name == "head/fc")
    inits = {i.name: numpy_helper.to_array(i).dtype.name for i in model.graph.initializer}
    assert inits[fc.input[2]] == "float32"  # the model really keeps this node in FP32
    layers = parse_build_log(_read("cnn_fp16_fc_fp32.build.log"))
    single, half = normalize_dtype("Float"), normalize_dtype("Half")
    gemm = next(ly for ly in layers.layers if "head/fc" in ly.onnx_nodes)
    assert {t.dtype for t in gemm.inputs} == _weights(gemm) == {single}
    assert {t.dtype for t in gemm.outputs} == {half}
    assert (gemm.precision, gemm.output_precision) == (single, half)
    # … and the kernel before it casts its FP16 result to FP32 for it: FP16 compute, FP32 output.
    feeder = next(ly for ly in layers.layers if any(t.name == gemm.inputs[0].name for t in ly.outputs))
    assert {t.dtype for t in feeder.inputs} == _weights(feeder) == {half}
    assert (feeder.precision, feeder.output_precision) == (half, single)


@pytest.mark.parametrize("log", DETAILED, ids=lambda p: p.stem)
def test_a_layer_computes_in_the_type_its_activations_and_weights_share(log):
    """Float activations and float weights of one type: the layer computes in it, whatever float type it writes.
    (A layer that writes INT8 is a quantize step and keeps its INT8 label.)"""
    layers = parse_build_log(log.read_text())
    for ly in layers.layers:
        ins = {t.dtype for t in ly.inputs}
        outs = {t.dtype for t in ly.outputs}
        outs = {d for d in outs if d in COMPUTE_PRECISIONS} or outs  # a BOOL/INT64 beside FP32 is not arithmetic
        assert ly.output_precision == (outs.pop() if len(outs) == 1 else ("mixed" if outs else ""))
        floats = {"FP32", "FP16", "BF16"}
        if len(ins) == 1 and ins == _weights(ly) and ins <= floats and {t.dtype for t in ly.outputs} <= floats:
            assert ly.precision == next(iter(ins)), ly.name


def test_layers_json_written_before_output_precision_is_attributed_again():
    layers = parse_build_log(_read("cnn_fp16.build.log"))
    old = layers.to_dict()
    for d in old["layers"]:
        d.pop("output_precision")
        d["precision"] = "FP32" if d["outputs"] and d["outputs"][0]["dtype"] == "FP32" else d["precision"]
    assert EngineLayers.from_dict(old).layers == layers.layers


def test_qdq_convolutions_are_int8_even_though_they_write_dequantized_float():
    layers = parse_build_log(_read("cnn_qdq_int8.build.log"))
    convs = [
        ly
        for ly in layers.layers
        if any(n.endswith("/conv") for n in ly.onnx_nodes)
        and ly.inputs
        and all(t.dtype == "INT8" for t in ly.inputs)
    ]
    assert convs, "the listing has convolutions reading INT8 tensors"
    assert all(ly.precision == "INT8" for ly in convs)
    assert any(t.dtype == "FP32" for ly in convs for t in ly.outputs)


def test_weight_only_int8_gemm_is_reported_as_float_compute_with_int8_weights():
    layers = parse_build_log(_read("mlp_int8w.build.log"))
    gemm = next(ly for ly in layers.layers if any(t.dtype == "INT8" for t in ly.constants))
    assert gemm.weight_precision == "INT8"
    assert gemm.precision == {t.dtype for t in gemm.inputs}.pop() == "FP32"
    assert gemm.precision_label == "FP32 · INT8 weights"
    assert "node_of_y" in gemm.onnx_nodes  # the unnamed Relu, named the way TensorRT's parser names it


def test_two_profiles_are_two_copies_of_the_same_network():
    text = _read("transformer_fp32.build.log")
    layers = parse_build_log(text)
    x = next(t for t in layers.io_tensors if t.name == "x")
    assert layers.num_profiles == len(x.profiles) == _read("transformer_fp32.cmd").count("--trt-min-shapes")
    p0, p1 = layers.for_profile(0), layers.for_profile(1)
    assert len(p0) + len(p1) == len(layers.layers) and len(p0) == len(p1)
    assert [ly.onnx_nodes for ly in p0] == [ly.onnx_nodes for ly in p1]
    assert all("[profile" not in n for ly in p1 for n in ly.onnx_nodes)


def test_layer_names_only_listing_gives_the_foreign_node_without_metadata():
    text = _read("cnn_fp32_names_only.build.log")
    layers = parse_build_log(text)
    assert layers.detail == "layer_names_only"
    raw = [ln.strip() for ln in text.split("\n") if ln.strip().startswith("Layer(")]
    assert len(layers.layers) == len(raw)
    ly = layers.layers[0]
    assert ly.name.startswith("ForeignNode[") and ly.onnx_nodes == ()
    assert [t.name for t in ly.outputs] == [t.split(" (")[0] for t in raw[0].split(" -> ")[1:]]


def test_log_line_prefixes_of_other_loggers_are_tolerated():
    """trtexec / TensorRT's default logger prefix lines with a timestamp and [TRT]."""
    text = _read("cnn_fp32.build.log")
    stamped = re.sub(r"^\[X\] ", "[11/25/2026-09:08:00] [TRT] [V] ", text, flags=re.M)
    assert parse_build_log(stamped).layers == parse_build_log(text).layers


def test_a_logger_that_prefixes_every_line_of_the_listing_is_tolerated():
    text = _read("transformer_fp32.build.log")
    prefixed = re.sub(r"^    ", "[V]     ", text, flags=re.M)
    expected = parse_build_log(text)
    got = parse_build_log(prefixed)
    assert got.layers == expected.layers and got.io_tensors == expected.io_tensors
    assert got.engine_metadata == expected.engine_metadata


def test_a_truncated_log_keeps_what_it_has_and_never_raises():
    text = _read("cnn_fp32.build.log")
    full = parse_build_log(text)
    cut = text.index(full.layers[3].name + ", LayerType") + 40  # inside the fourth layer's line
    part = parse_build_log(text[:cut])
    assert [ly.name for ly in part.layers[:3]] == [ly.name for ly in full.layers[:3]]
    assert len(part.layers) <= 4 and part.raw and not part.io_tensors


def test_garbage_inside_the_listing_is_kept_in_raw_and_reported():
    text = _read("cnn_fp32.build.log")
    first = _listing_lines(text)[1]
    broken = text.replace(first, first + "\n    ¿what is this? [[[ {{", 1)
    layers = parse_build_log(broken)
    assert len(layers.layers) == len(parse_build_log(text).layers)
    assert "what is this" in layers.raw
    assert any("not understood" in w for w in layers.warnings)


def test_random_mutations_of_a_real_log_never_raise_anything_but_a_backend_error():
    text = _read("transformer_fp32.build.log")
    rng = random.Random(1234)
    start = text.index("] Layers:")
    for _ in range(60):
        chars = list(text[start - 3 :])
        for _ in range(rng.randint(1, 40)):
            i = rng.randrange(len(chars))
            chars[i] = rng.choice("[]{},:\x1f \n-x0")
        try:
            parse_build_log("".join(chars))
        except BackendError:
            pass


@pytest.mark.parametrize("text", ["", "[I] Finished engine building in 0.1 seconds\n", "Layers"])
def test_a_log_without_layer_listing_is_a_clear_backend_error(text):
    with pytest.raises(BackendError) as err:
        parse_build_log(text)
    assert "layer listing" in err.value.message and "DETAILED" in (err.value.hint or "")


# ---------------------------------------------------------------------------------------------- inspector JSON
def test_trex_inspector_json_is_read_layer_by_layer():
    text = _read("trex_mobilenet_qat_excerpt.graph.json")
    raw = json.loads(text)["Layers"]
    layers = parse_inspector_json(text)
    assert layers.source == INSPECTOR and len(layers.layers) == len(raw)
    for ly, d in zip(layers.layers, raw, strict=True):
        assert (ly.name, ly.type) == (d["Name"], d["LayerType"])
        assert ly.origin == d.get("Origin", "")
        assert [t.shape for t in ly.outputs] == [tuple(o["Dimensions"]) for o in d["Outputs"]]
        if all("Int8" in i["Format/Datatype"] for i in d["Inputs"]):
            assert ly.precision == "INT8"
        elif d.get("Weights", {}).get("Type") == "Int8" and ly.precision != "INT8":
            assert ly.weight_precision == "INT8"
    assert EngineLayers.from_json(layers.to_json()) == layers


def test_inspector_json_that_is_not_layer_information_is_a_clear_error(tmp_path):
    with pytest.raises(WorkbenchError, match="Layers"):
        parse_inspector_json('{"Bindings": []}')
    with pytest.raises(WorkbenchError, match="not valid JSON"):
        parse_inspector_json("{nope")


# ---------------------------------------------------------------------------------------------- real builds
def test_a_real_build_saves_its_layers_next_to_the_plan(session_wb, cnn_build):
    job_dir = session_wb.jobs.job_dir(cnn_build)
    saved = load_layers(job_dir / "layers.json")
    assert saved == parse_build_log((job_dir / "job.log").read_text())
    assert load_layers(job_dir) == saved
    import onnx

    from workbench.fusion import onnx_node_name

    model = onnx.load(session_wb.jobs.get(cnn_build).payload["model_path"], load_external_data=False)
    names = {onnx_node_name(n) for n in model.graph.node}
    referenced = {n for ly in saved.layers for n in ly.onnx_nodes}
    assert referenced and referenced <= names


def test_a_plan_cannot_be_inspected_without_a_gpu_and_the_error_points_to_the_saved_listing(
    session_wb, cnn_build
):
    reason = gpu_reason()
    if reason is None:
        pytest.skip("this machine can deserialize engines; the GPU test covers the inspector")
    plan = session_wb.jobs.job_dir(cnn_build) / "engine.plan"
    with pytest.raises(BackendUnavailable) as err:
        inspect_plan(plan)
    assert "engine.plan" in err.value.message and "layers.json" in (err.value.hint or "")


@pytest.mark.gpu
def test_the_engine_inspector_reads_the_same_layers_as_the_build_log(session_wb, cnn_build):
    reason = gpu_reason()
    if reason:
        pytest.skip(reason)
    job_dir = session_wb.jobs.job_dir(cnn_build)
    inspected = inspect_plan(job_dir / "engine.plan", backend="tensorrt-rtx")
    listed = load_layers(job_dir)
    assert inspected.source == INSPECTOR
    assert {n for ly in inspected.layers for n in ly.onnx_nodes} == {
        n for ly in listed.layers for n in ly.onnx_nodes
    }


@pytest.mark.parametrize("log", DETAILED, ids=lambda p: p.name)
def test_a_layer_with_empty_metadata_keeps_its_own_fields(log):
    """TensorRT-RTX's shape kernels end their line with an empty ``Metadata:``; once the line's trailing space is
    gone that must not leak into the field before it."""
    for layer in parse_build_log(log.read_text()).layers:
        for key, value in layer.extra:
            assert "Metadata" not in value, (layer.name, key, value)


def test_the_precision_summary_names_layers_without_tensors_as_shape_kernels():
    from workbench.precision_check import check_precision

    layers = parse_build_log(_read("cnn_fp32.build.log"))
    no_tensors = [ly for ly in layers.layers if not (ly.inputs or ly.outputs or ly.constants)]
    assert no_tensors and all(ly.type == "shape_call" for ly in no_tensors)
    summary = check_precision("fp32", layers)["summary"]
    assert f"no tensors listed (shape kernel) ×{len(no_tensors)}" in summary and "unknown" not in summary
    assert {ly.precision_label for ly in no_tensors} == {"no tensors listed (shape kernel)"}  # the table's label
