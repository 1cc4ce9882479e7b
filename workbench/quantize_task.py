"""Quantization and calibrator scoring as jobs (run in the worker, like builds): the Q/DQ model, its ranges and
the scores are job artifacts, reusable by later builds without recalibrating."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import SpecError
from .jobs import Job
from .progress import Reporter

if TYPE_CHECKING:
    from .calibration_data import InputSpec

log = logging.getLogger(__name__)

QDQ_MODEL = "model_qdq.onnx"
RANGES = "calibration.json"
SCORES = "calibrator_scores.json"


@dataclass(frozen=True)
class QuantizeRequest:
    """What the Quantize page or CLI asks for: data, calibrator settings, exclusions."""

    data_path: str | None = None
    calibrator: str = "entropy"
    percentile: float = 99.999
    precision: str = "int8"
    exclude_nodes: tuple[str, ...] = ()
    exclude_op_types: tuple[str, ...] = ()
    synthetic: bool = False  # random data: shapes only, accuracy meaningless
    reuse_ranges: str | None = None
    test_data_path: str | None = None  # scoring: held-out data (with a 'label' array for top-1 accuracy)
    calibrators: tuple[str, ...] = field(default_factory=tuple)  # scoring: which calibrators

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> QuantizeRequest:
        d = dict(d)
        for k in ("exclude_nodes", "exclude_op_types", "calibrators"):
            d[k] = tuple(d.get(k) or ())
        return cls(**d)

    def quantize_spec(self) -> Any:
        from .quantize import QuantizeSpec

        return QuantizeSpec(
            calibrator=self.calibrator,
            percentile=self.percentile,
            precision=self.precision,
            exclude_nodes=self.exclude_nodes,
            exclude_op_types=self.exclude_op_types,
        )


def load_data(model_path: Path, req: QuantizeRequest, reporter: Reporter | None = None) -> Any:
    """The calibration data a request names (checked against the model), or random data when asked for."""
    from . import calibration_data

    inputs = calibration_data.model_inputs(model_path)
    if req.synthetic:
        if reporter:
            reporter.log("Calibrating on RANDOM data: shapes only, accuracy meaningless.", logging.WARNING)
        return calibration_data.random_data(inputs, n=64, seed=0)
    if not req.data_path:
        raise SpecError(
            "Quantization needs calibration data.",
            "Give an .npz with one array per model input, or choose random data (shapes only).",
        )
    return calibration_data.load_npz(
        Path(req.data_path),
        inputs,
        extra_keys=("label",),
        min_samples=calibration_data.MIN_CALIBRATION_SAMPLES,
    )


def check_data(inputs: Sequence[InputSpec], req: QuantizeRequest) -> None:
    """What :func:`load_data` (and scoring's test data) will find wrong, as far as it is cheap to know before a job
    is queued: the .npz headers (names, shapes, dtypes, sample counts) against the model's ``inputs``; no array is
    read. NaN/Inf, out-of-range integers and damaged array data are found by the job, which then fails naming the
    file and input. Raises SpecError/DataError."""
    from . import calibration_data

    req.quantize_spec()  # validates calibrator, precision, percentile, exclusions
    if req.synthetic:
        # one sample: refuses inputs without concrete shapes, as the job's 64 would be
        calibration_data.random_data(inputs, n=1, seed=0)
    elif not req.data_path:
        raise SpecError(
            "Quantization needs calibration data.",
            "Give an .npz with one array per model input, or choose random data (shapes only).",
        )
    else:
        calibration_data.check_npz_headers(
            Path(req.data_path),
            inputs,
            extra_keys=("label",),
            min_samples=calibration_data.MIN_CALIBRATION_SAMPLES,
        )
    if req.test_data_path:
        calibration_data.check_npz_headers(Path(req.test_data_path), inputs, extra_keys=("label",))


def run_quantize(job: Job, job_dir: Path, reporter: Reporter) -> dict[str, Any]:
    from .quantize import qdq_summary, quantize_qdq

    req = QuantizeRequest.from_dict(job.payload["request"])
    model_path = Path(job.payload["model_path"])
    data = None if req.reuse_ranges else load_data(model_path, req, reporter)
    result = quantize_qdq(
        model_path,
        job_dir / QDQ_MODEL,
        data,
        req.quantize_spec(),
        reporter,
        reuse_ranges=req.reuse_ranges,
        ranges_path=job_dir / RANGES,
    )
    qs = qdq_summary(result.model_path)
    reporter.log(
        f"Q/DQ model written: {qs.n_quantize} QuantizeLinear, {qs.n_dequantize} DequantizeLinear, "
        f"{result.n_quantized_nodes} nodes quantized, {len(result.excluded)} kept in float."
    )
    out = result.to_dict()
    out["synthetic"] = bool(data is not None and getattr(data, "synthetic", False))
    return json.loads(json.dumps(out, default=str))


def run_score(job: Job, job_dir: Path, reporter: Reporter) -> dict[str, Any]:
    from . import calibration_data
    from .quantize import CALIBRATORS, score_calibrators

    req = QuantizeRequest.from_dict(job.payload["request"])
    model_path = Path(job.payload["model_path"])
    calib = load_data(model_path, req, reporter)
    inputs = calibration_data.model_inputs(model_path)
    test = (
        calibration_data.load_npz(Path(req.test_data_path), inputs, extra_keys=("label",))
        if req.test_data_path
        else calib
    )
    if not req.test_data_path:
        reporter.log(
            "No held-out test data: the calibrators are scored on the calibration data itself, which flatters "
            "them (each saw these samples).",
            logging.WARNING,
        )
    labels = test.extras.get("label")
    if labels is None:
        reporter.log("No 'label' array in the test data: scoring by output error only (no top-1 accuracy).")
    frame = score_calibrators(
        model_path,
        calib,
        test,
        labels,
        req.calibrators or CALIBRATORS,
        spec=req.quantize_spec(),
        reporter=reporter,
    )
    (job_dir / SCORES).write_text(frame.to_json(orient="records"))
    best = frame.sort_values(["accuracy_delta_pp", "max_abs_err"], ascending=[False, True]).iloc[0]
    return {
        "rows": len(frame),
        "best": str(best["calibrator"]),
        "labelled": labels is not None,
        "held_out": bool(req.test_data_path),
        "scored_on": re.sub(r"^[0-9a-f]{24}-", "", Path(req.test_data_path).name)  # the user's name for it
        if req.test_data_path else "the calibration data",
        "n_scored": int(test.n_samples),  # every sample of the data: said on the page beside the scores
        "synthetic": bool(calib.synthetic),
    }
