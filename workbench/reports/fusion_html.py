"""Exports of the fusion report: a standalone HTML page (works offline), CSV tables and JSON."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..fusion import FATES, BuildDiff, FusionReport
from ..layers import EngineLayers
from ..text import html_text, inert_figure

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1200px;color:#1f2937}
h1{font-size:1.6em;margin-bottom:4px} h2{margin-top:32px;border-bottom:1px solid #e5e7eb;padding-bottom:4px}
.muted{color:#6b7280} table{border-collapse:collapse;width:100%;font-size:13px;margin:8px 0}
th,td{border:1px solid #e5e7eb;padding:4px 6px;text-align:left;vertical-align:top}
table{table-layout:auto} td{word-break:break-word;overflow-wrap:anywhere}
th{background:#f3f4f6;position:sticky;top:0} tr:nth-child(even) td{background:#fafafa}
.cards{display:flex;gap:12px;flex-wrap:wrap} .card{border:1px solid #e5e7eb;border-radius:8px;padding:8px 14px}
.card b{font-size:1.5em;display:block} .bad{color:#c62828} code{background:#f3f4f6;padding:1px 4px}
.scroll{max-height:640px;overflow:auto}
"""


_e = html_text  # every string in a report goes through this: names and messages come from the model file


def _table(rows: list[dict[str, Any]], columns: Iterable[str] | None = None, scroll: bool = False) -> str:
    if not rows:
        return "<p class='muted'>None.</p>"
    cols = list(columns or rows[0].keys())
    head = "".join(f"<th>{_e(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{_e(r.get(c, ''))}</td>" for c in cols) + "</tr>" for r in rows)
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f"<div class='scroll'>{table}</div>" if scroll else table


def render_html(
    report: FusionReport,
    layers: EngineLayers,
    title: str | None = None,
    diff: BuildDiff | None = None,
    figures: dict[str, Any] | None = None,
    *,
    plotly_js: str | None = None,
) -> str:
    """The whole report as one HTML document; Plotly's JavaScript is inlined once, so it opens offline.

    ``plotly_js``: HTML put in ``<head>`` instead of the inlined plotly.js, for a page embedded where Plotly
    comes from elsewhere (the demo report's frames: :data:`workbench.demo.PLOTLY_FROM_PARENT`); a page
    rendered so does not open on its own."""
    from .fusion_figures import all_figures, diff_precision

    figs = dict(figures if figures is not None else all_figures(report))
    if diff is not None and "diff" not in figs:
        figs["diff"] = diff_precision(diff)
    parts = [
        inert_figure(fig).to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False})
        for fig in figs.values()
    ]
    if plotly_js is None:
        plotly_js = _inline_plotly_js() if parts else ""

    c = report.fate_counts
    cards = "".join(
        f"<div class='card'><b class='{'bad' if f == 'unaccounted' and c[f] else ''}'>{c[f]}</b>"
        f"{_e(f.replace('_', ' '))}</div>"
        for f in FATES
    )
    title = title or f"Layer fusion: {report.model_name}"
    sections = [
        f"<h1>{_e(title)}</h1>",
        f"<p class='muted'>Generated {_e(time.strftime('%Y-%m-%d %H:%M'))} by TensorRT Workbench · source: "
        f"{_e(layers.source)} ({_e(layers.detail)})</p>",
        f"<p>{_e(report.summary())}</p>",
        f"<div class='cards'><div class='card'><b>{report.num_onnx_nodes}</b>ONNX nodes</div>"
        f"<div class='card'><b>{report.num_layers}</b>engine layers</div>{cards}</div>",
    ]
    for note in report.notes + layers.warnings:
        sections.append(f"<p class='muted'>{_e(note)}</p>")
    sections.append("<h2>Pictures</h2>" + "".join(parts))
    if report.unaccounted:
        sections.append(
            "<h2 class='bad'>Unaccounted ONNX nodes</h2>"
            + _table([r for r in report.node_rows() if r["fate"] == "unaccounted"])
        )
    sections.append(
        "<h2>Opaque regions (compiler-generated kernels)</h2>"
        + _table(
            [
                {
                    "layer": o.layer,
                    "type": o.type,
                    "kind": o.kind,
                    "explanation": o.explanation,
                    "onnx_nodes": ", ".join(o.onnx_nodes),
                }
                for o in report.opaque
            ],
            scroll=True,
        )
    )
    sections.append(
        "<h2>Layers TensorRT added</h2>"
        + _table(
            [
                {"layer": i.layer, "type": i.type, "kind": i.kind, "explanation": i.explanation}
                for i in report.inserted
            ]
        )
    )
    if report.conventions:
        items = "".join(
            f"<li><b>{_e(k.replace('_', ' '))}</b>: {_e(v)}</li>" for k, v in report.conventions.items()
        )
        sections.append(f"<h2>Reading layer names</h2><ul>{items}</ul>")
    if report.unknown_metadata:
        sections.append(
            "<h2>Metadata names not in this model</h2><p class='muted'>Engine layer metadata names "
            "these nodes, but the ONNX model has no node of that name (was the report made with the "
            "model the engine was built from?).</p><p>" + _e(", ".join(report.unknown_metadata)) + "</p>"
        )
    sections.append("<h2>Engine layers</h2>" + _table(layers_rows(layers, report.profile), scroll=True))
    sections.append(
        "<h2>ONNX nodes no layer's metadata names, and the evidence</h2>"
        + _table(report.evidence_rows(), scroll=True)
    )
    sections.append("<h2>ONNX nodes</h2>" + _table(report.node_rows(), scroll=True))
    if diff is not None:
        sections.append(
            f"<h2>Compared with another build</h2><p>{_e(diff.summary())}</p>"
            + _table(diff.to_rows(changed_only=True), scroll=True)
        )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{_e(title)}</title><style>{_CSS}</style>{plotly_js}</head><body>"
        + "\n".join(sections)
        + "</body></html>"
    )


def _inline_plotly_js() -> str:
    """plotly.js itself, as ``fig.to_html(include_plotlyjs=True)`` inlines it."""
    from plotly.offline import get_plotlyjs

    return (
        f"<script>window.PlotlyConfig = {{MathJaxConfig: 'local'}};</script><script>{get_plotlyjs()}</script>"
    )


def write_html(path: str | Path, report: FusionReport, layers: EngineLayers, **kwargs: Any) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(report, layers, **kwargs), encoding="utf-8")
    return path


def layers_rows(layers: EngineLayers, profile: int | None = None) -> list[dict[str, Any]]:
    rows = layers.to_rows()
    return (
        [r for r in rows if profile is None or r["profile"] == profile] if layers.num_profiles > 1 else rows
    )


def to_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0].keys()), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    return buf.getvalue()


def layers_csv(layers: EngineLayers) -> str:
    """One row per engine layer (all profiles)."""
    return to_csv(layers.to_rows())


def nodes_csv(report: FusionReport) -> str:
    """One row per ONNX node: its fate, layers, precisions."""
    return to_csv(report.node_rows())


def report_json(report: FusionReport, layers: EngineLayers, diff: BuildDiff | None = None) -> str:
    """The fusion report and the layer table (without the raw log) as one JSON document."""
    lay = layers.to_dict()
    lay.pop("raw", None)
    data: dict[str, Any] = {"fusion": report.to_dict(), "layers": lay}
    if diff is not None:
        data["diff"] = diff.to_dict()
    return json.dumps(data, indent=1)


def export_files(
    report: FusionReport, layers: EngineLayers, stem: str, title: str = "", diff: BuildDiff | None = None
) -> list[tuple[str, Callable[[], str], str, str]]:
    """(label, lazy content, file name, MIME type) of every download the Fusion page offers."""
    return [
        ("Report (JSON)", lambda: report_json(report, layers, diff), f"{stem}.json", "application/json"),
        ("Layers (CSV)", lambda: layers_csv(layers), f"{stem}-layers.csv", "text/csv"),
        ("ONNX nodes (CSV)", lambda: nodes_csv(report), f"{stem}-nodes.csv", "text/csv"),
        (
            "HTML report",
            lambda: render_html(report, layers, title=title or None, diff=diff),
            f"{stem}.html",
            "text/html",
        ),
    ]
