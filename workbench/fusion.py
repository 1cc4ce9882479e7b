"""Fusion accounting: where every ONNX node went in the engine, and how two builds differ.

:func:`account_fusion` puts each ONNX node of the network TensorRT parsed into exactly one fate:

``fused``            inside one engine layer together with other ONNX nodes;
``one_to_one``       the only ONNX node of exactly one engine layer;
``split``            in several engine layers (a convolution and its fused epilogue, a GEMM and its bias kernel);
``constant_folded``  in no layer, and its outputs depend only on initializers/constants (computed at build time);
``eliminated``       in no layer: a no-op (Identity, Dropout), a view change (Reshape, Flatten, Squeeze, …) or
                     Transpose that became a tensor view — only with evidence: an engine layer downstream reads its
                     output, or the engine lists its output tensor —, a shape computation TensorRT evaluates
                     itself, a cancelled Q/DQ pair, a duplicate, or dead code;
``unaccounted``      in no layer and none of the above (a view nothing in the engine reads is unverified, so it is
                     here). For a real build this must be zero.

Nodes no layer's metadata names are not unaccounted when :mod:`workbench.fusion_rules` finds the evidence for where
they went (computed inside a layer holding all their producers and consumers, a concatenation elided into one buffer,
a view between a layer writing a tensor and one reading it, a loop body's layers, …); ``NodeFate.evidence`` says
which rule and ``reason`` gives the evidence itself.

The evidence is the ONNX-layer metadata TensorRT's parser attaches to every engine layer (detailed profiling
verbosity). Without metadata (``LAYER_NAMES_ONLY`` listings, old inspector JSON) the nodes are recovered from layer
names (``a + b``, ``PWN(c)``, ``ForeignNode[first...last]``) and the report says so.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ModelError, WorkbenchError
from .fusion_rules import (
    EVIDENCE_LABELS,
    RULE_EVIDENCE,
    SCOPE,
    constant_values,
    explain,
    scalar_constants,
    tensor_types,
)
from .layers import EngineLayer, EngineLayers

if TYPE_CHECKING:  # pragma: no cover
    import onnx

FATES = ("fused", "one_to_one", "split", "constant_folded", "eliminated", "unaccounted")

# Ops that compute nothing: TensorRT drops them or turns them into a view of the same memory.
NO_OP_TYPES = frozenset({"Identity", "Dropout", "Optional", "OptionalGetElement"})
VIEW_OP_TYPES = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze"})
SHAPE_SOURCE_TYPES = frozenset({"Shape", "Size"})
# Ops that only move data; TensorRT folds them into a neighbouring kernel's memory layout.
LAYOUT_OP_TYPES = VIEW_OP_TYPES | {"Transpose"}

# Layer types / names of layers TensorRT adds itself (no ONNX node of their own).
_REFORMAT_TYPES = frozenset({"Reformat", "NoOp", "Copy", "reformat", "copy"})

# Abbreviations in Myelin kernel names (``__myl_CorrMulAddRelu`` = convolution · mul · add · relu).
MYELIN_OPS: dict[str, str] = {
    "Corr": "convolution (correlation)",
    "Conv": "convolution",
    "Fc": "fully connected (GEMM)",
    "Gemm": "GEMM",
    "Mmul": "matrix multiply",
    "Mul": "multiply",
    "Add": "add",
    "Sub": "subtract",
    "Div": "divide",
    "Relu": "ReLU",
    "Sigm": "sigmoid",
    "Tanh": "tanh",
    "Erf": "erf",
    "Exp": "exp",
    "Sqrt": "square root",
    "Mean": "mean (reduction)",
    "Sum": "sum (reduction)",
    "Maxr": "max (reduction)",
    "Max": "max",
    "Min": "min",
    "Roun": "round",
    "Cast": "cast",
    "Move": "copy / layout change",
    "Resh": "reshape",
    "Tran": "transpose",
    "Slic": "slice",
    "Conc": "concatenate",
    "Repl": "replicate (pad)",
    "Gath": "gather",
    "Pow": "power",
    "Neg": "negate",
    "Abs": "abs",
    "Clip": "clip",
    "Etc": "… more",
}

CONVENTIONS: dict[str, str] = {
    "vertical": "' + ' joins a producer and its consumers fused into one kernel (vertical fusion), e.g. "
    "'Conv_0 + Relu_1': the convolution's output never goes to memory.",
    "horizontal": "'||' joins sibling layers that read the same input and run as one kernel (horizontal "
    "fusion), e.g. three Q/K/V projections computed by one wider GEMM.",
    "pointwise": "'PWN(...)' is a pointwise group: element-wise ops (add, mul, activations) compiled into a "
    "single generated kernel, often fused into the preceding layer.",
    "foreign_node": "'ForeignNode[first...last]' is a region TensorRT handed to its Myelin compiler; the listing "
    "names only its first and last ONNX nodes. Everything between them is inside.",
    "myelin_kernel": "'__myl_<Ops>' is a kernel the Myelin compiler generated; its name lists the fused operations "
    "(e.g. CorrMulAddRelu = convolution · multiply · add · ReLU, a conv with folded batch-norm "
    "and ReLU).",
    "myelin_suffix": "'…_myl<g>_<i>' marks kernel i of Myelin graph g; with several optimization profiles each "
    "profile gets its own copy of the graph.",
    "multi_gemm": "'a+b+c' in a GEMM layer (TensorRT-RTX) names GEMMs merged into one (horizontal fusion of "
    "projections that share an input).",
    "reformat": "'Reformatting CopyNode for …' is a layout or precision conversion TensorRT inserted between "
    "layers that want different formats; it has no ONNX node.",
}


# ---------------------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class NodeFate:
    """Where one ONNX node went."""

    node: str
    op_type: str
    fate: str
    layers: tuple[str, ...] = ()
    precisions: tuple[str, ...] = ()
    reason: str = ""
    # "metadata", "layer name", "region" (inside a ForeignNode range), "graph" (no layer: the reason says why), or
    # one of fusion_rules.RULE_EVIDENCE for nodes no metadata names (the reason gives the evidence)
    evidence: str = "metadata"
    parent: str = ""  # the If/Loop/Scan node whose body holds this node


@dataclass(frozen=True)
class InsertedLayer:
    """An engine layer with no ONNX node: a reformat/copy, a shape program, or another TensorRT addition."""

    layer: str
    type: str
    kind: str  # "reformat", "shape", "other"
    explanation: str


@dataclass(frozen=True)
class OpaqueRegion:
    """A compiler-generated kernel or a ``ForeignNode`` region, with the ONNX nodes inside it."""

    layer: str
    type: str
    kind: str  # "foreign_node" or "myelin_kernel"
    onnx_nodes: tuple[str, ...]
    ops: tuple[str, ...] = ()  # decoded operations from a Myelin kernel name
    explanation: str = ""


@dataclass(frozen=True)
class LayerGroup:
    """One engine layer seen from the ONNX side: which nodes, which op types, what kind of fusion."""

    layer: str
    type: str
    precision: str
    onnx_nodes: tuple[str, ...]
    op_types: tuple[str, ...]
    fusion: str  # "single", "vertical", "horizontal", "vertical+horizontal", "grouped", "none"
    conventions: tuple[str, ...] = ()


@dataclass(frozen=True)
class FusionReport:
    model_name: str
    num_onnx_nodes: int
    num_layers: int
    nodes: tuple[NodeFate, ...]
    groups: tuple[LayerGroup, ...]
    inserted: tuple[InsertedLayer, ...]
    opaque: tuple[OpaqueRegion, ...]
    # layers with tensors (a shape program has none) by compute precision; a layer that only converts between
    # float types (the Cast to an FP16 engine's FP32 output) counts as "cast→FP32", not as an FP32 layer
    precision_mix: dict[str, int]
    layer_types: dict[str, int]
    conventions: dict[str, str]
    unknown_metadata: tuple[str, ...] = ()  # names in layer metadata that are no node of this model
    profile: int = 0
    num_profiles: int = 1
    source: str = ""
    detail: str = "detailed"
    notes: tuple[str, ...] = field(default=())

    @property
    def fate_counts(self) -> dict[str, int]:
        c = Counter(n.fate for n in self.nodes)
        return {f: c.get(f, 0) for f in FATES}

    @property
    def unaccounted(self) -> tuple[NodeFate, ...]:
        return tuple(n for n in self.nodes if n.fate == "unaccounted")

    def summary(self) -> str:
        c = self.fate_counts
        in_layers = c["fused"] + c["one_to_one"] + c["split"]
        mix = ", ".join(f"{k} ×{v}" for k, v in sorted(self.precision_mix.items(), key=lambda kv: -kv[1]))
        return (
            f"{self.num_onnx_nodes} ONNX nodes → {self.num_layers} engine layers"
            + (f" (profile {self.profile} of {self.num_profiles})" if self.num_profiles > 1 else "")
            + f". {in_layers} nodes are in engine layers ({c['fused']} fused with others, {c['one_to_one']} one to "
            f"one, {c['split']} split over several layers); {c['constant_folded']} constant-folded, "
            f"{c['eliminated']} eliminated, {c['unaccounted']} unaccounted. "
            f"{len(self.inserted)} {'layer was' if len(self.inserted) == 1 else 'layers were'} added by TensorRT "
            f"(reformat/copy/shape). Precision mix: {mix or '–'}."
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["fate_counts"] = self.fate_counts
        data["summary"] = self.summary()
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    def node_rows(self) -> list[dict[str, Any]]:
        return [
            {
                "node": n.node,
                "op_type": n.op_type,
                "fate": n.fate,
                "layers": "; ".join(n.layers),
                "precisions": "; ".join(n.precisions),
                "reason": n.reason,
                "evidence": n.evidence,
                "body of": n.parent,
            }
            for n in self.nodes
        ]

    def evidence_rows(self) -> list[dict[str, Any]]:
        """Every ONNX node no layer's metadata names (eliminated, constant-folded, placed by a rule of
        :mod:`fusion_rules`, unaccounted): its fate, the layers it was found in, and the evidence for it."""
        return [
            {
                "node": n.node,
                "op_type": n.op_type,
                "fate": n.fate,
                "layers": "; ".join(n.layers),
                "evidence": EVIDENCE_LABELS.get(n.evidence, n.evidence),
                "why": n.reason,
                "body of": n.parent,
            }
            for n in self.nodes
            if n.evidence not in ("metadata", "layer name", "region")
        ]

    def layer_node_rows(self, layer: EngineLayer) -> list[dict[str, Any]]:
        """The ONNX nodes of one engine layer with their fate and the other layers they are also in."""
        fate = {n.node: n for n in self.nodes}
        rows = []
        for name in layer.onnx_nodes:
            f = fate.get(name) or fate.get(name.split(" | ", 1)[0])
            rows.append(
                {
                    "node": name,
                    "op_type": f.op_type if f else "?",
                    "fate": f.fate if f else "not in this model",
                    "also in": "; ".join(x for x in f.layers if x != layer.name) if f else "",
                    "evidence": EVIDENCE_LABELS["metadata"] if f else "",
                }
            )
        for f in self.nodes:  # nodes a rule found in this layer, though its metadata does not name them
            if f.evidence in RULE_EVIDENCE and layer.name in f.layers:
                rows.append(
                    {
                        "node": f.node,
                        "op_type": f.op_type,
                        "fate": f.fate,
                        "also in": "; ".join(x for x in f.layers if x != layer.name),
                        "evidence": f"{EVIDENCE_LABELS[f.evidence]}: {f.reason}",
                    }
                )
        return rows

    def opaque_rows(self) -> list[dict[str, Any]]:
        return [
            {
                "layer": o.layer,
                "kind": o.kind.replace("_", " "),
                "explanation": o.explanation,
                "ONNX nodes": ", ".join(o.onnx_nodes),
            }
            for o in self.opaque
        ]

    def inserted_rows(self) -> list[dict[str, Any]]:
        return [
            {"layer": i.layer, "type": i.type, "kind": i.kind, "explanation": i.explanation}
            for i in self.inserted
        ]


# ---------------------------------------------------------------------------------------------- ONNX side
@dataclass(frozen=True)
class _Node:
    key: str
    op_type: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: bytes = b""
    parent: str = ""  # key of the If/Loop/Scan node whose body holds this node ("" in the main graph)
    cast_to: int | None = None  # a Cast's target element type


def onnx_node_name(node: Any) -> str:
    """The name TensorRT's ONNX parser uses for a node: its name, or ``node_of_<first output>`` when unnamed."""
    if node.name:
        return str(node.name)
    return f"node_of_{node.output[0]}" if len(node.output) else f"node_of_{node.op_type}"


def _load_model(model: onnx.ModelProto | str | Path) -> onnx.ModelProto:
    import onnx

    if isinstance(model, onnx.ModelProto):
        return model
    path = Path(model)
    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as err:  # noqa: BLE001 - onnx raises DecodeError, OSError, ...
        raise ModelError(
            f"Cannot read the ONNX model {path.name}: {err}.",
            "Pick the model the engine was built from (a job's network.onnx or the original).",
        ) from err


def _nodes(model: onnx.ModelProto) -> tuple[list[_Node], set[str], set[str]]:
    """Every node of the model, subgraph bodies (If/Loop/Scan) included, each right after its parent node.

    Tensors local to a body are renamed ``<parent>/<attribute>::<name>`` (so they cannot clash with the outer
    scope); a body's outputs count as graph outputs. Names a body takes from the outer scope are left as they are.
    """
    g = model.graph
    constants = {i.name for i in g.initializer} | {i.name for i in g.sparse_initializer}
    out, seen = [], Counter[str]()
    graph_outputs = {o.name for o in g.output}

    def add(graph: Any, parent: str, rename: dict[str, str]) -> None:
        for n in graph.node:
            name = onnx_node_name(n)
            seen[name] += 1
            key = name if seen[name] == 1 else f"{name}#{seen[name]}"
            attrs = b"".join(a.SerializeToString() for a in sorted(n.attribute, key=lambda a: a.name))
            ins = tuple(rename.get(i, i) for i in n.input)
            outs = tuple(rename.get(o, o) for o in n.output)
            to = next((a.i for a in n.attribute if a.name == "to"), None) if n.op_type == "Cast" else None
            out.append(_Node(key, n.op_type, ins, outs, attrs, parent, to))
            for a in n.attribute:
                for body in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                    scope = f"{key}/{a.name}{SCOPE}"
                    local = {i.name for i in body.input} | {i.name for i in body.initializer}
                    local |= {o for bn in body.node for o in bn.output if o}
                    inner = {**rename, **{t: scope + t for t in local}}
                    constants.update(scope + i.name for i in body.initializer)
                    graph_outputs.update(inner.get(o.name, o.name) for o in body.output)
                    add(body, key, inner)

    add(g, "", {})
    return out, constants, graph_outputs


def _derived(nodes: list[_Node], constants: set[str]) -> tuple[set[str], set[str], set[str]]:
    """Keys of nodes whose outputs are constant, shape-derived (from Shape/Size), and those that are live."""
    const_t: set[str] = set(constants)
    shape_t: set[str] = set()
    const_n: set[str] = set()
    shape_n: set[str] = set()
    for n in nodes:  # ONNX graphs are topologically sorted
        ins = [i for i in n.inputs if i]
        if (
            n.op_type == "Constant"
            or (ins and all(i in const_t for i in ins))
            or (not ins and n.op_type in ("ConstantOfShape", "Range", "EyeLike"))
        ):
            const_n.add(n.key)
            const_t.update(n.outputs)
        elif n.op_type in SHAPE_SOURCE_TYPES or (
            ins and all(i in const_t or i in shape_t for i in ins) and any(i in shape_t for i in ins)
        ):
            shape_n.add(n.key)
            shape_t.update(n.outputs)
    return const_n, shape_n, const_t


def _live(nodes: list[_Node], graph_outputs: set[str]) -> set[str]:
    needed, live = set(graph_outputs), set()
    for n in reversed(nodes):
        if any(o in needed for o in n.outputs):
            live.add(n.key)
            needed.update(i for i in n.inputs if i)
    return live


# ---------------------------------------------------------------------------------------------- layer side
_PROFILE_TAG = re.compile(r" \[profile \d+\]")
_FOREIGN = re.compile(r"ForeignNode\[(.*?)\.\.\.(.*)\]$")
_PWN = re.compile(r"PWN\((.*)\)")
_MYL_KERNEL = re.compile(r"^__myl_([A-Za-z]+?)_myl\d+_\d+$")
_MYL_SUFFIX = re.compile(r"_myl\d+_\d+$")


def decode_myelin_ops(layer_name: str) -> tuple[str, ...]:
    """``__myl_CorrMulAddRelu_myl0_2`` → ("convolution (correlation)", "multiply", "add", "ReLU")."""
    m = _MYL_KERNEL.match(layer_name)
    if not m:
        return ()
    parts = re.findall(r"[A-Z][a-z]*", m.group(1))
    return tuple(MYELIN_OPS.get(p, p) for p in parts)


def name_conventions(layer: EngineLayer) -> tuple[str, ...]:
    """Which naming conventions a layer name uses (keys of :data:`CONVENTIONS`)."""
    name, out = layer.name, []
    if " + " in name:
        out.append("vertical")
    if "||" in name:
        out.append("horizontal")
    if "PWN(" in name:
        out.append("pointwise")
    if name.startswith("ForeignNode[") or "{ForeignNode[" in name:
        out.append("foreign_node")
    if name.startswith("__myl_"):
        out.append("myelin_kernel")
    if _MYL_SUFFIX.search(name):
        out.append("myelin_suffix")
    if "+" in name and " + " not in name and layer.type.lower() == "gemm":
        out.append("multi_gemm")
    if name.startswith("Reformatting CopyNode"):
        out.append("reformat")
    return tuple(out)


def _name_tokens(name: str) -> list[str]:
    """ONNX node names a classic TensorRT layer name mentions (``a + b``, ``a || b``, ``PWN(c, d)``)."""
    tokens: list[str] = []
    for part in re.split(r" \+ |\|\|", name):
        part = part.strip()
        m = _PWN.fullmatch(part)
        if m:
            tokens += [t.strip() for t in re.split(r", | \+ ", m.group(1)) if t.strip()]
        elif part:
            tokens.append(part)
    return [re.sub(r"^PWN\(|\)$", "", t) for t in tokens]


def _match_name(token: str, keys: dict[str, int]) -> str | None:
    if token in keys:
        return token
    # A node of an If body is named "<node> | <body> (<attribute>) | <parent> (<op>)" in the metadata.
    token = token.split(" | ", 1)[0]
    if token in keys:
        return token
    stripped = re.sub(r"(_\d+)+$", "", token)  # TensorRT appends _N to layers it derives from one node
    return stripped if stripped in keys else None


def _is_reformat(layer: EngineLayer) -> bool:
    return (
        layer.type in _REFORMAT_TYPES
        or layer.name.startswith("Reformatting CopyNode")
        or layer.origin.upper() == "REFORMAT"
        or bool(re.match(r"^__myl_Move_myl\d+_\d+$", layer.name))
    )


def _inserted(layer: EngineLayer) -> InsertedLayer:
    if layer.type == "shape_call":
        return InsertedLayer(
            layer.name,
            layer.type,
            "shape",
            "Myelin's shape program: computes the dynamic shapes of its graph at run time.",
        )
    if _is_reformat(layer):
        fmt_in = ", ".join(sorted({f"{t.dtype} {t.format}".strip() for t in layer.inputs}))
        fmt_out = ", ".join(sorted({f"{t.dtype} {t.format}".strip() for t in layer.outputs}))
        return InsertedLayer(
            layer.name,
            layer.type,
            "reformat",
            f"Reformat/copy TensorRT inserted: {fmt_in or '?'} → {fmt_out or '?'}.",
        )
    return InsertedLayer(
        layer.name, layer.type, "other", "A layer TensorRT created that carries no ONNX node in its metadata."
    )


# ---------------------------------------------------------------------------------------------- accounting
def account_fusion(
    model: onnx.ModelProto | str | Path, layers: EngineLayers, profile: int = 0
) -> FusionReport:
    """Account for every ONNX node of ``model`` (the network the engine was built from) in ``layers``.

    With several optimization profiles TensorRT lists one copy of the network per profile; ``profile`` picks it.
    """
    proto = _load_model(model)
    nodes, constants, graph_outputs = _nodes(proto)
    if not nodes:
        raise ModelError(
            "The ONNX model has no nodes, so there is nothing to account for.",
            "Pick the model the engine was built from.",
        )
    index = {n.key: i for i, n in enumerate(nodes)}
    op_of = {n.key: n.op_type for n in nodes}
    engine = layers.for_profile(profile) or layers.layers
    notes: list[str] = []

    # ONNX nodes of every layer: metadata first, then names, then ForeignNode ranges.
    per_layer: list[tuple[EngineLayer, tuple[str, ...], str]] = []
    unknown: dict[str, None] = {}
    used_names = False
    for ly in engine:
        found: list[str] = []
        evidence = "metadata"
        for onnx_name in ly.onnx_nodes:
            k = _match_name(onnx_name, index)
            if k is None:
                unknown.setdefault(onnx_name, None)
            else:
                found.append(k)
        if not ly.onnx_nodes:
            m = _FOREIGN.search(ly.name.strip("{}"))
            if m:
                a, b = _match_name(m.group(1), index), _match_name(m.group(2), index)
                if a is not None and b is not None:
                    lo, hi = sorted((index[a], index[b]))
                    found = [n.key for n in nodes[lo : hi + 1]]
                    evidence = "region"
            elif not _is_reformat(ly) and ly.type != "shape_call":
                found = [k for tok in _name_tokens(ly.name) if (k := _match_name(tok, index)) is not None]
                evidence = "layer name"
            if found:
                used_names = True
        per_layer.append((ly, tuple(dict.fromkeys(found)), evidence))
    if used_names:
        notes.append(
            "Some layers carry no ONNX metadata; their nodes were recovered from layer names "
            "(build with profiling verbosity DETAILED for exact metadata)."
        )

    where: dict[str, list[int]] = {n.key: [] for n in nodes}
    evidence_of: dict[str, str] = {}
    for li, (_ly, keys, ev) in enumerate(per_layer):
        for k in keys:
            where[k].append(li)
            evidence_of.setdefault(k, ev)

    const_n, shape_n, const_t = _derived(nodes, constants)
    live = _live(nodes, graph_outputs)
    unplaced = {k for k, v in where.items() if not v}
    cancelled = _cancelled_qdq(nodes, proto, unplaced)
    duplicates = _duplicates(nodes, unplaced)
    layer_names = [ly.name for ly, _f, _e in per_layer]
    consumers_of = _consumers(nodes)
    engine_tensors = {
        _PROFILE_TAG.sub("", t.name) for ly in engine for t in (*ly.inputs, *ly.outputs)
    } | {t.name for t in layers.io_tensors}
    fates = []
    for n in nodes:
        lis = where[n.key]
        lys = tuple(per_layer[i][0].name for i in lis)
        precs = tuple(dict.fromkeys(per_layer[i][0].precision for i in lis))
        ev = evidence_of.get(n.key, "graph")
        if len(lis) >= 2:
            fate, reason = "split", f"in {len(lis)} engine layers"
        elif len(lis) == 1:
            others = len(per_layer[lis[0]][1])
            if others > 1:
                fate, reason = "fused", f"fused with {others - 1} other ONNX node(s)"
                if n.key in const_n:
                    reason += "; a constant subexpression, folded into the layer at build time"
            else:
                fate, reason = "one_to_one", "its own engine layer"
        elif n.key in const_n:
            fate, reason = "constant_folded", "depends only on initializers/constants: computed at build time"
        elif n.op_type in NO_OP_TYPES:
            fate, reason = "eliminated", f"{n.op_type} computes nothing: removed"
        elif n.key in shape_n:
            fate, reason = (
                "eliminated",
                "shape computation (from Shape/Size): evaluated by TensorRT's shape logic",
            )
        elif n.key in duplicates:
            fate, reason = "eliminated", duplicates[n.key]
        elif n.op_type in LAYOUT_OP_TYPES and (
            view := _view_evidence(n, consumers_of, where, layer_names, set(cancelled), engine_tensors)
        ):
            if n.op_type in VIEW_OP_TYPES:
                reason = f"{n.op_type} only changes the shape: became a view of its input, {view}"
            else:
                reason = f"{n.op_type} only moves data: no layer of its own; folded into the memory layout, {view}"
            fate = "eliminated"
        elif n.key in cancelled:
            fate, reason = "eliminated", cancelled[n.key]
        elif n.key not in live:
            fate, reason = "eliminated", "dead code: its outputs reach no graph output"
        elif n.op_type in LAYOUT_OP_TYPES:
            fate, reason = (
                "unaccounted",
                f"{n.op_type} appears in no engine layer, and no engine layer reads its output (directly or through "
                "other views) nor lists it: that it became a view or layout change is not verified",
            )
        else:
            fate, reason = (
                "unaccounted",
                "appears in no engine layer, and is not a no-op, constant or shape op",
            )
        fates.append(NodeFate(n.key, n.op_type, fate, lys, precs, reason, ev, n.parent))

    # What metadata and the rules above leave unexplained: the graph rules of fusion_rules, each with evidence.
    left = [f for f in fates if f.fate == "unaccounted"]
    explained = explain(
        nodes,
        where,
        [ly for ly, _f, _e in per_layer],
        [f.node for f in left],
        const_n | shape_n,
        const_t,
        graph_outputs,
        scalar_constants(proto) if left else set(),
        tensor_types(proto) if any(f.op_type == "Cast" for f in left) else {},
        constant_values(proto) if left else {},
    )
    for i, f in enumerate(fates):
        e = explained.get(f.node)
        if e is not None:
            fates[i] = replace(
                f,
                fate=e.fate,
                layers=tuple(per_layer[j][0].name for j in e.layers),
                precisions=tuple(dict.fromkeys(per_layer[j][0].precision for j in e.layers)),
                reason=e.reason,
                evidence=e.evidence,
            )
    in_bodies = sum(bool(n.parent) for n in nodes)
    if in_bodies:
        notes.append(
            f"{in_bodies} of the {len(nodes)} ONNX nodes are inside If/Loop/Scan bodies; they are accounted like "
            "the others (column 'body of')."
        )

    groups, inserted, opaque = [], [], []
    node_by_key = {n.key: n for n in nodes}
    for ly, members, _ev in per_layer:
        conv = name_conventions(ly)
        groups.append(
            LayerGroup(
                ly.name,
                ly.type,
                ly.precision,
                members,
                tuple(op_of[k] for k in members),
                _fusion_kind(members, node_by_key),
                conv,
            )
        )
        if not members:
            inserted.append(_inserted(ly))
        if (
            "foreign_node" in conv
            or "myelin_kernel" in conv
            or ly.type in ("kgen", "runtime_fusion", "Myelin")
        ):
            kind = "foreign_node" if "foreign_node" in conv else "myelin_kernel"
            ops = decode_myelin_ops(ly.name)
            if kind == "foreign_node":
                text = (
                    f"Region compiled by Myelin: {len(members)} ONNX nodes from {members[0]} to {members[-1]}."
                    if members
                    else "Region compiled by Myelin; its ONNX nodes are not in this model."
                )
            else:
                text = (
                    "Kernel generated by the Myelin compiler"
                    + (f" ({' · '.join(ops)})" if ops else "")
                    + (f" for {len(members)} ONNX node(s)." if members else "; no ONNX node of its own.")
                )
            opaque.append(OpaqueRegion(ly.name, ly.type, kind, members, ops, text))

    used_conv = sorted({c for g in groups for c in g.conventions})
    return FusionReport(
        model_name=proto.graph.name or "model",
        num_onnx_nodes=len(nodes),
        num_layers=len(engine),
        nodes=tuple(fates),
        groups=tuple(groups),
        inserted=tuple(inserted),
        opaque=tuple(opaque),
        precision_mix=dict(Counter(mix_key(ly) for ly in engine if ly.inputs or ly.outputs)),
        layer_types=dict(Counter(ly.type for ly in engine)),
        conventions={c: CONVENTIONS[c] for c in used_conv},
        unknown_metadata=tuple(unknown),
        profile=profile,
        num_profiles=layers.num_profiles,
        source=layers.source,
        detail=layers.detail,
        notes=tuple(notes),
    )


_PASS_THROUGH = NO_OP_TYPES | VIEW_OP_TYPES | {"Transpose"}
CAST_PREFIX = "cast→"


def mix_key(layer: EngineLayer) -> str:
    """A layer's entry in a precision mix: its compute precision, or ``cast→FP32`` for a pure float conversion."""
    return f"{CAST_PREFIX}{layer.precision}" if layer.is_conversion else layer.precision


def _duplicates(nodes: list[_Node], unplaced: set[str]) -> dict[str, str]:
    """Unplaced nodes identical to a placed one (same op, inputs, attributes): common subexpressions that
    TensorRT computes once (e.g. two identical Casts of one input after an FP16 conversion)."""
    placed: dict[tuple[str, tuple[str, ...], bytes], str] = {}
    for n in nodes:
        if n.key not in unplaced:
            placed.setdefault((n.op_type, n.inputs, n.attrs), n.key)
    out = {}
    for n in nodes:
        twin = placed.get((n.op_type, n.inputs, n.attrs)) if n.key in unplaced else None
        if twin is not None:
            out[n.key] = (
                f"duplicate of {twin} (same op, inputs and attributes): a common subexpression TensorRT "
                "computes once"
            )
    return out


def _consumers(nodes: list[_Node]) -> dict[str, list[_Node]]:
    out: dict[str, list[_Node]] = {}
    for n in nodes:
        for i in n.inputs:
            if i:
                out.setdefault(i, []).append(n)
    return out


def _view_evidence(
    node: _Node,
    consumers: dict[str, list[_Node]],
    where: dict[str, list[int]],
    layer_names: list[str],
    cancelled: set[str],
    engine_tensors: set[str],
) -> str:
    """Why a data-movement node in no layer's metadata can be called eliminated, or ``""`` when nothing shows it:
    an engine layer downstream reads its output (through other views and cancelled Q/DQ pairs), or its output is a
    tensor the engine lists (an engine output, a layer's input or output)."""
    near = _absorbing_layer(node, consumers, where, layer_names, cancelled)
    if near:
        return f"read directly by {near}"
    listed = [o for o in node.outputs if o in engine_tensors]
    if listed:
        return f"its output {listed[0]} is a tensor of the engine"
    return ""


def _absorbing_layer(
    node: _Node,
    consumers: dict[str, list[_Node]],
    where: dict[str, list[int]],
    layer_names: list[str],
    through: set[str] | frozenset[str] = frozenset(),
) -> str:
    """The first engine layer downstream of ``node`` (through other unplaced data-movement nodes, and the nodes in
    ``through``), or ``""``."""
    todo, seen = list(node.outputs), set()
    while todo:
        t = todo.pop(0)
        for c in consumers.get(t, []):
            if c.key in seen:
                continue
            seen.add(c.key)
            if where.get(c.key):
                return layer_names[where[c.key][0]]
            if c.op_type in _PASS_THROUGH or c.key in through:
                todo.extend(c.outputs)
    return ""


def _cancelled_qdq(nodes: list[_Node], proto: onnx.ModelProto, unplaced: set[str]) -> dict[str, str]:
    """DequantizeLinear → (views) → QuantizeLinear with the same scale and zero point is the identity on the INT8
    grid: TensorRT moves Q/DQ across data-movement ops and cancels such a pair. Returns node key → reason."""
    from onnx import numpy_helper

    inits = {i.name: i for i in proto.graph.initializer}

    def value(name: str) -> Any:
        t = inits.get(name)
        if t is None or t.data_location == 1:  # not an initializer, or external data: compare by name only
            return None
        try:
            arr = numpy_helper.to_array(t)
        except Exception:  # noqa: BLE001 - odd initializers are simply not compared by value
            return None
        return (arr.dtype.str, arr.shape, arr.tobytes()) if arr.size <= 4096 else None

    def same(a: str, b: str) -> bool:
        if a == b:
            return True
        va, vb = value(a), value(b)
        return va is not None and va == vb

    consumers = _consumers(nodes)
    out: dict[str, str] = {}
    for d in nodes:
        if d.op_type != "DequantizeLinear" or d.key not in unplaced or not d.outputs:
            continue
        path, cur = [], d
        while True:
            nxt = consumers.get(cur.outputs[0], []) if cur.outputs else []
            if len(nxt) != 1:
                break
            cur = nxt[0]
            if cur.op_type == "QuantizeLinear":
                break
            if cur.op_type not in _PASS_THROUGH:
                break
            path.append(cur)
        if cur.op_type != "QuantizeLinear" or cur.key not in unplaced:
            continue
        dq_params, q_params = d.inputs[1:3], cur.inputs[1:3]
        if len(dq_params) != len(q_params) or not all(
            same(x, y) for x, y in zip(dq_params, q_params, strict=True)
        ):
            continue
        via = " → ".join(p.key for p in path) or "nothing"
        reason = (
            f"Q/DQ pair cancelled: {d.key} → {via} → {cur.key} requantizes with the same scale and zero "
            "point, which TensorRT removes"
        )
        out[d.key] = out[cur.key] = reason
    return out


def _fusion_kind(keys: tuple[str, ...], nodes: dict[str, _Node]) -> str:
    """Vertical when one node consumes another's output; horizontal when nodes share an input independently."""
    if not keys:
        return "none"
    if len(keys) == 1:
        return "single"
    produced = {o: k for k in keys for o in nodes[k].outputs}
    linked = {k for k in keys for i in nodes[k].inputs if i in produced and produced[i] != k}
    linked |= {produced[i] for k in keys for i in nodes[k].inputs if i in produced and produced[i] != k}
    vertical = bool(linked)
    sources = Counter(i for k in keys for i in set(nodes[k].inputs) if i and i not in produced)
    roots = [k for k in keys if not any(i in produced for i in nodes[k].inputs)]
    horizontal = any(c >= 2 for c in sources.values()) and len(roots) >= 2
    if vertical and horizontal:
        return "vertical+horizontal"
    return "vertical" if vertical else ("horizontal" if horizontal else "grouped")


# ---------------------------------------------------------------------------------------------- build diff
@dataclass(frozen=True)
class NodeChange:
    node: str
    layers_a: tuple[str, ...]
    layers_b: tuple[str, ...]
    precision_a: str
    precision_b: str
    fused_with_a: tuple[str, ...]
    fused_with_b: tuple[str, ...]
    fusion_changed: bool
    precision_changed: bool
    presence: str = "both"  # "both", "only_a", "only_b"


@dataclass(frozen=True)
class BuildDiff:
    changes: tuple[NodeChange, ...]
    layers_a: int
    layers_b: int
    precision_mix_a: dict[str, int]
    precision_mix_b: dict[str, int]
    layer_types_a: dict[str, int]
    layer_types_b: dict[str, int]

    @property
    def changed(self) -> tuple[NodeChange, ...]:
        return tuple(
            c for c in self.changes if c.fusion_changed or c.precision_changed or c.presence != "both"
        )

    def summary(self) -> str:
        ch = self.changed
        nf = sum(c.fusion_changed for c in ch)
        npr = sum(c.precision_changed for c in ch)
        only = sum(c.presence != "both" for c in ch)
        return (
            f"{self.layers_a} → {self.layers_b} engine layers. Of {len(self.changes)} ONNX node names, {nf} changed "
            f"fusion group, {npr} changed precision, {only} are in only one build's layers."
        )

    def to_rows(self, changed_only: bool = False) -> list[dict[str, Any]]:
        """One row per ONNX node name (only the changed ones with ``changed_only``)."""
        return [
            {
                "node": c.node,
                "presence": c.presence,
                "precision_a": c.precision_a,
                "precision_b": c.precision_b,
                "precision_changed": c.precision_changed,
                "fusion_changed": c.fusion_changed,
                "fused_with_a": "; ".join(c.fused_with_a),
                "fused_with_b": "; ".join(c.fused_with_b),
                "layers_a": "; ".join(c.layers_a),
                "layers_b": "; ".join(c.layers_b),
            }
            for c in (self.changed if changed_only else self.changes)
        ]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["summary"] = self.summary()
        return data


def _node_view(layers: EngineLayers, profile: int) -> dict[str, tuple[list[str], set[str], list[str]]]:
    """ONNX node → (layer names, nodes it shares layers with, precisions)."""
    view: dict[str, tuple[list[str], set[str], list[str]]] = {}
    for ly in layers.for_profile(profile) or layers.layers:
        for n in ly.onnx_nodes:
            lys, mates, precs = view.setdefault(n, ([], set(), []))
            lys.append(ly.name)
            mates.update(m for m in ly.onnx_nodes if m != n)
            if ly.precision not in precs:
                precs.append(ly.precision)
    return view


def _prec(precs: Iterable[str]) -> str:
    p = sorted(set(precs))
    return p[0] if len(p) == 1 else ("/".join(p) if p else "")


def diff_builds(a: EngineLayers, b: EngineLayers, profile: int = 0) -> BuildDiff:
    """Per ONNX node (by name): did its fusion group (the nodes it shares layers with) or its precision change?

    Layer names are compiler-generated and differ between builds, so fusion is compared by the ONNX nodes that
    share a layer, not by layer names. Nodes present in only one build (Q/DQ or Cast nodes a conversion added)
    are listed with ``presence`` ``only_a`` / ``only_b``.
    """
    va, vb = _node_view(a, profile), _node_view(b, profile)
    changes = []
    for n in list(dict.fromkeys([*va, *vb])):
        la, ma, pa = va.get(n, ([], set(), []))
        lb, mb, pb = vb.get(n, ([], set(), []))
        presence = "both" if n in va and n in vb else ("only_a" if n in va else "only_b")
        common = set(va) & set(vb)
        fusion_changed = presence == "both" and (ma & common) != (mb & common)
        prec_a, prec_b = _prec(pa), _prec(pb)
        changes.append(
            NodeChange(
                n,
                tuple(la),
                tuple(lb),
                prec_a,
                prec_b,
                tuple(sorted(ma)),
                tuple(sorted(mb)),
                fusion_changed,
                presence == "both" and prec_a != prec_b,
                presence,
            )
        )
    ea, eb = a.for_profile(profile) or a.layers, b.for_profile(profile) or b.layers
    return BuildDiff(
        tuple(changes),
        len(ea),
        len(eb),
        dict(Counter(mix_key(ly) for ly in ea)),
        dict(Counter(mix_key(ly) for ly in eb)),
        dict(Counter(ly.type for ly in ea)),
        dict(Counter(ly.type for ly in eb)),
    )


# ---------------------------------------------------------------------------------------------- engine graph
_ELEM = {
    "FP32": 1,
    "UINT8": 2,
    "INT8": 3,
    "INT32": 6,
    "INT64": 7,
    "BOOL": 9,
    "FP16": 10,
    "BF16": 16,
    "FP8": 17,
    "INT4": 22,
    "FP4": 23,
}


# Netron cuts a node title longer than this to "first 10…last 10" ("kgen: Conv…lization+Relu").
NETRON_TITLE_MAX = 21
_SHORT_OPS = {"BatchNormalization": "BN", "QuantizeLinear": "Q", "DequantizeLinear": "DQ",
              "LayerNormalization": "LN", "Convolution": "Conv", "ConvTranspose": "ConvT"}


def _netron_title(layer_type: str, fused: str) -> str:
    """The engine-graph node title: the layer type and its fused ONNX ops, short enough that Netron shows it
    whole (``runtime_fusion: Conv+BN+Relu``), else the number of op types (``kgen: 7 ops``), else the type."""
    ops = fused.split("+")
    for title in (
        f"{layer_type}: {fused}",
        f"{layer_type}: {'+'.join(_SHORT_OPS.get(o, o) for o in ops)}",
        f"{layer_type}: {len(ops)} ops",
    ):
        if len(title) <= NETRON_TITLE_MAX:
            return title
    return layer_type


def engine_as_onnx(
    layers: EngineLayers,
    path: str | Path,
    profile: int = 0,
    name: str = "engine",
    report: FusionReport | None = None,
) -> Path:
    """Write the engine as an ONNX-like graph for Netron: one node per engine layer, tensors as edges.

    Each node's ``op_type`` is the layer type (in the custom domain ``trt.engine``); with a ``report`` of the same
    profile it also names the ONNX op types fused into the layer (``runtime_fusion: Conv+BatchNormalization+Relu``),
    so fusion shows at a glance. Attributes hold the layer's ONNX nodes, precision, tactic and constants. The file
    passes ``onnx.checker`` and is small (no weights), so Netron opens it even for thousands of layers.
    """
    import onnx
    from onnx import TensorProto, helper

    engine = layers.for_profile(profile) or layers.layers
    fused_ops = {g.layer: "+".join(dict.fromkeys(g.op_types)) for g in report.groups} if report else {}
    produced: dict[str, int] = {}
    consumed: set[str] = set()
    out_nodes, value_info = [], {}
    used_node_names: set[str] = set()

    def vi(t: Any, name: str) -> None:
        if name in value_info:
            return
        shape = [d if d >= 0 else None for d in t.shape] if t.shape else None
        value_info[name] = helper.make_tensor_value_info(
            name, _ELEM.get(t.dtype, TensorProto.UNDEFINED), shape
        )

    renamed: dict[str, str] = {}
    for ly in engine:
        ins = []
        for t in ly.inputs:
            nm = renamed.get(t.name, t.name) or "?"
            ins.append(nm)
            consumed.add(nm)
            vi(t, nm)
        outs = []
        for t in ly.outputs:
            nm = t.name or f"{ly.name}:out"
            if nm in produced:  # SSA: a tensor written twice gets a new name from here on
                nm = f"{nm}#{ly.index}"
                renamed[t.name] = nm
            produced[nm] = ly.index
            outs.append(nm)
            vi(t, nm)
        if not ins and not outs:  # ONNX needs an edge: a shape program gets a virtual output
            outs.append(f"{ly.name or ly.index}:virtual")
        node_name = ly.name or f"layer_{ly.index}"
        if node_name in used_node_names:
            node_name = f"{node_name}#{ly.index}"
        used_node_names.add(node_name)
        attrs: dict[str, Any] = {
            "precision": ly.precision_label,
            "tactic": ly.tactic or "-",
            "onnx_nodes": list(ly.onnx_nodes) or ["-"],
            "layer_index": ly.index,
        }
        if ly.constants:
            attrs["constants"] = [t.describe() for t in ly.constants]
        op_type = re.sub(r"[^A-Za-z0-9_]", "_", ly.type) or "Layer"
        if fused_ops.get(ly.name):
            attrs["fused_ops"] = fused_ops[ly.name]  # in full in Netron's side panel
            op_type = _netron_title(op_type, fused_ops[ly.name])
        out_nodes.append(helper.make_node(op_type, ins, outs, name=node_name, domain="trt.engine", **attrs))

    io_in = [t.name for t in layers.io_tensors if t.mode == "Input"]
    io_out = [t.name for t in layers.io_tensors if t.mode == "Output"]
    graph_in = [n for n in dict.fromkeys(io_in + sorted(consumed - set(produced))) if n in consumed]
    graph_out = [n for n in dict.fromkeys(io_out) if n in produced] or [
        n for n in produced if n not in consumed
    ]
    io_types = {t.name: t for t in layers.io_tensors}
    inputs = []
    for n in graph_in:
        if n in value_info:
            inputs.append(value_info.pop(n))
        else:
            inputs.append(
                helper.make_tensor_value_info(
                    n, _ELEM.get(io_types[n].dtype, 0) if n in io_types else 0, None
                )
            )
    outputs = [value_info.pop(n) for n in graph_out if n in value_info]
    graph = helper.make_graph(out_nodes, name, inputs, outputs, value_info=list(value_info.values()))
    model = helper.make_model(
        graph,
        producer_name="trt-workbench engine graph",
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("trt.engine", 1)],
    )
    model.doc_string = (
        f"TensorRT engine layers ({layers.source}, profile {profile}) drawn as a graph: one node "
        "per engine layer; attribute onnx_nodes lists the ONNX nodes fused into it."
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


# ---------------------------------------------------------------------------------------------- job folders
def job_network_model(job_dir: Path) -> Path:
    """The ONNX model a build job's engine was parsed from (FP16/Q-DQ conversion, or the input model)."""
    job_dir = Path(job_dir)
    try:
        result = json.loads((job_dir / "result.json").read_text())
    except (OSError, ValueError):
        result = {}
    if result.get("network_model") and (job_dir / result["network_model"]).is_file():
        return job_dir / result["network_model"]
    try:
        job = json.loads((job_dir / "job.json").read_text())
        model = Path(job["payload"]["model_path"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise WorkbenchError(
            f"The job folder {job_dir.name} does not say which model it built.",
            "Pick the folder of a build job made by the workbench.",
        ) from err
    if not model.is_file():
        raise WorkbenchError(
            f"The model of job {job_dir.name} ({model.name}) is no longer in the workspace.",
            "Import the model again, or report the engine's layers alone (--json).",
        )
    return model


ENGINE_GRAPH = "engine_graph.onnx"


def job_stamp(job_dir: Path) -> float:
    """Changes whenever a job's layer information does (a cache key for reports of that job)."""
    files = [Path(job_dir) / n for n in ("layers.json", "job.log", "result.json")]
    return max((f.stat().st_mtime for f in files if f.is_file()), default=0.0)


def job_engine_graph(
    job_dir: Path, layers: EngineLayers, report: FusionReport | None = None, name: str = "engine"
) -> Path:
    """The engine-as-ONNX graph of a job (``engine_graph.onnx`` beside the plan), written on first use."""
    profile = report.profile if report else 0
    path = Path(job_dir) / (ENGINE_GRAPH if profile == 0 else f"engine_graph_p{profile}.onnx")
    if not path.is_file() or path.stat().st_mtime < job_stamp(job_dir):
        engine_as_onnx(layers, path, profile=profile, name=name, report=report)
    return path


def job_report(job_dir: Path, profile: int = 0) -> tuple[EngineLayers, FusionReport]:
    """The layers (``layers.json``, else the build log) and the fusion report of a finished build job."""
    from .layers import load_layers

    layers = load_layers(Path(job_dir))
    return layers, account_fusion(job_network_model(Path(job_dir)), layers, profile=profile)
