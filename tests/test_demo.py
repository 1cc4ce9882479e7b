"""The stakeholder demo: one click on the Model page runs open → FP32 and INT8 builds → fusion → accuracy and
ends on an exported HTML report (all real: TensorRT-RTX builds, ONNX Runtime, Polygraphy)."""

from __future__ import annotations

import pytest

from tests.conftest import open_page
from workbench import ui

pytestmark = pytest.mark.slow


def test_one_click_demo_ends_on_an_html_report(app_ws):
    at = open_page("model")
    at.button(key="demo.start").click().run()
    assert not at.exception, [e.value for e in at.exception]
    job_id = at.session_state[ui.DEMO_JOB]
    job = app_ws.jobs.wait(job_id, timeout=600)
    assert job.status == "succeeded", (job.error, app_ws.jobs.read_log(job_id)[0][-3000:])

    steps = job.result["steps"]
    kinds = {app_ws.jobs.get(j).kind for j in steps.values()}
    assert kinds == {"build", "compare"}  # ordinary jobs, listed like the user's own
    assert job.result["int8"]["int8_layers"] > 0
    assert "not an engine result" in job.result["compare"]["candidate_label"]  # a simulation says so

    report = app_ws.jobs.artifact(job_id, "demo_report.html").read_text()
    assert "Layer fusion" in report and "Accuracy against ONNX Runtime FP32" in report
    assert "digits_mlp.onnx" in report and "https://" not in report.split("<iframe")[0]

    at = open_page("model", **{ui.DEMO_JOB: job_id, ui.MODEL_DIGEST: job.model_digest})
    assert not at.exception, [e.value for e in at.exception]
    labels = {m.label for m in at.metric}
    assert {"FP32 plan", "INT8 plan", "Top-1, INT8 simulation"} <= labels
