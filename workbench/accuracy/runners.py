"""Polygraphy runners for both sides of a comparison, and running them over the same feeds.

* ONNX models run in ONNX Runtime through ``OnnxrtRunner(SessionFromOnnx(...))``; the tensors to compare are
  marked as graph outputs with Polygraphy's ``ModifyOutputs`` (which does not change what ONNX Runtime computes).
  Sessions use ONNX Runtime's *basic* graph optimizations: the extended level fuses Q/DQ into ONNX Runtime's own
  x86 int8 kernels, whose saturation on CPUs without VNNI is an error TensorRT does not have.
* Engines run through ``TrtRunner`` (needs a GPU the backend supports). Outputs only: the deployed plan as it
  is. Per layer: the network is rebuilt with TensorRT's unfused tensors marked as debug tensors where the backend
  has ``mark_unfused_tensors_as_debug_tensors``, else with the engine layers' boundary tensors marked as debug
  tensors (``MarkDebug``): both leave fusion alone. ``mark_all`` marks every tensor an output instead, which
  changes what the builder fuses.

Polygraphy is imported inside the functions; for engines, :func:`workbench.build.select_backend` runs first.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BackendError, BackendUnavailable, WorkbenchError
from ..progress import Cancelled, Reporter, check_cancel
from .graph import has_external_data
from .spec import Candidate

log = logging.getLogger(__name__)

MARK_ALL = "all"
UNFUSED = "unfused"
_LARGE = 1 << 30


def _exact(name: str) -> str:
    """Polygraphy treats output names with ``*?[]`` as fnmatch patterns; escape them to match literally."""
    if not any(c in name for c in "*?[]"):
        return name
    return "".join(f"[{c}]" if c in "*?[]" else c for c in name)


@contextlib.contextmanager
def quiet_polygraphy(severity: str = "ERROR") -> Iterator[None]:
    from polygraphy.logger import G_LOGGER

    with G_LOGGER.verbosity(getattr(G_LOGGER, severity)):
        yield


def _poly_error(err: Exception, what: str) -> WorkbenchError:
    return BackendError(f"{what} failed in Polygraphy: {str(err).strip()[:2000]}", "See the log for details.")


CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"


def ort_providers() -> list[str]:
    """The execution providers comparisons ask ONNX Runtime for: CUDA first when this ONNX Runtime lists it as
    available (an ``onnxruntime-gpu`` install), then CPU (ONNX Runtime itself falls back to CPU for nodes CUDA
    lacks)."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    return [CUDA_PROVIDER, CPU_PROVIDER] if CUDA_PROVIDER in available else [CPU_PROVIDER]


def provider_label(provider: str) -> str:
    """``CUDAExecutionProvider`` -> ``CUDA``."""
    return provider.removesuffix("ExecutionProvider") or provider


class _RecordingSession:
    """A Polygraphy session loader that remembers which execution providers the session really got (ONNX
    Runtime drops a provider it cannot initialise), read after the runner ran."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader
        self.providers: list[str] = []

    def __call__(self) -> Any:
        sess = self.loader()
        self.providers = list(sess.get_providers())
        return sess


def runner_provider(runner: Any) -> str:
    """The first (main) execution provider an ``ort_runner`` ran with; "" before it ran or for other runners."""
    sess = getattr(runner, "_sess", None)
    providers = getattr(sess, "providers", None) or []
    return str(providers[0]) if providers else ""


def ort_runner(model_path: str | Path, outputs: Sequence[str] | str | None, name: str, work_dir: Path) -> Any:
    """``OnnxrtRunner`` over ``model_path`` with ``outputs`` marked (``"all"``: Polygraphy's MARK_ALL; None: the
    model's own outputs), on :func:`ort_providers`; :func:`runner_provider` says which one ran."""
    import onnxruntime as ort
    from polygraphy import constants
    from polygraphy.backend.onnx import BytesFromOnnx, ModifyOutputs, OnnxFromPath, SaveOnnx
    from polygraphy.backend.onnxrt import OnnxrtRunner, SessionFromOnnx

    model_path = Path(model_path)
    loader: Any = OnnxFromPath(str(model_path))
    if outputs == MARK_ALL:
        loader = ModifyOutputs(loader, outputs=constants.MARK_ALL)
    elif outputs is not None:
        loader = ModifyOutputs(loader, outputs=[_exact(o) for o in outputs])
    big = model_path.stat().st_size > _LARGE or has_external_data(model_path)
    if big:  # protobuf cannot serialize > 2 GiB: write the marked model with external data instead
        marked = work_dir / f"{name.split()[0]}-marked.onnx"
        source: Any = SaveOnnx(loader, str(marked), external_data_path="")
    else:
        source = BytesFromOnnx(loader)
    session = _RecordingSession(
        SessionFromOnnx(
            source,
            providers=ort_providers(),
            graph_optimization_level=ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        )
    )
    return OnnxrtRunner(session, name=name)


def engines_runnable(backend: str = "") -> tuple[bool, str, str]:
    """(can run, backend to use, reason when not). Tries full TensorRT, then TensorRT-RTX."""
    from ..backends import backend_info, gpu_info

    names = [backend] if backend else ["tensorrt", "tensorrt-rtx"]
    reasons = []
    for name in names:
        info = backend_info(name)
        if info.installed and info.can_run_engines:
            return True, name, ""
        reasons.append(info.reason or info.run_reason)
    gpu = gpu_info()
    reason = gpu.reason if not gpu.present else " ".join(r for r in reasons if r)
    return False, "", reason or "No installed TensorRT backend can run engines here."


def engine_runner(candidate: Candidate, debug: Sequence[str] | str | None, name: str) -> Any:
    """``TrtRunner`` for an engine candidate. ``debug``: None (the plan as deployed), ``"unfused"``, ``"all"``
    (mark every tensor an output: changes fusion) or tensor names to mark as debug tensors."""
    ok, backend, reason = engines_runnable(candidate.backend)
    if not ok:
        raise BackendUnavailable(
            f"TensorRT engines cannot run on this machine: {reason}",
            "Compare the ONNX Runtime simulation instead: the FP16-converted model or the Q/DQ model the "
            "engine was built from (a simulation, not the engine).",
        )
    from ..build import select_backend

    select_backend(backend)
    from polygraphy import constants
    from polygraphy.backend.common import BytesFromPath
    from polygraphy.backend.trt import (
        EngineFromBytes,
        EngineFromNetwork,
        MarkDebug,
        ModifyNetworkOutputs,
        NetworkFromOnnxPath,
        TrtRunner,
    )

    if debug is None:
        return TrtRunner(EngineFromBytes(BytesFromPath(str(candidate.path))), name=name)
    if candidate.network_model is None:
        raise BackendUnavailable(
            "A per-layer comparison of an engine needs the ONNX network it was built from.",
            "Compare a finished build job (it keeps network.onnx / model_qdq.onnx), or compare outputs only.",
        )
    from polygraphy.mod.trt_importer import lazy_import_trt

    from ..build import builder_config
    from ..spec import BuildSpec, strongly_typed

    spec = (
        BuildSpec.from_json(candidate.build_spec_path.read_text())
        if candidate.build_spec_path and candidate.build_spec_path.is_file()
        else BuildSpec(backend=backend)
    )
    if spec.calibration is not None and spec.calibration.implicit:
        raise BackendUnavailable(
            "A per-layer comparison rebuilds the engine with debug tensors, and this build used TensorRT's "
            "implicit INT8 calibrator, whose rebuild would not be the engine deployed.",
            "Compare outputs only (untick 'per layer'), or build with explicit (Q/DQ) quantization.",
        )
    trt = lazy_import_trt()
    strongly = strongly_typed(backend, trt.__version__)  # as the build parsed it: FP16 flags on TensorRT <= 10
    unfused = debug == UNFUSED
    network: Any = NetworkFromOnnxPath(
        str(candidate.network_model), strongly_typed=strongly, mark_unfused_tensors_as_debug_tensors=unfused
    )
    if debug == MARK_ALL:
        network = ModifyNetworkOutputs(network, outputs=constants.MARK_ALL)
    elif not unfused:
        network = MarkDebug(network, mark_debug=list(debug))
    config = builder_config(spec, trt, strongly)  # the deployed engine's settings, debug tensors aside
    return TrtRunner(EngineFromNetwork(network, config=config), name=name)


def has_unfused_debug_api(backend: str) -> bool:
    """Whether the backend's network can mark its unfused tensors as debug tensors (TensorRT 10.8 and newer)."""
    from ..build import select_backend

    select_backend(backend)
    try:
        from polygraphy.mod.trt_importer import lazy_import_trt

        trt = lazy_import_trt()
        return hasattr(trt.INetworkDefinition, "mark_unfused_tensors_as_debug_tensors")
    except Exception:  # not importable: the caller reports the backend as unavailable
        return False


def run_runners(
    runners: Sequence[Any],
    feeds: Sequence[dict[str, np.ndarray]],
    reporter: Reporter,
    phase: str,
    span: tuple[float, float] = (0.0, 1.0),
) -> tuple[list[list[dict[str, np.ndarray]]], list[float]]:
    """Runs every runner over every feed (Polygraphy's ``Comparator.run`` in streaming mode, so runners stay
    active and the user can cancel between batches; progress goes over ``span``). Returns per runner a list of {tensor: array} per feed
    (copied: runner buffers may be reused), and each runner's total inference time."""
    from polygraphy.comparator import Comparator
    from polygraphy.exception import PolygraphyException

    outs: list[list[dict[str, np.ndarray]]] = [[] for _ in runners]
    times = [0.0 for _ in runners]
    try:
        with quiet_polygraphy():
            stream = Comparator.run(list(runners), data_loader=list(feeds), streaming=True)
            try:
                for i, single in enumerate(stream):
                    for r, (_, iters) in enumerate(single.items()):
                        it = iters[0]
                        outs[r].append({k: np.array(v, copy=True) for k, v in it.items()})
                        times[r] += float(it.runtime or 0.0)
                    lo, hi = span
                    reporter.progress(lo + (hi - lo) * (i + 1) / max(1, len(feeds)), phase)
                    check_cancel(reporter)
            finally:
                with contextlib.suppress(Exception):
                    stream.close()
    except PolygraphyException as err:
        raise _poly_error(err, "Running the models") from err
    except (WorkbenchError, Cancelled):
        raise
    except Exception as err:
        raise BackendError(f"Inference failed: {type(err).__name__}: {err}") from err
    return outs, times


def plain_inference_seconds(model_path: str | Path, feed: dict[str, np.ndarray], repeat: int = 3) -> float:
    """Best-of-``repeat`` time of one plain ONNX Runtime inference (model outputs only), for cost comparisons."""
    with tempfile.TemporaryDirectory(prefix="wb-plain-") as tmp:
        runner = ort_runner(model_path, None, "plain", Path(tmp))
        with quiet_polygraphy(), runner:
            best = float("inf")
            for _ in range(repeat):
                t0 = time.perf_counter()
                runner.infer(feed)
                best = min(best, time.perf_counter() - t0)
    return best
