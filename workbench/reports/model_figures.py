"""Figures describing an ONNX model (returned, never displayed)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the Model page imports this with no model open: no onnx/numpy then
    from ..model import ModelSummary


def op_histogram(summary: ModelSummary, top: int = 30) -> Any:
    import plotly.graph_objects as go

    from .colors import MODEL_OPS

    items = list(summary.op_histogram.items())[:top]
    fig = go.Figure(go.Bar(x=[v for _, v in items][::-1], y=[k for k, _ in items][::-1], orientation="h",
                           marker_color=MODEL_OPS, text=[v for _, v in items][::-1], textposition="outside"))
    more = len(summary.op_histogram) - len(items)
    fig.update_layout(title=f"Op types ({summary.node_count} nodes" + (f", {more} more types" if more > 0 else "")
                      + ")", height=max(240, 22 * len(items) + 80), margin=dict(l=10, r=10, t=40, b=10),
                      xaxis_title="nodes")
    return fig
