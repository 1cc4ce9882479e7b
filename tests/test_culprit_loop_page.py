"""The culprit loop on the Accuracy page (Streamlit AppTest, real jobs in worker processes, real TensorRT-RTX
builds): a re-quantized comparison says what is already in float, stops proposing once top-1 is recovered, and
can be rebuilt from the build the chain started with; the loop's rounds and verdict are shown."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import open_page
from tests.test_culprit_loop import outlier_mlp
from workbench import ui
from workbench.accuracy import CompareRequest, load_comparison, submit_compare
from workbench.accuracy.job import requantize_request
from workbench.accuracy.loop import load_loop
from workbench.accuracy.loop_job import LoopRequest, submit_loop
from workbench.quantize import qdq_summary
from workbench.samples import get_sample
from workbench.spec import BuildSpec, CalibrationSpec

TIMEOUT = 90


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _done(wb, job_id: str, timeout: float = 300):
    job = wb.jobs.wait(job_id, timeout=timeout)
    assert job.status == "succeeded", (job.error, wb.jobs.read_log(job_id)[0][-3000:])
    return job


def test_a_requantized_comparison_says_what_is_in_float_and_rebuilds_from_the_first_build(app_ws):
    """Issue 12.10: an INT8 build is compared, its top culprit kept in float and compared again; that second
    comparison lists what is already in float, proposes nothing once top-1 is within 1 pp, and still offers the
    rebuild — which builds a real engine with every node of the chain kept out of quantization."""
    pytest.importorskip("tensorrt_rtx", reason="INT8 builds need TensorRT-RTX (tensorrt-rtx-cu13), not installed")
    sample = get_sample("digits_mlp")
    ref = app_ws.import_path(sample.path)
    spec = BuildSpec(precision="int8", profiles=sample.profiles(),
                     calibration=CalibrationSpec(data_path=str(sample.calibration_data), calibrator="entropy"))
    build = _done(app_ws, app_ws.submit_build(ref, spec))
    first = _done(app_ws, submit_compare(app_ws.jobs, ref, CompareRequest(
        source="build", build_job=build.id, data_path=str(sample.test_data))))
    before = load_comparison(app_ws.jobs.job_dir(first.id))
    keep = list(before.culprits[0].nodes)
    again = requantize_request(app_ws.jobs, first, keep)
    assert again is not None and again.source == "requantize"
    second = _done(app_ws, submit_compare(app_ws.jobs, ref, again))
    after = load_comparison(app_ws.jobs.job_dir(second.id))
    assert set(keep) <= set(after.kept_float)

    at = open_page("accuracy", TIMEOUT, **{ui.MODEL_DIGEST: ref.digest, "accuracy.job_id": second.id})
    _ok(at)
    assert any(c.value.startswith("Already in higher precision") and keep[0] in c.value for c in at.caption)
    picker = at.multiselect(key=f"accuracy.keep.{second.id}")
    assert not set(keep) & set(picker.options)  # what is in float is not offered again
    if after.recovered:
        assert any("Task metric recovered" in s.value for s in at.success) and picker.value == []
    else:
        assert picker.value == [n for n in after.proposed_exclusions if n in picker.options]
    rebuild = at.button(key="accuracy.rebuild")
    assert f"{len(keep)} node(s)" in rebuild.label
    rebuild.click().run()
    new_build = at.session_state[ui.BUILD_JOB]
    job = _done(app_ws, new_build)
    assert set(keep) <= set(job.payload["spec"]["calibration"]["exclude_nodes"])
    summary = qdq_summary(app_ws.jobs.artifact(job.id, "model_qdq.onnx"))
    assert set(keep) <= set(summary.float_nodes)


def test_the_loop_panel_shows_each_round_and_the_verdict(app_ws, tmp_path):
    sample = get_sample("digits_mlp")
    ref = app_ws.import_path(outlier_mlp(tmp_path / "outlier_mlp.onnx"))
    loop_id = submit_loop(app_ws.jobs, ref, LoopRequest(calib_path=str(sample.calibration_data),
                                                         heldout_path=str(sample.test_data), alternatives=False))
    _done(app_ws, loop_id)
    result = load_loop(app_ws.jobs.job_dir(loop_id))
    at = open_page("accuracy", TIMEOUT, **{ui.MODEL_DIGEST: ref.digest})
    _ok(at)
    assert any(result.verdict == s.value for s in at.success)
    table = next(d.value for d in at.dataframe if "still quantized" in d.value.columns)
    assert list(table["round"]) == [0, *[r.number for r in result.rounds]]
    row = table.iloc[1]
    (r,) = result.rounds
    assert row["in float before"] == len(r.excluded) and row["still quantized"] == len(r.remaining)
    assert r.chosen.label in row["kept in float"] and row["after"] == f"{r.after:.2%}"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Kept in float / quantized"] == f"{len(result.excluded)} / {result.n_quantized}"


def test_the_loop_is_started_from_the_page_with_the_samples_data(app_ws):
    ref = app_ws.import_path(get_sample("digits_mlp").path)
    at = open_page("accuracy", TIMEOUT, **{ui.MODEL_DIGEST: ref.digest})
    _ok(at)
    assert at.radio(key="accuracy.loop.calib_source").value == "sample"
    assert at.radio(key="accuracy.loop.heldout_source").value == "test"
    at.button(key="accuracy.loop.submit").click().run()
    _ok(at)
    job = _done(app_ws, at.session_state["accuracy.loop_job_id"])
    at.run()
    _ok(at)
    assert job.result["advisable"] and job.result["rounds"] == 0  # INT8 serves the sample as it is
    assert any("usable" in s.value for s in at.success)
