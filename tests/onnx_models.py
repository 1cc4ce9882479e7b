"""Small real ONNX models for tests (built with onnx.helper). Each function says what it is for."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _f(name: str, arr: np.ndarray):
    return numpy_helper.from_array(arr.astype(np.float32), name)


def tiny_cnn() -> onnx.ModelProto:
    """Conv→BN→Relu→GAP→Flatten→MatMul, dynamic batch 'N': a model every backend accepts."""
    rng = np.random.default_rng(0)
    inits = [_f("w1", rng.normal(size=(8, 3, 3, 3)) * 0.1), _f("b1", np.zeros(8)),
             _f("bn_s", np.ones(8)), _f("bn_b", np.zeros(8)), _f("bn_m", np.zeros(8)), _f("bn_v", np.ones(8)),
             _f("wf", rng.normal(size=(8, 4)))]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "bn_s", "bn_b", "bn_m", "bn_v"], ["n1"], name="bn1"),
        helper.make_node("Relu", ["n1"], ["r1"], name="relu1"),
        helper.make_node("GlobalAveragePool", ["r1"], ["p"], name="gap"),
        helper.make_node("Flatten", ["p"], ["f"], name="flat"),
        helper.make_node("MatMul", ["f", "wf"], ["y"], name="fc"),
    ]
    g = helper.make_graph(nodes, "tiny_cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 16, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="tests")
    onnx.checker.check_model(m)
    return m


def static_mlp() -> onnx.ModelProto:
    """Static shapes [2,16] → Gemm → Relu → [2,8]: needs no optimization profile."""
    rng = np.random.default_rng(1)
    g = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w", "b"], ["h"], name="gemm"), helper.make_node("Relu", ["h"], ["y"], name="relu")],
        "static_mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 8])],
        [_f("w", rng.normal(size=(16, 8))), _f("b", np.zeros(8))])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(m)
    return m


def custom_op() -> onnx.ModelProto:
    """A Relu followed by an op from a custom domain that no TensorRT parser knows."""
    g = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"], name="relu"),
         helper.make_node("FancyActivation", ["r"], ["y"], name="my_fancy_node", domain="com.example")],
        "custom", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])


def with_external_data(folder: Path, location: str = "weights.bin") -> Path:
    """The static MLP saved with its weights in an external file next to it."""
    folder.mkdir(parents=True, exist_ok=True)
    m = static_mlp()
    path = folder / "external.onnx"
    onnx.save(m, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location=location,
              size_threshold=0)
    return path


def write_all(folder: Path) -> Path:
    for name, fn in (("tiny_cnn", tiny_cnn), ("static_mlp", static_mlp), ("custom_op", custom_op)):
        onnx.save(fn(), str(folder / f"{name}.onnx"))
    with_external_data(folder / "ext")
    return folder


def slow_to_build(depth: int = 120, channels: int = 32) -> onnx.ModelProto:
    """A deep chain of Conv→Relu blocks with different kernel shapes: takes seconds to build, for cancel tests."""
    rng = np.random.default_rng(2)
    nodes, inits, prev = [], [], "x"
    for i in range(depth):
        k = 3 if i % 2 else 1
        inits.append(_f(f"w{i}", rng.normal(size=(channels, channels, k, k)) * 0.05))
        nodes.append(helper.make_node("Conv", [prev, f"w{i}"], [f"c{i}"], name=f"conv{i}", pads=[k // 2] * 4))
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"], name=f"relu{i}"))
        prev = f"r{i}"
    g = helper.make_graph(nodes, "slow", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", channels, 64, 64])],
                          [helper.make_tensor_value_info(prev, TensorProto.FLOAT, ["N", channels, 64, 64])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def big_external_model(folder: Path, gib: float = 2.05) -> Path:
    """A model with one initializer of ``gib`` GiB in a sparse external-data file next to it (no disk is used,
    nothing is real): for opening models over protobuf's 2 GiB limit without loading their weights."""
    folder.mkdir(parents=True, exist_ok=True)
    n = int(gib * 2**30) // 4
    w = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[n], data_location=TensorProto.EXTERNAL)
    for key, value in (("location", "weights.bin"), ("offset", "0"), ("length", str(4 * n))):
        w.external_data.add(key=key, value=value)
    g = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"], name="add")], "big_external",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n])], [w])
    path = folder / "big.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with open(folder / "weights.bin", "wb") as fh:
        fh.truncate(4 * n)
    return path


# ------------------------------------------------------------------ the half-precision failure patterns of real models


def attention_scale_block() -> onnx.ModelProto:
    """Self-attention scaled as transformers exports it: scores / Sqrt(Cast(Shape(q)[2], to=FLOAT)), a shape-derived
    FP32 scalar meeting the FP16 scores (onnxconverter-common leaves it FP32: 'DIV must have same input types').
    Input x [N, 8, 16]."""
    rng = np.random.default_rng(3)
    nodes = [
        helper.make_node("MatMul", ["x", "wq"], ["q"], name="attn/q"),
        helper.make_node("MatMul", ["x", "wk"], ["k"], name="attn/k"),
        helper.make_node("Transpose", ["k"], ["kt"], name="attn/kt", perm=[0, 2, 1]),
        helper.make_node("MatMul", ["q", "kt"], ["s"], name="attn/scores"),
        helper.make_node("Shape", ["q"], ["qs"], name="attn/shape"),
        helper.make_node("Gather", ["qs", "two"], ["d"], name="attn/dim", axis=0),
        helper.make_node("Cast", ["d"], ["df"], name="attn/cast_dim", to=TensorProto.FLOAT),
        helper.make_node("Sqrt", ["df"], ["sq"], name="attn/sqrt"),
        helper.make_node("Div", ["s", "sq"], ["ss"], name="attn/scale"),
        helper.make_node("Softmax", ["ss"], ["p"], name="attn/softmax", axis=-1),
        helper.make_node("MatMul", ["p", "x"], ["o"], name="attn/context"),
        helper.make_node("Add", ["o", "x"], ["y"], name="attn/residual"),
    ]
    inits = [_f("wq", rng.normal(size=(16, 16)) * 0.1), _f("wk", rng.normal(size=(16, 16)) * 0.1),
             numpy_helper.from_array(np.array(2, np.int64), "two")]
    g = helper.make_graph(nodes, "attention_scale", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8, 16])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(m, full_check=True)
    return m


def conv_in_if() -> onnx.ModelProto:
    """Convolutions inside the branches of an If (condition: mean(x) > 0), weights in the outer graph.
    Input x [1, 3, 8, 8]."""
    rng = np.random.default_rng(4)

    def branch(name: str, w: str) -> onnx.GraphProto:
        return helper.make_graph(
            [helper.make_node("Conv", ["x", w], [f"{name}_y"], name=f"{name}/conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", [f"{name}_y"], [f"{name}_r"], name=f"{name}/relu")],
            name, [], [helper.make_tensor_value_info(f"{name}_r", TensorProto.FLOAT, [1, 4, 8, 8])])

    nodes = [helper.make_node("ReduceMean", ["x"], ["m"], name="mean", keepdims=0),
             helper.make_node("Greater", ["m", "zero"], ["c"], name="positive"),
             helper.make_node("If", ["c"], ["y"], name="branch", then_branch=branch("then", "w1"),
                              else_branch=branch("else", "w2"))]
    inits = [_f("w1", rng.normal(size=(4, 3, 3, 3))), _f("w2", rng.normal(size=(4, 3, 3, 3))), _f("zero", np.array(0.0))]
    g = helper.make_graph(nodes, "conv_in_if", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(m, full_check=True)
    return m


def int32_ids_classifier() -> onnx.ModelProto:
    """Byte-level classifier: int32 token ids [N, 12] → Gather(embedding) → mean → MatMul. The ids must stay int32."""
    rng = np.random.default_rng(5)
    nodes = [helper.make_node("Gather", ["emb", "ids"], ["e"], name="embed", axis=0),
             helper.make_node("ReduceMean", ["e"], ["p"], name="pool", axes=[1], keepdims=0),
             helper.make_node("MatMul", ["p", "w"], ["y"], name="head")]
    g = helper.make_graph(nodes, "int32_ids", [helper.make_tensor_value_info("ids", TensorProto.INT32, ["N", 12])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
                          [_f("emb", rng.normal(size=(256, 16))), _f("w", rng.normal(size=(16, 4)))])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(m, full_check=True)
    return m


def reshape_to_fixed_size() -> onnx.ModelProto:
    """x [N, 16] → Relu → Reshape to a constant [2, 8]: valid only for N = 1, so a profile with N up to 4 makes
    the builder itself fail ('reshape would change volume'), a real builder failure on any machine."""
    g = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"], name="relu"),
         helper.make_node("Reshape", ["r", "shape"], ["y"], name="fixed_reshape")],
        "reshape_to_fixed_size", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 8])],
        [numpy_helper.from_array(np.array([2, 8], np.int64), "shape")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(m, full_check=True)
    return m


def unknown_rank_attention() -> onnx.ModelProto:
    """Self-attention whose input has no declared shape (unknown rank): TensorRT's parser refuses the first MatMul
    ('last dimension of input0 = 1 and second to last dimension of input1 = 16 but must match')."""
    rng = np.random.default_rng(6)
    nodes = [helper.make_node("MatMul", ["x", "wq"], ["q"], name="attn/q"),
             helper.make_node("MatMul", ["x", "wk"], ["k"], name="attn/k"),
             helper.make_node("Transpose", ["k"], ["kt"], name="attn/kt", perm=[0, 2, 1]),
             helper.make_node("MatMul", ["q", "kt"], ["s"], name="attn/scores"),
             helper.make_node("Softmax", ["s"], ["p"], name="attn/softmax", axis=-1),
             helper.make_node("MatMul", ["p", "x"], ["y"], name="attn/context")]
    g = helper.make_graph(nodes, "unknown_rank_attention", [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          [_f("wq", rng.normal(size=(16, 16))), _f("wk", rng.normal(size=(16, 16)))])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def hardswish_cnn() -> onnx.ModelProto:
    """Conv → HardSwish → Conv (MobileNetV3's activation), x [N, 3, 16, 16]: TensorRT-RTX 1.7's parser takes
    HardSwish in FP32/FP16 only ('Only FLOAT, HALF or INT8'), so a BF16 build must keep it in FP32."""
    rng = np.random.default_rng(7)
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("HardSwish", ["c1"], ["h"], name="hswish"),
             helper.make_node("Conv", ["h", "w2"], ["y"], name="conv2", pads=[1, 1, 1, 1])]
    g = helper.make_graph(nodes, "hardswish_cnn",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 16, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8, 16, 16])],
                          [_f("w1", rng.normal(size=(8, 3, 3, 3)) * 0.2), _f("w2", rng.normal(size=(8, 8, 3, 3)) * 0.1)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(m, full_check=True)
    return m


def loop_with_counter_scale() -> onnx.ModelProto:
    """A Loop (3 iterations) whose body scales a float state by Cast(iteration, to=FLOAT) + 1 and adds x: an
    integer-derived FP32 scalar meeting the state inside a subgraph body. x [2, 4] → y [2, 4]."""
    body = helper.make_graph(
        [helper.make_node("Cast", ["i"], ["i_f"], name="body/count", to=TensorProto.FLOAT),
         helper.make_node("Add", ["i_f", "one"], ["k"], name="body/plus_one"),
         helper.make_node("Mul", ["s", "k"], ["sk"], name="body/scale"),
         helper.make_node("Add", ["sk", "x"], ["s_out"], name="body/accumulate"),
         helper.make_node("Identity", ["c"], ["c_out"], name="body/keep_going")],
        "body", [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                 helper.make_tensor_value_info("c", TensorProto.BOOL, []),
                 helper.make_tensor_value_info("s", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("c_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("s_out", TensorProto.FLOAT, [2, 4])])
    g = helper.make_graph(
        [helper.make_node("Loop", ["trips", "cond", "x"], ["y"], name="loop", body=body)], "loop_counter",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
        [numpy_helper.from_array(np.array(3, np.int64), "trips"), numpy_helper.from_array(np.array(True), "cond"),
         _f("one", np.array(1.0))])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(m, full_check=True)
    return m
