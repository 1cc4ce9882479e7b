"""Tensors that no calibration range can hold, found while ONNX Runtime calibrates, and kept out of quantization.

A BERT-like encoder exported from ``transformers`` adds ``(1 - mask) * finfo(float32).min`` to its attention
scores: the mask tensor, and the scores it is added to, hold values near float32's minimum (about -3.4e38).
ONNX Runtime's histogram calibrators (entropy, percentile, FP8's distribution) build a float32 histogram over
``[-max|x|, max|x|]``, whose width overflows ("Too many bins for data range. Cannot create 512 finite-sized
bins", after numpy overflow warnings); min/max calibration succeeds, but an INT8 scale of 3.4e38 / 127 rounds
every real score to zero. Such a tensor is a sentinel, not an activation: it is taken out of the histograms
before they are built (ONNX Runtime's own collector, fed every tensor but these), and the nodes that read or
write it stay in float. Which tensors, with their ranges, is said in the log, the result and ``calibration.json``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

# Beyond this magnitude a value is a fill (a mask's float32 minimum, an "infinite" padding), not a signal: no
# activation of a working network gets near it, and INT8/FP8 cannot hold it together with anything else.
EXTREME = 1e30


@dataclass(frozen=True)
class KeptOut:
    """A tensor kept out of calibration: the range seen in the calibration data and the nodes left in float."""

    tensor: str
    lowest: float
    highest: float
    nodes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "min": _json_float(self.lowest),
            "max": _json_float(self.highest),
            "nodes": list(self.nodes),
        }

    @classmethod
    def from_dict(cls, tensor: str, d: Mapping[str, Any]) -> KeptOut:
        return cls(tensor, float(d.get("min", "nan")), float(d.get("max", "nan")), tuple(d.get("nodes") or ()))


def _json_float(v: float) -> float | str:
    return v if np.isfinite(v) else str(v)


def extreme_range(arrays: Iterable[np.ndarray]) -> tuple[float, float] | None:
    """(min, max) of the values when any is non-finite or at least :data:`EXTREME` in magnitude, else None."""
    lo, hi, extreme = np.inf, -np.inf, False
    with np.errstate(all="ignore"):
        for a in arrays:
            a = np.asarray(a)
            if a.size == 0 or a.dtype.kind != "f":
                continue
            amin, amax = float(np.min(a)), float(np.max(a))  # NaN propagates: counts as non-finite
            lo, hi = min(lo, amin), max(hi, amax)
            if not (np.isfinite(amin) and np.isfinite(amax)) or max(abs(amin), abs(amax)) >= EXTREME:
                extreme = True
    return (lo, hi) if extreme else None


def screened_collector(calibrator: Any, found: dict[str, tuple[float, float]]) -> Any:
    """ONNX Runtime's ``HistogramCollector`` for ``calibrator`` (a histogram calibrator made by
    ``create_calibrator``, same method, bins and percentile), which leaves the tensors with extreme values out of
    its histograms and records them in ``found`` ({tensor: (min, max)}). Set it as ``calibrator.collector``
    before ``collect_data``: ORT then uses it instead of making its own."""
    from onnxruntime.quantization.calibrate import HistogramCollector

    class _Screened(HistogramCollector):
        def collect(self, name_to_arr: dict[str, Any]) -> Any:
            kept: dict[str, Any] = {}
            for name, arrays in name_to_arr.items():
                seq = arrays if isinstance(arrays, list | tuple) else [arrays]
                rng = extreme_range(seq)
                if rng is not None or name in found:
                    old = found.get(name, (np.inf, -np.inf))
                    if rng is not None:
                        found[name] = (min(old[0], rng[0]), max(old[1], rng[1]))
                    self.histogram_dict.pop(name, None)
                    continue
                kept[name] = arrays
            return super().collect(kept) if kept else None

    return _Screened(
        method=calibrator.method,
        symmetric=calibrator.symmetric,
        num_bins=calibrator.num_bins,
        num_quantized_bins=calibrator.num_quantized_bins,
        percentile=calibrator.percentile,
        scenario=getattr(calibrator, "scenario", "same"),
    )


def screen_ranges(tensors: Any, found: dict[str, tuple[float, float]]) -> Any:
    """ORT ``TensorsData`` without the tensors whose computed range is extreme (min/max calibration computes
    ranges in the graph, so they are screened here); records them in ``found``."""
    from onnxruntime.quantization import TensorsData

    data = {}
    for name, td in tensors.items():
        lo = np.asarray(getattr(td, "lowest", 0.0), dtype=np.float64).reshape(-1)
        hi = np.asarray(getattr(td, "highest", 0.0), dtype=np.float64).reshape(-1)
        rng = extreme_range([lo, hi])
        if rng is not None:
            found[name] = rng
            continue
        if name not in found:
            data[name] = td
    return TensorsData(tensors.calibration_method, data)


def nodes_touching(model: Any, tensors: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """{tensor: the names of the nodes that read or write it} in ``model`` (an ONNX ModelProto, top graph)."""
    out: dict[str, list[str]] = {t: [] for t in tensors}
    for i, n in enumerate(model.graph.node):
        name = n.name or f"{n.op_type}#{i}"
        for t in {*n.input, *n.output}:
            if t in out:
                out[t].append(name)
    return {t: tuple(v) for t, v in out.items()}


def kept_out(model_path: Path, found: Mapping[str, tuple[float, float]]) -> list[KeptOut]:
    """The tensors found, in graph order, with the nodes of ``model_path`` that read or write them."""
    import onnx

    if not found:
        return []
    model = onnx.load(str(model_path), load_external_data=False)
    order = {o: i for i, n in enumerate(model.graph.node) for o in n.output}
    touching = nodes_touching(model, list(found))
    names = sorted(found, key=lambda t: (order.get(t, -1), t))
    return [KeptOut(t, found[t][0], found[t][1], touching[t]) for t in names]


def message(items: Sequence[KeptOut]) -> str:
    """One sentence for the log, the result and the page: which tensors, their range, the nodes left in float."""
    shown = items[:4]
    tensors = "; ".join(f"'{k.tensor}' (values from {k.lowest:.3g} to {k.highest:.3g})" for k in shown)
    more = f" and {len(items) - len(shown)} more" if len(items) > len(shown) else ""
    nodes = sorted({n for k in items for n in k.nodes})
    node_text = ", ".join(nodes[:8]) + (" ..." if len(nodes) > 8 else "")
    return (
        f"Kept out of calibration: {len(items)} tensor(s) with values near float32's limits (an attention mask "
        f"filled with float32's minimum, or infinities), which no INT8/FP8 range can hold: {tensors}{more}. "
        f"The nodes that read or write them stay in float: {node_text}."
    )
