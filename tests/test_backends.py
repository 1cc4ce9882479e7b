"""What is installed and what each backend can build: the availability table the Build page shows."""

from __future__ import annotations

import pytest

from workbench.backends import GpuInfo, _precisions, backend_info, gpu_info

ADA = GpuInfo(True, "NVIDIA GeForce RTX 4090", "8.9", "13.0")
AMPERE = GpuInfo(True, "NVIDIA GeForce RTX 3090", "8.6", "13.0")
NONE = GpuInfo(False, reason="No CUDA driver (libcuda) on this machine.")


@pytest.mark.parametrize("gpu, words", [
    (ADA, "This GPU (NVIDIA GeForce RTX 4090, compute capability 8.9) runs FP8 engines."),
    (AMPERE, "This GPU (NVIDIA GeForce RTX 3090, compute capability 8.6) has no FP8"),
    (NONE, "No GPU here: the plan is built for GPUs of compute capability 8.9 or newer"),
])
def test_fp8_says_whether_this_gpu_can_run_it(gpu, words):
    """Strongly typed backends build FP8 Q/DQ plans anywhere (TensorRT-RTX builds without a GPU); what the GPU
    can run is said, not guessed."""
    ok, why = _precisions("tensorrt-rtx", "1.7.1", True, gpu)["fp8"]
    assert ok and words in why


def test_full_tensorrt_offers_fp8_only_on_a_gpu_that_has_it():
    """Full TensorRT <= 10 picks kernels on the build GPU: FP8 is greyed out, with the reason, where it has none."""
    assert _precisions("tensorrt", "10.13.0", False, ADA)["fp8"][0]
    ok, why = _precisions("tensorrt", "10.13.0", False, AMPERE)["fp8"]
    assert not ok and "has no FP8" in why and "8.9 or newer" in why
    assert not _precisions("tensorrt", "10.13.0", False, NONE)["fp8"][0]


def test_this_machine_builds_every_precision_with_tensorrt_rtx_and_says_what_it_cannot_run():
    info = backend_info("tensorrt-rtx")
    assert info.installed and info.strongly_typed_only
    assert all(ok for ok, _ in info.precisions.values()), info.precisions
    if not gpu_info().present:
        assert not info.can_run_engines and "No GPU here" in info.precisions["fp8"][1]
