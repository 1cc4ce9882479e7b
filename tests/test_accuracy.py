"""Accuracy debugging, as a deployment engineer meets it: an INT8 (or FP16) version of a model is compared with
ONNX Runtime running the FP32 original, tensor by tensor, through Polygraphy; the culprit finder names the layer
that adds the error; keeping it in float and comparing again shows the difference. Real ONNX Runtime sessions,
real Polygraphy, real TensorRT-RTX builds; expected values are derived from independent runs, never typed in."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from tests.conftest import gpu_reason
from workbench.accuracy import (
    ENGINE,
    ORT_ONNX,
    SIM_FP16,
    SIM_QDQ,
    Candidate,
    CompareRequest,
    CompareSpec,
    ComparisonResult,
    candidate_from_build,
    candidate_from_path,
    compare,
    load_before_after,
    load_comparison,
    load_data,
    load_samples,
    requantize_and_compare,
    run_compare,
    simulate_fp16,
    simulate_qdq,
)
from workbench.accuracy.comparison import COMPARISON_FILE, REPORT_FILE, RESULTS_FILE
from workbench.accuracy.graph import engine_links, link_tensors, read_graph
from workbench.accuracy.job import requantize_request
from workbench.calibration_data import load_npz, model_inputs
from workbench.cli import main as cli_main
from workbench.errors import BackendUnavailable, JobError, ModelError, SpecError
from workbench.jobs import Job
from workbench.quantize import QuantizeSpec, qdq_summary, run_model
from workbench.samples import get_sample

QDQ = ("QuantizeLinear", "DequantizeLinear")


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def digits():
    sample = get_sample("digits_mlp")
    calib = load_npz(sample.calibration_data, model_inputs(sample.path))
    test = load_data(sample.path, sample.test_data)
    return sample.path, calib, test


@pytest.fixture(scope="module")
def qdq(digits, tmp_path_factory) -> Candidate:
    """The digits MLP quantized to INT8 Q/DQ (min-max calibration on its calibration split)."""
    model, calib, _ = digits
    candidate, _ = simulate_qdq(
        model, tmp_path_factory.mktemp("qdq"), calib, QuantizeSpec(calibrator="minmax")
    )
    return candidate


@pytest.fixture(scope="module")
def clean_run(digits, qdq, tmp_path_factory):
    """A per-layer comparison of the INT8 model on the labelled held-out split, artifacts written."""
    model, _, test = digits
    out = tmp_path_factory.mktemp("compare")
    return compare(model, qdq, test, CompareSpec(max_samples=450), out_dir=out), out


@pytest.fixture(scope="module")
def transformer():
    sample = get_sample("transformer_block")
    seq = sample.suggested_profiles[0]["opt"]["hidden"][1]
    return sample.path, load_data(sample.path, None, shapes={"hidden": [seq, 64]}, n_random=8)


def _ort(model: Path, x: np.ndarray) -> np.ndarray:
    """The model's first output from a plain ONNX Runtime session (what the comparison must agree with)."""
    outs = run_model(model, {"input": x})
    return next(iter(outs.values()))


def _with_scale(qdq_path: Path, scale_name: str, factor: float, out: Path) -> Path:
    model = onnx.load(str(qdq_path))
    for init in model.graph.initializer:
        if init.name == scale_name:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * factor, scale_name))
    onnx.save(model, str(out))
    return out


# ---------------------------------------------------------------------------------------------- end to end


def test_an_int8_qdq_model_is_compared_layer_by_layer_against_fp32(digits, qdq, clean_run):
    model, _, test = digits
    result, out = clean_run
    assert result.candidate_kind == SIM_QDQ and result.is_simulation
    assert "simulation" in result.kind_label and "not an engine result" in result.kind_label

    # Every activation of the FP32 model is compared with the value the next layer really sees: the output of
    # the DequantizeLinear that follows it in the Q/DQ model (the graph output keeps its own name).
    fp32 = onnx.load(str(model))
    q = onnx.load(str(qdq.path))
    q_out = {n.output[0]: n.input[0] for n in q.graph.node if n.op_type == "QuantizeLinear"}
    dq_of = {
        q_out[n.input[0]]: n.output[0]
        for n in q.graph.node
        if n.op_type == "DequantizeLinear" and n.input[0] in q_out
    }
    activations = [o for n in fp32.graph.node for o in n.output]
    assert [t.name for t in result.tensors] == ["input", *activations]
    for t in result.tensors:
        assert t.candidate_name == dq_of.get(t.name, t.name)

    # The numbers agree with plain ONNX Runtime sessions of both models.
    x = test.arrays["input"][:450]
    ref, cand = _ort(model, x), _ort(qdq.path, x)
    logits = result.tensor("logits")
    assert logits.is_output and logits.producer == "head/gemm"
    assert logits.max_abs == pytest.approx(float(np.abs(cand - ref).max()), rel=1e-5)
    cos = float(np.dot(ref.ravel(), cand.ravel()) / (np.linalg.norm(ref) * np.linalg.norm(cand)))
    assert logits.cosine == pytest.approx(cos, abs=1e-6)
    rel = float(np.linalg.norm(cand - ref) / np.linalg.norm(ref))
    assert logits.rel_rms == pytest.approx(rel, rel=1e-5)
    assert logits.snr_db == pytest.approx(-20 * math.log10(rel), rel=1e-5)

    # The INT8 candidate is held to INT8's tolerances: Polygraphy's check of the median errors per batch
    # (an element-wise check fails a healthy INT8 model on its worst element) and the scale-aware check.
    assert (result.precision, result.error_stat, result.tolerance_source) == ("int8", "median", "defaults for INT8")
    diff, rel_err = np.abs(cand - ref), np.abs(cand - ref) / np.maximum(np.abs(ref), 2.2e-16)
    batches = range(0, len(x), CompareSpec().batch_size)
    within = all(
        not (np.median(diff[i : i + 64]) > result.atol and np.median(rel_err[i : i + 64]) > result.rtol)
        for i in batches
    )
    scale = cos >= result.min_cosine and rel <= result.max_rel_error
    assert logits.within_atol_rtol == within and logits.scale_ok == scale
    assert logits.passed == (within and scale) and result.outputs_passed == logits.passed
    assert logits.needed_atol == pytest.approx(float(diff[rel_err > result.rtol].max()), rel=1e-5)
    assert not ((diff > logits.needed_atol * (1 + 1e-6)) & (rel_err > result.rtol)).any()

    # What the error costs: top-1 accuracy on the labels, reference vs candidate.
    labels = test.extras["label"][:450]
    assert result.task.reference_accuracy == pytest.approx(float(np.mean(ref.argmax(1) == labels)))
    assert result.task.candidate_accuracy == pytest.approx(float(np.mean(cand.argmax(1) == labels)))
    assert result.task.agreement == pytest.approx(float(np.mean(ref.argmax(1) == cand.argmax(1))))

    # The culprit finder ranks by error added, and names ONNX nodes the quantizer accepts.
    assert result.culprits and result.culprits[0].score == max(t.score for t in result.tensors)
    names = {n.name for n in fp32.graph.node}
    assert set(result.proposed_exclusions) <= names and result.proposed_exclusions
    assert result.jump in {t.name for t in result.tensors}


def test_the_comparison_is_saved_in_polygraphys_format_and_as_an_offline_report(digits, clean_run):
    from polygraphy.comparator import RunResults

    result, out = clean_run
    saved = RunResults.load(str(out / RESULTS_FILE))
    runners = list(saved.keys())
    assert runners[0].startswith("candidate: ORT simulation (Q/DQ)") and runners[1].startswith("reference:")
    cand_iters, ref_iters = list(saved.values())
    assert len(cand_iters) == result.n_iterations
    stacked = np.concatenate([it["logits"] for it in cand_iters])
    assert stacked.shape == (result.n_samples, 10)

    again = load_comparison(out)
    assert again.to_dict() == result.to_dict()
    assert json.loads((out / COMPARISON_FILE).read_text())["candidate_label"] == result.kind_label
    samples = load_samples(out / "compare_tensors.npz")
    assert set(samples) == {t.name for t in result.tensors}

    page = (out / REPORT_FILE).read_text()
    assert result.kind_label in page and "not a measurement of a TensorRT engine" in page
    assert 'src="http' not in page and "<script src=" not in page  # plotly.js is inlined: opens offline
    for t in result.tensors:
        assert t.name in page
    assert page.count('class="sortable"') >= 2


# ---------------------------------------------------------------------------------------------- culprit finder


def _sabotage_cases(qdq_path: Path) -> list[tuple[str, str]]:
    """(scale initializer, the ONNX node that owns it) for every scale in the Q/DQ model: an activation's
    QuantizeLinear belongs to the node producing the tensor (or, for a graph input, the node reading it); a
    weight's DequantizeLinear to the node reading the weight."""
    q = onnx.load(str(qdq_path))
    inits = {i.name for i in q.graph.initializer}
    producer = {o: n for n in q.graph.node for o in n.output}
    readers: dict[str, list] = {}
    for n in q.graph.node:
        for x in n.input:
            readers.setdefault(x, []).append(n)
    dq_after = {n.input[0]: n for n in q.graph.node if n.op_type == "DequantizeLinear"}
    cases = []
    for n in q.graph.node:
        if n.op_type == "QuantizeLinear":
            src = producer.get(n.input[0])
            owner = (
                src.name
                if src is not None
                else next(r.name for r in readers[dq_after[n.output[0]].output[0]] if r.op_type not in QDQ)
            )
            cases.append((n.input[1], owner))
        elif n.op_type == "DequantizeLinear" and n.input[0] in inits:
            cases.append((n.input[1], next(r.name for r in readers[n.output[0]] if r.op_type not in QDQ)))
    return cases


def test_a_sabotaged_quantization_scale_is_ranked_first(digits, qdq, tmp_path):
    """Each scale of the Q/DQ model in turn is multiplied by 50; the culprit finder must blame its owner."""
    model, _, test = digits
    cases = _sabotage_cases(qdq.path)
    assert len(cases) >= 6
    misses = []
    for scale, owner in cases:
        sabotaged = _with_scale(qdq.path, scale, 50.0, tmp_path / "sabotaged.onnx")
        result = compare(model, candidate_from_path(sabotaged), test, CompareSpec(max_samples=128))
        top, second = result.culprits[0], result.culprits[1]
        ok = (
            top.nodes[0] == owner  # the node producing the tensor (for a graph input: the node reading it)
            and top.score > 2 * second.score
            and result.jump == top.tensor
            and owner in result.proposed_exclusions
        )
        if not ok:
            misses.append((scale, owner, result.culprits[:2], result.jump))
    assert not misses, misses


def test_keeping_the_culprits_in_float_and_comparing_again_shows_before_and_after(
    digits, clean_run, tmp_path
):
    model, calib, test = digits
    before, _ = clean_run
    keep = before.proposed_exclusions
    ba = requantize_and_compare(
        model,
        calib,
        QuantizeSpec(calibrator="minmax"),
        keep,
        test,
        before,
        tmp_path,
        CompareSpec(max_samples=450),
    )
    qdq_after = tmp_path / ba.qdq_model
    summary = qdq_summary(qdq_after)
    assert set(keep) <= set(summary.float_nodes) and set(keep) <= set(ba.excluded)
    top = before.culprits[0].tensor
    assert ba.after.tensor(top).rel_rms < 0.5 * before.tensor(top).rel_rms
    rows = {(r["tensor"], r["metric"]): r for r in ba.rows()}
    assert rows[("logits", "rel_rms")]["before"] == before.tensor("logits").rel_rms
    assert rows[("logits", "rel_rms")]["after"] == ba.after.tensor("logits").rel_rms
    assert (tmp_path / "before_after.json").is_file()
    assert "Before / after" in (tmp_path / REPORT_FILE).read_text()
    with pytest.raises(SpecError):
        requantize_and_compare(model, calib, QuantizeSpec(), (), test, before, tmp_path)


# ---------------------------------------------------------------------------------------------- FP16, NaN/Inf


def test_the_fp16_simulation_of_the_transformer_is_within_tolerance(transformer, tmp_path):
    model, data = transformer
    cand = simulate_fp16(model, tmp_path)
    assert cand.kind == SIM_FP16 and candidate_from_path(cand.path).kind == SIM_FP16
    result = compare(model, cand, data, CompareSpec(atol=1e-2, rtol=1e-2))
    assert result.passed, [(t.name, t.max_abs) for t in result.tensors if not t.passed]
    assert len(result.tensors) == len(read_graph(model).tensors) - 1  # every node output (not the input)
    assert all(0 < t.rel_rms < 1e-2 for t in result.tensors)  # really FP16, and close
    assert "float16" in {t.candidate_dtype for t in result.tensors}
    assert result.synthetic_data and any("random data" in w for w in result.warnings)
    strict = compare(model, cand, data, CompareSpec(atol=1e-6, rtol=1e-6, per_layer=False))
    assert not strict.passed and [t.name for t in strict.tensors] == ["output"]


def test_nan_and_inf_are_found_first_with_the_layer_where_they_appear(transformer, tmp_path):
    """An FP16 overflow: the attention scale multiplied so the scores exceed 65504."""
    model, data = transformer
    cand = simulate_fp16(model, tmp_path)
    net = onnx.load(str(cand.path))
    node = next(n for n in net.graph.node if n.op_type == "Mul" and n.name == "attn/scale")
    const = next(i for i in net.graph.initializer if i.name in node.input)
    const.CopyFrom(
        numpy_helper.from_array(
            (numpy_helper.to_array(const).astype(np.float32) * 1e5).astype(np.float16), const.name
        )
    )
    onnx.save(net, str(tmp_path / "overflow.onnx"))
    result = compare(model, candidate_from_path(tmp_path / "overflow.onnx"), data, CompareSpec())
    assert result.first_nonfinite == node.output[0] and result.first_nonfinite_node == node.name
    assert not result.passed and result.warnings[0].startswith("NaN/Inf first appear")
    assert result.culprits[0].tensor == node.output[0]


# ---------------------------------------------------------------------------------------------- candidates


def test_candidates_say_what_they_are(digits, qdq, tmp_path):
    model, _, _ = digits
    assert candidate_from_path(qdq.path).kind == SIM_QDQ
    assert candidate_from_path(model).kind == ORT_ONNX
    with pytest.raises(ModelError):
        candidate_from_path(tmp_path / "missing.onnx")
    other = get_sample("transformer_block").path
    with pytest.raises(ModelError, match="not a version of the same model"):
        compare(model, candidate_from_path(other), load_data(model, None), CompareSpec())


def test_a_plan_cannot_run_without_a_gpu_and_the_message_says_what_to_compare_instead(tmp_path):
    reason = gpu_reason()
    if reason is None:
        pytest.skip("engines can run on this machine")
    plan = tmp_path / "model.plan"
    plan.write_bytes(b"not run")
    with pytest.raises(BackendUnavailable) as err:
        candidate_from_path(plan)
    assert "cannot run on this machine" in err.value.message and "Q/DQ" in err.value.hint


@pytest.fixture(scope="module")
def int8_build(session_wb):
    """A real TensorRT-RTX INT8 build of the digits MLP (Q/DQ, min-max calibration) through a build job."""
    pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX (tensorrt-rtx-cu13) is not installed")
    from workbench.spec import BuildSpec, CalibrationSpec, profiles_from_args

    sample = get_sample("digits_mlp")
    ref = session_wb.import_path(sample.path)
    spec = BuildSpec(
        precision="int8",
        profiles=profiles_from_args(["input:1x64"], ["input:32x64"], ["input:256x64"]),
        calibration=CalibrationSpec(data_path=str(sample.calibration_data), calibrator="minmax"),
    )
    job_id = session_wb.submit_build(ref, spec)
    job = session_wb.jobs.wait(job_id, timeout=300)
    assert job.status == "succeeded", (job.error, session_wb.jobs.read_log(job_id)[0][-3000:])
    return session_wb.jobs.job_dir(job_id), sample.path


def test_an_int8_build_is_compared_through_its_qdq_network_where_engines_cannot_run(
    int8_build, digits, session_wb
):
    job_dir, model = int8_build
    cand = candidate_from_build(job_dir, model)
    if gpu_reason() is None:
        assert cand.kind == ENGINE
        return
    assert cand.kind == SIM_QDQ and cand.path == job_dir / "model_qdq.onnx"
    assert "simulated in ONNX Runtime" in cand.source and job_dir.name in cand.source
    result = compare(model, cand, digits[2], CompareSpec(max_samples=64))
    assert result.is_simulation and result.tensors

    # "Re-quantize without these" after comparing a build: calibrated the way the build was.
    request = CompareRequest(source="build", build_job=job_dir.name)
    before = Job(
        id="b" * 22,
        kind="compare",
        title="t",
        status="succeeded",
        created=0.0,
        payload={"model_path": str(model), "request": request.to_dict()},
        result={"candidate_kind": result.candidate_kind},
    )
    again = requantize_request(session_wb.jobs, before, list(result.proposed_exclusions))
    build_spec = json.loads((job_dir / "spec.json").read_text())
    assert again.source == "requantize" and again.before_job == before.id
    assert again.calib_path == build_spec["calibration"]["data_path"]
    assert again.calibrator == build_spec["calibration"]["calibrator"] and again.precision == "int8"
    assert again.exclude_more == result.proposed_exclusions


def test_engine_layer_boundaries_name_the_tensors_that_survive_in_the_engine(int8_build, digits):
    """Per-layer comparison of an engine compares only tensors that exist between its layers; INT8 boundaries
    are read through their QuantizeLinear's scale."""
    from workbench.layers import load_layers

    job_dir, model = int8_build
    ref = read_graph(model)
    layers = load_layers(job_dir / "layers.json")
    network = job_dir / "model_qdq.onnx"
    links, missing = engine_links(ref, network, layers)
    every, _ = link_tensors(ref, network)
    assert {lk.reference for lk in links} <= {lk.reference for lk in every} | set(ref.graph_inputs)
    assert "logits" in {lk.reference for lk in links}
    assert missing, "the engine fuses: some FP32 tensors do not survive"
    in_layers = {n for ly in layers.for_profile(0) for n in ly.onnx_nodes}
    net = read_graph(network)
    assert all(net.producer[lk.candidate] in in_layers for lk in links)
    quantized = [lk for lk in links if lk.scale is not None]
    assert quantized, "an INT8 engine has INT8 layer boundaries"
    x = digits[2].arrays["input"][:16]
    # Dequantizing the INT8 values ONNX Runtime computes for a boundary gives exactly the DequantizeLinear output.
    from workbench.accuracy.runners import ort_runner

    names = [lk.candidate for lk in quantized]
    dq = {
        lk.candidate: next(
            n.output[0]
            for n in onnx.load(str(network)).graph.node
            if n.op_type == "DequantizeLinear" and n.input[0] == lk.candidate
        )
        for lk in quantized
    }
    with ort_runner(network, names + list(dq.values()), "check", job_dir) as runner:
        out = runner.infer({"input": x})
    for lk in quantized:
        np.testing.assert_array_equal(lk.values(out[lk.candidate]), out[dq[lk.candidate]])


@pytest.mark.gpu
def test_an_engine_is_compared_through_polygraphys_tensorrt_runner(int8_build, digits, tmp_path):
    reason = gpu_reason()
    if reason is not None:
        pytest.skip(reason)
    job_dir, model = int8_build
    cand = candidate_from_build(job_dir, model)
    assert cand.kind == ENGINE
    result = compare(model, cand, digits[2], CompareSpec(max_samples=64), out_dir=tmp_path)
    assert result.candidate_kind == ENGINE and not result.is_simulation
    assert "logits" in {t.name for t in result.tensors}


# ---------------------------------------------------------------------------------------------- job and CLI


def test_the_compare_task_quantizes_compares_and_writes_its_artifacts(digits, tmp_path):
    model, _, _ = digits
    sample = get_sample("digits_mlp")
    request = CompareRequest(
        source="int8",
        calib_path=str(sample.calibration_data),
        calibrator="minmax",
        data_path=str(sample.test_data),
        spec=CompareSpec(max_samples=64),
    )
    job = Job(
        id="x" * 22,
        kind="compare",
        title="t",
        status="running",
        created=0.0,
        payload={"model_path": str(model), "request": request.to_dict()},
    )
    from workbench.progress import NullReporter

    summary = run_compare(job, tmp_path, NullReporter())
    result = ComparisonResult.load(tmp_path / COMPARISON_FILE)
    assert summary["passed"] == result.passed and summary["candidate_kind"] == SIM_QDQ
    assert summary["proposed_exclusions"] == list(result.proposed_exclusions)
    assert (tmp_path / "model_qdq.onnx").is_file() and (tmp_path / REPORT_FILE).is_file()
    assert CompareRequest.from_dict(json.loads(json.dumps(request.to_dict()))) == request

    fp16 = CompareRequest(source="fp16", spec=CompareSpec(per_layer=False), n_random=16)
    job.payload["request"] = fp16.to_dict()
    summary = run_compare(job, tmp_path / "fp16", NullReporter())
    assert summary["candidate_kind"] == SIM_FP16 and summary["synthetic_data"]
    assert (tmp_path / "fp16" / "network.onnx").is_file()


def test_cli_exit_codes(digits, qdq, tmp_path, capsys):
    model, _, _ = digits
    data = str(get_sample("digits_mlp").test_data)
    args = ["compare", str(model), "--candidate", str(qdq.path), "--data", data, "--max-samples", "64"]
    out_json, out_html = tmp_path / "c.json", tmp_path / "c.html"
    code = cli_main([*args, "--per-layer", "--json", str(out_json), "--html", str(out_html)])
    printed = capsys.readouterr().out
    saved = ComparisonResult.load(out_json)
    assert code == (0 if saved.passed else 1) == 0  # a healthy INT8 model, held to INT8's tolerances
    assert "Verdict:   PASS" in printed and "not an engine result" in printed and "Culprits" in printed
    assert "Tolerances for INT8: atol=0.001, rtol=0.1, median" in printed and "defaults for INT8" in printed
    assert f"(FP32) on {saved.reference_provider}" in printed and saved.reference_provider
    assert out_html.stat().st_size > 0 and saved.per_layer

    # Tighter than INT8 can be: the outputs are beyond tolerance, yet with labels top-1 holds, and decides.
    strict = [*args, "--error-stat", "elemwise", "--atol", "1e-3", "--rtol", "1e-3"]
    assert cli_main(strict) == 0
    printed = capsys.readouterr().out
    assert "PASS — task holds" in printed and "set by you: rtol, error_stat" in printed
    assert "model outputs NOT within the INT8 tolerances" in printed
    # Without labels the outputs decide.
    no_labels = tmp_path / "inputs.npz"
    with np.load(data) as z:
        np.savez(no_labels, input=z["input"])
    assert cli_main([*strict[:5], str(no_labels), *strict[6:]]) == 1
    assert "Verdict:   FAIL" in capsys.readouterr().out
    worst = max(t.max_abs for t in saved.output_results())
    assert cli_main([*strict[:5], str(no_labels), *strict[6:-4], "--atol", str(worst * 2), "--rtol", "1e-3"]) == 0
    assert "Verdict:   PASS" in capsys.readouterr().out

    plan = tmp_path / "engine.plan"
    plan.write_bytes(b"\0" * 16)
    if gpu_reason() is not None:
        assert cli_main(["compare", str(model), "--candidate", str(plan)]) == 2
        assert "engines cannot run on this machine" in capsys.readouterr().err
    assert (
        cli_main(["compare", str(model), "--candidate", str(qdq.path), "--data", str(tmp_path / "no.npz")])
        == 2
    )
    assert cli_main([*args, "--atol", "-1"]) == 2
    assert cli_main(["compare", str(model), "--candidate", str(get_sample("transformer_block").path)]) == 2


# ---------------------------------------------------------------------------------------------- audit fixes


def _job(model: Path, request: CompareRequest, job_id: str = "r" * 22, result: dict | None = None) -> Job:
    return Job(
        id=job_id,
        kind="compare",
        title="t",
        status="succeeded" if result is not None else "running",
        created=0.0,
        payload={"model_path": str(model), "request": request.to_dict()},
        result=result or {},
    )


def test_no_calibration_data_is_refused_and_random_calibration_is_labelled_everywhere(digits, tmp_path):
    """No data never silently means random: the request is refused. Random calibration asked for explicitly
    runs, and the candidate's source, the result's warnings and the HTML report all say it is meaningless."""
    from workbench.progress import NullReporter

    model, _, _ = digits
    with pytest.raises(SpecError, match="needs calibration data"):
        CompareRequest(source="int8")
    with pytest.raises(SpecError, match="FP8 simulation needs calibration data"):
        CompareRequest(source="fp8")
    # a request saved before the explicit flag existed meant random data: read back as such
    old = CompareRequest(source="int8", calib_random=True).to_dict()
    del old["calib_random"]
    assert CompareRequest.from_dict(old).calib_random

    sample = get_sample("digits_mlp")
    request = CompareRequest(
        source="int8", calib_random=True, data_path=str(sample.test_data), spec=CompareSpec(max_samples=64)
    )
    summary = run_compare(_job(model, request), tmp_path, NullReporter())
    result = load_comparison(tmp_path)
    assert summary["synthetic_calibration"] and result.synthetic_calibration and not result.synthetic_data
    assert "calibrated on RANDOM data: shapes only — accuracy meaningless" in result.candidate_source
    assert any("calibrated on random data" in w and "accuracy meaningless" in w for w in result.warnings)
    html = (tmp_path / REPORT_FILE).read_text()
    assert "calibrated on RANDOM data: shapes only — accuracy meaningless" in html

    # Calibrated on the real split, the same comparison carries none of that.
    real = CompareRequest(
        source="int8",
        calib_path=str(sample.calibration_data),
        data_path=str(sample.test_data),
        spec=CompareSpec(max_samples=64),
    )
    run_compare(_job(model, real), tmp_path / "real", NullReporter())
    clean = load_comparison(tmp_path / "real")
    assert not clean.synthetic_calibration and "RANDOM" not in clean.candidate_source
    assert not any("calibrated on random data" in w for w in clean.warnings)


def test_random_calibration_is_named_in_build_titles_and_reports():
    from workbench.reports.build_report import render_report
    from workbench.spec import BuildSpec, CalibrationSpec

    random = BuildSpec(precision="int8", calibration=CalibrationSpec(synthetic=True))
    real = BuildSpec(precision="int8", calibration=CalibrationSpec(data_path="/ws/data/calib.npz"))
    reused = BuildSpec(
        precision="int8", calibration=CalibrationSpec(synthetic=True, ranges_path="/ws/calibration.json")
    )
    assert "RANDOM data (accuracy meaningless)" in random.summary()
    assert "RANDOM" not in real.summary() and "RANDOM" not in reused.summary()
    report = render_report({"id": "j"}, random, {}, "m.onnx", "d")
    assert "- Calibration: entropy on RANDOM data (shapes only — accuracy meaningless)" in report
    assert "- Calibration: entropy on calib.npz" in render_report({"id": "j"}, real, {}, "m.onnx", "d")


def test_the_reference_runs_on_the_provider_onnx_runtime_offers_and_says_which(clean_run):
    import onnxruntime as ort

    from workbench.accuracy.runners import ort_providers

    result, out = clean_run
    available = ort.get_available_providers()
    expected = "CUDAExecutionProvider" if "CUDAExecutionProvider" in available else "CPUExecutionProvider"
    assert ort_providers()[0] == expected
    assert result.reference_provider == expected and result.candidate_provider == expected
    assert ComparisonResult.load(out / COMPARISON_FILE).reference_provider == expected
    runners = [name for name, _ in json.loads((out / RESULTS_FILE).read_text())["lst"]]
    label = expected.removesuffix("ExecutionProvider")
    assert any(name.startswith("reference:") and f"({label})" in name for name in runners), runners
    assert f"ONNX Runtime running the original FP32 model on {expected}" in (out / REPORT_FILE).read_text()


def test_keeping_the_fp16_culprits_in_fp32_reduces_the_error(wb, tmp_path):
    """The FP16 remedy, measured, as the page runs it (comparison jobs in worker processes): the culprit
    finder's proposal kept in FP32 (the build's converter, with node_block_list) lowers the output error of the
    FP16 simulation, and the kept nodes really compute in FP32."""
    from workbench.accuracy import submit_compare

    sample = get_sample("transformer_block")
    ref = wb.import_path(sample.path)
    seq = sample.suggested_profiles[0]["opt"]["hidden"][1]
    request = CompareRequest(source="fp16", random_shapes={"hidden": [seq, 64]}, n_random=8)
    first = wb.jobs.wait(submit_compare(wb.jobs, ref, request), timeout=180)
    assert first.status == "succeeded", (first.error, wb.jobs.read_log(first.id)[0][-3000:])
    before = load_comparison(wb.jobs.job_dir(first.id))
    assert before.candidate_kind == SIM_FP16 and before.proposed_exclusions

    again = requantize_request(wb.jobs, first, list(before.proposed_exclusions))
    assert again is not None and again.source == "reconvert"
    second = wb.jobs.wait(submit_compare(wb.jobs, ref, again), timeout=180)
    assert second.status == "succeeded", (second.error, wb.jobs.read_log(second.id)[0][-3000:])
    out = wb.jobs.job_dir(second.id)
    ba = load_before_after(out)
    assert ba is not None and ba.before.to_dict() == before.to_dict()
    after = ba.after
    assert after.candidate_kind == SIM_FP16 and set(before.proposed_exclusions) <= set(ba.excluded)
    assert after.tensor("output").rel_rms < 0.9 * before.tensor("output").rel_rms, (
        before.tensor("output").rel_rms,
        after.tensor("output").rel_rms,
    )
    net = onnx.shape_inference.infer_shapes(onnx.load(str(out / "network.onnx")))
    kept = [n for n in net.graph.node if n.name in before.proposed_exclusions]
    assert len(kept) == len(before.proposed_exclusions)
    types = {vi.name: vi.type.tensor_type.elem_type for vi in (*net.graph.value_info, *net.graph.output)}
    for node in kept:
        assert [types.get(o) for o in node.output] == [onnx.TensorProto.FLOAT] * len(node.output), node.name
    html = (out / REPORT_FILE).read_text()
    assert "Before / after" in html and "trt-workbench quantize" not in html
    assert "Keep in FP32" in (wb.jobs.job_dir(first.id) / REPORT_FILE).read_text()
    # a name that is no node of the model is refused, not silently converted
    with pytest.raises(SpecError, match="no node 'attn/qk_matmull'"):
        simulate_fp16(sample.path, tmp_path / "typo", keep_nodes=["attn/qk_matmull"])


def test_an_fp16_build_is_rebuilt_with_its_culprits_kept_in_fp32(wb):
    """One click from the culprits to a new FP16 engine: a real TensorRT-RTX build whose network keeps the
    named nodes in FP32, and whose simulation is measurably closer to FP32 than the first build's."""
    pytest.importorskip("tensorrt_rtx", reason="FP16 builds need TensorRT-RTX (tensorrt-rtx-cu13)")
    from workbench.spec import BuildSpec

    sample = get_sample("transformer_block")
    ref = wb.import_path(sample.path)
    first = wb.jobs.wait(
        wb.submit_build(ref, BuildSpec(precision="fp16", profiles=sample.profiles()[:1])), timeout=300
    )
    assert first.status == "succeeded", (first.error, wb.jobs.read_log(first.id)[0][-3000:])
    seq = sample.suggested_profiles[0]["opt"]["hidden"][1]
    data = load_data(sample.path, None, shapes={"hidden": [seq, 64]}, n_random=8)
    cand = candidate_from_build(wb.jobs.job_dir(first.id), sample.path)
    if cand.kind == ENGINE:
        pytest.skip("engines run here: the FP16 simulation path is what this test measures")
    before = compare(sample.path, cand, data, CompareSpec())
    keep = list(before.proposed_exclusions)
    assert keep

    with pytest.raises(SpecError, match="no node or op type 'nope'"):
        wb.rebuild_keeping_float(first.id, [*keep, "nope"])
    second = wb.jobs.wait(wb.rebuild_keeping_float(first.id, keep), timeout=300)
    assert second.status == "succeeded", (second.error, wb.jobs.read_log(second.id)[0][-3000:])
    spec = BuildSpec.from_dict(second.payload["spec"])
    assert spec.precision == "fp16" and set(spec.keep_fp32_nodes) | set(spec.keep_fp32_op_types) == set(keep)
    assert f"{len(keep)} kept in FP32" in second.title
    after = compare(sample.path, candidate_from_build(wb.jobs.job_dir(second.id), sample.path), data)
    assert after.tensor("output").rel_rms < 0.9 * before.tensor("output").rel_rms

    fp32 = wb.jobs.wait(wb.submit_build(ref, BuildSpec(profiles=sample.profiles()[:1])), timeout=300)
    with pytest.raises(JobError, match="not a quantized build"):
        wb.rebuild_keeping_float(fp32.id, keep)


def _axes(fig) -> dict:
    return {k: v for k, v in fig.layout.to_plotly_json().items() if k.startswith(("xaxis", "yaxis"))}


def test_error_axes_read_plain_numbers_not_si_prefixes(clean_run):
    """An error of 2e-6 reads "2e-6" on every axis, never "2µ"; counts of a million never "1M"."""
    from workbench.reports import accuracy_figures as af

    result, _ = clean_run
    rng = np.random.default_rng(0)
    ref = rng.normal(size=2000)
    cand = ref + 2e-6 * rng.normal(size=2000)  # a simulation's typical error: micro-units
    figs = {
        "histogram": af.histogram_figure("logits", ref, cand),
        "scatter": af.scatter_figure("logits", ref * 1e9, cand * 1e9),
        "depth": af.depth_figure(result, "max_abs"),
        "depth snr": af.depth_figure(result, "snr_db"),
        "culprits": af.culprit_figure(result),
    }
    for name, fig in figs.items():
        axes = _axes(fig)
        assert axes, name
        for axis, spec in axes.items():
            # Plotly's default ("B") labels 2e-6 as "2µ"; a d3 "s" tickformat does too
            assert spec.get("exponentformat") == "e", (name, axis, spec)
            assert "s" not in spec.get("tickformat", ""), (name, axis, spec)


def _style(page: str) -> str:
    return page.split("<style>", 1)[1].split("</style>", 1)[0]


def test_report_tables_wrap_long_names_instead_of_running_off_the_page(clean_run):
    """Tensor and node names have no spaces: without a break rule a table runs past the page's right edge, where
    the names are cut off. Cells wrap them; numbers stay on one line; no column has a fixed width."""
    from tests.test_fusion import _golden
    from workbench.fusion import account_fusion
    from workbench.reports import fusion_html

    _, out = clean_run
    model, layers = _golden("bert_tiny_mask_qdq_int8")
    for page in ((out / REPORT_FILE).read_text(), fusion_html.render_html(account_fusion(model, layers), layers)):
        css = _style(page).replace(" ", "")
        assert "table{table-layout:auto}" in css
        assert "td{word-break:break-word;overflow-wrap:anywhere}" in css
        for rule in css.replace("}", "}\n").splitlines():
            if rule.startswith(("th", "td", "th,td")):
                assert "width:" not in rule and "text-overflow" not in rule, rule


def test_the_network_axis_says_input_where_graph_inputs_sit_never_minus_one(clean_run):
    """Graph inputs are drawn before node 0 (position -1): short networks and long ones label it "input"."""
    import dataclasses

    from workbench.reports import accuracy_figures as af

    result, _ = clean_run
    assert any(t.order < 0 for t in result.tensors)
    deep = dataclasses.replace(  # the same tensors again further down: a 10× longer network
        result,
        tensors=result.tensors
        + tuple(dataclasses.replace(t, name=f"{t.name}@{k}", order=t.order + 10 * k + 10)
                for k in range(1, 40) for t in result.tensors if t.order >= 0),
    )
    for res in (result, deep):
        axis = af.depth_figure(res).layout.xaxis
        assert axis.tickvals is not None and len(axis.tickvals) <= 31, res is deep
        labels = dict(zip(axis.tickvals, axis.ticktext, strict=True))
        assert labels[-1] == "input" and "-1" not in axis.ticktext
        assert max(axis.tickvals) <= max(t.order for t in res.tensors)
