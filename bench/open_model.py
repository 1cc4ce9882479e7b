"""Opening a large model: the workbench's intake (import + summary, what the Model page does) against
``polygraphy inspect model`` on the same file, side by side. Prints time and peak RSS ratios.

    python bench/open_model.py [--mib 400] [--layers 64]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from bench.build_overhead import measure  # noqa: E402


def make_model(path: Path, mib: int, layers: int) -> None:
    """A chain of MatMul+Relu whose weights add up to about ``mib`` MiB (a transformer-sized file)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    width = int(((mib << 20) / 4 / layers) ** 0.5)
    rng = np.random.default_rng(0)
    nodes, inits, prev = [], [], "x"
    for i in range(layers):
        inits.append(numpy_helper.from_array(rng.standard_normal((width, width), dtype=np.float32), f"w{i}"))
        nodes += [helper.make_node("MatMul", [prev, f"w{i}"], [f"m{i}"], name=f"fc{i}"),
                  helper.make_node("Relu", [f"m{i}"], [f"r{i}"], name=f"relu{i}")]
        prev = f"r{i}"
    graph = helper.make_graph(nodes, "big", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", width])],
                              [helper.make_tensor_value_info(prev, TensorProto.FLOAT, ["batch", width])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=int, default=400)
    ap.add_argument("--layers", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    exe = Path(sys.executable).parent
    with tempfile.TemporaryDirectory(prefix="wb-bench-open-") as tmp_s:
        tmp = Path(tmp_s)
        model = tmp / "big.onnx"
        make_model(model, args.mib, args.layers)
        size = model.stat().st_size / 2**20
        runs: dict[str, list[dict[str, float]]] = {"workbench": [], "polygraphy": []}
        for i in range(args.repeat):
            env = {**os.environ, "WORKBENCH_HOME": str(tmp / f"ws{i}")}  # a fresh workspace: no cached summary
            wb = [str(exe / "python"), "-c",
                  "import sys; from pathlib import Path; from workbench.service import Workbench; "
                  "wb = Workbench.open(); wb.summary(wb.import_path(Path(sys.argv[1])))", str(model)]
            poly = [str(exe / "polygraphy"), "inspect", "model", str(model)]
            for label, argv in (("polygraphy", poly), ("workbench", wb)):
                r = measure(argv, env, tmp)
                if r["rc"]:
                    print(f"{label} failed: {argv}", file=sys.stderr)
                    return 1
                runs[label].append(r)
        t = {k: statistics.median(r["seconds"] for r in v) for k, v in runs.items()}
        m = {k: max(r["peak_kib"] for r in v) / 1024 for k, v in runs.items()}
    print(json.dumps({"model_mib": round(size), "seconds": t, "peak_mib": m}, indent=None))
    print(f"open {size:.0f} MiB model: workbench {t['workbench']:.2f} s / polygraphy {t['polygraphy']:.2f} s = "
          f"{t['workbench'] / t['polygraphy']:.2f}x time; peak {m['workbench']:.0f} / {m['polygraphy']:.0f} MiB = "
          f"{m['workbench'] / m['polygraphy']:.2f}x memory (workbench includes copying the file into its workspace)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
