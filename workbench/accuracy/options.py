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
    if job.status in ("failed", "cancelled"):  # no result: marked, like a verdict, so it is not taken for one
        return f"{job.title} · {_when(job.created)} · {'ERROR' if job.status == 'failed' else 'cancelled'}"
    if job.status != SUCCEEDED:
        return f"{job.title} · {_when(job.created)}"
    status = job.result.get("status") or ("pass" if job.result.get("passed") else "fail")
    label = {"pass": "PASS", "task holds": "PASS (task holds)", "fail": "FAIL"}.get(status, status)
    return f"{job.title} · {_when(job.created)} · {label}"


def sample_files(model_path: Path) -> tuple[Path | None, Path | None]:
    """(calibration data, labelled test data) of the bundled sample the model is (by content, not file name: a
    user's own model of the same name is not the sample), if any."""
    from ..samples import sample_at

    s = sample_at(Path(model_path))
    return (s.calibration_data, s.test_data) if s else (None, None)


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
    from ..samples import sample_at

    shapes: dict[str, list[int]] = {}
    s = sample_at(Path(model_path))  # by content: a same-named model of the user's is not the sample
    if s and s.suggested_profiles:
        for name, shape in s.suggested_profiles[0]["opt"].items():
            shapes[name] = [int(d) for d in shape[1:]]
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
    """(label, value, delta, help) of the figures a page shows first: the verdict and the task metric."""
    rows: list[tuple[str, str, str | None, str | None]] = [("Verdict", result.status_label, None, result.summary())]
    if result.task:
        t = result.task
        rows.append(
            (
                f"Top-1 ({t.output})",
                f"{t.candidate_accuracy:.2%}",
                f"{t.delta_pp:+.2f} pp vs FP32",
                f"FP32 {t.reference_accuracy:.2%} over {t.n_samples} labelled samples; the task holds within "
                f"{result.task_max_drop_pp:g} pp.",
            )
        )
    return rows


def detail(result: Any) -> list[tuple[str, str, str | None, str | None]]:
    """(label, value, delta, help) of what follows the headline: the model outputs against the candidate
    precision's tolerances, then the per-layer detail."""
    n_pass = sum(t.passed for t in result.tensors)
    rows: list[tuple[str, str, str | None, str | None]] = []
    outs = result.output_results()
    worst = min(outs, key=lambda o: o.cosine if o.cosine == o.cosine else -2.0, default=None)
    rows += [
        (
            "Model outputs",
            "within tolerance" if result.outputs_ok else "beyond tolerance",
            None,
            f"{result.precision_label}: {result.verdict()}"
            + (" Informative: the task metric holds." if result.status == "task holds" else ""),
        ),
    ]
    if worst is not None:
        rows.append(
            (
                "Output cosine / rel. error",
                f"{worst.cosine:.4f} / {worst.rel_rms:.3g}",
                None,
                f"'{worst.name}': cosine similarity to FP32 and ‖c − r‖/‖r‖ (error relative to the reference's "
                "own magnitude). Noise passes atol/rtol when both sides are tiny; these do not.",
            )
        )
    rows += [
        ("Tensors within tolerance", f"{n_pass}/{len(result.tensors)}", None,
         "Per-layer detail: intermediate tensors, against the same tolerances."),
        (
            "Error jumps at",
            result.jump or "—",
            None,
            getattr(result, "jump_note", "") or "First tensor whose added error is at least half the largest.",
        ),
    ]
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


def source_precision(source: str, build: BuildChoice | None = None) -> str | None:
    """The precision of the candidate a source makes (None: detected from the file when the job runs)."""
    if source == "build":
        return build.precision if build is not None else None
    return {"fp16": "fp16", "int8": "int8", "fp8": "fp8"}.get(source)


def tolerance_caption(precision: str | None) -> str:
    """What the default tolerances are for this candidate, in one line."""
    from .tolerances import TASK_MAX_DROP_PP, defaults_for

    if precision is None:
        return ("Tolerances: the defaults for the candidate's precision, detected from the file when the "
                f"comparison runs. With labels, top-1 may drop {TASK_MAX_DROP_PP:g} pp and the task holds.")
    return (f"Tolerances for {precision.upper()} (defaults): {defaults_for(precision).describe()}. With labels, "
            f"top-1 may drop {TASK_MAX_DROP_PP:g} pp and the task holds.")


def tolerance_help() -> str:
    """The default tolerances of every precision, as Markdown (a widget's help)."""
    from .tolerances import defaults_table

    head = "| precision | atol | rtol | statistic | min cosine | max ‖c − r‖/‖r‖ |\n|---|---|---|---|---|---|\n"
    rows = "".join(
        f"| {r['precision']} | {r['atol']:g} | {r['rtol']:g} | {r['error_stat']} | {r['min_cosine']:g} | "
        f"{r['max_rel_error']:g} |\n"
        for r in defaults_table()
    )
    return ("A tensor is within tolerance when Polygraphy's atol/rtol check passes and its cosine similarity "
            "and relative error (to the reference's own magnitude) are within bounds. Defaults:\n\n" + head + rows)


def build_facts(jobs: Any, build_job: str | None) -> list[tuple[str, str, str | None, str | None]]:
    """(label, value, delta, help) of the compared build's speed-relevant facts: plan size, engine layers and
    their precision mix ([] when the comparison was not of a build)."""
    if not build_job:
        return []
    from ..errors import WorkbenchError

    try:
        job = jobs.get(build_job)
    except WorkbenchError:
        return []
    res = job.result or {}
    mix = (res.get("precision_check") or {}).get("mix") or {}
    rows: list[tuple[str, str, str | None, str | None]] = []
    if res.get("plan_bytes"):
        rows.append(("Plan size", f"{res['plan_bytes'] / 1024:.1f} KiB", None, f"Build {build_job}."))
    if mix:
        text = ", ".join(f"{k} {v}" for k, v in sorted(mix.items(), key=lambda kv: -kv[1]))
        rows.append(("Engine layers", str(sum(mix.values())), None, f"Precision mix: {text}."))
    return rows


def default_tolerances(precision: str | None) -> Any:
    """The :class:`~.tolerances.Tolerances` a candidate of ``precision`` gets by default (FP32's when unknown)."""
    from .tolerances import defaults_for

    return defaults_for(precision or "")
