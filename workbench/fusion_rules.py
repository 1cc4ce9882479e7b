"""Accounting rules for ONNX nodes that no engine layer names in its metadata, each with the evidence it rests on.

TensorRT's ONNX-layer metadata does not list every node a layer computes: a Myelin kernel absorbs a ``Mul`` or a
Q/DQ node between two nodes it does list; a ``Split`` becomes a slice inside each kernel that reads one of its
outputs; a ``Concat`` disappears because its producers write straight into one buffer; a ``Scan`` has no layer of
its own because its body was unrolled. :func:`explain` decides such cases from the graph and the listing, and
leaves a node unaccounted unless the evidence is there:

``types``    a ``Cast`` to the type its input already has (nothing to convert);
``twin``     the same op, attributes and inputs (or constants of equal value) as a node in a layer: computed once;
``buffer``   a ``Concat`` whose producers' layers all write one tensor (directly, or through a copy TensorRT
             inserted) that the layers reading the concatenation read: it was elided into its consumers' buffer;
``body``     an ``If`` / ``Loop`` / ``Scan`` whose body nodes are in engine layers (TensorRT compiled or unrolled
             the control flow into them);
``inside``   every tensor the node reads comes from nodes in layer L (or a graph input L reads), everything that
             reads its outputs is in L too (or is an engine output L writes), and where L is a Myelin kernel whose
             name lists its operations, the node's operation is among them;
``tensors``  a node that only moves data (Reshape, Transpose, Slice, Split, Squeeze, …) or only changes a quantized
             tensor's scale (Q, DQ, a constant factor between a DQ and a Q), between a layer that writes a tensor
             and a layer that reads that very tensor: it became a view, or part of the tensor's scale;
``moved``    a multiplication by a constant scalar before a linear op (MatMul, views) whose layers include a
             Myelin kernel that lists a multiplication: Myelin moved the scaling into that kernel.

Nodes in no layer (eliminated views, cancelled Q/DQ pairs, other unexplained nodes) are looked through when the
producers and consumers of a node are sought; constants and shape computations are not data and are skipped.
Rules run until nothing changes, so a chain of unlisted nodes between two nodes of one layer is explained whole.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .layers import EngineLayer

# How each kind of evidence reads in tables (``NodeFate.evidence``).
EVIDENCE_LABELS = {
    "metadata": "named in the layer's metadata",
    "layer name": "named in the layer's name",
    "region": "inside a ForeignNode range",
    "graph": "from the ONNX graph",
    "inside": "its producers and consumers are in the layer",
    "moved": "scalar moved into a kernel that multiplies",
    "buffer": "producers write one buffer its readers read",
    "tensors": "one layer writes the tensor another reads",
    "body": "its body's nodes are in the layers",
    "types": "input already has the target type",
    "twin": "an identical node is in a layer",
}
# Evidence kinds of the rules of this module (nodes no layer's metadata names).
RULE_EVIDENCE = ("inside", "moved", "buffer", "tensors", "body", "types", "twin")
CONTROL_FLOW_TYPES = frozenset({"If", "Loop", "Scan"})
# Scope separator of tensor names inside subgraph bodies (``scan/body::x_t``); see ``fusion._nodes``.
SCOPE = "::"
# Ops that only move or reinterpret data: no arithmetic of their own that a kernel name would list.
DATA_MOVEMENT = frozenset(
    {
        "Identity", "Dropout", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Split", "Slice",
        "Concat", "Gather", "GatherElements", "Expand", "Tile", "Pad", "DepthToSpace", "SpaceToDepth",
    }
)  # fmt: skip
# Operations (as Myelin kernel names abbreviate them) that may implement an ONNX op. An op missing from this table
# is not checked against kernel names.
KERNEL_TOKENS: dict[str, frozenset[str]] = {
    k: frozenset(v)
    for k, v in {
        "Mul": ("Mul", "Silu", "Gelu"),
        "Div": ("Div", "Mul"),
        "Add": ("Add", "Sub"),
        "Sub": ("Sub", "Add"),
        "Sigmoid": ("Sigm", "Silu"),
        "HardSigmoid": ("Sigm", "Max", "Min", "Clip", "Mul", "Add"),
        "HardSwish": ("Max", "Min", "Clip", "Mul", "Add"),
        "Tanh": ("Tanh",),
        "Relu": ("Relu", "Max"),
        "Clip": ("Clip", "Max", "Min"),
        "Erf": ("Erf", "Gelu"),
        "Exp": ("Exp",),
        "Sqrt": ("Sqrt",),
        "Pow": ("Pow", "Mul"),
        "Neg": ("Neg", "Sub", "Mul"),
        "Abs": ("Abs",),
        "Cast": ("Cast",),
        "QuantizeLinear": ("Roun", "Cast", "Min", "Max"),
        "DequantizeLinear": ("Cast", "Mul"),
        "Softmax": ("Exp",),
        "ReduceMean": ("Mean",),
        "ReduceSum": ("Sum",),
        "ReduceMax": ("Maxr",),
        "Where": ("Sele",),
    }.items()
}
# Kernel operations that stand for a pattern of several ONNX nodes (x·sigmoid(βx), the erf GELU).
_COMPOSITE = frozenset({"Silu", "Gelu"})
# Ops Myelin merges when they meet (a DQ and the next Q become one rescale; casts fold): listed once for many.
_UNCOUNTED = frozenset({"QuantizeLinear", "DequantizeLinear", "Cast"})
_KERNEL = re.compile(r"^__myl_([A-Za-z]+?)_myl\d+_\d+$")
_PROFILE_TAG = re.compile(r" \[profile \d+\]")


class GraphNode(Protocol):
    """What the rules need of an ONNX node (``fusion._Node``)."""

    @property
    def key(self) -> str: ...
    @property
    def op_type(self) -> str: ...
    @property
    def inputs(self) -> tuple[str, ...]: ...
    @property
    def outputs(self) -> tuple[str, ...]: ...
    @property
    def parent(self) -> str: ...
    @property
    def cast_to(self) -> int | None: ...
    @property
    def attrs(self) -> bytes: ...


@dataclass(frozen=True)
class Explanation:
    """The fate a rule gives an unlisted node: ``layers`` index the engine layers it was found in."""

    fate: str  # "fused", "split" or "eliminated"
    layers: tuple[int, ...]
    reason: str
    evidence: str  # "inside", "moved", "buffer", "tensors", "body" or "types"


@dataclass
class _Boundary:
    nodes: set[str]  # placed nodes (they have layers)
    tensors: set[str]  # graph inputs (upstream) or graph outputs (downstream) reached
    neutral: bool = False  # a subgraph body's formal input or output was reached (no evidence either way)


# How many tensors a search for a node's producers or consumers may pass through unplaced nodes: the nodes rules
# explain sit a few nodes away from placed ones; a search that wanders further has no local evidence (and a listing
# without metadata would otherwise make every search cross the whole graph).
SEARCH_LIMIT = 48
# Rounds of the rules over the nodes left (a node placed in one round can be the evidence for another).
MAX_ROUNDS = 4


def scalar_constants(model: Any) -> set[str]:
    """Names of one-element constants of an ONNX model (initializers and ``Constant`` nodes of the main graph)."""
    out = set()
    for t in model.graph.initializer:
        n = 1
        for d in t.dims:
            n *= d
        if n == 1:
            out.add(t.name)
    for node in model.graph.node:
        if node.op_type != "Constant" or not node.output:
            continue
        for a in node.attribute:
            if a.name in ("value_float", "value_int") or (
                a.name == "value" and a.HasField("t") and all(d == 1 for d in a.t.dims)
            ):
                out.add(node.output[0])
    return out


def constant_values(model: Any, limit: int = 4096) -> dict[str, bytes]:
    """Small constants of the main graph (initializers and ``Constant`` nodes, at most ``limit`` elements) by name:
    their type, shape and bytes, to tell two constants of equal value apart from different ones."""
    from onnx import numpy_helper

    out: dict[str, bytes] = {}

    def put(name: str, t: Any) -> None:
        n = 1
        for d in t.dims:
            n *= d
        if n > limit or t.data_location == 1:  # too big to compare, or external data
            return
        try:
            arr = numpy_helper.to_array(t)
        except Exception:  # noqa: BLE001 - an odd tensor is simply not compared
            return
        out[name] = f"{arr.dtype.str}{arr.shape}".encode() + arr.tobytes()

    for t in model.graph.initializer:
        put(t.name, t)
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output:
            for a in node.attribute:
                if a.name == "value" and a.HasField("t"):
                    put(node.output[0], a.t)
    return out


def tensor_types(model: Any) -> dict[str, int]:
    """ONNX element type of every tensor of the main graph whose type is declared or can be inferred."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - inference is best effort: an odd model just gets no types
        inferred = model
    g = inferred.graph
    out = {t.name: t.data_type for t in g.initializer}
    for v in (*g.input, *g.value_info, *g.output):
        if v.type.HasField("tensor_type") and v.type.tensor_type.elem_type:
            out[v.name] = v.type.tensor_type.elem_type
    return out


def kernel_ops(layer_name: str) -> tuple[str, ...] | None:
    """The operations a Myelin kernel name lists (``__myl_MulAddSigm_myl0_3`` → Mul, Add, Sigm); ``None`` when
    the name lists none or is cut short (``…Etc``), so nothing can be checked against it."""
    m = _KERNEL.match(layer_name)
    if not m:
        return None
    ops = tuple(re.findall(r"[A-Z][a-z]*", m.group(1)))
    return None if not ops or "Etc" in ops else ops


def _op_listed(op_type: str, layer: EngineLayer, already: int = 0) -> bool:
    """Whether a kernel name is consistent with computing one more ``op_type`` besides the ``already`` nodes of that
    type the layer holds: its name lists an operation for each (always true when the name cannot tell)."""
    ops = kernel_ops(layer.name)
    if ops is None or op_type in DATA_MOVEMENT or op_type not in KERNEL_TOKENS:
        return True
    matching = [o for o in ops if o in KERNEL_TOKENS[op_type]]
    if any(o in _COMPOSITE for o in matching) or op_type in _UNCOUNTED:  # several nodes, one kernel operation
        return bool(matching)
    return len(matching) > already


def _tensors(layer: EngineLayer, which: str) -> set[str]:
    ts = layer.inputs if which == "in" else layer.outputs
    return {_PROFILE_TAG.sub("", t.name) for t in ts}


class _Graph:
    def __init__(
        self,
        nodes: Sequence[GraphNode],
        where: dict[str, list[int]],
        skip: set[str],
        constants: set[str],
        graph_outputs: set[str],
        scalars: set[str],
        types: dict[str, int],
        values: dict[str, bytes],
    ) -> None:
        self.types = types
        self.values = values
        self.alias: dict[str, str] = {}  # output of a twin → the same output of the node it duplicates
        self.copies: dict[str, list[int]] | None = None
        self.nodes = {n.key: n for n in nodes}
        self.where = where
        self.skip = skip  # constant and shape nodes: not data
        self.constants = constants
        self.graph_outputs = graph_outputs
        self.scalars = {t for t in constants if t in scalars}
        self.producer: dict[str, GraphNode] = {}
        self.consumers: dict[str, list[GraphNode]] = {}
        for n in nodes:
            for o in n.outputs:
                if o:
                    self.producer.setdefault(o, n)
            for i in n.inputs:
                if i:
                    self.consumers.setdefault(i, []).append(n)

    def index_layers(self, layers: Sequence[EngineLayer]) -> None:
        self.layer_ops = [Counter[str]() for _ in layers]  # op types of the nodes each layer holds
        for k, lys in self.where.items():
            for i in lys:
                self.layer_ops[i][self.nodes[k].op_type] += 1
        self.tin = [_tensors(ly, "in") for ly in layers]
        self.tout = [_tensors(ly, "out") for ly in layers]
        self.readers: dict[str, list[int]] = {}
        for i, ts in enumerate(self.tin):
            for t in ts:
                self.readers.setdefault(t, []).append(i)

    def upstream(self, tensors: Iterable[str]) -> _Boundary:
        b = _Boundary(set(), set())
        todo, seen = [t for t in tensors if t], set()
        while todo:
            t = todo.pop()
            if t in seen or t in self.constants:
                continue
            seen.add(t)
            if len(seen) > SEARCH_LIMIT:
                return _Boundary(set(), set())
            p = self.producer.get(t)
            if p is None:
                if SCOPE in t:
                    b.neutral = True
                else:
                    b.tensors.add(t)
            elif p.key in self.skip:
                continue
            elif self.where.get(p.key):
                b.nodes.add(p.key)
            else:
                todo.extend(i for i in p.inputs if i)
        return b

    def downstream(self, tensors: Iterable[str]) -> _Boundary:
        b = _Boundary(set(), set())
        todo, seen = [t for t in tensors if t], set()
        while todo:
            t = todo.pop()
            if t in seen:
                continue
            seen.add(t)
            if len(seen) > SEARCH_LIMIT:
                return _Boundary(set(), set())
            if t in self.graph_outputs:
                if SCOPE in t:
                    b.neutral = True
                else:
                    b.tensors.add(t)
            for c in self.consumers.get(t, []):
                if c.key in self.skip:
                    continue
                if self.where.get(c.key):
                    b.nodes.add(c.key)
                else:
                    todo.extend(o for o in c.outputs if o)
        return b


def _names(keys: Iterable[str], limit: int = 3) -> str:
    ks = sorted(keys)
    return ", ".join(ks[:limit]) + (f" and {len(ks) - limit} more" if len(ks) > limit else "")


def _inside(n: GraphNode, g: _Graph, layers: Sequence[EngineLayer]) -> Explanation | None:
    up, down = g.upstream(n.inputs), g.downstream(n.outputs)
    if not (up.nodes or up.tensors) or not (down.nodes or down.tensors):
        return None  # nothing on one side: no evidence
    common: set[int] | None = None
    for p in up.nodes:
        common = set(g.where[p]) if common is None else common & set(g.where[p])
    for t in up.tensors:  # a graph input: the layer must read it
        reading = set(g.readers.get(t, ()))
        common = reading if common is None else common & reading
    if common is None:
        return None
    common = {i for i in common if _op_listed(n.op_type, layers[i], g.layer_ops[i][n.op_type])}
    found: set[int] = set()
    for c in down.nodes:
        hit = set(g.where[c]) & common
        if not hit:
            return None
        found |= hit
    for t in down.tensors:  # an engine output: the layer must write it
        hit = {i for i in common if t in g.tout[i]}
        if not hit:
            return None
        found |= hit
    if not found:
        return None
    names = [layers[i].name for i in sorted(found)]
    src = _names(up.nodes | {f"input {t}" for t in up.tensors})
    dst = _names(down.nodes | {f"output {t}" for t in down.tensors})
    where = names[0] if len(names) == 1 else f"each of {', '.join(names)}"
    why = (
        f"computed inside {where} without being named in its metadata: what it reads comes from {src}, "
        f"and what reads it ({dst}) is in {'that layer' if len(names) == 1 else 'those layers'} too"
    )
    if n.op_type not in DATA_MOVEMENT and n.op_type in KERNEL_TOKENS:
        shown = sorted(
            {t for i in found for t in (kernel_ops(layers[i].name) or ()) if t in KERNEL_TOKENS[n.op_type]}
        )
        if shown:
            why += f"; the kernel name lists the operation ({'/'.join(shown)})"
    return Explanation("split" if len(found) > 1 else "fused", tuple(sorted(found)), why, "inside")


def _copies(layers: Sequence[EngineLayer]) -> dict[str, list[int]]:
    """Tensor name → layers without ONNX nodes (copies/reformats TensorRT inserted) that read it."""
    out: dict[str, list[int]] = {}
    for i, ly in enumerate(layers):
        if not ly.onnx_nodes:
            for t in _tensors(ly, "in"):
                out.setdefault(t, []).append(i)
    return out


def _elided_concat(n: GraphNode, g: _Graph, layers: Sequence[EngineLayer]) -> Explanation | None:
    if n.op_type != "Concat":
        return None
    if g.copies is None:
        g.copies = _copies(layers)
    copies = g.copies
    writes: list[dict[str, str]] = []  # per input: tensor → how it gets there
    for t in n.inputs:
        if not t or t in g.constants:
            continue
        up = g.upstream([t])
        if up.tensors or up.neutral or not up.nodes:
            return None  # a graph input would have to be copied in by the engine: no evidence of an elision
        w: dict[str, str] = {}
        for i in sorted({i for p in up.nodes for i in g.where[p]}):
            for out in sorted(g.tout[i]):
                w.setdefault(out, layers[i].name)
                for c in copies.get(out, []):  # through a copy TensorRT inserted into the buffer
                    for t2 in sorted(g.tout[c]):
                        w.setdefault(t2, f"{layers[i].name} (copied in by {layers[c].name})")
        writes.append(w)
    if not writes:
        return None
    down = g.downstream(n.outputs)
    readers = sorted({i for c in down.nodes for i in g.where[c]})
    read = {name for i in readers for name in g.tin[i]} | down.tensors
    shared = sorted(set.intersection(*(set(w) for w in writes)) & read)
    if not shared:
        return None
    t = shared[0]
    by = [layers[i].name for i in readers if t in g.tin[i]]
    why = (
        f"concatenation elided into its consumers' buffer: {_names(sorted({w[t] for w in writes}), 4)} write "
        f"their outputs into one tensor {t}, which "
        + (f"{_names(by)} read" if by else "is the engine output")
    )
    return Explanation("eliminated", (), why, "buffer")


def _control_flow(n: GraphNode, g: _Graph, layers: Sequence[EngineLayer]) -> Explanation | None:
    if n.op_type not in CONTROL_FLOW_TYPES:
        return None
    body = [m for m in g.nodes.values() if m.parent == n.key]
    placed = sorted({i for m in body for i in g.where.get(m.key, [])})
    if not placed:
        return None
    inside = sum(bool(g.where.get(m.key)) for m in body)
    names = [layers[i].name for i in placed]
    why = (
        f"{n.op_type} has no layer of its own: {inside} of its {len(body)} body nodes are in "
        f"{_names(names)}, where TensorRT compiled (unrolled) the control flow"
    )
    return Explanation("split" if len(placed) > 1 else "fused", tuple(placed), why, "body")


_QDQ = frozenset({"QuantizeLinear", "DequantizeLinear"})


def _requantizing_scalar(n: GraphNode, g: _Graph) -> bool:
    """``DequantizeLinear → Mul/Div by a constant scalar → QuantizeLinear``: a change of quantization scale."""
    if n.op_type not in ("Mul", "Div") or not any(i in g.scalars for i in n.inputs):
        return False
    src = [g.producer.get(i) for i in n.inputs if i and i not in g.constants]
    dst = [c for o in n.outputs for c in g.consumers.get(o, [])]
    return (
        bool(src and dst)
        and all(p is not None and p.op_type == "DequantizeLinear" for p in src)
        and all(c.op_type == "QuantizeLinear" for c in dst)
    )


def _view(n: GraphNode, g: _Graph, layers: Sequence[EngineLayer]) -> Explanation | None:
    """A node that only moves data, or only rescales a quantized tensor (Q, DQ, a constant scalar factor between
    them), between two layers joined by a tensor: the layer that reads the tensor does the movement (a strided read,
    an offset into it), and a change of quantization scale is folded into the tensor's scale."""
    moves = n.op_type in DATA_MOVEMENT and n.op_type != "Concat"
    if not (moves or n.op_type in _QDQ or _requantizing_scalar(n, g)):
        return None
    up, down = g.upstream(n.inputs), g.downstream(n.outputs)
    if not down.nodes or bool(up.nodes) == bool(up.tensors):  # placed producers, or else only engine inputs
        return None
    written: dict[str, str] = {}  # tensor → who writes it
    for p in up.nodes:
        for i in g.where[p]:
            for t in g.tout[i]:
                written.setdefault(t, layers[i].name)
    if moves:  # an engine input, as it is or as a copy TensorRT made of it (a scalar copied to the host)
        for t in up.tensors:
            written.setdefault(t, "the engine input")
    if g.copies is None:
        g.copies = _copies(layers)
    for _hop in range(2):  # through layers TensorRT added (a transpose or copy kernel without ONNX nodes)
        for t, by in list(written.items()):
            for copy in g.copies.get(t, []):
                for t2 in g.tout[copy]:
                    written.setdefault(t2, f"{by}, then {layers[copy].name} (a layer TensorRT added),")
    producer_layers = {i for p in up.nodes for i in g.where[p]}
    links, together = [], []
    for c in sorted(down.nodes):
        if (
            moves and set(g.where[c]) & producer_layers
        ):  # read inside the layer that also computes its producer
            together.append(c)
            continue
        link = next(((t, i) for i in g.where[c] for t in sorted(g.tin[i]) if t in written), None)
        if link is None:
            return None
        links.append(link)
    if not links:
        return None  # all readers in the producer's layer: that is the 'inside' rule's case
    t, reader = links[0]
    how = (
        f"{n.op_type} only moves data: became a view in the engine"
        if moves
        else f"{n.op_type} only rescales a quantized tensor: folded into the scale of the tensor the engine keeps"
    )
    src = _names(up.nodes) if up.nodes else _names(f"input {x}" for x in up.tensors)
    why = (
        f"{how}: {written[t]} writes tensor {t} and {layers[reader].name} reads it"
        + (f" (and {len(links) - 1} more reader(s) likewise)" if len(links) > 1 else "")
        + f", between {src} and {_names(down.nodes)}"
        + (f"; {_names(together)} read(s) it inside the producer's own layer" if together else "")
    )
    return Explanation("eliminated", (), why, "tensors")


def _moved_scalar(n: GraphNode, g: _Graph, layers: Sequence[EngineLayer]) -> Explanation | None:
    """``x * c`` / ``x / c`` by a scalar constant before a linear op (MatMul, a view): Myelin moves the scaling
    through it into a later kernel, whose name lists the multiplication."""
    if n.op_type not in ("Mul", "Div") or not any(i in g.scalars for i in n.inputs[1:] + n.inputs[:1]):
        return None
    down = g.downstream(n.outputs)
    if not down.nodes or down.tensors:
        return None
    found: set[int] = set()
    for c in down.nodes:
        if g.nodes[c].op_type not in _LINEAR:
            return None
        hit = {i for i in g.where[c] if (ops := kernel_ops(layers[i].name)) is not None and "Mul" in ops}
        if not hit:
            return None
        found |= hit
    names = [layers[i].name for i in sorted(found)]
    why = (
        f"scaling by a constant scalar moved through the linear {_names({g.nodes[c].op_type for c in down.nodes})} "
        f"({_names(down.nodes)}) into {_names(names)}, whose kernel name lists the multiplication"
    )
    return Explanation("split" if len(found) > 1 else "fused", tuple(sorted(found)), why, "moved")


def _noop_cast(n: GraphNode, g: _Graph, layers: Sequence[EngineLayer]) -> Explanation | None:
    """A ``Cast`` to the type its input already has computes nothing (exporters write ``Cast(to=FLOAT)`` of a
    float softmax)."""
    if n.op_type != "Cast" or n.cast_to is None or not n.inputs:
        return None
    have = g.types.get(n.inputs[0])
    if have is None or have != n.cast_to:
        return None
    import onnx

    name = onnx.TensorProto.DataType.Name(have)
    return Explanation(
        "eliminated",
        (),
        f"Cast to {name} of {n.inputs[0]}, which already is {name}: nothing to convert",
        "types",
    )


def _same_value_twin(n: GraphNode, g: _Graph, layers: Sequence[EngineLayer]) -> Explanation | None:
    """A node identical to a node in a layer (same op and attributes; each input the same tensor, a constant of the
    same value, or the output of a twin found before): a common subexpression TensorRT computes once (the mask
    ``Where`` of each GPT-2 block, and what is computed from it the same way)."""
    if not n.inputs:
        return None
    canon = [g.alias.get(i, i) for i in n.inputs]
    if canon == list(n.inputs) and not any(i in g.values for i in n.inputs):
        return None  # same names only: the duplicate rule of fusion.py already looked

    def same(a: str, b: str) -> bool:
        return a == b or (a in g.values and g.values.get(a) == g.values.get(b))

    first = next((i for i in canon if i and i not in g.values), "")
    for m in g.consumers.get(first, []):
        if (
            m.key != n.key
            and g.where.get(m.key)
            and m.op_type == n.op_type
            and m.attrs == n.attrs
            and len(m.inputs) == len(n.inputs)
            and all(same(a, b) for a, b in zip(canon, m.inputs, strict=True))
        ):
            g.alias.update(zip(n.outputs, m.outputs, strict=False))
            names = [layers[i].name for i in g.where[m.key]]
            why = (
                f"duplicate of {m.key} (same op and attributes, and the same inputs, constants of equal value or "
                f"outputs of duplicates): a common subexpression TensorRT computes once, in {_names(names)}"
            )
            return Explanation("eliminated", (), why, "twin")
    return None


# Myelin kernel-name operations that carry out a data-movement op.
MOVE_TOKENS: dict[str, str] = {
    "Reshape": "Resh", "Flatten": "Resh", "Squeeze": "Resh", "Unsqueeze": "Resh", "Transpose": "Tran",
    "Slice": "Slic", "Split": "Slic", "Concat": "Conc", "Gather": "Gath",
}  # fmt: skip


def _body_output_move(n: GraphNode, g: _Graph, layers: Sequence[EngineLayer]) -> Explanation | None:
    """A data-movement node whose result is its If/Loop/Scan body's output: the layer of its producer does the
    movement when its kernel name lists it (``__myl_ReshMean`` for an ``Unsqueeze`` after a ``ReduceMean``), or it
    is a view between that layer and the one that writes the parent's output."""
    if not n.parent or n.op_type not in MOVE_TOKENS:
        return None
    up, down = g.upstream(n.inputs), g.downstream(n.outputs)
    if not up.nodes or up.tensors or down.nodes or down.tensors or not down.neutral:
        return None
    common: set[int] | None = None
    for p in up.nodes:
        common = set(g.where[p]) if common is None else common & set(g.where[p])
    token = MOVE_TOKENS[n.op_type]
    found = sorted(i for i in common or () if token in (kernel_ops(layers[i].name) or ()))
    if found:
        names = [layers[i].name for i in found]
        why = (
            f"computed inside {_names(names)}, which also computes {_names(up.nodes)} and whose kernel name lists "
            f"the movement ({token}); its result is the output of {n.parent}'s body"
        )
        return Explanation("split" if len(found) > 1 else "fused", tuple(found), why, "inside")
    parent = g.nodes.get(n.parent)
    outs = {o for o in (parent.outputs if parent else ()) if o}
    for i in sorted(common or ()):
        for j, tin in enumerate(g.tin):
            shared = sorted(tin & g.tout[i])
            if shared and g.tout[j] & outs:
                why = (
                    f"{n.op_type} only moves data: became a view: its result is the output of {n.parent}'s body; "
                    f"{layers[i].name} (which computes {_names(up.nodes)}) writes tensor {shared[0]}, and "
                    f"{layers[j].name}, which writes {n.parent}'s output {sorted(g.tout[j] & outs)[0]}, reads it"
                )
                return Explanation("eliminated", (), why, "tensors")
    return None


_LINEAR = frozenset({"MatMul", "Gemm", "Einsum"}) | DATA_MOVEMENT

RULES = (
    _noop_cast,
    _same_value_twin,
    _elided_concat,
    _control_flow,
    _inside,
    _view,
    _moved_scalar,
    _body_output_move,
)


def explain(
    nodes: Sequence[GraphNode],
    where: dict[str, list[int]],
    layers: Sequence[EngineLayer],
    todo: Iterable[str],
    skip: set[str],
    constants: set[str],
    graph_outputs: set[str],
    scalars: set[str] | None = None,
    types: dict[str, int] | None = None,
    values: dict[str, bytes] | None = None,
) -> dict[str, Explanation]:
    """Explanations for the nodes in ``todo`` (keys of nodes in no layer that nothing else explained).

    ``where`` maps node keys to the indices of the ``layers`` whose metadata names them; ``skip`` holds constant and
    shape-computing nodes. A node no rule explains is absent from the result (it stays unaccounted).
    """
    placed = {k: list(v) for k, v in where.items()}
    g = _Graph(nodes, placed, skip, constants, graph_outputs, scalars or set(), types or {}, values or {})
    left = [k for k in todo if k in g.nodes]
    out: dict[str, Explanation] = {}
    g.index_layers(layers)
    changed, rounds = True, 0
    while changed and left and rounds < MAX_ROUNDS:
        changed, rounds = False, rounds + 1
        for k in list(left):
            for rule in RULES:
                e = rule(g.nodes[k], g, layers)
                if e is not None:
                    out[k] = e
                    placed[k] = list(e.layers)
                    for i in e.layers:
                        g.layer_ops[i][g.nodes[k].op_type] += 1
                    left.remove(k)
                    changed = True
                    break
    return out
