"""BF16 for a strongly typed build (TensorRT-RTX, TensorRT >= 11): the FP16 placement, retyped as BF16.

There is no maintained BF16 converter short of NVIDIA ModelOpt (which needs PyTorch), so the placement (which ops
convert, where Casts go, I/O kept FP32, subgraphs) is the FP16 conversion's (:mod:`workbench.half_precision`), and
every FP16 tensor it produced is then retyped as BF16. Weights and constants are rounded to BF16 from the *original*
FP32 values (the FP16 converter clamps them to the FP16 range; BF16 has FP32's range), so nothing is clamped.
Whether the engine then runs its layers in BF16 is for the layer listing to say (``Datatype: BFloat16``).
"""

from __future__ import annotations

from typing import Any

from .errors import ModelError


def convert_float_to_bfloat16(model: Any, node_block_list: list[str] | None = None,
                              op_block_list: list[str] | None = None) -> Any:
    """A BF16 copy of ``model`` (an ``onnx.ModelProto`` with FP32 float tensors); graph inputs and outputs stay FP32.

    ``node_block_list`` / ``op_block_list`` stay in FP32 (on top of the default FP32 op types)."""
    from .half_precision import convert_network

    return convert_network(model, "bf16", keep_nodes=node_block_list or (), keep_ops=op_block_list or ()).model


def collect_originals(model: Any) -> dict[str, Any]:
    """FP32 values by initializer name / Constant output name (all graphs), before a converter clamps them."""
    from onnx import TensorProto, numpy_helper

    originals: dict[str, Any] = {}
    _collect_originals(model.graph, originals, numpy_helper, TensorProto)
    return originals


def retype_as_bfloat16(converted: Any, originals: dict[str, Any]) -> None:
    """Retype every FP16 tensor, Cast target and constant of ``converted`` (in place, subgraphs included) as BF16."""
    import ml_dtypes
    import numpy as np
    import onnx
    from onnx import TensorProto, numpy_helper

    def to_bf16(tensor: Any, key: str) -> Any:
        value = originals.get(key)
        current = numpy_helper.to_array(tensor)
        if value is None or value.shape != current.shape:
            value = current.astype(np.float32)
        return numpy_helper.from_array(np.asarray(value, np.float32).astype(ml_dtypes.bfloat16), tensor.name)

    def retype(graph: Any) -> None:
        for i, init in enumerate(graph.initializer):
            if init.data_type == TensorProto.FLOAT16:
                graph.initializer[i].CopyFrom(to_bf16(init, init.name))
        for vi in [*graph.value_info, *graph.input, *graph.output]:
            _retype_value(vi.type, TensorProto)
        for node in graph.node:
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.INT and attr.name in ("to", "dtype") \
                        and attr.i == TensorProto.FLOAT16:
                    attr.i = TensorProto.BFLOAT16
                elif attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == TensorProto.FLOAT16:
                    attr.t.CopyFrom(to_bf16(attr.t, node.output[0] if node.output else attr.t.name))
                elif attr.type == onnx.AttributeProto.GRAPH:
                    retype(attr.g)
                elif attr.type == onnx.AttributeProto.GRAPHS:
                    for g in attr.graphs:
                        retype(g)

    retype(converted.graph)
    if has_fp16(converted.graph):
        raise ModelError("The BF16 conversion left FP16 tensors in the model (an op the converter does not know).",
                         "Build it as FP16 or FP32 instead.")


def _collect_originals(graph: Any, out: dict[str, Any], numpy_helper: Any, tp: Any) -> None:
    for init in graph.initializer:
        if init.data_type == tp.FLOAT:
            out[init.name] = numpy_helper.to_array(init)
    for node in graph.node:
        for attr in node.attribute:
            if node.op_type == "Constant" and attr.name == "value" and attr.t.data_type == tp.FLOAT and node.output:
                out[node.output[0]] = numpy_helper.to_array(attr.t)
            for g in [attr.g] if attr.HasField("g") else list(attr.graphs):
                _collect_originals(g, out, numpy_helper, tp)


def _retype_value(type_proto: Any, tp: Any) -> None:
    if type_proto.HasField("tensor_type"):
        if type_proto.tensor_type.elem_type == tp.FLOAT16:
            type_proto.tensor_type.elem_type = tp.BFLOAT16
    elif type_proto.HasField("sequence_type"):
        _retype_value(type_proto.sequence_type.elem_type, tp)
    elif type_proto.HasField("optional_type"):
        _retype_value(type_proto.optional_type.elem_type, tp)


def has_fp16(graph: Any) -> bool:
    from onnx import AttributeProto, TensorProto

    def typed(t: Any) -> bool:
        return bool(t.HasField("tensor_type") and t.tensor_type.elem_type == TensorProto.FLOAT16)

    if any(i.data_type == TensorProto.FLOAT16 for i in graph.initializer):
        return True
    if any(typed(v.type) for v in [*graph.value_info, *graph.input, *graph.output]):
        return True
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == AttributeProto.TENSOR and attr.t.data_type == TensorProto.FLOAT16:
                return True
            if attr.type == AttributeProto.INT and attr.name in ("to", "dtype") and attr.i == TensorProto.FLOAT16:
                return True
            if any(has_fp16(g) for g in ([attr.g] if attr.type == AttributeProto.GRAPH else list(attr.graphs))):
                return True
    return False
