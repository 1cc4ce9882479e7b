"""What the Accuracy page offers for one model: candidates (finished builds, simulations), data sources (the
sample's labelled test set, an upload, random data of the right shapes) and earlier comparisons. Kept out of the
page so the page only composes widgets."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..jobs import SUCCEEDED, Job
from .job import KIND

_SIMULATED = ("fp16", "bf16", "int8", "fp8")


@dataclass(frozen=True)
class BuildChoice:
    job_id: str
    label: str
    precision: str
    runs_here: bool  # its engine can run on this machine (else its network is simulated in ONNX Runtime)


def _when(t: float) -> str:
    return time.strftime("%m-%d %H:%M", time.localtime(t))


def build_choices(jobs: Any, digest: str) -> list[BuildChoice]:
    """Finished builds of the model that can be compared here: engines where they can run, else FP16/INT8/FP8
    builds (their network is simulated in ONNX Runtime). FP32 builds without a GPU have nothing to compare."""
    from .runners import engines_runnable

    out = []
    for j in jobs.list(kind="build"):
        if j.model_digest != digest or j.status != SUCCEEDED:
            continue
        spec = j.payload.get("spec", {})
        precision = str(spec.get("precision", "fp32"))
        runs, _, _ = engines_runnable(str(spec.get("backend", "")))
        if not runs and precision not in _SIMULATED:
            continue
        how = "engine" if runs else "ORT simulation of its network"
        out.append(BuildChoice(j.id, f"{j.title} · {_when(j.created)} ({how})", precision, runs))
    return out


def comparisons(jobs: Any, digest: str) -> list[Job]:
    """Comparison jobs of the model, newest first."""
    return [j for j in jobs.list(kind=KIND) if j.model_digest == digest]


def comparison_label(job: Job) -> str:
    """Stable while the job runs (the picker's frontend keeps option labels it has shown; the job panel below
    shows the live status), with the verdict once finished."""
    if job.status != SUCCEEDED:
        return f"{job.title} · {_when(job.created)}"
    return f"{job.title} · {_when(job.created)} · {'PASS' if job.result.get('passed') else 'FAIL'}"


def sample_files(model_name: str) -> tuple[Path | None, Path | None]:
    """(calibration data, labelled test data) of the bundled sample the model came from, if any."""
    from ..errors import WorkbenchError
    from ..samples import list_samples

    try:
        for s in list_samples():
            if s.path.name == model_name:
                return s.calibration_data, s.test_data
    except WorkbenchError:
        pass
    return None, None


def build_profile_shapes(jobs: Any, build_job: str | None) -> dict[str, list[int]]:
    """Per-sample shapes (opt, batch axis dropped) of a build's first optimization profile; {} without one."""
    if not build_job:
        return {}
    from ..errors import WorkbenchError

    try:
        spec = jobs.get(build_job).payload.get("spec") or {}
    except WorkbenchError:
        return {}
    profiles = spec.get("profiles") or []
    if not profiles:
        return {}
    return {str(n): [int(d) for d in r["opt"][1:]] for n, r in profiles[0].items()}


def random_shapes(
    model_path: Path, model_name: str, preferred: dict[str, list[int]] | None = None
) -> dict[str, list[int]]:
    """Per-sample shapes for random data: ``preferred`` (the compared build's profile, shapes the user typed),
    then the sample's suggested profile (opt), then the model's static dims."""
    from ..calibration_data import model_inputs
    from ..errors import WorkbenchError
    from ..samples import list_samples

    shapes: dict[str, list[int]] = {}
    try:
        for s in list_samples():
            if s.path.name == model_name and s.suggested_profiles:
                for name, shape in s.suggested_profiles[0]["opt"].items():
                    shapes[name] = [int(d) for d in shape[1:]]
    except WorkbenchError:
        pass
    shapes.update(preferred or {})
    for spec in model_inputs(model_path):
        if spec.name not in shapes and spec.shape and all(isinstance(d, int) for d in spec.shape[1:]):
            shapes[spec.name] = [int(d) for d in spec.shape[1:]]  # type: ignore[arg-type]
    return shapes


def shapes_needed(model_path: Path, known: dict[str, list[int]]) -> list[tuple[str, str]]:
    """(input, its shape as text) of the inputs random data cannot be made for without a typed shape."""
    from ..calibration_data import model_inputs

    return [(i.name, i.shape_text()) for i in model_inputs(model_path) if i.name not in known]


def parse_sample_shape(name: str, text: str) -> list[int]:
    """A per-sample shape the user typed (``64x64`` or ``64, 64``; the batch axis left out)."""
    from ..errors import SpecError
    from ..spec import parse_shape

    dims = list(parse_shape(text, f"Input '{name}'"))
    if not dims or any(d < 1 for d in dims):
        raise SpecError(
            f"Input '{name}': '{text}' is not a per-sample shape.", "Write it like 64x64 (no batch axis)."
        )
    return dims


def rebuild_precision(jobs: Any, build_job: str | None) -> str | None:
    """The precision of the compared build when it can be rebuilt with layers kept in higher precision (FP16,
    INT8, FP8), else None."""
    if not build_job:
        return None
    from ..errors import WorkbenchError

    try:
        precision = str((jobs.get(build_job).payload.get("spec") or {}).get("precision", ""))
    except WorkbenchError:
        return None
    return precision if precision in ("fp16", "int8", "fp8") else None


def output_names(model_path: Path) -> list[str]:
    from .graph import read_graph

    return list(read_graph(model_path).graph_outputs)


def artifacts(job_dir: Path) -> dict[str, Path]:
    """The downloadable files of a finished comparison job."""
    from .comparison import BEFORE_AFTER_FILE, COMPARISON_FILE, REPORT_FILE, RESULTS_FILE

    names = {
        "report": REPORT_FILE,
        "comparison": COMPARISON_FILE,
        "results": RESULTS_FILE,
        "before_after": BEFORE_AFTER_FILE,
        "qdq": "model_qdq.onnx",
    }
    return {k: job_dir / n for k, n in names.items() if (job_dir / n).is_file()}


def stamp(job_dir: Path) -> float:
    """Changes whenever the job's comparison is rewritten (a cache key for pages)."""
    p = job_dir / "comparison.json"
    return p.stat().st_mtime if p.is_file() else 0.0


def request_of(job: Job) -> dict[str, Any]:
    return json.loads(json.dumps(job.payload.get("request", {})))


def new_request(
    source: str,
    model_path: Path,
    model_name: str,
    *,
    data_path: str | None,
    label: str | None,
    shapes: dict[str, list[int]] | None = None,
    **values: Any,
) -> Any:
    """A :class:`CompareRequest` from the page's widget values: the source's own fields (``build_job``,
    ``calib_path``, ``calibrator``, ``candidate_path``) and the :class:`CompareSpec` fields (``atol``, ``rtol``,
    ``max_samples``, ``top_k``, ``per_layer``, ``mark_all``). ``shapes``: per-sample shapes for random data (a
    build's profile, shapes typed on the page), before the sample's and the model's own."""
    from .job import CompareRequest
    from .spec import CompareSpec

    spec_fields = set(CompareSpec.__dataclass_fields__)
    spec = CompareSpec(
        **{k: v for k, v in values.items() if k in spec_fields},
        label_output=label if label and label != "(none)" else None,
    )
    own = {k: v for k, v in values.items() if k not in spec_fields}
    return CompareRequest(
        source=source,
        spec=spec,
        data_path=data_path,
        random_shapes=random_shapes(model_path, model_name, shapes),
        **own,
    )


def headline(result: Any) -> list[tuple[str, str, str | None, str | None]]:
    """(label, value, delta, help) of the figures a page shows first."""
    n_pass = sum(t.passed for t in result.tensors)
    rows: list[tuple[str, str, str | None, str | None]] = [
        ("Model outputs", "PASS" if result.passed else "FAIL", None, result.verdict()),
        ("Tensors within tolerance", f"{n_pass}/{len(result.tensors)}", None, None),
        (
            "Error jumps at",
            result.jump or "—",
            None,
            getattr(result, "jump_note", "") or "First tensor whose added error is at least half the largest.",
        ),
    ]
    if result.task:
        t = result.task
        rows.append(
            (f"Top-1 ({t.output})", f"{t.candidate_accuracy:.2%}", f"{t.delta_pp:+.2f} pp vs FP32", None)
        )
    return rows


def alerts(result: Any) -> tuple[list[str], list[str]]:
    """(errors, warnings) to show above a comparison: NaN/Inf first, then the comparison's warnings."""
    errors = []
    if result.first_nonfinite:
        errors.append(
            f"NaN/Inf first appear at tensor `{result.first_nonfinite}` (node `{result.first_nonfinite_node}`)."
        )
    warnings = [w for w in result.warnings if not w.startswith("NaN/Inf first appear")]
    return errors, warnings
