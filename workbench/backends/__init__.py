"""What is installed: TensorRT-RTX, full TensorRT, ONNX Runtime providers, a GPU.

Detection never imports the heavy modules (it reads package metadata and probes the CUDA driver through
ctypes), so the app starts fast and works where none of them is installed. Builds happen in worker
processes, which import the chosen backend through Polygraphy (see :mod:`workbench.build`).
"""

from __future__ import annotations

import ctypes
import functools
import importlib.metadata as md
import importlib.util
from dataclasses import dataclass, field

from ..errors import BackendUnavailable
from ..spec import strongly_typed

# backend name -> (python module, distributions that provide it)
_MODULES = {
    "tensorrt-rtx": ("tensorrt_rtx", ("tensorrt-rtx-cu13", "tensorrt-rtx-cu12", "tensorrt_rtx")),
    "tensorrt": ("tensorrt", ("tensorrt", "tensorrt-cu13", "tensorrt-cu12", "tensorrt-cu13-bindings",
                              "tensorrt-cu12-bindings")),
}
LABELS = {"tensorrt-rtx": "TensorRT-RTX", "tensorrt": "TensorRT"}
# TensorRT-RTX plans run on these compute capabilities (the engine refuses others, e.g. 9.0).
RTX_COMPUTE_CAPABILITIES = ("7.5", "8.0", "8.6", "8.9", "12.0", "12.1")


@dataclass(frozen=True)
class GpuInfo:
    present: bool
    name: str = ""
    compute_capability: str = ""
    driver: str = ""
    reason: str = ""


@dataclass(frozen=True)
class BackendInfo:
    name: str
    module: str
    installed: bool
    version: str = ""
    reason: str = ""
    strongly_typed_only: bool = False
    can_run_engines: bool = False
    run_reason: str = ""
    precisions: dict[str, tuple[bool, str]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{LABELS[self.name]} {self.version}".strip()


def _dist_version(names: tuple[str, ...]) -> str:
    for n in names:
        try:
            return md.version(n)
        except md.PackageNotFoundError:
            continue
    return ""


@functools.lru_cache(maxsize=1)
def gpu_info() -> GpuInfo:
    """Probe the CUDA driver (libcuda) directly; no CUDA toolkit or TensorRT needed."""
    for lib in ("libcuda.so.1", "libcuda.so", "nvcuda.dll"):
        try:
            cuda = ctypes.CDLL(lib)
            break
        except OSError:
            continue
    else:
        return GpuInfo(False, reason="No CUDA driver (libcuda) on this machine.")
    if cuda.cuInit(0) != 0:
        return GpuInfo(False, reason="The CUDA driver is installed but found no usable GPU (cuInit failed).")
    count = ctypes.c_int()
    if cuda.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value == 0:
        return GpuInfo(False, reason="The CUDA driver reports no GPU.")
    dev = ctypes.c_int()
    cuda.cuDeviceGet(ctypes.byref(dev), 0)
    name = ctypes.create_string_buffer(256)
    cuda.cuDeviceGetName(name, 256, dev)
    major, minor = ctypes.c_int(), ctypes.c_int()
    cuda.cuDeviceGetAttribute(ctypes.byref(major), 75, dev)  # COMPUTE_CAPABILITY_MAJOR
    cuda.cuDeviceGetAttribute(ctypes.byref(minor), 76, dev)  # COMPUTE_CAPABILITY_MINOR
    drv = ctypes.c_int()
    cuda.cuDriverGetVersion(ctypes.byref(drv))
    return GpuInfo(True, name.value.decode(errors="replace"), f"{major.value}.{minor.value}",
                   f"{drv.value // 1000}.{drv.value % 1000 // 10}")


def _precisions(name: str, version: str, strongly_typed: bool, gpu: GpuInfo) -> dict[str, tuple[bool, str]]:
    # The workbench converts the model itself for a strongly typed BF16 build (see workbench.bfloat16).
    converter = all(importlib.util.find_spec(m) is not None for m in ("onnxconverter_common", "ml_dtypes"))
    p: dict[str, tuple[bool, str]] = {"fp32": (True, "")}
    if strongly_typed:
        what = "TensorRT-RTX" if name == "tensorrt-rtx" else f"TensorRT {version}"
        p["tf32"] = (True, "TF32 builder flag: FP32 tensors may use TF32 math on GPUs that have it.")
        p["fp16"] = (True, f"{what} is strongly typed: the ONNX model's float tensors are converted to FP16 "
                           "first (I/O stays FP32).")
        p["bf16"] = (converter, f"{what} is strongly typed: the ONNX model's float tensors are converted to BF16 "
                                "first (I/O stays FP32; weights rounded from FP32, never clamped)." if converter else
                     f"{what} is strongly typed: BF16 needs the model converted, and the converter's dependencies "
                     "(onnxconverter-common, ml_dtypes) are not installed here.")
        p["int8"] = (True, "Explicit quantization: the model is calibrated on your data and written with Q/DQ "
                           "nodes, then built.")
        p["fp8"] = (True, "Explicit FP8 Q/DQ. " + _fp8_runs_here(gpu))
    else:
        p["tf32"] = (True, "Builder flag.")
        p["fp16"] = (True, "Builder flag (weakly typed): TensorRT may choose FP16 per layer.")
        p["bf16"] = (True, "Builder flag (weakly typed).")
        p["int8"] = (True, "Builder flag with a calibrator, or explicit Q/DQ.")
        # full TensorRT builds on its GPU, choosing kernels there: FP8 needs that GPU to have FP8
        p["fp8"] = (_fp8_gpu(gpu), "Explicit FP8 Q/DQ. " + _fp8_runs_here(gpu))
    return p


FP8_MIN_CC = (8, 9)  # Ada, Hopper, Blackwell


def _fp8_gpu(gpu: GpuInfo) -> bool:
    try:
        return gpu.present and tuple(int(x) for x in gpu.compute_capability.split(".")) >= FP8_MIN_CC
    except ValueError:
        return False


def _fp8_runs_here(gpu: GpuInfo) -> str:
    need = f"compute capability {FP8_MIN_CC[0]}.{FP8_MIN_CC[1]} or newer"
    if not gpu.present:
        return f"No GPU here: the plan is built for GPUs of {need} and cannot be run here."
    if _fp8_gpu(gpu):
        return f"This GPU ({gpu.name}, compute capability {gpu.compute_capability}) runs FP8 engines."
    return (f"This GPU ({gpu.name}, compute capability {gpu.compute_capability}) has no FP8: FP8 engines need "
            f"{need}.")


@functools.lru_cache(maxsize=4)
def backend_info(name: str) -> BackendInfo:
    if name not in _MODULES:
        raise BackendUnavailable(f"Unknown backend '{name}'.", f"Choose one of {', '.join(_MODULES)}.")
    module, dists = _MODULES[name]
    gpu = gpu_info()
    if importlib.util.find_spec(module) is None:
        hint = ("pip install tensorrt-rtx-cu13" if name == "tensorrt-rtx" else
                "pip install 'trt-workbench[tensorrt]' on a machine that reaches NVIDIA's package index")
        return BackendInfo(name, module, False, reason=f"{LABELS[name]} is not installed ({hint}).")
    version = _dist_version(dists)
    strongly = strongly_typed(name, version)
    if not gpu.present:
        can_run, run_reason = False, gpu.reason + " Plans can be built here but not run."
    elif name == "tensorrt-rtx" and gpu.compute_capability not in RTX_COMPUTE_CAPABILITIES:
        can_run, run_reason = False, (f"TensorRT-RTX cannot run engines on this GPU (compute capability "
                                      f"{gpu.compute_capability}).")
    else:
        can_run, run_reason = True, ""
    return BackendInfo(name, module, True, version, "", strongly, can_run, run_reason,
                       _precisions(name, version, strongly, gpu))


def detect_backends() -> list[BackendInfo]:
    return [backend_info(n) for n in _MODULES]


def installed_backends() -> list[BackendInfo]:
    return [b for b in detect_backends() if b.installed]


def require_backend(name: str) -> BackendInfo:
    info = backend_info(name)
    if not info.installed:
        raise BackendUnavailable(info.reason)
    return info


def onnxruntime_providers() -> list[str]:
    try:
        import onnxruntime as ort
    except ImportError:
        return []
    return list(ort.get_available_providers())


def versions() -> dict[str, str]:
    """Versions of the pieces a build report names."""
    out = {}
    for dist in ("trt-workbench", "polygraphy", "onnx", "onnxruntime", "streamlit", "netron", "numpy"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = ""
    return out
