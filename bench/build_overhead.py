"""Build cost of the workbench against the reference tool, side by side.

For each bundled sample, and for ResNet-50 and DenseNet-121 (the ``onnx`` package's "light" copies: the real graphs,
weights as ConstantOfShape placeholders, so the builder does the work of the real networks), builds the same engine twice: with
``trt-workbench build`` (model intake, job + worker process, layer report, bundle) and with the ``polygraphy
convert`` line the workbench itself emits (commands.sh). Prints wall time and peak RSS of each, the ratio
workbench / polygraphy, and whether it meets the target (time ratio <= 1.03). No GPU needed (TensorRT-RTX).

    python bench/build_overhead.py [--repeat 3] [--samples cnn_residual transformer_block] [--models a.onnx]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

_MEASURE = (
    "import resource, subprocess, sys, time, json\n"
    "t = time.perf_counter(); rc = subprocess.run(json.loads(sys.argv[1]), env=json.loads(sys.argv[2]), "
    "cwd=sys.argv[3], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode\n"
    "dt = time.perf_counter() - t\n"
    "print(json.dumps({'rc': rc, 'seconds': dt, 'peak_kib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))\n"
)


def measure(argv: list[str], env: dict[str, str], cwd: Path) -> dict[str, float]:
    """Wall time and peak RSS (largest child process) of one command, in a fresh wrapper process."""
    out = subprocess.run([sys.executable, "-c", _MEASURE, json.dumps(argv), json.dumps(env), str(cwd)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


TARGET = 1.03  # workbench time / polygraphy time


LIGHT_MODELS = ("light_resnet50", "light_densenet121")  # builds of about 3 s and 15 s here


def light_model(name: str) -> Path | None:
    """One of the onnx package's "light" zoo graphs (they ship with onnx; nothing is downloaded)."""
    import onnx

    path = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light" / f"{name}.onnx"
    return path if path.is_file() else None


def main() -> int:
    from workbench.samples import get_sample
    from workbench.spec import BuildSpec, Profile, polygraphy_command

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--samples", nargs="*", default=["cnn_residual", "dynamic_2axis", "transformer_block"])
    ap.add_argument("--models", nargs="*", type=Path, default=None,
                    help="static-shape ONNX files to build too (default: the onnx package's ResNet-50 and DenseNet-121)")
    args = ap.parse_args()
    exe_dir = Path(sys.executable).parent
    jobs: list[tuple[str, Path, tuple[Profile, ...]]] = []
    for name in args.samples:
        sample = get_sample(name)
        jobs.append((name, sample.path, sample.profiles()[:1]))
    models = args.models if args.models is not None else [p for p in map(light_model, LIGHT_MODELS) if p]
    jobs += [(m.stem, m, ()) for m in models]
    rows = []
    for name, model_path, profiles in jobs:
        spec = BuildSpec(profiles=profiles)
        with tempfile.TemporaryDirectory(prefix="wb-bench-") as tmp_s:
            tmp = Path(tmp_s)
            env = {**os.environ, "WORKBENCH_HOME": str(tmp / "ws")}
            (tmp / model_path.name).write_bytes(model_path.read_bytes())
            from workbench.spec import NO_TF32_SCRIPT, NO_TF32_SOURCE

            (tmp / NO_TF32_SCRIPT).write_text(NO_TF32_SOURCE)
            words = shlex.split(polygraphy_command(spec, model_path.name, "ref.plan"))
            poly_env = dict(env)
            while "=" in words[0]:
                k, v = words.pop(0).split("=", 1)
                poly_env[k] = v
            poly = [str(exe_dir / words[0]), *words[1:]]
            shapes: list[str] = []
            for prof in spec.profiles:
                for which in ("min", "opt", "max"):
                    shapes += [f"--{which}-shapes",
                               ",".join(f"{n}:{'x'.join(map(str, getattr(r, which)))}" for n, r in prof.shapes.items())]
            wb = [str(exe_dir / "trt-workbench"), "build", model_path.name, "-o", "wb.plan", "--report", "wb.json",
                  *shapes]
            results: dict[str, list[dict[str, float]]] = {"workbench": [], "polygraphy": []}
            for _ in range(args.repeat):
                for label, argv, e in (("polygraphy", poly, poly_env), ("workbench", wb, env)):
                    r = measure(argv, e, tmp)
                    if r["rc"] != 0:
                        print(f"{name}: {label} failed (exit {r['rc']}): {' '.join(argv)}", file=sys.stderr)
                        return 1
                    if label == "workbench":  # its build worker is no child the wrapper waits for: it reports
                        worker = json.loads((tmp / "wb.json").read_text())["result"]["peak_rss_mib"] * 1024
                        r["peak_kib"] = max(r["peak_kib"], worker)
                    results[label].append(r)
            med = {k: statistics.median(r["seconds"] for r in v) for k, v in results.items()}
            peak = {k: max(r["peak_kib"] for r in v) / 1024 for k, v in results.items()}
            rows.append((name, med["workbench"], med["polygraphy"], med["workbench"] / med["polygraphy"],
                         peak["workbench"], peak["polygraphy"], peak["workbench"] / peak["polygraphy"]))
    print(f"{'model':<20}{'wb s':>8}{'poly s':>8}{'time x':>8}{'wb MiB':>9}{'poly MiB':>9}{'mem x':>7}  target")
    for r in rows:
        verdict = "meets" if r[3] <= TARGET else "misses"
        print(f"{r[0]:<20}{r[1]:>8.2f}{r[2]:>8.2f}{r[3]:>8.2f}{r[4]:>9.0f}{r[5]:>9.0f}{r[6]:>7.2f}  "
              f"{verdict} <= {TARGET}")
    print(f"(median of {args.repeat} runs; peak = largest process RSS, for the workbench the larger of the CLI and "
          "its build worker; workbench includes model intake, its job worker, layer report and bundle)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
