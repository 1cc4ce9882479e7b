"""Regenerate the golden TensorRT-RTX build logs in this folder (test support; not part of the package).

Run from the repository root, with the project's virtual environment active::

    python tests/golden/make_golden.py            # rewrites the models and logs in tests/golden/
    python tests/golden/make_golden.py --out DIR  # writes them into DIR instead
    python tests/golden/make_golden.py --only cnn_fp16_fc_fp32  # just that build

Each model is built with ``onnx.helper`` from a fixed seed, saved next to its log, and built with the Polygraphy CLI
under ``POLYGRAPHY_USE_TENSORRT_RTX=1`` at ``--verbosity extra_verbose`` (the format the workbench's build worker
writes). The exact command line of each build is written into ``<name>.cmd`` next to the log. Logs are kept whole
unless they exceed ``MAX_LOG_BYTES``; then only the tail from the last "Engine generation completed" line is kept,
and the ``.cmd`` file says so. The functions below are also imported by the tests (``tests/test_fusion.py``) to
build fresh models for a real build inside the test.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent
OPSET = 17
MAX_LOG_BYTES = 280_000


class _G:
    """Collects nodes and initializers with explicit, unique node names."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def const(self, name: str, value, dtype=np.float32) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def rand(self, name: str, shape: tuple[int, ...], scale: float = 0.1) -> str:
        return self.const(name, self.rng.normal(size=shape) * scale)

    def node(self, op: str, inputs: list[str], name: str, n_out: int = 1, **attrs) -> str:
        outs = [name if n_out == 1 else f"{name}:{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op, inputs, outs, name=name, **attrs))
        return outs[0]

    def model(self, name: str, inputs, outputs) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, name, inputs, outputs, self.inits)
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            producer_name="trt-workbench tests/golden/make_golden.py",
        )
        model.ir_version = 8
        onnx.checker.check_model(model, full_check=True)
        return model


def _conv_bn(g: _G, x: str, prefix: str, cin: int, cout: int, relu: bool) -> str:
    w = g.rand(f"{prefix}/conv.w", (cout, cin, 3, 3), scale=(2.0 / (cin * 9)) ** 0.5)
    b = g.const(f"{prefix}/conv.b", np.zeros(cout))
    y = g.node("Conv", [x, w, b], f"{prefix}/conv", pads=[1, 1, 1, 1])
    bn = [
        g.const(f"{prefix}/bn.{k}", v)
        for k, v in (
            ("scale", 1 + 0.1 * g.rng.normal(size=cout)),
            ("bias", 0.1 * g.rng.normal(size=cout)),
            ("mean", 0.1 * g.rng.normal(size=cout)),
            ("var", 1 + 0.1 * g.rng.random(cout)),
        )
    ]
    y = g.node("BatchNormalization", [y, *bn], f"{prefix}/bn")
    return g.node("Relu", [y], f"{prefix}/relu") if relu else y


def cnn() -> onnx.ModelProto:
    """Stem conv→bn→relu, one residual block (conv→bn→relu→conv→bn, add, relu), GAP→Flatten→Gemm.

    Also an Identity (a no-op TensorRT eliminates) and a Transpose of the FC weight initializer (a node TensorRT
    folds at build time), so the fusion report has something to say about each kind of node.
    """
    g = _G(seed=7)
    x = _conv_bn(g, "x", "stem", 3, 8, relu=True)
    y = _conv_bn(g, x, "block/a", 8, 8, relu=True)
    y = _conv_bn(g, y, "block/b", 8, 8, relu=False)
    y = g.node("Add", [y, x], "block/add")
    y = g.node("Relu", [y], "block/relu")
    y = g.node("Identity", [y], "block/identity")
    y = g.node("GlobalAveragePool", [y], "head/pool")
    y = g.node("Flatten", [y], "head/flatten")
    w_t = g.node("Transpose", [g.rand("head/fc.w_t", (10, 8))], "head/fc_weight_transpose", perm=[1, 0])
    y = g.node("Gemm", [y, w_t, g.const("head/fc.b", np.zeros(10))], "head/fc")
    g.nodes[-1].output[0] = "logits"
    return g.model(
        "golden_cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 16, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
    )


def cnn_fp16() -> onnx.ModelProto:
    """The CNN converted to FP16 the way the workbench does it for a strongly typed build (I/O stays FP32)."""
    from onnxconverter_common import float16

    return float16.convert_float_to_float16(cnn(), keep_io_types=True)


def cnn_fp16_fc_fp32() -> onnx.ModelProto:
    """The CNN converted to FP16 with its Gemm kept in FP32 (``node_block_list``): a real FP32 layer in an FP16
    engine. TensorRT-RTX fuses the Casts around it into neighbouring kernels, so one FP16 kernel writes FP32 and the
    FP32 GEMM writes FP16: what a layer computes in and what it writes differ in both directions."""
    from onnxconverter_common import float16

    return float16.convert_float_to_float16(cnn(), keep_io_types=True, node_block_list=["head/fc"])


def transformer(d: int = 32, heads: int = 2) -> onnx.ModelProto:
    """One pre-norm transformer block on x[batch, seq, d] with a dynamic sequence length.

    LayerNormalization → Q/K/V MatMul+Add → Reshape/Transpose to heads → MatMul → Mul(scale) → Softmax → MatMul →
    Transpose/Reshape → out-proj MatMul+Add → residual Add → LayerNormalization → MLP with an Erf GELU → residual Add.
    The merge-heads Reshape takes its target shape from Shape→Gather→Unsqueeze→Concat (a shape computation).
    """
    g = _G(seed=11)
    dh = d // heads

    def ln(x: str, prefix: str) -> str:
        return g.node(
            "LayerNormalization",
            [
                x,
                g.const(f"{prefix}.g", 1 + 0.1 * g.rng.normal(size=d)),
                g.const(f"{prefix}.b", 0.1 * g.rng.normal(size=d)),
            ],
            prefix,
            axis=-1,
        )

    def linear(x: str, prefix: str, cin: int, cout: int) -> str:
        y = g.node("MatMul", [x, g.rand(f"{prefix}.w", (cin, cout), scale=cin**-0.5)], f"{prefix}/matmul")
        return g.node("Add", [y, g.const(f"{prefix}.b", 0.02 * g.rng.normal(size=cout))], f"{prefix}/bias")

    h = ln("x", "attn/ln")
    split_shape = g.const("attn/split_shape", [0, -1, heads, dh], dtype=np.int64)
    qkv = []
    for name in ("q", "k", "v"):
        t = linear(h, f"attn/{name}", d, d)
        t = g.node("Reshape", [t, split_shape], f"attn/{name}/split_heads")
        perm = [0, 2, 3, 1] if name == "k" else [0, 2, 1, 3]
        qkv.append(g.node("Transpose", [t], f"attn/{name}/transpose", perm=perm))
    s = g.node("MatMul", [qkv[0], qkv[1]], "attn/scores")
    s = g.node("Mul", [s, g.const("attn/scale", dh**-0.5)], "attn/scale_mul")
    p = g.node("Softmax", [s], "attn/softmax", axis=-1)
    o = g.node("MatMul", [p, qkv[2]], "attn/context")
    o = g.node("Transpose", [o], "attn/merge/transpose", perm=[0, 2, 1, 3])
    shp = g.node("Shape", ["x"], "attn/merge/shape")
    b = g.node("Gather", [shp, g.const("attn/merge/i0", 0, dtype=np.int64)], "attn/merge/batch", axis=0)
    t = g.node("Gather", [shp, g.const("attn/merge/i1", 1, dtype=np.int64)], "attn/merge/seq", axis=0)
    axes0 = g.const("attn/merge/axes0", [0], dtype=np.int64)
    b = g.node("Unsqueeze", [b, axes0], "attn/merge/batch_1d")
    t = g.node("Unsqueeze", [t, axes0], "attn/merge/seq_1d")
    target = g.node(
        "Concat", [b, t, g.const("attn/merge/d", [d], dtype=np.int64)], "attn/merge/target", axis=0
    )
    o = g.node("Reshape", [o, target], "attn/merge/reshape")
    o = linear(o, "attn/out", d, d)
    x1 = g.node("Add", ["x", o], "attn/residual")
    h = ln(x1, "mlp/ln")
    h = linear(h, "mlp/fc1", d, 2 * d)
    e = g.node("Div", [h, g.const("mlp/gelu/sqrt2", 2**0.5)], "mlp/gelu/div")
    e = g.node("Erf", [e], "mlp/gelu/erf")
    e = g.node("Add", [e, g.const("mlp/gelu/one", 1.0)], "mlp/gelu/add")
    e = g.node("Mul", [h, e], "mlp/gelu/mul")
    e = g.node("Mul", [e, g.const("mlp/gelu/half", 0.5)], "mlp/gelu/half_mul")
    e = linear(e, "mlp/fc2", 2 * d, d)
    g.node("Add", [x1, e], "mlp/residual")
    g.nodes[-1].output[0] = "y"
    return g.model(
        "golden_transformer",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", d])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", d])],
    )


def mlp_int8_weights() -> onnx.ModelProto:
    """x[batch, 64] → MatMul with INT8 weights (DequantizeLinear on the weight only) → Relu, whose node is unnamed.

    TensorRT-RTX runs INT8 as weight-only GEMM: the listing shows Int8 constants with Float activations. The unnamed
    Relu shows how the parser names nodes that have no name (``node_of_<first output>``).
    """
    g = _G(seed=5)
    w = np.clip(np.round(g.rng.normal(size=(64, 32)) * 40), -127, 127)
    g.const("fc/w.q", w, dtype=np.int8)
    g.const("fc/w.scale", np.full(32, 0.01), dtype=np.float32)
    g.const("fc/w.zero", np.zeros(32), dtype=np.int8)
    w_dq = g.node("DequantizeLinear", ["fc/w.q", "fc/w.scale", "fc/w.zero"], "fc/w_dequant", axis=1)
    h = g.node("MatMul", ["x", w_dq], "fc/matmul")
    g.nodes.append(helper.make_node("Relu", [h], ["y"]))  # deliberately unnamed
    return g.model(
        "golden_mlp_int8w",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 32])],
    )


def cnn_qdq_int8() -> onnx.ModelProto:
    """Explicitly quantized conv→relu→conv→pool→flatten→matmul with Q/DQ on activations, INT8 weights.

    A strongly typed build runs these convolutions in INT8 (INT8 inputs and weights, dequantized output). Around the
    Flatten a DequantizeLinear→Flatten→QuantizeLinear chain shares one scale, which TensorRT cancels.
    """
    g = _G(seed=3)

    def qdq(x: str, name: str, scale: float, share: str = "") -> str:
        if share:  # reuse another pair's scale and zero point (as ONNX Runtime's quantizer does around views)
            s, z = f"{share}.scale", f"{share}.zero"
        else:
            s, z = g.const(f"{name}.scale", scale), g.const(f"{name}.zero", 0, dtype=np.int8)
        q = g.node("QuantizeLinear", [x, s, z], f"{name}/quantize")
        return g.node("DequantizeLinear", [q, s, z], f"{name}/dequantize")

    def conv(x: str, name: str, cin: int, cout: int) -> str:
        w = np.clip(np.round(g.rng.normal(size=(cout, cin, 3, 3)) * 30), -127, 127)
        g.const(f"{name}/w.q", w, dtype=np.int8)
        g.const(f"{name}/w.scale", np.full(cout, 0.01), dtype=np.float32)
        g.const(f"{name}/w.zero", np.zeros(cout), dtype=np.int8)
        wd = g.node(
            "DequantizeLinear",
            [f"{name}/w.q", f"{name}/w.scale", f"{name}/w.zero"],
            f"{name}/w_dequant",
            axis=0,
        )
        return g.node(
            "Conv", [x, wd, g.const(f"{name}/b", np.zeros(cout))], f"{name}/conv", pads=[1, 1, 1, 1]
        )

    y = conv(qdq("x", "in", 0.02), "c1", 3, 8)
    y = g.node("Relu", [y], "c1/relu")
    y = conv(qdq(y, "c1_out", 0.05), "c2", 8, 8)
    y = g.node("GlobalAveragePool", [y], "head/pool")
    y = g.node("Flatten", [qdq(y, "pool_out", 0.05)], "head/flatten")
    y = qdq(
        y, "flatten_out", 0.05, share="pool_out"
    )  # DQ → Flatten → Q on one grid: TensorRT cancels the pair
    w = np.clip(np.round(g.rng.normal(size=(8, 10)) * 30), -127, 127)
    g.const("head/fc/w.q", w, dtype=np.int8)
    g.const("head/fc/w.scale", np.full(10, 0.01), dtype=np.float32)
    g.const("head/fc/w.zero", np.zeros(10), dtype=np.int8)
    wd = g.node(
        "DequantizeLinear", ["head/fc/w.q", "head/fc/w.scale", "head/fc/w.zero"], "head/fc/w_dequant", axis=1
    )
    g.node("MatMul", [y, wd], "head/fc")
    g.nodes[-1].output[0] = "y"
    return g.model(
        "golden_cnn_qdq_int8",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 10])],
    )


def deep_chain(pairs: int = 1000) -> onnx.ModelProto:
    """``pairs`` × (1×1 Conv → Sigmoid/Relu): TensorRT-RTX makes one engine layer per pair (big-engine tests)."""
    g = _G(seed=9)
    y = "x"
    for i in range(pairs):
        y = g.node("Conv", [y, g.rand(f"w{i}", (4, 4, 1, 1))], f"c{i}")
        y = g.node("Relu" if i % 2 else "Sigmoid", [y], f"a{i}")
    g.nodes[-1].output[0] = "y"
    return g.model(
        "deep_chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4, 8, 8])],
    )


DEEP_PROFILE = [{"x": ([1, 4, 8, 8], [2, 4, 8, 8], [4, 4, 8, 8])}]
_CNN_PROFILE = [{"x": ([1, 3, 16, 16], [4, 3, 16, 16], [8, 3, 16, 16])}]

# name -> (model factory, profiles [{input: (min, opt, max)}], profiling verbosity)
GOLDEN = {
    "cnn_fp32": (cnn, _CNN_PROFILE, "detailed"),
    "cnn_fp16": (cnn_fp16, _CNN_PROFILE, "detailed"),
    "cnn_fp16_fc_fp32": (cnn_fp16_fc_fp32, _CNN_PROFILE, "detailed"),
    "transformer_fp32": (
        transformer,
        [{"x": ([1, 4, 32], [1, 16, 32], [2, 32, 32])}, {"x": ([1, 32, 32], [4, 64, 32], [8, 128, 32])}],
        "detailed",
    ),
    "mlp_int8w": (mlp_int8_weights, [{"x": ([1, 64], [16, 64], [64, 64])}], "detailed"),
    "cnn_qdq_int8": (cnn_qdq_int8, _CNN_PROFILE, "detailed"),
    # The same CNN with layer names only: TensorRT-RTX then prints the shorter "Engine Layer Information" listing.
    "cnn_fp32_names_only": (cnn, _CNN_PROFILE, "layer_names_only"),
}


def all_golden() -> dict:
    """:data:`GOLDEN` and the builds of ``fusion_models.py`` (nodes TensorRT computes without listing them)."""
    if str(HERE.parent.parent) not in sys.path:  # run as a script: make ``tests`` and ``workbench`` importable
        sys.path.insert(0, str(HERE.parent.parent))
    from tests.golden import fusion_models

    return {**GOLDEN, **fusion_models.GOLDEN}


def _shape(dims: list[int]) -> str:
    return "[" + ",".join(str(d) for d in dims) + "]"


def convert_command(
    model_path: Path, plan_path: Path, profiles: list[dict], verbosity: str = "detailed"
) -> list[str]:
    """The Polygraphy CLI line that builds ``model_path`` with TensorRT-RTX and prints the layer listing."""
    cmd = ["polygraphy", "convert", str(model_path), "-o", str(plan_path)]
    for prof in profiles:
        for i, which in enumerate(("min", "opt", "max")):
            cmd += [f"--trt-{which}-shapes", *(f"{n}:{_shape(r[i])}" for n, r in prof.items())]
    return cmd + ["--profiling-verbosity", verbosity, "--verbosity", "extra_verbose"]


def build_log(
    model_path: Path, plan_path: Path, profiles: list[dict], verbosity: str = "detailed", timeout: float = 300
) -> str:
    """Build with TensorRT-RTX through the Polygraphy CLI in a subprocess; return the whole log (stdout+stderr)."""
    exe = Path(sys.executable).with_name("polygraphy")
    cmd = convert_command(model_path, plan_path, profiles, verbosity)
    if exe.exists():
        cmd[0] = str(exe)
    env = dict(os.environ, POLYGRAPHY_USE_TENSORRT_RTX="1")
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    text = proc.stdout.decode("utf-8", errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"polygraphy convert failed ({proc.returncode}):\n{text[-3000:]}")
    return text


def _versions() -> str:
    from importlib.metadata import version

    return ", ".join(
        f"{p} {version(p)}" for p in ("polygraphy", "tensorrt-rtx-cu13", "onnx", "onnxconverter-common")
    )


def generate(out: Path, only: list[str] | None = None) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (factory, profiles, verbosity) in all_golden().items():
        if only and name not in only:
            continue
        if isinstance(factory, Path):  # a committed fixture (tests/fixtures/), referred to by its relative path
            model_path = factory
            model_name = os.path.relpath(factory, out)
        else:
            model_name = factory.__name__ + ".onnx"
            model_path = out / model_name
            onnx.save(factory(), str(model_path))
        plan = out / f"{name}.plan"
        text = build_log(model_path, plan, profiles, verbosity)
        plan.unlink(missing_ok=True)
        note = "whole log"
        if len(text.encode()) > MAX_LOG_BYTES:
            cut = text.rfind("Engine generation completed")
            cut = text.rfind("\n", 0, cut) + 1
            text = text[cut:]
            note = "tail only: from the last 'Engine generation completed' line to the end"
        text = text.replace(str(model_path), model_name)
        text = text.replace(str(out) + os.sep, "")  # no machine paths in the golden files
        text = text.replace(sys.prefix, "<venv>")
        log_path = out / f"{name}.build.log"
        log_path.write_text(text)
        cmd = convert_command(Path(model_name), Path(f"{name}.plan"), profiles, verbosity)
        (out / f"{name}.cmd").write_text(
            "POLYGRAPHY_USE_TENSORRT_RTX=1 "
            + " ".join(shlex.quote(c) for c in cmd)
            + " > "
            + log_path.name
            + " 2>&1\n"
            + f"# kept: {note}\n# versions: {_versions()}\n"
        )
        written += [model_path, log_path]
    return sorted(set(written))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--only", nargs="+", choices=sorted(all_golden()), help="regenerate only these builds")
    args = parser.parse_args(argv)
    for path in generate(args.out, args.only):
        sys.stdout.write(f"{path} ({path.stat().st_size} bytes)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
