"""Where candidates come from: a file the user names, a finished build job, or a simulation made on the spot
(the FP16 conversion the build uses, or a Q/DQ model from :func:`workbench.quantize.quantize_qdq`)."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from ..calibration_data import CalibrationData
from ..errors import BackendUnavailable, ModelError
from ..progress import NullReporter, Reporter
from .graph import graph_fingerprint
from .runners import engines_runnable
from .spec import ENGINE, ORT_ONNX, RANDOM_CALIBRATION, SIM_FP16, SIM_QDQ, Candidate

if TYPE_CHECKING:
    from ..quantize import QuantizeResult, QuantizeSpec

log = logging.getLogger(__name__)

PLAN_SUFFIXES = (".plan", ".engine", ".trt")
FP16_MODEL = "network.onnx"  # the same name a build gives its FP16-converted network
QDQ_MODEL = "model_qdq.onnx"
RANGES = "calibration.json"


def engine_refusal(reason: str) -> BackendUnavailable:
    return BackendUnavailable(
        f"TensorRT engines cannot run on this machine: {reason}",
        "Compare an ONNX Runtime simulation instead (it is labelled as one, never as an engine result): the "
        "FP16-converted model (a build's network.onnx) or the Q/DQ model (model_qdq.onnx, or "
        "`trt-workbench quantize`).",
    )


def onnx_kind(path: str | Path) -> str:
    """``ort-qdq`` when the model has Quantize/DequantizeLinear, ``ort-fp16`` when it uses float16, else
    ``ort-onnx``."""
    fp = graph_fingerprint(path)
    if fp["qdq"]:
        return SIM_QDQ
    if fp["fp16"]:
        return SIM_FP16
    return ORT_ONNX


def candidate_from_path(path: str | Path, kind: str = "auto", *, backend: str = "") -> Candidate:
    """A candidate from a file: a plan (engine; refused with the reason where engines cannot run) or an ONNX
    model whose kind is detected from its contents unless ``kind`` says otherwise."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"Candidate '{path}' does not exist or is not a file.", "Check the path.")
    if path.suffix.lower() in PLAN_SUFFIXES or kind == ENGINE:
        ok, chosen, reason = engines_runnable(backend)
        if not ok:
            raise engine_refusal(reason)
        return Candidate(path, ENGINE, backend=chosen, source=path.name)
    detected = onnx_kind(path)
    return Candidate(path, detected if kind == "auto" else kind, source=path.name)


def simulate_fp16(
    model_path: str | Path,
    out_dir: str | Path,
    reporter: Reporter | None = None,
    *,
    keep_nodes: tuple[str, ...] | list[str] = (),
    keep_op_types: tuple[str, ...] | list[str] = (),
) -> Candidate:
    """The FP16 network exactly as a strongly typed build converts it (I/O stays FP32), as an ORT candidate;
    ``keep_nodes`` (node names) and ``keep_op_types`` stay in FP32, as a build with the same exclusions."""
    from ..build import prepare_network
    from ..spec import BuildSpec

    reporter = reporter or NullReporter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = BuildSpec(
        precision="fp16", keep_fp32_nodes=tuple(keep_nodes), keep_fp32_op_types=tuple(keep_op_types)
    )
    with warnings.catch_warnings(record=True) as caught:  # the converter warns once per clamped constant
        warnings.simplefilter("always")
        path, _ = prepare_network(Path(model_path), spec, out_dir, reporter, True)
    if caught:
        reporter.log(
            f"FP16 conversion clamped {len(caught)} constant(s) to FP16's range (e.g. {caught[0].message})."
        )
    kept = [*keep_nodes, *keep_op_types]
    return Candidate(
        path,
        SIM_FP16,
        precision="fp16",
        source="FP16 conversion made for this comparison (the build's converter"
        + (f"; kept in FP32: {', '.join(kept)})" if kept else ")"),
    )


def simulate_qdq(
    model_path: str | Path,
    out_dir: str | Path,
    calibration: CalibrationData,
    spec: QuantizeSpec,
    reporter: Reporter | None = None,
) -> tuple[Candidate, QuantizeResult]:
    """Quantizes ``model_path`` with ``spec`` (a :class:`workbench.quantize.QuantizeSpec`) into
    ``out_dir/model_qdq.onnx``; returns the candidate and the ``QuantizeResult``."""
    from ..quantize import quantize_qdq

    out_dir = Path(out_dir)
    result = quantize_qdq(
        Path(model_path), out_dir / QDQ_MODEL, calibration, spec, reporter, ranges_path=out_dir / RANGES
    )
    excluded = f", {len(result.excluded)} node(s) kept in float" if result.excluded else ""
    random = bool(calibration is not None and calibration.synthetic)
    return (
        Candidate(
            result.model_path,
            SIM_QDQ,
            source=f"{result.precision.upper()} Q/DQ model quantized for this comparison "
            f"({result.calibrator} calibrator{excluded})" + (f" — {RANDOM_CALIBRATION}" if random else ""),
            synthetic_calibration=random,
            precision=result.precision,
        ),
        result,
    )


def candidate_from_build(
    job_dir: str | Path, model_path: str | Path, *, prefer_engine: bool = True
) -> Candidate:
    """The candidate a finished build job offers: its engine where engines can run (and ``prefer_engine``),
    else the ONNX Runtime simulation of the network it built (FP16 network.onnx or Q/DQ model_qdq.onnx)."""
    from ..build import LAYERS, NETWORK, PLAN, QDQ, SPEC

    job_dir = Path(job_dir)
    try:
        spec = json.loads((job_dir / SPEC).read_text())
    except (OSError, ValueError) as err:
        raise ModelError(
            f"Build job {job_dir.name} has no readable {SPEC}.", "Pick a finished build."
        ) from err
    precision = str(spec.get("precision", "fp32"))
    backend = str(spec.get("backend", ""))
    cal = spec.get("calibration") or {}
    random = precision in ("int8", "fp8") and bool(cal.get("synthetic")) and not cal.get("ranges_path")
    random_text = f" — {RANDOM_CALIBRATION}" if random else ""
    network = next((job_dir / n for n in (QDQ, NETWORK) if (job_dir / n).is_file()), Path(model_path))
    ok, chosen, reason = engines_runnable(backend)
    if prefer_engine and ok and (job_dir / PLAN).is_file():
        return Candidate(
            job_dir / PLAN,
            ENGINE,
            network_model=network,
            layers_path=job_dir / LAYERS if (job_dir / LAYERS).is_file() else None,
            build_spec_path=job_dir / SPEC,
            backend=chosen,
            source=f"build job {job_dir.name} ({backend} {precision.upper()}){random_text}",
            synthetic_calibration=random,
            precision=precision,
        )
    if precision in ("int8", "fp8") and (job_dir / QDQ).is_file():
        kind, path = SIM_QDQ, job_dir / QDQ
    elif precision in ("fp16", "bf16") and (job_dir / NETWORK).is_file():
        kind, path = SIM_FP16, job_dir / NETWORK
    elif precision in ("int8", "fp8") and not cal:  # an explicitly quantized model, built as it is
        raise BackendUnavailable(
            f"Build job {job_dir.name} built an explicitly quantized (Q/DQ) model as it is, and its engine cannot "
            f"run here: {reason or 'engines are not preferred'}. Its ONNX Runtime simulation is the model itself, "
            "which is also the reference here, so it would be compared with itself.",
            "Compare the FP32 model it was made from against it (trt-workbench compare fp32.onnx --candidate "
            "model_qdq.onnx), or run this comparison on a machine with a supported GPU (engine against ONNX Runtime).",
        )
    else:
        why = reason or "engines are not preferred"
        raise BackendUnavailable(
            f"Build job {job_dir.name} is an {precision.upper()} build, which has no ONNX Runtime simulation (the "
            f"ONNX model itself is the FP32 reference), and its engine cannot run here: {why}",
            "Compare an FP16 or INT8 build, or run this comparison on a machine with a supported GPU.",
        )
    return Candidate(
        path,
        kind,
        source=f"build job {job_dir.name} ({backend} {precision.upper()}): the network it built, simulated in "
        "ONNX Runtime" + ("" if ok else f" because {reason[:1].lower() + reason[1:]}") + random_text,
        synthetic_calibration=random,
        precision=precision,
    )
