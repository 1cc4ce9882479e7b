"""The engine's layers as one table: parsed from the build log (any machine) or TensorRT's engine inspector (GPU).

Two sources, one model:

* :func:`parse_build_log` reads the layer listing TensorRT / TensorRT-RTX writes at the end of a build when the
  profiling verbosity is ``DETAILED`` and the log level is extra verbose (``[X] Layers:`` … ``I/O Tensors:`` …
  ``Engine Metadata:``), or the shorter ``Engine Layer Information:`` listing of ``LAYER_NAMES_ONLY`` builds.
  This is the only source on a machine that cannot deserialize the engine (TensorRT-RTX on CPU).
* :func:`parse_inspector_json` reads the engine inspector's JSON (``IEngineInspector.get_engine_information``
  with ``LayerInformationFormat.JSON``, the format TREx also reads); :func:`inspect_plan` produces it from a plan
  where the backend can deserialize it.

Either way the result is an :class:`EngineLayers` that round-trips through JSON (``layers.json`` in a job folder),
so reports render later without TensorRT installed. Parsing never raises on odd text: what it cannot read stays in
``raw``; only a log with no layer listing at all is an error.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import BackendError, BackendUnavailable, WorkbenchError

log = logging.getLogger(__name__)

SCHEMA = 2  # 2: layers carry output_precision beside the compute precision
# The columns of :meth:`EngineLayers.to_rows` a layer table shows first.
TABLE_COLUMNS = (
    "index",
    "name",
    "type",
    "precision",
    "weight_precision",
    "output_precision",
    "n_onnx_nodes",
    "onnx_nodes",
    "inputs",
    "outputs",
    "tactic",
)
BUILD_LOG = "build-log"
INSPECTOR = "inspector"

# Separator TensorRT puts between the ONNX parser's metadata entries of a fused layer.
_META_SEP = "\x1f"
_ONNX_META = re.compile(r"\[ONNX Layer: (.*?)\](?=\x1f|\s*$)", re.S)
# "[V] ", "[X] ", "[I] ", "[W] ", "[E] ", "[TRT] ", "[11/25/2026-09:08:00] " … at the start of a logged line.
_PREFIX = re.compile(r"^(?:\s*\[[^\]\n]{1,40}\])+\s?")
_PROFILE_MARK = re.compile(r" \[profile (\d+)\]")
_MYELIN_GRAPH = re.compile(r"_myl(\d+)_\d+$")

# Datatype words as TensorRT prints them (``Datatype: Half``, ``Row major linear FP32``, ``Int8 format``),
# most specific first.
_DTYPES: tuple[tuple[str, str], ...] = (
    (r"BFloat16|BF16|kBF16", "BF16"),
    (r"Float8|FP8|E4M3|kFP8", "FP8"),
    (r"FP4|E2M1|kFP4", "FP4"),
    (r"UInt8|kUINT8", "UINT8"),
    (r"Int8|INT8|kINT8", "INT8"),
    (r"Int4|INT4|kINT4", "INT4"),
    (r"Int32|INT32|kINT32", "INT32"),
    (r"Int64|INT64|kINT64", "INT64"),
    (r"Bool|BOOL|kBOOL", "BOOL"),
    (r"Half|FP16|kHALF|Float16", "FP16"),
    (r"TF32", "TF32"),
    (r"Float|FP32|kFLOAT|Float32", "FP32"),
)
_DTYPE_RES = tuple((re.compile(rf"(?<![A-Za-z0-9])(?:{pat})(?![A-Za-z0-9])"), name) for pat, name in _DTYPES)
# Precisions that describe arithmetic (not indices, shapes or masks).
COMPUTE_PRECISIONS = ("FP32", "TF32", "FP16", "BF16", "FP8", "FP4", "INT8", "INT4")
_LOW_WEIGHT = ("INT8", "INT4", "FP8", "FP4")
_FLOATS = ("FP32", "TF32", "FP16", "BF16")
# ``__myl_<Ops>_myl<g>_<i>``: a Myelin kernel, its name listing the fused operations (``FcAddCast``).
_MYELIN_KERNEL = re.compile(r"^__myl_([A-Za-z]+?)_myl\d+_\d+$")
# Myelin kernel operations that only convert or move data.
_CONVERSION_OPS = frozenset({"Cast", "Repl", "Conc", "Move", "Resh", "Tran", "Slic"})


def normalize_dtype(text: str) -> str:
    """``"Half"`` → ``"FP16"``, ``"Row major linear FP32"`` → ``"FP32"``, ``"Int8 format"`` → ``"INT8"``; else ``""``."""
    for rx, name in _DTYPE_RES:
        if rx.search(text or ""):
            return name
    return ""


# ---------------------------------------------------------------------------------------------- model
@dataclass(frozen=True)
class TensorInfo:
    """One tensor of a layer: ``dtype`` normalized (FP32, FP16, INT8, …); ``format`` as TensorRT printed it."""

    name: str
    shape: tuple[int, ...] = ()
    dtype: str = ""
    format: str = ""
    location: str = ""
    strides: tuple[int, ...] = ()

    def describe(self) -> str:
        dims = "×".join("?" if d < 0 else str(d) for d in self.shape)
        return f"{self.name} ({self.dtype or '?'}[{dims}])"


@dataclass(frozen=True)
class EngineLayer:
    """One engine layer. ``onnx_nodes`` come from the layer metadata TensorRT's ONNX parser attaches.

    ``precision`` is what the layer computes in (see :func:`layer_precision`); ``output_precision`` is the datatype
    it writes, which differs when a conversion was fused into it (an FP16 GEMM writing the FP32 engine output).
    """

    name: str
    type: str
    inputs: tuple[TensorInfo, ...] = ()
    outputs: tuple[TensorInfo, ...] = ()
    constants: tuple[TensorInfo, ...] = ()
    tactic: str = ""
    precision: str = "unknown"
    onnx_nodes: tuple[str, ...] = ()
    metadata_raw: str = ""
    index: int = 0
    profile: int = 0
    weight_precision: str = ""
    origin: str = ""
    extra: tuple[tuple[str, str], ...] = ()
    output_precision: str = ""

    def tensor_rows(self) -> list[dict[str, Any]]:
        """Inputs, outputs and constants of the layer, one row each."""
        return [
            {
                "role": role,
                "name": t.name,
                "shape": "×".join("?" if d < 0 else str(d) for d in t.shape),
                "dtype": t.dtype,
                "format": t.format,
            }
            for role, ts in (("input", self.inputs), ("output", self.outputs), ("constant", self.constants))
            for t in ts
        ]

    @property
    def is_conversion(self) -> bool:
        """Whether the layer only converts one float type into another (a Cast or reformat, no arithmetic of its
        own): no weights, one float type in, another out, and a Myelin kernel of casts/copies only
        (``__myl_ReshCast``, ``__myl_CastReplConc``) or a reformat/cast layer type."""
        ins, outs = _pick(self.inputs), _pick(self.outputs)
        if not (ins in _FLOATS and outs in _FLOATS and ins != outs):
            return False
        if any(_is_weight(t) for t in self.constants):
            return False
        ops = _myelin_ops(self.name)
        if ops:
            return set(ops) <= _CONVERSION_OPS
        return self.type.lower() in ("reformat", "cast", "copy") or self.name.startswith("Reformatting CopyNode")

    @property
    def precision_label(self) -> str:
        """``FP32``; ``FP32 · INT8 weights`` for weight-only quantized layers; ``FP16 · writes FP32`` for a layer
        with a fused output conversion."""
        if self.precision == "unknown" and not (self.inputs or self.outputs or self.constants):
            return NO_TENSORS_LABEL
        label = self.precision
        if self.weight_precision and self.weight_precision != self.precision:
            label = f"{label} · {self.weight_precision} weights"
        if self.output_precision and self.output_precision != self.precision and self.precision in _FLOATS:
            label = f"{label} · writes {self.output_precision}"
        return label


# How a layer the listing gives no tensors for is labelled (TensorRT-RTX's shape_call kernels compute shapes).
NO_TENSORS_LABEL = "no tensors listed (shape kernel)"


@dataclass(frozen=True)
class ProfileShape:
    min: tuple[int, ...] = ()
    opt: tuple[int, ...] = ()
    max: tuple[int, ...] = ()
    format: str = ""


@dataclass(frozen=True)
class IOTensor:
    """An engine input or output (``mode`` is ``Input``/``Output``) with its shapes per optimization profile."""

    name: str
    mode: str
    dtype: str = ""
    shape: tuple[int, ...] = ()
    location: str = ""
    profiles: tuple[ProfileShape, ...] = ()


@dataclass(frozen=True)
class EngineLayers:
    """All layers of an engine. ``source`` is ``"build-log"`` or ``"inspector"``; ``raw`` is the text it came from."""

    layers: tuple[EngineLayer, ...]
    io_tensors: tuple[IOTensor, ...] = ()
    source: str = BUILD_LOG
    raw: str = ""
    engine_metadata: tuple[tuple[str, str], ...] = ()
    detail: str = "detailed"  # or "layer_names_only": names, types and I/O only, no ONNX metadata
    warnings: tuple[str, ...] = field(default=())

    @property
    def num_profiles(self) -> int:
        return 1 + max((ly.profile for ly in self.layers), default=0)

    def for_profile(self, profile: int = 0) -> tuple[EngineLayer, ...]:
        """The layers of one optimization profile (TensorRT lists a copy of the network per profile)."""
        return tuple(ly for ly in self.layers if ly.profile == profile)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["schema"] = SCHEMA
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EngineLayers:
        return cls(
            layers=tuple(_layer_from_dict(d, i) for i, d in enumerate(data.get("layers") or ())),
            io_tensors=tuple(_io_from_dict(d) for d in data.get("io_tensors") or ()),
            source=str(data.get("source") or BUILD_LOG),
            raw=str(data.get("raw") or ""),
            engine_metadata=tuple((str(k), str(v)) for k, v in data.get("engine_metadata") or ()),
            detail=str(data.get("detail") or "detailed"),
            warnings=tuple(str(w) for w in data.get("warnings") or ()),
        )

    @classmethod
    def from_json(cls, text: str) -> EngineLayers:
        try:
            data = json.loads(text)
        except ValueError as err:
            raise WorkbenchError(
                f"The layer information is not valid JSON: {err}.",
                "Rebuild the engine, or pick the layers.json of a finished build.",
            ) from err
        if not isinstance(data, dict) or "layers" not in data:
            raise WorkbenchError(
                "The JSON file is not layer information written by the workbench (no 'layers').",
                "Pick a job's layers.json, or an engine inspector JSON file.",
            )
        return cls.from_dict(data)

    def search(self, query: str, profile: int | None = None) -> list[dict[str, Any]]:
        """Rows (:meth:`to_rows`) of one profile whose name, type, precision, ONNX nodes or tactic contain
        ``query`` (case-insensitive; empty matches all)."""
        q = query.strip().lower()
        keys = ("name", "type", "precision", "onnx_nodes", "tactic")
        return [
            r
            for r in self.to_rows()
            if (profile is None or r["profile"] == profile)
            and (not q or any(q in str(r[k]).lower() for k in keys))
        ]

    def to_rows(self) -> list[dict[str, Any]]:
        """One flat row per layer, for a DataFrame / CSV (lists joined with ``"; "``)."""
        rows = []
        for ly in self.layers:
            rows.append(
                {
                    "index": ly.index,
                    "profile": ly.profile,
                    "name": ly.name,
                    "type": ly.type,
                    "precision": ly.precision,
                    "weight_precision": ly.weight_precision,
                    "output_precision": ly.output_precision,
                    "onnx_nodes": "; ".join(ly.onnx_nodes),
                    "n_onnx_nodes": len(ly.onnx_nodes),
                    "inputs": "; ".join(t.describe() for t in ly.inputs),
                    "outputs": "; ".join(t.describe() for t in ly.outputs),
                    "n_constants": len(ly.constants),
                    "tactic": ly.tactic,
                    "origin": ly.origin,
                }
            )
        return rows


def _ints(value: Any) -> tuple[int, ...]:
    out = []
    for v in value or ():
        try:
            out.append(int(v))
        except (TypeError, ValueError):
            out.append(-1)
    return tuple(out)


def _tensor_from_dict(d: dict[str, Any]) -> TensorInfo:
    return TensorInfo(
        name=str(d.get("name", "")),
        shape=_ints(d.get("shape")),
        dtype=str(d.get("dtype", "")),
        format=str(d.get("format", "")),
        location=str(d.get("location", "")),
        strides=_ints(d.get("strides")),
    )


def _layer_from_dict(d: dict[str, Any], i: int) -> EngineLayer:
    name = str(d.get("name", ""))
    inputs = tuple(_tensor_from_dict(t) for t in d.get("inputs") or ())
    outputs = tuple(_tensor_from_dict(t) for t in d.get("outputs") or ())
    constants = tuple(_tensor_from_dict(t) for t in d.get("constants") or ())
    precision = str(d.get("precision") or "unknown")
    written = d.get("output_precision")
    if written is None and (inputs or outputs):
        # Written before compute and output precision were told apart: attribute it again from the tensors.
        precision = layer_precision(outputs, inputs, constants, name)[0]
        written = output_precision(outputs)
    return EngineLayer(
        name=name,
        type=str(d.get("type", "")),
        inputs=inputs,
        outputs=outputs,
        constants=constants,
        tactic=str(d.get("tactic", "")),
        precision=precision,
        output_precision=str(written or ""),
        onnx_nodes=tuple(str(n) for n in d.get("onnx_nodes") or ()),
        metadata_raw=str(d.get("metadata_raw", "")),
        index=int(d.get("index", i)),
        profile=int(d.get("profile", 0)),
        weight_precision=str(d.get("weight_precision", "")),
        origin=str(d.get("origin", "")),
        extra=tuple((str(k), str(v)) for k, v in d.get("extra") or ()),
    )


def _io_from_dict(d: dict[str, Any]) -> IOTensor:
    return IOTensor(
        name=str(d.get("name", "")),
        mode=str(d.get("mode", "")),
        dtype=str(d.get("dtype", "")),
        shape=_ints(d.get("shape")),
        location=str(d.get("location", "")),
        profiles=tuple(
            ProfileShape(
                _ints(p.get("min")), _ints(p.get("opt")), _ints(p.get("max")), str(p.get("format", ""))
            )
            for p in d.get("profiles") or ()
        ),
    )


# ---------------------------------------------------------------------------------------------- precision
def _pick(tensors: tuple[TensorInfo, ...]) -> str:
    """The one arithmetic datatype of ``tensors`` (``"mixed"`` when several); index/mask types only when alone."""
    kinds = {t.dtype for t in tensors if t.dtype}
    compute = {k for k in kinds if k in COMPUTE_PRECISIONS}
    use = compute or kinds
    if not use:
        return ""
    return use.pop() if len(use) == 1 else "mixed"


def _is_weight(t: TensorInfo) -> bool:
    """A constant that is a weight or per-channel parameter, not a scalar literal (Myelin keeps those FP32)."""
    n = 1
    for d in t.shape:
        n *= max(d, 1)
    return n > 1


def _myelin_ops(name: str) -> list[str]:
    m = _MYELIN_KERNEL.match(name)
    return re.findall(r"[A-Z][a-z]*", m.group(1)) if m else []


def output_precision(outputs: tuple[TensorInfo, ...]) -> str:
    """The datatype a layer writes (``"mixed"`` when its outputs differ, ``""`` without outputs)."""
    return _pick(outputs)


def layer_precision(
    outputs: tuple[TensorInfo, ...],
    inputs: tuple[TensorInfo, ...] = (),
    constants: tuple[TensorInfo, ...] = (),
    name: str = "",
) -> tuple[str, str]:
    """(precision, weight_precision) of a layer from its tensors: the precision it *computes* in.

    * A layer whose activation inputs are all one quantized type (INT8, FP8, INT4, FP4) computes in that type,
      whatever it writes out: an INT8 convolution with a fused dequantize outputs FP32 but runs in INT8.
    * A layer that reads one float type and writes another has a conversion (a Cast) fused into it. It computes in
      the type its weights share with one side: an FP16 GEMM whose FP32-output Cast was fused into it (inputs and
      weights Half, output Float) is FP16; an FP32 convolution that casts its result to FP16 (inputs and weights
      Float, output Half) is FP32. Without weights, a Myelin kernel whose name ends in ``Cast`` after other
      operations (``__myl_AddReluCast``) computed in its inputs' type; anything else is labelled by what it writes.
    * Otherwise the precision is what the layer produces: its outputs' datatype (``"mixed"`` when outputs
      differ); a layer without outputs falls back to its inputs; ``"unknown"`` when it has no tensors at all.
    * Index/shape datatypes (INT32, INT64, BOOL) count only when nothing else is there.

    The datatype a layer writes is :func:`output_precision` (``EngineLayer.output_precision``).
    ``weight_precision`` names low-precision constants (INT8/INT4/FP8/FP4 weights) feeding a layer that computes in
    a wider type: how TensorRT-RTX lists weight-only quantized GEMMs (``FP32 · INT8 weights``).
    """
    quantized_in = _pick(inputs)
    written = _pick(outputs)
    if quantized_in in _LOW_WEIGHT:
        precision = quantized_in
    elif quantized_in in _FLOATS and written in _FLOATS and quantized_in != written:
        weights = _pick(tuple(t for t in constants if _is_weight(t)))
        ops = _myelin_ops(name)
        if weights in (quantized_in, written):
            precision = weights
        elif not weights and len(ops) > 1 and ops[-1] == "Cast" and set(ops[:-1]) - _CONVERSION_OPS:
            precision = quantized_in
        else:
            precision = written
    else:
        precision = written or quantized_in or "unknown"
    low = {t.dtype for t in constants if t.dtype in _LOW_WEIGHT}
    weight_precision = ""
    if low and precision not in low:
        weight_precision = low.pop() if len(low) == 1 else "mixed"
    return precision, weight_precision


# ---------------------------------------------------------------------------------------------- text helpers
_SPLIT_EVENTS: dict[str, re.Pattern[str]] = {}


def _split_top(text: str, sep: str = ",") -> list[str]:
    """Split on ``sep`` outside brackets/braces; unbalanced text never raises.

    Walks only the bracket and separator characters (found by a regex), not every character: listings of large
    engines run to megabytes."""
    events = _SPLIT_EVENTS.get(sep)
    if events is None:
        events = _SPLIT_EVENTS[sep] = re.compile("[" + re.escape("[{()}]" + sep) + "]")
    parts: list[str] = []
    depth, start = 0, 0
    for m in events.finditer(text):
        ch = m.group()
        if ch in "[{(":
            depth += 1
        elif ch in "]})":
            if depth > 0:
                depth -= 1
        elif depth == 0:  # the separator, outside brackets
            parts.append(text[start : m.start()])
            start = m.end()
    parts.append(text[start:])
    return parts


_KEY = re.compile(r"(?:^|, )([A-Z][A-Za-z/]*): ")
_BRACKETS = re.compile(r"[\[\]{}]")


def _fields(text: str, keys: frozenset[str] | None = None) -> dict[str, str]:
    """``"Name: a, Dims: [1,2], Format: x"`` → dict, splitting only at keys outside brackets (and in ``keys``)."""
    candidates = [m for m in _KEY.finditer(text) if keys is None or m.group(1) in keys]
    marks = []
    brackets = _BRACKETS.finditer(text)
    depth, pending = 0, next(brackets, None)
    for m in candidates:  # the bracket depth at each key: bracket characters before it, in order
        while pending is not None and pending.start() < m.start():
            if pending.group() in "[{":
                depth += 1
            elif depth > 0:
                depth -= 1
            pending = next(brackets, None)
        if depth == 0:
            marks.append(m)
    out: dict[str, str] = {}
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        out.setdefault(m.group(1), text[m.end() : end])
    return out


def _dims(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"-?\d+", text or ""))


def _tensor_list(text: str) -> tuple[TensorInfo, ...]:
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    out = []
    for chunk in _split_top(text):
        chunk = chunk.strip()
        if not chunk:
            continue
        if chunk.startswith("{") and chunk.endswith("}"):
            chunk = chunk[1:-1].strip()
        f = _fields(chunk)
        fmt = (f.get("Format") or f.get("Format/Datatype") or "").strip()
        dtype = normalize_dtype(f.get("Datatype", "")) or normalize_dtype(f.get("Format/Datatype", ""))
        out.append(
            TensorInfo(
                name=f.get("Name", chunk).strip(),
                shape=_dims(f.get("Dimensions", "")),
                dtype=dtype,
                format=fmt,
                location=f.get("Location", "").strip(),
                strides=_dims(f.get("Strides", "")),
            )
        )
    return tuple(out)


def onnx_nodes_from_metadata(meta: str) -> tuple[str, ...]:
    """``"[ONNX Layer: a]\\x1f[ONNX Layer: b]"`` → ``("a", "b")`` (duplicates dropped, order kept)."""
    meta = (meta or "").strip()
    names = [m.group(1) for m in _ONNX_META.finditer(meta)]
    if not names and meta and "ONNX Layer:" in meta:
        names = [
            p.split("ONNX Layer:", 1)[1].strip(" ]") for p in meta.split(_META_SEP) if "ONNX Layer:" in p
        ]
    seen: dict[str, None] = {}
    for n in names:
        seen.setdefault(_PROFILE_MARK.sub("", n).strip(), None)
    return tuple(seen)


_LAYER_KEYS = frozenset(
    {
        "Name",
        "LayerType",
        "Inputs",
        "Constants",
        "Outputs",
        "TacticName",
        "TacticValue",
        "StreamId",
        "Metadata",
        "Origin",
        "ParameterType",
    }
)


_EXTRA_KEYS = frozenset({"StreamId", "ParameterType"})


def _layer_from_line(line: str, index: int) -> EngineLayer | None:
    """One ``Name: …, LayerType: …, …`` line of the detailed listing, or None when it is not one."""
    # Metadata is last and may contain anything: cut it off first.
    meta = ""
    pos = line.rfind(", Metadata: ")
    head = line
    if pos >= 0:
        head, meta = line[:pos], line[pos + len(", Metadata: ") :]
    elif line.endswith(", Metadata:"):  # empty metadata (a shape kernel), its trailing space stripped
        head = line[: -len(", Metadata:")]
    f = _fields(head, _LAYER_KEYS)
    if "LayerType" not in f:
        # Unbalanced brackets in a name can hide keys: fall back to plain splitting.
        f = dict(re.findall(r"(?:^|, )(Name|LayerType|TacticName|TacticValue|StreamId): ([^,]*)", head))
        if "LayerType" not in f:
            return None
        for key in ("Inputs", "Constants", "Outputs"):
            m = re.search(rf", {key}: (\[.*?\])(?=, [A-Z][A-Za-z]*: |$)", head)
            if m:
                f[key] = m.group(1)
    inputs = _tensor_list(f.get("Inputs", ""))
    outputs = _tensor_list(f.get("Outputs", ""))
    constants = _tensor_list(f.get("Constants", ""))
    name = f.get("Name", "").strip()
    precision, weight_precision = layer_precision(outputs, inputs, constants, name)
    known = _LAYER_KEYS - _EXTRA_KEYS  # the rest of the fields are kept as they are, in ``extra``
    return EngineLayer(
        name=name,
        output_precision=output_precision(outputs),
        type=f.get("LayerType", "").strip(),
        inputs=inputs,
        outputs=outputs,
        constants=constants,
        tactic=(f.get("TacticName") or f.get("TacticValue") or "").strip(),
        precision=precision,
        onnx_nodes=onnx_nodes_from_metadata(meta),
        metadata_raw=meta,
        index=index,
        weight_precision=weight_precision,
        origin=f.get("Origin", "").strip(),
        extra=tuple((k, v.strip()) for k, v in f.items() if k not in known),
    )


# "Layer(CaskConvolution): conv1 + relu1, Tactic: 0x…, in (Float[1,3,8,8]) -> out (Half[1,8,8,8])" (TRT-RTX), or
# "Layer(Reformat): name, Tactic: 0x…, input[Float(1,3,224,224)] -> out[Half(1,3,224,224)]" (TensorRT 8–10).
_NAMES_ONLY = re.compile(r"^Layer\((?P<type>[^)]*)\): (?P<name>.*?), Tactic: (?P<tactic>\S*), (?P<io>.*)$")
_IO_RTX = re.compile(r"(?P<name>[^,]+?) \((?P<dtype>\w+)\[(?P<dims>[-\d,]*)\]\)")
_IO_TRT = re.compile(r"(?P<name>[^,\[]+?)\[(?P<dtype>\w+)\((?P<dims>[-\d,]*)\)\]")


def _names_only_line(line: str, index: int) -> EngineLayer | None:
    m = _NAMES_ONLY.match(line)
    if not m:
        return None
    ins, _, outs = m.group("io").partition(" -> ")

    def tensors(text: str) -> tuple[TensorInfo, ...]:
        found = list(_IO_RTX.finditer(text)) or list(_IO_TRT.finditer(text))
        return tuple(
            TensorInfo(
                name=x.group("name").strip(),
                shape=_dims(x.group("dims")),
                dtype=normalize_dtype(x.group("dtype")),
            )
            for x in found
        )

    name = m.group("name").strip()
    if name.startswith("{") and name.endswith("}"):
        name = name[1:-1]
    inputs, outputs = tensors(ins), tensors(outs)
    precision, _ = layer_precision(outputs, inputs, name=name)
    return EngineLayer(
        name=name,
        output_precision=output_precision(outputs),
        type=m.group("type"),
        inputs=inputs,
        outputs=outputs,
        tactic=m.group("tactic"),
        precision=precision,
        index=index,
    )


def _io_tensor_line(line: str) -> IOTensor | None:
    if not line.startswith("Name:"):
        return None
    f = _fields(line)
    profiles = []
    body = f.get("ProfileInfo", "").strip()
    if body.startswith("[") and body.endswith("]"):
        body = body[1:-1]
    for chunk in _split_top(body):
        chunk = chunk.strip().strip("{}").strip()
        if not chunk:
            continue
        p = _fields(chunk)
        profiles.append(
            ProfileShape(
                _dims(p.get("MinShape", "")),
                _dims(p.get("OptShape", "")),
                _dims(p.get("MaxShape", "")),
                p.get("Format", "").strip(),
            )
        )
    return IOTensor(
        name=f.get("Name", "").strip(),
        mode=f.get("IOMode", "").strip(),
        dtype=normalize_dtype(f.get("DataType", "")),
        shape=_dims(f.get("Dimensions", "")),
        location=f.get("Location", "").strip(),
        profiles=tuple(profiles),
    )


def _assign_profiles(layers: list[EngineLayer]) -> list[EngineLayer]:
    """TensorRT lists one copy of the network per optimization profile; tensor and layer names of profile N > 0
    carry `` [profile N]``. Myelin graphs (``…_myl<k>_<i>``) belong wholly to one profile."""

    def mark(ly: EngineLayer) -> int | None:
        for text in (ly.name, *(t.name for t in ly.inputs + ly.outputs)):
            m = _PROFILE_MARK.search(text)
            if m:
                return int(m.group(1))
        return None

    graph_profile: dict[str, int] = {}
    marks = []
    for ly in layers:
        p = mark(ly)
        marks.append(p)
        g = _MYELIN_GRAPH.search(ly.name)
        if p is not None and g:
            graph_profile.setdefault(g.group(1), p)
    out = []
    for ly, p in zip(layers, marks, strict=True):
        if p is None:
            g = _MYELIN_GRAPH.search(ly.name)
            p = graph_profile.get(g.group(1), 0) if g else 0
        out.append(replace(ly, profile=p) if p else ly)
    return out


def _content(line: str) -> str:
    return _PREFIX.sub("", line, count=1) if _PREFIX.match(line) else line


def _is_new_message(line: str) -> bool:
    """A line that starts a new log record (a severity prefix at column 0), ending a multi-line listing."""
    return bool(line) and not line[0].isspace() and bool(_PREFIX.match(line))


def parse_build_log(text: str) -> EngineLayers:
    """Parse the last engine layer listing in a build log (see the module docstring for the formats).

    Raises :class:`BackendError` only when the log holds no layer listing at all.
    """
    lines = (text or "").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    start, detail = -1, "detailed"
    for i, line in enumerate(lines):
        if "Layers:" not in line and "Engine Layer Information:" not in line:
            continue  # cheap test first: a large engine's log has hundreds of thousands of lines
        c = _content(line).strip()
        if c == "Layers:":
            start, detail = i, "detailed"
        elif c == "Engine Layer Information:":
            start, detail = i, "layer_names_only"
    if start < 0:
        raise BackendError(
            "The build log has no engine layer listing ('Layers:' or 'Engine Layer Information:'), "
            "so the fusion report cannot be made from it.",
            "The listing is written when the engine is built with profiling verbosity DETAILED (or "
            "LAYER_NAMES_ONLY) and the log level is extra verbose; rebuild the engine in the workbench, or with "
            "polygraphy convert … --profiling-verbosity detailed --verbosity extra_verbose.",
        )
    layers: list[EngineLayer] = []
    io: list[IOTensor] = []
    meta: list[tuple[str, str]] = []
    warnings: list[str] = []
    section = "layers"
    end = len(lines)
    for j in range(start + 1, len(lines)):
        line = lines[j]
        if _is_new_message(line):
            # A logger that prefixes every line keeps the listing's indentation after its prefix
            # ("[V]     Name: …"); a new log record starts right after it ("[V] [MemUsageStats] …").
            rest = _content(line)
            if rest.strip() and not rest[0].isspace():
                end = j
                break
        c = _content(line).strip() if _is_new_message(line) else line.strip()
        if not c:
            continue
        if c == "I/O Tensors:":
            section = "io"
            continue
        if c == "Engine Metadata:":
            section = "meta"
            continue
        if section == "layers":
            layer = (
                _layer_from_line(c, len(layers)) if detail == "detailed" else _names_only_line(c, len(layers))
            )
            if layer is None and detail == "detailed":
                layer = _names_only_line(c, len(layers))
            if layer is None:
                warnings.append(
                    f"Line {j + 1} of the listing was not understood and is kept in the raw text: {c[:120]}"
                )
            else:
                layers.append(layer)
        elif section == "io":
            t = _io_tensor_line(c)
            if t is None:
                warnings.append(f"I/O tensor line {j + 1} was not understood: {c[:120]}")
            else:
                io.append(t)
        else:
            key, _, value = c.partition(":")
            meta.append((key.strip(), value.strip()))
    raw = "\n".join(lines[start:end])
    if not layers:
        warnings.append("The layer listing is empty.")
    for w in warnings:
        log.warning("%s", w)
    return EngineLayers(
        layers=tuple(_assign_profiles(layers)),
        io_tensors=tuple(io),
        source=BUILD_LOG,
        raw=raw,
        engine_metadata=tuple(meta),
        detail=detail,
        warnings=tuple(warnings),
    )


# ---------------------------------------------------------------------------------------------- inspector JSON
_INSPECTOR_KNOWN = {
    "Name",
    "LayerType",
    "Inputs",
    "Outputs",
    "Constants",
    "TacticName",
    "TacticValue",
    "Metadata",
    "Origin",
}


def _inspector_tensor(d: Any) -> TensorInfo:
    if not isinstance(d, dict):
        return TensorInfo(name=str(d))
    fmt = str(d.get("Format/Datatype") or d.get("Format") or "")
    dtype = normalize_dtype(str(d.get("Datatype") or "")) or normalize_dtype(fmt)
    return TensorInfo(
        name=str(d.get("Name", "")),
        shape=_ints(d.get("Dimensions")),
        dtype=dtype,
        format=fmt,
        location=str(d.get("Location", "")),
        strides=_ints(d.get("Strides")),
    )


def _weights_dtype(d: dict[str, Any]) -> tuple[TensorInfo, ...]:
    """Convolution/FC weights appear as ``"Weights": {"Type": "Half", "Count": 9408}`` in the inspector JSON."""
    out = []
    for key in ("Weights", "Bias"):
        w = d.get(key)
        if isinstance(w, dict) and w.get("Type"):
            out.append(
                TensorInfo(
                    name=f"{d.get('Name', '')}.{key.lower()}",
                    shape=_ints([w.get("Count", 0)]),
                    dtype=normalize_dtype(str(w["Type"])),
                )
            )
    return tuple(out)


def _inspector_layer(d: Any, index: int) -> EngineLayer:
    if not isinstance(d, dict):  # LAYER_NAMES_ONLY inspector output: a list of names
        return EngineLayer(name=str(d), type="", index=index)
    inputs = tuple(_inspector_tensor(t) for t in d.get("Inputs") or ())
    outputs = tuple(_inspector_tensor(t) for t in d.get("Outputs") or ())
    constants = tuple(_inspector_tensor(t) for t in d.get("Constants") or ()) + _weights_dtype(d)
    precision, weight_precision = layer_precision(outputs, inputs, constants, str(d.get("Name", "")))
    meta = d.get("Metadata") or ""
    if isinstance(meta, list):
        meta = _META_SEP.join(str(m) for m in meta)
    extra = tuple(
        (str(k), json.dumps(v) if not isinstance(v, str) else v)
        for k, v in d.items()
        if k not in _INSPECTOR_KNOWN and k not in ("Weights", "Bias")
    )
    return EngineLayer(
        name=str(d.get("Name", "")),
        type=str(d.get("LayerType", "")),
        inputs=inputs,
        outputs=outputs,
        constants=constants,
        tactic=str(d.get("TacticName") or d.get("TacticValue") or ""),
        precision=precision,
        output_precision=output_precision(outputs),
        onnx_nodes=onnx_nodes_from_metadata(str(meta)),
        metadata_raw=str(meta),
        index=index,
        weight_precision=weight_precision,
        origin=str(d.get("Origin", "")),
        extra=extra,
    )


def parse_inspector_json(text: str) -> EngineLayers:
    """Parse TensorRT's engine inspector JSON (``{"Layers": [...], "Bindings": [...]}``, as TREx reads it)."""
    try:
        data = json.loads(text)
    except ValueError as err:
        raise WorkbenchError(
            f"The engine inspector output is not valid JSON: {err}.",
            "Export it with IEngineInspector.get_engine_information(LayerInformationFormat.JSON) "
            "from an engine built with profiling verbosity DETAILED.",
        ) from err
    if isinstance(data, list):
        data = {"Layers": data}
    if not isinstance(data, dict) or not isinstance(data.get("Layers"), list):
        raise WorkbenchError(
            "The JSON file has no 'Layers' list, so it is not engine inspector output.",
            "Pick a job's layers.json or an inspector JSON file (TREx's *.graph.json).",
        )
    items = data["Layers"]
    layers = [_inspector_layer(d, i) for i, d in enumerate(items)]
    detail = "detailed" if any(isinstance(d, dict) for d in items) else "layer_names_only"
    io = tuple(IOTensor(name=str(b), mode="") for b in data.get("Bindings") or ())
    return EngineLayers(
        layers=tuple(_assign_profiles(layers)), io_tensors=io, source=INSPECTOR, raw=text, detail=detail
    )


def _import_backend(backend: str) -> Any:
    import importlib

    names = {
        "tensorrt": ("tensorrt",),
        "tensorrt-rtx": ("tensorrt_rtx",),
        "auto": ("tensorrt", "tensorrt_rtx"),
    }
    for name in names.get(backend, (backend,)):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


def inspect_plan(plan: Path, backend: str = "auto") -> EngineLayers:
    """Deserialize a plan and read its layers with TensorRT's engine inspector (JSON, detailed verbosity).

    ``backend`` is ``"tensorrt"``, ``"tensorrt-rtx"`` or ``"auto"`` (full TensorRT if installed, else
    TensorRT-RTX). Needs a GPU the backend supports; raises :class:`BackendUnavailable` with the backend's own
    words when the backend is missing or cannot deserialize the plan here.
    """
    plan = Path(plan)
    trt = _import_backend(backend)
    sibling = next(
        (p for p in (plan.with_suffix(".layers.json"), plan.parent / "layers.json") if p.is_file()),
        plan.parent / "layers.json",
    )
    fallback = (
        f"Use {sibling} (the layer listing saved at build time)."
        if sibling.is_file()
        else "Use the layer listing saved at build time instead: the build job's layers.json, or "
        "'trt-workbench layers JOB_ID'."
    )
    if trt is None:
        raise BackendUnavailable(
            f"{'TensorRT' if backend == 'auto' else backend} is not installed, so the plan "
            f"{plan.name} cannot be inspected here.",
            fallback,
        )
    if not plan.is_file():
        raise WorkbenchError(f"The plan {plan} does not exist.", "Check the path.")

    class _Collect(trt.ILogger):  # type: ignore[name-defined]  # trt is imported at run time; the backend's errors go into our message, not onto the console
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity: Any, msg: str) -> None:
            if severity <= trt.ILogger.Severity.ERROR:
                self.errors.append(msg)

    logger = _Collect()
    engine = None
    try:
        runtime = trt.Runtime(logger)
        engine = runtime.deserialize_cuda_engine(plan.read_bytes())
    except Exception as err:  # noqa: BLE001 - the bindings raise plain exceptions for a missing driver/GPU
        logger.errors.append(str(err))
    if engine is None:
        why = logger.errors[0] if logger.errors else "deserialize_cuda_engine returned nothing"
        raise BackendUnavailable(
            f"{trt.__name__} {getattr(trt, '__version__', '')} cannot deserialize {plan.name} on this machine, so "
            f"the engine inspector cannot run here ({why.strip()}). Plans load only on a GPU the backend supports.",
            fallback,
        )
    inspector = engine.create_engine_inspector()
    text = inspector.get_engine_information(trt.LayerInformationFormat.JSON)
    return parse_inspector_json(text)


def load_layers(path: str | Path) -> EngineLayers:
    """Load layer information from a ``layers.json``, an inspector JSON, a build log, or a job folder."""
    path = Path(path)
    if path.is_dir():
        for name in ("layers.json", "job.log"):
            if (path / name).is_file():
                return load_layers(path / name)
        raise WorkbenchError(
            f"{path} has no layers.json or job.log.", "Pick the folder of a finished build job."
        )
    if not path.is_file():
        raise WorkbenchError(f"{path} does not exist.", "Check the path.")
    text = path.read_text(errors="replace")
    if text.lstrip().startswith(("{", "[")):
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict) and "layers" in data:
            return EngineLayers.from_dict(data)
        if isinstance(data, dict | list):
            return parse_inspector_json(text)
    return parse_build_log(text)
