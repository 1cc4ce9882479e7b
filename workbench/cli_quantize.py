"""``trt-workbench quantize``: calibrate on the user's data and write a Q/DQ ONNX model (and its ranges)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from .errors import SpecError


class _StderrReporter:
    """Progress and log lines to stderr (the CLI's stdout is kept for results)."""

    def __init__(self, verbose: bool) -> None:
        self._verbose = verbose

    def log(self, message: str, level: int = logging.INFO) -> None:
        if self._verbose or level >= logging.WARNING:
            prefix = "warning: " if level >= logging.WARNING else ""
            sys.stderr.write(f"{prefix}{message}\n")

    def progress(self, fraction: float, phase: str) -> None:
        if self._verbose:
            sys.stderr.write(f"[{fraction * 100:5.1f}%] {phase}\n")

    def cancelled(self) -> bool:
        return False


def cmd_quantize(args: argparse.Namespace) -> int:
    from .quantize import qdq_summary, quantize_qdq
    from .quantize_task import RANGES, QuantizeRequest, load_data

    model = Path(args.model)
    if not model.is_file():
        raise SpecError(f"Model '{model}' does not exist.", "Check the path.")
    out = Path(args.output).resolve()
    if out.resolve() == model.resolve():
        raise SpecError("The output would overwrite the input model.", "Choose another -o path.")
    from .model import summarize
    from .spec import refuse_requantizing

    refuse_requantizing(summarize(model))
    if not (args.calib_data or args.random_calibration or args.reuse_ranges):
        raise SpecError("quantize needs --calib-data DATA.npz (one array per model input, first axis = samples).",
                        "Or --reuse-ranges calibration.json from an earlier run, or --random-calibration "
                        "(shapes only: accuracy meaningless).")
    data_path = None
    if args.calib_data:
        from .calibration_images import calibration_npz
        from .workspace import Workspace

        ws = Workspace.at(args.workspace) if args.workspace else Workspace.default()
        data_path = str(calibration_npz(args.calib_data, model, ws.root / "data"))
    req = QuantizeRequest(
        data_path=data_path,
        calibrator=args.calibrator, percentile=args.percentile, precision=args.precision,
        exclude_nodes=tuple(args.exclude or ()), exclude_op_types=tuple(args.exclude_op_types or ()),
        synthetic=bool(args.random_calibration), reuse_ranges=args.reuse_ranges,
    )
    reporter = _StderrReporter(args.verbose)
    if args.culprit_loop:
        return _culprit_loop(args, model, out, req, reporter)
    data = None if req.reuse_ranges else load_data(model, req, reporter)
    out.parent.mkdir(parents=True, exist_ok=True)
    ranges = Path(args.ranges).resolve() if args.ranges else out.with_name(out.stem + "." + RANGES)
    spec = req.quantize_spec()
    if args.transformer_defaults != "off":
        from dataclasses import replace

        from .quantize_defaults import float_groups

        groups = float_groups(model)
        if groups.transformer:
            spec = replace(spec, exclude_nodes=tuple(dict.fromkeys([*spec.exclude_nodes, *groups.nodes])))
            for line in groups.lines():
                sys.stderr.write(f"Kept in float (transformer default): {line}.\n")
        elif args.transformer_defaults == "on":
            sys.stderr.write("warning: the model does not look like a transformer: no transformer defaults.\n")
    result = quantize_qdq(model, out, data, spec, reporter, reuse_ranges=req.reuse_ranges, ranges_path=ranges)
    qs = qdq_summary(result.model_path)
    doc = {**json.loads(json.dumps(result.to_dict(), default=str)), "quantize_nodes": qs.n_quantize,
           "dequantize_nodes": qs.n_dequantize, "synthetic": bool(data is not None and data.synthetic)}
    if args.json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        sys.stdout.write(
            f"Wrote {out} ({req.precision.upper()} Q/DQ, {result.calibrator} calibrator, {result.n_samples} samples, "
            f"{result.n_quantized_nodes} nodes quantized, {len(result.excluded)} kept in float) and ranges "
            f"{result.ranges_path or ranges}\n")
        if doc["synthetic"]:
            sys.stdout.write("NOTE: calibrated on random data: shapes only, accuracy meaningless.\n")
    return 0


def _culprit_loop(args: argparse.Namespace, model: Path, out: Path, req: Any, reporter: _StderrReporter) -> int:
    """``quantize --culprit-loop``: the loop of :mod:`workbench.accuracy.loop`, round by round on stdout."""
    import shutil
    import tempfile

    from .accuracy.loop import FINAL_MODEL, LOOP_FILE, culprit_loop
    from .accuracy.loop_job import LoopRequest, load_inputs

    if not args.heldout or not args.calib_data:
        raise SpecError("--culprit-loop needs --calib-data DATA.npz and --heldout HELDOUT.npz.",
                        "The loop calibrates on the first and measures every proposal on the second (a 'label' "
                        "array there makes the metric top-1 accuracy; without it, the mean cosine to FP32).")
    loop = LoopRequest(calib_path=str(req.data_path), heldout_path=str(args.heldout),
                       calibrator=args.calibrator, percentile=args.percentile, precision=args.precision,
                       exclude_nodes=tuple(args.exclude or ()), max_rounds=args.max_rounds,
                       max_trials=args.trials, target=args.target, defaults=args.transformer_defaults)
    calib, heldout = load_inputs(model, loop)
    with tempfile.TemporaryDirectory(prefix="wb-loop-") as tmp:
        result = culprit_loop(model, calib, heldout, loop.quantize_spec(), tmp, max_rounds=loop.max_rounds,
                              max_trials=loop.max_trials, defaults=loop.use_defaults, target=loop.target,
                              reporter=reporter)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(tmp) / FINAL_MODEL, out)
        ranges = Path(args.ranges).resolve() if args.ranges else out.with_name(out.stem + ".calibration.json")
        shutil.copyfile(Path(tmp) / "calibration.json", ranges)
        report = out.with_name(out.stem + "." + LOOP_FILE)
        shutil.copyfile(Path(tmp) / LOOP_FILE, report)
    if args.json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2, default=str) + "\n")
    else:
        sys.stdout.write("\n".join(result.round_lines()) + "\n\n" + result.verdict + "\n")
        for note in result.notes:
            sys.stdout.write(f"note: {note}\n")
        sys.stdout.write(f"Wrote {out} ({len(result.excluded)} node(s) in float, {result.n_quantized} quantized), "
                         f"ranges {ranges}, rounds {report}\n")
    return 0 if result.advisable else 1


def register(sub: argparse._SubParsersAction) -> None:
    from .quantize import CALIBRATORS

    p = sub.add_parser("quantize", help="calibrate and write a Q/DQ ONNX model (INT8 or FP8)")
    p.add_argument("model")
    p.add_argument("-o", "--output", required=True, metavar="MODEL_QDQ.onnx")
    p.add_argument("--calib-data", metavar="DATA", help="an .npz (one array per model input, first axis = samples), "
                   "or a folder / .zip / .tar.gz of images (preprocessing proposed from the model's input)")
    p.add_argument("--calibrator", choices=CALIBRATORS, default="entropy")
    p.add_argument("--percentile", type=float, default=99.999)
    p.add_argument("--precision", choices=("int8", "fp8"), default="int8")
    p.add_argument("--exclude", nargs="+", metavar="NODE_OR_OPTYPE",
                   help="keep these nodes (by name) or op types out of quantization")
    p.add_argument("--exclude-op-types", nargs="+", metavar="OPTYPE", help=argparse.SUPPRESS)
    p.add_argument("--reuse-ranges", metavar="calibration.json", help="reuse the ranges of an earlier run")
    p.add_argument("--ranges", metavar="OUT.json", help="where to write the ranges (default: beside the output)")
    p.add_argument("--random-calibration", action="store_true",
                   help="calibrate on random data (shapes only: accuracy meaningless)")
    p.add_argument("--transformer-defaults", choices=("auto", "on", "off"), default="auto",
                   help="keep attention-mask arithmetic, Softmax, LayerNorm, GELU/Erf, residual Adds and other "
                   "non-GEMM ops of a transformer in float (auto: when the model is one)")
    p.add_argument("--culprit-loop", action="store_true",
                   help="measure and keep in float, round by round, only what recovers the task metric on "
                   "--heldout (exit 1 when INT8 is not advisable; the verdict names the precision to use)")
    p.add_argument("--heldout", metavar="HELDOUT.npz",
                   help="held-out data for --culprit-loop (a 'label' array: top-1 within 1 pp; else the mean "
                   "cosine of the outputs to FP32, mean-pooled for embeddings)")
    p.add_argument("--target", type=float, help="--culprit-loop: the metric that counts as recovered "
                   "(default 0.99 mean cosine, or FP32's top-1 minus 1 pp)")
    p.add_argument("--max-rounds", type=int, default=3, help="--culprit-loop: rounds at most (default 3)")
    p.add_argument("--trials", type=int, default=6, help="--culprit-loop: proposals measured per round (default 6)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func=cmd_quantize)
