"""Generate the bundled sample models, their data files and ``catalog.json``.

Run from the repository root::

    python sample_models/generate.py            # writes into sample_models/
    python sample_models/generate.py --out DIR  # writes into DIR (used by the determinism test)

Every model is built with ``onnx.helper`` and numpy from a fixed seed (no torch, no download), uses
opset 17, and passes ``onnx.checker.check_model(full_check=True)``. ``digits_mlp`` is trained with
scikit-learn on its bundled ``load_digits`` data set, seeded; its weights are copied by hand into
Gemm/Relu nodes, and the ONNX model's ONNX Runtime predictions are checked against scikit-learn's.

Output is deterministic: re-running writes byte-identical ``.onnx`` files and ``catalog.json``. An
``.npz`` file (a zip archive with time stamps) is only rewritten when its arrays change.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

log = logging.getLogger("generate")

OPSET = 17
HERE = Path(__file__).resolve().parent
PRODUCER = "trt-workbench sample_models/generate.py"


# --------------------------------------------------------------------------------------------------
# Helpers


class GraphBuilder:
    """Collects nodes and initializers; every node gets an explicit, unique, readable name."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._names: set[str] = set()

    def const(self, name: str, value: np.ndarray | float | list, dtype=np.float32) -> str:
        arr = np.asarray(value, dtype=dtype)
        self.inits.append(numpy_helper.from_array(arr, name))
        return name

    def node(self, op: str, inputs: list[str], name: str, output: str | None = None, **attrs) -> str:
        if name in self._names:
            raise ValueError(f"duplicate node name {name!r}")
        self._names.add(name)
        out = output or f"{name}_out"
        self.nodes.append(helper.make_node(op, inputs, [out], name=name, **attrs))
        return out

    def model(self, graph_name: str, inputs, outputs, doc: str) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, graph_name, inputs, outputs, self.inits)
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name=PRODUCER, doc_string=doc
        )
        # Store inferred intermediate shapes so graph viewers show them.
        model = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
        onnx.checker.check_model(model, full_check=True)
        return model


def _he(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int) -> np.ndarray:
    return (rng.standard_normal(shape) * math.sqrt(2.0 / fan_in)).astype(np.float32)


# --------------------------------------------------------------------------------------------------
# 1. cnn_residual


def _conv_bn(g: GraphBuilder, x: str, prefix: str, cin: int, cout: int, relu: bool) -> str:
    """conv (no bias, as exported before a BN) -> BatchNormalization with non-trivial statistics."""
    rng = g.rng
    w = g.const(f"{prefix}/conv.weight", _he(rng, (cout, cin, 3, 3), cin * 9))
    y = g.node("Conv", [x, w], f"{prefix}/conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    scale = g.const(f"{prefix}/bn.weight", rng.uniform(0.8, 1.2, cout))
    bias = g.const(f"{prefix}/bn.bias", rng.normal(0.0, 0.1, cout))
    mean = g.const(f"{prefix}/bn.running_mean", rng.normal(0.0, 0.2, cout))
    var = g.const(f"{prefix}/bn.running_var", rng.uniform(0.5, 1.5, cout))
    y = g.node("BatchNormalization", [y, scale, bias, mean, var], f"{prefix}/bn", epsilon=1e-5)
    if relu:
        y = g.node("Relu", [y], f"{prefix}/relu")
    return y


def cnn_residual() -> onnx.ModelProto:
    g = GraphBuilder(seed=1)
    c = 16
    x = _conv_bn(g, "input", "stem", 3, c, relu=True)
    for b in (1, 2):
        y = _conv_bn(g, x, f"block{b}/a", c, c, relu=True)
        y = _conv_bn(g, y, f"block{b}/b", c, c, relu=False)
        y = g.node("Add", [y, x], f"block{b}/add")
        x = g.node("Relu", [y], f"block{b}/relu")
    x = g.node("GlobalAveragePool", [x], "head/pool")
    x = g.node("Flatten", [x], "head/flatten", axis=1)
    w = g.const("head/fc.weight", _he(g.rng, (10, c), c))
    bias = g.const("head/fc.bias", g.rng.normal(0.0, 0.05, 10))
    g.node("Gemm", [x, w, bias], "head/fc", output="logits", transB=1)
    return g.model(
        "cnn_residual",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        "Small residual CNN (stem + 2 basic blocks + GAP + Gemm) with random seeded weights.",
    )


# --------------------------------------------------------------------------------------------------
# 2. dynamic_2axis


def dynamic_2axis() -> onnx.ModelProto:
    g = GraphBuilder(seed=2)
    rng = g.rng
    w1 = g.const("enc/conv.weight", _he(rng, (8, 3, 3, 3), 27))
    b1 = g.const("enc/conv.bias", rng.normal(0.0, 0.05, 8))
    x = g.node("Conv", ["image", w1, b1], "enc/conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    x = g.node("Relu", [x], "enc/relu")
    w2 = g.const("head/conv.weight", _he(rng, (1, 8, 3, 3), 72))
    b2 = g.const("head/conv.bias", [0.0])
    x = g.node("Conv", [x, w2, b2], "head/conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    g.node("Sigmoid", [x], "head/sigmoid", output="mask")
    return g.model(
        "dynamic_2axis",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["batch", 1, "height", "width"])],
        "Fully-convolutional mask net with dynamic batch, height and width; random seeded weights.",
    )


# --------------------------------------------------------------------------------------------------
# 3. transformer_block

D_MODEL, N_HEADS, D_FF = 64, 4, 256
D_HEAD = D_MODEL // N_HEADS


def _linear(g: GraphBuilder, x: str, prefix: str, cin: int, cout: int) -> str:
    """MatMul + bias Add, the way PyTorch exports nn.Linear on 3-D inputs."""
    w = g.const(f"{prefix}.weight", (g.rng.standard_normal((cin, cout)) / math.sqrt(cin)).astype(np.float32))
    b = g.const(f"{prefix}.bias", g.rng.normal(0.0, 0.02, cout))
    y = g.node("MatMul", [x, w], f"{prefix}/matmul")
    return g.node("Add", [y, b], f"{prefix}/bias")


def _layer_norm(g: GraphBuilder, x: str, prefix: str) -> str:
    gamma = g.const(f"{prefix}.weight", g.rng.uniform(0.9, 1.1, D_MODEL))
    beta = g.const(f"{prefix}.bias", g.rng.normal(0.0, 0.02, D_MODEL))
    return g.node("LayerNormalization", [x, gamma, beta], f"{prefix}/layernorm", axis=-1, epsilon=1e-5)


def transformer_block() -> onnx.ModelProto:
    g = GraphBuilder(seed=3)
    split_shape = g.const("attn/split_heads.shape", [0, 0, N_HEADS, D_HEAD], np.int64)
    merge_shape = g.const("attn/merge_heads.shape", [0, 0, D_MODEL], np.int64)
    scale = g.const("attn/scale.value", 1.0 / math.sqrt(D_HEAD))

    h = _layer_norm(g, "hidden", "ln1")
    heads = {}
    for p, perm in (("q", [0, 2, 1, 3]), ("k", [0, 2, 3, 1]), ("v", [0, 2, 1, 3])):
        y = _linear(g, h, f"attn/{p}_proj", D_MODEL, D_MODEL)
        y = g.node("Reshape", [y, split_shape], f"attn/{p}_split_heads")
        heads[p] = g.node("Transpose", [y], f"attn/{p}_transpose", perm=perm)
    s = g.node("MatMul", [heads["q"], heads["k"]], "attn/qk_matmul")  # [b, h, s, s]
    s = g.node("Mul", [s, scale], "attn/scale")
    s = g.node("Softmax", [s], "attn/softmax", axis=-1)
    a = g.node("MatMul", [s, heads["v"]], "attn/av_matmul")  # [b, h, s, d]
    a = g.node("Transpose", [a], "attn/merge_transpose", perm=[0, 2, 1, 3])
    a = g.node("Reshape", [a, merge_shape], "attn/merge_heads")
    a = _linear(g, a, "attn/out_proj", D_MODEL, D_MODEL)
    x = g.node("Add", ["hidden", a], "attn/residual")

    h = _layer_norm(g, x, "ln2")
    h = _linear(g, h, "mlp/fc1", D_MODEL, D_FF)
    # GELU, erf formulation as torch.onnx exports it: x * 0.5 * (1 + erf(x / sqrt(2)))
    sqrt2 = g.const("mlp/gelu.sqrt2", math.sqrt(2.0))
    one = g.const("mlp/gelu.one", 1.0)
    half = g.const("mlp/gelu.half", 0.5)
    t = g.node("Div", [h, sqrt2], "mlp/gelu/div")
    t = g.node("Erf", [t], "mlp/gelu/erf")
    t = g.node("Add", [t, one], "mlp/gelu/add")
    t = g.node("Mul", [h, t], "mlp/gelu/mul")
    h = g.node("Mul", [t, half], "mlp/gelu/mul_half")
    h = _linear(g, h, "mlp/fc2", D_FF, D_MODEL)
    g.node("Add", [x, h], "mlp/residual", output="output")
    return g.model(
        "transformer_block",
        [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["batch", "seq", D_MODEL])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", "seq", D_MODEL])],
        "One pre-LayerNorm transformer encoder block (d_model 64, 4 heads, GELU MLP); random seeded weights.",
    )


# --------------------------------------------------------------------------------------------------
# 4. digits_mlp (trained)

DIGITS_SEED = 0
N_CALIB = 256


def digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits, scaled to [0, 1], split 75/25 stratified with a fixed seed."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, stratify=y, random_state=DIGITS_SEED)
    return x_tr, x_te, y_tr, y_te


def digits_mlp() -> tuple[onnx.ModelProto, dict[str, dict[str, np.ndarray]]]:
    """Train an MLPClassifier, copy its weights into Gemm/Relu nodes, check ORT against sklearn."""
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits

    x_tr, x_te, y_tr, y_te = digits_split()
    clf = MLPClassifier(
        hidden_layer_sizes=(64, 32), activation="relu", solver="adam", max_iter=400, random_state=DIGITS_SEED
    )
    # One BLAS thread: OpenBLAS results depend on the thread count (seen: 1 vs 2 threads give other weights).
    with threadpool_limits(limits=1):
        clf.fit(x_tr, y_tr)

    g = GraphBuilder(seed=4)
    x = "input"
    n_layers = len(clf.coefs_)
    for i, (w, b) in enumerate(zip(clf.coefs_, clf.intercepts_, strict=True), start=1):
        prefix = f"fc{i}" if i < n_layers else "head"
        wn = g.const(f"{prefix}.weight", w.astype(np.float32))  # [in, out]: Gemm without transB
        bn = g.const(f"{prefix}.bias", b.astype(np.float32))
        last = i == n_layers
        x = g.node("Gemm", [x, wn, bn], f"{prefix}/gemm", output="logits" if last else None)
        if not last:
            x = g.node("Relu", [x], f"{prefix}/relu")
    model = g.model(
        "digits_mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        "MLP (64-64-32-10) trained with scikit-learn on the 8x8 digits data set; outputs logits.",
    )

    ort_pred = _ort_run(model, {"input": x_te})[0].argmax(axis=1)
    sk_pred = clf.predict(x_te)
    ort_acc = float((ort_pred == y_te).mean())
    sk_acc = float((sk_pred == y_te).mean())
    log.info("digits_mlp: sklearn test accuracy %.4f, ONNX Runtime %.4f (n=%d)", sk_acc, ort_acc, len(y_te))
    if ort_acc != sk_acc or not np.array_equal(ort_pred, sk_pred):
        raise RuntimeError(
            f"ONNX export disagrees with scikit-learn: ORT {ort_acc:.4f} vs sklearn {sk_acc:.4f}"
        )

    data = {
        "digits_calib.npz": {"input": np.ascontiguousarray(x_tr[:N_CALIB], dtype=np.float32)},
        "digits_test.npz": {
            "input": np.ascontiguousarray(x_te, dtype=np.float32),
            "label": np.ascontiguousarray(y_te, dtype=np.int64),
        },
    }
    return model, data


def _ort_run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


# --------------------------------------------------------------------------------------------------
# Catalog


def _profile(name: str, mn: list[int], opt: list[int], mx: list[int]) -> dict:
    return {"min": {name: mn}, "opt": {name: opt}, "max": {name: mx}}


CATALOG: list[dict] = [
    {
        "name": "cnn_residual",
        "file": "cnn_residual.onnx",
        "title": "Residual CNN (32x32 images)",
        "description": "A stem and two residual blocks of Conv, BatchNormalization and Relu, then global "
        "pooling and a Gemm classifier with 10 outputs. Random seeded weights; dynamic batch.",
        "shows": ["fusion", "conv-bn-relu", "residual-add", "dynamic-batch"],
        "suggested_profiles": [_profile("input", [1, 3, 32, 32], [8, 3, 32, 32], [32, 3, 32, 32])],
    },
    {
        "name": "dynamic_2axis",
        "file": "dynamic_2axis.onnx",
        "title": "Mask net with dynamic height and width",
        "description": "A small fully-convolutional net (Conv, Relu, Conv, Sigmoid) that maps an image of any "
        "size to a one-channel mask: batch, height and width are all dynamic.",
        "shows": ["optimization-profiles", "dynamic-spatial", "dynamic-batch"],
        "suggested_profiles": [_profile("image", [1, 3, 64, 64], [4, 3, 128, 128], [8, 3, 256, 256])],
    },
    {
        "name": "transformer_block",
        "file": "transformer_block.onnx",
        "title": "Transformer encoder block (dynamic sequence)",
        "description": "One pre-LayerNorm encoder block: 4-head self-attention and a GELU (erf) MLP, both with "
        "residual connections, d_model 64. Random seeded weights; dynamic batch and sequence length.",
        "shows": ["fusion", "attention", "layernorm", "gelu", "dynamic-sequence"],
        "suggested_profiles": [_profile("hidden", [1, 16, 64], [8, 64, 64], [32, 128, 64])],
    },
    {
        "name": "digits_mlp",
        "file": "digits_mlp.onnx",
        "title": "Digits classifier (trained MLP)",
        "description": "An MLP trained with scikit-learn on its bundled 8x8 handwritten digits; outputs 10 "
        "logits. Comes with calibration data from the training split and a labelled held-out test split.",
        "shows": ["int8-quantization", "calibration", "accuracy", "dynamic-batch"],
        "data": {"calibration": "digits_calib.npz", "test": "digits_test.npz"},
        "suggested_profiles": [_profile("input", [1, 64], [32, 64], [256, 64])],
    },
]

BUILDERS: dict[str, Callable[[], onnx.ModelProto]] = {
    "cnn_residual": cnn_residual,
    "dynamic_2axis": dynamic_2axis,
    "transformer_block": transformer_block,
}


# --------------------------------------------------------------------------------------------------
# Writing


def _write_bytes(path: Path, data: bytes) -> None:
    if path.exists() and path.read_bytes() == data:
        log.info("%s unchanged", path.name)
        return
    path.write_bytes(data)
    log.info("wrote %s (%d bytes)", path.name, len(data))


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez`` stores zip time stamps, so only rewrite when names, dtypes or values differ."""
    if path.exists():
        with np.load(path, allow_pickle=False) as old:
            same = sorted(old.files) == sorted(arrays) and all(
                old[k].dtype == v.dtype and np.array_equal(old[k], v) for k, v in arrays.items()
            )
        if same:
            log.info("%s unchanged", path.name)
            return
    np.savez(path, **arrays)
    log.info(
        "wrote %s (%s)", path.name, ", ".join(f"{k} {v.dtype}{list(v.shape)}" for k, v in arrays.items())
    )


def _catalog_json(entries: list[dict]) -> str:
    """Indented JSON, with lists of scalars (shapes, tags) kept on one line."""
    text = json.dumps(entries, indent=2)
    return re.sub(
        r"\[\s*((?:-?\d+|\"[^\"\n]*\")(?:,\s*(?:-?\d+|\"[^\"\n]*\"))*)\s*\]",
        lambda m: "[" + ", ".join(part.strip() for part in m.group(1).split(",")) + "]",
        text,
    )


def generate(out: Path) -> list[Path]:
    """Build every sample into ``out``; returns the files written (or left unchanged)."""
    out.mkdir(parents=True, exist_ok=True)
    models = {name: build() for name, build in BUILDERS.items()}
    models["digits_mlp"], data = digits_mlp()
    files: list[Path] = []
    for entry in CATALOG:
        path = out / entry["file"]
        _write_bytes(path, models[entry["name"]].SerializeToString())
        files.append(path)
    for fname, arrays in data.items():
        _write_npz(out / fname, arrays)
        files.append(out / fname)
    catalog = out / "catalog.json"
    _write_bytes(catalog, (_catalog_json(CATALOG) + "\n").encode())
    files.append(catalog)
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="output folder (default: %(default)s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    generate(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
