"""A BERT-like encoder whose attention mask is filled with float32's minimum: every calibrator quantizes it (real
ONNX Runtime), the mask tensors are named and kept out, and TensorRT-RTX builds the INT8 result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from tests import onnx_models
from workbench.calibration_data import load_npz, model_inputs
from workbench.calibration_screen import EXTREME, extreme_range
from workbench.quantize import CALIBRATORS, QuantizeSpec, qdq_summary, quantize_qdq, read_ranges

FIXTURES = Path(__file__).resolve().parent / "fixtures"
REPO = Path(__file__).resolve().parent.parent
# the additive mask and the two layers' masked scores: the tensors whose values reach float32's minimum
MASK_TENSORS = {"mask/Mul", "layer.0/attention/scores/Add_mask", "layer.1/attention/scores/Add_mask"}


@pytest.fixture(scope="module")
def encoder(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(model, calibration .npz, held-out .npz) of the tiny masked encoder (padding in most samples)."""
    root = tmp_path_factory.mktemp("bert")
    model = root / "bert_tiny_mask.onnx"
    onnx.save(onnx_models.bert_tiny_mask(), str(model))
    calib, test = root / "calib.npz", root / "test.npz"
    np.savez(calib, **onnx_models.bert_tiny_mask_data(32, seed=0))
    np.savez(test, **onnx_models.bert_tiny_mask_data(64, seed=1))
    return model, calib, test


@pytest.fixture(scope="module")
def quantized(encoder, tmp_path_factory):
    model, calib, _ = encoder
    data = load_npz(calib, model_inputs(model))
    root = tmp_path_factory.mktemp("bert-qdq")
    return {c: quantize_qdq(model, root / c / "qdq.onnx", data, QuantizeSpec(calibrator=c)) for c in CALIBRATORS}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The zoo's BERT-like encoder exported by torch from a transformers config (eager attention, random
    weights), its calibration data (every other row padded from position 10) and {calibrator: QuantizeResult}."""
    model = FIXTURES / "bert_tiny_mask.onnx"
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 1000, (16, 16)).astype(np.int64)
    mask = np.ones_like(ids)
    mask[::2, 10:] = 0
    arrays = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    root = tmp_path_factory.mktemp("exported")
    np.savez(root / "calib.npz", **arrays)
    data = load_npz(root / "calib.npz", model_inputs(model))
    results = {c: quantize_qdq(model, root / c / "qdq.onnx", data, QuantizeSpec(calibrator=c)) for c in CALIBRATORS}
    return model, results


def _outputs(path: Path, feed: dict[str, np.ndarray]) -> np.ndarray:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC  # exact Q/DQ arithmetic
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]).run(None, feed)[0]


@pytest.mark.parametrize("calibrator", CALIBRATORS)
def test_every_calibrator_quantizes_the_masked_encoder_and_names_the_mask_tensors(
    encoder, quantized, calibrator
):
    """Entropy used to die with 'Too many bins for data range. Cannot create 512 finite-sized bins'; min/max ran
    but scaled the mask into INT8 (cosine 0.91 to FP32, 72% top-1 agreement). Now each calibrator succeeds, names
    the tensors it kept out and leaves their nodes in float, and the Q/DQ model follows FP32."""
    model, _, test = encoder
    res = quantized[calibrator]
    assert {k.tensor for k in res.kept_out} == MASK_TENSORS
    mask = next(k for k in res.kept_out if k.tensor == "mask/Mul")
    assert mask.lowest == pytest.approx(float(np.finfo(np.float32).min)) and mask.highest == 0.0
    assert set(mask.nodes) == {"mask/Mul", "layer.0/attention/scores/Add_mask", "layer.1/attention/scores/Add_mask"}
    said = next(w for w in res.warnings if w.startswith("Kept out of calibration"))
    assert all(f"'{t}'" in said for t in MASK_TENSORS) and "-3.4e+38" in said
    for node in ("mask/Mul", "layer.0/attention/Softmax", "layer.1/attention/Softmax"):
        assert node in res.excluded
        assert node in qdq_summary(res.model_path).float_nodes
    assert res.n_quantized_nodes >= 20  # the projections, the MLP and the classifier are still INT8

    doc = read_ranges(res.ranges_path)
    assert set(doc["kept_out"]) == MASK_TENSORS and not MASK_TENSORS & set(doc["tensors"])
    assert all(abs(e.get("min", 0)) < EXTREME and abs(e.get("max", 0)) < EXTREME for e in doc["tensors"].values())

    with np.load(test) as z:
        feed = {k: z[k] for k in z.files}
    ref, out = _outputs(model, feed), _outputs(res.model_path, feed)
    assert np.all(np.isfinite(out))
    cosine = float((ref * out).sum() / np.linalg.norm(ref) / np.linalg.norm(out))
    assert cosine > 0.99, cosine
    assert np.mean(ref.argmax(1) == out.argmax(1)) >= 0.9


@pytest.mark.parametrize("calibrator", CALIBRATORS)
def test_every_calibrator_quantizes_the_exported_encoder(exported, calibrator):
    """The same on a real export (torch, transformers' eager attention): the mask's float32-minimum constant, the
    Where that applies it and each layer's masked scores are kept out; the encoder's hidden states follow FP32."""
    model, results = exported
    res = results[calibrator]
    kept = {k.tensor for k in res.kept_out}
    assert "/inner/Where_1_output_0" in kept
    assert {f"/inner/encoder/layer.{i}/attention/self/Add_output_0" for i in (0, 1)} <= kept
    assert all(k.lowest < -1e38 for k in res.kept_out)
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 1000, (16, 16)).astype(np.int64)
    mask = np.ones_like(ids)
    mask[1::2, 8:] = 0
    feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    ref, out = _outputs(model, feed)[mask.astype(bool)], _outputs(res.model_path, feed)[mask.astype(bool)]
    assert float((ref * out).sum() / np.linalg.norm(ref) / np.linalg.norm(out)) > 0.999


def test_reused_ranges_keep_the_same_tensors_out(encoder, quantized, tmp_path):
    model, _, _ = encoder
    saved = quantized["entropy"].ranges_path
    again = quantize_qdq(model, tmp_path / "again.onnx", None, QuantizeSpec(), reuse_ranges=saved)
    assert {k.tensor for k in again.kept_out} == MASK_TENSORS
    assert again.n_quantized_nodes == quantized["entropy"].n_quantized_nodes


def test_a_model_without_extreme_values_keeps_everything_in_calibration():
    assert extreme_range([np.array([-3.0, 5.0], np.float32)]) is None
    assert extreme_range([np.array([0.0, -3.4e38], np.float32)]) == pytest.approx((-3.4e38, 0.0))
    assert extreme_range([np.array([1.0, np.inf], np.float32)]) is not None
    assert extreme_range([np.array([1, 2**40], np.int64)]) is None  # integer tensors are not calibrated


def test_the_digits_sample_has_nothing_kept_out(tmp_path):
    from workbench.samples import get_sample

    s = get_sample("digits_mlp")
    data = load_npz(s.calibration_data, model_inputs(s.path))
    res = quantize_qdq(s.path, tmp_path / "q.onnx", data, QuantizeSpec(calibrator="entropy"))
    assert res.kept_out == () and not any("Kept out" in w for w in res.warnings)
    assert read_ranges(res.ranges_path)["kept_out"] == {}


def test_the_quantize_job_logs_the_tensor_and_the_page_shows_it(app_ws, encoder):
    from tests.conftest import open_page
    from workbench import ui
    from workbench.quantize_task import QuantizeRequest

    model, calib, _ = encoder
    ref = app_ws.import_path(model)
    job = app_ws.jobs.wait(app_ws.submit_quantize(ref, QuantizeRequest(data_path=str(calib))), timeout=300)
    assert job.status == "succeeded", job.error
    log_text = app_ws.jobs.read_log(job.id)[0]
    assert log_text.count("Kept out of calibration") == 1 and "'mask/Mul'" in log_text
    assert set(job.result["kept_out"]) == MASK_TENSORS

    at = open_page("quantize", 60, **{ui.MODEL_DIGEST: ref.digest, ui.QUANTIZE_JOB: job.id})
    assert not at.exception, [e.value for e in at.exception]
    shown = [w.value for w in at.warning if "Kept out of calibration" in w.value]
    assert shown and "'mask/Mul'" in shown[0] and "layer.0/attention/Softmax" in shown[0]


@pytest.mark.slow
@pytest.mark.parametrize("which", ["generated, percentile", "exported, entropy"])
def test_tensorrt_rtx_builds_the_quantized_encoder_in_int8(quantized, exported, which, tmp_path):
    """The CLI builds the Q/DQ encoder with TensorRT-RTX over a dynamic batch and sequence profile; its matrix
    multiplications compute in INT8, the attention mask stays in float."""
    pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX (tensorrt-rtx-cu13) is not installed")
    plan = tmp_path / "bert.plan"
    env = {**os.environ, "WORKBENCH_HOME": str(tmp_path / "ws"), "PYTHONPATH": str(REPO)}
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if which.startswith("exported") else [])
    qdq = quantized["percentile"] if which.startswith("generated") else exported[1]["entropy"]
    shapes = [",".join(f"{n}:{s}" for n in names) for s in ("1x4", "2x16", "4x32")]
    proc = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "build", str(qdq.model_path), "-o", str(plan),
         "--min-shapes", shapes[0], "--opt-shapes", shapes[1], "--max-shapes", shapes[2]],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert plan.stat().st_size > 0
    layers = json.loads(plan.with_suffix(".layers.json").read_text())["layers"]
    int8 = [ly for ly in layers if '"INT8"' in json.dumps(ly)]
    assert sum(ly["type"] == "gemm" for ly in int8) >= 6, [(ly["name"], ly["type"]) for ly in int8]



def test_quantizing_leaves_nothing_in_the_current_folder(tmp_path, monkeypatch):
    """ONNX Runtime's symbolic shape inference gives up on the exported encoder and saves its partial model as
    sym_shape_infer_temp.onnx (+ a <uuid>.data) into the current directory: it now lands in a temporary one."""
    here = tmp_path / "cwd"
    here.mkdir()
    monkeypatch.chdir(here)
    model = FIXTURES / "bert_tiny_mask.onnx"
    ids = np.random.default_rng(0).integers(0, 1000, (16, 16)).astype(np.int64)
    np.savez(tmp_path / "c.npz", input_ids=ids, attention_mask=np.ones_like(ids), token_type_ids=np.zeros_like(ids))
    res = quantize_qdq(model, tmp_path / "q.onnx", load_npz(tmp_path / "c.npz", model_inputs(model)),
                       QuantizeSpec(calibrator="minmax"))
    assert res.model_path.is_file() and list(here.iterdir()) == []
