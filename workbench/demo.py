"""The stakeholder demo: one job that runs the whole flow on the bundled digits sample — build FP32 and INT8,
fusion report of both, accuracy of the INT8 candidate against ONNX Runtime FP32 — and ends on one HTML report.

The demo job only orchestrates: each step is an ordinary job (listed on the Engines page, with its own log),
so the demo is what a user would do by hand, in order. It is a light job (outside the bound on heavy jobs),
since it spends its time waiting for the jobs it queued.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import JobError
from .jobs import SUCCEEDED, Job, JobStore
from .progress import Cancelled, Reporter
from .text import html_text
from .workspace import Workspace

log = logging.getLogger(__name__)

KIND = "demo"
REPORT = "demo_report.html"
SAMPLE = "digits_mlp"

# The demo report carries plotly.js once: as inert text in its <head> (this id), which each report frame (a
# srcdoc iframe, so the same origin as the page, file:// included) runs as its own script, in its own window.
PLOTLY_JS_ID = "workbench-plotly-js"
PLOTLY_FROM_PARENT = (
    "<script>(function(){try{var src=window.parent.document.getElementById('" + PLOTLY_JS_ID + "');"
    "var s=document.createElement('script');s.text=src.text;document.head.appendChild(s);}"
    "catch(err){console.error('plotly.js: the page embedding this report does not provide it', err);}})();"
    "</script>"
)


@dataclass(frozen=True)
class DemoStep:
    key: str
    title: str
    job_id: str = ""


def submit_demo(jobs: JobStore, ref: Any) -> str:
    return jobs.submit(
        KIND,
        {"model_path": str(ref.path), "model_digest": ref.digest, "model_name": ref.name},
        title=f"Demo on {ref.name}: FP32 and INT8 builds, fusion, accuracy",
        model_digest=ref.digest,
        model_name=ref.name,
    )


def _wait(jobs: JobStore, job_id: str, reporter: Reporter, lo: float, hi: float, what: str) -> Job:
    while True:
        job = jobs.get(job_id)
        reporter.progress(lo + (hi - lo) * (job.progress or 0.0), f"{what}: {job.phase or job.status}")
        if not job.active:
            if job.status != SUCCEEDED:
                raise JobError(f"Demo step '{what}' {job.status}: {job.error}", f"See job {job_id}'s log.")
            reporter.log(f"{what}: done (job {job_id}).")
            return job
        if reporter.cancelled():
            jobs.cancel(job_id)
            raise Cancelled(f"Demo cancelled during '{what}'.")
        time.sleep(0.2)


def run_demo(job: Job, job_dir: Path, reporter: Reporter) -> dict[str, Any]:
    from .accuracy import CompareRequest, CompareSpec, submit_compare
    from .accuracy.spec import MAX_SAMPLES_LIMIT
    from .model import get_model
    from .samples import get_sample
    from .service import Workbench
    from .spec import BuildSpec, CalibrationSpec

    wb = Workbench.open(Workspace.default().root)
    ref = get_model(wb.ws, job.payload["model_digest"])
    sample = get_sample(SAMPLE)
    profiles = sample.profiles()
    steps: dict[str, str] = {}

    reporter.log("Step 1/3: building FP32 and INT8 (entropy calibration on the sample's calibration set).")
    steps["fp32"] = wb.submit_build(ref, BuildSpec(precision="fp32", profiles=profiles))
    steps["int8"] = wb.submit_build(
        ref,
        BuildSpec(
            precision="int8",
            profiles=profiles,
            calibration=CalibrationSpec(data_path=str(sample.calibration_data), calibrator="entropy"),
        ),
    )
    _wait(wb.jobs, steps["fp32"], reporter, 0.0, 0.3, "FP32 build")
    _wait(wb.jobs, steps["int8"], reporter, 0.3, 0.6, "INT8 build")

    reporter.log("Step 2/3: fusion report of both builds.")
    reporter.progress(0.62, "Fusion report")
    from .fusion import diff_builds, job_report
    from .reports.fusion_html import render_html

    fp32_layers, _ = job_report(wb.jobs.job_dir(steps["fp32"]))
    int8_layers, int8_report = job_report(wb.jobs.job_dir(steps["int8"]))
    diff = diff_builds(fp32_layers, int8_layers)
    fusion_html = render_html(
        int8_report,
        int8_layers,
        title=f"{ref.name}: INT8 engine layers (vs FP32)",
        diff=diff,
        plotly_js=PLOTLY_FROM_PARENT,
    )

    reporter.log("Step 3/3: accuracy of the INT8 build against ONNX Runtime FP32, per layer.")
    steps["compare"] = submit_compare(
        wb.jobs,
        ref,
        CompareRequest(
            source="build",
            build_job=steps["int8"],
            data_path=str(sample.test_data),
            spec=CompareSpec(label_output="logits", max_samples=MAX_SAMPLES_LIMIT),  # all: as Quantize scores
        ),
    )
    cmp_job = _wait(wb.jobs, steps["compare"], reporter, 0.65, 0.95, "Accuracy comparison")
    accuracy_html = _accuracy_html(wb.jobs.job_dir(cmp_job.id))

    reporter.progress(0.97, "Writing the report")
    fp32_job, int8_job = wb.jobs.get(steps["fp32"]), wb.jobs.get(steps["int8"])
    summary = {
        "model": ref.name,
        "steps": steps,
        "fp32": {"plan_bytes": fp32_job.result.get("plan_bytes"), "layers": len(fp32_layers.layers)},
        "int8": {
            "plan_bytes": int8_job.result.get("plan_bytes"),
            "layers": len(int8_layers.layers),
            "int8_layers": sum("INT8" in ly.precision for ly in int8_layers.layers),
        },
        "fusion_changes": len(getattr(diff, "changed", ()) or ()),  # ONNX nodes that changed, not all of them
        "compare": cmp_job.result,
    }
    (job_dir / REPORT).write_text(render_demo(summary, fusion_html, accuracy_html))
    (job_dir / "demo.json").write_text(json.dumps(summary, indent=2, default=str))
    reporter.log(f"Demo report written: {REPORT}.")
    return json.loads(json.dumps(summary, default=str))


def _accuracy_html(compare_dir: Path) -> str:
    """The comparison job's accuracy report (its ``accuracy_report.html``) rendered again for a frame of the
    demo report: the same page, taking plotly.js from the demo report ("" when the comparison is missing)."""
    from .accuracy import load_comparison, load_samples
    from .accuracy.comparison import COMPARISON_FILE, SAMPLES_FILE
    from .reports.accuracy_html import render_report

    if not (compare_dir / COMPARISON_FILE).is_file():
        return ""
    return render_report(
        load_comparison(compare_dir), load_samples(compare_dir / SAMPLES_FILE), plotly_js=PLOTLY_FROM_PARENT
    )


def render_demo(summary: dict[str, Any], fusion_html: str, accuracy_html: str) -> str:
    """One self-contained page, opening offline: the headline numbers, then the fusion and accuracy reports,
    each in a frame. The page carries plotly.js once, for the frames: render the reports with
    ``plotly_js=PLOTLY_FROM_PARENT`` (a report with its own plotly.js works too, at 4.6 MB more)."""
    from plotly.offline import get_plotlyjs

    e = html_text  # the model's name and the names the summary quotes come from the model file
    cmp = summary.get("compare") or {}
    task = cmp.get("task") or {}
    # What a stakeholder needs first: does the task hold, then what the engine is (speed-relevant facts), then
    # the per-layer detail.
    status = cmp.get("status") or ("pass" if cmp.get("passed") else "fail")
    label = {"pass": "PASS", "task holds": "PASS — the task holds", "fail": "FAIL"}.get(status, status)
    rows = [("Model", summary["model"]), ("Verdict", label)]
    if task:
        n = f" over {task['n_samples']} labelled samples" if task.get("n_samples") else ""
        rows.append(
            (
                "Top-1 accuracy on held-out data",
                f"FP32 {task['reference_accuracy']:.2%} → INT8 {task['candidate_accuracy']:.2%}{n}",
            )
        )
    rows += [
        (
            "FP32 plan",
            f"{(summary['fp32']['plan_bytes'] or 0) / 1024:.1f} KiB, {summary['fp32']['layers']} layers",
        ),
        (
            "INT8 plan",
            f"{(summary['int8']['plan_bytes'] or 0) / 1024:.1f} KiB, {summary['int8']['layers']} layers, "
            f"{summary['int8']['int8_layers']} in INT8",
        ),
        ("ONNX nodes whose fusion or precision changed", str(summary["fusion_changes"])),
        ("Accuracy candidate", str(cmp.get("candidate_label") or cmp.get("candidate_kind") or "")),
    ]
    if "n_outputs" in cmp:
        beyond = cmp.get("n_outputs_failed") or 0
        rows.append(
            (
                "Model outputs",
                f"within the {str(cmp.get('precision') or '').upper()} tolerances"
                if not beyond
                else f"{beyond} of {cmp['n_outputs']} beyond the {str(cmp.get('precision') or '').upper()} "
                "tolerances" + (" (detail: the task holds)" if status == "task holds" else ""),
            )
        )
    rows.append(
        (
            "Per-layer tensors within tolerance",
            f"{(cmp.get('n_tensors') or 0) - (cmp.get('n_failed') or 0)} of {cmp.get('n_tensors')}"
            + (f" ({cmp['tolerances']})" if cmp.get("tolerances") else ""),
        )
    )
    top = cmp.get("top_culprit") or {}
    if top:
        rows.append(("Layer adding the most error", f"{top['tensor']} (ONNX: {', '.join(top['nodes'])})"))
    colour = {"pass": "#2f7d32", "task holds": "#2f7d32"}.get(status, "#c62828")
    table = "".join(
        f"<tr><th>{e(k)}</th><td"
        + (f" style='color:{colour};font-weight:700'" if k == "Verdict" else "")
        + f">{e(v)}</td></tr>"
        for k, v in rows
    )

    def frame(doc: str, title: str) -> str:
        # as tall as its report once drawn (same origin: srcdoc), so figures are never cut inside a scrolling frame
        fit = ("var f=this;function fit(){f.style.height=(f.contentWindow.document.documentElement.scrollHeight+24)"
               "+'px'}fit();setTimeout(fit,800)")
        return (
            f"<h2>{e(title)}</h2><iframe title='{e(title)}' srcdoc=\"{e(doc)}\" "
            f"onload=\"{fit}\" style='width:100%;height:1400px;border:1px solid #ddd'></iframe>"
        )

    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>TensorRT Workbench demo</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:24px}th{text-align:left;padding-right:16px}"
        f"</style><script type='text/plain' id='{PLOTLY_JS_ID}'>{get_plotlyjs()}</script></head><body>"
        f"<h1>TensorRT Workbench — FP32 vs INT8 on {e(summary['model'])}</h1><table>{table}</table>"
        + frame(fusion_html, "Layer fusion (INT8 engine)")
        + (frame(accuracy_html, "Accuracy against ONNX Runtime FP32") if accuracy_html else "")
        + "</body></html>"
    )
