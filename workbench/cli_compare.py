"""``trt-workbench compare``: a candidate (engine, FP16 or Q/DQ model) against ONNX Runtime running the FP32 model.

Exit codes: 0 when the verdict passes (every model output within the tolerances of the candidate's precision, or,
with labels, top-1 within the allowed drop of FP32), 1 when not (or the backend failed), 2 on bad input —
including a plan on a machine where engines cannot run (the message says which simulation to compare instead).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import shutil
import sys
import tempfile
import textwrap
from pathlib import Path

from .errors import DataError, ModelError


class _StderrReporter:
    def __init__(self, verbose: bool) -> None:
        self._verbose = verbose

    def log(self, message: str, level: int = logging.INFO) -> None:
        if self._verbose:  # warnings are part of the summary on stdout
            sys.stderr.write(("warning: " if level >= logging.WARNING else "") + message + "\n")

    def progress(self, fraction: float, phase: str) -> None:
        if self._verbose:
            sys.stderr.write(f"[{fraction * 100:5.1f}%] {phase}\n")

    def cancelled(self) -> bool:
        return False


def _g(v: float) -> str:
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.4g}"


def _summary(result: object) -> str:
    from .accuracy.results import ComparisonResult

    assert isinstance(result, ComparisonResult)
    r = result
    lines = [
        f"Reference: ONNX Runtime, {r.model} (FP32)"
        + (f" on {r.reference_provider}" if r.reference_provider else ""),
        f"Candidate: {r.candidate} — {r.kind_label}"
        + ("  [calibrated on RANDOM data: accuracy meaningless]" if r.synthetic_calibration else ""),
        f"Data:      {r.data_source}, {r.n_samples} sample(s)"
        + ("  [RANDOM: accuracy meaningless]" if r.synthetic_data else ""),
        f"Verdict:   {r.summary()}",
        f"Tolerances for {r.precision_label}: {r.tolerances_text()}",
    ]
    if r.first_nonfinite:
        lines.append(f"NaN/Inf:   first at tensor '{r.first_nonfinite}' (node '{r.first_nonfinite_node}')")
    lines.append("")
    width = max([len(t.name) for t in r.tensors] + [6])
    lines.append(
        f"  {'tensor':{width}}  verdict  {'cosine':>9}  {'rel_err':>9}  {'max_abs':>9}  {'mean_abs':>9}  "
        f"{'snr_db':>7}  {'need_atol':>9}  {'need_rtol':>9}  failed checks"
    )
    shown = r.tensors if r.per_layer else r.output_results()
    for t in shown:
        mark = "pass" if t.passed else "FAIL"
        out = " (output)" if t.is_output and r.per_layer else ""
        lines.append(
            f"  {t.name:{width}}  {mark:7}  {_g(t.cosine):>9}  {_g(t.rel_rms):>9}  {_g(t.max_abs):>9}  "
            f"{_g(t.mean_abs):>9}  {_g(t.snr_db):>7}  {_g(t.needed_atol):>9}  {_g(t.needed_rtol):>9}  "
            f"{t.failed_checks() or '-'}{out}"
        )
    if r.jump:
        lines.append(f"\nError jumps at: {r.jump}" + (f" ({r.jump_note})" if r.jump_note else ""))
    if r.kept_float:
        lines.append(f"Already in float in the candidate: {len(r.kept_float)} node(s): {', '.join(r.kept_float)}")
    if r.culprits:
        lines.append("Culprits (error added, ONNX nodes to keep in higher precision):")
        for c in r.culprits:
            lines.append(
                f"  #{c.rank} {c.tensor}: {_g(c.error_in)} -> {_g(c.error_out)}  nodes: {', '.join(c.nodes)}"
            )
        if r.recovered:
            lines.append(f"Task metric recovered ({r.recovery}): nothing needs to be kept in float.")
        elif r.proposed_exclusions:
            lines.append(f"Re-quantize with: --exclude {' '.join([*r.kept_float, *r.proposed_exclusions])}")
            lines.append("Or let `trt-workbench quantize --culprit-loop --heldout DATA.npz` measure each proposal.")
    for w in r.warnings:
        lines.append(f"warning: {w}")
    return "\n".join(lines) + "\n"


def cmd_compare(args: argparse.Namespace) -> int:
    from .accuracy import CompareSpec, candidate_from_path, compare, load_data
    from .accuracy.comparison import COMPARISON_FILE, REPORT_FILE, RESULTS_FILE

    model = Path(args.model)
    if not model.is_file():
        raise ModelError(f"Model '{model}' does not exist.", "Check the path.")
    if args.data and not Path(args.data).is_file():
        raise DataError(f"Data '{args.data}' does not exist.", "Check the path.")
    spec = CompareSpec(
        atol=args.atol,
        rtol=args.rtol,
        error_stat=args.error_stat,
        per_layer=bool(args.per_layer),
        mark_all=bool(args.mark_all),
        max_samples=args.max_samples,
        batch_size=args.batch_size,
        label_output=args.label_output,
        top_k=args.top_k,
        min_cosine=args.min_cosine,
        max_rel_error=args.max_rel_error,
        task_max_drop_pp=args.max_top1_drop,
    )
    candidate = candidate_from_path(args.candidate, args.kind)
    if args.precision:
        candidate = dataclasses.replace(candidate, precision=args.precision)
    reporter = _StderrReporter(args.verbose)
    shapes = {}
    for item in args.random_shape or ():
        name, _, dims = item.partition(":")
        try:
            shapes[name] = [int(d) for d in dims.split("x") if d]
        except ValueError as err:
            raise DataError(f"--random-shape '{item}' is not NAME:AxB (per-sample shape).") from err
    data = load_data(model, args.data, shapes=shapes or None, n_random=args.max_samples)
    with tempfile.TemporaryDirectory(prefix="wb-compare-cli-") as tmp:
        out_dir = Path(tmp)
        wanted = bool(args.json or args.html or args.results)  # artifacts nobody asked for are not written
        result = compare(model, candidate, data, spec, out_dir=out_dir if wanted else None, reporter=reporter)
        for flag, name in (
            (args.json, COMPARISON_FILE),
            (args.html, REPORT_FILE),
            (args.results, RESULTS_FILE),
        ):
            if flag:
                dest = Path(flag)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(out_dir / name, dest)
                sys.stderr.write(f"Wrote {dest}\n")
    sys.stdout.write(_summary(result))
    return 0 if result.passed else 1


def register(sub: argparse._SubParsersAction) -> None:
    from .accuracy.spec import CANDIDATE_KINDS, ERROR_STATS, CompareSpec
    from .accuracy.tolerances import PRECISIONS, defaults_table

    d = CompareSpec()
    table = "\n".join(
        f"  {r['precision']:5} atol {r['atol']:<6g} rtol {r['rtol']:<6g} {r['error_stat']:8} cosine >= "
        f"{r['min_cosine']:<7g} rel. error <= {r['max_rel_error']:g}"
        for r in defaults_table()
    )
    p = sub.add_parser(
        "compare",
        help="compare an engine, FP16 or Q/DQ model against ONNX Runtime running the FP32 model (Polygraphy)",
        description=textwrap.fill(
            "Exit 0 when the verdict passes, 1 when not, 2 on bad input. A tensor is within tolerance when "
            "Polygraphy's atol/rtol check passes AND its cosine similarity and relative error ||c - r|| / ||r|| "
            "are within bounds; with a 'label' array, top-1 within --max-top1-drop points of FP32 means the task "
            "holds (the verdict passes, the tensors are detail). Defaults by the candidate's precision "
            "(detected, or --precision):",
            100,
        )
        + "\n"
        + table,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", help="the original FP32 ONNX model (the reference)")
    p.add_argument(
        "--candidate",
        required=True,
        metavar="PLAN_OR_MODEL.onnx",
        help="a TensorRT plan (needs a GPU that can run it) or an FP16 / Q/DQ ONNX model (simulated "
        "in ONNX Runtime)",
    )
    p.add_argument(
        "--kind",
        choices=("auto", *CANDIDATE_KINDS),
        default="auto",
        help="what the candidate is (default: detected from the file)",
    )
    p.add_argument(
        "--data",
        metavar="DATA.npz",
        help="inputs, one array per model input (first axis = samples); a 'label' array enables the "
        "top-1 accuracy check. Without it: random data (shapes only)",
    )
    p.add_argument(
        "--random-shape",
        action="append",
        metavar="NAME:AxB",
        help="per-sample shape of a dynamic input for random data, e.g. hidden:64x64",
    )
    p.add_argument(
        "--per-layer",
        action="store_true",
        help="compare every tensor both graphs have, and rank the layers that add the error",
    )
    p.add_argument(
        "--mark-all",
        action="store_true",
        help="engines: mark every tensor as an output (changes what TensorRT fuses)",
    )
    p.add_argument("--atol", type=float, help="absolute tolerance (default: by precision, see above)")
    p.add_argument("--rtol", type=float, help="relative tolerance (default: by precision)")
    p.add_argument(
        "--error-stat",
        choices=ERROR_STATS,
        help="what atol/rtol apply to (Polygraphy's check_error_stat; default: by precision)",
    )
    p.add_argument("--min-cosine", type=float, help="smallest cosine similarity to FP32 (default: by precision)")
    p.add_argument(
        "--max-rel-error", type=float, help="largest ||c - r|| / ||r|| (default: by precision)"
    )
    p.add_argument(
        "--max-top1-drop",
        type=float,
        default=d.task_max_drop_pp,
        metavar="PP",
        help=f"top-1 may drop this many percentage points and the task holds (default {d.task_max_drop_pp:g})",
    )
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="the candidate's precision, whose default tolerances apply (default: detected from the file)",
    )
    p.add_argument("--label-output", metavar="OUTPUT", help="output whose argmax is checked against 'label'")
    p.add_argument("--max-samples", type=int, default=d.max_samples)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--top-k", type=int, default=d.top_k, help="culprits to report")
    p.add_argument("--json", metavar="OUT.json", help="write the comparison (metrics, culprits) as JSON")
    p.add_argument("--html", metavar="OUT.html", help="write the standalone HTML report")
    p.add_argument(
        "--results", metavar="OUT.json", help="write both sides' outputs (Polygraphy RunResults JSON)"
    )
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func=cmd_compare)
