"""Trust but verify: the build report says whether the engine really runs in the precision the user asked for."""

from __future__ import annotations

from pathlib import Path

from workbench.layers import parse_build_log
from workbench.precision_check import check_precision

GOLDEN = Path(__file__).parent / "golden"


def _layers(name: str):
    return parse_build_log((GOLDEN / name).read_text())


def test_int8_weights_only_is_not_called_an_int8_engine():
    layers = _layers("mlp_int8w.build.log")  # a real TensorRT-RTX build; command in mlp_int8w.cmd
    weight_only = [ly.name for ly in layers.layers if ly.onnx_nodes and "INT8" in ly.weight_precision
                   and "INT8" not in ly.precision]
    assert weight_only
    check = check_precision("int8", layers)
    assert not check["honoured"]
    assert check["layers_with_weights_in_precision"] == weight_only
    assert "weights only" in check["warnings"][0]


def test_a_real_int8_qdq_build_is_honoured_and_names_its_float_layers():
    layers = _layers("cnn_qdq_int8.build.log")
    check = check_precision("int8", layers)
    compute = [ly for ly in layers.layers if ly.onnx_nodes]
    assert check["honoured"]
    assert len(check["layers_in_precision"]) + len(check["layers_not_in_precision"]) \
        + len(check["layers_with_weights_in_precision"]) == len(compute)


def test_fp16_requested_on_an_fp32_engine_is_a_warning():
    check = check_precision("fp16", _layers("cnn_fp32.build.log"))
    assert not check["honoured"] and "no engine layer runs in FP16" in check["warnings"][0]


def test_an_fp16_build_whose_output_cast_is_fused_into_an_fp16_gemm_is_fully_fp16():
    layers = _layers("cnn_fp16.build.log")
    check = check_precision("fp16", layers)
    compute = [ly.name for ly in layers.layers if ly.onnx_nodes and not ly.is_conversion]
    assert check["honoured"] and check["warnings"] == []
    assert check["layers_in_precision"] == compute and check["layers_not_in_precision"] == []
    writer = next(ly for ly in layers.layers if ly.output_precision == "FP32" and ly.onnx_nodes
                  and not ly.is_conversion)  # the GEMM with the fused output Cast
    assert writer.name in check["layers_in_precision"]


def test_a_real_fp32_layer_in_an_fp16_build_is_named():
    """The golden build kept the Gemm head/fc in FP32: the check names the layer that reads Float and holds Float
    weights, though it writes Half, and only that one."""
    layers = _layers("cnn_fp16_fc_fp32.build.log")
    float_compute = [
        ly.name for ly in layers.layers if ly.onnx_nodes
        and {t.dtype for t in ly.inputs} == {t.dtype for t in ly.constants if t.shape != (1,)} == {"FP32"}
    ]
    assert float_compute
    check = check_precision("fp16", layers)
    assert check["honoured"]  # most of the engine is FP16 …
    assert [d["layer"] for d in check["layers_not_in_precision"]] == float_compute  # … but not this
    assert "head/fc" in check["layers_not_in_precision"][0]["onnx_nodes"]
    assert check["layers_not_in_precision"][0]["output_precision"] == "FP16"
    assert len(check["warnings"]) == 1 and float_compute[0] in check["warnings"][0]


def test_a_real_fp16_transformer_build_is_not_blamed_for_its_fp32_output_cast(session_wb):
    """A fresh TensorRT-RTX build: the Cast back to the FP32 output is a kernel of its own, which converts and
    computes nothing; it is listed as a conversion, not as an FP32 layer."""
    from workbench.layers import load_layers
    from workbench.samples import get_sample
    from workbench.spec import BuildSpec

    sample = get_sample("transformer_block")
    job = session_wb.jobs.wait(session_wb.submit_build(session_wb.import_path(sample.path), BuildSpec(
        precision="fp16", profiles=sample.profiles()[:1])), timeout=300)
    assert job.status == "succeeded", job.error
    layers = load_layers(session_wb.jobs.job_dir(job.id))
    out_name = next(t.name for t in layers.io_tensors if t.mode == "Output")
    writer = next(ly for ly in layers.layers if any(t.name == out_name for t in ly.outputs))
    check = job.result["precision_check"]
    assert check["warnings"] == [] and check["honoured"]
    if writer.is_conversion:  # its own Cast kernel: Half in, Float out, no weights
        assert {t.dtype for t in writer.inputs} == {"FP16"} and {t.dtype for t in writer.outputs} == {"FP32"}
        assert any(c.startswith(writer.name) for c in check["conversion_layers"])
    else:  # fused into the last compute kernel, which then computes in FP16 and writes FP32
        assert (writer.precision, writer.output_precision) == ("FP16", "FP32")
