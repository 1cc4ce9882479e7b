"""What a comparison is asked to do (:class:`CompareSpec`) and what the candidate is (:class:`Candidate`).

The reference is always ONNX Runtime running the original FP32 model. The candidate is either a TensorRT engine
run through Polygraphy's TensorRT runner (needs a GPU the backend supports), or an ONNX Runtime *simulation* of
the same precision: the FP16-converted model or the Q/DQ model. Every result and export carries the candidate's
kind, so a simulation is never presented as an engine result.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import SpecError

ENGINE = "engine"
SIM_QDQ = "ort-qdq"
SIM_FP16 = "ort-fp16"
ORT_ONNX = "ort-onnx"
CANDIDATE_KINDS = (ENGINE, SIM_QDQ, SIM_FP16, ORT_ONNX)

KIND_LABELS = {
    ENGINE: "TensorRT engine, run through Polygraphy's TensorRT runner",
    SIM_QDQ: "ONNX Runtime simulation of the Q/DQ (quantized) model — not an engine result",
    SIM_FP16: "ONNX Runtime simulation of the FP16-converted model — not an engine result",
    ORT_ONNX: "another ONNX model run in ONNX Runtime — not an engine result",
}
SHORT_LABELS = {
    ENGINE: "TensorRT engine",
    SIM_QDQ: "ORT simulation (Q/DQ)",
    SIM_FP16: "ORT simulation (FP16)",
    ORT_ONNX: "ONNX model in ORT",
}
REFERENCE_LABEL = "ONNX Runtime, original FP32 model"
RANDOM_CALIBRATION = "calibrated on RANDOM data: shapes only — accuracy meaningless"
RANDOM_CALIBRATION_WARNING = (
    "The candidate was calibrated on random data (shapes only — accuracy meaningless): its quantization ranges "
    "describe noise, so these errors say nothing about the model's real accuracy in reduced precision."
)
ERROR_STATS = ("elemwise", "max", "mean", "median", "quantile")
MAX_SAMPLES_LIMIT = 100_000


def _positive(value: Any, what: str, allow_zero: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SpecError(f"{what} must be a finite number, not {value!r}.")
    if value < 0 or (value == 0 and not allow_zero):
        raise SpecError(f"{what} must be {'at least 0' if allow_zero else 'above 0'}, not {value}.")
    return float(value)


@dataclass(frozen=True)
class CompareSpec:
    """How to compare. ``atol``/``rtol``/``error_stat`` go to Polygraphy's ``SimpleCompareFunc``: with
    ``elemwise`` an element fails when it exceeds *both* tolerances. ``min_cosine``/``max_rel_error`` are the
    scale-aware check (cosine similarity, ``‖c − r‖ / ‖r‖``). Each left at None takes the default for the
    candidate's precision (:mod:`.tolerances`). Where the data carry labels, top-1 within ``task_max_drop_pp``
    percentage points of FP32 means the task holds. ``per_layer`` compares every tensor that
    exists in both graphs; for engines only the tensors that survive in the engine unless ``mark_all`` (which
    changes what the builder fuses). ``label_output`` names the output whose argmax is checked against the
    data's ``label`` array (top-1 accuracy). At most ``max_samples`` samples, in batches of ``batch_size``.
    """

    atol: float | None = None
    rtol: float | None = None
    error_stat: str | None = None
    per_layer: bool = True
    mark_all: bool = False
    max_samples: int = 256
    batch_size: int = 64
    label_output: str | None = None
    top_k: int = 3
    min_cosine: float | None = None
    max_rel_error: float | None = None
    task_max_drop_pp: float = 1.0

    def __post_init__(self) -> None:
        if self.atol is not None:
            _positive(self.atol, "The absolute tolerance (atol)")
        if self.rtol is not None:
            _positive(self.rtol, "The relative tolerance (rtol)")
        if self.max_rel_error is not None:
            _positive(self.max_rel_error, "The largest relative error (‖c − r‖ / ‖r‖)")
        if self.min_cosine is not None and not -1.0 <= _positive(abs(self.min_cosine), "The cosine") <= 1.0:
            raise SpecError(f"The smallest cosine similarity must be from -1 to 1, not {self.min_cosine}.")
        if not 0.0 <= _positive(self.task_max_drop_pp, "The allowed top-1 drop") <= 100.0:
            raise SpecError(f"The allowed top-1 drop must be from 0 to 100 points, not {self.task_max_drop_pp}.")
        if self.error_stat is not None and self.error_stat not in ERROR_STATS:
            raise SpecError(
                f"Unknown error statistic '{self.error_stat}'.", f"Choose one of {', '.join(ERROR_STATS)}."
            )
        for what, v, hi in (
            ("max_samples", self.max_samples, MAX_SAMPLES_LIMIT),
            ("batch_size", self.batch_size, 4096),
            ("top_k", self.top_k, 100),
        ):
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= hi:
                raise SpecError(f"{what} must be a whole number from 1 to {hi}, not {v!r}.")
        if self.label_output is not None and (
            not isinstance(self.label_output, str) or not self.label_output.strip()
        ):
            raise SpecError("The output named for the task metric is empty.", "Name a model output.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CompareSpec:
        known = {k: v for k, v in dict(data).items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def with_(self, **changes: Any) -> CompareSpec:
        return replace(self, **changes)


@dataclass(frozen=True)
class Candidate:
    """The model or engine compared against the FP32 reference.

    ``path``: an ``.onnx`` model (kinds ``ort-qdq``, ``ort-fp16``, ``ort-onnx``) or a plan (kind ``engine``).
    For engines, ``network_model`` is the ONNX file the engine was built from (the FP16 or Q/DQ network; needed
    to name and mark per-layer tensors), ``layers_path`` the build's ``layers.json`` (engine layer boundaries)
    and ``build_spec_path`` its ``spec.json`` (profiles, backend) for the per-layer rebuild.
    """

    path: Path
    kind: str
    network_model: Path | None = None
    layers_path: Path | None = None
    build_spec_path: Path | None = None
    backend: str = ""
    source: str = ""  # where it came from, for the report ("build job …", "quantized now", a file name)
    synthetic_calibration: bool = False  # quantized with ranges from random data: shapes only
    precision: str = ""  # what it computes in (fp32, tf32, fp16, bf16, int8, fp8); "" to detect from the file

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))
        for k in ("network_model", "layers_path", "build_spec_path"):
            v = getattr(self, k)
            if v is not None:
                object.__setattr__(self, k, Path(v))
        if self.kind not in CANDIDATE_KINDS:
            raise SpecError(
                f"Unknown candidate kind '{self.kind}'.", f"Choose one of {', '.join(CANDIDATE_KINDS)}."
            )

    @property
    def is_engine(self) -> bool:
        return self.kind == ENGINE

    @property
    def label(self) -> str:
        return KIND_LABELS[self.kind]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("path", "network_model", "layers_path", "build_spec_path"):
            d[k] = None if d[k] is None else str(d[k])
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Candidate:
        known = {k: v for k, v in dict(data).items() if k in cls.__dataclass_fields__}
        return cls(**known)
