"""The outcome of a comparison as plain frozen dataclasses that round-trip through JSON (``comparison.json``).

Reading a saved comparison needs neither Polygraphy nor ONNX Runtime, so reports render anywhere. Non-finite
numbers are written as the strings ``"inf"``, ``"-inf"``, ``"nan"`` (JSON has no literal for them).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from ..errors import DataError
from .spec import KIND_LABELS, SHORT_LABELS
from .tolerances import PRECISION_LABELS, task_holds

FORMAT = "trt-workbench.comparison"
VERSION = 1


def _enc(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _enc(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_enc(v) for v in value]
    return value


def _float(value: Any) -> float:
    return float("nan") if value is None else float(value)


@dataclass(frozen=True)
class TensorResult:
    """One tensor compared: Polygraphy's verdict and error statistics, plus our own similarity measures.

    ``rel_rms`` is the relative RMS error ``‖candidate − reference‖ / ‖reference‖`` (the inverse of the SNR);
    ``error_in`` the largest ``rel_rms`` among the nearest compared tensors feeding it; ``added`` how much relative
    error the nodes in ``segment`` added on top (``rel_rms − error_in``, at least 0) and ``score`` the culprit
    score ``added × (added / rel_rms)``: large when a node adds much error *and* most of its output error is new,
    small for nodes that only pass on (or amplify) error they received.
    """

    name: str  # the tensor's name in the reference (FP32) model
    candidate_name: str  # what the candidate calls it (e.g. a DequantizeLinear output)
    producer: str  # ONNX node writing it in the reference model ("" for a graph input)
    op_type: str
    order: int  # position along the network: topological index of the producer (-1: graph input)
    depth: int  # longest path from the graph inputs, in nodes
    is_output: bool
    is_input: bool
    shape: tuple[int, ...]
    candidate_dtype: str
    passed: bool  # within tolerance: Polygraphy's atol/rtol check and the scale-aware check (when it was made)
    max_abs: float
    mean_abs: float
    max_rel: float
    mean_rel: float
    cosine: float
    snr_db: float
    rel_rms: float
    needed_atol: float  # the atol that would have passed every element, at the given rtol
    needed_rtol: float  # the rtol that would have passed every element, at the given atol
    nonfinite_reference: int
    nonfinite_candidate: int
    error_in: float = 0.0
    added: float = 0.0
    score: float = 0.0
    segment: tuple[str, ...] = ()  # ONNX nodes between the nearest compared inputs and this tensor
    within_atol_rtol: bool | None = None  # Polygraphy SimpleCompareFunc verdict, every iteration
    scale_ok: bool | None = None  # cosine and ‖c − r‖ / ‖r‖ within the scale-aware tolerances

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TensorResult:
        kw: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in d:
                continue
            v = d[f.name]
            if f.type == "float":
                v = _float(v)
            elif f.name in ("shape", "segment"):
                v = tuple(v)
            kw[f.name] = v
        return cls(**kw)

    def failed_checks(self) -> str:
        """Which checks failed, for a table ("" when it passed)."""
        out = []
        if self.within_atol_rtol is False:
            out.append("atol/rtol")
        if self.scale_ok is False:
            out.append("cosine/rel. error")
        if self.nonfinite_candidate > self.nonfinite_reference:
            out.append("NaN/Inf")
        return ", ".join(out)


@dataclass(frozen=True)
class Culprit:
    """A tensor whose producing nodes added the most error; ``nodes`` are ONNX node names of the reference model
    (what quantization exclusions take), the producer first."""

    rank: int
    tensor: str
    nodes: tuple[str, ...]
    score: float
    added: float
    error_in: float
    error_out: float

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Culprit:
        return cls(
            int(d["rank"]),
            str(d["tensor"]),
            tuple(d["nodes"]),
            _float(d["score"]),
            _float(d["added"]),
            _float(d["error_in"]),
            _float(d["error_out"]),
        )


@dataclass(frozen=True)
class TaskMetric:
    """What the error costs end to end: top-1 accuracy (argmax of ``output`` vs the data's labels)."""

    output: str
    n_samples: int
    reference_accuracy: float
    candidate_accuracy: float
    agreement: float  # fraction of samples where reference and candidate predict the same class

    @property
    def delta_pp(self) -> float:
        return 100.0 * (self.candidate_accuracy - self.reference_accuracy)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TaskMetric:
        return cls(
            str(d["output"]),
            int(d["n_samples"]),
            _float(d["reference_accuracy"]),
            _float(d["candidate_accuracy"]),
            _float(d["agreement"]),
        )


@dataclass(frozen=True)
class ComparisonResult:
    """Everything one comparison found.

    ``outputs_passed``: every model output within tolerance (Polygraphy's atol/rtol check and the scale-aware
    check, :mod:`.tolerances`) and free of new NaN/Inf; intermediate tensors are diagnostics. ``passed``: the
    verdict. With labels the task decides (top-1 within ``task_max_drop_pp`` of FP32: the task holds, the
    outputs' tolerances are then detail), else the outputs do. NaN/Inf in an output always fail."""

    model: str
    candidate: str
    candidate_kind: str
    candidate_source: str
    data_source: str
    synthetic_data: bool
    n_samples: int
    n_iterations: int
    atol: float
    rtol: float
    error_stat: str
    per_layer: bool
    mark_all: bool
    passed: bool
    tensors: tuple[TensorResult, ...]
    outputs: tuple[str, ...]
    culprits: tuple[Culprit, ...] = ()
    jump: str | None = None  # the first tensor (along depth) whose error jumps
    first_nonfinite: str | None = None  # the first tensor (along depth) where NaN/Inf appear in the candidate
    first_nonfinite_node: str | None = None
    task: TaskMetric | None = None
    proposed_exclusions: tuple[str, ...] = ()
    only_in_reference: tuple[str, ...] = ()  # tensors the candidate does not have (fused away, renamed)
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    duration_s: float = 0.0
    created: float = 0.0
    versions: tuple[tuple[str, str], ...] = ()
    synthetic_calibration: bool = False  # the candidate's Q/DQ ranges came from random data
    reference_provider: str = ""  # the ONNX Runtime execution provider that ran the FP32 reference
    candidate_provider: str = ""  # ... and the candidate, when it ran in ONNX Runtime
    kept_float: tuple[str, ...] = ()  # reference nodes the candidate (Q/DQ) already keeps in float
    recovered: bool = False  # the task metric is recovered (top-1 within 1 pp, or mean cosine >= 0.99)
    recovery: str = ""  # that metric, in words
    jump_note: str = ""  # why the error jumps where its producer is already in float
    precision: str = ""  # the candidate's precision, whose default tolerances apply ("" in older results)
    min_cosine: float = float("nan")  # the scale-aware tolerances (NaN: not checked, an older result)
    max_rel_error: float = float("nan")
    tolerance_source: str = ""  # "defaults for INT8", "...; set by you: atol"
    outputs_passed: bool | None = None  # None in older results: ``passed`` was the outputs' verdict
    task_max_drop_pp: float = 1.0

    # ------------------------------------------------------------------ views
    @property
    def kind_label(self) -> str:
        return KIND_LABELS.get(self.candidate_kind, self.candidate_kind)

    @property
    def kind_short(self) -> str:
        return SHORT_LABELS.get(self.candidate_kind, self.candidate_kind)

    @property
    def is_simulation(self) -> bool:
        return self.candidate_kind != "engine"

    def tensor(self, name: str) -> TensorResult:
        for t in self.tensors:
            if t.name == name:
                return t
        raise DataError(f"The comparison has no tensor '{name}'.")

    def output_results(self) -> tuple[TensorResult, ...]:
        return tuple(t for t in self.tensors if t.is_output)

    @property
    def outputs_ok(self) -> bool:
        return self.passed if self.outputs_passed is None else self.outputs_passed

    @property
    def outputs_nonfinite(self) -> bool:
        return any(t.nonfinite_candidate > t.nonfinite_reference for t in self.output_results())

    @property
    def task_held(self) -> bool | None:
        """Top-1 within ``task_max_drop_pp`` of FP32 (None without labels)."""
        if self.task is None:
            return None
        return task_holds(self.task.delta_pp, self.task_max_drop_pp)

    @property
    def status(self) -> str:
        """``pass``; ``task holds`` (top-1 held, outputs beyond tolerance: not a failure); ``fail``."""
        if self.outputs_nonfinite or self.task_held is False:
            return "fail"
        if self.outputs_ok:
            return "pass"
        return "task holds" if self.task_held else "fail"

    @property
    def status_label(self) -> str:
        return {"pass": "PASS", "task holds": "PASS — task holds", "fail": "FAIL"}[self.status]

    @property
    def precision_label(self) -> str:
        return PRECISION_LABELS.get(self.precision, self.precision.upper() or "unknown precision")

    def tolerances_text(self) -> str:
        scale = (
            ""
            if math.isnan(self.min_cosine)
            else f", cosine ≥ {self.min_cosine:g}, relative error ‖c − r‖/‖r‖ ≤ {self.max_rel_error:g}"
        )
        source = f"; {self.tolerance_source}" if self.tolerance_source else ""
        return f"atol={self.atol:g}, rtol={self.rtol:g}, {self.error_stat}{scale}{source}"

    def verdict(self) -> str:
        """The model outputs' verdict against the tolerances."""
        what = "within" if self.outputs_ok else "NOT within"
        return f"{what} tolerance ({self.tolerances_text()})"

    def task_text(self) -> str:
        """What happened to the task metric, in one clause ("" without labels)."""
        t = self.task
        if t is None:
            return ""
        held = "holds" if self.task_held else "DROPS"
        return (
            f"top-1 on '{t.output}' {held}: FP32 {t.reference_accuracy:.2%} → candidate "
            f"{t.candidate_accuracy:.2%} ({t.delta_pp:+.2f} pp; allowed drop {self.task_max_drop_pp:g} pp) over "
            f"{t.n_samples} labelled samples"
        )

    def summary(self) -> str:
        """The verdict in one sentence: the task first where there are labels, then the outputs."""
        where = f"the {self.precision_label} tolerances" if self.precision else "tolerance"
        outputs = f"model outputs {'within' if self.outputs_ok else 'NOT within'} {where}"
        if self.outputs_nonfinite:
            outputs = "NaN/Inf in the model outputs; " + outputs
        if self.task is None:
            return f"{self.status_label}: {outputs}."
        detail = " (detail here: top-1 decides)" if self.status == "task holds" else ""
        return f"{self.status_label}: {self.task_text()}; {outputs}{detail}."

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["task"] = None if self.task is None else {**asdict(self.task), "delta_pp": self.task.delta_pp}
        d["versions"] = dict(self.versions)
        return {"format": FORMAT, "version": VERSION, "candidate_label": self.kind_label, **_enc(d)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ComparisonResult:
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise DataError(
                f"This is not a comparison saved by TensorRT Workbench (no 'format': '{FORMAT}').",
                "Open a comparison.json written by a comparison job or `trt-workbench compare --json`.",
            )
        try:
            kw: dict[str, Any] = {}
            for f in fields(cls):
                if f.name not in d:
                    continue
                v = d[f.name]
                if f.name == "tensors":
                    v = tuple(TensorResult.from_dict(t) for t in v)
                elif f.name == "culprits":
                    v = tuple(Culprit.from_dict(c) for c in v)
                elif f.name == "task":
                    v = None if v is None else TaskMetric.from_dict(v)
                elif f.name == "versions":
                    v = tuple((str(k), str(x)) for k, x in dict(v).items())
                elif f.type == "float":
                    v = _float(v)
                elif f.name in (
                    "outputs", "proposed_exclusions", "only_in_reference", "warnings", "notes", "kept_float"
                ):
                    v = tuple(v)
                kw[f.name] = v
            return cls(**kw)
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(f"The saved comparison is malformed ({err!r}).") from err

    @classmethod
    def from_json(cls, text: str) -> ComparisonResult:
        try:
            return cls.from_dict(json.loads(text))
        except ValueError as err:
            raise DataError(f"The saved comparison is not valid JSON ({err}).") from err

    @classmethod
    def load(cls, path: str | Path) -> ComparisonResult:
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as err:
            raise DataError(f"Cannot read comparison '{path}': {err.strerror}.", "Check the path.") from err
        return cls.from_json(text)


@dataclass(frozen=True)
class BeforeAfter:
    """A re-quantization with more nodes kept in float, compared again: the same metrics before and after."""

    before: ComparisonResult
    after: ComparisonResult
    excluded: tuple[
        str, ...
    ]  # nodes kept in higher precision in the "after" model (all, not only the new ones)
    added_exclusions: tuple[str, ...]  # the ones proposed by the culprit finder this time
    qdq_model: str

    def rows(self) -> list[dict[str, Any]]:
        """One row per model output (and one for the task metric), before vs after."""
        rows: list[dict[str, Any]] = []
        after = {t.name: t for t in self.after.output_results()}
        for b in self.before.output_results():
            a = after.get(b.name)
            if a is None:
                continue
            for metric in ("max_abs", "mean_abs", "rel_rms", "cosine", "snr_db"):
                rows.append(
                    {
                        "tensor": b.name,
                        "metric": metric,
                        "before": getattr(b, metric),
                        "after": getattr(a, metric),
                    }
                )
            rows.append({"tensor": b.name, "metric": "passed", "before": b.passed, "after": a.passed})
        if self.before.task and self.after.task:
            rows.append(
                {
                    "tensor": self.before.task.output,
                    "metric": "top-1 accuracy",
                    "before": self.before.task.candidate_accuracy,
                    "after": self.after.task.candidate_accuracy,
                }
            )
        return rows

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT + ".before_after",
            "version": VERSION,
            "before": self.before.to_dict(),
            "after": self.after.to_dict(),
            "excluded": list(self.excluded),
            "added_exclusions": list(self.added_exclusions),
            "qdq_model": self.qdq_model,
            "rows": _enc(self.rows()),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BeforeAfter:
        if not isinstance(d, dict) or d.get("format") != FORMAT + ".before_after":
            raise DataError("This is not a before/after comparison saved by TensorRT Workbench.")
        return cls(
            ComparisonResult.from_dict(d["before"]),
            ComparisonResult.from_dict(d["after"]),
            tuple(d["excluded"]),
            tuple(d["added_exclusions"]),
            str(d["qdq_model"]),
        )

    @classmethod
    def load(cls, path: str | Path) -> BeforeAfter:
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, ValueError) as err:
            raise DataError(f"Cannot read the before/after comparison '{path}': {err}.") from err
