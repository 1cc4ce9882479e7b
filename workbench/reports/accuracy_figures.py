"""Figures and tables of a comparison (returned, never displayed): error along depth, a tensor's histogram and
scatter, the culprit ranking, before/after. They take a :class:`workbench.accuracy.ComparisonResult` (read from
``comparison.json``), so they render without Polygraphy, ONNX Runtime or TensorRT."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .colors import VERDICT

if TYPE_CHECKING:
    import pandas as pd

    from ..accuracy.results import BeforeAfter, ComparisonResult, TensorResult

METRICS = {
    "rel_rms": ("relative RMS error", True),
    "max_abs": ("max absolute error", True),
    "mean_abs": ("mean absolute error", True),
    "max_rel": ("max relative error", True),
    "snr_db": ("SNR (dB)", False),
    "cosine": ("cosine similarity", False),
    "score": ("culprit score (error added)", True),
}
_FLOOR = 1e-12
_REF, _CAND = "#4c78a8", "#f58518"


def verdict(t: TensorResult) -> str:
    if t.nonfinite_candidate > t.nonfinite_reference:
        return "nan"
    return "pass" if t.passed else "fail"


def _plot_value(v: float | None, log: bool) -> float | None:
    if v is None or math.isnan(v):
        return None
    if math.isinf(v):
        return None
    return max(v, _FLOOR) if log else v


def _layout(fig: Any, title: str, height: int = 420) -> Any:
    fig.update_layout(
        title=title,
        height=height,
        margin=dict(l=10, r=10, t=50, b=10),
        legend=dict(orientation="h", y=-0.2),
        template="plotly_white",
    )
    # Errors are tiny or huge: Plotly's default SI prefixes read "2µ" or "1G" on an error axis. Plain numbers
    # with a power of ten ("2e-6") instead, on every axis; counts get thousands separators.
    fig.update_xaxes(exponentformat="e", separatethousands=True)
    fig.update_yaxes(exponentformat="e", separatethousands=True)
    return fig


def _input_ticks(fig: Any, orders: set[int]) -> None:
    """Graph inputs sit before node 0 (order -1): the axis says "input" there, never "-1". Up to 30 positions
    get a tick each; past that, one every 1, 2 or 5 × 10^k nodes."""
    if not any(o < 0 for o in orders):
        return
    ordered = sorted(orders)
    if len(ordered) > 30:
        top = max(ordered)
        step = min(k * 10**e for e in range(10) for k in (1, 2, 5) if top / (k * 10**e) <= 10)
        ordered = [-1, *range(step, top + 1, step)]
    fig.update_xaxes(tickvals=ordered, ticktext=["input" if o < 0 else str(o) for o in ordered])


def depth_figure(result: ComparisonResult, metric: str = "rel_rms") -> Any:
    """Per-tensor error along the network (x: position of the producing node), coloured by verdict, with the
    jump and the first NaN/Inf marked. Infinite values (NaN/Inf in the candidate) are drawn at the top."""
    import plotly.graph_objects as go

    label, log = METRICS[metric]
    tensors = list(result.tensors)
    fig = go.Figure()
    finite = [v for t in tensors if (v := _plot_value(getattr(t, metric), log)) is not None]
    top = max(finite) * (10 if log else 1.1) if finite else 1.0
    fig.add_trace(
        go.Scatter(
            x=[t.order for t in tensors],
            y=[_plot_value(getattr(t, metric), log) for t in tensors],
            mode="lines",
            line=dict(color="#bbbbbb", width=1),
            hoverinfo="skip",
            showlegend=False,
        )
    )
    for kind in ("pass", "fail", "nan"):
        sel = [t for t in tensors if verdict(t) == kind]
        if not sel:
            continue
        ys = [_plot_value(getattr(t, metric), log) for t in sel]
        ys = [top if y is None else y for y in ys]
        fig.add_trace(
            go.Scatter(
                x=[t.order for t in sel],
                y=ys,
                mode="markers",
                name={"pass": "within tolerance", "fail": "outside tolerance", "nan": "NaN/Inf"}[kind],
                marker=dict(color=VERDICT[kind], size=9, symbol="x" if kind == "nan" else "circle"),
                customdata=[
                    [
                        t.name,
                        t.producer or "(graph input)",
                        t.op_type,
                        t.rel_rms,
                        t.max_abs,
                        t.cosine,
                        t.snr_db,
                    ]
                    for t in sel
                ],
                hovertemplate="<b>%{customdata[0]}</b><br>node %{customdata[1]} (%{customdata[2]})<br>"
                "rel. RMS %{customdata[3]:.3g} · max abs %{customdata[4]:.3g}<br>"
                "cosine %{customdata[5]:.6f} · SNR %{customdata[6]:.1f} dB<extra></extra>",
            )
        )
    by_name = {t.name: t for t in tensors}
    if result.jump and result.jump in by_name:
        fig.add_vline(
            x=by_name[result.jump].order,
            line=dict(color=VERDICT["fail"], dash="dash"),
            annotation_text=f"error jumps: {result.jump}",
            annotation_position="top left",
        )
    if result.first_nonfinite and result.first_nonfinite in by_name:
        fig.add_vline(
            x=by_name[result.first_nonfinite].order,
            line=dict(color=VERDICT["nan"], dash="dot"),
            annotation_text=f"first NaN/Inf: {result.first_nonfinite}",
            annotation_position="bottom right",
        )
    bound = {"rel_rms": result.max_rel_error, "cosine": result.min_cosine}.get(metric, float("nan"))
    if not math.isnan(bound):  # the scale-aware tolerance of the candidate's precision
        fig.add_hline(
            y=bound,
            line=dict(color="#6b7280", dash="dot"),
            annotation_text=f"{result.precision_label} tolerance {bound:g}",
            annotation_position="bottom left",
        )
    # A log axis spanning under a decade labels its minor ticks with one digit ("3, 2, 0.01, 9, 8"): full values.
    fig.update_yaxes(type="log" if log else "linear", title=label, tickformat=".2~g" if log else None)
    fig.update_xaxes(title="position along the network (ONNX node index)")
    _input_ticks(fig, {t.order for t in tensors})
    return _layout(fig, f"{label[0].upper()}{label[1:]} per tensor — candidate: {result.kind_short}")


def histogram_figure(name: str, reference: np.ndarray, candidate: np.ndarray, bins: int = 60) -> Any:
    """Value distributions of one tensor (reference vs candidate) and the distribution of the error."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    r = np.asarray(reference, dtype=np.float64).reshape(-1)
    c = np.asarray(candidate, dtype=np.float64).reshape(-1)
    ok = np.isfinite(r) & np.isfinite(c)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("values", "error (candidate − reference)"))
    fig.add_trace(go.Histogram(x=r[ok], nbinsx=bins, name="reference", marker_color=_REF, opacity=0.6), 1, 1)
    fig.add_trace(go.Histogram(x=c[ok], nbinsx=bins, name="candidate", marker_color=_CAND, opacity=0.6), 1, 1)
    fig.add_trace(
        go.Histogram(x=(c - r)[ok], nbinsx=bins, name="error", marker_color=VERDICT["fail"], opacity=0.8),
        1,
        2,
    )
    fig.update_layout(barmode="overlay")
    extra = f" ({int((~ok).sum())} NaN/Inf left out)" if (~ok).any() else ""
    return _layout(fig, f"{name}: {r.size} sampled values{extra}", 360)


def scatter_figure(name: str, reference: np.ndarray, candidate: np.ndarray) -> Any:
    """Candidate vs reference values of one tensor, with the identity line."""
    import plotly.graph_objects as go

    r = np.asarray(reference, dtype=np.float64).reshape(-1)
    c = np.asarray(candidate, dtype=np.float64).reshape(-1)
    ok = np.isfinite(r) & np.isfinite(c)
    fig = go.Figure(
        go.Scattergl(
            x=r[ok], y=c[ok], mode="markers", marker=dict(size=4, color=_CAND, opacity=0.5), name="values"
        )
    )
    if ok.any():
        lo, hi = float(min(r[ok].min(), c[ok].min())), float(max(r[ok].max(), c[ok].max()))
        fig.add_trace(
            go.Scatter(
                x=[lo, hi], y=[lo, hi], mode="lines", line=dict(color="#888", dash="dash"), name="y = x"
            )
        )
    fig.update_xaxes(title="reference")
    fig.update_yaxes(title="candidate")
    return _layout(fig, f"{name}: candidate vs reference", 360)


def culprit_figure(result: ComparisonResult) -> Any:
    """The culprit ranking by score (see :mod:`workbench.accuracy.culprits`); hover shows the error added."""
    import plotly.graph_objects as go

    cs = list(result.culprits)[::-1]
    fig = go.Figure(
        go.Bar(
            x=[c.score for c in cs],
            y=[f"#{c.rank} {c.tensor}" for c in cs],
            orientation="h",
            marker_color=VERDICT["fail"],
            customdata=[[", ".join(c.nodes), c.error_in, c.error_out, c.added] for c in cs],
            hovertemplate="nodes: %{customdata[0]}<br>error in %{customdata[1]:.3g} → out %{customdata[2]:.3g}"
            " (added %{customdata[3]:.3g})<extra></extra>",
        )
    )
    fig.update_xaxes(title="culprit score: error added × share of the output error that is new")
    return _layout(fig, "Where the error is added (culprit finder)", max(220, 60 * len(cs) + 100))


def before_after_figure(ba: BeforeAfter) -> Any:
    """Relative RMS error along the network before and after keeping the culprits in float."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for label, res, color in (("before", ba.before, VERDICT["fail"]), ("after", ba.after, VERDICT["pass"])):
        ts = list(res.tensors)
        fig.add_trace(
            go.Scatter(
                x=[t.order for t in ts],
                y=[_plot_value(t.rel_rms, True) for t in ts],
                mode="lines+markers",
                name=label,
                line=dict(color=color),
                text=[t.name for t in ts],
                hovertemplate="%{text}: %{y:.3g}<extra>" + label + "</extra>",
            )
        )
    fig.update_yaxes(type="log", title="relative RMS error", tickformat=".2~g")  # full values, no SI prefixes
    fig.update_xaxes(title="position along the network (ONNX node index)")
    _input_ticks(fig, {t.order for res in (ba.before, ba.after) for t in res.tensors})
    kept = ", ".join(ba.added_exclusions)
    return _layout(fig, f"Before / after keeping {kept} in float")


COLUMNS = (
    "order",
    "tensor",
    "node",
    "op",
    "verdict",
    "failed checks",
    "cosine",
    "rel_rms",
    "max_abs",
    "mean_abs",
    "max_rel",
    "mean_rel",
    "snr_db",
    "needed_atol",
    "needed_rtol",
    "error_in",
    "added",
    "score",
    "nan_inf",
)


def table_rows(result: ComparisonResult) -> list[dict[str, Any]]:
    return [
        {
            "order": t.order,
            "tensor": t.name,
            "node": t.producer or "(graph input)",
            "op": t.op_type,
            "verdict": verdict(t),
            "failed checks": t.failed_checks(),
            "max_abs": t.max_abs,
            "mean_abs": t.mean_abs,
            "max_rel": t.max_rel,
            "mean_rel": t.mean_rel,
            "rel_rms": t.rel_rms,
            "cosine": t.cosine,
            "snr_db": t.snr_db,
            "needed_atol": t.needed_atol,
            "needed_rtol": t.needed_rtol,
            "error_in": t.error_in,
            "added": t.added,
            "score": t.score,
            "nan_inf": t.nonfinite_candidate,
        }
        for t in result.tensors
    ]


def tensor_table(result: ComparisonResult) -> pd.DataFrame:
    """One row per compared tensor, in network order (sort it by any column)."""
    import pandas as pd

    return pd.DataFrame(table_rows(result), columns=list(COLUMNS))


def culprit_table(result: ComparisonResult) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(
        [
            {
                "rank": c.rank,
                "tensor": c.tensor,
                "keep in higher precision": ", ".join(c.nodes),
                "error in": c.error_in,
                "error out": c.error_out,
                "added": c.added,
                "score": c.score,
            }
            for c in result.culprits
        ]
    )


def before_after_table(ba: BeforeAfter) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(ba.rows())


def default_tensor(result: ComparisonResult, names: Sequence[str] = ()) -> str | None:
    """The tensor a report shows first: where NaN/Inf appear, else the jump, else the top culprit, else the first
    output (restricted to ``names`` when given)."""
    allowed = set(names) if names else {t.name for t in result.tensors}
    for cand in (
        result.first_nonfinite,
        result.jump,
        result.culprits[0].tensor if result.culprits else None,
        *result.outputs,
    ):
        if cand and cand in allowed:
            return cand
    return next(iter(allowed), None)
