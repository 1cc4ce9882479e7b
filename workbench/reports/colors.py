"""One palette for every figure and log view, so the same thing has the same colour everywhere."""

from __future__ import annotations

# Bars describing the ONNX model (op-type histogram).
MODEL_OPS = "#4c78a8"

# Log lines by severity (see :func:`workbench.jobs.parse_log`).
LOG_SEVERITY: dict[str, str] = {
    "error": "#c62828",
    "warning": "#b26a00",
    "info": "#1f3a5f",
    "verbose": "#6b7280",
    "debug": "#9ca3af",
}

# Engine-layer precisions (fusion report, accuracy report).
PRECISION: dict[str, str] = {
    "FP32": "#4c78a8",
    "TF32": "#72b7b2",
    "FP16": "#f58518",
    "BF16": "#e45756",
    "INT8": "#54a24b",
    "FP8": "#b279a2",
    "INT4": "#9d755d",
    "FP4": "#d67195",
    "UINT8": "#8cd17d",
    "INT32": "#79706e",
    "INT64": "#5f5a58",
    "BOOL": "#d4a6c8",
    "mixed": "#eeca3b",
    "unknown": "#bab0ac",
}

# How an ONNX node ended up in the engine (fusion report).
FUSION_FATE: dict[str, str] = {
    "fused": "#f58518",
    "one_to_one": "#4c78a8",
    "split": "#72b7b2",
    "constant_folded": "#9d755d",
    "eliminated": "#bab0ac",
    "unaccounted": "#c62828",
}

# Comparison verdicts (accuracy report).
VERDICT: dict[str, str] = {"pass": "#54a24b", "fail": "#c62828", "nan": "#7b1fa2"}
