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
