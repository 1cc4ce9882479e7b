"""Accuracy debugging: compare a TensorRT engine (or an ONNX Runtime simulation of it) against ONNX Runtime
running the original FP32 model, tensor by tensor, with Polygraphy; find the layers that add the error; keep
them in higher precision and compare again.

Modules: :mod:`.spec` (what to compare), :mod:`.candidates` (where candidates come from), :mod:`.graph` (which
tensor is which), :mod:`.runners` (Polygraphy runners), :mod:`.metrics`, :mod:`.culprits`, :mod:`.comparison`
(the comparison and its artifacts), :mod:`.requantize` (before/after), :mod:`.job` (the "compare" job).
Polygraphy, ONNX Runtime and TensorRT are imported only inside functions.
"""

from .candidates import candidate_from_build, candidate_from_path, simulate_fp16, simulate_qdq
from .comparison import compare, load_before_after, load_comparison, load_samples
from .data import load_data
from .job import CompareRequest, run_compare, submit_compare
from .requantize import requantize_and_compare
from .results import BeforeAfter, ComparisonResult, Culprit, TaskMetric, TensorResult
from .spec import CANDIDATE_KINDS, ENGINE, KIND_LABELS, ORT_ONNX, SIM_FP16, SIM_QDQ, Candidate, CompareSpec

__all__ = [
    "CANDIDATE_KINDS",
    "ENGINE",
    "KIND_LABELS",
    "ORT_ONNX",
    "SIM_FP16",
    "SIM_QDQ",
    "BeforeAfter",
    "Candidate",
    "CompareRequest",
    "CompareSpec",
    "ComparisonResult",
    "Culprit",
    "TaskMetric",
    "TensorResult",
    "candidate_from_build",
    "candidate_from_path",
    "compare",
    "load_before_after",
    "load_comparison",
    "load_data",
    "load_samples",
    "requantize_and_compare",
    "run_compare",
    "simulate_fp16",
    "simulate_qdq",
    "submit_compare",
]
