"""``trt-workbench``: the same core as the app, from a terminal or CI.

Exit codes: 0 success, 1 the backend (or a comparison) failed, 2 bad input (the message says what and where).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import ModelError, WorkbenchError

log = logging.getLogger("workbench.cli")


def _out(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _err(text: str) -> None:
    sys.stderr.write(text if text.endswith("\n") else text + "\n")


# ---------------------------------------------------------------------------------------------- inspect



def _stderr_echo(text: str) -> None:
    sys.stderr.write(text)

def _parser_result(model: Path, backend: str | None) -> tuple[Any, str | None]:
    """(ParseResult, None), or (None, why it was not run): the same check as the Model page's Parser tab, run here
    in this process (a one-shot CLI process may import the backend; a fraction of a second for most models)."""
    import contextlib
    import io

    from .backends import installed_backends, require_backend
    from .errors import BackendError
    from .parse_check import parse_model

    if backend is None:
        found = installed_backends()
        if not found:
            return None, "no TensorRT backend is installed (see Settings in the app, or pip install tensorrt-rtx-cu13)"
        backend = found[0].name
    else:
        require_backend(backend)
    from .backend_log import captured_output, quote, quoted_errors

    sink = io.StringIO()
    result = None
    try:
        # The parser's own log comes back in the result; what native code prints past it (and Polygraphy's
        # stdout) is captured too: stdout stays the summary / JSON, stderr the workbench's own messages.
        with captured_output() as native, contextlib.redirect_stdout(sink):
            result = parse_model(model, backend)
    except WorkbenchError:
        raise
    except Exception as err:  # the backend itself failed (not the model's fault)
        lines = quoted_errors(native.text.splitlines())
        raise BackendError(f"The {backend} parser failed on '{model.name}': {err}"
                           + (f"\n{quote(lines)}" if lines else ""),
                           "Run with --no-parse to get the summary alone.") from err
    finally:
        backend_text = "\n".join([*(result.log if result is not None else ()), sink.getvalue().rstrip(),
                                  native.text.rstrip()]).strip()
        if backend_text:
            log.info("%s parser log:\n%s", backend, backend_text)  # --log-level INFO shows it
    return result, None


def cmd_inspect(args: argparse.Namespace) -> int:
    from .model import summarize

    model = Path(args.model)
    from .archives import is_archive

    if is_archive(model.name):
        raise ModelError(
            f"'{model.name}' is an archive: 'inspect' reads one .onnx file.",
            f"Unpack it and pass its .onnx file (with its external-data files next to it), or give the archive to "
            f"'trt-workbench build {model.name}', which unpacks and checks it.",
        )
    summary = summarize(model)  # validates first: a hostile file never reaches the backend's parser
    parsed, skipped = (None, "--no-parse") if args.no_parse else _parser_result(model, args.backend)
    if args.json:
        doc = summary.to_dict()
        doc["parser"] = parsed.to_dict() if parsed is not None else None
        if skipped:
            doc["parser_skipped"] = skipped
        _out(json.dumps(doc, indent=2))
        return 0
    s = summary
    lines = [f"{s.file}: ONNX IR {s.ir_version}, opsets {s.opsets}, producer {s.producer or '-'}",
             f"  nodes: {s.node_count} (+{s.subgraph_node_count} in subgraphs), parameters: {s.parameter_count:,} "
             f"({s.initializer_bytes / 2**20:.2f} MiB"
             + (f", {s.external_data_bytes / 2**20:.1f} MiB external" if s.external_data_bytes else "") + ")"]
    for kind, tensors in (("input", s.inputs), ("output", s.outputs)):
        for t in tensors:
            dyn = "  (dynamic)" if t.is_dynamic else ""
            lines.append(f"  {kind:6} {t.name}: {t.dtype} {t.shape_text()}{dyn}")
    lines.append("  ops: " + ", ".join(f"{k}×{v}" for k, v in s.op_histogram.items()))
    if s.quantization is not None:
        q = s.quantization
        lines.append(f"  quantization: {q.describe()}; build it as it is with --precision "
                     f"{'/'.join(q.precisions) or 'int8'} (no --calib-data)")
    if any(t.is_dynamic for t in s.inputs):
        from .spec import default_profile, profile_args, shared_dim_notes

        proposal = default_profile(s.inputs)
        if len(proposal.shapes) == sum(t.is_dynamic for t in s.inputs):  # every dynamic input has a known rank
            lines.append(f"  profile (a proposal to edit): {profile_args(proposal)}")
        lines += [f"    {note}" for note in shared_dim_notes(s.inputs)  # unless a warning below says it
                  if not any(w.startswith(note.split(" share ")[0] + " share ") for w in s.warnings)]
    for w in s.warnings:
        lines.append(f"  warning: {w}")
    if parsed is None:
        lines.append(f"  parser: not checked ({skipped})")
    elif parsed.ok:
        lines.append(f"  parser: {parsed.backend} {parsed.backend_version} parses the model: "
                     f"{parsed.network_layers} network layers")
    else:
        lines.append(f"  parser: {parsed.backend} {parsed.backend_version} rejects {len(parsed.issues)} node(s); "
                     "a build will fail until they are replaced or a TensorRT plugin is provided for them")
        lines += [f"    node '{i.node}' ({i.op}): {i.message}" for i in parsed.issues]
        if not parsed.issues:  # refused without naming a node: the backend's own error lines say why
            from .backend_log import quoted_errors

            lines += [f"    [E] {e}" for e in quoted_errors([ln[4:] for ln in parsed.log if ln.startswith("[E] ")])]
    _out("\n".join(lines))
    return 0


# ---------------------------------------------------------------------------------------------- build


def _spec_from_args(args: argparse.Namespace, op_types: set[str], quantized: bool = False) -> Any:
    """The build spec the flags ask for; ``op_types`` (the model's) tell op types from node names in name lists.
    An explicitly quantized (Q/DQ) model gets no calibration unless a calibration flag asks for one (which the
    spec's validation then refuses, saying why)."""
    from .spec import BuildSpec, CalibrationSpec, profiles_from_args

    profiles = profiles_from_args(args.min_shapes or [], args.opt_shapes or [], args.max_shapes or [])
    calibration = None
    asks_calibration = bool(args.calib_data or args.random_calibration or args.reuse_ranges or args.exclude
                            or args.calibrator != "entropy" or args.percentile != 99.999)
    if args.precision in ("int8", "fp8") and (asks_calibration or not quantized):
        data_path = None
        if args.calib_data:
            from .calibration_images import calibration_npz
            from .workspace import Workspace

            ws = Workspace.at(args.workspace) if args.workspace else Workspace.default()
            data_path = str(calibration_npz(args.calib_data, args.model, ws.root / "data"))
        calibration = CalibrationSpec(
            data_path=data_path,
            calibrator=args.calibrator, percentile=args.percentile,
            exclude_nodes=tuple(args.exclude or ()), synthetic=bool(args.random_calibration),
            ranges_path=str(Path(args.reuse_ranges).resolve()) if args.reuse_ranges else None,
        )
    return BuildSpec(backend=args.backend, precision=args.precision, profiles=profiles,
                     workspace_mb=args.workspace_mb, optimization_level=args.opt_level,
                     compute_capabilities=tuple(args.compute_capabilities or ()), calibration=calibration,
                     timing_cache=not args.no_timing_cache, hardware_compatible=args.hardware_compatible,
                     version_compatible=args.version_compatible,
                     keep_fp32_nodes=tuple(k for k in args.keep_fp32 or () if k not in op_types),
                     keep_fp32_op_types=tuple(k for k in args.keep_fp32 or () if k in op_types))


def cmd_build(args: argparse.Namespace) -> int:
    from .build import PLAN
    from .jobs import SUCCEEDED
    from .service import Workbench

    wb = Workbench.open(args.workspace)
    ref = wb.import_path(Path(args.model))
    summary = wb.summary(ref)
    spec = _spec_from_args(args, set(summary.op_histogram), quantized=summary.quantization is not None)
    if warning := wb.build_time_warning(ref):
        _err(f"warning: {warning}")
    job_id = wb.submit_build(ref, spec)
    _err(f"Building {ref.name} ({spec.summary()}) as job {job_id} …")
    echo = _stderr_echo if args.verbose else None
    job = wb.jobs.wait(job_id, timeout=args.timeout, on_log=echo)
    if job.status != SUCCEEDED:
        sep = "\n" if "\n" in job.error else " "  # quoted backend lines: the hint goes below them
        _err(f"error: build {job.status}: {job.error}" + (f"{sep}{job.hint}" if job.hint else ""))
        _err(f"(full log: {wb.jobs.job_dir(job_id) / 'job.log'})")
        return job.exit_code or 1
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(wb.jobs.artifact(job_id, PLAN), out)
    from .cli_layers import save_beside_plan

    listing = save_beside_plan(wb.jobs.job_dir(job_id), out)  # `trt-workbench layers OUT` reads it without a GPU
    for w in job.result.get("warnings", []):
        _err(f"warning: {w}")
    if args.report:
        Path(args.report).write_text(wb.build_report_json(job_id))
    _err(f"Wrote {out} ({out.stat().st_size / 1024:.1f} KiB) in {job.result.get('build_seconds', 0):.2f} s"
         + (f", and its layer information {listing}." if listing else "."))
    return 0


# ---------------------------------------------------------------------------------------------- main


def _add_build_args(p: argparse.ArgumentParser) -> None:
    from .spec import BACKENDS, CALIBRATORS, PRECISIONS

    p.add_argument("--backend", choices=BACKENDS, default="tensorrt-rtx")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32")
    p.add_argument("--min-shapes", action="append", metavar="NAME:AxBxC,...",
                   help="one per optimization profile (trtexec syntax); repeat for several profiles")
    p.add_argument("--opt-shapes", action="append", metavar="NAME:AxBxC,...")
    p.add_argument("--max-shapes", action="append", metavar="NAME:AxBxC,...")
    p.add_argument("--workspace-mb", type=int, default=None, help="workspace memory pool limit in MiB")
    p.add_argument("--opt-level", type=int, default=3, help="builder optimization level 0..5")
    p.add_argument("--compute-capabilities", nargs="+", metavar="X.Y", help="TensorRT-RTX targets, e.g. 8.6 8.9")
    p.add_argument("--hardware-compatible", action="store_true",
                   help="full TensorRT: a plan that runs on Ampere and newer GPUs (trtexec --hardwareCompatibilityLevel)")
    p.add_argument("--version-compatible", action="store_true",
                   help="full TensorRT: a plan later TensorRT runtimes can load (trtexec --versionCompatible)")
    p.add_argument("--no-timing-cache", action="store_true",
                   help="full TensorRT: neither reuse nor update the workspace's timing cache for this GPU")
    p.add_argument("--calib-data", metavar="DATA", help="calibration data: an .npz (one array per model input), or "
                   "a folder / .zip / .tar.gz of images (preprocessing proposed from the model's input)")
    p.add_argument("--calibrator", choices=CALIBRATORS, default="entropy")
    p.add_argument("--percentile", type=float, default=99.999)
    p.add_argument("--exclude", nargs="+", metavar="NODE_OR_OPTYPE", help="keep these out of quantization")
    p.add_argument("--keep-fp32", nargs="+", metavar="NODE_OR_OPTYPE",
                   help="FP16/BF16 builds: leave these nodes or op types in FP32")
    p.add_argument("--random-calibration", action="store_true",
                   help="calibrate on random data (shapes only: accuracy meaningless)")
    p.add_argument("--reuse-ranges", metavar="calibration.json",
                   help="reuse the calibration ranges of an earlier quantize/build (no recalibration)")


def _inspect_args(p: argparse.ArgumentParser) -> None:
    from .spec import BACKENDS

    p.add_argument("model")
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-parse", action="store_true",
                   help="skip the parser check (by default the model is parsed as the Model page's Parser tab does)")
    p.add_argument("--backend", choices=BACKENDS, default=None,
                   help="backend whose ONNX parser checks the model (default: the first one installed)")
    p.set_defaults(func=cmd_inspect)


def _build_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model")
    p.add_argument("-o", "--output", required=True, metavar="PLAN",
                   help="where to copy the plan; its layer information goes beside it (m.plan → m.layers.json)")
    _add_build_args(p)
    p.add_argument("--report", metavar="REPORT.json", help="spec, timings, backend info and layer information")
    p.add_argument("--timeout", type=float, default=None, help="seconds to wait for the build")
    p.add_argument("-v", "--verbose", action="store_true", help="stream the build log to stderr")
    p.set_defaults(func=cmd_build)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trt-workbench", description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", help="workspace folder (default: $WORKBENCH_HOME or ~/.trt-workbench)")
    parser.add_argument("--log-level", default="WARNING")
    from . import cli_more

    # every subcommand's arguments (and the modules they need) are added only when that subcommand is used
    sub = parser.add_subparsers(dest="command", required=True, parser_class=cli_more.LazyParser)
    sub.add_parser("inspect", help="summarize an ONNX model", populate=_inspect_args)
    sub.add_parser("build", help="build a plan (runs as a workspace job, like the app)", populate=_build_args)
    cli_more.register(sub)
    return parser


def describe_os_error(err: OSError) -> tuple[str, str | None, int]:
    """(message, hint, exit code) for an operating-system error the commands did not turn into a WorkbenchError.

    With a file name it is about a path the user gave or the workspace (exit 2); without one the system itself
    failed under the command (exit 1)."""
    import errno
    import os

    what = err.strerror or type(err).__name__
    names = [n for n in (err.filename, getattr(err, "filename2", None)) if n]
    if err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        where = f" while writing '{os.fsdecode(names[0])}'" if names else ""
        return (f"the disk is full{where} ({what}).",
                "Free disk space (the workspace is $WORKBENCH_HOME or ~/.trt-workbench) and run it again.", 2)
    if not names:
        return f"a system call failed: {what}.", None, 1
    path = os.fsdecode(names[0])
    hints = {
        errno.EACCES: "Check the permissions of that path, or choose another one.",
        errno.EPERM: "Check the permissions of that path, or choose another one.",
        errno.EROFS: "That file system is read-only; choose another path.",
        errno.ENOENT: "Check the path (its folder must exist).",
        errno.ENOTDIR: "A part of that path is a file, not a folder; choose another path.",
        errno.EEXIST: "A part of that path is a file, not a folder; choose another path.",
        errno.EISDIR: "That path is a folder; give a file name.",
    }
    return f"cannot use '{path}': {what}.", hints.get(err.errno or 0, "Check the path."), 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except WorkbenchError as err:
        _err(f"error: {err.message}" + (f"\n  hint: {err.hint}" if err.hint else ""))
        return err.exit_code
    except OSError as err:  # an unwritable -o / --report path, a full disk, a file that vanished: say which
        message, hint, code = describe_os_error(err)
        _err(f"error: {message}" + (f"\n  hint: {hint}" if hint else ""))
        return code
    except KeyboardInterrupt:
        _err("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
