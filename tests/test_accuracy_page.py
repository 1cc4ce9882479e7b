"""The Accuracy page through Streamlit's AppTest: a user opens the digits sample, compares an INT8 simulation
against FP32 (a real comparison job in a worker process), reads the culprits and re-quantizes without them."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.conftest import open_page
from workbench import ui
from workbench.accuracy import load_before_after, load_comparison
from workbench.samples import get_sample

TIMEOUT = 60


def _accuracy_page(digest: str) -> AppTest:
    return open_page("accuracy", TIMEOUT, **{ui.MODEL_DIGEST: digest})


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _finish(wb, at: AppTest, job_id: str):
    job = wb.jobs.wait(job_id, timeout=180)
    assert job.status == "succeeded", (job.error, wb.jobs.read_log(job_id)[0][-3000:])
    at.run()
    _ok(at)
    return job


def test_compare_an_int8_simulation_then_requantize_without_the_culprits(app_ws):
    ref = app_ws.import_path(get_sample("digits_mlp").path)
    at = _accuracy_page(ref.digest)
    _ok(at)
    assert any("No comparison of this model yet" in i.value for i in at.info)
    assert (
        at.radio(key="accuracy.data_source").value == "test"
    )  # the sample's labelled split is offered first

    at.radio(key="accuracy.source").set_value("int8").run()
    at.selectbox(key="accuracy.calibrator").set_value("minmax")
    at.selectbox(key="accuracy.label").set_value("logits")
    at.button(key="accuracy.submit").click().run()
    _ok(at)
    first = at.session_state["accuracy.job_id"]
    _finish(app_ws, at, first)

    result = load_comparison(app_ws.jobs.job_dir(first))
    assert any("not an engine result" in w.value for w in at.warning)  # a simulation says so
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Model outputs"] == ("PASS" if result.passed else "FAIL")
    assert (
        metrics["Tensors within tolerance"]
        == f"{sum(t.passed for t in result.tensors)}/{len(result.tensors)}"
    )
    assert metrics["Top-1 (logits)"] == f"{result.task.candidate_accuracy:.2%}"
    assert [t.label for t in at.tabs] == ["Along the network", "Table", "Tensor", "Culprits", "Export"]
    keep = at.multiselect(key=f"accuracy.keep.{first}")
    assert keep.value == list(result.proposed_exclusions) and keep.value

    at.button(key="accuracy.requantize").click().run()
    _ok(at)
    second = at.session_state["accuracy.job_id"]
    assert second != first
    _finish(app_ws, at, second)
    ba = load_before_after(app_ws.jobs.job_dir(second))
    assert ba is not None and ba.before.to_dict() == result.to_dict()
    assert set(result.proposed_exclusions) <= set(ba.excluded)
    assert "Before / after" in [t.label for t in at.tabs]
    assert (
        len(at.get("download_button")) >= 4
    )  # report, comparison, Polygraphy results, before/after (+ Q/DQ)


def test_a_failed_comparison_shows_its_log_and_the_page_stays_up(app_ws, tmp_path):
    ref = app_ws.import_path(get_sample("digits_mlp").path)
    from workbench.accuracy import CompareRequest, submit_compare

    bad = tmp_path / "other.onnx"
    bad.write_bytes(get_sample("transformer_block").path.read_bytes())  # not a version of this model
    job_id = submit_compare(app_ws.jobs, ref, CompareRequest(source="file", candidate_path=str(bad)))
    job = app_ws.jobs.wait(job_id, timeout=120)
    assert job.status == "failed" and "not a version of the same model" in job.error
    at = _accuracy_page(ref.digest)
    assert not at.exception
    assert any("not a version of the same model" in e.value for e in at.error)
