"""The ONNX side of a comparison: the reference graph's structure, and which candidate tensor stands for which
reference tensor.

For a Q/DQ model the value the next layer really sees is the output of the DequantizeLinear that follows a
tensor's QuantizeLinear, so ``fc1/relu_out`` of the FP32 model is compared with
``fc1/relu_out_DequantizeLinear_Output`` of the Q/DQ model (and a renamed graph output with the DequantizeLinear
that now writes it). An FP16-converted model keeps the names. For an engine, the tensors that survive are the
outputs of the last ONNX node of each engine layer; an INT8 one is dequantized with its QuantizeLinear's scale.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError

log = logging.getLogger(__name__)

_QDQ = ("QuantizeLinear", "DequantizeLinear")
_FP16 = 10


def node_label(node: Any, index: int) -> str:
    """A node's name, or ``<op>#<index>`` when it has none (as the Model page and the quantizer name it)."""
    return node.name or f"{node.op_type}#{index}"


@dataclass(frozen=True)
class GraphInfo:
    """Structure of one ONNX graph (top level), without weights."""

    path: Path
    node_names: tuple[str, ...]  # in graph (topological) order
    op_types: Mapping[str, str]  # node -> op type
    node_inputs: Mapping[str, tuple[str, ...]]  # node -> data inputs (no initializers or constants)
    node_outputs: Mapping[str, tuple[str, ...]]
    producer: Mapping[str, str]  # tensor -> node
    consumers: Mapping[str, tuple[str, ...]]  # tensor -> nodes
    order: Mapping[str, int]  # tensor -> topological index of its producer (-1: graph input)
    depth: Mapping[str, int]  # tensor -> longest path from the inputs, in nodes
    graph_inputs: tuple[str, ...]
    graph_outputs: tuple[str, ...]
    constants: frozenset[str]  # initializers and Constant outputs

    @property
    def tensors(self) -> tuple[str, ...]:
        """Every non-constant tensor, graph inputs first, then node outputs in topological order."""
        outs = [t for n in self.node_names for t in self.node_outputs[n] if t not in self.constants]
        return tuple(dict.fromkeys([*self.graph_inputs, *outs]))


def read_graph(path: str | Path) -> GraphInfo:
    """Reads the graph structure of ``path`` (external weights are not loaded)."""
    from ..model import load_proto

    path = Path(path)
    model = load_proto(path)
    g = model.graph
    constants = {i.name for i in g.initializer}
    names: list[str] = []
    ops: dict[str, str] = {}
    n_in: dict[str, tuple[str, ...]] = {}
    n_out: dict[str, tuple[str, ...]] = {}
    producer: dict[str, str] = {}
    consumers: dict[str, list[str]] = {}
    seen: set[str] = set()
    for i, node in enumerate(g.node):
        name = node_label(node, i)
        if name in seen:  # ONNX does not require unique names; keep ours unique
            name = f"{name}#{i}"
        seen.add(name)
        names.append(name)
        ops[name] = node.op_type
        if node.op_type == "Constant":
            constants.update(o for o in node.output if o)
        n_out[name] = tuple(o for o in node.output if o)
        for o in n_out[name]:
            producer[o] = name
    graph_inputs = tuple(i.name for i in g.input if i.name not in constants)
    order: dict[str, int] = {t: -1 for t in graph_inputs}
    depth: dict[str, int] = {t: 0 for t in graph_inputs}
    for idx, name in enumerate(names):
        node = g.node[idx]
        data = tuple(x for x in node.input if x and x not in constants)
        n_in[name] = data
        for x in data:
            consumers.setdefault(x, []).append(name)
        d = 1 + max((depth.get(x, 0) for x in data), default=0)
        for o in n_out[name]:
            order[o] = idx
            depth[o] = d
    return GraphInfo(
        path=path,
        node_names=tuple(names),
        op_types=ops,
        node_inputs=n_in,
        node_outputs=n_out,
        producer=producer,
        consumers={k: tuple(v) for k, v in consumers.items()},
        order=order,
        depth=depth,
        graph_inputs=graph_inputs,
        graph_outputs=tuple(o.name for o in g.output),
        constants=frozenset(constants),
    )


def has_external_data(path: str | Path) -> bool:
    from onnx.external_data_helper import uses_external_data

    from ..model import load_proto

    return any(uses_external_data(t) for t in load_proto(Path(path)).graph.initializer)


def graph_fingerprint(path: str | Path) -> dict[str, Any]:
    """Op-type counts and float16 use: what kind of candidate an ONNX file is."""
    from ..model import load_proto

    model = load_proto(Path(path))
    g = model.graph
    ops: dict[str, int] = {}
    for n in g.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    fp16 = any(i.data_type == _FP16 for i in g.initializer) or any(
        v.type.tensor_type.elem_type == _FP16 for v in (*g.value_info, *g.input, *g.output)
    )
    fp16 = fp16 or any(
        n.op_type == "Cast" and any(a.name == "to" and a.i == _FP16 for a in n.attribute) for n in g.node
    )
    return {"ops": ops, "qdq": any(op in ops for op in _QDQ), "fp16": fp16, "n_nodes": len(g.node)}


# ---------------------------------------------------------------------------------------------- tensor links


@dataclass(frozen=True)
class TensorLink:
    """Which candidate tensor stands for a reference tensor, and how to read its values.

    ``scale``/``zero_point``/``axis``: the candidate tensor holds quantized integers (an engine's INT8 layer
    boundary), dequantized as ``(q - zero_point) * scale`` before comparing.
    """

    reference: str
    candidate: str
    scale: tuple[float, ...] | None = None
    zero_point: tuple[float, ...] | None = None
    axis: int = 1

    def values(self, arr: np.ndarray) -> np.ndarray:
        if self.scale is None:
            return arr
        scale = np.asarray(self.scale, dtype=np.float32)
        zp = np.asarray(self.zero_point if self.zero_point is not None else (0.0,), dtype=np.float32)
        if scale.size > 1 and arr.ndim > self.axis:
            shape = [1] * arr.ndim
            shape[self.axis] = scale.size
            scale, zp = scale.reshape(shape), zp.reshape(shape) if zp.size > 1 else zp
        return (arr.astype(np.float32) - zp) * scale


def _qdq_pairs(model: Any) -> tuple[dict[str, str], dict[str, Any]]:
    """({Q input tensor: DQ output tensor}, {Q output tensor: the QuantizeLinear node}) of a Q/DQ model."""
    g = model.graph
    q_by_out = {n.output[0]: n for n in g.node if n.op_type == "QuantizeLinear" and n.output}
    dq_of: dict[str, str] = {}
    for n in g.node:
        if n.op_type != "DequantizeLinear" or not n.input or not n.output:
            continue
        q = q_by_out.get(n.input[0])
        if q is not None and q.input:
            dq_of.setdefault(q.input[0], n.output[0])
    return dq_of, q_by_out


def candidate_tensor_names(model: Any) -> set[str]:
    names = {i.name for i in model.graph.input}
    for n in model.graph.node:
        names.update(o for o in n.output if o)
    return names


def link_tensors(reference: GraphInfo, candidate_model: str | Path) -> tuple[list[TensorLink], list[str]]:
    """Pairs each reference tensor with the candidate tensor holding the same values (ONNX candidates).

    Returns (links in reference order, reference tensors the candidate does not have). Reference graph inputs
    are paired only when the candidate quantizes them (otherwise both read the same array).
    """
    from ..model import load_proto

    model = load_proto(Path(candidate_model))
    dq_of, _ = _qdq_pairs(model)
    have = candidate_tensor_names(model)
    cand_inputs = {i.name for i in model.graph.input}
    links: list[TensorLink] = []
    missing: list[str] = []
    for t in reference.tensors:
        if t in reference.graph_inputs:
            if t in dq_of:
                links.append(TensorLink(t, dq_of[t]))
            continue
        if t in dq_of:
            links.append(TensorLink(t, dq_of[t]))
        elif t in have and t not in cand_inputs:
            links.append(TensorLink(t, t))
        else:
            missing.append(t)
    return links, missing


def _init_values(model: Any, name: str) -> np.ndarray | None:
    from onnx import numpy_helper

    for i in model.graph.initializer:
        if i.name == name:
            return numpy_helper.to_array(i)
    for n in model.graph.node:
        if n.op_type == "Constant" and n.output and n.output[0] == name:
            for a in n.attribute:
                if a.name == "value":
                    return numpy_helper.to_array(a.t)
    return None


def engine_boundaries(network_model: str | Path, layers: Any, profile: int = 0) -> list[str]:
    """ONNX tensors of ``network_model`` that exist as engine layer boundaries in ``layers`` (an ``EngineLayers``).

    A layer's boundary is an output of one of its ONNX nodes that only this layer computes and that a node
    outside the layer (or the graph) reads. Engine layer tensors are often renamed (Myelin), so ONNX tensor names
    are used: the backend's ONNX parser keeps them, and marking a tensor that is already a layer boundary as a
    debug tensor does not change the fusion.
    """
    net = read_graph(network_model)
    engine_layers = layers.for_profile(profile) if hasattr(layers, "for_profile") else layers.layers
    where: dict[str, set[int]] = {}
    for i, ly in enumerate(engine_layers):
        for n in ly.onnx_nodes:
            where.setdefault(n, set()).add(i)
    boundary: list[str] = []
    for i, ly in enumerate(engine_layers):
        members = set(ly.onnx_nodes)
        for n in ly.onnx_nodes:
            if where.get(n) != {i} or n not in net.node_outputs:
                continue
            for t in net.node_outputs[n]:
                readers = net.consumers.get(t, ())
                if t in net.graph_outputs or any(r not in members for r in readers):
                    boundary.append(t)
    return list(dict.fromkeys(boundary))


def network_links(
    reference: GraphInfo, network_model: str | Path, names: Iterable[str]
) -> tuple[list[TensorLink], list[str]]:
    """Links for tensors of the network an engine was built from: a DequantizeLinear output stands for the tensor
    it dequantizes; a QuantizeLinear output (INT8/FP8 values) is dequantized with its scale; other names are
    the reference's own. Returns (links in reference order, reference tensors not covered)."""
    from ..model import load_proto

    model = load_proto(Path(network_model))
    dq_of, q_by_out = _qdq_pairs(model)
    source_of = {dq: src for src, dq in dq_of.items()}
    links: dict[str, TensorLink] = {}
    for t in dict.fromkeys(names):
        link: TensorLink | None = None
        if t in q_by_out:
            q = q_by_out[t]
            src = q.input[0]
            scale = _init_values(model, q.input[1]) if len(q.input) > 1 else None
            zp = _init_values(model, q.input[2]) if len(q.input) > 2 else None
            if src in reference.order and scale is not None:
                axis = next((a.i for a in q.attribute if a.name == "axis"), 1)
                zp_vals = (
                    tuple(float(v) for v in np.asarray(zp, dtype=np.float64).reshape(-1))
                    if zp is not None
                    else None
                )
                link = TensorLink(
                    src, t, tuple(float(v) for v in np.asarray(scale).reshape(-1)), zp_vals, int(axis)
                )
        else:
            ref_name = t if t in reference.order else source_of.get(t, t)
            if ref_name in reference.order:
                link = TensorLink(ref_name, t)
        if link is not None and link.reference not in links:
            links[link.reference] = link
    ordered = [links[t] for t in reference.tensors if t in links]
    missing = [t for t in reference.tensors if t not in links and t not in reference.graph_inputs]
    return ordered, missing


def engine_links(
    reference: GraphInfo, network_model: str | Path, layers: Any, profile: int = 0
) -> tuple[list[TensorLink], list[str]]:
    """The reference tensors that still exist in a built engine (its layer boundaries, see
    :func:`engine_boundaries`), linked to the network's tensor names."""
    return network_links(reference, network_model, engine_boundaries(network_model, layers, profile))


def nodes_present(reference: GraphInfo, names: Iterable[str]) -> list[str]:
    return [n for n in names if n in reference.op_types]


def quantizable(reference: GraphInfo, names: Sequence[str]) -> list[str]:
    """Node names that a quantization exclusion can take (real nodes, not Q/DQ or Constant)."""
    return [n for n in names if reference.op_types.get(n) not in (None, "Constant", *_QDQ)]


def check_same_io(reference: GraphInfo, candidate: GraphInfo) -> None:
    missing = [t for t in reference.graph_inputs if t not in candidate.graph_inputs]
    if missing:
        raise ModelError(
            f"The candidate '{candidate.path.name}' has no input '{missing[0]}' of the reference model "
            f"'{reference.path.name}': it is not a version of the same model.",
            "Compare a model converted or quantized from this one (same input and output names).",
        )
    outs = [t for t in reference.graph_outputs if t not in candidate.graph_outputs]
    if outs:
        raise ModelError(
            f"The candidate '{candidate.path.name}' has no output '{outs[0]}' of the reference model "
            f"'{reference.path.name}'.",
            "Compare a model converted or quantized from this one (same input and output names).",
        )
