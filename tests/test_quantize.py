"""INT8/FP8 Q/DQ quantization of the digits MLP: accuracy in ONNX Runtime, Q/DQ structure, exclusions, reuse of
saved ranges, cancellation, and real TensorRT-RTX builds of the result."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from workbench.calibration_data import CalibrationData, load_npz, model_inputs, random_data
from workbench.errors import DataError, SpecError
from workbench.progress import Cancelled, NullReporter
from workbench.quantize import (
    CALIBRATORS,
    QuantizeSpec,
    evaluate_accuracy,
    qdq_summary,
    quantize_qdq,
    ranges_table,
    read_ranges,
    score_calibrators,
)
from workbench.quantize_task import QuantizeRequest
from workbench.spec import BuildSpec, CalibrationSpec

SAMPLES = Path(__file__).resolve().parent.parent / "sample_models"
POLYGRAPHY = Path(sys.executable).parent / "polygraphy"


def sample(name: str) -> Path:
    path = SAMPLES / name
    if not path.exists():
        pytest.skip(f"sample file {path} is missing (the sample-model generator has not written it)")
    return path


class Recorder(NullReporter):
    """Keeps every phase and log line; cancels once ``cancel_when(phase)`` is true."""

    def __init__(self, cancel_when=None) -> None:
        self.phases: list[str] = []
        self.lines: list[str] = []
        self._cancel_when = cancel_when
        self._cancel = False

    def log(self, message: str, level: int = logging.INFO) -> None:
        self.lines.append(message)

    def progress(self, fraction: float, phase: str) -> None:
        assert 0.0 <= fraction <= 1.0
        self.phases.append(phase)
        if self._cancel_when and self._cancel_when(phase):
            self._cancel = True

    def cancelled(self) -> bool:
        return self._cancel


@pytest.fixture(scope="module")
def digits():
    model = sample("digits_mlp.onnx")
    inputs = model_inputs(model)
    calib = load_npz(sample("digits_calib.npz"), inputs)
    test = load_npz(sample("digits_test.npz"), inputs, extra_keys=("label",))
    return model, calib, test, test.extras["label"]


@pytest.fixture(scope="module")
def fp32_accuracy(digits) -> float:
    """Top-1 of the FP32 model on the held-out split, computed here with a plain ONNX Runtime session."""
    import onnxruntime as ort

    model, _, test, labels = digits
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    logits = sess.run(["logits"], {"input": test.arrays["input"]})[0]
    return float(np.mean(logits.argmax(axis=1) == labels))


@pytest.fixture(scope="module")
def quantized(digits, tmp_path_factory):
    """One INT8 Q/DQ model per calibrator: {calibrator: QuantizeResult}."""
    model, calib, _, _ = digits
    root = tmp_path_factory.mktemp("qdq")
    return {
        cal: quantize_qdq(model, root / cal / "qdq.onnx", calib, QuantizeSpec(calibrator=cal))
        for cal in CALIBRATORS
    }


def _initializers(path: Path) -> dict[str, np.ndarray]:
    import onnx
    from onnx import numpy_helper

    return {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}


# ---------------------------------------------------------------------------------------------- accuracy


def test_every_calibrator_keeps_accuracy_within_one_point(digits, fp32_accuracy, quantized):
    model, calib, test, labels = digits
    assert evaluate_accuracy(model, test, labels) == pytest.approx(fp32_accuracy)
    assert fp32_accuracy > 0.5, "the sample model should have learned the digits"
    for cal, result in quantized.items():
        acc = evaluate_accuracy(result.model_path, test, labels)
        assert abs(acc - fp32_accuracy) <= 0.01, f"{cal}: INT8 {acc:.4f} vs FP32 {fp32_accuracy:.4f}"
        assert result.calibrator == cal and result.n_samples == calib.n_samples


def test_score_calibrators_reports_computed_accuracy_and_errors(digits, fp32_accuracy, quantized):
    model, calib, test, labels = digits
    table = score_calibrators(model, calib, test, labels, calibrators=("minmax", "entropy"))
    assert list(table["calibrator"]) == ["minmax", "entropy"]
    assert set(table["output"]) == {"logits"}
    assert table["accuracy_fp32"].tolist() == pytest.approx([fp32_accuracy] * 2)
    for _, row in table.iterrows():
        acc = evaluate_accuracy(quantized[row["calibrator"]].model_path, test, labels)
        assert row["accuracy_qdq"] == pytest.approx(acc)
        assert row["accuracy_delta_pp"] == pytest.approx(100 * (acc - fp32_accuracy))
        assert 0 < row["mean_abs_err"] <= row["max_abs_err"]
        assert 0.99 < row["cosine"] <= 1.0 + 1e-9


# ---------------------------------------------------------------------------------------------- structure


def test_the_qdq_model_is_int8_with_float_biases(quantized):
    import onnx

    path = quantized["entropy"].model_path
    model = onnx.load(str(path))
    ops = [n.op_type for n in model.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    inits = {i.name: i for i in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    dq_types = set()
    for n in model.graph.node:
        if n.op_type == "DequantizeLinear":
            src = n.input[0]
            t = inits[src].data_type if src in inits else inits[producer[src].input[2]].data_type
            dq_types.add(t)
    assert dq_types == {onnx.TensorProto.INT8}, "no int32 (bias) or uint8 DequantizeLinear"
    # every Gemm/MatMul reads dequantized activations and weights; its bias stays float
    for n in model.graph.node:
        if n.op_type in ("Gemm", "MatMul", "Conv"):
            assert all(
                producer.get(x) is not None and producer[x].op_type == "DequantizeLinear" for x in n.input[:2]
            ), n.name
            if len(n.input) > 2:
                assert inits[n.input[2]].data_type == onnx.TensorProto.FLOAT
    summary = qdq_summary(path)
    assert summary.dq_input_types == {"int8": ops.count("DequantizeLinear")}
    assert quantized["entropy"].n_quantized_nodes == len(summary.quantized_nodes) > 0


def test_excluding_a_node_by_name_leaves_it_in_float(digits, quantized, tmp_path):
    import onnx

    model, calib, _, _ = digits
    graph = onnx.load(str(model)).graph
    last = [n.name for n in graph.node if n.op_type in ("Gemm", "MatMul")][-1]
    result = quantize_qdq(model, tmp_path / "qdq.onnx", calib, QuantizeSpec("minmax", exclude_nodes=(last,)))
    assert result.excluded == (last,)
    summary = qdq_summary(result.model_path)
    assert last in summary.float_nodes and last not in summary.quantized_nodes
    assert len(summary.quantized_nodes) == quantized["minmax"].n_quantized_nodes - 1
    q = onnx.load(str(result.model_path)).graph
    node = next(n for n in q.node if n.name == last)
    inits = {i.name: i for i in q.initializer}
    weight = node.input[1]
    assert weight in inits and inits[weight].data_type == onnx.TensorProto.FLOAT, "weight stays FP32"


def test_exclusions_must_name_real_nodes_or_op_types(digits, tmp_path):
    import onnx

    model, calib, _, _ = digits
    name = next(n.name for n in onnx.load(str(model)).graph.node if n.op_type in ("Gemm", "MatMul"))
    typo = name + "x"
    with pytest.raises(SpecError, match=f"'{typo}'.*Close matches: .*{name}"):
        quantize_qdq(model, tmp_path / "a.onnx", calib, QuantizeSpec(exclude_nodes=(typo,)))
    with pytest.raises(SpecError, match="'Conv'.*op types are"):
        quantize_qdq(model, tmp_path / "b.onnx", calib, QuantizeSpec(exclude_op_types=("Conv",)))
    # an op type given as a "node" (as the CLI's --exclude does) excludes every node of that type
    op = next(n.op_type for n in onnx.load(str(model)).graph.node if n.op_type in ("Gemm", "MatMul"))
    result = quantize_qdq(model, tmp_path / "c.onnx", calib, QuantizeSpec("minmax", exclude_nodes=(op,)))
    assert any("op type" in w for w in result.warnings)
    summary = qdq_summary(result.model_path)
    assert not any(n in summary.quantized_nodes for n in result.excluded) and result.excluded


def test_spec_validation():
    for bad in (
        {"calibrator": "kl"},
        {"percentile": 101.0},
        {"percentile": 10.0},
        {"precision": "int4"},
        {"calibration_batch_size": 0},
        {"exclude_nodes": ("",)},
    ):
        with pytest.raises(SpecError):
            QuantizeSpec(**bad)


def test_data_for_another_model_is_refused(digits, tmp_path):
    model, _, _, _ = digits
    other = CalibrationData({"x": np.zeros((4, 64), np.float32)}, source="other.npz")
    with pytest.raises(DataError, match="missing input.*unknown x"):
        quantize_qdq(model, tmp_path / "q.onnx", other, QuantizeSpec())


# ---------------------------------------------------------------------------------------------- ranges


def test_saved_ranges_rebuild_the_same_model_without_calibrating(digits, quantized, tmp_path):
    model, _, _, _ = digits
    first = quantized["entropy"]
    saved = read_ranges(first.ranges_path)
    assert saved["method"] == "entropy" and saved["data"]["n_samples"] == first.n_samples
    rec = Recorder()
    again = quantize_qdq(
        model, tmp_path / "qdq.onnx", None, QuantizeSpec("entropy"), rec, reuse_ranges=first.ranges_path
    )
    assert again.n_samples == 0 and again.reused_ranges == first.ranges_path
    assert not any(p.startswith("calibrate") for p in rec.phases), rec.phases
    a, b = _initializers(first.model_path), _initializers(again.model_path)
    scales = [k for k in a if k.endswith("_scale")]
    assert scales and set(scales) == {k for k in b if k.endswith("_scale")}
    for k in scales:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_edited_ranges_change_the_scales(digits, quantized, tmp_path):
    model, _, _, _ = digits
    doc = json.loads(quantized["minmax"].ranges_path.read_text())
    tensor = "input" if "input" in doc["qdq"] else next(iter(doc["qdq"]))
    doc["tensors"][tensor] = {"min": -2.54, "max": 1.0}
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(doc))
    out = quantize_qdq(model, tmp_path / "q" / "qdq.onnx", None, QuantizeSpec("minmax"), reuse_ranges=edited)
    table = ranges_table(out.ranges_path)
    scale = table["scale"][table["tensor"].index(tensor)]
    assert scale == pytest.approx(2.54 / 127, rel=1e-6), "symmetric int8: max(|min|, |max|) / 127"


def test_ranges_files_are_checked(tmp_path, digits, quantized):
    model, _, _, _ = digits
    doc = json.loads(quantized["minmax"].ranges_path.read_text())
    needed = next(t for t in doc["tensors"] if t != "input")
    del doc["tensors"][needed]
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps(doc))
    with pytest.raises(DataError, match=f"no range for tensor '{needed}'"):
        quantize_qdq(model, tmp_path / "p.onnx", None, QuantizeSpec("minmax"), reuse_ranges=partial)
    doc["tensors"] = {"some_other_models_tensor": {"min": 0.0, "max": 1.0}}
    partial.write_text(json.dumps(doc))
    with pytest.raises(DataError, match="belong to another model"):
        quantize_qdq(model, tmp_path / "p.onnx", None, QuantizeSpec("minmax"), reuse_ranges=partial)
    bad = tmp_path / "calibration.json"
    bad.write_text(
        json.dumps(
            {
                "format": "trt-workbench.calibration",
                "method": "minmax",
                "tensors": {"input": {"min": 1.0, "max": -1.0}},
            }
        )
    )
    with pytest.raises(DataError, match="'input'.*min 1.0 > max -1.0"):
        quantize_qdq(model, tmp_path / "q.onnx", None, QuantizeSpec("minmax"), reuse_ranges=bad)
    bad.write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        read_ranges(bad)


# ---------------------------------------------------------------------------------------------- progress


def test_phases_are_reported_in_order(digits, tmp_path):
    model, calib, _, _ = digits
    rec = Recorder()
    quantize_qdq(model, tmp_path / "qdq.onnx", calib, QuantizeSpec("minmax"), rec)
    firsts = [p.split(" ")[0] for p in rec.phases]
    order = [p for i, p in enumerate(firsts) if i == 0 or p != firsts[i - 1]]
    assert order == ["preprocess", "calibrate", "write"]
    n = calib.n_samples // 16
    assert f"calibrate (batch {n}/{n})" in rec.phases


def test_cancel_between_calibration_batches(digits, tmp_path):
    model, calib, _, _ = digits
    rec = Recorder(cancel_when=lambda phase: "batch 2/" in phase)
    out = tmp_path / "qdq.onnx"
    with pytest.raises(Cancelled):
        quantize_qdq(model, out, calib, QuantizeSpec("entropy"), rec)
    assert not out.exists() and not (tmp_path / "calibration.json").exists()
    assert sum("calibrate (batch" in p for p in rec.phases) == 2


def test_a_fixed_batch_model_is_calibrated_in_padded_batches(tmp_path):
    import onnx

    from tests.onnx_models import static_mlp

    path = tmp_path / "static_mlp.onnx"
    onnx.save(static_mlp(), str(path))
    data = random_data(model_inputs(path), None, n=5, seed=0)
    result = quantize_qdq(path, tmp_path / "q" / "qdq.onnx", data, QuantizeSpec("minmax"))
    assert result.batches.startswith("3 batch(es) of 2") and "padded with 1" in result.batches
    assert any("random data" in w for w in result.warnings) and result.n_quantized_nodes > 0


# ---------------------------------------------------------------------------------------------- FP8


def test_fp8_qdq_runs_in_onnx_runtime(digits, fp32_accuracy, tmp_path):
    import onnx

    model, calib, test, labels = digits
    result = quantize_qdq(model, tmp_path / "fp8.onnx", calib, QuantizeSpec(precision="fp8"))
    assert result.precision == "fp8" and result.calibrator == "distribution"
    assert any("8.9" in w for w in result.warnings)
    assert qdq_summary(result.model_path).dq_input_types == {
        "float8e4m3fn": qdq_summary(result.model_path).n_dequantize
    }
    assert (
        max(o.version for o in onnx.load(str(result.model_path)).opset_import if o.domain in ("", "ai.onnx"))
        >= 19
    )
    acc = evaluate_accuracy(result.model_path, test, labels)
    assert acc > 0.5 and abs(acc - fp32_accuracy) < 0.15, (acc, fp32_accuracy)


# ---------------------------------------------------------------------------------------------- submitting jobs
# The app process (Streamlit's script thread) checks only the .npz headers before queueing; the worker reads the
# values. Bad headers are refused before any job exists; bad values fail the job with the same specific words.


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _submit(wb, kind: str, ref, data: Path) -> str:
    """Quantize, score the calibrators, or build INT8: the three ways calibration data reach a job."""
    if kind == "quantize":
        return wb.submit_quantize(ref, QuantizeRequest(data_path=str(data), calibrator="minmax"))
    if kind == "score":
        return wb.submit_score(ref, QuantizeRequest(data_path=str(data), calibrators=("minmax",)))
    pytest.importorskip(
        "tensorrt_rtx", reason="INT8 builds need TensorRT-RTX (tensorrt-rtx-cu13), not installed"
    )
    from workbench.samples import get_sample

    spec = BuildSpec(
        precision="int8",
        profiles=get_sample(ref.name.removesuffix(".onnx")).profiles(),
        calibration=CalibrationSpec(data_path=str(data), calibrator="minmax"),
    )
    return wb.submit_build(ref, spec)


@pytest.fixture()
def digits_ref(wb):
    from workbench.samples import get_sample

    return wb.import_path(get_sample("digits_mlp").path)


def test_a_large_damaged_set_is_queued_without_reading_its_arrays_and_the_job_names_the_damage(
    wb, digits_ref, tmp_path
):
    """32 MiB of samples whose data (not header) are damaged: submitting reads the headers only (so it
    cannot notice, and allocates next to nothing); the job reads the arrays and fails saying which file and
    input, and what to do."""
    n = (32 << 20) // (64 * 4)
    path = tmp_path / "big.npz"
    np.savez(path, input=np.random.default_rng(0).standard_normal((n, 64), dtype=np.float32))
    raw = bytearray(path.read_bytes())
    end = raw.find(b"PK\x01\x02")  # the member's data end where the zip's central directory starts
    raw[end - 64 : end] = bytes(255 - b for b in raw[end - 64 : end])
    stored = wb.store_data(bytes(raw), "big.npz")
    del raw

    tracemalloc.start()
    try:
        job_id = wb.submit_quantize(digits_ref, QuantizeRequest(data_path=str(stored), calibrator="minmax"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < path.stat().st_size / 32, (
        f"submit allocated {peak} bytes for a {path.stat().st_size}-byte set"
    )

    job = wb.jobs.wait(job_id, timeout=120)
    assert job.status == "failed"
    assert f"Input 'input' in '{stored.name}'" in job.error and "damaged" in job.error, job.error
    assert "write the file again" in job.hint


@pytest.mark.parametrize("kind", ["quantize", "score", "build"])
def test_nan_in_the_data_is_accepted_at_submit_and_fails_the_job_naming_file_and_input(wb, digits_ref, kind):
    bad = np.zeros((8, 64), np.float32)
    bad[3, 5] = np.nan
    bad[6] = np.inf
    stored = wb.store_data(_npz_bytes(input=bad), "calib.npz")
    job = wb.jobs.wait(_submit(wb, kind, digits_ref, stored), timeout=180)
    assert job.status == "failed", (job.status, job.error)
    assert f"Input 'input' in '{stored.name}' has 1 NaN and 64 Inf value(s) (first in sample 3)" in job.error
    assert "finite" in job.hint, job.hint


@pytest.mark.parametrize("kind", ["quantize", "score", "build"])
@pytest.mark.parametrize(
    ("arrays", "expected"),
    [
        (
            {"inputs": np.zeros((4, 64), np.float32)},
            "has an array 'inputs' that is not a model input. Did you mean",
        ),
        (
            {"input": np.zeros((4, 8, 8), np.float32)},
            "Input 'input' in '{name}' has rank 3 (shape [4, 8, 8])",
        ),
        (
            {"input": np.zeros((4, 64), np.uint8)},
            "Input 'input' in '{name}' has dtype uint8, but the model expects",
        ),
        (
            {"input": np.zeros((4, 64), np.float64), "ids": np.arange(4)},
            "has an array 'ids' that is not a model",
        ),
    ],
    ids=["name", "rank", "dtype", "extra-array"],
)
def test_wrong_names_ranks_and_dtypes_are_refused_before_any_job(wb, digits_ref, kind, arrays, expected):
    stored = wb.store_data(_npz_bytes(**arrays), "calib.npz")
    with pytest.raises(DataError) as err:
        _submit(wb, kind, digits_ref, stored)
    assert expected.format(name=stored.name) in err.value.message
    assert stored.name in err.value.message and err.value.hint
    assert wb.jobs.list() == []


def test_a_build_refuses_calibration_data_outside_its_profiles_before_any_job(wb):
    pytest.importorskip(
        "tensorrt_rtx", reason="INT8 builds need TensorRT-RTX (tensorrt-rtx-cu13), not installed"
    )
    from workbench.samples import get_sample

    sample = get_sample("transformer_block")
    ref = wb.import_path(sample.path)
    (prof,) = sample.profiles()[:1]
    too_long = prof.shapes["hidden"].max[1] + 1
    stored = wb.store_data(_npz_bytes(hidden=np.zeros((2, too_long, 64), np.float32)), "long.npz")
    spec = BuildSpec(precision="int8", profiles=(prof,), calibration=CalibrationSpec(data_path=str(stored)))
    with pytest.raises(DataError) as err:
        wb.submit_build(ref, spec)
    assert f"Input 'hidden' in '{stored.name}' has size {too_long} in dimension 1, outside the profile" in (
        err.value.message
    )
    assert wb.jobs.list() == []


def test_data_reused_from_ranges_or_random_are_not_read_at_submit(wb, digits_ref, tmp_path):
    """Random data are checked for shapes only; with saved ranges the data are not used, so not checked."""
    missing = tmp_path / "gone.npz"
    job = wb.submit_quantize(digits_ref, QuantizeRequest(data_path=str(missing), synthetic=True))
    assert wb.jobs.wait(job, timeout=120).status == "succeeded"
    with pytest.raises(DataError, match="gone.npz"):
        wb.submit_quantize(digits_ref, QuantizeRequest(data_path=str(missing)))


# ---------------------------------------------------------------------------------------------- TensorRT-RTX


def _rtx_build(onnx_path: Path, plan: Path) -> str:
    pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX (tensorrt-rtx-cu13) is not installed")
    if not POLYGRAPHY.exists():
        pytest.skip(f"polygraphy is not installed in this environment ({POLYGRAPHY})")
    env = {**os.environ, "POLYGRAPHY_USE_TENSORRT_RTX": "1"}
    cmd = [
        str(POLYGRAPHY),
        "convert",
        str(onnx_path),
        "-o",
        str(plan),
        "--verbosity",
        "extra_verbose",
        "--trt-min-shapes",
        "input:[1,64]",
        "--trt-opt-shapes",
        "input:[16,64]",
        "--trt-max-shapes",
        "input:[64,64]",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    log_text = proc.stdout + proc.stderr
    assert proc.returncode == 0, log_text[-3000:]
    assert plan.exists() and plan.stat().st_size > 0
    return log_text


def _layer_lines(log_text: str) -> list[str]:
    section = log_text.split("Layers:", 1)[1].split("I/O Tensors:", 1)[0]
    return [ln for ln in section.splitlines() if "LayerType:" in ln]


@pytest.mark.slow
def test_the_int8_model_builds_with_tensorrt_rtx(quantized, tmp_path):
    log_text = _rtx_build(quantized["entropy"].model_path, tmp_path / "int8.plan")
    layers = _layer_lines(log_text)
    int8 = [ln for ln in layers if "Datatype: Int8" in ln]
    assert int8, "no engine layer takes Int8 tensors:\n" + "\n".join(layers)
    assert any("LayerType: gemm" in ln for ln in int8)


@pytest.mark.slow
def test_the_fp8_model_builds_with_tensorrt_rtx_but_cannot_run_here(digits, tmp_path):
    model, calib, _, _ = digits
    result = quantize_qdq(model, tmp_path / "fp8.onnx", calib, QuantizeSpec(precision="fp8"))
    log_text = _rtx_build(result.model_path, tmp_path / "fp8.plan")
    assert any("Datatype: FP8" in ln for ln in _layer_lines(log_text))
    assert "will not be able to run on target(s): sm80, sm86" in log_text


# ---------------------------------------------------------------------------------------------- minimum samples


@pytest.mark.parametrize("kind", ["quantize", "score", "build", "compare"])
def test_too_few_calibration_samples_are_refused_at_submit(wb, digits_ref, kind):
    """A 3-sample .npz is refused before any job exists, whichever way calibration data reach a job; 8 (the
    minimum, as for image folders) are accepted."""
    from workbench.accuracy import CompareRequest, submit_compare
    from workbench.calibration_data import MIN_CALIBRATION_SAMPLES
    from workbench.calibration_images import DEFAULT_MIN_IMAGES

    assert MIN_CALIBRATION_SAMPLES == DEFAULT_MIN_IMAGES == 8  # one minimum, whatever the source
    rng = np.random.default_rng(0)
    few = wb.store_data(_npz_bytes(input=rng.random((3, 64), np.float32)), "few.npz")

    def submit(path: Path) -> str:
        if kind == "compare":
            return submit_compare(wb.jobs, digits_ref, CompareRequest(source="int8", calib_path=str(path)))
        return _submit(wb, kind, digits_ref, path)

    with pytest.raises(DataError) as err:
        submit(few)
    assert (
        f"'{few.name}' has 3 sample(s) for input 'input'; calibration needs at least 8" in err.value.message
    )
    assert "representative samples" in err.value.hint
    assert wb.jobs.list() == []
    enough = wb.store_data(
        _npz_bytes(input=rng.random((MIN_CALIBRATION_SAMPLES, 64), np.float32)), "enough.npz"
    )
    assert submit(enough)


# ---------------------------------------------------------------------------------------------- scoring jobs


def _score(wb, ref, test_data: str | None) -> object:
    from workbench.samples import get_sample

    req = QuantizeRequest(
        data_path=str(get_sample("digits_mlp").calibration_data),
        calibrators=("minmax", "percentile"),
        test_data_path=test_data,
    )
    job = wb.jobs.wait(wb.submit_score(ref, req), timeout=300)
    assert job.status == "succeeded", (job.error, wb.jobs.read_log(job.id)[0][-3000:])
    return job


def test_a_score_job_scores_each_calibrator_on_held_out_data_or_says_it_did_not(
    wb, digits_ref, fp32_accuracy
):
    """Real ONNX Runtime in a worker: the scores file holds the accuracy this test measures itself on the
    same split with the job's own calibration; without test data the job says it scored on calibration data."""
    from workbench.quantize_task import SCORES
    from workbench.samples import get_sample

    job = _score(wb, digits_ref, str(get_sample("digits_mlp").test_data))
    assert job.result["held_out"] and job.result["labelled"] and not job.result["synthetic"]
    assert job.result["scored_on"] == get_sample("digits_mlp").test_data.name
    rows = json.loads(wb.jobs.artifact(job.id, SCORES).read_text())
    assert [r["calibrator"] for r in rows] == ["minmax", "percentile"]
    assert all(r["accuracy_fp32"] == pytest.approx(fp32_accuracy) for r in rows)
    assert all(abs(r["accuracy_qdq"] - fp32_accuracy) <= 0.01 for r in rows)
    assert job.result["best"] in ("minmax", "percentile")

    on_calib = _score(wb, digits_ref, None)
    assert not on_calib.result["held_out"] and on_calib.result["scored_on"] == "the calibration data"
    assert not on_calib.result["labelled"]  # the calibration split has no labels
    assert "scored on the calibration data itself" in wb.jobs.read_log(on_calib.id)[0]


def test_the_quantize_page_shows_the_score_table_and_says_what_it_was_scored_on(app_ws):
    from tests.conftest import open_page
    from workbench import ui
    from workbench.samples import get_sample

    ref = app_ws.import_path(get_sample("digits_mlp").path)
    at = open_page("quantize", 60, **{ui.MODEL_DIGEST: ref.digest})
    assert not at.exception, [e.value for e in at.exception]
    assert at.radio(key="quantize.test.source").value == "sample"
    at.button(key="quantize.score").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    job = app_ws.jobs.wait(at.session_state[ui.SCORE_JOB], timeout=300)
    assert job.status == "succeeded", job.error
    at.run()
    assert any("Calibrators on held-out data" in m.value for m in at.markdown)
    assert any("(highest top-1, then lowest max abs error)" in m.value for m in at.markdown)  # why it is best
    table = next(d.value for d in at.dataframe if "calibrator" in d.value.columns)  # (others: data previews)
    assert sorted(table["calibrator"].unique()) == sorted(CALIBRATORS)
    assert {"accuracy_fp32", "accuracy_qdq", "accuracy_delta_pp", "max_abs_err"} <= set(table.columns)

    # the user's own labelled held-out set, uploaded
    with np.load(get_sample("digits_mlp").test_data) as z:
        held_out = _npz_bytes(input=z["input"][:120], label=z["label"][:120])
    at.radio(key="quantize.test.source").set_value("upload").run()
    at.file_uploader(key="quantize.test.upload").set_value(("mine.npz", held_out, "application/zip")).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    at.button(key="quantize.score").click().run()
    job = app_ws.jobs.wait(at.session_state[ui.SCORE_JOB], timeout=300)
    assert job.status == "succeeded", job.error
    assert job.result["held_out"] and job.result["labelled"] and job.result["scored_on"].endswith("mine.npz")
    at.run()
    assert any("Calibrators on held-out data" in m.value and "mine.npz" in m.value for m in at.markdown)

    at.radio(key="quantize.test.source").set_value("none").run()
    at.button(key="quantize.score").click().run()
    job = app_ws.jobs.wait(at.session_state[ui.SCORE_JOB], timeout=300)
    assert job.status == "succeeded", job.error
    at.run()
    assert not any("held-out" in m.value for m in at.markdown if "Calibrators" in m.value)
    assert any("Calibrators scored on the calibration data" in m.value for m in at.markdown)
    assert any("No held-out test set" in w.value for w in at.warning)
