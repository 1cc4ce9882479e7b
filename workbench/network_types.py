"""Make a half-precision ONNX network consistently typed, and say where it is not.

A strongly typed TensorRT build (TensorRT-RTX, TensorRT >= 11) takes every tensor's type from the network: an FP16
tensor meeting an FP32 one in an ``Add`` is a parser error, not an implicit conversion. The FP16 converters leave
such meetings behind (a shape-derived ``Cast(to=FLOAT)`` scalar, a node kept in FP32, a subgraph body), so after
converting, :func:`repair_types` walks every graph (``If``/``Loop``/``Scan`` bodies with their outer scope) with the
element types it can derive from the operator schemas and inserts a ``Cast`` wherever the inputs bound to one type
variable disagree: to the half type, or to FP32 for a node that must stay FP32. :func:`type_clashes` runs the same
walk without changing anything and names each node whose inputs still disagree (node, op, inputs and their types).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from onnx import AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto, defs, helper

FLOAT, FLOAT16, BFLOAT16 = TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16
_FLOATS = {FLOAT, FLOAT16, BFLOAT16}
TYPE_NAMES: dict[int, str] = {FLOAT: "float32", FLOAT16: "float16", BFLOAT16: "bfloat16", TensorProto.DOUBLE: "float64"}


@dataclass(frozen=True)
class TypeClash:
    """A node whose inputs that must share one type have different float types."""

    node: str
    op: str
    graph: str  # "" for the main graph, else the subgraph's path ("if_node/then_branch")
    inputs: tuple[tuple[str, str], ...]  # (tensor name, type name)

    def describe(self) -> str:
        where = f" in subgraph {self.graph}" if self.graph else ""
        ins = ", ".join(f"'{n}' ({t})" for n, t in self.inputs)
        return f"node '{self.node}' (op {self.op}){where} has inputs of different float types: {ins}"


def type_name(elem: int) -> str:
    return TYPE_NAMES.get(elem, TensorProto.DataType.Name(elem).lower() if elem else "unknown")


def repair_types(model: ModelProto, target: int, keep_nodes: Iterable[str] = (),
                 keep_ops: Iterable[str] = ()) -> list[str]:
    """Insert Casts so every node's same-typed inputs agree (``target`` for converted nodes, FP32 for nodes kept in
    FP32: names in ``keep_nodes``, op types in ``keep_ops``), subgraph outputs match their declarations, and kept
    nodes get FP32 inputs. Returns one line per Cast inserted (for the log)."""
    walker = _Walker(model, target, keep_nodes, keep_ops, fix=True)
    walker.graph(model.graph, {}, "")
    return walker.fixes


def type_clashes(model: ModelProto, target: int = FLOAT16) -> list[TypeClash]:
    """Every node whose inputs bound to one type variable still have different float types (nothing changed)."""
    walker = _Walker(model, target, (), (), fix=False)
    walker.graph(model.graph, {}, "")
    return walker.clashes


def input_types(model: ModelProto, node_name: str) -> list[tuple[str, str]]:
    """The element types of ``node_name``'s inputs (any graph), as the type walk derives them: for a message about
    a node the parser rejects ("inputs 'a' (float16), 'b' (float32)"). Empty when there is no such node."""
    walker = _Walker(model, FLOAT16, (), (), fix=False)
    walker.watch = node_name
    walker.graph(model.graph, {}, "")
    return walker.watched


def toposort(graph: GraphProto, outer: Iterable[str] = ()) -> None:
    """Order ``graph``'s nodes (and its subgraphs') so each comes after the producers of everything it reads,
    including the outer-scope names its subgraphs read (ONNX requires it; the converters append their Casts at the
    end). Nodes left in a cycle or with a missing input keep their relative order at the end (the checker names them).
    """
    available = set(outer) | {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    for node in graph.node:
        for sub in _subgraphs(node):
            toposort(sub, available | _produced(graph))
    pending = list(graph.node)
    needs = {id(n): set(n.input) | _implicit_inputs(n) for n in pending}
    ordered: list[NodeProto] = []
    progress = True
    while pending and progress:
        progress = False
        rest = []
        for node in pending:
            if needs[id(node)] <= available:
                ordered.append(node)
                available.update(node.output)
                progress = True
            else:
                rest.append(node)
        pending = rest
    ordered += pending
    copies = [NodeProto() for _ in ordered]
    for c, n in zip(copies, ordered, strict=True):
        c.CopyFrom(n)
    del graph.node[:]
    graph.node.extend(copies)


def relocate_misplaced(model: ModelProto) -> int:
    """Move main-graph nodes that read a tensor only a subgraph produces into that subgraph.

    ONNX Runtime's FP16 converter appends the Casts around a kept-FP32 node to the *main* graph even when the node
    sits in an ``If``/``Loop`` body; there they read a name no main-graph node produces. Returns how many moved."""
    produced_in: dict[str, GraphProto] = {}
    for node in model.graph.node:
        for sub in _subgraphs(node):
            _map_producers(sub, produced_in)
    main_names = _produced(model.graph) | {i.name for i in model.graph.input} \
        | {i.name for i in model.graph.initializer}
    moved = 0
    changed = True
    while changed:
        changed = False
        keep = []
        for node in model.graph.node:
            home = next((produced_in[i] for i in node.input if i and i not in main_names and i in produced_in), None)
            if home is None:
                keep.append(node)
                continue
            home.node.add().CopyFrom(node)
            for out in node.output:
                produced_in[out] = home
            main_names.difference_update(node.output)
            moved += 1
            changed = True
        if changed:
            copies = []
            for n in keep:
                c = NodeProto()
                c.CopyFrom(n)
                copies.append(c)
            del model.graph.node[:]
            model.graph.node.extend(copies)
    return moved


def drop_float_round_trips(graph: GraphProto, types: dict[str, int] | None = None) -> int:
    """Rewire ``Cast(to=FLOAT)`` of ``Cast(to=half)`` of an FP32 tensor to read the FP32 tensor itself (a node kept in
    FP32 right after a converted graph input gets the input, not its rounded copy). Unused Casts are left for the
    builder to drop. Returns how many were rewired. ``graph``'s subgraphs too."""
    types = dict(types or {})
    for v in [*graph.input, *graph.value_info]:
        if v.type.HasField("tensor_type"):
            types[v.name] = v.type.tensor_type.elem_type
    for init in graph.initializer:
        types[init.name] = init.data_type
    casts = {n.output[0]: n for n in graph.node if n.op_type == "Cast" and n.output}
    count = 0
    for node in graph.node:
        if node.op_type == "Cast":
            to = next((a.i for a in node.attribute if a.name == "to"), 0)
            if to == FLOAT:
                inner = casts.get(node.input[0])
                inner_to = next((a.i for a in inner.attribute if a.name == "to"), 0) if inner is not None else 0
                src_type = types.get(inner.input[0], 0) if inner is not None else 0
                if inner is not None and inner_to in (FLOAT16, BFLOAT16) and src_type == FLOAT:
                    node.input[0] = inner.input[0]
                    count += 1
            types[node.output[0]] = to
        for sub in _subgraphs(node):
            count += drop_float_round_trips(sub, types)
    if count:  # the inner Casts nobody reads any more go (a node in no engine layer would count as unaccounted)
        read = {o.name for o in graph.output} | {i for n in graph.node for i in [*n.input, *_implicit_inputs(n)]}
        dead = [n for n in graph.node if n.op_type == "Cast" and not any(o in read for o in n.output)]
        for n in dead:
            graph.node.remove(n)
    return count


def all_nodes(graph: GraphProto) -> Iterator[NodeProto]:
    """Every node of ``graph`` and of its subgraphs (``If``/``Loop``/``Scan`` bodies), outer before inner."""
    for node in graph.node:
        yield node
        for sub in _subgraphs(node):
            yield from all_nodes(sub)


# ------------------------------------------------------------------------------------------------ internals


def _subgraphs(node: NodeProto) -> Iterator[GraphProto]:
    for attr in node.attribute:
        if attr.type == AttributeProto.GRAPH:
            yield attr.g
        elif attr.type == AttributeProto.GRAPHS:
            yield from attr.graphs


def _produced(graph: GraphProto) -> set[str]:
    return {o for n in graph.node for o in n.output if o}


def _map_producers(graph: GraphProto, out: dict[str, GraphProto]) -> None:
    for node in graph.node:
        for o in node.output:
            out[o] = graph
        for sub in _subgraphs(node):
            _map_producers(sub, out)


def _implicit_inputs(node: NodeProto) -> set[str]:
    """Outer-scope names the node's subgraphs read (recursively)."""
    names: set[str] = set()
    for sub in _subgraphs(node):
        local = {i.name for i in sub.input} | {i.name for i in sub.initializer} | _produced(sub)
        for n in sub.node:
            names.update(i for i in [*n.input, *_implicit_inputs(n)] if i and i not in local)
        names.update(o.name for o in sub.output if o.name not in local)
    return names


class _Walker:
    def __init__(self, model: ModelProto, target: int, keep_nodes: Iterable[str], keep_ops: Iterable[str],
                 fix: bool) -> None:
        self.target = target
        self.keep_nodes, self.keep_ops = set(keep_nodes), set(keep_ops)
        self.fix = fix
        self.opsets = {o.domain or "": o.version for o in model.opset_import}
        self.fixes: list[str] = []
        self.clashes: list[TypeClash] = []
        self.watch = ""
        self.watched: list[tuple[str, str]] = []
        self._n = 0

    # -------------------------------------------------------------------------------------- one graph
    def graph(self, graph: GraphProto, scope: dict[str, int], path: str,
              input_types: dict[str, int] | None = None) -> dict[str, int]:
        types = dict(scope)
        declared = {v.name: v.type.tensor_type.elem_type for v in [*graph.value_info]
                    if v.type.HasField("tensor_type") and v.type.tensor_type.elem_type}
        for i in graph.input:
            types[i.name] = (input_types or {}).get(i.name) or i.type.tensor_type.elem_type
        for init in graph.initializer:
            types[init.name] = init.data_type
        new_nodes: list[NodeProto] = []
        for node in graph.node:
            before = self._node(node, types, declared, path)
            new_nodes.extend(before)
            new_nodes.append(node)
        tail = self._outputs(graph, types, path)
        if self.fix and (len(new_nodes) != len(graph.node) or tail):
            copies = []
            for n in [*new_nodes, *tail]:
                c = NodeProto()
                c.CopyFrom(n)
                copies.append(c)
            del graph.node[:]
            graph.node.extend(copies)
        return types

    def _outputs(self, graph: GraphProto, types: dict[str, int], path: str) -> list[NodeProto]:
        """A subgraph's outputs must have their declared float type (If branches must agree with each other)."""
        if not path:
            return []
        tail = []
        for out in graph.output:
            want, have = out.type.tensor_type.elem_type, types.get(out.name, 0)
            if want in _FLOATS and have in _FLOATS and want != have:
                if not self.fix:
                    self.clashes.append(TypeClash(f"output '{out.name}'", "subgraph output", path,
                                                  ((out.name, type_name(have)),)))
                    continue
                # subgraph outputs bind by position: the output becomes the Cast's result, under a new name
                old, new = out.name, self._cast_name(out.name)
                tail.append(helper.make_node("Cast", [old], [new], to=want, name=f"{new}_node"))
                out.name = new
                self.fixes.append(f"{path}: output '{old}' {type_name(have)} → {type_name(want)}")
                types[new] = want
        return tail

    # -------------------------------------------------------------------------------------- one node
    def _node(self, node: NodeProto, types: dict[str, int], declared: dict[str, int], path: str
              ) -> list[NodeProto]:
        casts: list[NodeProto] = []
        if self.watch and node.name == self.watch:
            self.watched = [(i, type_name(types.get(i, 0))) for i in node.input if i]
        keep = node.op_type in self.keep_ops or bool(node.name) and node.name in self.keep_nodes
        if node.op_type in ("If", "Loop", "Scan") and (node.domain or "") in ("", "ai.onnx"):
            self._control_flow(node, types, path)
            return casts
        schema = self._schema(node)
        if schema is None:
            for o in node.output:
                if o in declared:
                    types[o] = declared[o]
            return casts
        groups: dict[str, list[int]] = {}
        fixed: dict[int, int] = {}
        n_formal = len(schema.inputs)
        for k, name in enumerate(node.input):
            if not name:
                continue
            formal = schema.inputs[min(k, n_formal - 1)] if n_formal else None
            if formal is None:
                continue
            ts = formal.type_str
            if ts.startswith("tensor(") and ts.endswith(")"):
                fixed_type = _TYPE_BY_NAME.get(ts[7:-1])
                if fixed_type is not None:
                    fixed[k] = fixed_type
            else:
                groups.setdefault(ts, []).append(k)
        var_type: dict[str, int] = {}
        for ts, idx in groups.items():
            floats = {types.get(node.input[k], 0) for k in idx} & _FLOATS
            want = FLOAT if keep and floats - {FLOAT} else self.target if len(floats) > 1 else None
            if want is not None:
                for k in idx:
                    have = types.get(node.input[k], 0)
                    if have in _FLOATS and have != want:
                        casts += self._cast_input(node, k, have, want, types, path)
            if len(floats) > 1 and not self.fix:
                self.clashes.append(TypeClash(node.name or f"({node.op_type} → {node.output[0]})", node.op_type,
                                              path, tuple((node.input[k], type_name(types.get(node.input[k], 0)))
                                                          for k in idx)))
            settled = {types.get(node.input[k], 0) for k in idx} - {0}
            if len(settled) == 1:
                var_type[ts] = settled.pop()
        for k, elem in fixed.items():
            have = types.get(node.input[k], 0)
            if elem in _FLOATS and have in _FLOATS and have != elem:
                if self.fix:
                    casts += self._cast_input(node, k, have, elem, types, path)
                else:
                    self.clashes.append(TypeClash(node.name or node.op_type, node.op_type, path,
                                                  ((node.input[k], f"{type_name(have)}, needs {type_name(elem)}"),)))
        self._output_types(node, schema, var_type, types, declared)
        return casts

    def _control_flow(self, node: NodeProto, types: dict[str, int], path: str) -> None:
        here = f"{path}/{node.name or node.op_type}" if path else (node.name or node.op_type)
        attrs = {a.name: a for a in node.attribute}
        if node.op_type == "If":
            outs: list[int] = []
            for branch in ("then_branch", "else_branch"):
                if branch in attrs:
                    self.graph(attrs[branch].g, types, f"{here}/{branch}")
                    outs = outs or [o.type.tensor_type.elem_type for o in attrs[branch].g.output]
            for name, elem in zip(node.output, outs, strict=False):
                types[name] = elem
            return
        body = attrs["body"].g if "body" in attrs else None
        if body is None:
            return
        if node.op_type == "Loop":
            # body inputs: iteration, condition, carried...; carried start from the Loop's inputs 2..
            carried = list(node.input[2:])
            feed = {body.input[k + 2].name: types.get(v, 0) for k, v in enumerate(carried) if k + 2 < len(body.input)}
            self.graph(body, types, f"{here}/body", feed)
            outs = [o.type.tensor_type.elem_type for o in body.output[1:]]
        else:  # Scan: state inputs then scan inputs
            feed = {body.input[k].name: types.get(v, 0) for k, v in enumerate(node.input) if k < len(body.input)}
            self.graph(body, types, f"{here}/body", feed)
            outs = [o.type.tensor_type.elem_type for o in body.output]
        for name, elem in zip(node.output, outs, strict=False):
            types[name] = elem

    def _output_types(self, node: NodeProto, schema: Any, var_type: dict[str, int], types: dict[str, int],
                      declared: dict[str, int]) -> None:
        attrs = {a.name: a for a in node.attribute}
        n_formal = len(schema.outputs)
        for k, name in enumerate(node.output):
            if not name or not n_formal:
                continue
            ts = schema.outputs[min(k, n_formal - 1)].type_str
            elem = 0
            if node.op_type == "Cast" and "to" in attrs:
                elem = attrs["to"].i
            elif node.op_type == "Constant":
                for a in node.attribute:
                    if a.type == AttributeProto.TENSOR:
                        elem = a.t.data_type
                    elif a.name in ("value_float", "value_floats"):
                        elem = FLOAT
                    elif a.name in ("value_int", "value_ints"):
                        elem = TensorProto.INT64
            elif node.op_type == "ConstantOfShape":
                elem = attrs["value"].t.data_type if "value" in attrs else FLOAT
            elif ts in var_type:
                elem = var_type[ts]
            elif ts.startswith("tensor(") and ts[7:-1] in _TYPE_BY_NAME:
                elem = _TYPE_BY_NAME[ts[7:-1]]
            elif "dtype" in attrs:
                elem = attrs["dtype"].i
            elif "to" in attrs and attrs["to"].type == AttributeProto.INT:
                elem = attrs["to"].i
            types[name] = elem or declared.get(name, 0)

    def _schema(self, node: NodeProto) -> Any:
        domain = node.domain or ""
        version = self.opsets.get(domain, self.opsets.get("ai.onnx", 0)) if domain in ("", "ai.onnx") \
            else self.opsets.get(domain, 1)
        try:
            return defs.get_schema(node.op_type, version, domain)
        except Exception:  # an op ONNX has no schema for (custom domain): its types come from value_info
            return None

    def _cast_name(self, base: str) -> str:
        self._n += 1
        return f"{base}_wbcast{self._n}"

    def _cast_input(self, node: NodeProto, k: int, have: int, want: int, types: dict[str, int],
                    path: str) -> list[NodeProto]:
        if not self.fix:
            return []
        src = node.input[k]
        new = self._cast_name(src)
        node.input[k] = new
        types[new] = want
        where = f"{path}: " if path else ""
        self.fixes.append(f"{where}node '{node.name or node.op_type}' ({node.op_type}) input '{src}' "
                          f"{type_name(have)} → {type_name(want)}")
        return [helper.make_node("Cast", [src], [new], to=want, name=f"{new}_node")]


_TYPE_BY_NAME: dict[str, int] = {
    "float": FLOAT, "float16": FLOAT16, "bfloat16": BFLOAT16, "double": TensorProto.DOUBLE,
    "int64": TensorProto.INT64, "int32": TensorProto.INT32, "int8": TensorProto.INT8, "uint8": TensorProto.UINT8,
    "bool": TensorProto.BOOL, "string": TensorProto.STRING, "int16": TensorProto.INT16,
}
