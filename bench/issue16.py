"""Issue 16's table, each row against its reference run in the same loop (in turn, medians), as ratios.

Each measurement is a fresh process (wall time and peak RSS from ``/usr/bin/time``). With ``--before DIR`` (a
checkout of the code before the changes, e.g. the main branch) the workbench's rows run from both trees in the
same loop, so before/after ratios are measured on the same machine state (this machine is shared: see the load
average printed first).

    python bench/issue16.py cli [--rounds 7] [--before /work/main]
    python bench/issue16.py compare [--model /work/zoo-models/torch/resnet50.onnx] [--rounds 3] [--before DIR]
    python bench/issue16.py quantize [--samples 16 48] [--before DIR]
    python bench/issue16.py netron [--model ...] [--rounds 5]

``compare``: ``trt-workbench compare --per-layer`` of the model's FP16 simulation, 1 sample, whole process,
against one plain ONNX Runtime run in a process (session creation included) and against
``polygraphy run --onnxrt --onnx-outputs mark all``. ``quantize``: ``trt-workbench quantize`` (entropy) on N
random samples: peak RSS should not grow with N. ``netron``: the published model downloaded from the real app
server as the browser asked for it before (``Accept-Encoding: gzip``, gzipped on the fly) and as the patched
viewer asks for it (``Range: bytes=0-``), against a plain read of the file. The ResNet-50 used here is a
torchvision export with random weights (timing only; the weights' values do not change the costs measured).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
RESNET = Path("/work/zoo-models/torch/resnet50.onnx")


def timed(cmd: list[str], tree: Path = REPO, cwd: Path | None = None) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of ``cmd`` run with ``tree`` first on PYTHONPATH."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    with tempfile.NamedTemporaryFile("r", suffix=".time") as out:
        done = subprocess.run(["/usr/bin/time", "-o", out.name, "-f", "%e %M", *cmd], env=env, cwd=cwd or tree,
                              capture_output=True, text=True)
        wall, rss = out.read().split()[-2:]
    if done.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return float(wall), int(rss) / 1024


def rounds(rows: dict[str, tuple[list[str], Path]], n: int) -> dict[str, tuple[float, float]]:
    seen: dict[str, list[tuple[float, float]]] = {k: [] for k in rows}
    for i in range(n):  # in turn, the order reversed every other round (the first run may read cold files)
        for label, (cmd, tree) in (list(rows.items()) if i % 2 == 0 else list(rows.items())[::-1]):
            seen[label].append(timed(cmd, tree))
    return {k: (statistics.median(w for w, _ in v), max(r for _, r in v)) for k, v in seen.items()}


def report(medians: dict[str, tuple[float, float]], ratios: list[tuple[str, str]]) -> None:
    print(f"load average before: {os.getloadavg()[0]:.1f} (2 CPUs)")
    for label, (wall, rss) in medians.items():
        print(f"  {label:58} {wall:8.2f} s {rss:8.0f} MiB")
    for a, b in ratios:
        print(f"  ratio {a} / {b}: {medians[a][0] / medians[b][0]:.2f}x time, {medians[a][1] / medians[b][1]:.2f}x RSS")


def trees(before: str | None) -> list[tuple[str, Path]]:
    return [("after", REPO)] + ([("before", Path(before))] if before else [])


def cmd_cli(args: argparse.Namespace) -> None:
    rows = {f"trt-workbench --help ({tag})": ([PY, "-m", "workbench.cli", "--help"], tree)
            for tag, tree in trees(args.before)}
    rows["polygraphy convert --help"] = ([str(Path(PY).parent / "polygraphy"), "convert", "--help"], REPO)
    rows["python -c pass"] = ([PY, "-c", "pass"], REPO)
    m = rounds(rows, args.rounds)
    report(m, [(k, "python -c pass") for k in rows if k.startswith("trt")]
           + [(k, "polygraphy convert --help") for k in rows if k.startswith("trt")])
    for k in rows:
        if k.startswith("trt"):
            print(f"  start above the interpreter, {k}: {(m[k][0] - m['python -c pass'][0]) * 1e3:.0f} ms")


_PLAIN = """
import sys, numpy as np, onnxruntime as ort
s = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
feed = {i.name: np.random.default_rng(0).random([d if isinstance(d, int) else 1 for d in i.shape], dtype=np.float32)
        for i in s.get_inputs()}
s.run(None, feed)
"""


def cmd_compare(args: argparse.Namespace) -> None:
    model = Path(args.model)
    with tempfile.TemporaryDirectory(prefix="wb-bench16-") as tmp:
        fp16 = Path(tmp) / f"{model.stem}_fp16.onnx"
        subprocess.run([PY, "-c", "import sys; from pathlib import Path; from workbench.accuracy import simulate_fp16;"
                        "c = simulate_fp16(sys.argv[1], Path(sys.argv[2])); Path(c.path).rename(sys.argv[3])",
                        str(model), tmp, str(fp16)], env={**os.environ, "PYTHONPATH": str(REPO)}, check=True)
        rows = {f"compare --per-layer, 1 sample ({tag})":
                ([PY, "-m", "workbench.cli", "--workspace", str(Path(tmp) / f"ws-{tag}"), "compare", str(model),
                  "--candidate", str(fp16), "--per-layer", "--max-samples", "1", "--batch-size", "1"], tree)
                for tag, tree in trees(args.before)}
        rows["plain ORT run incl. session creation"] = ([PY, "-c", _PLAIN, str(model)], REPO)
        rows["polygraphy run --onnxrt --onnx-outputs mark all"] = (
            [str(Path(PY).parent / "polygraphy"), "run", str(model), "--onnxrt", "--onnx-outputs", "mark", "all"], REPO)
        m = rounds(rows, args.rounds)
    report(m, [(k, r) for k in rows if k.startswith("compare")
               for r in ("plain ORT run incl. session creation", "polygraphy run --onnxrt --onnx-outputs mark all")])


def cmd_quantize(args: argparse.Namespace) -> None:
    import numpy as np
    import onnx

    model = Path(args.model)
    name = onnx.load(str(model), load_external_data=False).graph.input[0].name
    with tempfile.TemporaryDirectory(prefix="wb-bench16-") as tmp:
        rows = {}
        for n in args.samples:
            data = Path(tmp) / f"calib{n}.npz"
            np.savez(data, **{name: np.random.default_rng(0).random((n, 3, 224, 224), dtype=np.float32)})
            for tag, tree in trees(args.before):
                rows[f"quantize entropy, {n} samples ({tag})"] = (
                    [PY, "-m", "workbench.cli", "--workspace", str(Path(tmp) / "ws"), "quantize", str(model),
                     "-o", str(Path(tmp) / f"q-{tag}-{n}.onnx"), "--calib-data", str(data)], tree)
        m = rounds(rows, 1)
    report(m, [])


def cmd_netron(args: argparse.Namespace) -> None:
    import urllib.request

    sys.path.insert(0, str(REPO))
    from tests.browser_support import running_app
    from workbench.netron import publish_model

    model = Path(args.model)

    def get(url: str, headers: dict[str, str]) -> float:
        t0 = time.perf_counter()
        req = urllib.request.Request(url, headers={"Accept-Encoding": "gzip", **headers})
        with urllib.request.urlopen(req, timeout=600) as resp:  # noqa: S310 - our own local server
            while resp.read(1 << 20):
                pass
        return time.perf_counter() - t0

    def plain() -> float:
        t0 = time.perf_counter()
        with open(model, "rb") as f:
            while f.read(1 << 20):
                pass
        return time.perf_counter() - t0

    with tempfile.TemporaryDirectory(prefix="wb-bench16-") as tmp, running_app(Path(tmp)) as app:
        url = app.url + publish_model(app.static_dir, model)
        seen: dict[str, list[float]] = {"gzip on the fly (browser before)": [], "bytes=0- (patched viewer)": [],
                                        "read the file": []}
        for _ in range(args.rounds):
            seen["gzip on the fly (browser before)"].append(get(url, {}))
            seen["bytes=0- (patched viewer)"].append(get(url, {"Range": "bytes=0-"}))
            seen["read the file"].append(plain())
    m = {k: (statistics.median(v), 0.0) for k, v in seen.items()}
    print(f"load average: {os.getloadavg()[0]:.1f}; model {model.stat().st_size / 2**20:.0f} MiB")
    for k, (t, _) in m.items():
        print(f"  {k:40} {t:8.2f} s")
    print(f"  ratio gzip / range: {m['gzip on the fly (browser before)'][0] / m['bytes=0- (patched viewer)'][0]:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    for name, func in (("cli", cmd_cli), ("compare", cmd_compare), ("quantize", cmd_quantize),
                       ("netron", cmd_netron)):
        p = sub.add_parser(name)
        p.add_argument("--before", help="a checkout of the code before the changes (same loop)")
        p.add_argument("--model", default=str(RESNET))
        p.add_argument("--rounds", type=int, default=3 if name != "cli" else 7)
        p.add_argument("--samples", type=int, nargs="+", default=[16, 48])
        p.set_defaults(func=func)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
