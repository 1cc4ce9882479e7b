"""Build a TensorRT (or TensorRT-RTX) plan from an ONNX model and a :class:`BuildSpec`, through Polygraphy.

Runs inside a worker process (see :mod:`workbench.jobs`): Polygraphy reads ``POLYGRAPHY_USE_TENSORRT_RTX`` when it is
first imported, so :func:`select_backend` must run before anything imports Polygraphy in that process.
Everything the backend logs goes to the job's log through Polygraphy's logger at EXTRA_VERBOSE, which includes the
engine's layer listing used by the fusion report.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import BackendError, BackendUnavailable, SpecError, WorkbenchError
from .progress import Cancelled, Reporter, SubReporter, check_cancel
from .spec import BuildSpec, strongly_typed, validate_spec

log = logging.getLogger(__name__)

# Artifact names inside a job folder (one convention, used by every page and the CLI).
PLAN = "engine.plan"
SPEC = "spec.json"
NETWORK = "network.onnx"  # the model actually parsed (FP16-converted or Q/DQ), when it differs from the input
QDQ = "model_qdq.onnx"
LAYERS = "layers.json"
RESULT = "result.json"
CALIB_CACHE = "calibration.cache"  # full TensorRT <= 10, implicit calibration

CUDA_DRIVER_NOTE = (
    "This machine has no CUDA driver, so TensorRT-RTX reports 'CUDA driver version is insufficient' while it builds. "
    "That is expected: the plan is compiled for the target GPUs and will run on a machine that has one."
)
_BUILD_START, _BUILD_END = 0.15, 0.95


@dataclass(frozen=True)
class BuildResult:
    plan: str
    plan_bytes: int
    build_seconds: float
    total_seconds: float
    backend: str
    backend_version: str
    network_model: str
    precision_check: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def select_backend(backend: str) -> None:
    """Make Polygraphy import the right TensorRT module in this process. Must precede any Polygraphy import."""
    import sys

    want = "1" if backend == "tensorrt-rtx" else "0"
    if "polygraphy" in sys.modules:
        from polygraphy import config

        if bool(config.USE_TENSORRT_RTX) != (want == "1"):
            raise BackendError(
                f"This process already loaded Polygraphy for the other backend; cannot switch to {backend}.",
                "Builds run in their own worker process; this is a bug if you see it.",
            )
    os.environ["POLYGRAPHY_USE_TENSORRT_RTX"] = want


class _ProgressMonitor:
    """Adapts TensorRT's IProgressMonitor (nested phases) to a 0..1 fraction, and carries cancellation."""

    def __init__(self, trt: Any, reporter: Reporter) -> None:
        outer = self

        class Monitor(trt.IProgressMonitor):
            def __init__(self) -> None:
                trt.IProgressMonitor.__init__(self)

            def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
                outer._start(phase_name, parent_phase, num_steps)

            def step_complete(self, phase_name: str, step: int) -> bool:
                return outer._step(phase_name, step)

            def phase_finish(self, phase_name: str) -> None:
                outer._finish(phase_name)

        self.monitor = Monitor()
        self._reporter = reporter
        self._phases: dict[str, list[Any]] = {}  # name -> [parent, num_steps, step]
        self._order: list[str] = []
        self._last = 0.0
        self._top_done = 0
        self.cancel_requested = False
        self.events = 0

    def _fraction(self) -> tuple[float, str]:
        frac, scale, deepest = 0.0, 1.0, ""
        # walk the chain of active phases from the outermost
        chain = [n for n in self._order if n in self._phases]
        for name in chain:
            _, n, step = self._phases[name]
            n = max(n, 1)
            frac += scale * min(step, n) / n
            scale /= n
            deepest = name
        return min(frac, 1.0), deepest

    def _emit(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last > 0.1:
            self._last = now
            f, phase = self._fraction()
            self._reporter.progress(_BUILD_START + (_BUILD_END - _BUILD_START) * f, f"Building: {phase}")

    def _start(self, name: str, parent: str | None, num_steps: int) -> None:
        self.events += 1
        self._phases[name] = [parent, num_steps, 0]
        self._order.append(name)
        self._emit(force=parent is None)

    def _step(self, name: str, step: int) -> bool:
        self.events += 1
        if name in self._phases:
            self._phases[name][2] = step + 1
        self._emit()
        if self._reporter.cancelled():
            self.cancel_requested = True
            return False
        return True

    def _finish(self, name: str) -> None:
        self.events += 1
        self._phases.pop(name, None)
        if name in self._order:
            self._order.remove(name)
        self._emit()


def _parser_error_hint(text: str) -> str:
    m = re.search(r"name:\s*([^\s]+)\s+and operator:\s*([^\s)]+)", text)
    if m:
        node, op = m.group(1), m.group(2)
        return (f"The ONNX parser rejected node '{node}' (op {op}). If {op} is a custom op, the build needs a "
                f"TensorRT plugin for it; otherwise try a newer opset export, or replace the op.")
    return "See the build log for the parser's messages."


def _parser_rejection(network_path: Path, backend: str, text: str, issues: Sequence[Any] | None = None,
                      converted: str = "") -> BackendError:
    """The parser's own errors, node by node (parsed again to get them as objects, not log text, unless given).

    A :class:`BackendError` (CLI exit 1): the backend ran and refused the model; the message names the node and op.
    """
    from .backend_log import quote, quoted_errors
    from .parse_check import parse_model

    backend_lines: tuple[str, ...] = ()
    if issues is None:
        try:
            parsed = parse_model(network_path, backend)
            issues, backend_lines = parsed.issues, parsed.log
        except Exception as err:  # the re-parse is only for a better message
            log.debug("re-parse for the error message failed: %s", err)
            issues = ()
    if not issues:
        errors = quoted_errors([ln[4:] for ln in backend_lines if ln.startswith("[E] ")])
        if errors:
            return BackendError(f"{backend} could not parse the model:\n{quote(errors)}", _parser_error_hint(text))
        return BackendError(f"{backend} could not parse the model: {text}", _parser_error_hint(text))
    first = issues[0]
    more = f" (and {len(issues) - 1} more: " + ", ".join(f"'{i.node}'" for i in issues[1:6]) + ")" \
        if len(issues) > 1 else ""
    hint = _parser_error_hint(f"name: {first.node} and operator: {first.op}")
    if converted:  # the parser saw the FP16/BF16 network the workbench wrote: that node may just need FP32
        from .half_precision import keep_hint

        hint = f"That node is in the {converted} network the workbench converted ({network_path.name})" \
            + _input_types_text(network_path, first.node) + ". " + keep_hint(first.node)
    return BackendError(
        f"{backend}'s ONNX parser rejected node '{first.node}' (op {first.op}){more}: {first.message}", hint)


def _input_types_text(network_path: Path, node: str) -> str:
    """", its inputs there: 'a' (float16), 'b' (float32)" for a node of a converted network ("" if unknown)."""
    try:
        import onnx

        from .network_types import input_types

        types = input_types(onnx.load(str(network_path), load_external_data=False), node)
    except Exception as err:  # only for a better message
        log.debug("no input types for %s: %s", node, err)
        return ""
    return (", its inputs there: " + ", ".join(f"'{n}' ({t})" for n, t in types)) if types else ""


def _save_network(model: Any, out: Path) -> None:
    """Save a converted network; over 1 GiB its weights go to ``<name>.data`` beside it (protobuf's 2 GiB limit),
    a fixed name the bundle and the equivalent commands carry along."""
    import onnx

    external = model.ByteSize() > (1 << 30)
    onnx.save(model, str(out), save_as_external_data=external, all_tensors_to_one_file=True,
              location=f"{out.name}.data" if external else None)


def _parse_before_preparing(model_path: Path, spec: BuildSpec, reporter: Reporter) -> None:
    """Fail fast on a node the parser rejects (a custom op, an unsupported one) before converting or calibrating
    the model, which can take minutes and would fail later in ONNX Runtime or on the converted graph's names."""
    from .parse_check import parse_model

    reporter.progress(0.02, "Checking the model with the parser")
    result = parse_model(model_path, spec.backend)
    if result.issues:
        raise _parser_rejection(model_path, spec.backend, result.issues[0].message, result.issues)
    check_cancel(reporter)


def _fp32_keep_lists(model: Any, spec: BuildSpec) -> tuple[list[str], list[str]]:
    """The spec's "keep in FP32" node names and op types, checked against the model (an unknown name is a
    SpecError naming the close matches: a typo would otherwise silently convert the node)."""
    import difflib

    from .network_types import all_nodes

    nodes = list(all_nodes(model.graph))  # If/Loop/Scan bodies too
    names = {n.name for n in nodes if n.name}
    ops = {n.op_type for n in nodes}
    for what, wanted, have in (("node", spec.keep_fp32_nodes, names), ("op type", spec.keep_fp32_op_types, ops)):
        for w in wanted:
            if w not in have:
                near = difflib.get_close_matches(w, sorted(have), n=3, cutoff=0.5)
                raise SpecError(f"The model has no {what} '{w}' to keep in FP32"
                                + (f" (close: {', '.join(near)})." if near else "."),
                                "Take the names from the Accuracy page's culprit finder or the model's graph.")
    return list(spec.keep_fp32_nodes), list(spec.keep_fp32_op_types)


def prepare_network(model_path: Path, spec: BuildSpec, out_dir: Path, reporter: Reporter,
                    strongly_typed: bool) -> tuple[Path, list[str]]:
    """The ONNX model the backend will parse: the input, an FP16 conversion, or a Q/DQ model."""
    notes: list[str] = []
    if spec.precision in ("fp16", "bf16") and strongly_typed:
        return _half_network(model_path, spec, out_dir, reporter)
    if spec.precision in ("int8", "fp8"):
        if spec.calibration is None:  # validate_spec allows it for an explicitly quantized (Q/DQ) model only
            notes.append(f"{spec.precision.upper()} from the model's own Q/DQ nodes: an explicitly quantized model "
                         "is built as it is, with its own scales (no calibration).")
            reporter.log("The model is explicitly quantized (Q/DQ): building it as it is, no calibration.")
            return model_path, notes
        if spec.calibration is not None and spec.calibration.implicit and not strongly_typed:
            notes.append(f"INT8 with TensorRT's implicit {spec.calibration.calibrator} calibrator "
                         f"(calibration cache: {CALIB_CACHE}).")
            return model_path, notes
        return _quantized_network(model_path, spec, out_dir, reporter), notes
    return model_path, notes


def _half_network(model_path: Path, spec: BuildSpec, out_dir: Path, reporter: Reporter) -> tuple[Path, list[str]]:
    """Convert to FP16/BF16 (:mod:`workbench.half_precision`), save, and check the result before any build."""
    import onnx

    from .half_precision import check_network, convert_network, summary_lines

    kind = spec.precision.upper()
    notes: list[str] = []
    reporter.log(f"Converting float tensors to {kind} for a strongly typed build (I/O kept FP32).")
    reporter.progress(0.05, f"Converting to {kind}")
    model = onnx.load(str(model_path))
    keep_nodes, keep_ops = _fp32_keep_lists(model, spec)
    if keep_nodes or keep_ops:
        reporter.log(f"Kept in FP32: {', '.join([*keep_nodes, *keep_ops])}.")
        notes.append(f"Kept in FP32 by request: {len(keep_nodes)} node(s), op types {keep_ops or 'none'}.")
    conversion = convert_network(model, spec.precision, keep_nodes, keep_ops)
    del model
    for line in summary_lines(conversion):
        reporter.log(line)
    out = out_dir / NETWORK
    _save_network(conversion.model, out)
    del conversion
    check_cancel(reporter)
    reporter.progress(0.08, f"Checking the {kind} network")
    shapes = {name: rng.min for name, rng in spec.profiles[0].shapes.items()} if spec.profiles else {}
    for line in check_network(out, spec.precision, shapes, reference=model_path).lines:
        reporter.log(line)
    notes.append(f"{kind} by converting the ONNX model's float tensors (strongly typed build); I/O stays FP32.")
    return out, notes


_IMPLICIT_BASES = {"entropy": "IInt8EntropyCalibrator2", "minmax": "IInt8MinMaxCalibrator",
                   "legacy": "IInt8LegacyCalibrator"}


def _implicit_calibrator(trt: Any, model_path: Path, spec: BuildSpec, out_dir: Path) -> Any:
    """Polygraphy's Calibrator over the user's data, for TensorRT <= 10's implicit INT8 (GPU machines)."""
    from polygraphy.backend.trt import Calibrator

    from . import calibration_data

    calib = spec.calibration
    assert calib is not None
    cache = out_dir / CALIB_CACHE
    if calib.cache_path:
        cache.write_bytes(Path(calib.cache_path).read_bytes())  # reuse: TensorRT reads it and skips calibration
    inputs = calibration_data.model_inputs(model_path)
    data = calibration_data.load_npz(Path(calib.data_path or ""), inputs)

    def batches() -> Any:
        for batch in data.batches(16):
            yield dict(batch)

    return Calibrator(batches(), cache=str(cache), BaseClass=getattr(trt, _IMPLICIT_BASES[calib.calibrator]))


def _timing_cache_path(version: str) -> Path:
    """One timing cache per GPU model and TensorRT version, shared by the workspace's builds."""
    from .backends import gpu_info
    from .workspace import Workspace

    gpu = gpu_info()
    tag = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{gpu.name or 'gpu'}-sm{gpu.compute_capability or ''}-trt{version}")
    folder = Workspace.default().root / "timing-caches"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{tag}.cache"


def _quantized_network(model_path: Path, spec: BuildSpec, out_dir: Path, reporter: Reporter) -> Path:
    from . import calibration_data, quantize

    calib = spec.calibration
    assert calib is not None  # validate_spec guarantees it
    inputs = calibration_data.model_inputs(model_path)
    data: calibration_data.CalibrationData | None
    if calib.ranges_path:
        reporter.log(f"Reusing the calibration ranges in {Path(calib.ranges_path).name}: no recalibration.")
        data = None
    elif calib.synthetic:
        reporter.log("Calibrating on RANDOM data: shapes only, accuracy meaningless.", logging.WARNING)
        shapes = {}
        prof = spec.profiles[0] if spec.profiles else None
        for t in inputs:
            if prof and t.name in prof.shapes:
                shapes[t.name] = tuple(prof.shapes[t.name].opt[1:])
            else:
                shapes[t.name] = tuple(int(d) for d in (t.shape or ())[1:])  # type: ignore[arg-type]  # static here
        data = calibration_data.random_data(inputs, shapes, n=64, seed=0)
    else:
        data = calibration_data.load_npz(Path(calib.data_path or ""), inputs)
    qspec = quantize.QuantizeSpec(
        calibrator=calib.calibrator, percentile=calib.percentile, precision=spec.precision,
        exclude_nodes=tuple(calib.exclude_nodes), exclude_op_types=tuple(calib.exclude_op_types),
    )
    out = out_dir / QDQ
    result = quantize.quantize_qdq(model_path, out, data, qspec, reporter=SubReporter(reporter, 0.02, _BUILD_START),
                                   reuse_ranges=calib.ranges_path)
    for w in result.warnings:
        reporter.log(w, logging.WARNING)
    reporter.log(f"Quantized {result.n_quantized_nodes} nodes with the {result.calibrator} calibrator on "
                 f"{result.n_samples} samples" + (f", {result.batches}" if result.batches else "") + ".")
    return out


def polygraphy_profiles(spec: BuildSpec) -> list[Any]:
    """The spec's optimization profiles as Polygraphy ``Profile`` objects (import Polygraphy after select_backend)."""
    from polygraphy.backend.trt import Profile as PolyProfile

    profiles = []
    for prof in spec.profiles:
        pp = PolyProfile()
        for name, rng in prof.shapes.items():
            pp.add(name, min=list(rng.min), opt=list(rng.opt), max=list(rng.max))
        profiles.append(pp)
    return profiles


def builder_config(spec: BuildSpec, trt: Any, strongly: bool, **extra: Any) -> Any:
    """Polygraphy's builder config for ``spec`` (``trt``: the imported backend module): profiles, precision
    flags (weakly typed builds only), optimization level, memory pool, compatibility, target compute
    capabilities and the TF32 setting. One place, so an engine rebuilt for a per-layer comparison is built as
    the deployed one was. ``extra`` (progress monitor, timing cache, calibrator) goes to the config as it is."""
    from polygraphy.backend.trt import CreateConfig, PostprocessConfig

    kwargs: dict[str, Any] = dict(
        profiles=polygraphy_profiles(spec) or None,
        profiling_verbosity=trt.ProfilingVerbosity.DETAILED,
        builder_optimization_level=spec.optimization_level,
        **extra,
    )
    if spec.workspace_mb:
        kwargs["memory_pool_limits"] = {trt.MemoryPoolType.WORKSPACE: spec.workspace_mb << 20}
    if spec.precision == "tf32" and spec.backend == "tensorrt":
        kwargs["tf32"] = True
    if not strongly and spec.precision in ("fp16", "bf16", "int8", "fp8"):
        kwargs[spec.precision] = True
    if spec.backend == "tensorrt" and spec.hardware_compatible:
        kwargs["hardware_compatibility_level"] = trt.HardwareCompatibilityLevel.AMPERE_PLUS
    if spec.backend == "tensorrt" and spec.version_compatible:
        kwargs["version_compatible"] = True
    config: Any
    if spec.backend == "tensorrt-rtx":
        from polygraphy.backend.tensorrt_rtx.config import CreateConfigRTX

        caps = [tuple(int(x) for x in cc.split(".")) for cc in spec.compute_capabilities] or None
        config = CreateConfigRTX(compute_capabilities=caps, **kwargs)
    else:
        config = CreateConfig(**kwargs)
    if spec.backend == "tensorrt-rtx" and spec.precision == "fp32":
        # TensorRT-RTX enables TF32 by default; FP32 means strict FP32 math (trtexec's --noTF32).
        config = PostprocessConfig(config, func=lambda builder, network, cfg: cfg.clear_flag(trt.BuilderFlag.TF32))
    return config


def build_engine(model_path: Path, spec: BuildSpec, out_dir: Path, reporter: Reporter,
                 layer_parser: Callable[[Path], Any] | None = None) -> BuildResult:
    """Build ``model_path`` per ``spec`` into ``out_dir/engine.plan``. Call :func:`select_backend` first.

    Raises SpecError/BackendUnavailable for bad requests, BackendError when the backend fails, Cancelled on cancel.
    """
    from . import model as model_mod

    t0 = time.monotonic()
    summary = model_mod.stored_summary(model_path, keep=False)  # the submit's own summary: no onnx import
    validate_spec(spec, summary)
    (out_dir / SPEC).write_text(spec.to_json())

    from polygraphy import config as poly_config
    from polygraphy.logger import G_LOGGER

    if bool(poly_config.USE_TENSORRT_RTX) != (spec.backend == "tensorrt-rtx"):
        raise BackendError(f"This worker was started for the other backend; cannot build with {spec.backend}.")
    G_LOGGER.module_severity = G_LOGGER.EXTRA_VERBOSE
    G_LOGGER.colors = False  # the log is a file: no ANSI codes, no "'colored' module is not installed" line
    try:
        from polygraphy.mod.trt_importer import lazy_import_trt

        trt = lazy_import_trt()
        version = trt.__version__
    except Exception as err:  # ImportError or Polygraphy's own wrapper
        raise BackendUnavailable(f"{spec.backend} could not be imported in the build worker: {err}") from err
    strongly = strongly_typed(spec.backend, version)
    reporter.log(f"Backend {spec.backend} {version} ({'strongly' if strongly else 'weakly'} typed).")

    if spec.precision in ("fp16", "bf16", "int8", "fp8"):
        _parse_before_preparing(model_path, spec, reporter)
    network_path, notes = prepare_network(model_path, spec, out_dir, reporter, strongly)
    if summary.quantization is not None and strongly and spec.precision not in ("int8", "fp8"):
        notes.append(f"The model is {summary.quantization.describe()}: TensorRT runs its Q/DQ layers quantized "
                     f"whatever the precision chosen; build it as "
                     f"{'/'.join(q.upper() for q in summary.quantization.precisions) or 'INT8'}"
                     " to have the report check that precision.")
    check_cancel(reporter)

    from polygraphy.backend.trt import EngineBytesFromNetwork, NetworkFromOnnxPath
    from polygraphy.exception import PolygraphyException

    monitor = _ProgressMonitor(trt, reporter)
    extra: dict[str, Any] = {"progress_monitor": monitor.monitor}
    timing_cache = None
    if spec.backend == "tensorrt" and spec.timing_cache:
        timing_cache = _timing_cache_path(version)
        extra["load_timing_cache"] = str(timing_cache) if timing_cache.is_file() else None
        notes.append(f"Timing cache: {timing_cache.name} (reused by later builds on this GPU and version).")
    if spec.backend == "tensorrt" and spec.calibration is not None and spec.calibration.implicit:
        if strongly:
            raise SpecError(f"TensorRT {version} removed implicit calibration.",
                            "Untick 'implicit calibrator': the workbench then writes a Q/DQ model instead.")
        extra["calibrator"] = _implicit_calibrator(trt, model_path, spec, out_dir)
    config = builder_config(spec, trt, strongly, **extra)
    if spec.backend == "tensorrt-rtx" and spec.precision == "fp32":
        notes.append("FP32: TF32 math disabled (TensorRT-RTX enables it by default; choose TF32 to allow it).")

    from .backend_log import quote, quoted_errors, records

    recorded = records(trt)  # the builder's own error lines, to quote when it fails
    errors_before = len(recorded.errors)
    network = NetworkFromOnnxPath(str(network_path), strongly_typed=strongly if spec.backend == "tensorrt" else True)
    reporter.progress(0.1, "Parsing ONNX")
    build_start = time.monotonic()
    try:
        engine_bytes = EngineBytesFromNetwork(network, config=config,
                                              save_timing_cache=str(timing_cache) if timing_cache else None)()
    except PolygraphyException as err:
        if monitor.cancel_requested or reporter.cancelled():
            raise Cancelled("Build cancelled by the user.") from err
        text = str(err)
        if "parse" in text.lower() or "ONNX" in text:
            converted = spec.precision.upper() if spec.precision in ("fp16", "bf16") and network_path != model_path \
                else ""
            raise _parser_rejection(network_path, spec.backend, text, converted=converted) from err
        errors = quoted_errors(recorded.errors[errors_before:])
        if errors:  # Polygraphy only says "Invalid Engine": the builder's own lines say why
            raise BackendError(f"{spec.backend} failed to build the engine:\n{quote(errors)}",
                               "Those are the builder's own error lines; the whole build log is in the job log."
                               ) from err
        raise BackendError(f"{spec.backend} failed to build the engine: {text}",
                           "See the build log for the builder's own messages.") from err
    build_seconds = time.monotonic() - build_start
    if monitor.cancel_requested:
        raise Cancelled("Build cancelled by the user.")

    reporter.progress(_BUILD_END, "Saving plan")
    plan_path = out_dir / PLAN
    _write_atomic(plan_path, engine_bytes)
    del engine_bytes

    warnings: list[str] = []
    precision_check: dict[str, Any] = {}
    if layer_parser is not None:
        try:
            precision_check = layer_parser(out_dir)
            warnings += precision_check.get("warnings", [])
        except WorkbenchError as err:
            warnings.append(f"Layer information unavailable: {err.message}")
    if spec.backend == "tensorrt-rtx" and not _gpu_present():
        notes.append(CUDA_DRIVER_NOTE)
    result = BuildResult(
        plan=PLAN, plan_bytes=plan_path.stat().st_size, build_seconds=build_seconds,
        total_seconds=time.monotonic() - t0, backend=spec.backend, backend_version=version,
        network_model=network_path.name if network_path != model_path else "", precision_check=precision_check,
        warnings=tuple(warnings), notes=tuple(notes),
    )
    (out_dir / RESULT).write_text(json.dumps(result.to_dict(), indent=2))
    reporter.progress(1.0, "Done")
    return result


def _gpu_present() -> bool:
    from .backends import gpu_info

    return gpu_info().present


def _write_atomic(path: Path, data: Any) -> None:
    """Write to a temp name and rename: a failed write (disk full) never leaves a half plan behind."""
    tmp = path.with_name(path.name + ".part")
    try:
        with open(tmp, "wb") as fh:
            fh.write(memoryview(data))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise WorkbenchError(f"Could not write the plan ({err.strerror}); nothing was saved.",
                             "Free disk space in the workspace and build again.") from err


def check_spec_for_backend(spec: BuildSpec) -> None:
    """Refuse precisions the installed backend cannot do, with the reason (used before submitting)."""
    from .backends import require_backend

    info = require_backend(spec.backend)
    ok, why = info.precisions.get(spec.precision, (False, "unknown precision"))
    if not ok:
        raise SpecError(f"{info.label} cannot build {spec.precision.upper()} here: {why}")
    if (spec.keep_fp32_nodes or spec.keep_fp32_op_types) and not info.strongly_typed_only:
        raise SpecError(f"Keeping layers in FP32 works by converting the model around them, which only strongly "
                        f"typed builds use; {info.label} {info.version} builds {spec.precision.upper()} with builder "
                        "flags.", "Build with TensorRT-RTX, or leave the FP32 list empty.")
