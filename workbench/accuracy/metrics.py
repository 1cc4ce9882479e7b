"""Per-tensor numbers: Polygraphy's comparator verdict and error statistics, and our own cosine similarity,
signal-to-noise ratio, relative RMS error, NaN/Inf counts and the tolerances each tensor would have needed."""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import BackendError
from .runners import quiet_polygraphy

log = logging.getLogger(__name__)

# Polygraphy adds this to zero reference values before dividing (relative error); we do the same.
_EPS = 2.220446049250313e-16


@dataclass(frozen=True)
class Stats:
    """Our own measures over all iterations of one tensor (flattened, in float64)."""

    cosine: float
    snr_db: float
    rel_rms: float
    needed_atol: float
    needed_rtol: float
    nonfinite_reference: int
    nonfinite_candidate: int


def _flat(arrays: Sequence[np.ndarray]) -> np.ndarray:
    parts = [np.asarray(a).astype(np.float64, copy=False).reshape(-1) for a in arrays]
    return np.concatenate(parts) if parts else np.zeros(0)


def tensor_stats(
    reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray], atol: float, rtol: float
) -> Stats:
    """Cosine similarity, SNR (dB), relative RMS error and needed tolerances of ``candidate`` vs ``reference``.

    Needed tolerances follow Polygraphy's element-wise check (an element fails when it exceeds both): the atol
    that passes every element at the given rtol, and the rtol that passes every element at the given atol.
    NaN/Inf in the candidate where the reference is finite make the error infinite.
    """
    with np.errstate(all="ignore"):
        return _stats(_flat(reference), _flat(candidate), atol, rtol)


def _stats(r: np.ndarray, c: np.ndarray, atol: float, rtol: float) -> Stats:
    if r.shape != c.shape:
        nan = float("nan")
        return Stats(nan, nan, nan, nan, nan, 0, 0)
    fin_r, fin_c = np.isfinite(r), np.isfinite(c)
    nf_r, nf_c = int(r.size - fin_r.sum()), int(c.size - fin_c.sum())
    both = fin_r & fin_c
    same_nonfinite = (~fin_r & ~fin_c) & ((r == c) | (np.isnan(r) & np.isnan(c)))
    if not np.all(both | same_nonfinite):  # the candidate broke where the reference did not (or vice versa)
        inf = float("inf")
        return Stats(float("nan"), -inf, inf, inf, inf, nf_r, nf_c)
    r, c = r[both], c[both]
    diff = c - r
    n_r, n_c, n_d = float(np.linalg.norm(r)), float(np.linalg.norm(c)), float(np.linalg.norm(diff))
    if n_r > 0 and n_c > 0:
        cosine = float(np.clip(np.dot(r, c) / (n_r * n_c), -1.0, 1.0))
    else:
        cosine = 1.0 if n_r == n_c else 0.0
    if n_d == 0:
        rel_rms, snr = 0.0, float("inf")
    elif n_r == 0:
        rel_rms, snr = float("inf"), float("-inf")
    else:
        rel_rms = n_d / n_r
        snr = 20.0 * math.log10(n_r / n_d)
    absd = np.abs(diff)
    ref_abs = np.abs(r)
    reld = absd / np.where(ref_abs == 0, _EPS, ref_abs)
    over_rel = absd[reld > rtol]
    over_abs = reld[absd > atol]
    return Stats(
        cosine=cosine,
        snr_db=snr,
        rel_rms=rel_rms,
        needed_atol=float(over_rel.max()) if over_rel.size else 0.0,
        needed_rtol=float(over_abs.max()) if over_abs.size else 0.0,
        nonfinite_reference=nf_r,
        nonfinite_candidate=nf_c,
    )


def _exact_match(name: str, index: int, iter_result: Any) -> list[str] | None:
    """Compare tensors by exact name (Polygraphy's default also accepts substring matches)."""
    return [name] if name in iter_result else None


@contextlib.contextmanager
def _no_statistics_for_the_log() -> Iterator[None]:
    """While Polygraphy's log is silenced, skip its log-only statistics: ``log_output_stats`` and
    ``log_compared_output_stats`` compute mean, median, three quantiles (sorts) and more of every compared
    tensor and of both differences, eagerly, for text nobody reads (a third of a ResNet-50 comparison). They
    return nothing; the comparison's results (its metrics, its verdicts) are computed elsewhere."""
    from polygraphy.comparator import util as comp_util
    from polygraphy.logger import G_LOGGER

    if G_LOGGER.module_severity.get(G_LOGGER.module_path(comp_util.__file__)) <= G_LOGGER.INFO:  # it is read
        yield
        return
    saved = comp_util.log_output_stats, comp_util.log_compared_output_stats
    comp_util.log_output_stats = comp_util.log_compared_output_stats = lambda *a, **k: None
    try:
        yield
    finally:
        comp_util.log_output_stats, comp_util.log_compared_output_stats = saved


def polygraphy_compare(
    run_results: Any, atol: float, rtol: float, error_stat: str
) -> dict[str, dict[str, Any]]:
    """Runs ``Comparator.compare_accuracy`` with ``SimpleCompareFunc`` (candidate first, reference second, so
    rtol is relative to the reference) and folds its per-iteration results into one entry per tensor:
    ``passed`` (every iteration), ``max_abs``/``max_rel`` (largest), ``mean_abs``/``mean_rel`` (size-weighted)."""
    from polygraphy.comparator import Comparator, SimpleCompareFunc
    from polygraphy.exception import PolygraphyException

    func = SimpleCompareFunc(atol=atol, rtol=rtol, check_error_stat=error_stat, find_output_func=_exact_match)
    try:
        # Polygraphy formats every array for its (silenced) log eagerly; tiny print options keep that cheap.
        # NaN/Inf are reported in the results, not warned about.
        with (
            quiet_polygraphy("CRITICAL"),
            np.errstate(all="ignore"),
            np.printoptions(threshold=8, edgeitems=1),
        ):
            with _no_statistics_for_the_log():
                results = Comparator.compare_accuracy(run_results, compare_func=func)
    except PolygraphyException as err:
        raise BackendError(f"Polygraphy's comparator failed: {str(err).strip()[:2000]}") from err
    accuracy = results[0]
    ((_, iterations),) = list(accuracy.items())
    cand_iters = list(run_results.values())[0]
    out: dict[str, dict[str, Any]] = {}
    for i, per_output in enumerate(iterations):
        for name, res in per_output.items():
            size = int(np.asarray(cand_iters[i][name]).size)
            e = out.setdefault(
                name, {"passed": True, "max_abs": 0.0, "max_rel": 0.0, "sum_abs": 0.0, "sum_rel": 0.0, "n": 0}
            )
            e["passed"] = e["passed"] and bool(res)
            if isinstance(res, bool) or not hasattr(res, "max_absdiff"):  # shape mismatch: a bare False
                e["max_abs"] = e["max_rel"] = float("nan")
                continue
            e["max_abs"] = _nanmax(e["max_abs"], res.max_absdiff)
            e["max_rel"] = _nanmax(e["max_rel"], res.max_reldiff)
            e["sum_abs"] += float(res.mean_absdiff) * size
            e["sum_rel"] += float(res.mean_reldiff) * size
            e["n"] += size
    for e in out.values():
        n = e.pop("n")
        e["mean_abs"] = e.pop("sum_abs") / n if n else float("nan")
        e["mean_rel"] = e.pop("sum_rel") / n if n else float("nan")
    return out


def _nanmax(a: float, b: float | None) -> float:
    if b is None or math.isnan(b) or math.isnan(a):
        return float("nan")
    return max(a, float(b))


def iteration_results(
    ref_iters: Sequence[Mapping[str, np.ndarray]],
    cand_iters: Sequence[Mapping[str, np.ndarray]],
    ref_name: str,
    cand_name: str,
) -> Any:
    """A Polygraphy ``RunResults`` holding both runners (candidate first), with the candidate's tensors already
    under the reference's names: what is saved (Polygraphy's JSON format) and compared."""
    from polygraphy.comparator import IterationResult, RunResults

    rr = RunResults()
    rr.append((cand_name, [IterationResult(outputs=dict(it), runner_name=cand_name) for it in cand_iters]))
    rr.append((ref_name, [IterationResult(outputs=dict(it), runner_name=ref_name) for it in ref_iters]))
    return rr
