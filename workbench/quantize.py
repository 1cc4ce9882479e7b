"""INT8/FP8 quantization to an explicit Q/DQ ONNX model that TensorRT (and strongly typed TensorRT-RTX) builds.

ONNX Runtime's ``quantize_static`` does the work, in ``QuantFormat.QDQ`` with the settings TensorRT's parser
accepts: symmetric int8 activations and weights, per-channel weights, biases left in float (``QuantizeBias``
False: TensorRT rejects int32 bias DequantizeLinear). The computed tensor ranges are saved beside the Q/DQ model
as ``calibration.json`` (readable, editable) and can rebuild a Q/DQ model later without calibrating again.

FP8 (E4M3FN): ONNX Runtime computes FP8 scales only with its "distribution" method (from each tensor's
standard deviation), whatever calibrator is chosen; the model is moved to opset 19. TensorRT-RTX builds such a
model on a CPU-only machine, but an FP8 engine only runs on GPUs of compute capability 8.9 or newer.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import io
import json
import logging
import math
import re
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .calibration_data import CalibrationData, InputSpec, model_inputs
from .calibration_screen import KeptOut, kept_out, message, screen_ranges, screened_collector
from .errors import BackendError, DataError, SpecError, WorkbenchError
from .progress import Cancelled, NullReporter, Reporter, SubReporter, check_cancel

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

CALIBRATORS = ("entropy", "minmax", "percentile")
PRECISIONS = ("int8", "fp8")
RANGES_FILE = "calibration.json"
RANGES_FORMAT = "trt-workbench.calibration"
MAX_CALIBRATION_BATCH = 4096
# Entropy (KL) histogram bins. TensorRT uses 2048; ORT's pure-Python search over them costs about 1 s per
# tensor, so 512 (clipping down to a quarter of the observed range) at about 0.15 s per tensor.
ENTROPY_BINS = 512
# Samples whose intermediate outputs ONNX Runtime's calibrators hold at once (ResNet-50: about 115 MB a sample).
# They keep every output of the batches one ``collect_data`` call reads; calibration calls it a chunk at a time,
# and their histogram collector (MinMax: its running ranges) merges across calls, so memory does not grow with
# the number of samples.
CALIBRATION_CHUNK_SAMPLES = 16
_ORT_METHOD = {
    "entropy": "Entropy",
    "minmax": "MinMax",
    "percentile": "Percentile",
    "distribution": "Distribution",
}
_QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
_BIASED = ("Conv", "ConvTranspose", "Gemm")  # input 2 is a bias, left in float
_INT_TYPES = (6, 7, 9)  # int32, int64, bool initializers: shapes, axes, masks

# Phases and their share of the progress bar.
_PRE, _CAL, _WRITE = (0.0, 0.1), (0.1, 0.85), (0.85, 1.0)


# ---------------------------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class QuantizeSpec:
    """What to quantize and how. ``exclude_nodes`` may also name op types (as the CLI's ``--exclude`` does)."""

    calibrator: str = "entropy"
    percentile: float = 99.999
    precision: str = "int8"
    exclude_nodes: tuple[str, ...] = ()
    exclude_op_types: tuple[str, ...] = ()
    per_channel: bool = True
    calibration_batch_size: int = 16

    def __post_init__(self) -> None:
        object.__setattr__(self, "exclude_nodes", tuple(self.exclude_nodes))
        object.__setattr__(self, "exclude_op_types", tuple(self.exclude_op_types))
        if self.calibrator not in CALIBRATORS:
            raise SpecError(
                f"Unknown calibrator '{self.calibrator}'.", f"Choose one of {', '.join(CALIBRATORS)}."
            )
        if self.precision not in PRECISIONS:
            raise SpecError(
                f"Quantization precision '{self.precision}' is not supported.",
                f"Choose one of {', '.join(PRECISIONS)}.",
            )
        p = self.percentile
        if (
            isinstance(p, bool)
            or not isinstance(p, int | float)
            or not math.isfinite(p)
            or not 50.0 < p <= 100.0
        ):
            raise SpecError(
                f"Percentile {p!r} is out of range.",
                "Give a percentile above 50 and at most 100, e.g. 99.99 or 99.999.",
            )
        b = self.calibration_batch_size
        if isinstance(b, bool) or not isinstance(b, int) or not 1 <= b <= MAX_CALIBRATION_BATCH:
            raise SpecError(
                f"Calibration batch size {b!r} is out of range.",
                f"Use a whole number from 1 to {MAX_CALIBRATION_BATCH}.",
            )
        for what, names in (("node", self.exclude_nodes), ("op type", self.exclude_op_types)):
            for n in names:
                if not isinstance(n, str) or not n.strip():
                    raise SpecError(f"An excluded {what} name is empty or not text: {n!r}.")


@dataclass(frozen=True)
class QuantizeResult:
    model_path: Path
    calibrator: str  # the method that produced the ranges ("distribution" for FP8)
    n_samples: int  # samples the calibrator saw (0 when ranges were reused)
    n_quantized_nodes: int
    excluded: tuple[str, ...]  # node names kept out of quantization
    ranges_path: Path | None
    duration_s: float
    warnings: tuple[str, ...] = ()
    precision: str = "int8"
    reused_ranges: Path | None = None
    batches: str = ""  # how the calibration data were batched
    kept_out: tuple[KeptOut, ...] = ()  # tensors no range can hold (attention-mask fills), their nodes in float

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("model_path", "ranges_path", "reused_ranges"):
            d[k] = None if d[k] is None else str(d[k])
        d["excluded"] = list(self.excluded)
        d["warnings"] = list(self.warnings)
        d["kept_out"] = {k.tensor: k.to_dict() for k in self.kept_out}
        return d


@dataclass(frozen=True)
class QdqSummary:
    """What a Q/DQ model holds: Q/DQ counts, the nodes fed through DequantizeLinear, DQ input types."""

    n_quantize: int
    n_dequantize: int
    quantized_nodes: tuple[str, ...]  # all data inputs (not biases or int shapes) from DequantizeLinear
    float_nodes: tuple[str, ...]  # the other non-Q/DQ nodes (a float weight, or a float activation)
    dq_input_types: Mapping[str, int]  # e.g. {"int8": 9}


# ---------------------------------------------------------------------------------------------- helpers


def _close(name: str, options: Iterable[str]) -> list[str]:
    return difflib.get_close_matches(name, sorted(set(options)), n=3, cutoff=0.5)


def _node_label(node: Any, index: int) -> str:
    return node.name or f"{node.op_type}#{index}"


_ELEMENTWISE = ("Add", "Sub", "Mul", "Div", "Pow", "Max", "Min")


def _broadcast_constant_nodes(graph: Any) -> list[str]:
    """Element-wise nodes with a constant operand of lower rank than the node's output (a scalar scale, a bias
    vector): ONNX Runtime quantizes that constant, and TensorRT then has to broadcast a quantized constant,
    which it refuses. Found building the transformer sample with TensorRT-RTX 1.7."""
    consts = {i.name: len(i.dims) for i in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    consts[n.output[0]] = len(a.t.dims)
    out = []
    for i, n in enumerate(graph.node):
        if n.op_type not in _ELEMENTWISE or len(n.input) != 2:
            continue
        const = [x for x in n.input if x in consts]
        if len(const) == 1:
            other = next(x for x in n.input if x not in consts)
            if other and consts[const[0]] < _rank(graph, other, default=consts[const[0]] + 1):
                out.append(_node_label(n, i))
    return out


def _rank(graph: Any, tensor: str, default: int) -> int:
    for vi in (*graph.value_info, *graph.input, *graph.output):
        if vi.name == tensor and vi.type.tensor_type.HasField("shape"):
            return len(vi.type.tensor_type.shape.dim)
    return default


def _resolve_exclusions(graph: Any, spec: QuantizeSpec) -> tuple[list[str], list[str], list[str]]:
    """(node names, op types, notes). Names in ``exclude_nodes`` that are op types count as op types."""
    names = [_node_label(n, i) for i, n in enumerate(graph.node)]
    op_types = {n.op_type for n in graph.node}
    nodes: list[str] = []
    types: list[str] = []
    notes: list[str] = []
    for n in spec.exclude_nodes:
        if n in names:
            nodes.append(n)
        elif n in op_types:
            types.append(n)
            notes.append(f"'{n}' names no node but is an op type: every {n} node is excluded.")
        else:
            near = _close(n, [*names, *op_types])
            raise SpecError(
                f"Cannot exclude '{n}': the model has no node (or op type) of that name."
                + (f" Close matches: {', '.join(near)}." if near else ""),
                "Pick node names from the model's graph (the Model page lists them).",
            )
    for t in spec.exclude_op_types:
        if t not in op_types:
            near = _close(t, op_types)
            raise SpecError(
                f"Cannot exclude op type '{t}': the model has no {t} node."
                + (f" Close matches: {', '.join(near)}." if near else ""),
                f"The model's op types are: {', '.join(sorted(op_types))}.",
            )
        types.append(t)
    return nodes, sorted(set(types)), notes


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _has_external_data(model: Any) -> bool:
    from onnx.external_data_helper import uses_external_data

    return any(uses_external_data(t) for t in model.graph.initializer)


def _sympy_available() -> bool:
    try:
        import sympy  # noqa: F401
    except ImportError:
        return False
    return True


def _preprocess(
    src: Path, dst: Path, keep_nodes: Sequence[str], external: bool, warnings: list[str], reporter: Reporter
) -> tuple[Path, str]:
    """ORT's quantization pre-processing: shape inference and basic graph optimizations (BN folding, ...).

    Falls back to shape inference only when an optimization would remove a node the user excluded, and to the
    model as it is when pre-processing fails. Returns (model to quantize, what was done).
    """
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    symbolic = _sympy_available()
    kwargs = dict(
        skip_symbolic_shape=not symbolic, save_as_external_data=external, all_tensors_to_one_file=True
    )
    for skip_optimization in (False, True):
        try:
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    quant_pre_process(str(src), str(dst), skip_optimization=skip_optimization, **kwargs)
            except Exception as err:
                if kwargs["skip_symbolic_shape"]:
                    raise
                # e.g. "Incomplete symbolic shape inference" on a transformer with dynamic batch and sequence
                # (all-MiniLM-L6-v2): ONNX's own shape inference still serves
                reporter.log(f"Symbolic shape inference failed ({err}); pre-processing without it.")
                kwargs["skip_symbolic_shape"], symbolic = True, False
                with contextlib.redirect_stdout(io.StringIO()):
                    quant_pre_process(str(src), str(dst), skip_optimization=skip_optimization, **kwargs)
        except Exception as err:  # ORT raises many kinds; the original model still works without this step
            msg = (
                f"Pre-processing (ONNX Runtime shape inference/optimization) failed, quantizing as is: {err}"
            )
            reporter.log(msg, logging.WARNING)
            warnings.append(msg)
            return src, "none"
        if skip_optimization or not keep_nodes:
            break
        names = {n.name for n in onnx.load(str(dst), load_external_data=False).graph.node}
        gone = [n for n in keep_nodes if n not in names]
        if not gone:
            break
        reporter.log(
            f"Graph optimization would fold away excluded node(s) {', '.join(gone)}; pre-processing "
            "with shape inference only."
        )
    done = "shape inference" if skip_optimization else "shape inference + basic graph optimization"
    if not symbolic:
        done += (" (no symbolic shape inference: sympy is not installed)" if not _sympy_available()
                 else " (symbolic shape inference failed on this model)")
    reporter.log(f"Pre-processed: {done}.")
    return dst, done


def _named_copy(model_path: Path, model: Any, tmp: Path, external: bool) -> Path:
    """A copy in which unnamed nodes are named ``<op>#<index>`` (as the Model page lists them)."""
    import onnx

    if all(n.name for n in model.graph.node):
        return model_path
    full = onnx.load(str(model_path))
    for i, n in enumerate(full.graph.node):
        if not n.name:
            n.name = f"{n.op_type}#{i}"
    out = tmp / "named.onnx"
    onnx.save(
        full,
        str(out),
        save_as_external_data=external,
        all_tensors_to_one_file=True,
        location="named.onnx.data",
    )
    return out


class _Reader:
    """ORT ``CalibrationDataReader``: equal-size batches; checks for cancel and reports progress per batch."""

    def __init__(self, data: CalibrationData, batch_size: int, remainder: str, reporter: Reporter) -> None:
        self._rep = reporter
        self.plan = data.plan_batches(batch_size, remainder)
        self._it = data.batches(batch_size, remainder)
        self.done = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        check_cancel(self._rep)
        batch = next(self._it, None)
        if batch is not None:
            self.done += 1
            lo, hi = _CAL
            self._rep.progress(
                lo + (hi - lo) * self.done / max(1, self.plan.n_batches),
                f"calibrate (batch {self.done}/{self.plan.n_batches})",
            )
        return batch

    def __iter__(self) -> _Reader:
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        b = self.get_next()
        if b is None:
            raise StopIteration
        return b

    def __len__(self) -> int:
        return self.plan.n_batches


class _Chunk:
    """The next batches of ``reader`` (``first`` already read), at most ``batches`` of them, then the end."""

    def __init__(self, reader: _Reader, first: dict[str, np.ndarray], batches: int) -> None:
        self._reader, self._left = reader, batches
        self._first: dict[str, np.ndarray] | None = first

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._left <= 0:
            return None
        self._left -= 1
        if self._first is not None:
            batch, self._first = self._first, None
            return batch
        return self._reader.get_next()


def _collect_in_chunks(calibrator: Any, reader: _Reader, chunk_samples: int) -> None:
    """``calibrator.collect_data`` over all of ``reader``, a chunk of about ``chunk_samples`` samples per call."""
    per_call = max(1, chunk_samples // max(1, reader.plan.batch_size))
    called = False
    while (first := reader.get_next()) is not None:
        calibrator.collect_data(_Chunk(reader, first, per_call))
        called = True
    if not called:
        calibrator.collect_data(reader)  # no batch at all: ORT's own error, as before


def _as_one_pass(collector: Any) -> None:
    """Make the merged histograms of ``collector`` those one pass over every sample would have built.

    ORT's ``HistogramCollector`` extends a histogram by bins of the first chunk's width when a later chunk goes
    wider, so a chunked histogram has more bins than ``num_bins``; the entropy search clips to no less than
    ``num_quantized_bins`` bins, so its result would depend on the chunking. Re-bin each one to ``num_bins`` over
    [-max|x|, max|x|], as one pass builds it (counts moved by their cumulative sum: exact to one fine bin)."""
    if collector.method not in ("entropy", "distribution"):
        return  # percentile keeps the bin width when it extends: the percentile is as exact either way
    for name, entry in list(collector.histogram_dict.items()):
        hist, edges, lo, hi = entry[:4]
        if len(hist) == collector.num_bins:
            continue
        bound = np.array(max(abs(lo), abs(hi)), dtype=np.asarray(lo).dtype)
        target = np.linspace(-float(bound), float(bound), collector.num_bins + 1)
        cumulative = np.concatenate(([0], np.cumsum(hist)))
        at = np.round(np.interp(target, edges.astype(np.float64), cumulative)).astype(np.int64)
        at[0], at[-1] = 0, int(cumulative[-1])  # every value lies within [-max|x|, max|x|]
        counts = np.diff(at)
        collector.histogram_dict[name] = (counts, target.astype(edges.dtype), lo, hi, bound)


def _calibrate(
    source: Path,
    tmp: Path,
    method: str,
    spec: QuantizeSpec,
    op_types: Sequence[str],
    external: bool,
    reader: _Reader,
    reporter: Reporter,
    found: dict[str, tuple[float, float]] | None = None,
) -> Any:
    """Runs ORT's calibrator on the batches; returns its ``TensorsData`` (tensor ranges). Tensors with values
    near float32's limits (attention-mask fills) are left out of it and recorded in ``found``
    (:mod:`workbench.calibration_screen`).

    Called directly rather than through ``quantize_static`` because ``quantize_static`` cannot set the entropy
    histogram's bins: with its 128 bins for 128 quantized bins, "entropy" never clips and equals min/max.
    """
    from onnxruntime.quantization import create_calibrator

    options: dict[str, Any] = {}
    if method == "entropy":
        options = {"num_bins": ENTROPY_BINS, "num_quantized_bins": 128}
    elif method == "percentile":
        options = {"num_bins": 2048, "percentile": float(spec.percentile), "symmetric": True}
    calibrator = create_calibrator(
        source,
        op_types,
        augmented_model_path=str(tmp / "augmented.onnx"),
        calibrate_method=_method(method),
        use_external_data_format=external,
        extra_options=options,
    )
    found = {} if found is None else found
    if hasattr(calibrator, "num_bins"):  # a histogram calibrator: screen before ORT builds the histograms
        calibrator.collector = screened_collector(calibrator, found)
    _collect_in_chunks(calibrator, reader, CALIBRATION_CHUNK_SAMPLES)
    if hasattr(calibrator, "num_bins"):
        _as_one_pass(calibrator.collector)
    check_cancel(reporter)
    reporter.progress(_CAL[1], f"calibrate ({method} ranges)")
    t0 = time.monotonic()
    tensors = screen_ranges(calibrator.compute_data(), found)
    reporter.log(
        f"Computed {method} ranges of {len(tensors.data)} tensors from {reader.done} batches "
        f"({time.monotonic() - t0:.1f} s)."
    )
    return tensors


def _method(name: str) -> Any:
    from onnxruntime.quantization import CalibrationMethod

    return getattr(CalibrationMethod, _ORT_METHOD[name])


def _ort_error(err: Exception, model_path: Path, during: str) -> WorkbenchError:
    text = str(err).strip()
    if type(err).__name__ == "InvalidArgument":
        return DataError(
            f"ONNX Runtime rejected the calibration data for '{model_path.name}' during {during}: {text}",
            "Check the data's shapes and dtypes against the model's inputs.",
        )
    return BackendError(
        f"ONNX Runtime failed to quantize '{model_path.name}' during {during}: {text}",
        "See the log; excluding the node named in the message from quantization may help.",
    )


# ---------------------------------------------------------------------------------------------- ranges file


def _tensors_to_json(tensors: Any) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for name, td in tensors.items():
        entry: dict[str, float] = {}
        for key, label in (("lowest", "min"), ("highest", "max"), ("avg", "avg"), ("std", "std")):
            if hasattr(td, key):
                entry[label] = float(np.asarray(getattr(td, key)).reshape(-1)[0])
        out[name] = entry
    return out


def _tensors_from_json(doc: Mapping[str, Any], path: Path) -> Any:
    from onnxruntime.quantization import TensorData, TensorsData

    method = doc["method"]
    data = {}
    for name, e in doc["tensors"].items():
        kwargs = {}
        for key, label in (("lowest", "min"), ("highest", "max"), ("avg", "avg"), ("std", "std")):
            if label in e:
                kwargs[key] = np.float32(e[label])
        if method == "distribution" and "std" not in kwargs:
            raise DataError(f"'{path.name}': tensor '{name}' has no 'std', which FP8 scales need.")
        if method != "distribution" and not {"lowest", "highest"} <= kwargs.keys():
            raise DataError(f"'{path.name}': tensor '{name}' needs both 'min' and 'max'.")
        data[name] = TensorData(**kwargs)
    return TensorsData(_method(method), data)


def _type_name(data_type: int) -> str:
    from onnx import helper

    return helper.tensor_dtype_to_string(data_type).replace("TensorProto.", "").lower()


def _qdq_params(model: Any) -> dict[str, dict[str, Any]]:
    """Scale and zero point of every per-tensor activation QuantizeLinear (weights are per channel)."""
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    out: dict[str, dict[str, Any]] = {}
    for n in model.graph.node:
        if n.op_type != "QuantizeLinear" or len(n.input) < 2 or n.input[0] in inits:
            continue
        scale = numpy_helper.to_array(inits[n.input[1]]) if n.input[1] in inits else None
        zp_t = inits.get(n.input[2]) if len(n.input) > 2 else None
        if scale is None or scale.size != 1:
            continue
        entry: dict[str, Any] = {"scale": float(scale.reshape(-1)[0])}
        if zp_t is not None:
            entry["type"] = _type_name(zp_t.data_type)
            try:
                entry["zero_point"] = float(numpy_helper.to_array(zp_t).astype(np.float32).reshape(-1)[0])
            except Exception:
                entry["zero_point"] = 0.0
        out[n.input[0]] = entry
    return out


def read_ranges(path: str | Path) -> dict[str, Any]:
    """A ``calibration.json`` written by :func:`quantize_qdq`, checked (DataError when it is not one)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except OSError as err:
        raise DataError(
            f"Cannot read calibration ranges '{path}': {err.strerror}.", "Check the path."
        ) from err
    except ValueError as err:
        raise DataError(
            f"'{path.name}' is not valid JSON ({err}).", "Use a calibration.json saved by a quantization run."
        ) from err
    if not isinstance(doc, dict) or doc.get("format") != RANGES_FORMAT:
        raise DataError(
            f"'{path.name}' is not a calibration ranges file (no format '{RANGES_FORMAT}').",
            "Use a calibration.json saved by a quantization run.",
        )
    if doc.get("method") not in _ORT_METHOD or not isinstance(doc.get("tensors"), dict) or not doc["tensors"]:
        raise DataError(f"'{path.name}' has no usable tensor ranges (method {doc.get('method')!r}).")
    for name, e in doc["tensors"].items():
        if not isinstance(e, dict) or not all(
            isinstance(v, int | float) and math.isfinite(v) for v in e.values()
        ):
            raise DataError(
                f"'{path.name}': the range of tensor '{name}' is malformed: {e!r}.",
                'Each tensor needs finite numbers, e.g. {"min": -1.5, "max": 2.0}.',
            )
        if "min" in e and "max" in e and e["min"] > e["max"]:
            raise DataError(f"'{path.name}': tensor '{name}' has min {e['min']} > max {e['max']}.")
    return doc


def ranges_table(path: str | Path) -> dict[str, list[Any]]:
    """Columns (tensor, min, max, scale, zero_point, type) of a ``calibration.json`` for a table."""
    doc = read_ranges(path)
    qdq = doc.get("qdq", {})
    cols: dict[str, list[Any]] = {k: [] for k in ("tensor", "min", "max", "scale", "zero_point", "type")}
    for name, e in doc["tensors"].items():
        q = qdq.get(name, {})
        cols["tensor"].append(name)
        cols["min"].append(e.get("min", float("nan")))
        cols["max"].append(e.get("max", float("nan")))
        cols["scale"].append(q.get("scale", float("nan")))
        cols["zero_point"].append(q.get("zero_point", float("nan")))
        cols["type"].append(q.get("type", ""))
    return cols


# ---------------------------------------------------------------------------------------------- Q/DQ model


def qdq_summary(model_path: str | Path) -> QdqSummary:
    """Counts of QuantizeLinear/DequantizeLinear and which nodes read dequantized tensors."""
    from .model import load_proto

    model = load_proto(Path(model_path))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    types: dict[str, int] = {}
    for n in graph.node:
        if n.op_type == "DequantizeLinear" and n.input:
            src = n.input[0]
            if src in inits:
                dt = inits[src].data_type
            elif (
                src in producer and producer[src].op_type == "QuantizeLinear" and len(producer[src].input) > 2
            ):
                zp = inits.get(producer[src].input[2])
                dt = zp.data_type if zp is not None else 2  # no zero point: uint8 (ONNX default)
            else:
                continue
            name = _type_name(dt)
            types[name] = types.get(name, 0) + 1
    quantized: list[str] = []
    plain: list[str] = []
    for i, n in enumerate(graph.node):
        if n.op_type in _QDQ_OPS:
            continue
        data = [x for k, x in enumerate(n.input) if x and not (k >= 2 and n.op_type in _BIASED)]
        data = [x for x in data if not (x in inits and inits[x].data_type in _INT_TYPES)]
        fed = bool(data) and all(x in producer and producer[x].op_type == "DequantizeLinear" for x in data)
        (quantized if fed else plain).append(_node_label(n, i))
    return QdqSummary(
        n_quantize=sum(n.op_type == "QuantizeLinear" for n in graph.node),
        n_dequantize=sum(n.op_type == "DequantizeLinear" for n in graph.node),
        quantized_nodes=tuple(quantized),
        float_nodes=tuple(plain),
        dq_input_types=types,
    )


def quantize_qdq(
    model_path: str | Path,
    out_path: str | Path,
    data: CalibrationData | None,
    spec: QuantizeSpec,
    reporter: Reporter | None = None,
    *,
    reuse_ranges: str | Path | None = None,
    ranges_path: str | Path | None = None,
) -> QuantizeResult:
    """Calibrate on ``data`` and write a Q/DQ model to ``out_path`` (ranges to ``calibration.json`` beside it).

    With ``reuse_ranges`` (a ``calibration.json`` from an earlier run), no calibration runs and ``data`` may be
    None: the Q/DQ model is built from the saved ranges. Raises SpecError (bad exclusions), DataError (data or
    ranges do not fit the model), BackendError (ONNX Runtime failed), Cancelled.
    """
    import onnx
    import onnxruntime
    from onnxruntime.quantization import QuantFormat, QuantType, load_tensors_data, quantize_static
    from onnxruntime.quantization.calibrate import save_tensors_data

    from .model import load_proto

    reporter = reporter or NullReporter()
    t0 = time.monotonic()
    model_path, out_path = Path(model_path), Path(out_path)
    ranges_out = Path(ranges_path) if ranges_path else out_path.parent / RANGES_FILE
    warnings: list[str] = []

    def warn(msg: str) -> None:
        warnings.append(msg)
        reporter.log(msg, logging.WARNING)

    model = load_proto(model_path)
    excluded_nodes, excluded_types, notes = _resolve_exclusions(model.graph, spec)
    for note in notes:
        warn(note)
    broadcast = [n for n in _broadcast_constant_nodes(model.graph) if n not in excluded_nodes]
    if broadcast:
        excluded_nodes = [*excluded_nodes, *broadcast]
        reporter.log(
            f"Kept in float (TensorRT rejects a quantized constant that must be broadcast: 'Quantized constant "
            f"... is only allowed before DQ'): {', '.join(broadcast[:8])}{' ...' if len(broadcast) > 8 else ''}."
        )
    excluded = sorted(
        {
            *excluded_nodes,
            *(_node_label(n, i) for i, n in enumerate(model.graph.node) if n.op_type in excluded_types),
        }
    )
    inputs = model_inputs(model_path)

    saved: dict[str, Any] | None = None
    if reuse_ranges is not None:
        saved = read_ranges(reuse_ranges)
        method = saved["method"]
        if (saved.get("precision", "int8") == "fp8") != (spec.precision == "fp8"):
            raise DataError(
                f"'{Path(reuse_ranges).name}' holds {saved.get('precision')} ranges; this run asks "
                f"for {spec.precision}.",
                "Calibrate again for the other precision.",
            )
        if saved.get("model_sha256") not in (None, _sha256(model_path)):
            warn(
                f"'{Path(reuse_ranges).name}' was computed for a different model file ({saved.get('model')}); "
                "ranges are matched by tensor name."
            )
        tensors_in_model = {x for n in model.graph.node for x in (*n.input, *n.output)}
        unknown = [t for t in saved["tensors"] if t not in tensors_in_model]
        if len(unknown) == len(saved["tensors"]):
            raise DataError(
                f"None of the {len(unknown)} tensors in '{Path(reuse_ranges).name}' is in '{model_path.name}': "
                "these ranges belong to another model.",
                "Reuse ranges saved for this model, or calibrate it.",
            )
        if unknown:
            warn(
                f"{len(unknown)} tensor range(s) name no tensor of this model and are ignored: "
                f"{', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''}."
            )
        if method != ("distribution" if spec.precision == "fp8" else spec.calibrator):
            warn(f"Reusing ranges computed by the {method} calibrator (not {spec.calibrator}).")
    else:
        if data is None:
            raise DataError(
                "Quantization needs calibration data (or saved ranges to reuse).",
                "Upload an .npz with one array per model input.",
            )
        method = "distribution" if spec.precision == "fp8" else spec.calibrator
        missing = [i.name for i in inputs if i.name not in data.arrays]
        extra = [k for k in data.arrays if k not in {i.name for i in inputs}]
        if missing or extra:
            raise DataError(
                f"Calibration data ({data.source}) do not match the model's inputs: "
                + (f"missing {', '.join(missing)}" if missing else "")
                + ("; " if missing and extra else "")
                + (f"unknown {', '.join(extra)}" if extra else "")
                + ".",
                f"The model's inputs are: {', '.join(i.name for i in inputs)}.",
            )
        if data.synthetic:
            warn("Calibrating on random data: shapes only — the quantized model's accuracy is meaningless.")
    if spec.precision == "fp8":
        if spec.calibrator != "entropy" and saved is None:
            warn(
                f"FP8: ONNX Runtime computes FP8 scales with its 'distribution' method; the {spec.calibrator} "
                "calibrator does not apply."
            )
        warn("FP8 engines run only on GPUs of compute capability 8.9 or newer (Ada, Hopper, Blackwell).")

    qtype = QuantType.QFLOAT8E4M3FN if spec.precision == "fp8" else QuantType.QInt8
    extra_options: dict[str, Any] = {
        "ActivationSymmetric": True,
        "WeightSymmetric": True,
        "QuantizeBias": False,
        # Biases stay float, so ORT need not enlarge weight scales to keep int32 bias scales valid.
        "QDQDisableWeightAdjustForInt32Bias": True,
    }
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    op_types = sorted((set(QDQRegistry) | set(QLinearOpsRegistry)) - set(excluded_types))
    external = _has_external_data(model) or model_path.stat().st_size > (1 << 30)

    out_path.parent.mkdir(parents=True, exist_ok=True)
    reader: _Reader | None = None
    with tempfile.TemporaryDirectory(prefix="wb-quantize-") as tmp_s:
        tmp = Path(tmp_s)
        reporter.progress(_PRE[0], "preprocess")
        source = _named_copy(model_path, model, tmp, external)
        source, preprocessed = _preprocess(
            source, tmp / "pre.onnx", excluded_nodes, external, warnings, reporter
        )
        check_cancel(reporter)

        cache = tmp / "ort_ranges.json"
        batch_note = ""
        if saved is not None:
            save_tensors_data(_tensors_from_json(saved, Path(str(reuse_ranges))), cache)
            reporter.log(
                f"Reusing {len(saved['tensors'])} tensor ranges from '{Path(str(reuse_ranges)).name}' "
                "(no calibration)."
            )
        else:
            assert data is not None
            static = next((i.static_batch for i in inputs if i.static_batch), None)
            if static:
                reader = _Reader(data, static, "pad", reporter)
            else:
                reader = _Reader(data, min(spec.calibration_batch_size, data.n_samples), "drop", reporter)
            batch_note = reader.plan.note
            if reader.plan.dropped or reader.plan.padded:
                warn(
                    f"Calibration data: {batch_note} (ONNX Runtime's histogram calibrators need equal batches)."
                )
            reporter.log(
                f"Calibrating with {method} on {data.source}: {data.n_samples} samples, {batch_note}."
            )
        ort_out = io.StringIO()
        found = {t: (float(e["min"]), float(e["max"])) for t, e in ((saved or {}).get("kept_out") or {}).items()}
        kept: list[KeptOut] = []
        try:
            with contextlib.redirect_stdout(ort_out):
                if reader is not None:
                    reporter.progress(_CAL[0], "calibrate")
                    tensors = _calibrate(
                        source, tmp, method, spec, op_types, external, reader, reporter, found
                    )
                    save_tensors_data(tensors, cache)
                kept = kept_out(source, found)
                if kept:
                    more = [n for k in kept for n in k.nodes if n not in excluded_nodes]
                    excluded_nodes = [*excluded_nodes, *dict.fromkeys(more)]
                    excluded = sorted({*excluded, *more})
                check_cancel(reporter)
                reporter.progress(_WRITE[0], "write")
                quantize_static(
                    str(source),
                    str(out_path),
                    None,  # ranges come from the cache: calibrated above, or reused
                    quant_format=QuantFormat.QDQ,
                    op_types_to_quantize=op_types,
                    per_channel=spec.per_channel,
                    activation_type=qtype,
                    weight_type=qtype,
                    nodes_to_exclude=list(excluded_nodes),
                    use_external_data_format=external,
                    calibrate_method=_method(method),
                    extra_options=extra_options,
                    calibration_cache_path=str(cache),
                )
        except (Cancelled, WorkbenchError):
            raise
        except Exception as err:
            no_range = re.search(r"not specified for param (\S+?)\.? In static", str(err))
            if saved is not None and no_range:
                raise DataError(
                    f"'{Path(str(reuse_ranges)).name}' has no range for tensor '{no_range.group(1)}', which this "
                    "quantization needs.",
                    "Calibrate again, add a range for that tensor, or exclude the nodes that use it.",
                ) from err
            raise _ort_error(err, model_path, "quantization" if cache.exists() else "calibration") from err
        finally:
            for line in ort_out.getvalue().splitlines():
                if line.strip():
                    log.debug("onnxruntime: %s", line.strip())
        if kept:  # outside the redirected stdout, which a worker's log is written to
            warn(message(kept))
        tensors = load_tensors_data(cache)

    qmodel = onnx.load(str(out_path), load_external_data=False)
    summary = qdq_summary(out_path)
    if summary.n_quantize == 0 and summary.n_dequantize == 0:
        warn("No node was quantized (no supported op, or everything excluded): the model stays in float.")
    doc = {
        "format": RANGES_FORMAT,
        "version": 1,
        "method": method,
        "precision": spec.precision,
        "percentile": spec.percentile if method == "percentile" else None,
        "model": model_path.name,
        "model_sha256": _sha256(model_path),
        "preprocessed": preprocessed,
        "onnxruntime": onnxruntime.__version__,
        "data": (
            None
            if saved is not None or data is None
            else {
                "source": data.source,
                "synthetic": data.synthetic,
                "n_samples": data.n_samples,
                "batches": batch_note,
            }
        ),
        "reused_from": str(reuse_ranges) if reuse_ranges is not None else None,
        "tensors": _tensors_to_json(tensors),
        "kept_out": {k.tensor: k.to_dict() for k in kept},
        "qdq": _qdq_params(qmodel),
    }
    tmp_out = ranges_out.with_name(ranges_out.name + ".tmp")
    tmp_out.write_text(json.dumps(doc, indent=1))
    tmp_out.replace(ranges_out)
    reporter.progress(_WRITE[1], "write")
    result = QuantizeResult(
        model_path=out_path,
        calibrator=method,
        n_samples=0 if saved is not None or data is None else data.n_samples,
        n_quantized_nodes=len(summary.quantized_nodes),
        excluded=tuple(excluded),
        ranges_path=ranges_out,
        duration_s=time.monotonic() - t0,
        warnings=tuple(warnings),
        precision=spec.precision,
        reused_ranges=Path(reuse_ranges) if reuse_ranges is not None else None,
        batches=batch_note,
        kept_out=tuple(kept),
    )
    reporter.log(
        f"Wrote {out_path.name}: {result.n_quantized_nodes} node(s) quantized to {spec.precision}, "
        f"{len(excluded)} excluded, ranges in {ranges_out.name} ({result.duration_s:.1f} s)."
    )
    return result


# ---------------------------------------------------------------------------------------------- evaluation


def _as_arrays(data: CalibrationData | Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return (
        dict(data.arrays)
        if isinstance(data, CalibrationData)
        else {k: np.asarray(v) for k, v in data.items()}
    )


def run_model(
    model_path: str | Path,
    inputs: CalibrationData | Mapping[str, np.ndarray],
    batch_size: int = 256,
    reporter: Reporter | None = None,
) -> dict[str, np.ndarray]:
    """All outputs of ``model_path`` in ONNX Runtime (CPU) over the samples, batch by batch."""
    import onnxruntime as ort

    reporter = reporter or NullReporter()
    model_path = Path(model_path)
    arrays = _as_arrays(inputs)
    specs: list[InputSpec] = model_inputs(model_path)
    names = [s.name for s in specs]
    if sorted(arrays) != sorted(names):
        raise DataError(
            f"Data arrays {sorted(arrays)} do not match the inputs of '{model_path.name}': {names}."
        )
    n = next(iter(arrays.values())).shape[0]
    static = next((s.static_batch for s in specs if s.static_batch), None)
    bs = static or batch_size
    options = ort.SessionOptions()
    # Basic optimizations only: the extended level fuses Q/DQ into ORT's x86 int8 kernels, which saturate on
    # CPUs without VNNI (u8s8/s8s8) and show errors that TensorRT's int8 GEMMs (exact int32 accumulation) do
    # not have. Basic keeps the Q/DQ arithmetic exact ("fake quantization").
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.log_severity_level = 3
    try:
        sess = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    except Exception as err:
        raise BackendError(f"ONNX Runtime cannot load '{model_path.name}': {err}") from err
    out_names = [o.name for o in sess.get_outputs()]
    chunks: dict[str, list[np.ndarray]] = {o: [] for o in out_names}
    for start in range(0, n, bs):
        check_cancel(reporter)
        stop = min(start + bs, n)
        feed = {k: v[start:stop] for k, v in arrays.items()}
        if static and stop - start < static:  # a fixed batch: pad with the first sample, drop after
            feed = {
                k: np.concatenate([v, np.repeat(v[:1], static - (stop - start), axis=0)])
                for k, v in feed.items()
            }
        try:
            res = sess.run(out_names, feed)
        except Exception as err:
            raise _ort_error(err, model_path, "inference") from err
        for o, r in zip(out_names, res, strict=True):
            chunks[o].append(np.asarray(r)[: stop - start])
    return {o: np.concatenate(c) for o, c in chunks.items()}


def _top1(output: np.ndarray, name: str) -> np.ndarray:
    out = output
    while out.ndim > 2 and out.shape[-1] == 1:
        out = out[..., 0]
    if out.ndim != 2:
        raise DataError(
            f"Output '{name}' has shape {list(output.shape)}; top-1 accuracy needs [N, classes].",
            "Choose a classification output.",
        )
    return out.argmax(axis=1)


def _labels(labels: np.ndarray, n: int) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim == 2 and y.shape[1] > 1:
        y = y.argmax(axis=1)  # one-hot
    y = y.reshape(-1) if y.ndim == 2 else y
    if y.ndim != 1 or y.shape[0] != n:
        raise DataError(
            f"Labels have shape {list(np.shape(labels))}, but there are {n} samples.",
            "Give one class index per sample.",
        )
    if y.dtype.kind not in "iub":
        if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        else:
            raise DataError(f"Labels have dtype {y.dtype}; class indices must be integers.")
    return y


def _pick_output(outputs: Mapping[str, np.ndarray], output_name: str | None, model: Path) -> str:
    if output_name is None:
        return next(iter(outputs))
    if output_name not in outputs:
        near = _close(output_name, outputs)
        raise DataError(
            f"'{model.name}' has no output '{output_name}'"
            + (f" (close: {', '.join(near)})" if near else "")
            + ".",
            f"Its outputs are: {', '.join(outputs)}.",
        )
    return output_name


def accuracy_of(
    outputs: Mapping[str, np.ndarray],
    labels: np.ndarray,
    output_name: str | None = None,
    model: str | Path = "model",
) -> float:
    """Top-1 accuracy (fraction) from outputs already computed."""
    name = _pick_output(outputs, output_name, Path(model))
    pred = _top1(outputs[name], name)
    return float(np.mean(pred == _labels(labels, pred.shape[0])))


def evaluate_accuracy(
    model_path: str | Path,
    inputs: CalibrationData | Mapping[str, np.ndarray],
    labels: np.ndarray,
    output_name: str | None = None,
) -> float:
    """Top-1 accuracy (fraction in 0..1): argmax of the first (or named) output against integer labels."""
    outputs = run_model(model_path, inputs)
    return accuracy_of(outputs, labels, output_name, model_path)


def output_errors(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    """max/mean absolute error and cosine similarity of two outputs (flattened)."""
    a = np.asarray(reference, dtype=np.float64).reshape(-1)
    b = np.asarray(candidate, dtype=np.float64).reshape(-1)
    diff = np.abs(a - b)
    denom = float(np.linalg.norm(a) * np.linalg.norm(b))
    cos = float(np.dot(a, b) / denom) if denom > 0 else (1.0 if np.array_equal(a, b) else 0.0)
    return {
        "max_abs_err": float(diff.max(initial=0.0)),
        "mean_abs_err": float(diff.mean()) if diff.size else 0.0,
        "cosine": cos,
    }


def score_calibrators(
    model_path: str | Path,
    calib: CalibrationData,
    test_inputs: CalibrationData | Mapping[str, np.ndarray],
    labels: np.ndarray | None = None,
    calibrators: Sequence[str] = CALIBRATORS,
    *,
    spec: QuantizeSpec | None = None,
    output_name: str | None = None,
    reporter: Reporter | None = None,
) -> pd.DataFrame:
    """Quantize with each calibrator and compare the Q/DQ model with FP32 in ONNX Runtime on the test data.

    One row per calibrator and output: ``accuracy_fp32``/``accuracy_qdq``/``accuracy_delta_pp`` (top-1 on the
    first or named output, when ``labels`` are given; NaN otherwise and on other outputs), ``max_abs_err``,
    ``mean_abs_err``, ``cosine``, ``n_quantized_nodes``, ``quantize_s``. ``spec`` gives the other settings.
    """
    import pandas as pd

    reporter = reporter or NullReporter()
    model_path = Path(model_path)
    base = spec or QuantizeSpec()
    for c in calibrators:
        if c not in CALIBRATORS:
            raise SpecError(f"Unknown calibrator '{c}'.", f"Choose from {', '.join(CALIBRATORS)}.")
    reporter.progress(0.0, "FP32 reference")
    ref = run_model(model_path, test_inputs, reporter=reporter)
    acc_name = _pick_output(ref, output_name, model_path) if labels is not None else None
    acc_fp32 = accuracy_of(ref, labels, acc_name, model_path) if labels is not None else float("nan")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="wb-score-") as tmp_s:
        for k, cal in enumerate(calibrators):
            check_cancel(reporter)
            reporter.log(f"Scoring the {cal} calibrator.")
            sub = SubReporter(reporter, (k + 0.1) / len(calibrators), (k + 0.8) / len(calibrators), cal)
            folder = Path(tmp_s) / cal
            res = quantize_qdq(
                model_path,
                folder / "qdq.onnx",
                calib,
                QuantizeSpec(**{**asdict(base), "calibrator": cal}),
                reporter=sub,
            )
            outs = run_model(res.model_path, test_inputs, reporter=reporter)
            acc_q = (
                accuracy_of(outs, labels, acc_name, res.model_path) if labels is not None else float("nan")
            )
            for name, r in ref.items():
                is_acc = name == acc_name
                rows.append(
                    {
                        "calibrator": cal,
                        "output": name,
                        "accuracy_fp32": acc_fp32 if is_acc else float("nan"),
                        "accuracy_qdq": acc_q if is_acc else float("nan"),
                        "accuracy_delta_pp": 100.0 * (acc_q - acc_fp32) if is_acc else float("nan"),
                        **output_errors(r, outs[name]),
                        "n_quantized_nodes": res.n_quantized_nodes,
                        "quantize_s": res.duration_s,
                        "calibration_method": res.calibrator,
                    }
                )
            reporter.progress((k + 1) / len(calibrators), f"scored {cal}")
    return pd.DataFrame(rows)


