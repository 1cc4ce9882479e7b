"""Which layers are to blame: error *added* by each node, the first jump along depth, the first NaN/Inf, and the
nodes to keep in higher precision.

Error is measured as relative RMS error (``‖cand − ref‖ / ‖ref‖``) per compared tensor. For each compared tensor
the nearest compared tensors feeding it are found by walking the reference graph backwards through tensors that
were not compared (for engines: the nodes fused into one layer); those nodes are the tensor's *segment*.
``added = max(0, e_out − max(e_in))`` and ``score = added · added / e_out``: a node that receives 0.01 and emits
0.3 scores about 0.28, one that merely amplifies 0.3 into 0.5 scores 0.08, and one that turns 1e-7 into 1e-5 is
negligible. Ranking by plain output error would blame every layer downstream of the real culprit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .graph import GraphInfo, quantizable
from .results import Culprit, TensorResult


@dataclass(frozen=True)
class Attribution:
    error_in: float
    added: float
    score: float
    segment: tuple[str, ...]


def _err(value: float) -> float:
    return math.inf if math.isnan(value) else value


def segment_of(
    graph: GraphInfo, tensor: str, compared: Mapping[str, float]
) -> tuple[tuple[str, ...], list[float]]:
    """(nodes between the nearest compared inputs and ``tensor``, producer first; the errors of those inputs)."""
    producer = graph.producer.get(tensor)
    if producer is None:  # a graph input: whoever reads it quantizes it
        return graph.consumers.get(tensor, ()), [0.0]
    nodes: list[str] = [producer]
    errors: list[float] = []
    stack = list(graph.node_inputs.get(producer, ()))
    seen: set[str] = set()
    while stack:
        x = stack.pop()
        if x in seen:
            continue
        seen.add(x)
        if x in compared:
            errors.append(_err(compared[x]))
        elif x in graph.graph_inputs:
            errors.append(0.0)  # both sides read the same array
        elif x in graph.producer:
            p = graph.producer[x]
            if p not in nodes:
                nodes.append(p)
            stack.extend(graph.node_inputs.get(p, ()))
    order = {n: i for i, n in enumerate(graph.node_names)}
    rest = sorted(nodes[1:], key=lambda n: -order.get(n, 0))
    return (nodes[0], *rest), errors or [0.0]


def attribute(graph: GraphInfo, errors: Mapping[str, float]) -> dict[str, Attribution]:
    """The error each compared tensor's segment added (see the module docstring)."""
    out: dict[str, Attribution] = {}
    for t, e_out in errors.items():
        seg, ins = segment_of(graph, t, errors)
        e_in = max(ins)
        e = _err(e_out)
        if math.isinf(e) and not math.isinf(e_in):
            out[t] = Attribution(e_in, math.inf, math.inf, seg)  # NaN/Inf appear here
            continue
        if math.isinf(e) or e <= 0:
            out[t] = Attribution(e_in, 0.0, 0.0, seg)
            continue
        added = max(0.0, e - e_in)
        out[t] = Attribution(e_in, added, added * added / e, seg)
    return out


def rank_culprits(tensors: Sequence[TensorResult], top_k: int) -> tuple[Culprit, ...]:
    """The ``top_k`` tensors whose segments added the most error (score above 0), best first."""
    ranked = sorted((t for t in tensors if t.score > 0), key=lambda t: (-t.score, t.order))
    return tuple(
        Culprit(
            rank=i + 1,
            tensor=t.name,
            nodes=t.segment,
            score=t.score,
            added=t.added,
            error_in=t.error_in,
            error_out=t.rel_rms,
        )
        for i, t in enumerate(ranked[:top_k])
    )


def find_jump(tensors: Sequence[TensorResult]) -> str | None:
    """The first tensor along depth whose culprit score reaches half the largest: where the error jumps."""
    scores = [t.score for t in tensors if t.score > 0]
    if not scores:
        return None
    best = max(scores)
    for t in sorted(tensors, key=lambda t: (t.order, t.depth)):
        if t.score > 0 and t.score >= 0.5 * best:
            return t.name
    return None


def first_nonfinite(tensors: Sequence[TensorResult]) -> tuple[str | None, str | None]:
    """(tensor, node) where NaN/Inf first appear in the candidate but not in the reference, along depth."""
    for t in sorted(tensors, key=lambda t: (t.order, t.depth)):
        if t.nonfinite_candidate > t.nonfinite_reference or (t.nonfinite_candidate and math.isinf(t.rel_rms)):
            return t.name, t.producer or (t.segment[0] if t.segment else None)
    return None, None


def propose_exclusions(
    graph: GraphInfo,
    culprits: Sequence[Culprit],
    top_k: int,
    *,
    with_readers: bool = True,
    skip: Sequence[str] = (),
) -> tuple[str, ...]:
    """ONNX node names to keep in higher precision for the ``top_k`` culprits.

    With ``with_readers`` (Q/DQ models), the nodes reading the culprit tensor are added: ONNX Runtime's quantizer
    quantizes a tensor for every quantized node that reads it, so keeping a tensor in float takes its producer
    *and* its readers out of quantization. Nodes in ``skip`` (already in float) are never proposed again, and a
    culprit that would add nothing new does not count towards ``top_k``.
    """
    done = set(skip)
    names: list[str] = []
    taken = 0
    for c in culprits:
        if taken >= top_k:
            break
        mine = list(c.nodes)
        if with_readers and c.tensor not in graph.graph_inputs:
            mine.extend(graph.consumers.get(c.tensor, ()))
        fresh = [n for n in quantizable(graph, mine) if n not in done]
        if fresh:
            names.extend(fresh)
            taken += 1
    return tuple(dict.fromkeys(names))


def float_in_candidate(graph: GraphInfo, network: str | Path | None) -> tuple[str, ...]:
    """Reference nodes a Q/DQ ``network`` keeps in float (no DequantizeLinear feeds them): what earlier rounds
    already excluded. Empty for a network without Q/DQ (or none)."""
    if network is None:
        return ()
    from ..quantize import qdq_summary

    summary = qdq_summary(network)
    if not summary.n_quantize and not summary.n_dequantize:
        return ()
    float_nodes = set(summary.float_nodes)
    return tuple(n for n in quantizable(graph, graph.node_names) if n in float_nodes)


def jump_note(graph: GraphInfo, tensor: str | None, kept_float: Sequence[str]) -> str:
    """Why the error still jumps at ``tensor`` when its producer is already in float: the tensor is quantized as
    the input of the nodes reading it (ONNX Runtime quantizes a tensor for every quantized reader)."""
    if not tensor:
        return ""
    producer = graph.producer.get(tensor)
    kept = set(kept_float)
    if producer is None or producer not in kept:
        return ""
    readers = [r for r in graph.consumers.get(tensor, ()) if r not in kept]
    if not readers:
        return f"{producer} and every reader of {tensor} are already in float."
    return (f"{producer} is already in float; {tensor} is still quantized as the input of "
            f"{', '.join(readers)}, and that quantization adds the error.")
