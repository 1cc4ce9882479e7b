"""``trt-workbench layers PLAN_OR_JOB``: the engine's layers and the fusion report, as text, JSON or HTML.

PLAN_OR_JOB is a build job id, a job folder, a ``layers.json`` / inspector JSON / build log, or a plan file. A plan
is read with the engine inspector where a backend can deserialize it (a supported GPU); elsewhere (a CPU-only
machine) the layer listing saved at build time beside it is used, and the command says so: ``PLAN.layers.json``
(written by ``trt-workbench build -o PLAN``), ``PLAN.build.log``, or in a job folder its ``layers.json`` /
``job.log``. Same model and numbers as the page.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from .errors import BackendUnavailable, SpecError, WorkbenchError

_PLAN_SUFFIXES = (".plan", ".engine", ".trt")
LAYERS_SUFFIX = ".layers.json"  # ``model.plan`` → ``model.layers.json``


def layers_beside(plan: Path) -> Path:
    """Where ``trt-workbench build -o PLAN`` writes the layer information: ``PLAN`` with ``.layers.json``."""
    return plan.with_suffix(LAYERS_SUFFIX)


def saved_listing(plan: Path) -> Path | None:
    """The layer listing saved at build time beside ``plan``, or None.

    ``PLAN.layers.json`` / ``PLAN.build.log`` name the plan; a folder's ``layers.json`` / ``job.log`` count only in
    a job folder (the plan is the job's ``engine.plan``) or when the folder holds no other plan.
    """
    from .build import LAYERS, PLAN
    from .jobs import LOG_FILE

    for cand in (layers_beside(plan), plan.with_suffix(".build.log")):
        if cand.is_file():
            return cand
    folder = plan.parent
    others = [p for p in folder.iterdir() if p.suffix.lower() in _PLAN_SUFFIXES and p.name != plan.name]
    if plan.name == PLAN or not others:
        for name in (LAYERS, LOG_FILE):
            if (folder / name).is_file():
                return folder / name
    return None


def save_beside_plan(job_dir: Path, plan: Path) -> Path | None:
    """Copy a finished build's layer information next to a plan copied out of the workspace (``build -o``), so
    ``trt-workbench layers PLAN`` works on a machine that cannot deserialize the plan. Returns the file, or None
    when the build left no layer information."""
    from .build import LAYERS

    src = Path(job_dir) / LAYERS
    if not src.is_file():
        return None
    out = layers_beside(plan)
    out.write_bytes(src.read_bytes())
    return out


def _plan_layers(plan: Path, backend: str) -> tuple[Any, Path | None]:
    """The plan's layers from the engine inspector, else from the listing saved beside it (which is then named)."""
    from .layers import inspect_plan, load_layers

    if not plan.is_file():
        raise WorkbenchError(f"The plan {plan} does not exist.", "Check the path.")
    try:
        return inspect_plan(plan, backend=backend), None
    except BackendUnavailable as err:
        saved = saved_listing(plan)
        if saved is None:
            raise
        _err(f"note: {err.message}")
        _err(f"note: using the layer listing saved at build time instead: {saved}")
        return load_layers(saved), saved


def _out(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _err(text: str) -> None:
    sys.stderr.write(text if text.endswith("\n") else text + "\n")


def resolve(args: argparse.Namespace) -> tuple[Any, Path | None, str]:
    """(EngineLayers, the ONNX model it was built from or None, a label) for the command's source."""
    from .fusion import job_network_model
    from .layers import load_layers

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
            layers, saved = _plan_layers(path, args.backend)
            if model is None and saved is not None and saved.parent == path.parent:
                try:  # a job folder knows its network model
                    model = job_network_model(path.parent)
                except WorkbenchError:
                    model = None
            return layers, model, path.name
        _refuse_other_files(path)
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


_WANTED = "Pass a plan (with its .layers.json beside it), a build job id or folder, a layers.json or a build log."


def _refuse_other_files(path: Path) -> None:
    """Bad input (exit 2) naming what the file is, for anything that cannot hold layer information: an ONNX
    model, an archive, data, any other file without a layer listing."""
    from .archives import is_archive

    what = ""
    suffix = path.suffix.lower()
    if is_archive(path.name):
        what = "an archive"
    elif suffix == ".onnx":
        what = "an ONNX model"
    elif suffix in (".npz", ".npy"):
        what = "a data file"
    elif suffix != ".json":
        with open(path, "rb") as fh:
            head = fh.read(1 << 20)
        if b"Layers:" not in head and b"Engine Layer Information:" not in head:
            what = "neither a plan nor a build log (it has no engine layer listing)"
            if b"\0" in head[:4096]:
                with contextlib.suppress(WorkbenchError):
                    from .model import load_proto

                    load_proto(path)
                    what = "an ONNX model"
    if what == "an ONNX model":
        raise WorkbenchError(
            f"'{path.name}' is an ONNX model, not a build: 'layers' reads what a build made.",
            f"Build it first (trt-workbench build {path.name} -o model.plan), then pass the plan or the build's job "
            f"id; give the ONNX model with --model to account for its nodes.",
        )
    if what:
        raise WorkbenchError(f"'{path.name}' is {what}: 'layers' reads a build's layer information.", _WANTED)


def cmd_layers(args: argparse.Namespace) -> int:
    from .fusion import account_fusion, engine_as_onnx
    from .reports.fusion_html import layers_csv, report_json, write_html

    layers, model, label = resolve(args)
    if not 0 <= args.profile < layers.num_profiles:
        raise SpecError(
            f"--profile {args.profile} is out of range: the engine has {layers.num_profiles} optimization "
            f"profile{'s' if layers.num_profiles != 1 else ''} (0"
            + (f"..{layers.num_profiles - 1}" if layers.num_profiles > 1 else "")
            + ").",
            "Pick one of those, or leave --profile out for profile 0.",
        )
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
        from .fusion_rules import EVIDENCE_LABELS, RULE_EVIDENCE

        ruled = Counter(n.evidence for n in report.nodes if n.evidence in RULE_EVIDENCE)
        if ruled:
            lines.append(
                f"{sum(ruled.values())} nodes no layer's metadata names were placed by evidence ("
                + "; ".join(f"{v}: {EVIDENCE_LABELS[k]}" for k, v in ruled.most_common())
                + "); --html or --json shows each with its reason."
            )
        for n in report.unaccounted:
            lines.append(f"  UNACCOUNTED: {n.node} ({n.op_type}): {n.reason}")
    else:
        lines.append("(no ONNX model given: pass --model to account for every ONNX node)")
    lines.append("")
    rows = [r for r in layers.to_rows() if r["profile"] == profile]
    width = min(60, max((len(r["name"]) for r in rows), default=4))
    lines.append(f"{'#':>3}  {'layer':<{width}}  {'type':<16} {'precision':<10} ONNX nodes")
    for r in rows:
        name = r["name"] if len(r["name"]) <= width else r["name"][: width - 1] + "…"
        prec = r["precision"] + (f"+{r['weight_precision']}w" if r["weight_precision"] else "")
        if r["output_precision"] and r["output_precision"] not in (r["precision"], "mixed"):
            prec += f">{r['output_precision']}"  # computes in one type, writes another (a fused Cast)
        lines.append(f"{r['index']:>3}  {name:<{width}}  {r['type']:<16} {prec:<10} {r['onnx_nodes']}")
    if any(r["output_precision"] not in ("", "mixed", r["precision"]) for r in rows):
        lines.append("(precision A>B: the layer computes in A and writes B, a conversion fused into it)")
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
