"""Figures of the fusion report (Plotly; returned, never displayed). Colours come from :mod:`.colors`."""

from __future__ import annotations

from collections import Counter
from typing import Any

from ..fusion import FATES, BuildDiff, FusionReport

_MARGIN = dict(l=10, r=10, t=40, b=10)
# Past this many engine layers the sunburst stops at layer types: thousands of wedges help nobody.
MAX_LAYER_WEDGES = 400


def _precision_color(precision: str) -> str:
    from .colors import PRECISION

    return PRECISION.get(precision.removeprefix("cast→"), PRECISION["unknown"])  # a cast: its output's colour


def fusion_groups(report: FusionReport, kind: str = "sunburst") -> Any:
    """Layer type → engine layer → ONNX nodes, sized by ONNX nodes, coloured by the layer's precision.

    ``kind`` is ``"sunburst"`` or ``"treemap"``. Layers TensorRT added (no ONNX node) count as 1 so they show, with
    a "no ONNX node" wedge in the outer ring. Children never add up to more than their parent
    (``branchvalues="total"``): every leaf ends on the same ring.
    """
    import plotly.graph_objects as go

    ids, labels, parents, values, colors, hover = [], [], [], [], [], []
    by_type: dict[str, list[Any]] = {}
    for g in report.groups:
        by_type.setdefault(g.type or "?", []).append(g)
    show_layers = len(report.groups) <= MAX_LAYER_WEDGES
    seen: set[str] = set()
    show_nodes = show_layers and sum(len(g.onnx_nodes) for g in report.groups) <= 4 * MAX_LAYER_WEDGES
    for t, groups in sorted(by_type.items()):
        tid = f"type:{t}"
        total = sum(max(1, len(g.onnx_nodes)) for g in groups)
        ids.append(tid)
        labels.append(t)
        parents.append("")
        values.append(total)
        colors.append("#dddddd")
        hover.append(f"{t}: {len(groups)} layers, {sum(len(g.onnx_nodes) for g in groups)} ONNX nodes")
        if not show_layers:
            continue
        for g in groups:
            lid = f"layer:{g.layer}"
            if lid in seen:  # two layers of one name: ids must stay unique, or Plotly merges their wedges
                lid = f"{lid}#{len(seen)}"
            seen.add(lid)
            ids.append(lid)
            labels.append(_short(g.layer))
            parents.append(tid)
            values.append(max(1, len(g.onnx_nodes)))
            colors.append(_precision_color(g.precision))
            hover.append(f"{g.layer}<br>{g.precision} · {g.fusion} · {len(g.onnx_nodes)} ONNX nodes")
            if not show_nodes:
                continue
            if not g.onnx_nodes:  # a wedge in the outer ring too: the ring stays whole, nothing sticks out of it
                ids.append(f"{lid}/none")
                labels.append("no ONNX node")
                parents.append(lid)
                values.append(1)
                colors.append(_precision_color(g.precision))
                hover.append(f"{g.layer}: added by TensorRT, no ONNX node of its own")
            for node, op in zip(g.onnx_nodes, g.op_types, strict=False):
                ids.append(f"{lid}/node:{node}")
                labels.append(_short(node))
                parents.append(lid)
                values.append(1)
                colors.append(_precision_color(g.precision))
                hover.append(f"{node} ({op})")
    trace_cls = go.Treemap if kind == "treemap" else go.Sunburst
    fig = go.Figure(
        trace_cls(
            ids=ids,
            labels=labels,
            parents=parents,
            values=values,
            branchvalues="total",
            marker=dict(colors=colors),
            hovertext=hover,
            hoverinfo="text",
        )
    )
    note = "" if show_layers else f" (types only: {len(report.groups)} layers)"
    fig.update_layout(
        title=f"Fusion groups: layer type → engine layer → ONNX nodes{note}", margin=_MARGIN, height=560
    )
    return fig


def precision_breakdown(report: FusionReport) -> Any:
    """Engine layers per precision."""
    import plotly.graph_objects as go

    items = sorted(report.precision_mix.items(), key=lambda kv: -kv[1])
    fig = go.Figure(
        go.Bar(
            x=[k for k, _ in items],
            y=[v for _, v in items],
            text=[v for _, v in items],
            textposition="outside",
            marker_color=[_precision_color(k) for k, _ in items],
        )
    )
    fig.update_layout(title="Engine layers by precision", yaxis_title="layers", margin=_MARGIN, height=320)
    return _plain_numbers(fig)


def layer_type_breakdown(report: FusionReport) -> Any:
    """Engine layers per layer type, stacked by precision."""
    import plotly.graph_objects as go

    counts: Counter[tuple[str, str]] = Counter((g.type or "?", g.precision) for g in report.groups)
    types = [t for t, _ in Counter(_sum_by_type(counts)).most_common()]
    fig = go.Figure()
    for prec in sorted({p for _, p in counts}):
        ys = [counts.get((t, prec), 0) for t in types]
        fig.add_trace(
            go.Bar(name=prec, y=types[::-1], x=ys[::-1], orientation="h", marker_color=_precision_color(prec))
        )
    fig.update_layout(
        barmode="stack",
        title="Engine layers by type and precision",
        xaxis_title="layers",
        margin=_MARGIN,
        height=max(260, 26 * len(types) + 100),
        legend_title_text="precision",
    )
    return _plain_numbers(fig)


def _sum_by_type(counts: Counter[tuple[str, str]]) -> dict[str, int]:
    out: Counter[str] = Counter()
    for (t, _), v in counts.items():
        out[t] += v
    return dict(out)


def node_fates(report: FusionReport) -> Any:
    """ONNX nodes per fate (fused, one to one, split, constant-folded, eliminated, unaccounted)."""
    import plotly.graph_objects as go

    from .colors import FUSION_FATE

    c = report.fate_counts
    fig = go.Figure(
        go.Bar(
            x=[f.replace("_", " ") for f in FATES],
            y=[c[f] for f in FATES],
            text=[c[f] for f in FATES],
            textposition="outside",
            marker_color=[FUSION_FATE[f] for f in FATES],
        )
    )
    fig.update_layout(
        title=f"Where the {report.num_onnx_nodes} ONNX nodes went",
        yaxis_title="ONNX nodes",
        margin=_MARGIN,
        height=320,
    )
    return _plain_numbers(fig)


def diff_precision(diff: BuildDiff, label_a: str = "A", label_b: str = "B") -> Any:
    """Engine layers per precision in two builds, side by side."""
    import plotly.graph_objects as go

    precs = sorted(set(diff.precision_mix_a) | set(diff.precision_mix_b))
    fig = go.Figure(
        [
            go.Bar(name=label_a, x=precs, y=[diff.precision_mix_a.get(p, 0) for p in precs]),
            go.Bar(name=label_b, x=precs, y=[diff.precision_mix_b.get(p, 0) for p in precs]),
        ]
    )
    fig.update_layout(
        barmode="group",
        title="Engine layers by precision: two builds",
        yaxis_title="layers",
        margin=_MARGIN,
        height=320,
    )
    return _plain_numbers(fig)


def all_figures(report: FusionReport) -> dict[str, Any]:
    """The report's figures by name, in display order."""
    return {
        "fates": node_fates(report),
        "groups": fusion_groups(report),
        "precision": precision_breakdown(report),
        "layer_types": layer_type_breakdown(report),
    }


def _plain_numbers(fig: Any) -> Any:
    """Counts as 1,200, never Plotly's SI "1.2k"."""
    fig.update_xaxes(exponentformat="none", separatethousands=True)
    fig.update_yaxes(exponentformat="none", separatethousands=True)
    return fig


def _short(name: str, n: int = 32) -> str:
    return name if len(name) <= n else name[: n - 1] + "…"
