"""Small models that reproduce the ONNX nodes TensorRT-RTX computes without naming them in any layer's metadata.

Each one is a class of node the fusion report used to leave unaccounted on real models (issue 11, item 2); the golden
builds of ``make_golden.py`` record their real TensorRT-RTX listings, and ``tests/test_fusion_rules.py`` checks each
fate and its evidence:

* ``concat_neck``: a YOLO-style neck; the second ``Concat`` is elided (its three producers write into one buffer);
* ``attention_split``: GPT-2-style fused QKV projection, ``Split`` → ``Reshape`` → ``Transpose`` per head; the
  ``Split`` is a slice inside each kernel that reads one of its outputs;
* ``swish_qdq``: Conv → BatchNormalization → SiLU → Mul(0.5) → Sigmoid quantized by the workbench (ONNX Runtime
  Q/DQ, minmax): the ``Mul`` between the BatchNormalization and the Sigmoid and Q/DQ nodes around it are absorbed
  into one Myelin kernel without being listed;
* ``attention_qdq`` / ``mask_attention_qdq``: the attention above and a BERT-style masked attention, quantized the
  same way (Q/DQ nodes and the mask ``Mul`` absorbed);
* ``scan_rnn`` and ``if_loop``: control flow whose bodies need their own accounting.

Real exports (``tests/fixtures/``, made by the zoo's ``bench/zoo/make_fixtures.py`` with torch, see its README) are
built as they are: ``yolo_neck`` (CSP ``Concat`` elided), ``gpt2_2layer`` (QKV ``Split`` inside kernels, no-op
``Cast``), ``bert_tiny_mask`` (the mask's ``Cast``), ``scan_loop`` (a ``Scan``), and ``ppocrv4_rec_svtr_neck`` (see
:func:`svtr_neck_from_wheel`: a Paddle2ONNX export, attention views, unnamed ``Constant`` nodes); ``bert_tiny_mask``
and ``yolo_neck`` also quantized by the workbench (the Q/DQ nodes of issue 11 item 8).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tests.golden.make_golden import _G


def _vi(name: str, shape: list, elem: int = TensorProto.FLOAT) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape)


def _i64(g: _G, name: str, values: list[int]) -> str:
    return g.const(name, np.array(values, np.int64), np.int64)


def concat_neck() -> onnx.ModelProto:
    """x[N,3,32,32] → two strided convs → upsample + Concat → 1×1 conv → CSP split into d1 | d2 → d3 → Concat."""
    g = _G(seed=2)
    a = g.node(
        "Relu",
        [g.node("Conv", ["x", g.rand("a.w", (8, 3, 3, 3))], "a", pads=[1] * 4, strides=[2, 2])],
        "a_relu",
    )
    b = g.node("Conv", [a, g.rand("b.w", (16, 8, 3, 3))], "b", pads=[1] * 4, strides=[2, 2])
    b = g.node("Sigmoid", [b], "b_sig")
    up = g.node("Resize", [b, "", g.const("scales", np.array([1, 1, 2, 2]))], "up", mode="nearest")
    c = g.node("Conv", [g.node("Concat", [up, a], "cat", axis=1), g.rand("c.w", (8, 24, 1, 1))], "c")
    d1 = g.node("Conv", [c, g.rand("d1.w", (4, 8, 1, 1))], "d1")
    d2 = g.node("Conv", [c, g.rand("d2.w", (4, 8, 1, 1))], "d2")
    d3 = g.node("Conv", [d2, g.rand("d3.w", (4, 4, 3, 3))], "d3", pads=[1] * 4)
    g.node("Conv", [g.node("Concat", [d1, d2, d3], "cat2", axis=1), g.rand("e.w", (4, 12, 1, 1))], "e")
    g.nodes[-1].output[0] = "y"
    return g.model("golden_concat_neck", [_vi("x", ["N", 3, 32, 32])], [_vi("y", ["N", 4, 16, 16])])


def attention_split(d: int = 32, heads: int = 4) -> onnx.ModelProto:
    """x[B,S,d] → fused QKV MatMul + bias → Split → per head Reshape/Transpose → softmax(QKᵀ/√dₕ)V → out → last."""
    g = _G(seed=3)
    qkv = g.node(
        "Add",
        [g.node("MatMul", ["x", g.rand("qkv.w", (d, 3 * d))], "qkv"), g.rand("qkv.b", (3 * d,))],
        "qkv_b",
    )
    q, k, v = (f"split:{i}" for i in range(3))
    g.nodes.append(
        helper.make_node("Split", [qkv, _i64(g, "splits", [d, d, d])], [q, k, v], name="split", axis=2)
    )
    shape = _i64(g, "hshape", [0, 0, heads, d // heads])
    heads_ = [
        g.node("Transpose", [g.node("Reshape", [t, shape], f"{n}_resh")], f"{n}_tr", perm=perm)
        for n, t, perm in (("q", q, [0, 2, 1, 3]), ("k", k, [0, 2, 3, 1]), ("v", v, [0, 2, 1, 3]))
    ]
    s = g.node("Div", [g.node("MatMul", heads_[:2], "qk"), g.const("sc", np.sqrt(d // heads))], "scale")
    o = g.node("MatMul", [g.node("Softmax", [s], "softmax", axis=-1), heads_[2]], "av")
    o = g.node(
        "Reshape",
        [g.node("Transpose", [o], "o_tr", perm=[0, 2, 1, 3]), _i64(g, "oshape", [0, 0, d])],
        "o_resh",
    )
    o = g.node("MatMul", [o, g.rand("out.w", (d, d))], "out")
    g.node("Slice", [o, _i64(g, "st", [-1]), _i64(g, "en", [2**62]), _i64(g, "ax", [1])], "last")
    g.nodes[-1].output[0] = "y"
    return g.model("golden_attention_split", [_vi("x", ["B", "S", d])], [_vi("y", ["B", 1, d])])


def swish_cnn() -> onnx.ModelProto:
    """Conv → BatchNormalization → x·sigmoid(x) → Mul(0.5) → Sigmoid → 1×1 Conv (float; see :func:`swish_qdq`)."""
    g = _G(seed=1)
    y = g.node("Conv", ["x", g.rand("c1.w", (8, 3, 3, 3))], "c1", pads=[1] * 4)
    bn = [
        g.const(f"bn.{k}", v)
        for k, v in (("s", np.ones(8)), ("b", np.zeros(8)), ("m", np.zeros(8)), ("v", np.ones(8)))
    ]
    y = g.node("BatchNormalization", [y, *bn], "bn")
    y = g.node("Mul", [y, g.node("Sigmoid", [y], "sig")], "mul")
    y = g.node("Sigmoid", [g.node("Mul", [y, g.const("k", 0.5)], "mulk")], "sig2")
    g.node("Conv", [y, g.rand("c2.w", (4, 8, 1, 1))], "c2")
    g.nodes[-1].output[0] = "y"
    return g.model("golden_swish_cnn", [_vi("x", ["N", 3, 16, 16])], [_vi("y", ["N", 4, 16, 16])])


def mask_attention(d: int = 16) -> onnx.ModelProto:
    """BERT-style self-attention with an int64 attention mask: Unsqueeze → Cast → (1 - m) · -3.4e38 → + scores."""
    g = _G(seed=4)
    m = g.node(
        "Cast",
        [g.node("Unsqueeze", ["mask", _i64(g, "ax12", [1, 2])], "mask_unsq")],
        "mask_cast",
        to=TensorProto.FLOAT,
    )
    m = g.node(
        "Mul", [g.node("Sub", [g.const("one", 1.0), m], "mask_sub"), g.const("neg", -3.4e38)], "mask_mul"
    )
    s = g.node(
        "MatMul",
        [
            g.node("MatMul", ["x", g.rand("q.w", (d, d))], "q"),
            g.node("Transpose", ["x"], "kt", perm=[0, 2, 1]),
        ],
        "qk",
    )
    s = g.node("Add", [g.node("Unsqueeze", [s, _i64(g, "ax1", [1])], "s_unsq"), m], "mask_add")
    s = g.node("Squeeze", [g.node("Softmax", [s], "softmax", axis=-1), "ax1"], "s_sq")
    g.node("MatMul", [s, "x"], "av")
    g.nodes[-1].output[0] = "y"
    return g.model(
        "golden_mask_attention",
        [_vi("x", ["B", "S", d]), _vi("mask", ["B", "S"], TensorProto.INT64)],
        [_vi("y", ["B", "S", d])],
    )


def _qdq(model: onnx.ModelProto, data: dict[str, np.ndarray]) -> onnx.ModelProto:
    """Quantize ``model`` as the workbench does (ONNX Runtime Q/DQ, minmax calibrator, per-channel weights)."""
    from workbench.calibration_data import CalibrationData
    from workbench.quantize import QuantizeSpec, quantize_qdq

    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "model.onnx", Path(tmp) / "model_qdq.onnx"
        onnx.save(model, str(src))
        quantize_qdq(src, out, CalibrationData(data, "seeded random data"), QuantizeSpec(calibrator="minmax"))
        return onnx.load(str(out))


def swish_qdq() -> onnx.ModelProto:
    x = np.random.default_rng(0).normal(size=(16, 3, 16, 16)).astype(np.float32)
    return _qdq(swish_cnn(), {"x": x})


def attention_qdq() -> onnx.ModelProto:
    x = np.random.default_rng(0).normal(size=(16, 16, 32)).astype(np.float32)
    return _qdq(attention_split(), {"x": x})


def mask_attention_qdq() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    mask = np.ones((16, 8), np.int64)
    mask[:, 6:] = 0
    return _qdq(mask_attention(), {"x": rng.normal(size=(16, 8, 16)).astype(np.float32), "mask": mask})


def scan_rnn() -> onnx.ModelProto:
    """A Scan over time: s' = tanh(s·W + xₜ); its body nodes are listed in the engine's metadata, the Scan is not."""
    w = numpy_helper.from_array(np.random.default_rng(0).normal(size=(4, 4)).astype(np.float32), "W")
    body = helper.make_graph(
        [
            helper.make_node("MatMul", ["s_in", "W"], ["sw"], name="body/matmul"),
            helper.make_node("Add", ["sw", "x_t"], ["pre"], name="body/add"),
            helper.make_node("Tanh", ["pre"], ["s_out"], name="body/tanh"),
            helper.make_node("Identity", ["s_out"], ["y_t"], name="body/identity"),
        ],
        "body",
        [_vi("s_in", ["B", 4]), _vi("x_t", ["B", 4])],
        [_vi("s_out", ["B", 4]), _vi("y_t", ["B", 4])],
        [w],
    )
    g = _G(seed=5)
    g.nodes.append(helper.make_node("Transpose", ["x"], ["xt"], name="to_time_major", perm=[1, 0, 2]))
    g.nodes.append(
        helper.make_node("Scan", ["s0", "xt"], ["s_last", "ys"], name="scan", num_scan_inputs=1, body=body)
    )
    g.nodes.append(helper.make_node("Relu", ["s_last"], ["y"], name="relu"))
    return g.model("golden_scan_rnn", [_vi("x", ["B", 5, 4]), _vi("s0", ["B", 4])], [_vi("y", ["B", 4])])


def if_loop() -> onnx.ModelProto:
    """If (sum(x) > 0) with a Conv in each branch (the then-branch nodes unnamed), then a Loop of 3 iterations."""
    rng = np.random.default_rng(0)

    def w(name: str) -> onnx.TensorProto:
        return numpy_helper.from_array(rng.normal(size=(4, 4, 3, 3)).astype(np.float32), name)

    then_g = helper.make_graph(
        [helper.make_node("Conv", ["x", "tw"], ["t_out"], pads=[1] * 4), helper.make_node("Relu", ["t_out"], ["t_relu"])],
        "then", [], [_vi("t_relu", ["N", 4, 8, 8])], [w("tw")],
    )  # fmt: skip
    else_g = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "ew"], ["e_out"], pads=[1] * 4, name="else/conv"),
            helper.make_node("Sigmoid", ["e_out"], ["e_sig"], name="else/sig"),
        ],
        "else", [], [_vi("e_sig", ["N", 4, 8, 8])], [w("ew")],
    )  # fmt: skip
    loop_body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"], name="loop/cond"),
            helper.make_node("Mul", ["acc_in", "half"], ["acc_m"], name="loop/mul"),
            helper.make_node("Add", ["acc_m", "acc_in"], ["acc_out"], name="loop/add"),
        ],
        "loop_body",
        [
            _vi("iter", [], TensorProto.INT64),
            _vi("cond_in", [], TensorProto.BOOL),
            _vi("acc_in", ["N", 4, 8, 8]),
        ],
        [_vi("cond_out", [], TensorProto.BOOL), _vi("acc_out", ["N", 4, 8, 8])],
        [numpy_helper.from_array(np.array(0.5, np.float32), "half")],
    )
    g = _G(seed=6)
    c = g.node("Greater", [g.node("ReduceSum", ["x"], "sum", keepdims=0), g.const("zero", 0.0)], "cond")
    g.nodes.append(
        helper.make_node("If", [c], ["y_if"], name="branch", then_branch=then_g, else_branch=else_g)
    )
    g.const("trip", np.array(3), np.int64)
    g.const("true", np.array(True), bool)
    g.nodes.append(helper.make_node("Loop", ["trip", "true", "y_if"], ["y"], name="loop", body=loop_body))
    return g.model("golden_if_loop", [_vi("x", ["N", 4, 8, 8])], [_vi("y", ["N", 4, 8, 8])])


FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def svtr_neck_from_wheel(rec_model: Path, out: Path) -> Path:
    """How ``tests/fixtures/ppocrv4_rec_svtr_neck.onnx`` was cut (not run by the tests): the SVTR neck of
    ``ch_PP-OCRv4_rec_infer.onnx`` from the PyPI wheel ``rapidocr-onnxruntime==1.4.4`` (Paddle2ONNX, Apache-2.0),
    from the backbone's AveragePool output to the input of the CTC head, with ``onnx.utils.Extractor``."""
    from onnx import shape_inference, utils

    sub = utils.Extractor(shape_inference.infer_shapes(onnx.load(str(rec_model)))).extract_model(
        ["p2o.AveragePool.1"], ["swish_17.tmp_0"]
    )
    del sub.graph.value_info[:]
    sub.graph.input[0].CopyFrom(_vi("p2o.AveragePool.1", ["N", 480, 1, "W"]))
    sub.graph.output[0].CopyFrom(_vi("swish_17.tmp_0", ["N", None, 1, "W"]))
    sub.graph.name = "ppocrv4_rec_svtr_neck"
    onnx.checker.check_model(sub, full_check=True)
    onnx.save(sub, str(out))
    return out


def _fixture_qdq(name: str, data: dict[str, np.ndarray]) -> onnx.ModelProto:
    return _qdq(onnx.load(str(FIXTURES / f"{name}.onnx")), data)


def bert_tiny_mask_qdq() -> onnx.ModelProto:
    """The BERT-like encoder quantized by the workbench (minmax; random ids, every other row masked from 10)."""
    rng = np.random.default_rng(0)
    mask = np.ones((8, 16), np.int64)
    mask[1::2, 10:] = 0
    ids = rng.integers(0, 1000, size=(8, 16)).astype(np.int64)
    return _fixture_qdq(
        "bert_tiny_mask", {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    )


def gpt2_2layer_qdq() -> onnx.ModelProto:
    """The GPT-2-style decoder quantized by the workbench (minmax; random ids, no padding)."""
    ids = np.random.default_rng(0).integers(0, 500, size=(8, 16)).astype(np.int64)
    return _fixture_qdq("gpt2_2layer", {"input_ids": ids, "attention_mask": np.ones_like(ids)})


def yolo_neck_qdq() -> onnx.ModelProto:
    x = np.random.default_rng(0).random((8, 3, 64, 64)).astype(np.float32)
    return _fixture_qdq("yolo_neck", {"images": x})


ATTENTION_PROFILE = [{"x": ([1, 4, 32], [2, 16, 32], [4, 32, 32])}]
MASK_PROFILE = [{"x": ([1, 4, 16], [2, 8, 16], [4, 16, 16]), "mask": ([1, 4], [2, 8], [4, 16])}]
YOLO_PROFILE = [{"images": ([1, 3, 64, 64], [2, 3, 64, 64], [4, 3, 64, 64])}]


def _text_profile(*names: str) -> list[dict]:
    return [{n: ([1, 1], [2, 16], [4, 64]) for n in names}]


BERT_PROFILE = _text_profile("input_ids", "attention_mask", "token_type_ids")
SWISH_PROFILE = [{"x": ([1, 3, 16, 16], [2, 3, 16, 16], [4, 3, 16, 16])}]

# name -> (model factory, profiles, profiling verbosity), merged into make_golden.GOLDEN
GOLDEN = {
    "concat_neck_fp32": (concat_neck, [{"x": ([1, 3, 32, 32], [2, 3, 32, 32], [4, 3, 32, 32])}], "detailed"),
    "attention_split_fp32": (attention_split, ATTENTION_PROFILE, "detailed"),
    "swish_qdq_int8": (swish_qdq, SWISH_PROFILE, "detailed"),
    "attention_qdq_int8": (attention_qdq, ATTENTION_PROFILE, "detailed"),
    "mask_attention_qdq_int8": (mask_attention_qdq, MASK_PROFILE, "detailed"),
    "scan_rnn_fp32": (
        scan_rnn,
        [{"x": ([1, 5, 4], [2, 5, 4], [4, 5, 4]), "s0": ([1, 4], [2, 4], [4, 4])}],
        "detailed",
    ),
    "if_loop_fp32": (if_loop, [{"x": ([1, 4, 8, 8], [2, 4, 8, 8], [4, 4, 8, 8])}], "detailed"),
    # real exports
    "yolo_neck_fp32": (FIXTURES / "yolo_neck.onnx", YOLO_PROFILE, "detailed"),
    "yolo_neck_qdq_int8": (yolo_neck_qdq, YOLO_PROFILE, "detailed"),
    "gpt2_2layer_fp32": (
        FIXTURES / "gpt2_2layer.onnx",
        _text_profile("input_ids", "attention_mask"),
        "detailed",
    ),
    "bert_tiny_mask_fp32": (FIXTURES / "bert_tiny_mask.onnx", BERT_PROFILE, "detailed"),
    "bert_tiny_mask_qdq_int8": (bert_tiny_mask_qdq, BERT_PROFILE, "detailed"),
    "scan_loop_fp32": (FIXTURES / "scan_loop.onnx", [], "detailed"),
    "ppocrv4_rec_svtr_neck_fp32": (
        FIXTURES / "ppocrv4_rec_svtr_neck.onnx",
        [{"p2o.AveragePool.1": ([1, 480, 1, 20], [1, 480, 1, 40], [2, 480, 1, 80])}],
        "detailed",
    ),
}


def scalar_if() -> onnx.ModelProto:
    """Silero-VAD-like: a scalar int64 input ``sr`` → Reshape → Gather → Equal picks an If branch; each branch ends
    in ReduceMean → Unsqueeze (the branch's output). Then two attention-mask-style ``Where`` nodes that differ only
    by the names of their equal constants (a common subexpression)."""
    g = _G(seed=7)
    s = g.node(
        "Gather",
        [g.node("Reshape", ["sr", _i64(g, "one", [1])], "sr_reshape"), _i64(g, "zero", [0])],
        "sr_gather",
        axis=0,
    )
    c = g.node("Equal", [s, _i64(g, "rate", [16000])], "is_16k")

    def branch(tag: str, k: float) -> onnx.GraphProto:
        return helper.make_graph(
            [
                helper.make_node("Mul", ["x", f"{tag}_k"], [f"{tag}_mul"], name=f"{tag}/mul"),
                helper.make_node("ReduceMean", [f"{tag}_mul"], [f"{tag}_mean"], name=f"{tag}/mean", axes=[1], keepdims=0),
                helper.make_node("Unsqueeze", [f"{tag}_mean", "unsq_axes"], [f"{tag}_out"], name=f"{tag}/unsqueeze"),
            ],
            tag, [], [_vi(f"{tag}_out", ["N", 1, 8])],
            [numpy_helper.from_array(np.array(k, np.float32), f"{tag}_k")],
        )  # fmt: skip

    _i64(g, "unsq_axes", [1])
    g.nodes.append(
        helper.make_node(
            "If",
            [c],
            ["y_if"],
            name="by_rate",
            then_branch=branch("then", 2.0),
            else_branch=branch("else", 3.0),
        )
    )
    m = g.node("Greater", ["x", g.const("thr", 0.0)], "mask")
    outs = []
    for k in range(2):  # two Where nodes on one mask with equal constants of different names
        w = g.node("Where", [m, g.const(f"w{k}/keep", 0.0), g.const(f"w{k}/drop", -1e4)], f"w{k}/where")
        outs.append(g.node("Add", ["x", w], f"w{k}/add"))
    g.node("Add", [outs[0], outs[1]], "sum")
    g.nodes[-1].output[0] = "y"
    return g.model(
        "golden_scalar_if",
        [_vi("x", ["N", 4, 8]), _vi("sr", [], TensorProto.INT64)],
        [_vi("y_if", ["N", 1, 8]), _vi("y", ["N", 4, 8])],
    )


GOLDEN["gpt2_2layer_qdq_int8"] = (gpt2_2layer_qdq, _text_profile("input_ids", "attention_mask"), "detailed")
GOLDEN["neg_dim_fp32"] = (
    FIXTURES / "neg_dim.onnx",  # Paddle2ONNX-style: 7 of 8 nodes unnamed, opset 11
    [{"x": ([1, 3, 16, 16], [2, 3, 16, 16], [4, 3, 16, 16])}],
    "detailed",
)
GOLDEN["scalar_if_fp32"] = (
    scalar_if,
    [{"x": ([1, 4, 8], [2, 4, 8], [4, 4, 8]), "sr": ([], [], [])}],
    "detailed",
)


def attention_gather(d: int = 32, heads: int = 4) -> onnx.ModelProto:
    """Swin/torchvision-style attention: QKV MatMul + bias → Reshape [B,S,3,H,dₕ] → Transpose → Gather 0/1/2 for q,
    k, v (instead of a Split); q scaled by a constant before QKᵀ."""
    g = _G(seed=8)
    qkv = g.node(
        "Add",
        [g.node("MatMul", ["x", g.rand("qkv.w", (d, 3 * d))], "qkv"), g.rand("qkv.b", (3 * d,))],
        "qkv_b",
    )
    r = g.node("Reshape", [qkv, _i64(g, "shape5", [0, 0, 3, heads, d // heads])], "qkv_reshape")
    t = g.node("Transpose", [r], "qkv_permute", perm=[2, 0, 3, 1, 4])
    q, k, v = (
        g.node("Gather", [t, g.const(f"i{j}", np.array(j), np.int64)], f"{n}_gather", axis=0)
        for j, n in enumerate("qkv")
    )
    q = g.node("Mul", [q, g.const("scale", (d // heads) ** -0.5)], "q_scale")
    s = g.node("MatMul", [q, g.node("Transpose", [k], "k_t", perm=[0, 1, 3, 2])], "qk")
    o = g.node("MatMul", [g.node("Softmax", [s], "softmax", axis=-1), v], "av")
    o = g.node(
        "Reshape",
        [g.node("Transpose", [o], "o_t", perm=[0, 2, 1, 3]), _i64(g, "oshape", [0, 0, d])],
        "o_reshape",
    )
    g.node("MatMul", [o, g.rand("out.w", (d, d))], "out")
    g.nodes[-1].output[0] = "y"
    return g.model("golden_attention_gather", [_vi("x", ["B", "S", d])], [_vi("y", ["B", "S", d])])


GOLDEN["attention_gather_fp32"] = (attention_gather, ATTENTION_PROFILE, "detailed")
