"""Transformer-aware INT8 defaults: which nodes of a transformer stay in float before any culprit search.

INT8 pays off in the GEMMs (MatMul, Gemm, Conv); everything else in a transformer is where per-tensor INT8 hurts
most and gains least: the attention-mask arithmetic (values near float32's minimum), Softmax (probabilities in
[0, 1] on a symmetric int8 grid), LayerNorm (reductions), GELU/Erf, and the residual Adds that carry the
outlier channels of the residual stream. ONNX Runtime's quantizer would put Q/DQ around all of them. These
defaults name each group with its reason, so a page or the CLI can say what was kept in float and why; weights
stay per-channel (:class:`workbench.quantize.QuantizeSpec`'s default).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .accuracy.graph import GraphInfo, read_graph

GEMMS = ("MatMul", "Gemm", "Conv", "ConvTranspose")
_LN_OPS = ("ReduceMean", "Pow", "Sqrt", "Sub", "Div", "Mul", "Add", "Cast")
_GELU_OPS = ("Div", "Mul", "Add", "Pow", "Tanh", "Erf")
_NON_QUANTIZED_ANYWAY = ("Shape", "Constant", "ConstantOfShape", "Range", "Equal", "Expand", "Cast", "Not")

# group key -> (title, why it stays in float)
GROUPS: Mapping[str, tuple[str, str]] = {
    "mask": ("attention-mask arithmetic", "values near float32's minimum: no int8 scale can hold them"),
    "softmax": ("Softmax", "probabilities in [0, 1] lose half of a symmetric int8 grid"),
    "layernorm": ("LayerNorm", "reductions over the hidden size; TensorRT runs them in float anyway"),
    "gelu": ("GELU / Erf", "a smooth non-linearity whose input range is wide"),
    "residual": ("residual Adds", "the residual stream carries outlier channels"),
    "other": ("other non-GEMM ops", "data movement and element-wise ops: INT8 saves nothing there"),
}


@dataclass(frozen=True)
class FloatGroups:
    """Nodes to keep in float, by group key (see :data:`GROUPS`); ``transformer`` says whether the graph looks
    like one (attention: Softmax fed by a MatMul, and LayerNorm or its decomposition)."""

    transformer: bool
    groups: Mapping[str, tuple[str, ...]]

    @property
    def nodes(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(n for g in self.groups.values() for n in g))

    def lines(self) -> list[str]:
        """One line per non-empty group: 'Softmax (6 nodes): probabilities ...'."""
        out = []
        for key, nodes in self.groups.items():
            if nodes:
                title, why = GROUPS[key]
                out.append(f"{title} ({len(nodes)} node{'s' if len(nodes) != 1 else ''}): {why}")
        return out


def _forward(graph: GraphInfo, start: str, ops: tuple[str, ...], limit: int) -> list[str]:
    """Nodes reachable from ``start`` (a node) through nodes of ``ops``, breadth first, at most ``limit``."""
    seen: list[str] = []
    frontier = [start]
    while frontier and len(seen) < limit:
        node = frontier.pop(0)
        for out in graph.node_outputs.get(node, ()):
            for c in graph.consumers.get(out, ()):
                if c not in seen and graph.op_types[c] in ops and len(seen) < limit:
                    seen.append(c)
                    frontier.append(c)
    return seen


def _static(graph: GraphInfo) -> set[str]:
    """Tensors that do not depend on the data: Shape outputs, and whatever is computed from them and constants only
    (shape arithmetic, an Identity of a weight)."""
    static: set[str] = set()
    for node in graph.node_names:
        ins = graph.node_inputs.get(node, ())
        if graph.op_types[node] == "Shape" or all(x in static for x in ins):
            static.update(graph.node_outputs.get(node, ()))
    return static


def _mask_nodes(graph: GraphInfo, static: set[str]) -> list[str]:
    """Nodes computing on a graph input named like a mask, up to and including the Add that applies it to the
    attention scores (the first node that also reads a tensor computed from other data); not the Softmax.
    Shape arithmetic (tensors computed from ``Shape`` outputs only) counts as neither."""
    masks = [i for i in graph.graph_inputs if "mask" in i.lower()]
    derived: set[str] = set(masks)
    out: list[str] = []
    for node in graph.node_names:  # topological order
        ins = graph.node_inputs.get(node, ())
        op = graph.op_types[node]
        outs = graph.node_outputs.get(node, ())
        if all(x in static for x in outs):
            continue
        if not ins or not any(x in derived for x in ins) or op in ("Softmax", *GEMMS):
            continue
        if op not in _NON_QUANTIZED_ANYWAY:
            out.append(node)
        if all(x in derived or x in static for x in ins):
            derived.update(outs)
    return out


def _is_attention(graph: GraphInfo) -> bool:
    for node in graph.node_names:
        if graph.op_types[node] != "Softmax":
            continue
        # walk back, breadth first, a few nodes (scale, mask Add) to a MatMul
        stack, seen = [node], 0
        while stack and seen < 32:
            n = stack.pop(0)
            seen += 1
            for x in graph.node_inputs.get(n, ()):
                p = graph.producer.get(x)
                if p is None:
                    continue
                if graph.op_types[p] in ("MatMul", "Einsum"):
                    return True
                stack.append(p)
    return False


def float_groups(model: str | Path | GraphInfo) -> FloatGroups:
    """The transformer-aware float groups of ``model`` (a path or a read graph). For a model that is not a
    transformer every group is empty (``transformer`` False): nothing changes for CNNs and MLPs."""
    graph = model if isinstance(model, GraphInfo) else read_graph(model)
    ops = graph.op_types
    has_ln = any(o in ("LayerNormalization", "SkipLayerNormalization", "ReduceMean") for o in ops.values())
    if not (_is_attention(graph) and has_ln):
        return FloatGroups(False, {k: () for k in GROUPS})
    taken: set[str] = set()

    def keep(nodes: list[str]) -> tuple[str, ...]:
        fresh = [n for n in dict.fromkeys(nodes) if n not in taken and ops[n] not in GEMMS]
        taken.update(fresh)
        return tuple(fresh)

    static = _static(graph)
    groups: dict[str, tuple[str, ...]] = {"mask": keep(_mask_nodes(graph, static))}
    groups["softmax"] = keep([n for n in graph.node_names if ops[n] == "Softmax"])
    ln: list[str] = []
    for n in graph.node_names:
        if ops[n] in ("LayerNormalization", "SkipLayerNormalization"):
            ln.append(n)
        elif ops[n] == "ReduceMean" and n not in ln:  # decomposed: mean, sub, pow, mean, add, sqrt, div, mul, add
            ln += [n, *_forward(graph, n, _LN_OPS, 9)]
    groups["layernorm"] = keep(ln)
    gelu: list[str] = []
    for n in graph.node_names:
        if ops[n] in ("Gelu", "FastGelu", "BiasGelu", "Erf", "Tanh"):
            gelu.append(n)
            gelu += [graph.producer[x] for x in graph.node_inputs.get(n, ()) if x in graph.producer
                     and ops[graph.producer[x]] in ("Div", "Mul")]
            gelu += _forward(graph, n, _GELU_OPS, 3)
    groups["gelu"] = keep(gelu)
    groups["residual"] = keep([n for n in graph.node_names if ops[n] == "Add" and len(
        [x for x in graph.node_inputs.get(n, ()) if x not in static]) == 2])
    groups["other"] = keep(
        [n for n in graph.node_names if ops[n] not in GEMMS and ops[n] not in _NON_QUANTIZED_ANYWAY]
    )
    return FloatGroups(True, groups)
