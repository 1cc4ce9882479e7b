"""Calibration (and test) data for a model: read an ``.npz``, check it against the model's inputs, batch it.

An ``.npz`` holds one array per model input, named like the input, with samples along the first axis (which
is the model's batch axis): ``np.savez("calib.npz", input=x)`` for a model input ``input`` of shape
``[batch, 64]`` and ``x`` of shape ``[N, 64]``. Extra arrays (labels, ids) are allowed only when the caller
names them (``extra_keys``).

Everything is checked before any array is loaded into memory: zip members' declared sizes and each ``.npy``
header's shape and dtype, so a zip bomb or a pickled object array never gets unpacked.
:func:`check_npz_headers` is that check alone (cheap for any size: what an app process runs before queueing a
job); :func:`load_npz` runs it, then reads the arrays and checks their values (NaN/Inf, integer ranges).
Image archives and server folders are preprocessed into such an .npz by :mod:`workbench.calibration_images`.
"""

from __future__ import annotations

import difflib
import logging
import math
import zipfile
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError

log = logging.getLogger(__name__)

DEFAULT_MAX_NPZ_BYTES = 2 << 30  # 2 GiB uncompressed, all members together
# Fewest samples calibration accepts (as image folders: calibration_images.DEFAULT_MIN_IMAGES): ranges from one or
# two samples describe those samples, not the inputs the model will see.
MIN_CALIBRATION_SAMPLES = 8
MAX_NPZ_MEMBERS = 1024
SYNTHETIC_NOTE = "random data: shapes only — accuracy meaningless"

Dim = int | str | None
ShapeBounds = tuple[Sequence[int], Sequence[int]]  # (min shape, max shape) of one input in a profile


@dataclass(frozen=True)
class InputSpec:
    """How the model declares one input. ``shape`` dims: int (static), str (symbolic), None (unknown);
    ``shape`` is None when the model does not declare the rank."""

    name: str
    dtype: str
    shape: tuple[Dim, ...] | None

    def shape_text(self) -> str:
        if self.shape is None:
            return "unknown rank"
        return "[" + ", ".join("?" if d is None else str(d) for d in self.shape) + "]"

    @property
    def static_batch(self) -> int | None:
        """The first dimension when the model fixes it (calibration batches must then have exactly that size)."""
        if self.shape and isinstance(self.shape[0], int) and self.shape[0] > 0:
            return self.shape[0]
        return None


@dataclass(frozen=True)
class BatchPlan:
    """How :meth:`CalibrationData.batches` splits the samples: equal-size batches only."""

    batch_size: int
    n_batches: int
    dropped: int = 0  # samples left out at the end
    padded: int = 0  # samples repeated (from the start) to fill the last batch

    @property
    def note(self) -> str:
        text = f"{self.n_batches} batch(es) of {self.batch_size}"
        if self.dropped:
            text += f"; the last {self.dropped} sample(s) are dropped so every batch has the same size"
        if self.padded:
            text += (
                f"; the last batch is padded with {self.padded} repeated sample(s) to the fixed batch size"
            )
        return text


@dataclass(frozen=True, eq=False)
class CalibrationData:
    """Arrays per model input (samples along axis 0), where they came from, and what was done to them."""

    arrays: Mapping[str, np.ndarray]
    source: str
    synthetic: bool = False
    notes: tuple[str, ...] = ()
    extras: Mapping[str, np.ndarray] = field(default_factory=dict)  # e.g. labels, same sample count

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.arrays)

    @property
    def n_samples(self) -> int:
        return int(next(iter(self.arrays.values())).shape[0]) if self.arrays else 0

    def stats(self) -> dict[str, list[Any]]:
        """Per-input statistics as columns: ``pandas.DataFrame(data.stats())`` gives one row per input."""
        cols: dict[str, list[Any]] = {
            k: [] for k in ("input", "dtype", "shape", "samples", "min", "max", "mean", "std")
        }
        for name, arr in self.arrays.items():
            cols["input"].append(name)
            cols["dtype"].append(str(arr.dtype))
            cols["shape"].append("x".join(str(d) for d in arr.shape))
            cols["samples"].append(int(arr.shape[0]))
            if arr.size and arr.dtype.kind in "fiub":
                a = arr.astype(np.float64, copy=False) if arr.dtype.kind != "f" else arr
                cols["min"].append(float(np.min(a)))
                cols["max"].append(float(np.max(a)))
                cols["mean"].append(float(np.mean(a, dtype=np.float64)))
                cols["std"].append(float(np.std(a, dtype=np.float64)))
            else:
                for k in ("min", "max", "mean", "std"):
                    cols[k].append(float("nan"))
        return cols

    def plan_batches(self, batch_size: int, remainder: str = "drop") -> BatchPlan:
        """Equal-size batches of ``batch_size`` (fewer samples than that: one batch of all, unless padding).

        ``remainder``: "drop" leaves the last ``n % batch_size`` samples out; "pad" repeats samples from the
        start to fill the last batch (needed when the model fixes its batch size).
        """
        if batch_size < 1:
            raise DataError(f"Batch size must be at least 1, not {batch_size}.")
        if remainder not in ("drop", "pad"):
            raise DataError(f"remainder must be 'drop' or 'pad', not {remainder!r}.")
        n = self.n_samples
        if n == 0:
            raise DataError(f"{self.source} holds no samples.")
        if remainder == "drop":
            size = min(batch_size, n)
            return BatchPlan(size, n // size, dropped=n % size)
        n_batches = math.ceil(n / batch_size)
        return BatchPlan(batch_size, n_batches, padded=n_batches * batch_size - n)

    def batches(self, batch_size: int, remainder: str = "drop") -> Iterator[dict[str, np.ndarray]]:
        """Yields ``{input: array[batch, ...]}`` with every batch the same size (see :meth:`plan_batches`).

        ONNX Runtime's entropy and percentile collectors fail ("inhomogeneous shape") on a short last batch.
        """
        plan = self.plan_batches(batch_size, remainder)
        n = self.n_samples
        for b in range(plan.n_batches):
            start, stop = b * plan.batch_size, (b + 1) * plan.batch_size
            if stop <= n:
                yield {k: v[start:stop] for k, v in self.arrays.items()}
            else:  # padding: wrap around to the first samples
                idx = np.arange(start, stop) % n
                yield {k: v[idx] for k, v in self.arrays.items()}

    def subset(self, n: int) -> CalibrationData:
        """The first ``n`` samples (for a quick calibration)."""
        n = max(1, min(n, self.n_samples))
        return CalibrationData(
            {k: v[:n] for k, v in self.arrays.items()},
            self.source,
            self.synthetic,
            self.notes + (f"first {n} of {self.n_samples} samples",),
            {k: v[:n] for k, v in self.extras.items()},
        )


# ---------------------------------------------------------------------------------------------- model side


def model_inputs(model_path: str | Path) -> list[InputSpec]:
    """The model's real inputs (initializers listed as inputs are left out); external weights are not loaded."""
    from onnx import helper

    from .model import load_proto

    model = load_proto(Path(model_path))
    inits = {i.name for i in model.graph.initializer}
    specs: list[InputSpec] = []
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        if not vi.type.HasField("tensor_type"):
            specs.append(InputSpec(vi.name, str(vi.type.WhichOneof("value") or "unknown"), None))
            continue
        tt = vi.type.tensor_type
        try:
            dtype = helper.tensor_dtype_to_np_dtype(tt.elem_type).name
        except Exception:
            dtype = f"onnx-type-{tt.elem_type}"
        if not tt.HasField("shape"):
            specs.append(InputSpec(vi.name, dtype, None))
            continue
        dims: list[Dim] = []
        for d in tt.shape.dim:
            if d.HasField("dim_value"):
                dims.append(int(d.dim_value) if d.dim_value >= 0 else None)  # -1: an older exporter's "dynamic"
            elif d.HasField("dim_param"):
                dims.append(d.dim_param)
            else:
                dims.append(None)
        specs.append(InputSpec(vi.name, dtype, tuple(dims)))
    return specs


# ---------------------------------------------------------------------------------------------- npz


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def _close(name: str, options: Sequence[str]) -> str:
    near = difflib.get_close_matches(name, list(options), n=3, cutoff=0.5)
    return f" Did you mean {', '.join(repr(m) for m in near)}?" if near else ""


def _read_npy_header(fh: Any, where: str) -> tuple[tuple[int, ...], np.dtype]:
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fh)
        if version == (1, 0):
            shape, _fortran, dtype = fmt.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, _fortran, dtype = fmt.read_array_header_2_0(fh)
        else:  # (3, 0): utf-8 field names; numpy has no public reader for it
            shape, _fortran, dtype = fmt._read_array_header(fh, version)  # type: ignore[attr-defined]
    except Exception as err:  # malformed header: ValueError, SyntaxError, ...
        raise DataError(
            f"{where} is not a valid .npy array ({err}).",
            "Write the file with numpy.savez or numpy.savez_compressed.",
        ) from err
    return tuple(int(d) for d in shape), np.dtype(dtype)


def _check_member_headers(
    path: Path, max_bytes: int, input_names: Sequence[str] = ()
) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Declared sizes and .npy headers of every member, checked without unpacking any array."""
    label = path.name
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as err:
        raise DataError(
            f"'{label}' is not an .npz archive ({err}).",
            "Save the arrays with numpy.savez('data.npz', <input name>=array, ...).",
        ) from err
    headers: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_NPZ_MEMBERS:
            raise DataError(f"'{label}' holds {len(infos)} files; at most {MAX_NPZ_MEMBERS} are accepted.")
        total = 0
        for info in infos:
            if info.file_size > max_bytes:
                raise DataError(
                    f"'{label}': member '{info.filename}' declares {_gib(info.file_size)} uncompressed, more than "
                    f"the {_gib(max_bytes)} limit (a zip bomb, or far too much data for calibration).",
                    "A few hundred representative samples are enough for calibration.",
                )
            total += info.file_size
        if total > max_bytes:
            raise DataError(
                f"'{label}' unpacks to {_gib(total)}, more than the {_gib(max_bytes)} limit.",
                "A few hundred representative samples are enough for calibration.",
            )
        for info in infos:
            if info.is_dir():
                continue
            if not info.filename.endswith(".npy"):
                raise DataError(
                    f"'{label}' holds '{info.filename}', which is not a .npy array.",
                    "Write the file with numpy.savez; it holds only .npy members.",
                )
            key = info.filename[:-4]
            where = f"{'Input' if key in input_names else 'Array'} '{key}' in '{label}'"
            with zf.open(info) as fh:
                shape, dtype = _read_npy_header(fh, where)
            if dtype.hasobject:
                raise DataError(
                    f"{where} holds Python objects (dtype {dtype}); loading it would unpickle arbitrary code, "
                    "so it is refused.",
                    "Save plain numeric arrays (e.g. np.asarray(x, dtype=np.float32)).",
                )
            nbytes = math.prod(shape) * dtype.itemsize
            if nbytes > info.file_size:
                raise DataError(
                    f"{where} declares shape {list(shape)} ({_gib(nbytes)}) but the member holds only "
                    f"{info.file_size} bytes: the archive is corrupt.",
                    "Write the file again.",
                )
            headers[key] = (shape, dtype)
    return headers


def _cast_note(name: str, have: np.dtype, want: str) -> str:
    return f"input '{name}': data are {have}, cast to the model's {want}"


def _target_dtype(have: np.dtype, spec: InputSpec, where: str) -> np.dtype:
    """The model's dtype for data of dtype ``have`` (same, or a float→float / int→int cast); refuses any other."""
    if have.kind in "OUSVMmc":
        raise DataError(
            f"{where} has dtype {have}, which cannot feed a model input.", f"Save it as {spec.dtype}."
        )
    try:
        want = np.dtype(spec.dtype)
    except TypeError as err:
        raise DataError(
            f"Input '{spec.name}' has type {spec.dtype}, which numpy cannot represent; it cannot be "
            "fed from an .npz."
        ) from err
    if have == want or (have.kind == "f" and want.kind == "f") or (have.kind in "iu" and want.kind in "iu"):
        return want
    hint = (
        " Images stored as integers usually need the model's preprocessing (scaling, normalization) "
        "applied before saving."
        if want.kind == "f" and have.kind in "iub"
        else ""
    )
    raise DataError(
        f"{where} has dtype {have}, but the model expects {spec.dtype}.",
        f"Convert and save it as {spec.dtype}.{hint}",
    )


def _check_dtype(arr: np.ndarray, spec: InputSpec, where: str) -> tuple[np.ndarray, str | None]:
    have = arr.dtype
    want = _target_dtype(have, spec, where)
    if have == want:
        return arr, None
    if want.kind in "iu":  # int -> int: the values must fit
        info = np.iinfo(want)
        if not (arr.size == 0 or (int(arr.min()) >= info.min and int(arr.max()) <= info.max)):
            raise DataError(
                f"{where} has values outside the range of the model's {spec.dtype}.",
                f"Clip the values, or save them as {spec.dtype}.",
            )
    return arr.astype(want), _cast_note(spec.name, have, spec.dtype)


def _bounds(profile: Any) -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
    if profile is None:
        return {}
    shapes = getattr(profile, "shapes", profile)  # a spec.Profile, or {name: (min, max)}
    out = {}
    for name, rng in shapes.items():
        if hasattr(rng, "min"):
            out[name] = (tuple(rng.min), tuple(rng.max))
        else:
            lo, hi = rng
            out[name] = (tuple(lo), tuple(hi))
    return out


def _check_shape(
    arr: np.ndarray, spec: InputSpec, where: str, bounds: tuple | None, symbols: dict[str, tuple[int, str]]
) -> None:
    _check_dims(tuple(arr.shape), spec, where, bounds, symbols)


def _check_dims(
    shape: tuple[int, ...],
    spec: InputSpec,
    where: str,
    bounds: tuple | None,
    symbols: dict[str, tuple[int, str]],
) -> None:
    """Rank, static and shared symbolic dims, and profile bounds of data of ``shape`` (samples on axis 0)."""
    ndim = len(shape)
    expected = (
        "[N, " + ", ".join("?" if d is None else str(d) for d in spec.shape[1:]) + "]" if spec.shape else ""
    )
    if spec.shape is not None:
        if len(spec.shape) == 0:
            raise DataError(
                f"Input '{spec.name}' is a scalar; calibration data need a batch axis.",
                "Calibrate a model whose inputs have a batch dimension.",
            )
        if ndim != len(spec.shape):
            raise DataError(
                f"{where} has rank {ndim} (shape {list(shape)}), but the input is {spec.shape_text()} "
                f"(rank {len(spec.shape)}).",
                f"Stack samples along the first axis, which is the model's batch axis: shape {expected}.",
            )
        for axis in range(1, ndim):
            d, have = spec.shape[axis], shape[axis]
            if isinstance(d, int) and d != have:
                raise DataError(
                    f"{where} has shape {list(shape)}, but the input is {spec.shape_text()}: "
                    f"dimension {axis} must be {d}, not {have}.",
                    f"Expected shape {expected}.",
                )
            if isinstance(d, str):
                seen = symbols.setdefault(d, (have, spec.name))
                if seen[0] != have:
                    raise DataError(
                        f"{where} has size {have} for dimension '{d}', but input '{seen[1]}' has "
                        f"{seen[0]} for the same dimension.",
                        "Inputs sharing a symbolic dimension need the same size for it.",
                    )
    if ndim == 0:
        raise DataError(f"{where} is a scalar; it needs samples along the first axis.")
    if bounds is not None:
        lo, hi = bounds
        if len(lo) != ndim or len(hi) != ndim:
            raise DataError(f"{where} has rank {ndim}, but the profile gives rank {len(lo)} shapes for it.")
        for axis in range(1, ndim):
            if not lo[axis] <= shape[axis] <= hi[axis]:
                raise DataError(
                    f"{where} has size {shape[axis]} in dimension {axis}, outside the profile's "
                    f"{lo[axis]}..{hi[axis]}.",
                    "Widen the optimization profile, or resize the data.",
                )


def _check_finite(arr: np.ndarray, where: str) -> None:
    if arr.dtype.kind != "f":
        return
    finite = np.isfinite(arr)
    if finite.all():
        return
    n_nan = int(np.isnan(arr).sum())
    n_inf = int(arr.size - finite.sum()) - n_nan
    first = int(np.argwhere(~finite.reshape(arr.shape[0], -1).all(axis=1))[0][0])
    raise DataError(
        f"{where} has {n_nan} NaN and {n_inf} Inf value(s) (first in sample {first}).",
        "Remove or fix those samples: calibration ranges need finite values.",
    )


@dataclass(frozen=True)
class NpzHeaders:
    """What an ``.npz`` declares (from its zip directory and ``.npy`` headers), checked against a model's inputs.

    ``shapes``/``dtypes``: every array kept (the inputs, then the accepted extras); ``notes``: the casts loading
    will do. Nothing here says the values are good: NaN/Inf, integer ranges and damaged array data are only seen
    by :func:`load_npz`.
    """

    source: str
    shapes: Mapping[str, tuple[int, ...]]
    dtypes: Mapping[str, str]
    n_samples: int
    notes: tuple[str, ...] = ()


def check_npz_headers(
    path: str | Path,
    inputs: Sequence[InputSpec],
    *,
    profile: Mapping[str, ShapeBounds] | Any | None = None,
    min_samples: int = 1,
    extra_keys: Sequence[str] = (),
    max_bytes: int = DEFAULT_MAX_NPZ_BYTES,
) -> NpzHeaders:
    """Every check of :func:`load_npz` that the headers can answer (names, sizes, rank, dims, dtypes, profile,
    sample counts), without reading any array data: cheap however big the file, so callers can refuse bad data
    before queueing work. The messages are exactly those :func:`load_npz` gives. Arguments as for it.
    """
    path = Path(path)
    label = path.name
    if not path.is_file():
        raise DataError(f"Calibration data '{path}' does not exist or is not a file.", "Check the path.")
    if path.stat().st_size == 0:
        raise DataError(f"'{label}' is empty (0 bytes).", "The upload or copy did not complete; try again.")
    headers = _check_member_headers(path, max_bytes, [i.name for i in inputs])

    wanted = [i.name for i in inputs]
    listing = ", ".join(f"'{n}' {i.shape_text()}" for n, i in zip(wanted, inputs, strict=True))
    unknown = [k for k in headers if k not in wanted and k not in extra_keys]
    if unknown:
        k = unknown[0]
        raise DataError(
            f"'{label}' has an array '{k}' that is not a model input.{_close(k, wanted)}",
            f"The model's inputs are: {listing}.",
        )
    missing = [n for n in wanted if n not in headers]
    if missing:
        have = ", ".join(f"'{k}'" for k in headers) or "none"
        raise DataError(
            f"'{label}' has no array for input '{missing[0]}' (arrays in the file: {have}).",
            f"Save one array per model input, named like the input: {listing}.",
        )

    bounds = _bounds(profile)
    shapes: dict[str, tuple[int, ...]] = {}
    dtypes: dict[str, str] = {}
    notes: list[str] = []
    symbols: dict[str, tuple[int, str]] = {}
    for spec in inputs:
        where = f"Input '{spec.name}' in '{label}'"
        shape, dtype = headers[spec.name]
        if math.prod(shape) == 0:
            raise DataError(f"{where} is empty (shape {list(shape)}).", "Save at least one sample.")
        if _target_dtype(dtype, spec, where) != dtype:
            notes.append(_cast_note(spec.name, dtype, spec.dtype))
        _check_dims(shape, spec, where, bounds.get(spec.name), symbols)
        shapes[spec.name], dtypes[spec.name] = shape, str(dtype)
    for key in extra_keys:
        if key in headers and key not in shapes:
            shape, dtype = headers[key]
            if dtype.kind in "OUSV" or not shape:
                raise DataError(f"Array '{key}' in '{label}' must be a numeric array with samples on axis 0.")
            shapes[key], dtypes[key] = shape, str(dtype)

    counts = {n: s[0] for n, s in shapes.items()}
    if len(set(counts.values())) > 1:
        text = ", ".join(f"'{n}': {c}" for n, c in counts.items())
        first = next(iter(counts))
        odd = next(n for n, c in counts.items() if c != counts[first])
        raise DataError(
            f"'{label}': sample counts differ across arrays ({text}); input '{odd}' does not match "
            f"'{first}'.",
            "Every array needs the same number of samples along the first axis.",
        )
    n = next(iter(counts.values())) if counts else 0
    if n < min_samples:
        if min_samples >= MIN_CALIBRATION_SAMPLES:
            raise DataError(
                f"'{label}' has {n} sample(s) for input '{wanted[0]}'; calibration needs at least "
                f"{min_samples}: ranges from so few samples describe those samples, not the data the model "
                "will see.",
                "Add more representative samples (a few hundred are typical).",
            )
        raise DataError(
            f"'{label}' has {n} sample(s) for input '{wanted[0]}'; at least {min_samples} are needed.",
            "Add more representative samples.",
        )
    return NpzHeaders(label, shapes, dtypes, n, tuple(notes))


PREVIEW_MAX_BYTES = 256 * 2**20  # arrays bigger than this are not read for a preview (the page would stall)


@dataclass(frozen=True)
class DataPreview:
    """What a page shows about a data file before it is used: one row per array (``columns``, for a DataFrame),
    the sample count, and whether the values were read (min/max/mean/std, NaN/Inf checked) or only the headers."""

    columns: dict[str, list[Any]]
    n_samples: int
    values_read: bool


def preview_npz(
    path: str | Path,
    inputs: Sequence[InputSpec],
    *,
    extra_keys: Sequence[str] = (),
    max_read_bytes: int = PREVIEW_MAX_BYTES,
) -> DataPreview:
    """A preview of ``path`` for ``inputs`` that stays cheap however big the file is: the headers are always
    checked (:func:`check_npz_headers`, same errors); the values are read and summarized only when the arrays
    hold at most ``max_read_bytes``. Bigger sets get shapes and dtypes here, and their values checked by the job
    that reads them in a worker."""
    headers = check_npz_headers(path, inputs, extra_keys=extra_keys)
    size = sum(math.prod(shape) * np.dtype(headers.dtypes[k]).itemsize for k, shape in headers.shapes.items())
    if size <= max_read_bytes:
        data = load_npz(path, inputs, extra_keys=extra_keys)
        return DataPreview(data.stats(), data.n_samples, values_read=True)
    names = list(headers.shapes)
    columns: dict[str, list[Any]] = {
        "input": names,
        "dtype": [headers.dtypes[k] for k in names],
        "shape": ["x".join(str(d) for d in headers.shapes[k]) for k in names],
        "samples": [headers.shapes[k][0] if headers.shapes[k] else 0 for k in names],
    }
    return DataPreview(columns, headers.n_samples, values_read=False)


def load_npz(
    path: str | Path,
    inputs: Sequence[InputSpec],
    *,
    profile: Mapping[str, ShapeBounds] | Any | None = None,
    min_samples: int = 1,
    extra_keys: Sequence[str] = (),
    max_bytes: int = DEFAULT_MAX_NPZ_BYTES,
) -> CalibrationData:
    """Reads ``path`` and checks it against ``inputs``; every problem is a :class:`DataError` naming the input.

    First :func:`check_npz_headers` (nothing unpacked yet), then the values: NaN/Inf, integer ranges, array
    data that do not match their header (a damaged file).
    ``profile``: per input ``(min shape, max shape)`` (or a ``spec.Profile``); non-batch dims must lie within.
    ``extra_keys``: arrays that may be present besides the inputs (e.g. ``label``), same sample count.
    """
    path = Path(path)
    label = path.name
    headers = check_npz_headers(
        path, inputs, profile=profile, min_samples=min_samples, extra_keys=extra_keys, max_bytes=max_bytes
    )
    arrays: dict[str, np.ndarray] = {}
    extras: dict[str, np.ndarray] = {}
    notes: list[str] = []
    try:
        npz = np.load(path, allow_pickle=False)
    except Exception as err:
        raise DataError(
            f"'{label}' could not be read as .npz ({err}).", "Write it with numpy.savez."
        ) from err
    with npz:
        for spec in inputs:
            where = f"Input '{spec.name}' in '{label}'"
            arr, note = _check_dtype(_read_member(npz, spec.name, headers, where), spec, where)
            if note:
                notes.append(note)
            _check_finite(arr, where)
            arrays[spec.name] = arr
        for key in headers.shapes:
            if key not in arrays:
                extras[key] = _read_member(npz, key, headers, f"Array '{key}' in '{label}'")
    for note in notes:
        log.info("%s: %s", label, note)
    return CalibrationData(arrays, source=label, notes=tuple(notes), extras=extras)


def _read_member(npz: Any, key: str, headers: NpzHeaders, where: str) -> np.ndarray:
    """One array, which must be what its header declared; a damaged member is a DataError naming it."""
    try:
        arr = npz[key]
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise DataError(
            f"{where} could not be read: its data are damaged or cut short ({err}).",
            "The header is fine but the array data are not: write the file again with numpy.savez and "
            "upload it again.",
        ) from err
    if tuple(arr.shape) != headers.shapes[key] or str(arr.dtype) != headers.dtypes[key]:
        raise DataError(
            f"{where} changed while being read (header {list(headers.shapes[key])} {headers.dtypes[key]}, "
            f"data {list(arr.shape)} {arr.dtype}).",
            "Do not overwrite calibration data while a job uses it; start the job again.",
        )
    return arr


def from_arrays(
    arrays: Mapping[str, np.ndarray],
    inputs: Sequence[InputSpec],
    source: str = "arrays",
    *,
    extras: Mapping[str, np.ndarray] | None = None,
) -> CalibrationData:
    """In-memory arrays with the same checks as :func:`load_npz` (names, rank, dims, dtype, NaN/Inf, counts)."""
    wanted = [i.name for i in inputs]
    for k in arrays:
        if k not in wanted:
            raise DataError(
                f"Array '{k}' is not a model input.{_close(k, wanted)}",
                f"The model's inputs are: {', '.join(wanted)}.",
            )
    out: dict[str, np.ndarray] = {}
    notes = []
    symbols: dict[str, tuple[int, str]] = {}
    for spec in inputs:
        where = f"Input '{spec.name}' ({source})"
        if spec.name not in arrays:
            raise DataError(
                f"No array for input '{spec.name}' ({source}).", f"Expected: {', '.join(wanted)}."
            )
        arr = np.asarray(arrays[spec.name])
        if arr.size == 0:
            raise DataError(f"{where} is empty.", "Pass at least one sample.")
        arr, note = _check_dtype(arr, spec, where)
        if note:
            notes.append(note)
        _check_shape(arr, spec, where, None, symbols)
        _check_finite(arr, where)
        out[spec.name] = arr
    counts = {n: a.shape[0] for n, a in {**out, **(extras or {})}.items()}
    if len(set(counts.values())) > 1:
        raise DataError(f"Sample counts differ across arrays ({source}): {counts}.")
    return CalibrationData(out, source=source, notes=tuple(notes), extras=dict(extras or {}))


def random_data(
    inputs: Sequence[InputSpec],
    shape_by_input: Mapping[str, Sequence[int]] | None = None,
    n: int = 64,
    seed: int = 0,
) -> CalibrationData:
    """Random samples of the right shapes, labelled ``synthetic`` (shapes only — accuracy meaningless).

    ``shape_by_input``: per-sample shape (without the batch axis) per input; inputs left out must have static
    non-batch dimensions.
    """
    if n < 1:
        raise DataError(f"Number of random samples must be at least 1, not {n}.")
    rng = np.random.default_rng(seed)
    shapes = dict(shape_by_input or {})
    arrays: dict[str, np.ndarray] = {}
    for spec in inputs:
        if spec.name in shapes:
            sample = tuple(int(d) for d in shapes[spec.name])
        elif spec.shape and all(isinstance(d, int) for d in spec.shape[1:]):
            sample = tuple(int(d) for d in spec.shape[1:])  # type: ignore[arg-type]
        else:
            raise DataError(
                f"Input '{spec.name}' is {spec.shape_text()}: random data need a concrete shape for "
                "its dynamic dimensions.",
                "Give a profile (or shapes) for this input.",
            )
        if spec.shape is not None and len(sample) != len(spec.shape) - 1:
            raise DataError(
                f"Shape {list(sample)} for input '{spec.name}' has the wrong rank: the input is "
                f"{spec.shape_text()}, so a sample has {len(spec.shape) - 1} dimension(s)."
            )
        dtype = np.dtype(spec.dtype)
        full = (n, *sample)
        if dtype.kind == "f":
            arr = rng.standard_normal(full).astype(dtype)
        elif dtype.kind == "b":
            arr = rng.integers(0, 2, full).astype(bool)
        elif dtype.kind in "iu":
            arr = rng.integers(0, 8, full).astype(dtype)
        else:
            raise DataError(f"Input '{spec.name}' has type {spec.dtype}; random data cannot be made for it.")
        arrays[spec.name] = arr
    return CalibrationData(arrays, source=f"random (seed {seed})", synthetic=True, notes=(SYNTHETIC_NOTE,))
