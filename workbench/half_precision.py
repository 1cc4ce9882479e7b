"""Convert an FP32 ONNX network to FP16 or BF16 for a strongly typed build (TensorRT-RTX, TensorRT >= 11).

The bulk of the work is ONNX Runtime's transformers FP16 converter (``onnxruntime.transformers.float16``, with the
element types from its symbolic shape inference, as ``OnnxModel.convert_float_to_float16`` runs it): unlike
onnxconverter-common's, it retargets shape-derived ``Cast(to=FLOAT)`` nodes (the ``Sqrt(Cast(Shape(x)))`` of
attention scaling) and converts ``If``/``Loop``/``Scan`` bodies with the outer graph. What it leaves behind is fixed
here: the Casts it appends to the main graph for nodes kept FP32 inside a subgraph are moved into that subgraph,
every remaining meeting of half and FP32 tensors gets a Cast (:mod:`workbench.network_types`), and the nodes are put
back in topological order. Graph inputs and outputs stay FP32; integer tensors are never touched.

BF16 takes the same placement and then retypes the half tensors as BF16, weights rounded from the original FP32
values (:mod:`workbench.bfloat16`). :func:`check_network` then checks the result with the ONNX checker, the
workbench's own type walk and one ONNX Runtime session before any TensorRT build sees it.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ModelError

log = logging.getLogger(__name__)

# Kept in FP32 on top of ONNX Runtime's own list (ML ops, TopK, Range, CumSum, NonMaxSuppression, RoiAlign, ...):
# ops TensorRT-RTX 1.7 does not take in that precision in a strongly typed network, found by converting and building
# a one-op model of each of ~80 ONNX ops on this machine. FP16: none. BF16: the parser asserts FP32/FP16 only for
# Mish, HardSwish and LpNormalization; its GRU importer mixes an FP32 constant into BF16 math ("ElementWiseOperation
# SUB must have same input types"); ConvTranspose parses but the builder cannot type it (Myelin "Could not infer
# output types").
TRT_FP32_OPS: dict[str, tuple[str, ...]] = {
    "fp16": (),
    "bf16": ("Mish", "HardSwish", "LpNormalization", "GRU", "ConvTranspose"),
}


@dataclass(frozen=True)
class Conversion:
    model: Any  # onnx.ModelProto
    precision: str  # "fp16" | "bf16"
    kept_fp32_ops: tuple[str, ...]
    kept_fp32_nodes: tuple[str, ...]
    casts_added: tuple[str, ...]  # one line per Cast the type repair inserted
    moved_into_subgraphs: int


def default_fp32_ops(precision: str) -> list[str]:
    """Op types a conversion to ``precision`` keeps in FP32 unless asked otherwise."""
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST

    return [*DEFAULT_OP_BLOCK_LIST, *TRT_FP32_OPS.get(precision, ())]


def convert_network(model: Any, precision: str, keep_nodes: Sequence[str] = (),
                    keep_ops: Sequence[str] = ()) -> Conversion:
    """A consistently typed FP16/BF16 version of ``model`` (FP32 graph inputs and outputs). ``keep_nodes`` (names,
    subgraph nodes too) and ``keep_ops`` (op types) stay FP32 with Casts around them, as do :func:`default_fp32_ops`.
    ONNX Runtime's converter works in place: ``model`` itself is changed (pass a copy to keep it)."""
    from onnx import TensorProto

    from . import bfloat16, network_types

    if precision not in ("fp16", "bf16"):
        raise ValueError(precision)
    if precision == "bf16" and bfloat16.has_fp16(model.graph):
        raise ModelError("The model already has FP16 tensors; the BF16 conversion needs an FP32 model.",
                         "Build it as FP16, or export the model in FP32 and choose BF16.")
    target = TensorProto.FLOAT16 if precision == "fp16" else TensorProto.BFLOAT16
    originals = bfloat16.collect_originals(model) if precision == "bf16" else {}
    ops = list(dict.fromkeys([*default_fp32_ops(precision), *keep_ops]))
    _add_element_types(model)
    from onnxruntime.transformers.float16 import convert_float_to_float16

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        converted = convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=True,
                                             op_block_list=ops, node_block_list=list(keep_nodes))
    moved = network_types.relocate_misplaced(converted)
    if precision == "bf16":
        bfloat16.retype_as_bfloat16(converted, originals)
    network_types.toposort(converted.graph)
    fixes = network_types.repair_types(converted, target, keep_nodes, ops)
    network_types.drop_float_round_trips(converted.graph)
    network_types.toposort(converted.graph)
    return Conversion(converted, precision, tuple(o for o in ops if _uses_op(converted.graph, o)),
                      tuple(keep_nodes), tuple(fixes), moved)


def _uses_op(graph: Any, op: str) -> bool:
    from .network_types import _subgraphs

    return any(n.op_type == op or any(_uses_op(g, op) for g in _subgraphs(n)) for n in graph.node)


def _add_element_types(model: Any) -> None:
    """Element types of the main graph's tensors as ``value_info`` (shapes dropped), for the converter to know which
    tensors are float: ONNX Runtime's symbolic shape inference, else ONNX's own, else none (the repair covers it)."""
    from onnx import TensorProto, ValueInfoProto

    inferred = None
    try:
        from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

        inferred = SymbolicShapeInference.infer_shapes(model, auto_merge=True, guess_output_rank=False)
    except Exception as err:  # a model it cannot follow: ONNX's inference is the fallback
        log.info("symbolic shape inference failed (%r); using ONNX shape inference", err)
    if inferred is None:
        try:
            import onnx

            inferred = onnx.shape_inference.infer_shapes(model)
        except Exception as err:
            log.info("ONNX shape inference failed too (%r)", err)
            return
    have = {v.name for v in model.graph.value_info}
    for vi in inferred.graph.value_info:
        if vi.name in have or not vi.type.HasField("tensor_type"):
            continue
        if vi.type.tensor_type.elem_type == TensorProto.UNDEFINED:
            continue
        copy = ValueInfoProto()
        copy.CopyFrom(vi)
        copy.type.tensor_type.ClearField("shape")
        model.graph.value_info.append(copy)


# ------------------------------------------------------------------------------------------------ the check


@dataclass(frozen=True)
class NetworkCheck:
    lines: tuple[str, ...]  # what was checked and how it went, for the job log


def check_network(path: Path, precision: str, input_shapes: Mapping[str, Sequence[int]],
                  reference: Path | None = None) -> NetworkCheck:
    """Check a converted network before a build: ONNX checker, the type walk (no node with half and FP32 inputs
    that must agree), and an ONNX Runtime session, run once on ``input_shapes`` (FP16; ONNX Runtime's CPU provider
    has next to no BF16 kernels, so for BF16 the session only has to load past type checking), beside the FP32
    ``reference`` model on the same inputs: a run failure counts only where the FP32 model runs, and the log line
    says how close the outputs are.

    Raises :class:`ModelError` naming the node when the network is not consistently typed."""
    import onnx

    from .network_types import type_clashes

    kind = precision.upper()
    lines: list[str] = []
    try:
        onnx.checker.check_model(str(path))
    except onnx.checker.ValidationError as err:
        raise ModelError(f"The {kind} network the conversion wrote is not valid ONNX: {_first_line(err)}",
                         "Build in FP32, or keep the node it names in FP32.") from err
    lines.append("ONNX checker: valid.")
    model = onnx.load(str(path), load_external_data=False)
    clashes = type_clashes(model)
    if clashes:
        c = clashes[0]
        raise ModelError(f"The {kind} conversion left {len(clashes)} node(s) with mixed float inputs; first: "
                         f"{c.describe()}.", keep_hint(c.node))
    lines.append("Type walk: every node's inputs agree on their float type (subgraphs included).")
    lines += _ort_check(path, precision, model, input_shapes, reference)
    return NetworkCheck(tuple(lines))


def keep_hint(node: str) -> str:
    return (f"Keep node '{node}' in FP32 (Build page: 'Keep in FP32'; CLI: --keep-fp32 {node}) and build again, "
            "or build in FP32.")


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _ort_check(path: Path, precision: str, model: Any, shapes: Mapping[str, Sequence[int]],
               reference_path: Path | None) -> list[str]:
    import numpy as np
    import onnxruntime as ort

    kind = precision.upper()
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as err:
        text = str(err)
        if "NOT_IMPLEMENTED" in text or "Could not find an implementation" in text:
            # the graph passed ONNX Runtime's type inference; its CPU provider lacks a half kernel for a node
            return [f"ONNX Runtime: the {kind} network passes its type checks; its CPU provider cannot run it "
                    f"({_first_line(err)[:200]}), so no reference run (TensorRT runs these in {kind})."]
        if precision == "bf16" and "tensor(bfloat16)" in text and "is invalid" in text:
            # the model's opset predates BF16 for an op (Conv gained it in opset 22): ONNX Runtime refuses the type,
            # TensorRT does not; the type walk above is the check that matters
            m = re.search(r"Type 'tensor\(bfloat16\)'.*?is invalid", text)
            return ["ONNX Runtime: no BF16 check possible: the model's opset does not allow BF16 for some ops "
                    f"({m.group(0) if m else _first_line(err)[-160:]}); TensorRT's parser accepts them."]
        raise ModelError(f"ONNX Runtime refuses the {kind} network the conversion wrote: {_first_line(err)[:500]}",
                         "Keep the node it names in FP32 and build again, or build in FP32.") from err
    feeds: dict[str, Any] = {}
    rng = np.random.default_rng(0)
    for inp in session.get_inputs():
        shape = shapes.get(inp.name) or inp.shape
        if any(not isinstance(d, int) for d in shape):
            return [f"ONNX Runtime: the {kind} network loads (types consistent); no run, input '{inp.name}' has "
                    "no fixed shape without a profile."]
        dtype = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
                 "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int8)": np.int8,
                 "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_}.get(inp.type, np.float32)
        # integers: ones (a valid token id, an attention mask that attends, a flag that is set)
        feeds[inp.name] = (rng.standard_normal(shape).astype(dtype) if np.issubdtype(dtype, np.floating)
                           else np.ones(shape, dtype))
    shown = ", ".join(f"{k}{list(v.shape)}" for k, v in feeds.items())
    reference = _reference_outputs(reference_path, opts, feeds) if reference_path is not None else None
    try:
        outs = session.run(None, feeds)
    except Exception as err:
        if isinstance(reference, Exception):  # the FP32 model fails on these inputs too: the data, not the network
            return [f"ONNX Runtime: the {kind} network loads (types consistent); no run: the FP32 model itself "
                    f"fails on random inputs ({shown}): {_first_line(reference)[-200:]}"]
        raise ModelError(f"The {kind} network fails in ONNX Runtime where the FP32 model runs: "
                         f"{_first_line(err)[:500]}",
                         "Keep the node it names in FP32 and build again, or build in FP32.") from err
    names = [o.name for o in session.get_outputs()]
    bad = [n for n, v in zip(names, outs, strict=True)
           if np.issubdtype(np.asarray(v).dtype, np.floating) and not np.isfinite(np.asarray(v)).all()]
    line = f"ONNX Runtime: the {kind} network ran once on random inputs ({shown})" \
        + (f"; outputs {', '.join(bad)} hold Inf/NaN (an FP16 overflow?)" if bad else ", outputs finite")
    if isinstance(reference, list):
        line += "; against FP32: " + ", ".join(_closeness(n, r, v) for n, r, v in zip(names, reference, outs,
                                                                                       strict=False))
    return [line + "."]


def _reference_outputs(path: Path, opts: Any, feeds: dict[str, Any]) -> list[Any] | Exception:
    """The FP32 model's outputs on the same inputs (or why it cannot give them)."""
    import onnxruntime as ort

    try:
        return list(ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"]).run(None, feeds))
    except Exception as err:
        return err


def _closeness(name: str, ref: Any, got: Any) -> str:
    """'logits cosine 0.9999 (max |diff| 0.0012)' for float outputs."""
    import numpy as np

    a, b = np.asarray(ref, np.float64).ravel(), np.asarray(got, np.float64).ravel()
    if a.size == 0 or a.shape != b.shape or not np.issubdtype(np.asarray(ref).dtype, np.floating):
        return f"{name} not compared"
    finite = np.isfinite(a) & np.isfinite(b)
    a, b = a[finite], b[finite]
    if not a.size:
        return f"{name} has no finite values to compare"
    diff = float(np.abs(a - b).max())
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    if not norm:  # an all-zero output (a zero-initialised head): no direction to compare
        return f"{name} all zero in {'both' if not a.any() and not b.any() else 'one'} (max |diff| {diff:.3g})"
    return f"{name} cosine {float(a @ b / norm):.4f} (max |diff| {diff:.3g})"


def summary_lines(conv: Conversion) -> list[str]:
    """What the conversion did, for the job log."""
    lines = [f"{conv.precision.upper()} conversion (ONNX Runtime's transformers converter + type repair); "
             "graph inputs and outputs stay FP32, integer tensors untouched."]
    if conv.kept_fp32_ops:
        lines.append(f"Op types kept in FP32 (present in this model): {', '.join(conv.kept_fp32_ops)}.")
    if conv.moved_into_subgraphs:
        lines.append(f"Moved {conv.moved_into_subgraphs} Cast(s) for FP32 nodes into their subgraph.")
    if conv.casts_added:
        lines.append(f"Type repair inserted {len(conv.casts_added)} Cast(s):")
        lines += [f"  {c}" for c in conv.casts_added[:50]]
        if len(conv.casts_added) > 50:
            lines.append(f"  … {len(conv.casts_added) - 50} more")
    return lines
