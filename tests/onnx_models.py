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


PAGE_PAYLOAD = (b"<!doctype html><html><body><script>fetch('/_stcore/health').then(r => r.text())"
                b".then(t => { document.title = 'pwned: ' + t; });</script></body></html>")


def page_named_external_data(folder: Path, name: str = "pwn.html") -> Path:
    """The static MLP with its weights in ``name``: an HTML page (script included), then the weights at offset
    1024. Served under its own name by a static file server it would be a page running on that origin."""
    folder.mkdir(parents=True, exist_ok=True)
    m = static_mlp()
    blob = PAGE_PAYLOAD.ljust(1024, b" ")
    for t in m.graph.initializer:
        raw = numpy_helper.to_array(t).tobytes()
        offset = len(blob)
        blob += raw
        t.ClearField("float_data")
        t.ClearField("raw_data")
        t.data_location = TensorProto.EXTERNAL
        for key, value in (("location", name), ("offset", str(offset)), ("length", str(len(raw)))):
            entry = t.external_data.add()
            entry.key, entry.value = key, value
    (folder / name).write_bytes(blob)
    path = folder / "model.onnx"
    path.write_bytes(m.SerializeToString())
    return path
