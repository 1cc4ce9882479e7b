"""What "close enough" means for a candidate of a given precision, and how the verdict weighs the task metric.

Two checks decide whether a tensor is within tolerance, and both must pass:

* Polygraphy's ``SimpleCompareFunc`` with ``atol``/``rtol`` on an error statistic (``elemwise``: an element
  fails when it exceeds both). Alone it passes noise: two tensors of values around 1e-10 are within any
  ``atol``, whatever their relation.
* a scale-aware check on the same outputs: cosine similarity at least ``min_cosine`` and relative error
  ``‖candidate − reference‖ / ‖reference‖`` (the reference's own magnitude) at most ``max_rel_error``.

Defaults follow the candidate's precision: tight for FP32, looser for the 10-bit mantissas of TF32/FP16, looser
again for BF16 (7 bits), and for INT8/FP8 a median relative error (per-element errors of a few percent are
normal there, and an element-wise check fails a healthy model on its one worst element). Every value can be
overridden; what was used, and whether the user set it, is saved with the result.

Where the data carry labels, the task decides: top-1 within ``task_max_drop_pp`` percentage points of FP32 means
the task holds, and the per-tensor verdicts are detail.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PRECISIONS = ("fp32", "tf32", "fp16", "bf16", "int8", "fp8")
PRECISION_LABELS = {p: p.upper() for p in PRECISIONS}
TASK_MAX_DROP_PP = 1.0  # top-1 may drop this much (percentage points) and the task still holds


@dataclass(frozen=True)
class Tolerances:
    atol: float
    rtol: float
    error_stat: str
    min_cosine: float
    max_rel_error: float

    def describe(self) -> str:
        return (
            f"atol {self.atol:g}, rtol {self.rtol:g} ({self.error_stat}), cosine ≥ {self.min_cosine:g}, "
            f"relative error ≤ {self.max_rel_error:g}"
        )


DEFAULTS: dict[str, Tolerances] = {
    "fp32": Tolerances(1e-4, 1e-4, "elemwise", 0.99999, 1e-3),
    "tf32": Tolerances(1e-2, 1e-2, "elemwise", 0.999, 0.01),
    "fp16": Tolerances(1e-2, 1e-2, "elemwise", 0.999, 0.02),
    "bf16": Tolerances(5e-2, 5e-2, "elemwise", 0.995, 0.05),
    "int8": Tolerances(1e-3, 0.1, "median", 0.99, 0.15),
    "fp8": Tolerances(1e-3, 0.1, "median", 0.99, 0.15),
}
UNKNOWN = "fp32"  # a candidate whose precision cannot be told is held to FP32's tolerances
FIELDS = ("atol", "rtol", "error_stat", "min_cosine", "max_rel_error")


def defaults_for(precision: str) -> Tolerances:
    return DEFAULTS.get(precision or UNKNOWN, DEFAULTS[UNKNOWN])


def defaults_table() -> list[dict[str, Any]]:
    """One row per precision: the defaults a page or ``--help`` shows."""
    return [{"precision": PRECISION_LABELS[p], **vars(t)} for p, t in DEFAULTS.items()]


def resolve(precision: str, **given: Any) -> tuple[Tolerances, tuple[str, ...]]:
    """The tolerances for ``precision`` with the values the user gave (None: the default) and the names of the
    fields the user set to something other than the default."""
    base = defaults_for(precision)
    values = {f: getattr(base, f) for f in FIELDS}
    overridden = []
    for f in FIELDS:
        v = given.get(f)
        if v is None:
            continue
        if v != values[f]:
            overridden.append(f)
        values[f] = v
    return Tolerances(**values), tuple(overridden)


def source_text(precision: str, overridden: tuple[str, ...]) -> str:
    label = PRECISION_LABELS.get(precision, precision.upper() or "FP32")
    if not precision:
        label = "FP32 (precision unknown)"
    text = f"defaults for {label}"
    return text + (f"; set by you: {', '.join(overridden)}" if overridden else "")


def scale_ok(cosine: float, rel_error: float, tol: Tolerances) -> bool:
    """The scale-aware check: cosine at least ``min_cosine`` and relative error at most ``max_rel_error``
    (NaN fails: a NaN cosine means one side broke)."""
    if math.isnan(cosine) or math.isnan(rel_error):
        return False
    return cosine >= tol.min_cosine and rel_error <= tol.max_rel_error


def task_holds(delta_pp: float, max_drop_pp: float) -> bool:
    return not math.isnan(delta_pp) and delta_pp >= -max_drop_pp


# ---------------------------------------------------------------------------------------------- precision


_FLOAT8 = {17, 18, 19, 20}  # FLOAT8E4M3FN, FLOAT8E4M3FNUZ, FLOAT8E5M2, FLOAT8E5M2FNUZ
_INT8 = {2, 3, 21, 22}  # UINT8, INT8, UINT4, INT4
_FP16, _BF16 = 10, 16


def detect_precision(path: str | Path) -> str:
    """The precision an ONNX candidate computes in, from its contents: ``fp8``/``int8`` (Q/DQ with float8 or
    integer quantized types), ``bf16``/``fp16`` (tensors or casts of that type), else ``fp32``."""
    from ..model import load_proto

    g = load_proto(Path(path)).graph
    inits = {i.name: i.data_type for i in g.initializer}
    q_types: set[int] = set()
    for n in g.node:
        if n.op_type == "QuantizeLinear" and len(n.input) > 2 and n.input[2] in inits:
            q_types.add(inits[n.input[2]])
        elif n.op_type == "DequantizeLinear" and n.input and n.input[0] in inits:
            q_types.add(inits[n.input[0]])
        elif n.op_type in ("QuantizeLinear", "DequantizeLinear"):
            q_types.add(2)  # no zero point: uint8 (the ONNX default)
    if q_types & _FLOAT8:
        return "fp8"
    if q_types & _INT8:
        return "int8"
    types = {i for i in inits.values()} | {
        v.type.tensor_type.elem_type for v in (*g.value_info, *g.input, *g.output)
    }
    types |= {a.i for n in g.node if n.op_type == "Cast" for a in n.attribute if a.name == "to"}
    if _BF16 in types:
        return "bf16"
    if _FP16 in types:
        return "fp16"
    return "fp32"
