"""Convert an FP32 ONNX model's float tensors to BF16 for a strongly typed build (TensorRT-RTX, TensorRT >= 11).

There is no maintained BF16 converter short of NVIDIA ModelOpt (which needs PyTorch), so this reuses the FP16
converter of ``onnxconverter-common`` for the hard part (which ops to convert, where to insert Casts, I/O kept FP32,
subgraphs) and then retypes every FP16 tensor it produced as BF16. Weights and constants are rounded to BF16 from the
*original* FP32 values (the FP16 converter clamps them to the FP16 range; BF16 has FP32's range), so nothing is
clamped. Whether the engine then runs its layers in BF16 is for the layer listing to say (``Datatype: BFloat16``).
"""

from __future__ import annotations

import warnings
from typing import Any

from .errors import ModelError


def convert_float_to_bfloat16(model: Any, node_block_list: list[str] | None = None,
                              op_block_list: list[str] | None = None) -> Any:
    """A BF16 copy of ``model`` (an ``onnx.ModelProto`` with FP32 float tensors); graph inputs and outputs stay FP32.

    ``node_block_list`` / ``op_block_list`` stay in FP32, as in the FP16 converter (whose lists they are)."""
    import ml_dtypes
    import numpy as np
    import onnx
    from onnx import TensorProto, numpy_helper
    from onnxconverter_common import float16

    if _has_fp16(model.graph):
        raise ModelError("The model already has FP16 tensors; the BF16 conversion needs an FP32 model.",
                         "Build it as FP16, or export the model in FP32 and choose BF16.")
    originals: dict[str, Any] = {}  # FP32 values by initializer name / Constant output name, before any clamping
    _collect_originals(model.graph, originals, numpy_helper, TensorProto)
    with warnings.catch_warnings():  # its "will be truncated" warnings are about FP16 values this module discards
        warnings.filterwarnings("ignore", "the float32 number", UserWarning)
        converted = float16.convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=False,
                                                     node_block_list=node_block_list, op_block_list=op_block_list)

    def to_bf16(tensor: Any, key: str) -> Any:
        value = originals.get(key)
        current = numpy_helper.to_array(tensor)
        if value is None or value.shape != current.shape:
            value = current.astype(np.float32)
        out = numpy_helper.from_array(np.asarray(value, np.float32).astype(ml_dtypes.bfloat16), tensor.name)
        return out

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
    if _has_fp16(converted.graph):
        raise ModelError("The BF16 conversion left FP16 tensors in the model (an op the converter does not know).",
                         "Build it as FP16 or FP32 instead.")
    return converted


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


def _has_fp16(graph: Any) -> bool:
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
            if any(_has_fp16(g) for g in ([attr.g] if attr.type == AttributeProto.GRAPH else list(attr.graphs))):
                return True
    return False
