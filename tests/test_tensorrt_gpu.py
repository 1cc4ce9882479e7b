"""Full TensorRT and engine-running paths: exercised on GPU machines, skipped here with the reason.

Nothing is mocked: these run the same code as the app does on a machine with `tensorrt` and a GPU.
"""

from __future__ import annotations

import pytest

from tests.conftest import gpu_reason, tensorrt_reason
from workbench.samples import get_sample
from workbench.spec import BuildSpec, CalibrationSpec

pytestmark = pytest.mark.gpu


@pytest.fixture()
def full_trt():
    reason = tensorrt_reason()
    if reason:
        pytest.skip(reason)


def _version():
    from workbench.backends import backend_info

    return backend_info("tensorrt").version


def test_full_tensorrt_fp16_build_runs_fp16_layers(full_trt, wb):
    sample = get_sample("cnn_residual")
    job = wb.jobs.wait(wb.submit_build(wb.import_path(sample.path),
                                       BuildSpec(backend="tensorrt", precision="fp16", profiles=sample.profiles())),
                       timeout=600)
    assert job.status == "succeeded", job.error
    assert job.result["precision_check"]["honoured"]


def test_timing_cache_is_persisted_and_reused(full_trt, wb):
    sample = get_sample("cnn_residual")
    ref = wb.import_path(sample.path)
    spec = BuildSpec(backend="tensorrt", profiles=sample.profiles())
    first = wb.jobs.wait(wb.submit_build(ref, spec), timeout=600)
    caches = list((wb.ws.root / "timing-caches").glob("*.cache"))
    assert first.status == "succeeded" and len(caches) == 1 and caches[0].stat().st_size > 0
    second = wb.jobs.wait(wb.submit_build(ref, spec), timeout=600)
    assert second.status == "succeeded"
    # Polygraphy's own words when it really reads a cache: the first build had none to read
    loaded = f"Loading tactic timing cache from {caches[0]}"
    assert loaded not in wb.jobs.read_log(first.id)[0]
    assert loaded in wb.jobs.read_log(second.id)[0]


def test_implicit_int8_calibration_writes_a_cache_that_a_rebuild_reuses(full_trt, wb):
    from packaging.version import Version

    if Version(_version()) >= Version("11"):
        pytest.skip(f"TensorRT {_version()} removed implicit calibration (strongly typed only)")
    sample = get_sample("digits_mlp")
    ref = wb.import_path(sample.path)
    spec = BuildSpec(backend="tensorrt", precision="int8", profiles=sample.profiles(),
                     calibration=CalibrationSpec(data_path=str(sample.calibration_data), calibrator="entropy",
                                                 implicit=True))
    job = wb.jobs.wait(wb.submit_build(ref, spec), timeout=600)
    assert job.status == "succeeded", job.error
    cache = wb.jobs.artifact(job.id, "calibration.cache")
    assert cache.stat().st_size > 0
    again = spec.with_(calibration=CalibrationSpec(data_path=str(sample.calibration_data), calibrator="entropy",
                                                   implicit=True, cache_path=str(cache)))
    job2 = wb.jobs.wait(wb.submit_build(ref, again), timeout=600)
    assert job2.status == "succeeded", job2.error


@pytest.fixture()
def runs_engines():
    reason = gpu_reason()
    if reason:
        pytest.skip(reason)


def test_a_built_engine_runs_and_matches_onnx_runtime(runs_engines, session_wb, cnn_build):
    import numpy as np
    from polygraphy.backend.onnxrt import OnnxrtRunner, SessionFromOnnx
    from polygraphy.backend.trt import EngineFromBytes, TrtRunner

    plan = session_wb.plan_path(cnn_build).read_bytes()
    x = np.random.default_rng(0).normal(size=(2, 3, 32, 32)).astype(np.float32)
    with TrtRunner(EngineFromBytes(plan)) as trt_runner, \
            OnnxrtRunner(SessionFromOnnx(str(get_sample("cnn_residual").path))) as ort_runner:
        got = trt_runner.infer({"input": x})["logits"]
        want = ort_runner.infer({"input": x})["logits"]
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)


def test_a_build_on_a_gpu_takes_its_layers_from_the_engine_inspector(runs_engines, session_wb, cnn_build):
    """Where the plan can be deserialized, the layer report is the engine inspector's, not the build log's."""
    from workbench.backends import backend_info
    from workbench.fusion import account_fusion
    from workbench.layers import INSPECTOR, load_layers

    job = session_wb.jobs.get(cnn_build)
    backend = job.payload["spec"]["backend"]
    if not backend_info(backend).can_run_engines:
        pytest.skip(f"{backend} cannot deserialize plans on this GPU: {backend_info(backend).run_reason}")
    layers = load_layers(session_wb.jobs.artifact(cnn_build, "layers.json"))
    assert layers.source == INSPECTOR and layers.layers
    assert "Layer information from TensorRT's engine inspector" in session_wb.jobs.read_log(cnn_build)[0]
    accounting = account_fusion(job.payload["model_path"], layers)
    assert not accounting.unaccounted
