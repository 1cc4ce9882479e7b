"""The task metric a culprit loop steers by, from outputs already computed (ONNX Runtime runs of FP32 and of the
candidate on held-out data): top-1 accuracy where the data carry labels (recovered: within 1 pp of FP32), else
the mean cosine similarity of each sample's output to FP32's (recovered: at least 0.99). An embedding output
(``[samples, tokens, hidden]`` with an attention-mask input) is mean-pooled over the real tokens first, as
sentence-embedding models are used; the nearest-neighbour agreement over the held-out set is reported beside it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

TARGET_COSINE = 0.99
MAX_DROP_PP = 1.0


@dataclass(frozen=True)
class TaskScore:
    """One candidate's task metric. ``value``: top-1 accuracy (fraction) or mean cosine; ``reference``: FP32's
    value of the same metric (1.0 for cosine); ``target``: the value that counts as recovered."""

    metric: str  # "top-1" or "mean cosine"
    value: float
    reference: float
    target: float
    output: str
    n_samples: int
    neighbour_agreement: float | None = None  # cosine: same nearest held-out neighbour as FP32

    @property
    def recovered(self) -> bool:
        return bool(self.value >= self.target - 1e-12)

    def text(self) -> str:
        if self.metric == "top-1":
            return (f"top-1 {self.value:.2%} (FP32 {self.reference:.2%}, {100 * (self.value - self.reference):+.2f} "
                    f"pp; recovered at ≥ {self.target:.2%})")
        nn = "" if self.neighbour_agreement is None else f", nearest-neighbour agreement {self.neighbour_agreement:.0%}"
        return f"mean cosine {self.value:.4f} to FP32 (recovered at ≥ {self.target:g}{nn})"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "recovered": self.recovered}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TaskScore:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def _mask(inputs: Mapping[str, np.ndarray], n: int, tokens: int) -> np.ndarray | None:
    for name, arr in inputs.items():
        if "mask" in name.lower() and arr.shape[:2] == (n, tokens):
            return np.asarray(arr, dtype=np.float64).reshape(n, tokens)
    return None


def per_sample(output: np.ndarray, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
    """One vector per sample: mean-pooled over the masked tokens for ``[N, T, H]`` with a mask input, else the
    sample's values flattened."""
    out = np.asarray(output, dtype=np.float64)
    n = out.shape[0]
    if out.ndim == 3:
        mask = _mask(inputs, n, out.shape[1])
        if mask is not None:
            return (out * mask[:, :, None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
    return out.reshape(n, -1)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    with np.errstate(all="ignore"):
        cos = np.einsum("ij,ij->i", a, b) / (na * nb)
    same = (na == 0) & (nb == 0)
    return np.where(same, 1.0, np.nan_to_num(cos, nan=0.0))


def _neighbours(x: np.ndarray) -> np.ndarray:
    u = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)
    sim = u @ u.T
    np.fill_diagonal(sim, -np.inf)
    return sim.argmax(1)


def score(
    reference: Mapping[str, np.ndarray],
    candidate: Mapping[str, np.ndarray],
    inputs: Mapping[str, np.ndarray],
    labels: np.ndarray | None = None,
    *,
    output: str | None = None,
    target: float | None = None,
) -> TaskScore:
    """The task metric of ``candidate`` against ``reference`` (both: output name -> array over the same samples).

    With ``labels``: top-1 accuracy of ``output`` (default the first), target FP32's accuracy minus 1 pp (or
    ``target``, a fraction). Without: mean per-sample cosine, target 0.99 (or ``target``)."""
    from ..quantize import accuracy_of

    name = output or next(iter(reference))
    ref, cand = reference[name], candidate[name]
    n = int(ref.shape[0])
    if labels is not None:
        acc_r = accuracy_of(reference, labels, name)
        acc_c = accuracy_of(candidate, labels, name)
        goal = acc_r - MAX_DROP_PP / 100.0 if target is None else target
        return TaskScore("top-1", acc_c, acc_r, goal, name, n)
    r, c = per_sample(ref, inputs), per_sample(cand, inputs)
    cos = float(np.mean(_cosines(r, c))) if n else float("nan")
    nn = float(np.mean(_neighbours(r) == _neighbours(c))) if n > 2 and np.all(np.isfinite(c)) else None
    return TaskScore("mean cosine", cos, 1.0, TARGET_COSINE if target is None else target, name, n, nn)
