"""A user builds FP16 and BF16 engines of the architectures that broke the old conversion: attention scaled by a
shape-derived FP32 scalar, convolutions inside an If, int32 token ids. Real conversions, real TensorRT-RTX builds,
and the engine's own layer listing says which layers really run in half precision."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests import onnx_models
from workbench.errors import ModelError
from workbench.spec import BuildSpec, profiles_from_args

pytestmark = pytest.mark.slow

_HALF = {"fp16": ("FP16", "Half"), "bf16": ("BF16", "BFloat16")}
FIXTURES = Path(__file__).parent / "fixtures"
_GPT2 = (["input_ids:1x1,attention_mask:1x1"], ["input_ids:2x16,attention_mask:2x16"],
         ["input_ids:4x64,attention_mask:4x64"])
# Real exports (tests/fixtures, from the zoo) the old conversion failed on: (profile min/opt/max or None for static
# shapes, the ONNX node the parser rejected then, which must now run in half precision).
_FIXTURES = {
    "vit_2block": ((["pixel_values:1x3x32x32"], ["pixel_values:2x3x32x32"], ["pixel_values:4x3x32x32"]),
                   "/encoder/layers/encoder_layer_0/self_attention/Div_1"),
    "gpt2_2layer": (_GPT2, "/inner/transformer/Add"),
    "if_conv": (None, "then/conv1"),
    "int_input_classifier": ((["bytes:1x256"], ["bytes:2x256"], ["bytes:4x256"]), "/onehot_dense/MatMul"),
}
# Small onnx.helper graphs of the same patterns (tests/onnx_models.py).
_MODELS = {
    "attention": (onnx_models.attention_scale_block, (["x:1x8x16"], ["x:2x8x16"], ["x:4x8x16"])),
    "conv_in_if": (onnx_models.conv_in_if, None),
}


def _save(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.onnx"
    onnx.save(_MODELS[name][0](), str(path))
    return path


def _spec(name: str, precision: str, **kw) -> BuildSpec:
    prof = _MODELS[name][1]
    return BuildSpec(precision=precision, profiles=profiles_from_args(*prof) if prof else (), **kw)


def _of(layers, node: str):
    """The engine layers that carry ``node`` (a subgraph node is listed as 'then/conv | then (then_branch) | …')."""
    return [ly for ly in layers if any(n.split(" | ")[0] == node for n in ly.onnx_nodes)]


def _build(wb, path: Path, spec: BuildSpec):
    from workbench.layers import load_layers

    job = wb.jobs.wait(wb.submit_build(wb.import_path(path), spec), timeout=300)
    log = wb.jobs.read_log(job.id)[0]
    assert job.status == "succeeded", (job.error, job.hint, log[-3000:])
    return job, log, load_layers(wb.jobs.artifact(job.id, "layers.json")).layers


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
@pytest.mark.parametrize("name", list(_FIXTURES))
def test_half_precision_builds_of_real_exports_run_the_rejected_node_in_half(wb, name, precision):
    label, datatype = _HALF[precision]
    path = FIXTURES / f"{name}.onnx"
    prof, node = _FIXTURES[name]
    job, log, layers = _build(wb, path, BuildSpec(precision=precision, profiles=profiles_from_args(*prof) if prof
                                                  else ()))
    assert datatype in log  # the builder's own listing
    mine = _of(layers, node)
    assert mine and all(ly.precision == label for ly in mine), (node, [(ly.name, ly.precision) for ly in mine])
    assert job.result["precision_check"]["honoured"]
    # checked before the build, and the checks are in the log
    assert "ONNX checker: valid." in log and "Type walk: every node's inputs agree" in log
    assert "ONNX Runtime:" in log
    # graph inputs and outputs keep their types: FP32 stays FP32, integer ids stay integer
    network = onnx.load(str(wb.jobs.artifact(job.id, "network.onnx")))
    original = onnx.load(str(path))
    assert [(i.name, i.type.tensor_type.elem_type) for i in [*network.graph.input, *network.graph.output]] == [
        (i.name, i.type.tensor_type.elem_type) for i in [*original.graph.input, *original.graph.output]]


def test_fp16_check_runs_the_network_once_in_onnx_runtime_beside_the_fp32_model(wb, tmp_path):
    import re

    job, log, _ = _build(wb, _save(tmp_path, "conv_in_if"), _spec("conv_in_if", "fp16"))
    line = next(ln for ln in log.splitlines() if "ONNX Runtime: the FP16 network ran once" in ln)
    assert "(x[1, 3, 8, 8]), outputs finite; against FP32: y cosine" in line
    assert float(re.search(r"cosine ([0-9.]+)", line).group(1)) > 0.999  # the same model, in half precision


def test_attention_scale_cast_is_retargeted_not_left_fp32(tmp_path):
    """The old converter (onnxconverter-common) left Cast(to=FLOAT) feeding the FP16 Div; now it casts to FP16."""
    from workbench.half_precision import convert_network
    from workbench.network_types import type_clashes

    converted = convert_network(onnx_models.attention_scale_block(), "fp16").model
    cast = next(n for n in converted.graph.node if n.name == "attn/cast_dim")
    assert next(a.i for a in cast.attribute if a.name == "to") == TensorProto.FLOAT16
    assert type_clashes(converted) == []
    onnx.checker.check_model(converted, full_check=True)


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_a_node_kept_in_fp32_inside_an_if_branch_gets_its_casts_in_that_branch(wb, tmp_path, precision):
    label, _ = _HALF[precision]
    job, log, layers = _build(wb, _save(tmp_path, "conv_in_if"),
                              _spec("conv_in_if", precision, keep_fp32_nodes=("then/conv",)))
    assert "Kept in FP32: then/conv" in log
    kept = _of(layers, "then/conv")
    assert kept and all(ly.precision == "FP32" for ly in kept), [(ly.name, ly.precision) for ly in kept]
    other = _of(layers, "else/conv")
    assert other and all(ly.precision == label for ly in other)
    network = onnx.load(str(wb.jobs.artifact(job.id, "network.onnx")))
    branch = next(a.g for n in network.graph.node if n.op_type == "If" for a in n.attribute if a.name == "then_branch")
    assert "Cast" in [n.op_type for n in branch.node]  # back to half after the kept node, inside the branch


def test_a_network_with_mixed_float_inputs_is_refused_before_the_build_naming_the_node(tmp_path):
    """An FP16 network whose Div still meets an FP32 scalar: the check names the node, its inputs and their types,
    and says what to do, instead of TensorRT's 'ElementWiseOperation DIV must have same input types'."""
    from workbench.half_precision import check_network

    g = helper.make_graph(
        [helper.make_node("Cast", ["x"], ["xh"], name="to_half", to=TensorProto.FLOAT16),
         helper.make_node("Div", ["xh", "scale"], ["yh"], name="attn/scale"),
         helper.make_node("Cast", ["yh"], ["y"], name="to_float", to=TensorProto.FLOAT)],
        "mixed", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
        [numpy_helper.from_array(np.array(4.0, np.float32), "scale")])
    path = tmp_path / "mixed.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(ModelError) as err:
        check_network(path, "fp16", {})
    text = str(err.value)
    assert "'attn/scale' (op Div)" in text and "'xh' (float16)" in text and "'scale' (float32)" in text
    assert "--keep-fp32 attn/scale" in text
    # the same types a parser rejection of that node quotes (workbench.build names them in its hint)
    from workbench.network_types import input_types

    assert input_types(onnx.load(str(path)), "attn/scale") == [("xh", "float16"), ("scale", "float32")]


def test_bf16_keeps_an_op_tensorrt_takes_only_in_fp32_or_fp16_in_fp32_and_builds(wb, tmp_path):
    """HardSwish (MobileNetV3) in BF16 is a parser error in TensorRT-RTX 1.7; the conversion keeps it FP32 and says
    so, the convolutions around it run in BF16."""
    path = tmp_path / "hardswish_cnn.onnx"
    onnx.save(onnx_models.hardswish_cnn(), str(path))
    job, log, layers = _build(wb, path, BuildSpec(precision="bf16", profiles=profiles_from_args(
        ["x:1x3x16x16"], ["x:2x3x16x16"], ["x:4x3x16x16"])))
    assert "Op types kept in FP32 (present in this model): HardSwish." in log
    assert all(ly.precision == "BF16" for ly in _of(layers, "conv2")), [(ly.name, ly.precision) for ly in layers]
    network = onnx.load(str(wb.jobs.artifact(job.id, "network.onnx")))
    hswish = next(n for n in network.graph.node if n.name == "hswish")
    from workbench.network_types import input_types

    assert input_types(network, "hswish") == [(hswish.input[0], "float32")]


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_a_loop_body_is_converted_with_its_outer_scope_and_builds(wb, tmp_path, precision):
    """Cast(iteration, to=FLOAT) inside a Loop body meets the half state: retargeted like the outer graph's."""
    path = tmp_path / "loop_counter.onnx"
    onnx.save(onnx_models.loop_with_counter_scale(), str(path))
    job, log, layers = _build(wb, path, BuildSpec(precision=precision))
    network = onnx.load(str(wb.jobs.artifact(job.id, "network.onnx")))
    body = next(a.g for n in network.graph.node if n.op_type == "Loop" for a in n.attribute if a.name == "body")
    count = next(n for n in body.node if n.name == "body/count")
    half = TensorProto.FLOAT16 if precision == "fp16" else TensorProto.BFLOAT16
    assert next(a.i for a in count.attribute if a.name == "to") == half
    from workbench.network_types import type_clashes

    assert type_clashes(network) == []
    assert _HALF[precision][1] in log
    if precision == "fp16":  # ONNX Runtime ran it beside the FP32 model: 3 iterations, same result
        line = next(ln for ln in log.splitlines() if "ONNX Runtime: the FP16 network ran once" in ln)
        assert "y cosine 1.0000" in line or "y cosine 0.999" in line, line
