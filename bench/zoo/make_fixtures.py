"""Make the small CI fixtures of each failing class (issue 11) — run in the zoo environment, not the runtime one.

    bash bench/zoo/setup.sh                      # once: /work/zoo-venv with torch, torchvision, transformers
    /work/zoo-venv/bin/python bench/zoo/make_fixtures.py [--out tests/fixtures] [--only vit_2block ...]

Every model has random weights from a fixed seed, so a rerun gives the same graphs (byte equality is not
promised across torch versions). Each file is checked with onnx.checker and run once with ONNX Runtime.
The descriptions (inputs, what each reproduces) are in tests/fixtures/README.md.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


# ----------------------------------------------------------------------------------------------- helpers
def _torch_export(model, args, path: Path, input_names, output_names, dynamic_axes, opset: int = OPSET, **kw):
    import torch

    model.eval()
    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(model, args, buf, input_names=input_names, output_names=output_names,
                          dynamic_axes=dynamic_axes, opset_version=opset, dynamo=False, **kw)
    m = onnx.load_from_string(buf.getvalue())
    onnx.save(m, path)


def _init(name: str, arr: np.ndarray) -> TensorProto:
    return numpy_helper.from_array(np.ascontiguousarray(arr), name)


def _seed(s: int = 0):
    import torch

    torch.manual_seed(s)
    np.random.seed(s)


# ------------------------------------------------------------------------------------- torch-made models
def vit_2block(path: Path) -> None:
    """torchvision VisionTransformer, 2 encoder blocks, 32x32 input, dynamic batch."""
    import torch
    from torchvision.models.vision_transformer import VisionTransformer

    _seed(0)
    torch.backends.mha.set_fastpath_enabled(False)
    m = VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32,
                          mlp_dim=64, num_classes=10)
    _torch_export(m, (torch.randn(1, 3, 32, 32),), path, ["pixel_values"], ["logits"],
                  {"pixel_values": {0: "batch"}, "logits": {0: "batch"}})


def gpt2_2layer(path: Path) -> None:
    """transformers GPT2LMHeadModel from a tiny config, no KV cache, dynamic batch and sequence."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    _seed(0)
    cfg = GPT2Config(vocab_size=512, n_positions=128, n_embd=32, n_layer=2, n_head=2, n_inner=64,
                     use_cache=False, attn_implementation="eager")
    m = GPT2LMHeadModel(cfg)

    class Wrap(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits

    ids = torch.randint(0, 512, (2, 16))
    mask = torch.ones(2, 16, dtype=torch.int64)
    _torch_export(Wrap(m), (ids, mask), path, ["input_ids", "attention_mask"], ["logits"],
                  {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
                   "logits": {0: "batch", 1: "sequence"}})


def bert_tiny_mask(path: Path) -> None:
    """transformers BertModel from a tiny config, eager attention: the mask becomes (1 - mask) * float32.min."""
    import torch
    from transformers import BertConfig, BertModel

    _seed(0)
    cfg = BertConfig(vocab_size=1000, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=128, attn_implementation="eager")
    m = BertModel(cfg, add_pooling_layer=False)

    class Wrap(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    ids = torch.randint(0, 1000, (2, 16))
    mask = torch.ones(2, 16, dtype=torch.int64)
    mask[1, 10:] = 0
    tt = torch.zeros(2, 16, dtype=torch.int64)
    dyn = {0: "batch", 1: "sequence"}
    _torch_export(Wrap(m), (ids, mask, tt), path, ["input_ids", "attention_mask", "token_type_ids"],
                  ["last_hidden_state"], {"input_ids": dyn, "attention_mask": dyn, "token_type_ids": dyn,
                                          "last_hidden_state": dyn})


def _conv_bn_silu(cin: int, cout: int, stride: int = 1, beta: float | None = None):
    import torch.nn as nn

    class CBS(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn = nn.BatchNorm2d(cout)

        def forward(self, x):
            y = self.bn(self.conv(x))
            if beta is not None:            # Paddle's swish: BatchNormalization -> Mul(beta) -> Sigmoid -> Mul
                return y * (y * beta).sigmoid()
            return y * y.sigmoid()          # SiLU: BatchNormalization -> Sigmoid -> Mul

    return CBS()


def yolo_neck(path: Path) -> None:
    """Tiny YOLO-style backbone with a CSP block (Concat of three Conv outputs, which TensorRT elides by
    writing the convolutions into one buffer), FPN/PAN neck (Upsample + Concat) and 1x1 heads; SiLU and
    Paddle-style swish (BN -> Mul -> Sigmoid -> Mul); BatchNormalization kept in the graph (exported with
    TrainingMode.PRESERVE from eval mode, so it is not folded into the Conv)."""
    import torch
    import torch.nn as nn

    _seed(0)

    class Yolo(nn.Module):
        def __init__(self):
            super().__init__()
            self.s1 = _conv_bn_silu(3, 8, 2)       # /2
            self.s2 = _conv_bn_silu(8, 16, 2)      # /4
            self.s3 = _conv_bn_silu(16, 32, 2)     # /8
            self.csp = nn.ModuleList([nn.Conv2d(32, 16, 1), nn.Conv2d(32, 8, 1), nn.Conv2d(32, 8, 3, padding=1)])
            self.csp_fuse = _conv_bn_silu(32, 32, beta=1.702)
            self.s4 = _conv_bn_silu(32, 64, 2)     # /16
            self.lat = _conv_bn_silu(64, 32)
            self.up = nn.Upsample(scale_factor=2, mode="nearest")
            self.fuse = _conv_bn_silu(64, 32)      # after Concat(up(lat), s3)
            self.down = _conv_bn_silu(32, 32, 2)
            self.fuse2 = _conv_bn_silu(64, 64)     # after Concat(down, lat)
            self.head_s = nn.Conv2d(32, 3 * 9, 1)
            self.head_l = nn.Conv2d(64, 3 * 9, 1)

        def forward(self, x):
            c3 = self.s3(self.s2(self.s1(x)))
            c3 = self.csp_fuse(torch.cat([conv(c3) for conv in self.csp], 1))
            c4 = self.s4(c3)
            p4 = self.lat(c4)
            p3 = self.fuse(torch.cat([self.up(p4), c3], 1))
            n4 = self.fuse2(torch.cat([self.down(p3), p4], 1))
            return self.head_s(p3), self.head_l(n4)

    m = Yolo()
    for mod in m.modules():                        # non-trivial BN statistics
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.2, 0.2)
            mod.running_var.uniform_(0.5, 1.5)
    _torch_export(m, (torch.randn(1, 3, 64, 64),), path, ["images"], ["p3", "p4"],
                  {"images": {0: "batch"}, "p3": {0: "batch"}, "p4": {0: "batch"}},
                  training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)


def int_input_classifier(path: Path) -> None:
    """Byte-level file-type classifier in the style of magika (whose jax2tf export one-hot encodes its int32
    bytes with Equal -> Cast(to=FLOAT) -> MatMul): int32 bytes -> one-hot (Equal + Cast to float) @ Dense,
    plus an Embedding (Gather) of the same bytes -> LayerNorm/GELU -> Conv1d -> global max pool -> Dense ->
    Softmax. Dynamic batch, fixed 256 bytes."""
    import torch
    import torch.nn as nn

    _seed(0)

    class Clf(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(257, 16)
            self.onehot_dense = nn.Linear(257, 16, bias=False)
            self.register_buffer("vocab", torch.arange(257, dtype=torch.int32))
            self.dense = nn.Linear(16, 32)
            self.ln = nn.LayerNorm(32)
            self.conv = nn.Conv1d(32, 32, 5, padding=2)
            self.out = nn.Linear(32, 20)

        def forward(self, bytes_):
            onehot = (bytes_.unsqueeze(-1) == self.vocab).float()   # Equal -> Cast(to=FLOAT)
            x = self.emb(bytes_) + self.onehot_dense(onehot)   # [N, 256, 16]
            x = torch.nn.functional.gelu(self.ln(self.dense(x)))
            x = self.conv(x.transpose(1, 2)).relu()            # [N, 32, 256]
            x = x.amax(dim=2)
            return self.out(x).softmax(-1)

    _torch_export(Clf(), (torch.randint(0, 257, (1, 256), dtype=torch.int32),), path, ["bytes"], ["scores"],
                  {"bytes": {0: "batch"}, "scores": {0: "batch"}})


def _small_cnn():
    import torch.nn as nn

    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))


def qdq_cnn(path: Path) -> None:
    """Small CNN, quantized by ONNX Runtime quantize_static: QDQ format, per-channel int8 weights,
    ActivationSymmetric, QuantizeBias=False (biases stay float), calibrated on 16 random images (seed 0)."""
    import torch
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    _seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "cnn.onnx"
        _torch_export(_small_cnn(), (torch.randn(1, 3, 32, 32),), fp32, ["input"], ["logits"], None)
        rng = np.random.default_rng(0)

        class Reader(CalibrationDataReader):
            def __init__(self):
                self.items = iter([{"input": rng.standard_normal((1, 3, 32, 32)).astype(np.float32)}
                                   for _ in range(16)])

            def get_next(self):
                return next(self.items, None)

        quantize_static(str(fp32), str(path), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax,
                        extra_options={"ActivationSymmetric": True, "QuantizeBias": False})


# ---------------------------------------------------------------------------------- onnx.helper models
def if_conv(path: Path) -> None:
    """Convolutions inside both branches of an If, chosen by a second input (`flag` > 0). Each branch holds its
    weights as Constant nodes, as torch.jit.script exports do, and reads the graph input `x` from the outer
    scope; no outer node reads `x`, so float16 conversion with keep_io_types casts nothing for the branches."""
    rng = np.random.default_rng(0)

    def branch(tag: str) -> onnx.GraphProto:
        w1 = rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.2
        b1 = rng.standard_normal(8).astype(np.float32) * 0.1
        w2 = rng.standard_normal((4, 8, 3, 3)).astype(np.float32) * 0.2
        nodes = [
            helper.make_node("Constant", [], [f"{tag}_w1"], name=f"{tag}/w1", value=_init(f"{tag}_w1v", w1)),
            helper.make_node("Constant", [], [f"{tag}_b1"], name=f"{tag}/b1", value=_init(f"{tag}_b1v", b1)),
            helper.make_node("Constant", [], [f"{tag}_w2"], name=f"{tag}/w2", value=_init(f"{tag}_w2v", w2)),
            helper.make_node("Conv", ["x", f"{tag}_w1", f"{tag}_b1"], [f"{tag}_c1"], name=f"{tag}/conv1",
                             pads=[1, 1, 1, 1]),
            helper.make_node("Relu", [f"{tag}_c1"], [f"{tag}_r1"], name=f"{tag}/relu1"),
            helper.make_node("Conv", [f"{tag}_r1", f"{tag}_w2"], [f"{tag}_out"], name=f"{tag}/conv2",
                             pads=[1, 1, 1, 1]),
        ]
        out = helper.make_tensor_value_info(f"{tag}_out", TensorProto.FLOAT, [1, 4, 16, 16])
        return helper.make_graph(nodes, f"{tag}_branch", [], [out])

    nodes = [
        helper.make_node("Greater", ["flag", "zero"], ["cond"], name="is_positive"),
        helper.make_node("If", ["cond"], ["y"], name="branch_on_mean",
                         then_branch=branch("then"), else_branch=branch("else")),
        helper.make_node("Relu", ["y"], ["out"], name="out_relu"),
    ]
    g = helper.make_graph(
        nodes, "if_conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16]),
         helper.make_tensor_value_info("flag", TensorProto.FLOAT, [])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4, 16, 16])],
        [_init("zero", np.array(0.0, np.float32))])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)]), path)


def scan_loop(path: Path) -> None:
    """A minimal RNN written as a Scan over the time axis: h' = Tanh(x_t W + h U + b); outputs the final state
    and every step's state. Input x [T=8, 4] (static), initial state h0 [8]; the body has 5 nodes."""
    rng = np.random.default_rng(0)
    W = rng.standard_normal((4, 8)).astype(np.float32) * 0.5
    U = rng.standard_normal((8, 8)).astype(np.float32) * 0.3
    b = rng.standard_normal(8).astype(np.float32) * 0.1
    body = helper.make_graph(
        [helper.make_node("MatMul", ["x_t", "W"], ["xw"], name="body/x_proj"),
         helper.make_node("MatMul", ["h", "U"], ["hu"], name="body/h_proj"),
         helper.make_node("Add", ["xw", "hu"], ["s"], name="body/add"),
         helper.make_node("Add", ["s", "b"], ["sb"], name="body/bias"),
         helper.make_node("Tanh", ["sb"], ["h_next"], name="body/tanh"),
         helper.make_node("Identity", ["h_next"], ["y_t"], name="body/emit")],
        "rnn_step",
        [helper.make_tensor_value_info("h", TensorProto.FLOAT, [8]),
         helper.make_tensor_value_info("x_t", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("h_next", TensorProto.FLOAT, [8]),
         helper.make_tensor_value_info("y_t", TensorProto.FLOAT, [8])])
    nodes = [
        helper.make_node("Scan", ["h0", "x"], ["h_final", "ys"], name="rnn_scan", body=body, num_scan_inputs=1),
        helper.make_node("Relu", ["ys"], ["states"], name="states_relu"),
    ]
    g = helper.make_graph(
        nodes, "scan_loop",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [8, 4]),
         helper.make_tensor_value_info("h0", TensorProto.FLOAT, [8])],
        [helper.make_tensor_value_info("h_final", TensorProto.FLOAT, [8]),
         helper.make_tensor_value_info("states", TensorProto.FLOAT, [8, 8])],
        [_init("W", W), _init("U", U), _init("b", b)])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)]), path)


def neg_dim(path: Path) -> None:
    """Paddle2ONNX-style: the batch dim is declared `dim_value: -1` (no dim_param), most nodes have no name,
    tensor names like Paddle's (`conv2d_0.tmp_0`), weights as initializers."""
    rng = np.random.default_rng(0)
    inits = [
        _init("conv2d_0.w_0", rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.2),
        _init("conv2d_0.b_0", np.zeros(8, np.float32)),
        _init("batch_norm_0.w_0", np.ones(8, np.float32)),
        _init("batch_norm_0.b_0", np.zeros(8, np.float32)),
        _init("batch_norm_0.w_1", rng.uniform(-0.1, 0.1, 8).astype(np.float32)),
        _init("batch_norm_0.w_2", rng.uniform(0.5, 1.5, 8).astype(np.float32)),
        _init("linear_0.w_0", rng.standard_normal((8, 5)).astype(np.float32) * 0.3),
        _init("linear_0.b_0", np.zeros(5, np.float32)),
        _init("shape_0", np.array([-1, 8], np.int64)),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "conv2d_0.w_0", "conv2d_0.b_0"], ["conv2d_0.tmp_0"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["conv2d_0.tmp_0", "batch_norm_0.w_0", "batch_norm_0.b_0",
                                                "batch_norm_0.w_1", "batch_norm_0.w_2"], ["batch_norm_0.tmp_2"],
                         epsilon=1e-5),
        helper.make_node("Relu", ["batch_norm_0.tmp_2"], ["relu_0.tmp_0"]),
        helper.make_node("GlobalAveragePool", ["relu_0.tmp_0"], ["pool2d_0.tmp_0"]),
        helper.make_node("Reshape", ["pool2d_0.tmp_0", "shape_0"], ["reshape2_0.tmp_0"], name="p2o.Reshape.0"),
        helper.make_node("MatMul", ["reshape2_0.tmp_0", "linear_0.w_0"], ["linear_0.tmp_0"]),
        helper.make_node("Add", ["linear_0.tmp_0", "linear_0.b_0"], ["linear_0.tmp_1"]),
        helper.make_node("Softmax", ["linear_0.tmp_1"], ["softmax_0.tmp_0"], axis=-1),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [-1, 3, 16, 16])
    y = helper.make_tensor_value_info("softmax_0.tmp_0", TensorProto.FLOAT, [-1, 5])
    g = helper.make_graph(nodes, "paddle-infer", [x], [y], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 11)], producer_name="PaddlePaddle",
                          producer_version="2.4")
    m.ir_version = 6
    onnx.save(m, path)


def shared_sym_dims(path: Path) -> None:
    """Fully convolutional model whose input is ['N', 3, 'S', 'S']: one symbolic name for H and W, so
    TensorRT forces H == W in every profile."""
    rng = np.random.default_rng(0)
    inits = [
        _init("w1", rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.2),
        _init("b1", np.zeros(8, np.float32)),
        _init("w2", rng.standard_normal((2, 8, 1, 1)).astype(np.float32) * 0.3),
        _init("b2", np.zeros(2, np.float32)),
    ]
    nodes = [
        helper.make_node("Conv", ["image", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2"),
        helper.make_node("Sigmoid", ["c2"], ["mask"], name="sigmoid"),
    ]
    g = helper.make_graph(
        nodes, "shared_sym_dims",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, "S", "S"])],
        [helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["N", 2, "S", "S"])], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)]), path)


FIXTURES: dict[str, Callable[[Path], None]] = {
    "vit_2block": vit_2block,
    "gpt2_2layer": gpt2_2layer,
    "bert_tiny_mask": bert_tiny_mask,
    "if_conv": if_conv,
    "scan_loop": scan_loop,
    "neg_dim": neg_dim,
    "qdq_cnn": qdq_cnn,
    "yolo_neck": yolo_neck,
    "shared_sym_dims": shared_sym_dims,
    "int_input_classifier": int_input_classifier,
}

# Concrete shapes for one check run (dynamic dims set to these values).
RUN_DIMS = {"batch": 2, "sequence": 16, "N": 2, "S": 24}


def _feed(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    init_names = {i.name for i in model.graph.initializer}
    feed = {}
    for inp in model.graph.input:
        if inp.name in init_names:
            continue
        tt = inp.type.tensor_type
        shape = []
        for d in tt.shape.dim:
            if d.HasField("dim_value") and d.dim_value > 0:
                shape.append(d.dim_value)
            else:
                shape.append(RUN_DIMS.get(d.dim_param, 2))
        dtype = helper.tensor_dtype_to_np_dtype(tt.elem_type)
        if np.issubdtype(dtype, np.integer):
            hi = 2 if "mask" in inp.name or "type" in inp.name else 256
            arr = rng.integers(0, hi, shape).astype(dtype)
            if "mask" in inp.name:
                arr[..., :4] = 1
        else:
            arr = rng.standard_normal(shape).astype(dtype)
        feed[inp.name] = arr
    return feed


def check(path: Path) -> str:
    import onnxruntime as ort

    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=False)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outs = sess.run(None, _feed(model))
    return ", ".join(f"{o.name}{list(a.shape)}" for o, a in zip(sess.get_outputs(), outs, strict=True))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[2] / "tests" / "fixtures")
    ap.add_argument("--only", nargs="*", choices=sorted(FIXTURES), help="make only these")
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    failed = 0
    for name in a.only or FIXTURES:
        path = a.out / f"{name}.onnx"
        try:
            FIXTURES[name](path)
            summary = check(path)
            print(f"{name}: {path.stat().st_size / 1024:.0f} KiB, ORT ok: {summary}")
        except Exception as exc:  # report and carry on with the others
            failed += 1
            print(f"{name}: FAILED {type(exc).__name__}: {exc}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
