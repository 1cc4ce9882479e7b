"""The comparison's verdict, as a deployment engineer and a stakeholder read it: noise that happens to be within
atol/rtol fails (cosine similarity and the error relative to the reference's own magnitude), tolerances follow
the candidate's precision and can be overridden, and where the data carry labels the task metric decides. Real
ONNX Runtime, real Polygraphy, a real TensorRT-RTX INT8 build."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from workbench.accuracy import (
    CompareRequest,
    CompareSpec,
    ComparisonResult,
    candidate_from_build,
    candidate_from_path,
    compare,
    load_data,
    simulate_fp16,
    simulate_qdq,
)
from workbench.accuracy.comparison import COMPARISON_FILE, REPORT_FILE
from workbench.accuracy.tolerances import DEFAULTS, detect_precision, resolve
from workbench.calibration_data import load_npz, model_inputs
from workbench.cli import main as cli_main
from workbench.errors import SpecError
from workbench.quantize import QuantizeSpec
from workbench.samples import get_sample


def _tiny_scale_model(weights: list[np.ndarray], extra_scale: float | None = None) -> onnx.ModelProto:
    """x[N,16] → MatMul → Relu → MatMul → y[N,8], with random weights of the given (small) magnitude: outputs
    far below any atol, like a deep randomly initialised network's; ``extra_scale`` multiplies the output."""
    w1, w2 = weights
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"], name="fc1"),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        helper.make_node("MatMul", ["r", "w2"], ["y" if extra_scale is None else "z"], name="fc2"),
    ]
    inits = [numpy_helper.from_array(w1.astype(np.float32), "w1"), numpy_helper.from_array(w2.astype(np.float32), "w2")]
    if extra_scale is not None:
        inits.append(numpy_helper.from_array(np.array(extra_scale, np.float32), "s"))
        nodes.append(helper.make_node("Mul", ["z", "s"], ["y"], name="scale"))
    g = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8])], inits,
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


@pytest.fixture()
def tiny(tmp_path):
    rng = np.random.default_rng(0)
    w = [rng.normal(size=(16, 32)) * 1e-3, rng.normal(size=(32, 8)) * 1e-3]  # outputs around 1e-5
    model = tmp_path / "tiny.onnx"
    onnx.save(_tiny_scale_model(w), str(model))
    data = tmp_path / "x.npz"
    np.savez(data, x=rng.random((64, 16), np.float32))
    return model, data, w


@pytest.mark.parametrize("how", ["shuffled", "scaled by 1e-10"])
def test_an_uncorrelated_candidate_within_atol_and_rtol_fails_the_verdict(tiny, tmp_path, how):
    """Every element is within FP32's atol (the outputs are around 1e-5), so Polygraphy's check alone passes it;
    cosine similarity (shuffled weights) or the error relative to the reference's own size (a candidate 1e-10
    times too small) fails it, in the result, the JSON, the report and the CLI's exit code."""
    model, data, (w1, w2) = tiny
    if how == "shuffled":
        rng = np.random.default_rng(1)
        cand = _tiny_scale_model([rng.permutation(w1.ravel()).reshape(w1.shape), rng.permutation(w2.ravel()).reshape(w2.shape)])
    else:
        cand = _tiny_scale_model([w1, w2], extra_scale=1e-10)
    cand_path = tmp_path / "candidate.onnx"
    onnx.save(cand, str(cand_path))

    out = tmp_path / "cmp"
    result = compare(model, candidate_from_path(cand_path), load_data(model, data), CompareSpec(), out_dir=out)
    (y,) = result.output_results()
    assert result.precision == "fp32" and y.max_abs < result.atol  # within atol everywhere...
    assert y.within_atol_rtol is True  # ...so Polygraphy's atol/rtol check passes it
    if how == "shuffled":
        assert abs(y.cosine) < 0.9
    else:
        assert y.cosine == pytest.approx(1.0) and y.rel_rms == pytest.approx(1.0, abs=1e-6)
    assert y.scale_ok is False and not y.passed and "cosine/rel. error" in y.failed_checks()
    assert not result.outputs_passed and not result.passed and result.status == "fail"
    assert result.summary().startswith("FAIL: model outputs NOT within the FP32 tolerances")

    saved = json.loads((out / COMPARISON_FILE).read_text())
    assert saved["precision"] == "fp32" and saved["outputs_passed"] is False and saved["passed"] is False
    assert saved["min_cosine"] == DEFAULTS["fp32"].min_cosine
    assert saved["max_rel_error"] == DEFAULTS["fp32"].max_rel_error
    report = (out / REPORT_FILE).read_text()
    assert report.index('class="verdict v-fail"') < report.index("<h2>Model outputs</h2>")
    assert "cosine/rel. error" in report

    assert cli_main(["compare", str(model), "--candidate", str(cand_path), "--data", str(data)]) == 1


def test_fp16_weights_below_fp16s_range_are_not_a_pass(tiny, tmp_path):
    """A randomly initialised network whose weights lie below FP16's range: the FP16 converter clamps them up to
    1e-7 (outputs ten times too large), a naive cast flushes them to zero (outputs 0, cosine 0). Both are within
    FP16's atol of outputs around 1e-8; neither passes."""
    model, data, (w1, w2) = tiny
    small = tmp_path / "small.onnx"
    onnx.save(_tiny_scale_model([w1, w2 * 1e-5]), str(small))  # second layer's weights around 1e-8
    converted = simulate_fp16(small, tmp_path / "fp16")
    net = onnx.load(str(converted.path))
    for init in net.graph.initializer:
        if init.name == "w2":  # what a cast without clamping writes: every weight flushed to zero
            init.CopyFrom(numpy_helper.from_array((w2 * 1e-5).astype(np.float16), "w2"))
    flushed = tmp_path / "flushed.onnx"
    onnx.save(net, str(flushed))
    for cand, check in ((converted, "rel"), (candidate_from_path(flushed), "cosine")):
        result = compare(small, cand, load_data(small, data), CompareSpec())
        (y,) = result.output_results()
        assert result.precision == "fp16" and result.tolerance_source == "defaults for FP16"
        assert y.within_atol_rtol is True and y.scale_ok is False and result.status == "fail", check
        assert (y.rel_rms > 1.0) if check == "rel" else (y.cosine == 0.0)


def test_tolerances_follow_the_precision_and_can_be_overridden(tmp_path):
    """Defaults per precision (visible in the CLI's help), detected from the candidate's file; a value given
    replaces one default, and the result says which."""
    assert resolve("int8") == (DEFAULTS["int8"], ())
    tol, overridden = resolve("fp16", atol=0.5, rtol=DEFAULTS["fp16"].rtol)
    assert tol.atol == 0.5 and tol.rtol == DEFAULTS["fp16"].rtol and overridden == ("atol",)
    assert DEFAULTS["fp32"].max_rel_error < DEFAULTS["fp16"].max_rel_error < DEFAULTS["int8"].max_rel_error
    assert DEFAULTS["fp32"].min_cosine > DEFAULTS["bf16"].min_cosine > DEFAULTS["int8"].min_cosine
    for bad in (dict(min_cosine=1.5), dict(max_rel_error=-1.0), dict(task_max_drop_pp=-1.0), dict(atol=-1.0)):
        with pytest.raises(SpecError):
            CompareSpec(**bad)

    s = get_sample("digits_mlp")
    calib = load_npz(s.calibration_data, model_inputs(s.path))
    qdq, _ = simulate_qdq(s.path, tmp_path / "q", calib, QuantizeSpec(calibrator="minmax", precision="fp8"))
    fp16 = simulate_fp16(s.path, tmp_path / "h")
    assert [detect_precision(p) for p in (s.path, fp16.path, qdq.path)] == ["fp32", "fp16", "fp8"]

    test = load_data(s.path, s.test_data)
    own = compare(s.path, candidate_from_path(fp16.path), test, CompareSpec(max_samples=64, min_cosine=0.9))
    assert own.precision == "fp16" and own.min_cosine == 0.9 and own.atol == DEFAULTS["fp16"].atol
    assert own.tolerance_source == "defaults for FP16; set by you: min_cosine"


def test_an_older_saved_comparison_still_reads_with_its_own_verdict(tmp_path):
    """comparison.json files written before the scale-aware check have no precision or tolerances for it: they
    load, keep their saved verdict, and say nothing about cosine bounds they were never checked against."""
    s = get_sample("digits_mlp")
    result = compare(s.path, simulate_fp16(s.path, tmp_path), load_data(s.path, s.test_data), CompareSpec(max_samples=32))
    old = result.to_dict()
    for k in ("precision", "min_cosine", "max_rel_error", "tolerance_source", "outputs_passed", "task_max_drop_pp"):
        old.pop(k)
    for t in old["tensors"]:
        t.pop("within_atol_rtol"), t.pop("scale_ok")
    again = ComparisonResult.from_dict(old)
    assert again.outputs_ok == again.passed == result.passed
    assert "cosine" not in again.tolerances_text() and again.tensors[0].failed_checks() == ""


# ---------------------------------------------------------------------------------------------- the demo's case


@pytest.fixture(scope="module")
def digits_int8_build(session_wb):
    """A real TensorRT-RTX INT8 build of the digits sample, calibrated with entropy as the demo does."""
    pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX (tensorrt-rtx-cu13) is not installed")
    from workbench.spec import BuildSpec, CalibrationSpec

    sample = get_sample("digits_mlp")
    ref = session_wb.import_path(sample.path)
    spec = BuildSpec(
        precision="int8",
        profiles=sample.profiles(),
        calibration=CalibrationSpec(data_path=str(sample.calibration_data), calibrator="entropy"),
    )
    job = session_wb.jobs.wait(session_wb.submit_build(ref, spec), timeout=300)
    assert job.status == "succeeded", (job.error, session_wb.jobs.read_log(job.id)[0][-3000:])
    return job, ref


def test_the_digits_int8_build_compared_with_labels_is_not_a_red_fail(session_wb, digits_int8_build):
    """The demo used to end on a red FAIL ("6 of 6 tensors out of tolerance") with top-1 unchanged: its INT8
    build was held to atol=rtol=1e-3 element-wise. Held to INT8's tolerances, with the task metric weighed, the
    verdict passes; even under the old tolerances the task holds and says so."""
    job, ref = digits_int8_build
    sample = get_sample("digits_mlp")
    test = load_data(sample.path, sample.test_data)
    cand = candidate_from_build(session_wb.jobs.job_dir(job.id), sample.path)
    assert cand.precision == "int8"

    result = compare(sample.path, cand, test, CompareSpec(label_output="logits"))
    assert result.precision == "int8" and result.tolerance_source == "defaults for INT8"
    assert result.task is not None and result.task_held and result.passed and result.status != "fail"
    assert result.summary().startswith("PASS") and "top-1 on 'logits' holds" in result.summary()
    assert sum(t.passed for t in result.tensors) == len(result.tensors)  # per-layer: INT8's tolerances too

    old_rule = compare(sample.path, cand, test, CompareSpec(label_output="logits", atol=1e-3, rtol=1e-3,
                                                              error_stat="elemwise"))
    assert not old_rule.outputs_passed  # what the demo showed as FAIL
    assert old_rule.status == "task holds" and old_rule.passed and old_rule.status_label == "PASS — task holds"

    # The job summary the demo report and the comparison list read.
    from workbench.accuracy import submit_compare

    cmp = session_wb.jobs.wait(
        submit_compare(session_wb.jobs, ref, CompareRequest(source="build", build_job=job.id,
                                                            data_path=str(sample.test_data),
                                                            spec=CompareSpec(label_output="logits"))),
        timeout=300,
    )
    assert cmp.status == "succeeded", cmp.error
    assert cmp.result["status"] == "pass" and cmp.result["precision"] == "int8"
    assert cmp.result["task"]["held"] is True and cmp.result["n_outputs_failed"] == 0
    from workbench.accuracy.options import build_facts, comparison_label

    assert comparison_label(cmp).endswith("· PASS")
    # Beside the verdict, the Accuracy page shows the compared build's speed-relevant facts.
    facts = {label: (value, tip) for label, value, _, tip in build_facts(session_wb.jobs, job.id)}
    assert facts["Plan size"][0] == f"{job.result['plan_bytes'] / 1024:.1f} KiB"
    mix = job.result["precision_check"]["mix"]
    assert facts["Engine layers"][0] == str(sum(mix.values())) and "INT8" in facts["Engine layers"][1]


def test_the_accuracy_page_shows_the_precisions_tolerances_and_takes_the_users_own(app_ws):
    from tests.conftest import open_page
    from workbench import ui
    from workbench.accuracy import load_comparison

    ref = app_ws.import_path(get_sample("digits_mlp").path)
    at = open_page("accuracy", 60, **{ui.MODEL_DIGEST: ref.digest})
    at.radio(key="accuracy.source").set_value("int8").run()
    assert any("Tolerances for INT8 (defaults): atol 0.001, rtol 0.1 (median), cosine ≥ 0.99" in c.value
               for c in at.caption)
    assert "| INT8 | 0.001 | 0.1 | median | 0.99 | 0.15 |" in at.toggle(key="accuracy.custom_tolerances").help
    at.toggle(key="accuracy.custom_tolerances").set_value(True).run()
    assert at.number_input(key="accuracy.atol.int8").value == DEFAULTS["int8"].atol
    assert at.number_input(key="accuracy.min_cosine.int8").value == DEFAULTS["int8"].min_cosine
    at.number_input(key="accuracy.max_rel_error.int8").set_value(0.001).run()
    at.selectbox(key="accuracy.calibrator").set_value("minmax")
    at.selectbox(key="accuracy.label").set_value("logits")
    at.button(key="accuracy.submit").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    job_id = at.session_state["accuracy.job_id"]
    job = app_ws.jobs.wait(job_id, timeout=180)
    assert job.status == "succeeded", job.error
    assert job.payload["request"]["spec"]["max_rel_error"] == 0.001
    at.run()
    result = load_comparison(app_ws.jobs.job_dir(job_id))
    assert result.max_rel_error == 0.001 and result.tolerance_source == "defaults for INT8; set by you: max_rel_error"
    assert not result.outputs_ok and result.status == "task holds"  # 0.1% is tighter than INT8 gets
    # What matters first: the verdict sentence, then the task metric, then the outputs and the per-layer detail.
    assert any(s.value == result.summary() for s in at.success)
    labels = [m.label for m in at.metric]
    assert labels.index("Verdict") < labels.index("Top-1 (logits)") < labels.index("Model outputs")
    assert labels.index("Model outputs") < labels.index("Tensors within tolerance")

    at.radio(key="accuracy.source").set_value("fp16").run()
    assert any("Tolerances for FP16 (defaults): atol 0.01, rtol 0.01 (elemwise)" in c.value for c in at.caption)
    assert at.number_input(key="accuracy.atol.fp16").value == DEFAULTS["fp16"].atol


def test_the_cli_help_lists_the_defaults_per_precision(capsys):
    with pytest.raises(SystemExit):
        cli_main(["compare", "--help"])
    text = capsys.readouterr().out
    for p, t in DEFAULTS.items():
        assert f"{p.upper():5} atol {t.atol:<6g} rtol {t.rtol:<6g} {t.error_stat:8} cosine >= {t.min_cosine:<7g}" in text
    assert "--min-cosine" in text and "--max-rel-error" in text and "--max-top1-drop" in text
