"""Comparisons as jobs (kind ``"compare"``): the request a page or the CLI submits, and the task the worker runs.

The worker writes the artifacts of :mod:`.comparison` into the job folder; a re-quantization request
(``source="requantize"``) also writes ``model_qdq.onnx``, ``calibration.json`` and ``before_after.json``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import JobError, SpecError
from ..jobs import SUCCEEDED, Job
from ..progress import Reporter
from .spec import CompareSpec

log = logging.getLogger(__name__)

KIND = "compare"
SOURCES = ("file", "build", "fp16", "int8", "fp8", "requantize", "reconvert")
SOURCE_LABELS = {
    "file": "an uploaded ONNX model (FP16 or Q/DQ)",
    "build": "a finished build",
    "fp16": "FP16 simulation (convert now)",
    "int8": "INT8 Q/DQ simulation (quantize now)",
    "fp8": "FP8 Q/DQ simulation (quantize now)",
    "requantize": "re-quantized with culprits kept in float",
    "reconvert": "FP16 again with culprits kept in FP32",
}
QUANTIZED_SOURCES = ("int8", "fp8", "requantize")  # the sources that calibrate (need data or calib_random)


@dataclass(frozen=True)
class CompareRequest:
    """What to compare against the model's FP32 reference, on which data, how.

    ``source``: ``file`` (``candidate_path``), ``build`` (``build_job``), ``fp16``/``int8``/``fp8`` (made in the
    job: an FP16 conversion keeping ``exclude_nodes``/``exclude_op_types`` in FP32, or a Q/DQ model calibrated on
    ``calib_path``), ``requantize`` (the Q/DQ model of ``before_job`` quantized again with ``exclude_more`` kept in
    float) or ``reconvert`` (the FP16 conversion of ``before_job`` again with ``exclude_more`` kept in FP32).
    Calibrating sources need ``calib_path`` or an explicit ``calib_random`` (shapes only — accuracy
    meaningless): no data is never taken to mean random. ``data_path``: comparison data (.npz, a ``label`` array
    enables the task metric); None means random data of ``random_shapes`` (shapes only).
    """

    source: str
    spec: CompareSpec = field(default_factory=CompareSpec)
    candidate_path: str | None = None
    candidate_kind: str = "auto"
    build_job: str | None = None
    prefer_engine: bool = True
    data_path: str | None = None
    random_shapes: dict[str, list[int]] = field(default_factory=dict)
    n_random: int = 32
    calib_path: str | None = None
    calib_random: bool = False  # calibrate on random data, asked for explicitly
    calibrator: str = "entropy"
    percentile: float = 99.999
    exclude_nodes: tuple[str, ...] = ()
    exclude_op_types: tuple[str, ...] = ()
    precision: str = ""  # int8 or fp8 for the Q/DQ sources; "" means fp8 for source "fp8", else int8
    before_job: str | None = None
    exclude_more: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise SpecError(
                f"Unknown candidate source '{self.source}'.", f"Choose one of {', '.join(SOURCES)}."
            )
        for k in ("exclude_nodes", "exclude_op_types", "exclude_more"):
            object.__setattr__(self, k, tuple(getattr(self, k)))
        need = {
            "file": "candidate_path",
            "build": "build_job",
            "requantize": "before_job",
            "reconvert": "before_job",
        }.get(self.source)
        if need and not getattr(self, need):
            raise SpecError(f"A '{self.source}' comparison needs {need}.")
        if self.source in ("requantize", "reconvert") and not self.exclude_more:
            raise SpecError(
                "Comparing again needs the nodes to keep in higher precision.",
                "Take them from the culprit finder's proposal.",
            )
        if self.source in QUANTIZED_SOURCES and not self.calib_path and not self.calib_random:
            raise SpecError(
                f"The {(self.precision or ('fp8' if self.source == 'fp8' else 'int8')).upper()} simulation needs calibration data, and none was given.",
                "Upload a calibration .npz (one array per model input), use the sample's calibration set, or "
                "choose random calibration explicitly (shapes only — accuracy meaningless).",
            )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["spec"] = self.spec.to_dict()
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CompareRequest:
        d = {k: v for k, v in dict(data).items() if k in cls.__dataclass_fields__}
        d["spec"] = CompareSpec.from_dict(d.get("spec") or {})
        if "calib_random" not in d and d.get("source") in QUANTIZED_SOURCES and not d.get("calib_path"):
            d["calib_random"] = True  # saved before calib_random existed: no data meant random then
        return cls(**d)

    def quantize_spec(self) -> Any:
        from ..quantize import QuantizeSpec

        return QuantizeSpec(
            calibrator=self.calibrator,
            percentile=self.percentile,
            precision=self.precision or ("fp8" if self.source == "fp8" else "int8"),
            exclude_nodes=self.exclude_nodes,
            exclude_op_types=self.exclude_op_types,
        )


def _other_job(job_dir: Path, job_id: str) -> Path:
    from ..jobs import JobStore
    from ..workspace import Workspace

    return JobStore(Workspace.at(job_dir.parent.parent)).job_dir(job_id)


def _calibration(model: Path, req: CompareRequest, reporter: Reporter) -> Any:
    from ..calibration_data import MIN_CALIBRATION_SAMPLES, load_npz, model_inputs, random_data

    inputs = model_inputs(model)
    if req.calib_path:
        return load_npz(
            Path(req.calib_path), inputs, extra_keys=("label",), min_samples=MIN_CALIBRATION_SAMPLES
        )
    if not req.calib_random:
        raise SpecError("No calibration data was given.", "Upload a calibration .npz, or choose random data.")
    reporter.log(
        "Calibrating on RANDOM data (asked for): shapes only, accuracy meaningless.", logging.WARNING
    )
    return random_data(inputs, req.random_shapes or None, n=64, seed=0)


def _candidate(req: CompareRequest, model: Path, job_dir: Path, reporter: Reporter) -> Any:
    from .candidates import candidate_from_build, candidate_from_path, simulate_fp16, simulate_qdq

    if req.source == "file":
        return candidate_from_path(str(req.candidate_path), req.candidate_kind)
    if req.source == "build":
        return candidate_from_build(
            _other_job(job_dir, str(req.build_job)), model, prefer_engine=req.prefer_engine
        )
    if req.source == "fp16":
        reporter.log("Converting the model to FP16 (the build's converter; I/O stays FP32).")
        return simulate_fp16(
            model, job_dir, reporter, keep_nodes=req.exclude_nodes, keep_op_types=req.exclude_op_types
        )
    calib = _calibration(model, req, reporter)
    candidate, _ = simulate_qdq(model, job_dir, calib, req.quantize_spec(), reporter)
    return candidate  # qres.warnings were logged as they came


def run_compare(job: Job, job_dir: Path, reporter: Reporter) -> dict[str, Any]:
    """The ``compare`` task (register it in ``workbench.tasks.TASKS``): runs the request in the worker and
    returns a small summary; the full result is ``comparison.json`` in the job folder."""
    from .comparison import load_comparison
    from .data import load_data
    from .requantize import reconvert_and_compare, requantize_and_compare

    req = CompareRequest.from_dict(job.payload["request"])
    model = Path(job.payload["model_path"])
    data = load_data(model, req.data_path, shapes=req.random_shapes, n_random=req.n_random)
    for note in data.notes:
        reporter.log(note)
    before_after = False
    if req.source == "requantize":
        before_dir = _other_job(job_dir, str(req.before_job))
        before = load_comparison(before_dir)
        calib = _calibration(model, req, reporter)
        ba = requantize_and_compare(
            model, calib, req.quantize_spec(), req.exclude_more, data, before, job_dir, req.spec, reporter
        )
        result, before_after = ba.after, True
    elif req.source == "reconvert":
        before = load_comparison(_other_job(job_dir, str(req.before_job)))
        ba = reconvert_and_compare(
            model,
            req.exclude_more,
            data,
            before,
            job_dir,
            req.spec,
            reporter,
            keep_nodes=req.exclude_nodes,
            keep_op_types=req.exclude_op_types,
        )
        result, before_after = ba.after, True
    else:
        from .comparison import compare

        candidate = _candidate(req, model, job_dir, reporter)
        result = compare(model, candidate, data, req.spec, out_dir=job_dir, reporter=reporter)
    top = result.culprits[0] if result.culprits else None
    outs = result.output_results()
    summary = {
        "passed": result.passed,
        "status": result.status,  # pass, task holds, fail
        "verdict": result.summary(),
        "outputs_passed": result.outputs_ok,
        "n_outputs": len(outs),
        "n_outputs_failed": sum(not t.passed for t in outs),
        "precision": result.precision,
        "tolerances": result.tolerances_text(),
        "candidate": result.candidate,
        "candidate_kind": result.candidate_kind,
        "candidate_label": result.kind_label,
        "n_tensors": len(result.tensors),
        "n_failed": sum(not t.passed for t in result.tensors),
        "jump": result.jump,
        "first_nonfinite": result.first_nonfinite,
        "top_culprit": None if top is None else {"tensor": top.tensor, "nodes": list(top.nodes)},
        "proposed_exclusions": list(result.proposed_exclusions),
        "task": None
        if result.task is None
        else {
            "output": result.task.output,
            "reference_accuracy": result.task.reference_accuracy,
            "candidate_accuracy": result.task.candidate_accuracy,
            "n_samples": result.task.n_samples,
            "delta_pp": result.task.delta_pp,
            "held": result.task_held,
        },
        "before_after": before_after,
        "synthetic_data": result.synthetic_data,
        "synthetic_calibration": result.synthetic_calibration,
        "reference_provider": result.reference_provider,
    }
    return json.loads(json.dumps(summary, default=str))


# ---------------------------------------------------------------------------------------------- submitting


def submit_compare(jobs: Any, model_ref: Any, request: CompareRequest) -> str:
    """Checks what can be checked before a worker starts (files exist, referenced jobs finished), then queues
    a ``compare`` job for ``model_ref`` (a :class:`workbench.model.ModelRef`). Returns the job id."""
    from ..calibration_data import MIN_CALIBRATION_SAMPLES, check_npz_headers, model_inputs
    from ..errors import DataError, ModelError

    for what, p in (("Comparison data", request.data_path), ("Calibration data", request.calib_path)):
        if p and not Path(p).is_file():
            raise DataError(f"{what} '{Path(p).name}' does not exist.", "Upload it again.")
    if request.source in QUANTIZED_SOURCES:
        request.quantize_spec()  # calibrator, precision, percentile, exclusions
    if request.source in (*QUANTIZED_SOURCES, "fp16", "reconvert"):  # they make a candidate from the model
        from ..model import stored_summary
        from ..spec import refuse_requantizing

        summary = stored_summary(Path(model_ref.path))
        if request.source in QUANTIZED_SOURCES:
            refuse_requantizing(summary)
        elif summary.quantization is not None:
            raise SpecError(f"'{model_ref.name}' is {summary.quantization.describe()}: an FP16 conversion of a "
                            "Q/DQ model is not supported (its scales would become an invalid model).",
                            "Compare the FP32 model it was made from against it (candidate: this Q/DQ model).")
    if request.calib_path and request.source in QUANTIZED_SOURCES:
        check_npz_headers(  # headers only: names, shapes, dtypes and the sample count, no values read
            Path(request.calib_path),
            model_inputs(Path(model_ref.path)),
            extra_keys=("label",),
            min_samples=MIN_CALIBRATION_SAMPLES,
        )
    if request.source == "file" and not Path(str(request.candidate_path)).is_file():
        raise ModelError(f"Candidate '{request.candidate_path}' does not exist.", "Check the path.")
    for other in (request.build_job, request.before_job):
        if other:
            job = jobs.get(other)
            if job.status != SUCCEEDED:
                raise JobError(f"Job {other} is {job.status}, not finished.", "Pick a finished job.")
    what = SOURCE_LABELS[request.source]
    return jobs.submit(
        KIND,
        {"model_path": str(model_ref.path), "request": request.to_dict()},
        title=f"{model_ref.name}: compare with {what}",
        model_digest=model_ref.digest,
        model_name=model_ref.name,
    )


def requantize_request(
    jobs: Any, before: Job, exclude_more: tuple[str, ...] | list[str]
) -> CompareRequest | None:
    """A request that makes the candidate behind the finished comparison ``before`` again with ``exclude_more``
    also kept in higher precision, and compares it the same way: a Q/DQ candidate is re-quantized (calibrated
    as before: settings from the comparison's own request, or from the build it compared), an FP16 one converted
    again with them in FP32 (``source="reconvert"``). None when the candidate was not made by the workbench."""
    req = CompareRequest.from_dict(before.payload["request"])
    kind = before.result.get("candidate_kind")
    common: dict[str, Any] = dict(
        before_job=before.id,
        exclude_more=tuple(exclude_more),
        data_path=req.data_path,
        random_shapes=req.random_shapes,
        n_random=req.n_random,
        spec=req.spec,
    )
    if req.source in ("fp16", "reconvert"):
        return CompareRequest(
            source="reconvert",
            exclude_nodes=tuple(dict.fromkeys([*req.exclude_nodes, *req.exclude_more])),
            exclude_op_types=req.exclude_op_types,
            **common,
        )
    if req.source in QUANTIZED_SOURCES:
        return CompareRequest(
            source="requantize",
            calib_path=req.calib_path,
            calib_random=req.calib_random,
            calibrator=req.calibrator,
            percentile=req.percentile,
            exclude_nodes=tuple(dict.fromkeys([*req.exclude_nodes, *req.exclude_more])),
            exclude_op_types=req.exclude_op_types,
            precision=req.precision or ("fp8" if req.source == "fp8" else "int8"),
            **common,
        )
    if req.source != "build" or not req.build_job or kind not in ("ort-qdq", "ort-fp16"):
        return None
    from ..build import SPEC

    try:
        spec = json.loads((jobs.job_dir(req.build_job) / SPEC).read_text())
    except (OSError, ValueError, JobError):
        return None
    if kind == "ort-fp16":
        if spec.get("precision") != "fp16":
            return None
        return CompareRequest(
            source="reconvert",
            exclude_nodes=tuple(spec.get("keep_fp32_nodes") or ()),
            exclude_op_types=tuple(spec.get("keep_fp32_op_types") or ()),
            **common,
        )
    cal = spec.get("calibration") or {}
    random = bool(cal.get("synthetic")) and not cal.get("ranges_path")
    if spec.get("precision") not in ("int8", "fp8") or not (random or cal.get("data_path")):
        return None  # ranges reused from elsewhere: the data they came from are not known here
    return CompareRequest(
        source="requantize",
        calib_path=None if random else cal.get("data_path"),
        calib_random=random,
        calibrator=cal.get("calibrator", "entropy"),
        percentile=float(cal.get("percentile", 99.999)),
        exclude_nodes=tuple(cal.get("exclude_nodes") or ()),
        exclude_op_types=tuple(cal.get("exclude_op_types") or ()),
        precision=str(spec["precision"]),
        **common,
    )
