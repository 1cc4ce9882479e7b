"""What the Accuracy page shows of the culprit loop, without Streamlit: where a chain of re-quantized comparisons
started (the build to rebuild), what it already keeps in float, the loop's rounds and verdict as tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..jobs import SUCCEEDED
from .loop_job import KIND


def chain_root(jobs: Any, job: Any) -> tuple[str | None, tuple[str, ...]]:
    """(the build job a chain of comparisons started from, or None; the nodes the comparison ``job`` already
    keeps in higher precision through its re-quantizations/conversions: its request's ``exclude_nodes`` and
    ``exclude_more``). A re-quantized comparison is rebuilt from the same build as the first comparison."""
    from ..errors import WorkbenchError

    req = job.payload.get("request") or {}
    kept = tuple(dict.fromkeys([*(req.get("exclude_nodes") or ()), *(req.get("exclude_more") or ())]))
    seen: set[str] = set()
    cur = job
    while cur is not None and cur.id not in seen:
        seen.add(cur.id)
        r = cur.payload.get("request") or {}
        if r.get("build_job"):
            return str(r["build_job"]), kept
        before = r.get("before_job")
        try:
            cur = jobs.get(before) if before else None
        except WorkbenchError:
            cur = None
    return None, kept


def loops(jobs: Any, digest: str) -> list[Any]:
    """Culprit-loop jobs of the model, newest first."""
    return [j for j in jobs.list(kind=KIND) if j.model_digest == digest]


def loop_label(job: Any) -> str:
    import time

    when = time.strftime("%m-%d %H:%M", time.localtime(job.created))
    if job.status != SUCCEEDED:
        return f"{job.title} · {when}"
    verdict = "usable" if job.result.get("advisable") else f"use {str(job.result.get('recommendation')).upper()}"
    return f"{job.title} · {when} · {verdict}"


def rounds_table(result: Any) -> list[dict[str, Any]]:
    """One row per round (round 0: the defaults and calibrators), what was in float before it, what remained
    quantized, what was measured, what was kept, the metric before and after."""
    fmt = (lambda v: f"{v:.2%}") if result.metric == "top-1" else (lambda v: f"{v:.5f}")
    rows = [{
        "round": 0,
        "in float before": sum(len(v) for v in result.defaults.values()),
        "still quantized": None,
        "measured": "; ".join(f"{c}: {'failed' if v is None else fmt(v)}" for c, v in result.calibrators.items()),
        "kept in float": ", ".join(f"{k} ({len(v)})" for k, v in result.defaults.items()) or "—",
        "before": "" if result.plain is None else fmt(result.plain),
        "after": fmt(result.baseline.value),
    }]
    for r in result.rounds:
        rows.append({
            "round": r.number,
            "in float before": len(r.excluded),
            "still quantized": len(r.remaining),
            "measured": "; ".join(f"{t.label}: {fmt(t.value)}" for t in r.trials) or "—",
            "kept in float": (f"{r.chosen.label} ({len(r.chosen.nodes)})" if r.chosen else r.note),
            "before": fmt(r.before),
            "after": fmt(r.after),
        })
    return rows


def alternatives_table(result: Any) -> list[dict[str, Any]]:
    fmt = (lambda v: f"{v:.2%}") if result.metric == "top-1" else (lambda v: f"{v:.5f}")
    return [{"precision": a.precision.upper(), result.metric: "—" if a.value is None else fmt(a.value),
             "recovered": a.recovered, "note": a.note} for a in result.alternatives]


def artifacts(job_dir: Path) -> dict[str, Path]:
    from .loop import FINAL_MODEL, LOOP_FILE

    names = {"loop": LOOP_FILE, "qdq": FINAL_MODEL, "ranges": "calibration.json"}
    return {k: job_dir / n for k, n in names.items() if (job_dir / n).is_file()}
