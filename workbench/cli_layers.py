"""``trt-workbench layers PLAN_OR_JOB``: the engine's layers and the fusion report, as text, JSON or HTML.

PLAN_OR_JOB is a build job id, a job folder, a ``layers.json`` / inspector JSON / build log, or a plan file (a
plan needs a backend that can deserialize it here, i.e. a supported GPU). Same model and numbers as the page.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .errors import WorkbenchError

_PLAN_SUFFIXES = (".plan", ".engine", ".trt")


def _out(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _err(text: str) -> None:
    sys.stderr.write(text if text.endswith("\n") else text + "\n")


def resolve(args: argparse.Namespace) -> tuple[Any, Path | None, str]:
    """(EngineLayers, the ONNX model it was built from or None, a label) for the command's source."""
    from .fusion import job_network_model
    from .layers import inspect_plan, load_layers

    source = str(args.source)
    path = Path(source)
    model = Path(args.model) if args.model else None
    if model is not None and not model.is_file():
        raise WorkbenchError(
            f"The model {model} does not exist.", "Pass the ONNX file the engine was built from."
        )
    if path.is_dir():
        return load_layers(path), model or job_network_model(path), path.name
    if path.is_file():
        if path.suffix.lower() in _PLAN_SUFFIXES:
            return inspect_plan(path, backend=args.backend), model, path.name
        return load_layers(path), model, path.name
    if path.suffix.lower() in _PLAN_SUFFIXES or path.suffix.lower() in (".json", ".log") or "/" in source:
        raise WorkbenchError(
            f"{source} does not exist.", "Pass a build job id, a job folder, a layers.json or a plan."
        )
    from .service import Workbench

    wb = Workbench.open(args.workspace)
    job = wb.finished_build(source)
    job_dir = wb.jobs.job_dir(job.id)
    return load_layers(job_dir), model or job_network_model(job_dir), f"{job.title or job.id}"


def cmd_layers(args: argparse.Namespace) -> int:
    from .fusion import account_fusion, engine_as_onnx
    from .reports.fusion_html import layers_csv, report_json, write_html

    layers, model, label = resolve(args)
    report = account_fusion(model, layers, profile=args.profile) if model is not None else None
    if args.html:
        if report is None:
            raise WorkbenchError(
                "The HTML report needs the ONNX model the engine was built from.",
                "Pass --model MODEL.onnx (a job folder or id finds it by itself).",
            )
        out = write_html(args.html, report, layers, title=f"Layer fusion: {label}")
        _err(f"Wrote {out}.")
    if args.csv:
        Path(args.csv).write_text(layers_csv(layers))
        _err(f"Wrote {args.csv}.")
    if args.engine_onnx:
        engine_as_onnx(layers, args.engine_onnx, profile=args.profile, report=report)
        _err(f"Wrote {args.engine_onnx} (open it in Netron).")
    if args.json:
        if report is None:
            _out(layers.to_json())
        else:
            _out(report_json(report, layers))
        return 0
    _out(_text(layers, report, label, args.profile))
    return 0


def _text(layers: Any, report: Any, label: str, profile: int) -> str:
    lines = [
        f"{label}: {len(layers.for_profile(profile)) or len(layers.layers)} engine layers "
        f"(from the {layers.source}, {layers.detail})"
    ]
    if report is not None:
        lines.append(report.summary())
        for n in report.unaccounted:
            lines.append(f"  UNACCOUNTED: {n.node} ({n.op_type}): {n.reason}")
    else:
        lines.append("(no ONNX model given: pass --model to account for every ONNX node)")
    lines.append("")
    rows = [r for r in layers.to_rows() if r["profile"] == profile] or layers.to_rows()
    width = min(60, max((len(r["name"]) for r in rows), default=4))
    lines.append(f"{'#':>3}  {'layer':<{width}}  {'type':<16} {'precision':<10} ONNX nodes")
    for r in rows:
        name = r["name"] if len(r["name"]) <= width else r["name"][: width - 1] + "…"
        prec = r["precision"] + (f"+{r['weight_precision']}w" if r["weight_precision"] else "")
        lines.append(f"{r['index']:>3}  {name:<{width}}  {r['type']:<16} {prec:<10} {r['onnx_nodes']}")
    for w in layers.warnings:
        lines.append(f"warning: {w}")
    return "\n".join(lines)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "layers",
        help="engine layers and fusion report of a build (job, layers.json or plan)",
        description=__doc__,
    )
    p.add_argument(
        "source", metavar="PLAN_OR_JOB", help="build job id, job folder, layers.json, build log, or plan"
    )
    p.add_argument("--json", action="store_true", help="print the fusion report and layers as JSON")
    p.add_argument("--html", metavar="OUT.html", help="write a standalone HTML report (works offline)")
    p.add_argument("--csv", metavar="OUT.csv", help="write the layer table as CSV")
    p.add_argument("--engine-onnx", metavar="OUT.onnx", help="write the engine as a graph Netron can open")
    p.add_argument(
        "--model",
        metavar="MODEL.onnx",
        help="the ONNX model the engine was built from (found automatically for jobs)",
    )
    p.add_argument("--profile", type=int, default=0, help="optimization profile to report (default 0)")
    p.add_argument(
        "--backend",
        choices=("auto", "tensorrt", "tensorrt-rtx"),
        default="auto",
        help="backend that deserializes a plan file (needs a GPU it supports); auto: TensorRT, else TensorRT-RTX",
    )
    p.set_defaults(func=cmd_layers)
