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


# ---------------------------------------------------------------------------------------------- intake of real models


def shared_batch_seq() -> onnx.ModelProto:
    """Two inputs [batch, seq] (hidden states and a mask, as a BERT-like encoder has) added together: 'batch' and
    'seq' name a dim of each, so TensorRT makes them one size across the inputs."""
    g = helper.make_graph([helper.make_node("Add", ["hidden", "mask"], ["y"], name="add")], "shared_batch_seq",
                          [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["batch", "seq"]),
                           helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["batch", "seq"])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq"])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="tests")
    onnx.checker.check_model(m)
    return m


def constant_weights() -> onnx.ModelProto:
    """Every weight in a ``Constant`` node (no initializers), one of them inside an ``If`` branch:
    Conv weight 4x3x3x3 (108) + bias 4 + the If's flag 1, and a 4-element scale in the then-branch = 117."""
    rng = np.random.default_rng(4)

    def const(name: str, arr: np.ndarray) -> onnx.NodeProto:
        return helper.make_node("Constant", [], [name], name=f"const_{name}", value=_f(name + "_value", arr))

    then_g = helper.make_graph([const("s", np.full(4, 2.0)), helper.make_node("Mul", ["c", "s"], ["t"], name="mul")],
                               "then", [], [helper.make_tensor_value_info("t", TensorProto.FLOAT, None)])
    else_g = helper.make_graph([helper.make_node("Identity", ["c"], ["e"], name="ident")], "else", [],
                               [helper.make_tensor_value_info("e", TensorProto.FLOAT, None)])
    nodes = [const("w", rng.normal(size=(4, 3, 3, 3))), const("b", np.zeros(4)),
             helper.make_node("Conv", ["x", "w", "b"], ["c0"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Transpose", ["c0"], ["c"], name="nhwc", perm=[0, 2, 3, 1]),
             helper.make_node("Constant", [], ["flag"], name="const_flag",
                              value=helper.make_tensor("flag_value", TensorProto.BOOL, [], [True])),
             helper.make_node("If", ["flag"], ["y"], name="if", then_branch=then_g, else_branch=else_g)]
    g = helper.make_graph(nodes, "constant_weights", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 8, 4])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="tests")
    onnx.checker.check_model(m)
    return m


FIXTURES = Path(__file__).resolve().parent / "fixtures"  # real exports from the zoo (see its README)


def write_intake(folder: Path) -> Path:
    """The models users bring, in ``folder``: the zoo's real exports ``neg_dim`` (Paddle2ONNX, batch dim -1),
    ``shared_sym_dims`` (image [N, 3, S, S]), ``qdq_cnn`` (ONNX Runtime INT8 Q/DQ), ``if_conv`` (Constant weights
    in If branches), and the generated ``shared_batch_seq`` and ``constant_weights`` above."""
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    for name in ("neg_dim", "shared_sym_dims", "qdq_cnn", "if_conv"):
        path = FIXTURES / f"{name}.onnx"
        assert path.is_file(), f"fixture {path} is missing (committed with the tests)"
        shutil.copyfile(path, folder / path.name)
    for name, fn in (("shared_batch_seq", shared_batch_seq), ("constant_weights", constant_weights)):
        onnx.save(fn(), str(folder / f"{name}.onnx"))
    return folder
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
def bert_tiny_mask(seed: int = 5, vocab: int = 64, d: int = 32, heads: int = 2, layers: int = 2) -> onnx.ModelProto:
    """A tiny BERT-like encoder as ``transformers`` exports one: ``input_ids`` and ``attention_mask`` (int64,
    dynamic batch and sequence), word + position embeddings, LayerNorm, ``layers`` self-attention blocks with the
    additive mask ``(1 - mask) * float32_min`` added to the scores, a GELU MLP, and a first-token classifier.
    The mask tensor holds values near float32's minimum: the histogram calibrators' reason to fail."""
    rng = np.random.default_rng(seed)
    dh = d // heads
    inits: list = []
    nodes: list = []

    def const(name: str, arr, dtype=np.float32) -> str:
        inits.append(numpy_helper.from_array(np.asarray(arr, dtype=dtype), name))
        return name

    def node(op: str, inputs: list, name: str, **attrs) -> str:
        nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def linear(x: str, p: str, cin: int, cout: int) -> str:
        w = const(f"{p}.weight", rng.normal(size=(cin, cout)) / np.sqrt(cin))
        b = const(f"{p}.bias", rng.normal(0, 0.02, cout))
        return node("Add", [node("MatMul", [x, w], f"{p}/MatMul"), b], f"{p}/Add")

    def layer_norm(x: str, p: str) -> str:
        g, b = const(f"{p}.weight", rng.uniform(0.9, 1.1, d)), const(f"{p}.bias", rng.normal(0, 0.02, d))
        return node("LayerNormalization", [x, g, b], f"{p}/LayerNorm", axis=-1, epsilon=1e-12)

    words = const("embeddings.word", rng.normal(0, 0.5, (vocab, d)))
    positions = const("embeddings.position", rng.normal(0, 0.1, (128, d)))
    zero, one_i = const("const.zero", [0], np.int64), const("const.one_i", [1], np.int64)
    seq = node("Gather", [node("Shape", ["input_ids"], "emb/Shape"), one_i], "emb/seq_len")
    pos_ids = node("Range", [node("Squeeze", [zero], "emb/zero_scalar"), node("Squeeze", [seq], "emb/seq_scalar"),
                             node("Squeeze", [one_i], "emb/one_scalar")], "emb/position_ids")
    x = node("Add", [node("Gather", [words, "input_ids"], "emb/word_gather"),
                     node("Gather", [positions, pos_ids], "emb/position_gather")], "emb/Add")
    x = layer_norm(x, "emb")
    # the extended attention mask, as transformers writes it: (1.0 - mask[:, None, None, :]) * finfo(float32).min
    axes = const("mask.axes", [1, 2], np.int64)
    m = node("Cast", [node("Unsqueeze", ["attention_mask", axes], "mask/Unsqueeze")], "mask/Cast", to=TensorProto.FLOAT)
    m = node("Sub", [const("mask.one", 1.0), m], "mask/Sub")
    mask = node("Mul", [m, const("mask.min", np.finfo(np.float32).min)], "mask/Mul")
    split = const("attn.split_shape", [0, 0, heads, dh], np.int64)
    merge = const("attn.merge_shape", [0, 0, d], np.int64)
    scale = const("attn.scale", 1.0 / np.sqrt(dh))
    for i in range(layers):
        p = f"layer.{i}"
        heads_ = {}
        for k, perm in (("query", [0, 2, 1, 3]), ("key", [0, 2, 3, 1]), ("value", [0, 2, 1, 3])):
            y = node("Reshape", [linear(x, f"{p}/attention/{k}", d, d), split], f"{p}/attention/{k}/Reshape")
            heads_[k] = node("Transpose", [y], f"{p}/attention/{k}/Transpose", perm=perm)
        s = node("MatMul", [heads_["query"], heads_["key"]], f"{p}/attention/scores/MatMul")
        s = node("Mul", [s, scale], f"{p}/attention/scores/Mul")
        s = node("Add", [s, mask], f"{p}/attention/scores/Add_mask")
        s = node("Softmax", [s], f"{p}/attention/Softmax", axis=-1)
        a = node("MatMul", [s, heads_["value"]], f"{p}/attention/context/MatMul")
        a = node("Transpose", [a], f"{p}/attention/context/Transpose", perm=[0, 2, 1, 3])
        a = node("Reshape", [a, merge], f"{p}/attention/context/Reshape")
        a = linear(a, f"{p}/attention/output/dense", d, d)
        x = layer_norm(node("Add", [a, x], f"{p}/attention/output/Add"), f"{p}/attention/output")
        h = linear(x, f"{p}/intermediate/dense", d, 2 * d)
        t = node("Erf", [node("Div", [h, const(f"{p}.sqrt2", np.sqrt(2.0))], f"{p}/gelu/Div")], f"{p}/gelu/Erf")
        t = node("Add", [t, const(f"{p}.one", 1.0)], f"{p}/gelu/Add")
        h = node("Mul", [node("Mul", [h, t], f"{p}/gelu/Mul"), const(f"{p}.half", 0.5)], f"{p}/gelu/Mul_half")
        h = linear(h, f"{p}/output/dense", 2 * d, d)
        x = layer_norm(node("Add", [h, x], f"{p}/output/Add"), f"{p}/output")
    first = node("Gather", [x, const("pool.index", 0, np.int64)], "pooler/Gather", axis=1)
    nodes.append(helper.make_node("Gemm", [first, const("classifier.weight", rng.normal(size=(d, 4)) / np.sqrt(d)),
                                           const("classifier.bias", np.zeros(4))], ["logits"], name="classifier/Gemm"))
    g = helper.make_graph(
        nodes, "bert_tiny_mask",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 4])], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="tests")
    onnx.checker.check_model(model, full_check=True)
    return model


def bert_tiny_mask_data(n: int = 32, seq: int = 16, vocab: int = 64, seed: int = 0) -> dict[str, np.ndarray]:
    """Token ids and a padding mask (each sample 4..seq tokens long, the rest padding)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(4, seq + 1, n)
    mask = (np.arange(seq)[None, :] < lengths[:, None]).astype(np.int64)
    ids = rng.integers(1, vocab, (n, seq)).astype(np.int64) * mask
    return {"input_ids": ids, "attention_mask": mask}


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
