"""A standalone, offline HTML report of a comparison for stakeholders: plotly.js inlined (no CDN, no network),
the figures of :mod:`.accuracy_figures`, the culprits and a table sortable by any column."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ..text import html_text, inert_figure
from .accuracy_figures import (
    COLUMNS,
    before_after_figure,
    culprit_figure,
    default_tensor,
    depth_figure,
    histogram_figure,
    scatter_figure,
    table_rows,
    verdict,
)
from .colors import VERDICT

if TYPE_CHECKING:
    from ..accuracy.results import BeforeAfter, ComparisonResult

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1200px;color:#1f2933}
h1{font-size:1.5em;margin-bottom:4px} h2{font-size:1.15em;margin-top:28px;border-bottom:1px solid #e5e7eb}
.kind{padding:10px 14px;border-radius:6px;margin:12px 0;font-weight:600}
.sim{background:#fff7e6;border:1px solid #f0b429} .eng{background:#e6f4ea;border:1px solid #54a24b}
.pass{color:#2f7d32;font-weight:700} .fail{color:#c62828;font-weight:700}
.verdict{padding:12px 16px;border-radius:6px;margin:12px 0;font-size:1.05em}
.v-pass{background:#e6f4ea;border:1px solid #54a24b} .v-fail{background:#fdecea;border:1px solid #c62828}
.alert{background:#fdecea;border:1px solid #c62828;padding:10px 14px;border-radius:6px;margin:10px 0}
.warn{background:#fff7e6;border:1px solid #f0b429;padding:8px 12px;border-radius:6px;margin:6px 0}
table{border-collapse:collapse;font-size:12px;width:100%} th,td{border:1px solid #e5e7eb;padding:3px 6px}
th{background:#f3f4f6;cursor:pointer;position:sticky;top:0;user-select:none} td.num{text-align:right}
table{table-layout:auto} td{word-break:break-word;overflow-wrap:anywhere} td.num{white-space:nowrap}
th.asc:after{content:" ▲"} th.desc:after{content:" ▼"} .meta td{border:none;padding:1px 10px 1px 0}
code{background:#f3f4f6;padding:1px 4px;border-radius:3px}
"""

_SORT_JS = """
document.querySelectorAll('table.sortable').forEach(function(table){
  table.querySelectorAll('th').forEach(function(th, col){
    th.addEventListener('click', function(){
      var asc = !th.classList.contains('asc');
      table.querySelectorAll('th').forEach(function(h){h.classList.remove('asc','desc');});
      th.classList.add(asc ? 'asc' : 'desc');
      var body = table.tBodies[0], rows = Array.from(body.rows);
      rows.sort(function(a, b){
        var x = a.cells[col].dataset.v, y = b.cells[col].dataset.v;
        var fx = parseFloat(x), fy = parseFloat(y);
        var c = (!isNaN(fx) && !isNaN(fy)) ? fx - fy : String(x).localeCompare(String(y));
        return asc ? c : -c;
      });
      rows.forEach(function(r){ body.appendChild(r); });
    });
  });
});
"""


_e = html_text  # every string in a report goes through this: names and messages come from the model file


def _num(v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return _e(v)
    if isinstance(v, int):
        return str(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    return f"{v:.4g}"


def _sort_key(v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return _e(v)
    if math.isnan(v):
        return "-1e308"
    if math.isinf(v):
        return "1e308" if v > 0 else "-1e308"
    return repr(float(v))


def _fig(fig: Any) -> str:
    return inert_figure(fig).to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False})


def _table(rows: list[dict[str, Any]], columns: tuple[str, ...] | list[str]) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = []
    for r in rows:
        cells = []
        for c in columns:
            v = r.get(c, "")
            style = ""
            if c == "verdict":
                style = f' style="color:{VERDICT.get(str(v), "#333")};font-weight:600"'
            cls = ' class="num"' if isinstance(v, int | float) and not isinstance(v, bool) else ""
            cells.append(f'<td{cls}{style} data-v="{_sort_key(v)}">{_num(v)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="sortable"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def render_report(
    result: ComparisonResult,
    samples: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
    *,
    before_after: BeforeAfter | None = None,
    tensor: str | None = None,
    title: str = "Accuracy report",
    plotly_js: str | None = None,
) -> str:
    """The whole report as one HTML string (about 5 MB: plotly.js is inlined so it opens offline).

    ``samples``: {tensor: (reference values, candidate values)} for the histogram and scatter of ``tensor``
    (default: where NaN/Inf appear, else the jump, else the top culprit, else the first output).
    ``before_after``: the re-quantization that produced ``result``, shown as before vs after.
    ``plotly_js``: HTML put in ``<head>`` instead of the inlined plotly.js, for a page embedded where Plotly
    comes from elsewhere (the demo report's frames: :data:`workbench.demo.PLOTLY_FROM_PARENT`); a report
    rendered so does not open on its own."""
    if plotly_js is None:
        from plotly.offline import get_plotlyjs

        plotly_js = f"<script>{get_plotlyjs()}</script>"
    samples = samples or {}
    parts: list[str] = []
    r = result
    sim = r.is_simulation
    status = '<span class="pass">PASS</span>' if r.outputs_ok else '<span class="fail">FAIL</span>'
    parts.append(f"<h1>{_e(title)}: {_e(r.model)}</h1>")
    # What matters first: the verdict, weighed by the task metric where there are labels; then the detail.
    ok = r.status != "fail"
    parts.append(
        f'<div class="verdict {"v-pass" if ok else "v-fail"}"><b class="{"pass" if ok else "fail"}">'
        f"{_e(r.status_label)}</b> — {_e(r.summary().split(': ', 1)[-1])}</div>"
    )
    if r.task is not None:
        task = r.task
        parts.append(
            "<h2>What the error costs</h2>"
            f"<p>Top-1 accuracy on <code>{_e(task.output)}</code> over {task.n_samples} labelled samples: reference "
            f"<b>{task.reference_accuracy:.2%}</b>, candidate <b>{task.candidate_accuracy:.2%}</b> "
            f"({task.delta_pp:+.2f} percentage points; the task holds within {r.task_max_drop_pp:g} pp); the two "
            f"predict the same class for {task.agreement:.2%} of the samples."
            + (" The per-tensor tolerances below are then detail." if r.status == "task holds" else "")
            + "</p>"
        )
    parts.append(
        f'<div class="kind {"sim" if sim else "eng"}">Candidate: {_e(r.candidate)} — {_e(r.kind_label)}'
        + (
            "<br>This is a simulation in ONNX Runtime: it estimates what the reduced precision costs; it is not "
            "a measurement of a TensorRT engine."
            if sim
            else ""
        )
        + "</div>"
    )
    meta = [
        (
            "Reference",
            "ONNX Runtime running the original FP32 model"
            + (f" on {r.reference_provider}" if r.reference_provider else ""),
        ),
        ("Candidate source", r.candidate_source or r.candidate),
        ("Data", f"{r.data_source}: {r.n_samples} sample(s) in {r.n_iterations} batch(es)"),
        ("Model outputs", f"{status} — {'within' if r.outputs_ok else 'NOT within'} the tolerances below"),
        ("Tolerances", f"{r.precision_label}: {r.tolerances_text()}"),
        ("Compared", f"{len(r.tensors)} tensor(s)" + (" per layer" if r.per_layer else " (outputs only)")),
        ("Created", time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.created or time.time()))),
        ("Versions", ", ".join(f"{k} {v}" for k, v in r.versions)),
    ]
    parts.append(
        '<table class="meta">'
        + "".join(
            f"<tr><td><b>{_e(k)}</b></td><td>{v if k == 'Model outputs' else _e(v)}</td></tr>" for k, v in meta
        )
        + "</table>"
    )
    if r.synthetic_data:
        parts.append(
            '<div class="warn">Random input data: shapes only — the accuracy numbers are meaningless '
            "for real inputs.</div>"
        )
    if r.first_nonfinite:
        parts.append(
            f'<div class="alert"><b>NaN/Inf</b> first appear in the candidate at tensor '
            f"<code>{_e(r.first_nonfinite)}</code> (node <code>{_e(r.first_nonfinite_node)}</code>).</div>"
        )
    for w in r.warnings:
        if not (r.first_nonfinite and w.startswith("NaN/Inf first appear")):
            parts.append(f'<div class="warn">{_e(w)}</div>')
    outs = [x for x in r.tensors if x.is_output]
    if outs:
        parts.append("<h2>Model outputs</h2>")
        parts.append(
            _table([row for row in table_rows(r) if row["tensor"] in {o.name for o in outs}], COLUMNS)
        )
    if len(r.tensors) > len(outs):
        parts.append("<h2>Error along the network</h2>")
        if r.jump:
            parts.append(f"<p>The error first jumps at <code>{_e(r.jump)}</code>.</p>")
        parts.append(_fig(depth_figure(r)))
    if before_after is not None:
        ba = before_after
        parts.append(
            "<h2>Before / after</h2><p>Kept in higher precision this time: "
            + ", ".join(f"<code>{_e(n)}</code>" for n in ba.added_exclusions)
            + f" (all nodes kept in float: {len(ba.excluded)}).</p>"
        )
        parts.append(_fig(before_after_figure(ba)))
        parts.append(_table(ba.rows(), ("tensor", "metric", "before", "after")))
    if r.culprits:
        parts.append("<h2>Culprits: where the error is added</h2>")
        parts.append(
            "<p>Ranked by the error a layer adds on top of the error it receives (not by absolute error). "
            "Node names are the ONNX model's.</p>"
        )
        parts.append(_fig(culprit_figure(r)))
        parts.append(
            _table(
                [
                    {
                        "rank": c.rank,
                        "tensor": c.tensor,
                        "nodes": ", ".join(c.nodes),
                        "error in": c.error_in,
                        "error out": c.error_out,
                        "added": c.added,
                        "score": c.score,
                    }
                    for c in r.culprits
                ],
                ("rank", "tensor", "nodes", "error in", "error out", "added", "score"),
            )
        )
        if r.proposed_exclusions and r.candidate_kind == "ort-fp16":
            parts.append(
                "<p>Keep in FP32 (left out of the FP16 conversion; the Accuracy page converts again or rebuilds "
                "with them): " + ", ".join(f"<code>{_e(n)}</code>" for n in r.proposed_exclusions) + "</p>"
            )
        elif r.proposed_exclusions:
            parts.append(
                "<p>Keep in higher precision (quantization exclusions): "
                + ", ".join(f"<code>{_e(n)}</code>" for n in r.proposed_exclusions)
                + f"<br><code>trt-workbench quantize {_e(r.model)} -o model_qdq.onnx --calib-data DATA.npz "
                f"--exclude {' '.join(_e(n) for n in r.proposed_exclusions)}</code></p>"
            )
    shown = tensor or default_tensor(r, list(samples))
    if shown and shown in samples:
        ref, cand = samples[shown]
        t = r.tensor(shown)
        parts.append(f"<h2>Tensor <code>{_e(shown)}</code> ({_e(verdict(t))})</h2>")
        parts.append(_fig(histogram_figure(shown, ref, cand)))
        parts.append(_fig(scatter_figure(shown, ref, cand)))
    parts.append("<h2>All compared tensors</h2><p>Click a column header to sort.</p>")
    parts.append(_table(table_rows(r), COLUMNS))
    if r.only_in_reference:
        parts.append(
            f"<p>{len(r.only_in_reference)} reference tensor(s) have no counterpart in the candidate (fused away "
            "or not marked): "
            + ", ".join(f"<code>{_e(n)}</code>" for n in r.only_in_reference[:50])
            + (" …" if len(r.only_in_reference) > 50 else "")
            + "</p>"
        )
    if r.notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{_e(n)}</li>" for n in r.notes) + "</ul>")
    parts.append(
        "<p style='color:#6b7280;font-size:12px'>Written by TensorRT Workbench. The raw outputs of both sides are "
        "in <code>compare_results.json</code> (Polygraphy's RunResults format).</p>"
    )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{_e(title)}: {_e(r.model)}</title><style>{_CSS}</style>"
        f"{plotly_js}</head><body>" + "\n".join(parts) + f"<script>{_SORT_JS}</script></body></html>"
    )
