"""Build specs: what to build, validated before any build starts, and the equivalent command lines."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from packaging.version import InvalidVersion, Version

from .errors import SpecError
from .model import MAX_DIM, ModelSummary, Quantization, TensorDesc, describe_dims, shared_dim_names

BACKENDS = ("tensorrt-rtx", "tensorrt")
PRECISIONS = ("fp32", "tf32", "fp16", "bf16", "int8", "fp8")
CALIBRATORS = ("entropy", "minmax", "percentile")
# TensorRT <= 10's own calibrators: IInt8EntropyCalibrator2, IInt8MinMaxCalibrator, IInt8LegacyCalibrator.
IMPLICIT_CALIBRATORS = ("entropy", "minmax", "legacy")
MAX_WORKSPACE_MB = 1 << 20  # 1 TiB: anything above is a typo

Shape = tuple[int, ...]


@dataclass(frozen=True)
class ShapeRange:
    min: Shape
    opt: Shape
    max: Shape


@dataclass(frozen=True)
class Profile:
    """One optimization profile: min/opt/max shape per input (inputs with static shapes may be omitted)."""

    shapes: Mapping[str, ShapeRange]

    def to_dict(self) -> dict[str, dict[str, list[int]]]:
        return {n: {"min": list(r.min), "opt": list(r.opt), "max": list(r.max)} for n, r in self.shapes.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Mapping[str, Sequence[int]]]) -> Profile:
        try:
            return cls(
                {
                    str(n): ShapeRange(tuple(map(int, r["min"])), tuple(map(int, r["opt"])), tuple(map(int, r["max"])))
                    for n, r in data.items()
                }
            )
        except (KeyError, TypeError, ValueError) as err:
            raise SpecError(f"A profile is malformed ({err}).", "Each input needs min, opt and max shapes.") from err


@dataclass(frozen=True)
class CalibrationSpec:
    """INT8/FP8 calibration: data in the workspace, calibrator, exclusions (see workbench.quantize)."""

    data_path: str | None = None
    calibrator: str = "entropy"
    percentile: float = 99.999
    exclude_nodes: tuple[str, ...] = ()
    exclude_op_types: tuple[str, ...] = ()
    synthetic: bool = False  # random data: shapes only, accuracy meaningless
    ranges_path: str | None = None  # calibration.json of an earlier run: reuse its ranges, no recalibration
    implicit: bool = False  # full TensorRT <= 10 only: the builder's own calibrator (with a calibration cache)
    cache_path: str | None = None  # implicit: an earlier calibration cache to reuse

    @property
    def random(self) -> bool:
        """Calibrated on random data (not ranges reused from an earlier run): shapes only."""
        return self.synthetic and not self.ranges_path

    def describe(self) -> str:
        """One line for job titles and reports: the calibrator and what it calibrated on."""
        if self.ranges_path:
            return f"{self.calibrator}, ranges reused from an earlier run"
        if self.random:
            return f"{self.calibrator} on RANDOM data (shapes only — accuracy meaningless)"
        return f"{self.calibrator}" + (f" on {self.data_path.rsplit('/', 1)[-1]}" if self.data_path else "")


@dataclass(frozen=True)
class BuildSpec:
    backend: str = "tensorrt-rtx"
    precision: str = "fp32"
    profiles: tuple[Profile, ...] = ()
    workspace_mb: int | None = None
    optimization_level: int = 3
    timing_cache: bool = True
    compute_capabilities: tuple[str, ...] = ()  # TensorRT-RTX: e.g. ("8.6", "8.9"); empty = builder default
    hardware_compatible: bool = False  # full TensorRT: AMPERE_PLUS
    version_compatible: bool = False  # full TensorRT
    calibration: CalibrationSpec | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    # FP16 builds (strongly typed): ONNX node names / op types the FP16 conversion leaves in FP32
    keep_fp32_nodes: tuple[str, ...] = ()
    keep_fp32_op_types: tuple[str, ...] = ()

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["profiles"] = [p.to_dict() for p in self.profiles]
        data["extra"] = dict(self.extra)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BuildSpec:
        data = dict(data)
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise SpecError(f"Unknown build spec fields: {', '.join(sorted(unknown))}.")
        profiles = tuple(Profile.from_dict(p) for p in data.pop("profiles", []) or [])
        calib = data.pop("calibration", None)
        calibration = None
        if calib:
            calib = dict(calib)
            calib["exclude_nodes"] = tuple(calib.get("exclude_nodes", ()))
            calib["exclude_op_types"] = tuple(calib.get("exclude_op_types", ()))
            calibration = CalibrationSpec(**calib)
        data["compute_capabilities"] = tuple(data.get("compute_capabilities", ()) or ())
        for key in ("keep_fp32_nodes", "keep_fp32_op_types"):
            data[key] = tuple(data.get(key, ()) or ())
        return cls(profiles=profiles, calibration=calibration, **data)

    @classmethod
    def from_json(cls, text: str) -> BuildSpec:
        try:
            return cls.from_dict(json.loads(text))
        except (ValueError, TypeError) as err:
            raise SpecError(f"The build spec is not valid JSON ({err}).") from err

    def with_(self, **changes: Any) -> BuildSpec:
        return replace(self, **changes)

    def summary(self) -> str:
        """One line for job titles: what tells this build from another of the same model (precision, calibrator
        and its data, what is kept in float, reused ranges, profiles)."""
        prof = f"{len(self.profiles)} profile{'s' if len(self.profiles) != 1 else ''}"
        calib = ""
        if self.calibration and self.precision in ("int8", "fp8"):
            c = self.calibration
            calib = f", {c.calibrator}" + (" on RANDOM data (accuracy meaningless)" if c.random else "")
            if c.ranges_path:
                calib += ", ranges reused"
            calib += _kept("out of quantization", (*c.exclude_nodes, *c.exclude_op_types))
        elif self.precision in ("int8", "fp8"):
            calib = ", the model's own Q/DQ"
        if self.precision in ("fp16", "bf16"):
            calib = _kept("kept in FP32", (*self.keep_fp32_nodes, *self.keep_fp32_op_types))
        return f"{self.backend} · {self.precision.upper()}{calib} · {prof}"


def _kept(what: str, names: Sequence[str]) -> str:
    """", 2 out of quantization (act0, fc1)": the names while they fit, else how many."""
    if not names:
        return ""
    listed = ", ".join(names)
    return f", {len(names)} {what} ({listed})" if len(listed) <= 40 else f", {len(names)} {what}"


# ---------------------------------------------------------------------------------------------- shapes


def parse_shape(text: str, what: str = "shape") -> Shape:
    text = text.strip().strip("[]()")
    if not text:
        return ()
    parts = re.split(r"[x,\s]+", text)
    try:
        dims = tuple(int(p) for p in parts if p)
    except ValueError as err:
        raise SpecError(f"{what}: '{text}' is not a shape.", "Write shapes as 1x3x224x224.") from err
    return dims


def parse_shapes_arg(text: str) -> dict[str, Shape]:
    """Parse trtexec's ``name:AxBxC,name2:DxE`` syntax (also accepts Polygraphy's ``name:[A,B,C]``)."""
    out: dict[str, Shape] = {}
    # split on commas that are followed by "name:" — names may not contain ':'
    for item in re.split(r",(?=[^,\[\]]+:)", text.strip()):
        if not item.strip():
            continue
        name, sep, dims = item.rpartition(":")
        if not sep or not name:
            raise SpecError(f"'{item}' has no input name.", "Write NAME:1x3x224x224.")
        out[name.strip().strip("'\"")] = parse_shape(dims, f"input '{name}'")
    return out


def format_shape(shape: Iterable[int], sep: str = "x") -> str:
    return sep.join(str(d) for d in shape)


def profiles_from_args(mins: Sequence[str], opts: Sequence[str], maxs: Sequence[str]) -> tuple[Profile, ...]:
    """One profile per ``--min-shapes/--opt-shapes/--max-shapes`` group (trtexec style)."""
    if not (len(mins) == len(opts) == len(maxs)):
        raise SpecError(
            f"Got {len(mins)} --min-shapes, {len(opts)} --opt-shapes and {len(maxs)} --max-shapes.",
            "Give one of each per optimization profile.",
        )
    profiles = []
    for i, (a, b, c) in enumerate(zip(mins, opts, maxs, strict=True)):
        lo, mid, hi = parse_shapes_arg(a), parse_shapes_arg(b), parse_shapes_arg(c)
        if not (set(lo) == set(mid) == set(hi)):
            raise SpecError(
                f"Profile {i}: min, opt and max name different inputs ({sorted(lo)} / {sorted(mid)} / {sorted(hi)})."
            )
        profiles.append(Profile({n: ShapeRange(lo[n], mid[n], hi[n]) for n in lo}))
    return tuple(profiles)


def default_profile(inputs: Sequence[TensorDesc], batch: tuple[int, int, int] = (1, 1, 8)) -> Profile:
    """A proposal: static dims fixed; symbolic batch-like dims (dim 0) get ``batch``; others 16/64/128 — editable.

    Dims sharing one symbolic name get the values of the first of them (TensorRT forces them equal)."""
    shapes: dict[str, ShapeRange] = {}
    named: dict[str, tuple[int, int, int]] = {}
    for t in inputs:
        if t.shape is None or not t.dynamic_dims:
            continue
        lo, mid, hi = [], [], []
        for i, d in enumerate(t.shape):
            if isinstance(d, int):
                dims = (d, d, d)
            elif isinstance(d, str) and d in named:
                dims = named[d]
            elif i == 0:
                dims = batch
            else:
                dims = (16, 64, 128)
            if isinstance(d, str) and d:
                named.setdefault(d, dims)
            lo.append(dims[0])
            mid.append(dims[1])
            hi.append(dims[2])
        shapes[t.name] = ShapeRange(tuple(lo), tuple(mid), tuple(hi))
    return Profile(shapes)


def shared_dim_notes(inputs: Sequence[TensorDesc]) -> list[str]:
    """Why a profile proposal gives some dims equal values: one line per symbolic name several dims share."""
    return [f"{describe_dims(dims)} share the symbolic name '{name}': TensorRT treats them as one size, so their "
            "min/opt/max must be equal (the proposal gives them equal values)."
            for name, dims in shared_dim_names(inputs).items()]


def profile_args(profile: Profile) -> str:
    """A profile as the CLI's (trtexec-style) ``--min-shapes/--opt-shapes/--max-shapes`` flags."""
    return " ".join(f"--{which}-shapes " + ",".join(f"{n}:{format_shape(getattr(r, which))}"
                                                    for n, r in profile.shapes.items())
                    for which in ("min", "opt", "max"))


# ---------------------------------------------------------------------------------------------- validation


def validate_profiles(profiles: Sequence[Profile], inputs: Sequence[TensorDesc]) -> None:
    """Rank, min <= opt <= max, static dims respected, every dynamic input covered. Names the input and dim."""
    by_name = {t.name: t for t in inputs}
    dynamic = [t for t in inputs if t.is_dynamic]
    if dynamic and not profiles:
        names = ", ".join(f"'{t.name}' {t.shape_text()}" for t in dynamic)
        proposal = default_profile(inputs)
        example = f" For example: {profile_args(proposal)}" if len(proposal.shapes) == len(dynamic) else ""
        raise SpecError(f"The model has dynamic inputs ({names}) but no optimization profile was given.",
                        "Add a profile with min/opt/max shapes for each dynamic input."
                        + "".join(f" {n}" for n in shared_dim_notes(inputs)) + example)
    for pi, prof in enumerate(profiles):
        where = f"Profile {pi}"
        for name in prof.shapes:
            if name not in by_name:
                raise SpecError(f"{where}: '{name}' is not an input of the model.",
                                f"Inputs are: {', '.join(by_name) or '(none)'}.")
        for t in dynamic:
            if t.name not in prof.shapes:
                raise SpecError(f"{where}: dynamic input '{t.name}' {t.shape_text()} has no shapes.",
                                "Give min/opt/max shapes for it.")
        for name, rng in prof.shapes.items():
            t = by_name[name]
            for label, shape in (("min", rng.min), ("opt", rng.opt), ("max", rng.max)):
                if t.shape is not None and len(shape) != len(t.shape):
                    raise SpecError(f"{where}, input '{name}': {label} shape {format_shape(shape)} has rank "
                                    f"{len(shape)}, the model's input has rank {len(t.shape)} {t.shape_text()}.")
                for d, v in enumerate(shape):
                    if v < 1 or v > MAX_DIM:
                        raise SpecError(f"{where}, input '{name}', dim {d}: {label} = {v} is not a valid size.",
                                        "Dimensions must be positive.")
                    if t.shape is not None and isinstance(t.shape[d], int) and v != t.shape[d]:
                        raise SpecError(f"{where}, input '{name}', dim {d}: {label} = {v}, but the model fixes "
                                        f"this dim to {t.shape[d]}.", "Static dims cannot change.")
            for d, (a, b, c) in enumerate(zip(rng.min, rng.opt, rng.max, strict=False)):
                if not (a <= b <= c):
                    raise SpecError(f"{where}, input '{name}', dim {d}: need min <= opt <= max, got {a}, {b}, {c}.")
        _check_shared_dims(where, prof, inputs)


def _check_shared_dims(where: str, prof: Profile, inputs: Sequence[TensorDesc]) -> None:
    """Dims of one symbolic name must get equal min/opt/max: TensorRT assumes them equal and fails the build
    otherwise ("Dimensions with name ? must be equal"), or silently narrows the range to their overlap."""
    for sym, dims in shared_dim_names(inputs).items():
        present = [(n, i) for n, i in dims if n in prof.shapes and i < len(prof.shapes[n].min)]
        for which in ("min", "opt", "max"):
            values = [getattr(prof.shapes[n], which)[i] for n, i in present]
            if len(set(values)) > 1:
                got = ", ".join(f"{v} (dim {i} of '{n}')" for (n, i), v in zip(present, values, strict=True))
                raise SpecError(
                    f"{where}: {describe_dims(present)} share the symbolic name '{sym}', so TensorRT treats them "
                    f"as one size and needs equal values; the {which} shapes give {got}.",
                    "Give them the same min/opt/max values, or re-export the model with distinct names for "
                    "dimensions that really vary independently.")


def validate_spec(spec: BuildSpec, summary: ModelSummary | None = None) -> None:
    if spec.backend not in BACKENDS:
        raise SpecError(f"Unknown backend '{spec.backend}'.", f"Choose one of {', '.join(BACKENDS)}.")
    if spec.precision not in PRECISIONS:
        raise SpecError(f"Unknown precision '{spec.precision}'.", f"Choose one of {', '.join(PRECISIONS)}.")
    if spec.workspace_mb is not None and not (1 <= spec.workspace_mb <= MAX_WORKSPACE_MB):
        raise SpecError(f"Workspace limit {spec.workspace_mb} MiB is out of range (1..{MAX_WORKSPACE_MB}).",
                        "Leave it empty for the builder's default.")
    if not (0 <= spec.optimization_level <= 5):
        raise SpecError(f"Builder optimization level {spec.optimization_level} is out of range (0..5).")
    for cc in spec.compute_capabilities:
        if not re.fullmatch(r"\d{1,2}\.\d", cc):
            raise SpecError(f"Compute capability '{cc}' is not of the form 8.6.")
    if spec.compute_capabilities:
        from .backends import RTX_COMPUTE_CAPABILITIES

        if spec.backend != "tensorrt-rtx":
            raise SpecError("Target compute capabilities are a TensorRT-RTX setting.",
                            "Full TensorRT builds for the GPU it runs on; use 'hardware compatible' for Ampere+.")
        unknown = [cc for cc in spec.compute_capabilities if cc not in RTX_COMPUTE_CAPABILITIES]
        if unknown:
            raise SpecError(f"TensorRT-RTX cannot target compute capability {', '.join(unknown)}.",
                            f"Choose among {', '.join(RTX_COMPUTE_CAPABILITIES)} (9.0, H100/H200, is not supported).")
    if (spec.keep_fp32_nodes or spec.keep_fp32_op_types) and spec.precision not in ("fp16", "bf16"):
        raise SpecError(f"Keeping layers in FP32 applies to FP16 and BF16 builds, not {spec.precision.upper()}.",
                        "For INT8/FP8 keep them out of quantization instead.")
    if spec.backend != "tensorrt" and (spec.hardware_compatible or spec.version_compatible):
        which = " and ".join(n for n, on in (("hardware", spec.hardware_compatible),
                                              ("version", spec.version_compatible)) if on)
        raise SpecError(f"{which.capitalize()} compatibility is a full-TensorRT setting; {spec.backend} has none.",
                        "A TensorRT-RTX plan runs on every compute capability it was built for: choose those.")
    quantized = summary.quantization if summary is not None else None
    if quantized is not None:
        check_explicitly_quantized(spec, quantized)
    elif spec.precision in ("int8", "fp8"):
        c = spec.calibration
        if c is None or (not c.data_path and not c.synthetic and not c.ranges_path):
            raise SpecError(f"{spec.precision.upper()} needs calibration data.",
                            "Upload an .npz with one array per input, or choose random data (shapes only).")
        if c.calibrator not in CALIBRATORS and not (c.implicit and c.calibrator in IMPLICIT_CALIBRATORS):
            raise SpecError(f"Unknown calibrator '{c.calibrator}'.", f"Choose one of {', '.join(CALIBRATORS)}.")
        if c.implicit and spec.backend != "tensorrt":
            raise SpecError("Implicit calibration is a full-TensorRT (≤ 10) feature; TensorRT-RTX takes Q/DQ models.",
                            "Untick 'implicit calibrator' to calibrate with ONNX Runtime into a Q/DQ model.")
        if c.implicit and (c.calibrator not in IMPLICIT_CALIBRATORS or spec.precision != "int8"):
            raise SpecError(f"TensorRT's implicit calibrators do INT8 with {', '.join(IMPLICIT_CALIBRATORS)} only "
                            f"(asked: {spec.precision.upper()} with {c.calibrator}).",
                            "Use explicit (Q/DQ) quantization for percentile or FP8.")
    if summary is not None:
        validate_profiles(spec.profiles, summary.inputs)


def check_explicitly_quantized(spec: BuildSpec, q: Quantization) -> None:
    """A Q/DQ model carries its own scales: INT8/FP8 builds take it as it is (no calibration), FP32 and TF32 builds
    too (TensorRT still runs its Q/DQ layers quantized); calibrating it again or converting it to FP16/BF16 is
    refused, with what to do instead."""
    what = q.describe()
    if spec.calibration is not None:
        raise SpecError(f"The model is already {what}: it carries its own scales, so it is built as it is and "
                        "takes no calibration (calibration data, calibrator, ranges or exclusions).",
                        "Build it with INT8/FP8 and no calibration; to calibrate differently, quantize the FP32 "
                        "model it was made from.")
    if spec.precision in ("fp16", "bf16"):
        raise SpecError(f"The model is {what}; converting a Q/DQ model to {spec.precision.upper()} is not "
                        "supported (its scales would become an invalid ONNX model and its quantized layers change).",
                        f"Build it with {'/'.join(p.upper() for p in q.precisions) or 'INT8'}: the layers "
                        "outside the Q/DQ pairs stay in the model's float precision. For FP16 start from the FP32 "
                        "model.")
    if spec.precision in ("int8", "fp8") and q.precisions and spec.precision not in q.precisions:
        raise SpecError(f"The model is {what}, but {spec.precision.upper()} was asked for: a quantized model "
                        "builds in the precision of its own Q/DQ nodes.",
                        f"Choose {' or '.join(p.upper() for p in q.precisions)}.")


def refuse_requantizing(summary: ModelSummary) -> None:
    """Calibrating an explicitly quantized (Q/DQ) model again would quantize its Q/DQ nodes' inputs twice: refused."""
    if summary.quantization is not None:
        raise SpecError(f"'{summary.file}' is already {summary.quantization.describe()}: quantizing it again would "
                        "stack new Q/DQ nodes on its own.",
                        "Build it as it is (precision INT8/FP8, no calibration), or quantize the FP32 model it was "
                        "made from.")


# ---------------------------------------------------------------------------------------------- commands


def _poly_shapes(profile: Profile, which: str) -> list[str]:
    return [f"{n}:[{','.join(map(str, getattr(r, which)))}]" for n, r in profile.shapes.items()]


NO_TF32_SCRIPT = "no_tf32.py"
NO_TF32_SOURCE = '''"""Polygraphy config post-processing: strict FP32 on TensorRT-RTX (it enables TF32 by default)."""


def postprocess_config(builder, network, config):
    import tensorrt_rtx as trt

    config.clear_flag(trt.BuilderFlag.TF32)
'''


# TensorRT <= 10's implicit INT8 calibration writes its scales here (the job folder's and the bundle's name).
CALIBRATION_CACHE = "calibration.cache"


def strongly_typed(backend: str, version: str = "") -> bool:
    """Whether builds on ``backend`` ``version`` are strongly typed: TensorRT-RTX always, full TensorRT from 11 on
    (its FP16/INT8 builder flags are gone; precision comes from the network). An unknown version counts as <= 10."""
    if backend == "tensorrt-rtx":
        return True
    try:
        return bool(version) and Version(version) >= Version("11")
    except InvalidVersion:
        return False


def _implicit(spec: BuildSpec, strongly: bool) -> bool:
    return bool(spec.calibration and spec.calibration.implicit and not strongly and spec.precision == "int8")


def polygraphy_command(spec: BuildSpec, model: str, plan: str, backend_version: str = "") -> str:
    """The ``polygraphy convert`` line that redoes this build.

    ``model`` is the network the build parsed: for a strongly typed FP16 or INT8/FP8 build that is the FP16-converted
    or Q/DQ model (``network.onnx`` / ``model_qdq.onnx`` in the job folder and bundle), which carries the precision;
    no precision flag is then emitted. Full TensorRT <= 10 (``backend_version``) takes the builder flags instead.
    TF32 is as the workbench's build had it: TensorRT-RTX keeps it on unless the precision is strict FP32 (cleared
    by the shipped ``no_tf32.py``); Polygraphy clears it for full TensorRT unless TF32 is asked for.
    """
    strongly = strongly_typed(spec.backend, backend_version)
    parts: list[str] = []
    if spec.backend == "tensorrt-rtx":
        parts.append("POLYGRAPHY_USE_TENSORRT_RTX=1")
    parts += ["polygraphy", "convert", model, "-o", plan]
    for prof in spec.profiles:
        for which in ("min", "opt", "max"):
            shapes = _poly_shapes(prof, which)
            if shapes:
                parts += [f"--trt-{which}-shapes", *shapes]
    if spec.backend == "tensorrt" and strongly:
        parts.append("--strongly-typed")
        if spec.precision == "tf32":
            parts.append("--tf32")
    elif spec.backend == "tensorrt" and spec.precision in ("tf32", "fp16", "bf16", "int8", "fp8"):
        parts.append(f"--{spec.precision}")
        if _implicit(spec, strongly):
            parts += ["--calibration-cache", CALIBRATION_CACHE]
    if spec.backend == "tensorrt-rtx" and spec.precision == "fp32":
        # TensorRT-RTX enables TF32 by default and Polygraphy has no flag to clear it: a shipped script does.
        parts += ["--trt-config-postprocess-script", NO_TF32_SCRIPT]
    if spec.workspace_mb:
        parts += ["--pool-limit", f"workspace:{spec.workspace_mb}M"]
    parts += ["--builder-optimization-level", str(spec.optimization_level)]
    if spec.backend == "tensorrt-rtx" and spec.compute_capabilities:
        parts += ["--compute-capabilities", *spec.compute_capabilities]
    if spec.backend == "tensorrt":
        if spec.hardware_compatible:
            parts += ["--hardware-compatibility-level", "ampere_plus"]
        if spec.version_compatible:
            parts.append("--version-compatible")
    parts += ["--profiling-verbosity", "detailed"]
    return " ".join(p if "=" in p and p.startswith("POLY") else shlex.quote(p) for p in parts)


def trtexec_command(spec: BuildSpec, model: str, plan: str, backend_version: str = "") -> str:
    """The ``trtexec`` line (full TensorRT; TensorRT-RTX ships ``tensorrt_rtx`` instead), on the same network as
    :func:`polygraphy_command`: ``--stronglyTyped`` without precision flags from TensorRT 11, builder flags before.
    ``--noTF32`` unless TF32 was asked for, as Polygraphy's build clears it."""
    strongly = strongly_typed(spec.backend, backend_version)
    exe = "tensorrt_rtx" if spec.backend == "tensorrt-rtx" else "trtexec"
    parts = [exe, f"--onnx={model}", f"--saveEngine={plan}"]
    for prof in spec.profiles:
        for which in ("min", "opt", "max"):
            shapes = ",".join(f"{n}:{format_shape(getattr(r, which))}" for n, r in prof.shapes.items())
            if shapes:
                parts.append(f"--{which}Shapes={shapes}")
    if spec.backend == "tensorrt":
        if strongly:
            parts.append("--stronglyTyped")
        elif spec.precision in ("fp16", "bf16", "int8", "fp8"):
            parts.append(f"--{spec.precision}")
            if _implicit(spec, strongly):
                parts.append(f"--calib={CALIBRATION_CACHE}")
        if spec.precision != "tf32":
            parts.append("--noTF32")
        if spec.hardware_compatible:
            parts.append("--hardwareCompatibilityLevel=ampere+")
        if spec.version_compatible:
            parts.append("--versionCompatible")
    if spec.workspace_mb:
        parts.append(f"--memPoolSize=workspace:{spec.workspace_mb}M")
    parts.append(f"--builderOptimizationLevel={spec.optimization_level}")
    parts.append("--profilingVerbosity=detailed")
    return " ".join(shlex.quote(p) for p in parts)
