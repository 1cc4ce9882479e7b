"""The culprit loop as a job (kind ``"culprit_loop"``): the request the Accuracy page or the CLI submits, and the
task the worker runs. Artifacts in the job folder: ``culprit_loop.json``, the final ``model_qdq.onnx`` and its
``calibration.json`` (ranges a build can reuse), and one folder per round with every measured trial."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import SpecError
from ..jobs import Job
from ..progress import Reporter

KIND = "culprit_loop"
DEFAULTS = ("auto", "on", "off")


@dataclass(frozen=True)
class LoopRequest:
    """Calibration data (``calib_path``), held-out data (``heldout_path``; a ``label`` array makes the metric
    top-1 accuracy), the quantization settings, and the loop's own: rounds, trials per round, target (None: the
    default of the metric), transformer defaults (auto: when the model is a transformer)."""

    calib_path: str
    heldout_path: str
    calibrator: str = "minmax"
    percentile: float = 99.999
    precision: str = "int8"
    exclude_nodes: tuple[str, ...] = ()
    max_rounds: int = 3
    max_trials: int = 6
    target: float | None = None
    defaults: str = "auto"
    alternatives: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "exclude_nodes", tuple(self.exclude_nodes))
        if self.defaults not in DEFAULTS:
            raise SpecError(f"Transformer defaults '{self.defaults}' unknown.", f"Choose {', '.join(DEFAULTS)}.")
        for name, value, hi in (("rounds", self.max_rounds, 10), ("trials per round", self.max_trials, 20)):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= hi:
                raise SpecError(f"The culprit loop's {name} must be a whole number from 1 to {hi}, not {value!r}.")
        t = self.target
        if t is not None and (isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t)
                              or not 0.0 < t <= 1.0):
            raise SpecError(f"Target {t!r} is out of range.",
                            "Give a mean cosine or a top-1 accuracy as a fraction, e.g. 0.99.")
        self.quantize_spec()

    def quantize_spec(self) -> Any:
        from ..quantize import QuantizeSpec

        return QuantizeSpec(calibrator=self.calibrator, percentile=self.percentile, precision=self.precision,
                            exclude_nodes=self.exclude_nodes)

    @property
    def use_defaults(self) -> bool | None:
        return {"auto": None, "on": True, "off": False}[self.defaults]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LoopRequest:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def load_inputs(model: Path, req: LoopRequest) -> tuple[Any, Any]:
    """(calibration data, held-out data) of a request, checked against the model's inputs."""
    from ..calibration_data import MIN_CALIBRATION_SAMPLES, load_npz, model_inputs

    inputs = model_inputs(model)
    calib = load_npz(Path(req.calib_path), inputs, extra_keys=("label",), min_samples=MIN_CALIBRATION_SAMPLES)
    calib = type(calib)(dict(calib.arrays), calib.source, calib.synthetic, calib.notes)  # labels not needed
    heldout = load_npz(Path(req.heldout_path), inputs, extra_keys=("label",))
    return calib, heldout


def run_loop(job: Job, job_dir: Path, reporter: Reporter) -> dict[str, Any]:
    """The ``culprit_loop`` task (registered in ``workbench.tasks.TASKS``)."""
    from .loop import culprit_loop

    req = LoopRequest.from_dict(job.payload["request"])
    model = Path(job.payload["model_path"])
    calib, heldout = load_inputs(model, req)
    result = culprit_loop(model, calib, heldout, req.quantize_spec(), job_dir, max_rounds=req.max_rounds,
                          max_trials=req.max_trials, defaults=req.use_defaults, target=req.target,
                          alternatives=req.alternatives, reporter=reporter)
    summary = {
        "recovered": result.recovered,
        "advisable": result.advisable,
        "recommendation": result.recommendation,
        "verdict": result.verdict,
        "metric": result.metric,
        "baseline": result.baseline.value,
        "final": result.final.value,
        "rounds": len(result.rounds),
        "excluded": len(result.excluded),
    }
    return json.loads(json.dumps(summary, default=str))


def submit_loop(jobs: Any, model_ref: Any, request: LoopRequest) -> str:
    """Checks the data files' headers against the model, then queues the loop. Returns the job id."""
    from ..calibration_data import MIN_CALIBRATION_SAMPLES, check_npz_headers, model_inputs
    from ..errors import DataError

    inputs = model_inputs(Path(model_ref.path))
    for what, p, least in (("Calibration data", request.calib_path, MIN_CALIBRATION_SAMPLES),
                           ("Held-out data", request.heldout_path, 1)):
        if not p or not Path(p).is_file():
            raise DataError(f"{what} '{Path(p or '?').name}' does not exist.", "Upload it again.")
        check_npz_headers(Path(p), inputs, extra_keys=("label",), min_samples=least)
    return jobs.submit(
        KIND,
        {"model_path": str(model_ref.path), "request": request.to_dict()},
        title=f"{model_ref.name}: culprit loop ({request.precision.upper()}, {request.calibrator}, "
        f"≤{request.max_rounds} rounds)",
        model_digest=model_ref.digest,
        model_name=model_ref.name,
    )
