"""Open, validate, summarize and store ONNX models.

A model is read with ``load_external_data=False``: weights in external files are never loaded, only their
declared locations and sizes are checked, so a model with gigabytes of external data summarizes quickly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import stat
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from . import confined_open
from .archives import ArchiveLimits, extract_archive, is_archive
from .errors import ModelError
from .workspace import Workspace

log = logging.getLogger(__name__)

MAX_DIM = 2**31 - 1
DEFAULT_MAX_UPLOAD_BYTES = 1 << 30  # matches .streamlit/config.toml server.maxUploadSize (MB)
UNPACK_FACTOR = 4  # an uploaded archive may unpack to this many times the upload limit (and 8 GiB at most)
_CHUNK = 1 << 20
_NAME_OK = re.compile(r"[^A-Za-z0-9._+-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Files the workbench itself keeps next to a stored model (service.py: summary cache, parser-check cache).
_RESERVED = re.compile(r"meta\.json|summary\.json|parse-.*\.json")


# ---------------------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class TensorDesc:
    name: str
    dtype: str
    shape: tuple[int | str | None, ...] | None  # str: symbolic dim, None: unknown dim; shape None: unknown rank

    @property
    def dynamic_dims(self) -> tuple[int, ...]:
        if self.shape is None:
            return ()
        return tuple(i for i, d in enumerate(self.shape) if not isinstance(d, int))

    @property
    def is_dynamic(self) -> bool:
        return self.shape is None or bool(self.dynamic_dims)

    def shape_text(self) -> str:
        if self.shape is None:
            return "unknown rank"
        return "[" + ", ".join("?" if d is None else str(d) for d in self.shape) + "]"


QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


@dataclass(frozen=True)
class Quantization:
    """An explicitly quantized (Q/DQ) model: what its QuantizeLinear / DequantizeLinear nodes say.

    ``pairs``: QuantizeLinear nodes whose output feeds a DequantizeLinear (quantized activations);
    ``weights``: DequantizeLinear nodes reading a stored tensor (quantized weights); ``types``: the quantized
    types, as TensorRT names them (INT8, UINT8, FP8, INT4, ...)."""

    quantize_nodes: int
    dequantize_nodes: int
    pairs: int
    weights: int
    types: tuple[str, ...]

    @property
    def precisions(self) -> tuple[str, ...]:
        """The build precisions these Q/DQ nodes are (``int8`` for INT8/UINT8, ``fp8`` for FP8)."""
        out = []
        if any(t in ("INT8", "UINT8") for t in self.types):
            out.append("int8")
        if "FP8" in self.types:
            out.append("fp8")
        return tuple(out)

    def describe(self) -> str:
        parts = [f"{self.pairs} Quantize/Dequantize pair{'s' if self.pairs != 1 else ''}"]
        if self.weights:
            parts.append(f"{self.weights} quantized weight{'s' if self.weights != 1 else ''}")
        return f"explicitly quantized (Q/DQ: {', '.join(parts)}, {'/'.join(self.types) or 'type unknown'})"


@dataclass(frozen=True)
class ModelSummary:
    file: str
    file_bytes: int
    ir_version: int
    opsets: dict[str, int]
    producer: str
    graph_name: str
    inputs: tuple[TensorDesc, ...]
    outputs: tuple[TensorDesc, ...]
    node_count: int
    subgraph_node_count: int
    op_histogram: dict[str, int]
    parameter_count: int
    initializer_bytes: int
    external_data_bytes: int
    external_files: tuple[str, ...]
    custom_domains: tuple[str, ...]
    warnings: tuple[str, ...] = field(default_factory=tuple)
    quantization: Quantization | None = None  # Q/DQ nodes found: the model is explicitly quantized

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSummary:
        def td(d: dict[str, Any]) -> TensorDesc:
            return TensorDesc(d["name"], d["dtype"], None if d["shape"] is None else tuple(d["shape"]))

        data = dict(data)
        data["inputs"] = tuple(td(t) for t in data["inputs"])
        data["outputs"] = tuple(td(t) for t in data["outputs"])
        for key in ("external_files", "custom_domains", "warnings"):
            data[key] = tuple(data[key])
        q = data["quantization"]  # KeyError for a summary an older version kept: summarized again then
        data["quantization"] = None if q is None else Quantization(**{**q, "types": tuple(q["types"])})
        return cls(**data)


@dataclass(frozen=True)
class ModelRef:
    """A model stored in the workspace, identified by content digest."""

    digest: str
    path: Path
    name: str

    @property
    def short(self) -> str:
        return self.digest[:12]


# ---------------------------------------------------------------------------------------------- reading


def safe_filename(name: str, default: str = "model.onnx") -> str:
    """A file name safe to use on disk and in URLs: no separators, no control characters."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = "".join(c for c in base if c.isprintable())
    base = _NAME_OK.sub("_", base).strip("._") or default
    if len(base) > 120:  # shorten the stem, keep the suffix (.onnx, .tar.gz, ...)
        suffix = "".join(Path(base).suffixes[-2:])[-20:]
        base = base[: 120 - len(suffix)].rstrip("._") + suffix
    return base


def load_proto(path: Path) -> Any:
    """Parse ``path`` as an ONNX ModelProto without loading external data; ModelError when it is not one."""
    import onnx
    from google.protobuf.message import DecodeError

    path = Path(path)
    where = path.name
    try:
        st = path.stat()
    except OSError as err:
        raise ModelError(f"Cannot read '{where}': {err.strerror}.", "Check the path.") from err
    if not stat.S_ISREG(st.st_mode):
        raise ModelError(f"'{where}' is not a regular file.", "Pass an .onnx file.")
    if st.st_size == 0:
        raise ModelError(f"'{where}' is empty (0 bytes).", "The upload or copy did not complete; try again.")
    _refuse_over_2_gib(where, st.st_size)
    with open(path, "rb") as fh:
        head = fh.read(64)
    if head.lstrip()[:1] in (b"{", b"<", b"#") or _looks_like_text(head):
        raise ModelError(
            f"'{where}' is not an ONNX model: it looks like a text file.",
            "Export the model to ONNX (e.g. torch.onnx.export) and upload the .onnx file.",
        )
    try:
        model = onnx.load(str(path), load_external_data=False)
    except DecodeError as err:
        raise ModelError(
            f"'{where}' is not a valid ONNX model: the protobuf could not be decoded ({err}). "
            "The file may be truncated, nested too deeply, or not ONNX at all.",
            "Re-export or re-upload the model.",
        ) from err
    except Exception as err:  # onnx raises a variety of errors for garbage input
        raise ModelError(f"'{where}' could not be read as ONNX: {err}.", "Re-export the model.") from err
    if not model.HasField("graph") or (len(model.graph.node) == 0 and len(model.graph.output) == 0):
        raise ModelError(
            f"'{where}' holds no ONNX graph (no nodes, no outputs). It is probably not an ONNX model, or truncated.",
            "Re-export the model.",
        )
    return model


def _refuse_over_2_gib(where: str, size: int) -> None:
    if size >= 2**31:
        raise ModelError(
            f"'{where}' is {size / 2**30:.1f} GiB in one file; ONNX (protobuf) files cannot exceed 2 GiB.",
            "Save the model with external data (onnx.save(..., save_as_external_data=True)) and upload the folder "
            "as an archive.",
        )


def _looks_like_text(head: bytes) -> bool:
    if not head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(c.isprintable() or c in "\r\n\t" for c in text) and len(text.strip()) > 0


def _tensor_desc(vi: Any, negative: list[tuple[str, int, int]] | None = None) -> TensorDesc:
    """The tensor's name, dtype and shape. A negative ``dim_value`` (older Paddle2ONNX and Caffe2-era exports
    write -1 for "dynamic"; ONNX Runtime and TensorRT read it so) becomes an unknown dim, and is recorded in
    ``negative`` as (tensor, dim, value) for the summary's warning."""
    from onnx import helper

    tt = vi.type.tensor_type if vi.type.HasField("tensor_type") else None
    if tt is None:
        kind = vi.type.WhichOneof("value")
        return TensorDesc(vi.name, str(kind or "unknown"), None)
    try:
        dtype = helper.tensor_dtype_to_np_dtype(tt.elem_type).name
    except Exception:
        dtype = f"onnx-type-{tt.elem_type}"
    if not tt.HasField("shape"):
        return TensorDesc(vi.name, dtype, None)
    dims: list[int | str | None] = []
    for i, d in enumerate(tt.shape.dim):
        if d.HasField("dim_value"):
            if d.dim_value > MAX_DIM:
                raise ModelError(
                    f"Tensor '{vi.name}' declares dimension {i} = {d.dim_value}, outside 0..{MAX_DIM}.",
                    "Fix the model's declared shape (or make that dimension symbolic).",
                )
            if d.dim_value < 0:
                if negative is not None:
                    negative.append((vi.name, i, int(d.dim_value)))
                dims.append(None)
                continue
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            dims.append(d.dim_param)
        else:
            dims.append(None)
    return TensorDesc(vi.name, dtype, tuple(dims))


def _iter_graphs(graph: Any) -> Iterable[Any]:
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _iter_graphs(attr.g)
            for g in attr.graphs:
                yield from _iter_graphs(g)


def _itemsize(data_type: int) -> float:
    from onnx import TensorProto, helper

    if data_type in (TensorProto.INT4, TensorProto.UINT4, getattr(TensorProto, "FLOAT4E2M1", -1)):
        return 0.5
    try:
        return float(helper.tensor_dtype_to_np_dtype(data_type).itemsize)
    except Exception:
        return 0.0


def check_external_data(model: Any, model_path: Path) -> tuple[int, tuple[str, ...]]:
    """Validate every external-data reference; return (declared bytes, files). Never reads the weights."""
    from onnx import TensorProto

    base = model_path.parent.resolve()
    total = 0
    files: set[str] = set()
    for graph in _iter_graphs(model.graph):
        tensors = list(graph.initializer)
        tensors += [a.t for n in graph.node for a in n.attribute if a.HasField("t")]
        for t in tensors:
            if t.data_location != TensorProto.EXTERNAL:
                continue
            info = {e.key: e.value for e in t.external_data}
            location = info.get("location", "")
            if not location:
                raise ModelError(f"Initializer '{t.name}' is marked external but names no file.", "Re-export it.")
            if os.path.isabs(location) or ".." in Path(location).parts or "\x00" in location:
                raise ModelError(
                    f"Initializer '{t.name}' points its external data at '{location}', outside the model's folder.",
                    "External data files must sit next to the .onnx file (relative names only).",
                )
            if _RESERVED.fullmatch(Path(location).as_posix()):
                raise ModelError(
                    f"Initializer '{t.name}' keeps its external data in '{location}', a name the workbench uses "
                    "for its own files next to a stored model.",
                    "Save the external data under another name (onnx.save(..., location='weights.bin')).",
                )
            target = (base / location).resolve()
            if not target.is_relative_to(base):
                raise ModelError(
                    f"Initializer '{t.name}': external data '{location}' resolves outside the model's folder.",
                    "Remove links; keep external data files next to the .onnx file.",
                )
            try:
                st = os.stat(target)
            except OSError as err:
                raise ModelError(
                    f"Initializer '{t.name}': external data file '{location}' is missing.",
                    "Upload the model together with its external data files as one archive (.zip or .tar.gz).",
                ) from err
            if not stat.S_ISREG(st.st_mode):
                raise ModelError(
                    f"Initializer '{t.name}': external data '{location}' is not a regular file (device or folder).",
                    "Point external data at a regular file.",
                )
            expected = int(_itemsize(t.data_type) * _numel(t.dims, t.name))
            offset = _external_int(t.name, info, "offset", 0)
            length = _external_int(t.name, info, "length", expected) or expected
            if offset + length > st.st_size:
                raise ModelError(
                    f"Initializer '{t.name}': external data '{location}' is shorter than declared "
                    f"(needs bytes {offset}..{offset + length}, file has {st.st_size}).",
                    "The external data file is truncated or does not belong to this model; re-export it.",
                )
            total += length
            files.add(location)
    return total, tuple(sorted(files))


def _external_int(tensor: str, info: dict[str, str], key: str, default: int) -> int:
    """An external-data ``offset``/``length`` entry: a non-negative decimal integer, or ``default`` when absent."""
    text = info.get(key, "")
    if text == "":
        return default
    if not re.fullmatch(r"[0-9]{1,19}", text.strip()):
        raise ModelError(
            f"Initializer '{tensor}': external data {key} '{_printable(text[:40])}' is not a byte count.",
            "The model's external-data references are corrupt; re-export it.",
        )
    return int(text)


def _printable(text: str) -> str:
    """``text`` with control characters shown as escapes (for messages)."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _check_names(model: Any) -> None:
    """Refuse names with control characters: TensorRT cuts names at NUL and lists engine layers line by line,
    so such a name would silently break the engine's I/O names and the layer report."""
    for gi, graph in enumerate(_iter_graphs(model.graph)):
        where = "" if gi == 0 else f" (in subgraph '{_printable(graph.name)}')"
        named: list[tuple[str, str]] = [("Graph input", v.name) for v in graph.input]
        named += [("Graph output", v.name) for v in graph.output]
        named += [("Initializer", t.name) for t in graph.initializer]
        named += [("Tensor", v.name) for v in graph.value_info]
        for i, node in enumerate(graph.node):
            named.append((f"Node #{i} ({node.op_type})", node.name))
            named += [(f"Input of node #{i} ({node.op_type})", x) for x in node.input]
            named += [(f"Output of node #{i} ({node.op_type})", x) for x in node.output]
        for what, name in named:
            if _CONTROL.search(name):
                raise ModelError(
                    f"{what} '{_printable(name)}'{where} has control characters in its name (shown escaped). "
                    "TensorRT cuts names at NUL and lists engine layers one per line, so the engine and its "
                    "layer report would not match the model.",
                    "Rename it (e.g. with onnx-graphsurgeon, or by setting the name in the ONNX graph) and open the "
                    "model again.",
                )


def _numel(dims: Iterable[int], name: str) -> int:
    n = 1
    for d in dims:
        if d < 0 or d > MAX_DIM:
            raise ModelError(f"Initializer '{name}' has dimension {d}, outside 0..{MAX_DIM}.", "Fix the model.")
        n *= int(d)
    return n


def summarize(path: str | os.PathLike[str]) -> ModelSummary:
    """Read and validate a model, and describe it. Raises ModelError with a specific message."""
    from onnx import TensorProto

    path = Path(path)
    model = load_proto(path)
    _check_names(model)
    ext_bytes, ext_files = check_external_data(model, path)
    graph = model.graph

    init_names = {t.name for t in graph.initializer}
    negative_in: list[tuple[str, int, int]] = []
    negative_out: list[tuple[str, int, int]] = []
    inputs = tuple(_tensor_desc(vi, negative_in) for vi in graph.input if vi.name not in init_names)
    outputs = tuple(_tensor_desc(vi, negative_out) for vi in graph.output)

    params = 0
    init_bytes = 0
    for t in _weight_tensors(graph):
        n = _numel(t.dims, t.name)
        params += n
        init_bytes += int(_itemsize(t.data_type) * n) if t.data_location == TensorProto.EXTERNAL or not t.raw_data else len(t.raw_data)
    for g in _iter_graphs(graph):  # Constant nodes holding lists of numbers (value_floats, value_ints)
        for node in g.node:
            if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
                for a in node.attribute:
                    if a.name in ("value_floats", "value_ints"):
                        n = len(a.floats) or len(a.ints)
                        params += n
                        init_bytes += n * (4 if a.name == "value_floats" else 8)
                    elif a.name in ("value_float", "value_int"):
                        params += 1
                        init_bytes += 4 if a.name == "value_float" else 8
    hist = Counter(n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}::{n.op_type}" for n in graph.node)
    sub_nodes = sum(len(g.node) for g in _iter_graphs(graph)) - len(graph.node)
    opsets = {(o.domain or "ai.onnx"): int(o.version) for o in model.opset_import}
    custom = tuple(sorted({n.domain for g in _iter_graphs(graph) for n in g.node} - {"", "ai.onnx"}))

    warnings: list[str] = []
    for kind, found in (("Input", negative_in), ("Output", negative_out)):
        by_tensor: dict[str, list[tuple[int, int]]] = {}
        for name, i, v in found:
            by_tensor.setdefault(name, []).append((i, v))
        for name, found_dims in by_tensor.items():
            listed = ", ".join(f"dimension {i} = {v}" for i, v in found_dims)
            warnings.append(
                f"{kind} '{name}' declares {listed}: older exporters (Paddle2ONNX, Caffe2) write a negative size "
                "for a dynamic dimension. It is treated as dynamic, as ONNX Runtime and TensorRT read it."
            )
    for t in inputs:
        if t.shape is None:
            warnings.append(f"Input '{t.name}' has no declared shape; every build needs explicit shapes for it.")
        elif t.dynamic_dims:
            dims = ", ".join(f"dim {i} ({t.shape[i] or '?'})" for i in t.dynamic_dims)
            warnings.append(f"Input '{t.name}' is dynamic in {dims}: a build needs an optimization profile for it.")
    for sym, shared in shared_dim_names(inputs).items():
        if len({n for n, _ in shared}) > 1:
            continue  # batch / sequence shared by several inputs: the usual meaning, checked when profiles are
        warnings.append(f"{describe_dims(shared)} share the symbolic name '{sym}': TensorRT treats dimensions of one "
                        "name as one size, so an optimization profile must give them equal min/opt/max values.")
    for d in custom:
        ops = sorted(k.split("::", 1)[1] for k in hist if k.startswith(d + "::"))
        warnings.append(
            f"Ops from custom domain '{d}' ({', '.join(ops) or 'in subgraphs'}): TensorRT needs a plugin for them."
        )
    if opsets.get("ai.onnx", 0) and opsets["ai.onnx"] < 9:
        warnings.append(f"Opset {opsets['ai.onnx']} is old; TensorRT's parser supports opset 9 and later.")
    for name in [n.name for n in graph.node] + [t.name for t in inputs + outputs]:
        if any(not c.isprintable() for c in name):
            warnings.append(f"Name {name!r} contains invisible characters; it is shown escaped.")
            break

    quantization = _quantization(model)
    if quantization is not None and "INT32" in quantization.types:
        warnings.append(
            "The model dequantizes INT32 tensors (quantized biases: ONNX Runtime's default). TensorRT's parser "
            "accepts only 8-bit and narrower inputs for DequantizeLinear, so the build will fail on them: quantize "
            "the FP32 model again without quantizing biases (extra_options QuantizeBias=False, as the Quantize page "
            "does).",
        )
    return ModelSummary(
        file=path.name,
        file_bytes=path.stat().st_size,
        ir_version=int(model.ir_version),
        opsets=opsets,
        producer=" ".join(x for x in (model.producer_name, model.producer_version) if x),
        graph_name=graph.name,
        inputs=inputs,
        outputs=outputs,
        node_count=len(graph.node),
        subgraph_node_count=sub_nodes,
        op_histogram=dict(hist.most_common()),
        parameter_count=params,
        initializer_bytes=init_bytes,
        external_data_bytes=ext_bytes,
        external_files=ext_files,
        custom_domains=custom,
        warnings=tuple(warnings),
        quantization=quantization,
    )


def shared_dim_names(inputs: Iterable[TensorDesc]) -> dict[str, list[tuple[str, int]]]:
    """Symbolic dimension names that more than one input dimension carries: name -> [(input, dim index)].

    TensorRT's ONNX parser names network input dimensions after them and assumes dimensions of one name are
    equal at run time: a profile whose min/opt/max differ between them fails the build (checked 2026-12-03,
    TensorRT-RTX 1.7: "Dimensions with name ? must be equal")."""
    found: dict[str, list[tuple[str, int]]] = {}
    for t in inputs:
        for i, d in enumerate(t.shape or ()):
            if isinstance(d, str) and d:
                found.setdefault(d, []).append((t.name, i))
    return {name: dims for name, dims in found.items() if len(dims) > 1}


def describe_dims(dims: Sequence[tuple[str, int]]) -> str:
    """``[('x', 2), ('x', 3)]`` as "Input 'x' dims 2 and 3"; across inputs "Dim 1 of 'ids' and dim 1 of 'mask'"."""
    names = list(dict.fromkeys(n for n, _ in dims))
    if len(names) == 1:
        idx = [str(i) for _, i in dims]
        return f"Input '{names[0]}' dims {', '.join(idx[:-1])} and {idx[-1]}"
    parts = [f"dim {i} of '{n}'" for n, i in dims]
    text = ", ".join(parts[:-1]) + f" and {parts[-1]}"
    return text[0].upper() + text[1:]


def _weight_tensors(graph: Any) -> Iterable[Any]:
    """The stored tensors of the model: initializers and ``Constant`` nodes' tensors (some exporters keep every
    weight in Constant nodes), in the main graph and in subgraph bodies (If / Loop / Scan)."""
    for g in _iter_graphs(graph):
        yield from g.initializer
        for node in g.node:
            if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
                yield from (a.t for a in node.attribute if a.name == "value" and a.HasField("t"))


_QUANT_TYPES = {"INT8": "INT8", "UINT8": "UINT8", "INT4": "INT4", "UINT4": "UINT4", "INT16": "INT16",
                "UINT16": "UINT16", "FLOAT8E4M3FN": "FP8", "FLOAT8E4M3FNUZ": "FP8", "FLOAT8E5M2": "FP8",
                "FLOAT8E5M2FNUZ": "FP8", "FLOAT4E2M1": "FP4"}


def _quantization(model: Any) -> Quantization | None:
    """The model's standard-domain QuantizeLinear / DequantizeLinear nodes (subgraphs included), or None."""
    from onnx import TensorProto

    def type_name(elem: int) -> str:
        name = TensorProto.DataType.Name(elem) if elem in TensorProto.DataType.values() else str(elem)
        return _QUANT_TYPES.get(name, name)

    n_q = n_dq = pairs = weights = 0
    types: set[str] = set()
    for g in _iter_graphs(model.graph):
        stored = {t.name: t.data_type for t in g.initializer}
        for node in g.node:
            if node.op_type == "Constant":
                for a in node.attribute:
                    if a.name == "value" and a.HasField("t"):
                        stored.update({o: a.t.data_type for o in node.output})
        dq_inputs = {n.input[0] for n in g.node
                     if n.op_type == "DequantizeLinear" and n.domain in ("", "ai.onnx") and n.input}
        for node in g.node:
            if node.op_type not in QDQ_OPS or node.domain not in ("", "ai.onnx"):
                continue
            if node.op_type == "QuantizeLinear":
                n_q += 1
                pairs += any(o in dq_inputs for o in node.output)
                attrs = {a.name: a.i for a in node.attribute}
                if attrs.get("output_dtype"):
                    types.add(type_name(attrs["output_dtype"]))
                elif len(node.input) > 2 and node.input[2] in stored:
                    types.add(type_name(stored[node.input[2]]))
                else:
                    types.add("UINT8")  # ONNX's default without a zero point
            else:
                n_dq += 1
                if node.input and node.input[0] in stored:
                    weights += 1
                    types.add(type_name(stored[node.input[0]]))
                elif len(node.input) > 2 and node.input[2] in stored:
                    types.add(type_name(stored[node.input[2]]))
    if not (n_q or n_dq):
        return None
    return Quantization(n_q, n_dq, pairs, weights, tuple(sorted(types)))


# ---------------------------------------------------------------------------------------------- workspace


def _hash_folder(model_file: Path) -> str:
    """Content digest of a model folder: the model's bytes plus each external-data file by relative path.

    The model file's own name is left out, so the same model uploaded under two names is one model.
    """
    folder = model_file.parent
    h = hashlib.sha256()
    others = sorted(p for p in folder.rglob("*") if p.is_file() and p != model_file and p.name not in ("meta.json", SUMMARY_FILE))
    for label, f in [("\x00model", model_file)] + [(p.relative_to(folder).as_posix(), p) for p in others]:
        h.update(label.encode() + b"\x00")
        with open(f, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                h.update(chunk)
    return h.hexdigest()


def _model_hasher() -> Any:
    """A digest being computed as :func:`_hash_folder` does for a model file with no external data."""
    h = hashlib.sha256()
    h.update(b"\x00model\x00")
    return h


def _write_stream(src: IO[bytes] | bytes, dest: Path, limit: int, label: str, hasher: Any = None) -> int:
    """Copy an upload to ``dest`` (refusing it past ``limit``), feeding ``hasher`` what it writes."""
    written = 0
    with open(dest, "wb") as out:
        if isinstance(src, bytes | bytearray | memoryview):
            if len(src) > limit:
                raise ModelError(f"'{label}' is {len(src) / 2**20:.0f} MiB, over the {limit / 2**20:.0f} MiB upload limit.")
            out.write(src)
            if hasher is not None:
                hasher.update(src)
            return len(src)
        while chunk := src.read(_CHUNK):
            written += len(chunk)
            if written > limit:
                raise ModelError(f"'{label}' is over the {limit / 2**20:.0f} MiB upload limit.")
            out.write(chunk)
            if hasher is not None:
                hasher.update(chunk)
    return written


def _stored(ws: Workspace, digest: str) -> ModelRef | None:
    """The model already stored under ``digest``, or None (not there, or not complete)."""
    try:
        ref = get_model(ws, digest)
    except ModelError:
        return None
    return ref if ref.path.is_file() else None


def _storage_error(filename: str, err: OSError) -> ModelError:
    """An operating-system error while storing an upload, as a user-facing error (the server's paths left out)."""
    from .archives import is_disk_full

    what = err.strerror or type(err).__name__
    if is_disk_full(err):
        return ModelError(
            f"Not enough disk space to store '{filename}' in the workspace ({what}); nothing was kept.",
            "Free disk space in the workspace (WORKBENCH_HOME), then open the model again.",
        )
    where = f" ('{Path(os.fsdecode(err.filename)).name}')" if err.filename else ""
    return ModelError(
        f"Could not store '{filename}' in the workspace: {what}{where}; nothing was kept.",
        "Check that the workspace (WORKBENCH_HOME) is writable and the model's files readable.",
    )


def _find_model_file(folder: Path, label: str) -> Path:
    found = sorted(p for p in folder.rglob("*.onnx") if p.is_file())
    if not found:
        raise ModelError(f"'{label}' holds no .onnx file.", "Put the .onnx file and its external data in the archive.")
    if len(found) > 1:
        names = ", ".join(str(p.relative_to(folder)) for p in found[:5])
        raise ModelError(f"'{label}' holds several .onnx files ({names}).", "Upload one model per archive.")
    return found[0]


def import_model(
    ws: Workspace, source: IO[bytes] | bytes | Path, filename: str, *, max_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    below: Path | None = None,
) -> ModelRef:
    """Validate an upload (an .onnx file, or an archive with a model and its external data) and store it.

    Stored under ``models/<digest>/``; the same content uploaded again (even concurrently) yields the same
    ref. An .onnx file (upload or path) is hashed while it is read, and when a model without external data of
    that digest is already stored its ref is returned at once: a re-upload is one hash, never a parse. Nothing
    is left behind when validation fails; a full disk is a ModelError saying so.

    A ``Path`` is opened once and copied from that descriptor (external data too), never through a link below
    its folder, or below ``below`` (a data root the caller checked it against): a file swapped for a link
    meanwhile is refused, never read.
    """
    display = safe_filename(filename)
    staging = ws.tmp_dir / f"upload-{uuid.uuid4().hex}"
    try:
        if isinstance(source, bytes | bytearray | memoryview) and not is_archive(display):
            hasher = _model_hasher()
            hasher.update(source)
            if (known := _stored(ws, hasher.hexdigest())) is not None:
                return known
        staging.mkdir(parents=True)
        return _import(ws, source, filename, display, staging, max_bytes, below)
    except OSError as err:
        raise _storage_error(filename, err) from err
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _import(
    ws: Workspace, source: IO[bytes] | bytes | Path, filename: str, display: str, staging: Path, max_bytes: int,
    below: Path | None = None,
) -> ModelRef:
    # Archives keep the user's (safe) file name, so archive errors name the file the user gave.
    raw = staging / (display if is_archive(display) else "upload.onnx")
    if isinstance(source, Path):
        anchor, parts, name = _path_parts(source, below)
        with _opened(anchor, parts, name, filename) as (dfd, fd, st):
            if st.st_size > max_bytes:
                raise ModelError(f"'{filename}' is over the {max_bytes / 2**20:.0f} MiB limit.")
            if is_archive(name):
                confined_open.copy_from(fd, st, raw)
            else:
                _refuse_over_2_gib(filename, st.st_size)  # unread
                if (known := _stored(ws, _hash_fd(fd))) is not None:
                    return known  # the same bytes, stored before, referencing no external data
                # A model given by path may come with external data next to it: copy what it references.
                staged, summary = _stage_opened_model(dfd, fd, st, name, staging / "model")
                return _store_folder(ws, staged, display, summary)
    else:
        hasher = None if is_archive(display) else _model_hasher()
        _write_stream(source, raw, max_bytes, filename, hasher)
        if hasher is not None and (known := _stored(ws, hasher.hexdigest())) is not None:
            return known
    if is_archive(display):
        unpacked = staging / "unpacked"
        ceiling = min(ArchiveLimits.max_total_bytes, max_bytes * UNPACK_FACTOR)
        extract_archive(raw, unpacked, ArchiveLimits(max_total_bytes=ceiling))
        model_file = _find_model_file(unpacked, filename)
        # Validates (external data included); then only the model and the files it references are kept:
        # anything else in the archive (look-alikes of the workbench's own files included) is dropped.
        with _opened(model_file.parent, (), model_file.name, model_file.name) as (dfd, fd, st):
            staged, summary = _stage_opened_model(dfd, fd, st, model_file.name, staging / "model")
        return _store_folder(ws, staged, staged.name, summary)
    if raw.stat().st_size == 0:
        raise ModelError(f"'{filename}' is empty (0 bytes).", "The upload did not complete; try again.")
    folder = staging / "model"
    folder.mkdir()
    target = folder / (display if display.endswith(".onnx") else display + ".onnx")
    os.replace(raw, target)
    try:
        summary = summarize(target)
    except ModelError as err:
        err.message = err.message.replace(f"'{target.name}'", f"'{filename}'")
        raise
    return _store_folder(ws, target, display, summary)


def _path_parts(source: Path, below: Path | None) -> tuple[Path, tuple[str, ...], str]:
    """(trusted folder, folders below it, file name) to open ``source`` by: below the data root ``below`` (the
    caller resolved and checked ``source`` against it) no link is followed; a path the user gave on the command
    line is their own, resolved, and only links below its folder are refused."""
    if below is None:
        real = source.resolve()
        return real.parent, (), real.name
    rel = source.relative_to(below)
    return below, rel.parts[:-1], rel.parts[-1]


_SWAPPED_HINT = "Open it again once nobody is changing the folder; links are never followed below the data folders."


@contextlib.contextmanager
def _opened(anchor: Path, parts: tuple[str, ...], name: str, label: str) -> Iterator[tuple[int, int, os.stat_result]]:
    """(folder fd, file fd, fstat) of ``anchor/parts.../name``, opened once without following links below
    ``anchor``; ModelError naming ``label`` when it is missing, not a regular file, or was swapped meanwhile."""
    with contextlib.ExitStack() as stack:
        try:
            dfd = stack.enter_context(confined_open.folder(anchor, parts))
            fd, st = confined_open.open_regular(dfd, name)
        except FileNotFoundError as err:
            raise ModelError(f"Cannot read '{label}': it does not exist.", "Check the path.") from err
        except confined_open.NotRegular as err:
            raise ModelError(f"'{label}' is not a regular file ({err.kind}).", "Pass an .onnx file.") from err
        except confined_open.Swapped as err:
            raise ModelError(f"'{label}' changed while it was being opened (a folder or the file was replaced "
                             "or a symbolic link put in its place); nothing was stored.", _SWAPPED_HINT) from err
        except OSError as err:
            raise ModelError(f"Cannot read '{label}': {err.strerror}.", "Check the path.") from err
        stack.callback(os.close, fd)
        yield dfd, fd, st


def _hash_fd(fd: int) -> str:
    """The digest the file open as ``fd`` would be stored under if it referenced no external data."""
    h = _model_hasher()
    with open(fd, "rb", closefd=False) as fh:
        fh.seek(0)
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return str(h.hexdigest())


def _hash_model_file(path: Path) -> str:
    """The digest ``path`` would be stored under if it referenced no external data."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return _hash_fd(fd)
    finally:
        os.close(fd)


LINK_AT_LEAST = 16 << 20  # external-data files this big are hard-linked into the workspace when they can be


def _stage_opened_model(dfd: int, fd: int, st: os.stat_result, name: str, folder: Path) -> tuple[Path, ModelSummary]:
    """Copy the model open as ``fd`` (in the folder ``dfd``) and the external-data files it references (nothing
    else) into the new ``folder``, then validate the copies: what is checked is what is stored.

    Every file is opened once, below ``dfd``, without following a link, and copied from that descriptor. Files
    of ``LINK_AT_LEAST`` bytes or more are hard-linked instead when they sit on the workspace's file system and
    the link is checked to be the very file opened (gigabytes of weights then cost nothing to store)."""
    folder.mkdir()
    target = folder / safe_filename(name)
    try:
        confined_open.copy_from(fd, st, target)
        for tensor, location in _external_refs(load_proto(target)):
            _stage_external(dfd, tensor, location, folder)
        summary = summarize(target)
    except confined_open.Swapped as err:
        raise ModelError(f"'{name}' or its external data changed while it was being stored; nothing was stored.",
                         _SWAPPED_HINT) from err
    except ModelError as err:
        err.message = err.message.replace(f"'{target.name}'", f"'{name}'")
        raise
    return target, dataclasses.replace(summary, file=target.name)


def _external_refs(model: Any) -> list[tuple[str, str]]:
    """(tensor, location) of every external-data reference that names a plain file below the model's folder
    (the others are refused by :func:`check_external_data`, naming the tensor)."""
    from onnx import TensorProto

    refs = []
    for graph in _iter_graphs(model.graph):
        tensors = list(graph.initializer) + [a.t for n in graph.node for a in n.attribute if a.HasField("t")]
        for t in tensors:
            if t.data_location != TensorProto.EXTERNAL:
                continue
            location = {e.key: e.value for e in t.external_data}.get("location", "")
            rel = Path(location).as_posix() if location and "\x00" not in location else ""
            if rel and not os.path.isabs(rel) and ".." not in rel.split("/") and not _RESERVED.fullmatch(rel):
                refs.append((t.name, rel))
    return refs


def _stage_external(dfd: int, tensor: str, rel: str, folder: Path) -> None:
    dst = folder / rel
    if dst.exists():
        return  # several tensors in one file
    try:
        fd, st = confined_open.open_regular(dfd, rel)
    except FileNotFoundError:
        return  # check_external_data says it is missing, naming the tensor
    except confined_open.NotRegular as err:
        raise ModelError(
            f"Initializer '{tensor}': external data '{rel}' is not a regular file ({err.kind}).",
            "Keep external data as regular files next to the .onnx file; links are not followed.",
        ) from err
    except OSError as err:
        raise ModelError(f"Initializer '{tensor}': cannot read external data '{rel}': {err.strerror}.") from err
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        confined_open.link_or_copy(dfd, rel, fd, st, dst, LINK_AT_LEAST)
    finally:
        os.close(fd)


SUMMARY_FILE = "summary.json"  # the summary computed while validating the upload: opening never re-parses


def stored_summary(model_path: Path, keep: bool = True) -> ModelSummary:
    """The summary kept beside a stored model (computed once, when it was validated), else summarize (and keep it
    beside the model when ``keep``).

    Reading the stored one imports no ``onnx`` (about a second and a half of import time): build workers use it."""
    cache = model_path.parent / SUMMARY_FILE
    if cache.is_file():
        try:
            return ModelSummary.from_dict(json.loads(cache.read_text()))
        except (ValueError, TypeError, KeyError):
            pass  # written by another version, or damaged: summarize again
    summary = summarize(model_path)
    if not keep:
        return summary
    with contextlib.suppress(OSError):  # a read-only folder still gets its summary
        tmp = cache.with_name(f".{cache.name}.{os.getpid()}.part")
        tmp.write_text(json.dumps(summary.to_dict()))
        os.replace(tmp, cache)
    return summary


def _store_folder(ws: Workspace, model_file: Path, display: str, summary: ModelSummary | None = None) -> ModelRef:
    folder = model_file.parent
    digest = _hash_folder(model_file)
    final = ws.models_dir / digest
    meta = {"digest": digest, "file": model_file.name, "name": display, "imported": time.time()}
    if not final.exists():
        (folder / "meta.json").write_text(json.dumps(meta))
        if summary is not None:
            (folder / SUMMARY_FILE).write_text(json.dumps(summary.to_dict()))
        try:
            os.replace(folder, final)
        except OSError:
            if not final.exists():  # a concurrent import of the same content won the race otherwise
                raise
    stored = json.loads((final / "meta.json").read_text())
    return ModelRef(digest=digest, path=final / stored["file"], name=stored.get("name", display))


def get_model(ws: Workspace, digest: str) -> ModelRef:
    if not re.fullmatch(r"[0-9a-f]{64}", digest or ""):
        raise ModelError(f"'{digest}' is not a model id.", "Open the model from the Model page.")
    folder = ws.models_dir / digest
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError) as err:
        raise ModelError(f"Model {digest[:12]} is not in this workspace.", "Upload it again.") from err
    return ModelRef(digest=digest, path=folder / meta["file"], name=meta.get("name", meta["file"]))


def list_models(ws: Workspace) -> list[ModelRef]:
    """Stored models, most recently stored first; a folder removed (or half-removed) meanwhile is left out."""
    dated = []
    for meta_file in ws.models_dir.glob("*/meta.json"):
        try:
            ref = get_model(ws, meta_file.parent.name)
            dated.append((ref.path.stat().st_mtime, ref))
        except (ModelError, OSError):
            continue
    return [ref for _, ref in sorted(dated, key=lambda d: -d[0])]


def node_names(path: Path) -> list[str]:
    """Names of the main graph's nodes (unnamed nodes get ``<op>#<index>``), in graph order."""
    model = load_proto(Path(path))
    return [n.name or f"{n.op_type}#{i}" for i, n in enumerate(model.graph.node)]
