"""Trust but verify: did the engine really run in the precision that was asked for?

A layer counts by the precision it computes in (:func:`workbench.layers.layer_precision`), not by the datatype it
writes: an FP16 GEMM with the FP32 output Cast fused into it is FP16; an FP32 convolution that casts its result to
FP16 is FP32.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from .layers import NO_TENSORS_LABEL

# What a layer's precision must contain for the request to count as honoured.
_EXPECT = {"fp16": "FP16", "bf16": "BF16", "int8": "INT8", "fp8": "FP8"}


def check_precision(requested: str, layers: Any) -> dict[str, Any]:
    """Compare the requested precision with the engine's layers; name the compute layers that did not follow."""
    mix = Counter(layer.precision for layer in layers.layers)
    want = _EXPECT.get(requested)
    out: dict[str, Any] = {"requested": requested, "mix": dict(mix), "warnings": []}
    if want is None:
        out["summary"] = f"Requested {requested.upper()}; precision mix: {_fmt(mix)}."
        out["honoured"] = True
        return out
    compute = [ly for ly in layers.layers if ly.onnx_nodes and not getattr(ly, "is_conversion", False)]
    # Casts between float types (an FP16 engine's FP32 inputs and outputs) compute nothing: listed, not judged.
    out["conversion_layers"] = [f"{ly.name} ({_in(ly)} → {ly.precision})" for ly in layers.layers
                                if ly.onnx_nodes and getattr(ly, "is_conversion", False)]
    hit = [ly for ly in compute if want in ly.precision]
    weight_only = [ly for ly in compute if ly not in hit and want in getattr(ly, "weight_precision", "")]
    miss = [ly for ly in compute if ly not in hit and ly not in weight_only]
    out["layers_with_weights_in_precision"] = [ly.name for ly in weight_only]
    out["honoured"] = bool(hit)
    out["layers_in_precision"] = [ly.name for ly in hit]
    out["layers_not_in_precision"] = [{"layer": ly.name, "precision": ly.precision,
                                       "output_precision": getattr(ly, "output_precision", ""),
                                       "onnx_nodes": list(ly.onnx_nodes)}
                                      for ly in miss]
    if not hit:
        out["warnings"].append(
            f"{requested.upper()} was requested but no engine layer runs in {want}: the engine is effectively "
            f"{_fmt(mix)}" + (f" ({len(weight_only)} layer(s) keep {want} weights only)" if weight_only else "")
            + ". Layers: " + ", ".join(f"{ly.name} ({ly.precision_label})" for ly in compute[:10])
        )
    elif miss:
        names = ", ".join(f"{ly.name} ({ly.precision_label}; ONNX: {', '.join(ly.onnx_nodes[:3])})"
                          for ly in miss[:10])
        out["warnings"].append(f"{len(miss)} of {len(compute)} compute layers are not in {want}: {names}"
                               + (" …" if len(miss) > 10 else ""))
    conv = out["conversion_layers"]
    out["summary"] = (f"Requested {requested.upper()}: {len(hit)} of {len(compute)} compute layers run in {want}"
                      + (f", {len(weight_only)} more keep {want} weights only" if weight_only else "")
                      + (f" ({len(conv)} more only convert between float types)" if conv else "")
                      + f". Precision mix: {_fmt(mix)}.")
    return out


def _fmt(mix: Counter[str]) -> str:
    return ", ".join(f"{NO_TENSORS_LABEL if k == 'unknown' else k} ×{v}" for k, v in mix.most_common()) or "no layers"


def _in(layer: Any) -> str:
    kinds = sorted({t.dtype for t in layer.inputs if t.dtype})
    return "/".join(kinds) or "?"
