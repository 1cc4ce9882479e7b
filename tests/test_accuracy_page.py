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
    assert metrics["Verdict"] == result.status_label and result.passed  # a healthy INT8 model is no red FAIL
    assert metrics["Model outputs"] == ("within tolerance" if result.outputs_ok else "beyond tolerance")
    assert any(result.summary() == s.value for s in at.success)  # the verdict comes first, in one sentence
    assert (
        metrics["Tensors within tolerance"]
        == f"{sum(t.passed for t in result.tensors)}/{len(result.tensors)}"
    )
    assert metrics["Top-1 (logits)"] == f"{result.task.candidate_accuracy:.2%}"
    from streamlit.proto.Metric_pb2 import Metric as MetricProto

    top1 = next(m for m in at.metric if m.label == "Top-1 (logits)")
    unchanged = f"{result.task.delta_pp:+.2f}" in ("+0.00", "-0.00")  # no gain: grey, no up arrow
    assert (top1.proto.direction == MetricProto.MetricDirection.NONE) == unchanged
    assert [t.label for t in at.tabs] == ["Along the network", "Table", "Tensor", "Culprits", "Export"]
    keep = at.multiselect(key=f"accuracy.keep.{first}")
    assert result.proposed_exclusions
    if result.recovered:  # top-1 within 1 pp: nothing is proposed, the user may still pick the culprits
        assert keep.value == [] and any("Task metric recovered" in s.value for s in at.success)
        keep.set_value(list(result.proposed_exclusions)).run()
    else:
        assert keep.value == list(result.proposed_exclusions)

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


def test_calibration_is_never_random_by_accident_and_random_calibration_says_so(app_ws):
    """'Upload .npz' with nothing uploaded blocks Compare (it used to calibrate on noise and say so only in the
    log); random calibration chosen explicitly runs, with the percentile typed on the page, and the result says
    the numbers are meaningless."""
    ref = app_ws.import_path(get_sample("digits_mlp").path)
    at = _accuracy_page(ref.digest)
    at.radio(key="accuracy.source").set_value("int8").run()
    at.radio(key="accuracy.calib_source").set_value("upload").run()
    _ok(at)
    assert at.button(key="accuracy.submit").disabled
    assert any("Upload a calibration .npz" in i.value for i in at.info)

    at.radio(key="accuracy.calib_source").set_value("random").run()
    assert not at.button(key="accuracy.submit").disabled
    assert any("accuracy meaningless" in w.value for w in at.warning)
    at.selectbox(key="accuracy.calibrator").set_value("percentile").run()
    at.number_input(key="accuracy.percentile").set_value(99.9).run()
    at.button(key="accuracy.submit").click().run()
    _ok(at)
    job = _finish(app_ws, at, at.session_state["accuracy.job_id"])
    request = job.payload["request"]
    assert request["calib_random"] and request["calib_path"] is None
    assert request["calibrator"] == "percentile" and request["percentile"] == 99.9
    assert any("calibrated on random data" in w.value and "meaningless" in w.value for w in at.warning)
    assert any("calibrated on RANDOM data" in c.value for c in at.caption)
    provider = job.result["reference_provider"]
    assert provider and any(f"Reference ran on {provider}" in c.value for c in at.caption)


def test_fp8_is_offered_and_reaches_the_request(app_ws):
    ref = app_ws.import_path(get_sample("digits_mlp").path)
    at = _accuracy_page(ref.digest)
    assert "FP8 Q/DQ simulation (quantize now)" in at.radio(key="accuracy.source").options
    at.radio(key="accuracy.source").set_value("fp8").run()
    assert at.radio(key="accuracy.calib_source").value == "sample"
    assert at.selectbox(key="accuracy.calibrator").disabled  # FP8 scales come from the distribution method
    at.button(key="accuracy.submit").click().run()
    _ok(at)
    job = _finish(app_ws, at, at.session_state["accuracy.job_id"])
    assert job.payload["request"]["precision"] == "fp8" and job.payload["request"]["calib_path"]
    assert "FP8" in load_comparison(app_ws.jobs.job_dir(job.id)).candidate_source


def test_a_users_dynamic_model_gets_random_data_from_typed_shapes_or_its_builds_profile(app_ws, tmp_path):
    """Not a bundled sample, so no suggested profile: random data need the shape typed on the page, or come
    from the compared build's profile. The FP16 culprits then have their remedy: convert again keeping them in
    FP32 (before/after), and rebuild the engine with them in FP32."""
    import pytest

    pytest.importorskip("tensorrt_rtx", reason="FP16 builds need TensorRT-RTX (tensorrt-rtx-cu13)")
    from workbench.spec import BuildSpec

    sample = get_sample("transformer_block")
    import onnx

    mine = tmp_path / "my_block.onnx"
    model = onnx.load(str(sample.path))
    model.doc_string = "my own block"  # another file than the sample (samples are recognised by content)
    onnx.save(model, str(mine))
    ref = app_ws.import_path(mine)
    at = _accuracy_page(ref.digest)
    at.radio(key="accuracy.source").set_value("fp16").run()
    assert at.radio(key="accuracy.data_source").value == "upload"
    at.radio(key="accuracy.data_source").set_value("random").run()
    _ok(at)
    assert at.button(key="accuracy.submit").disabled
    assert any("need a shape for input 'hidden'" in i.value for i in at.info)
    at.text_input(key="accuracy.shape.hidden").input("16x64").run()
    assert not at.button(key="accuracy.submit").disabled
    at.button(key="accuracy.submit").click().run()
    job = _finish(app_ws, at, at.session_state["accuracy.job_id"])
    assert job.payload["request"]["random_shapes"] == {"hidden": [16, 64]}

    (profile,) = sample.profiles()[:1]
    build = app_ws.jobs.wait(app_ws.submit_build(ref, BuildSpec(precision="fp16", profiles=(profile,))), 300)
    assert build.status == "succeeded", build.error
    at = _accuracy_page(ref.digest)
    at.radio(key="accuracy.source").set_value("build").run()
    at.radio(key="accuracy.data_source").set_value("random").run()
    _ok(at)
    assert not at.text_input  # the build's profile gives the shape
    at.button(key="accuracy.submit").click().run()
    compared = _finish(app_ws, at, at.session_state["accuracy.job_id"])
    opt_shape = [int(d) for d in profile.shapes["hidden"].opt[1:]]
    assert compared.payload["request"]["random_shapes"] == {"hidden": opt_shape}
    before = load_comparison(app_ws.jobs.job_dir(compared.id))
    assert before.candidate_kind == "ort-fp16" and before.proposed_exclusions

    keep = at.multiselect(key=f"accuracy.keep.{compared.id}")
    if before.recovered:  # outputs' cosine >= 0.99: nothing proposed; the user picks the culprits
        assert keep.value == []
        keep.set_value([n for n in before.proposed_exclusions if n in keep.options]).run()
    again = at.button(key="accuracy.requantize")
    assert "FP32" in again.label and not again.disabled
    assert "Rebuild the FP16 engine" in at.button(key="accuracy.rebuild").label
    again.click().run()
    second = _finish(app_ws, at, at.session_state["accuracy.job_id"])
    ba = load_before_after(app_ws.jobs.job_dir(second.id))
    assert ba is not None and ba.after.tensor("output").rel_rms < ba.before.tensor("output").rel_rms
    assert "Before / after" in [t.label for t in at.tabs]
