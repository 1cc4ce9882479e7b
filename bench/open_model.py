"""Opening a model: the workbench's intake (import by path + summary, what the CLI and the Model page do) against
``polygraphy inspect model`` on the same file, side by side. Prints time and peak RSS per case.

    python bench/open_model.py [--cases resnet50 external-2gib matmul] [--mib 400] [--repeat 3]

Cases (all generated here; nothing is downloaded):

- ``resnet50``: onnx's light ResNet-50 (the real graph: 53 Conv, 53 BatchNorm, ...) with its ConstantOfShape
  placeholders turned back into real float32 initializers: 25.5 M parameters, about 98 MiB in one file.
- ``external-2gib``: a model whose one initializer keeps 2.05 GiB in an external-data file (sparse: no disk
  used). Polygraphy runs with ``--ignore-external-data`` (structure only, as the workbench reads it); without
  it, it would load the 2 GiB.
- ``matmul``: a chain of MatMul+Relu with ``--mib`` MiB of weights in one file (a transformer-sized file).
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
from tests.onnx_models import big_external_model  # noqa: E402

CASES = ("resnet50", "external-2gib", "matmul")


def make_matmul(path: Path, mib: int, layers: int) -> None:
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


def make_resnet50(path: Path) -> None:
    """onnx's light ResNet-50 with real (random) weights in place of its ConstantOfShape placeholders."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    light = Path(onnx.__file__).parent / "backend/test/data/light/light_resnet50.onnx"
    model = onnx.load(str(light))
    g = model.graph
    shapes = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    rng = np.random.default_rng(0)
    weights, keep = [], []
    for node in g.node:
        if node.op_type == "ConstantOfShape" and node.input[0] in shapes:
            shape = tuple(int(d) for d in shapes[node.input[0]])
            w = (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float32)
            weights.append(numpy_helper.from_array(w, node.output[0]))
        else:
            keep.append(node)
    made = {w.name for w in weights}
    used = {i for n in keep for i in n.input}
    inits = [t for t in g.initializer if t.name in used and t.name not in made] + weights
    inputs = [i for i in g.input if i.name not in made and i.name not in shapes]
    del g.node[:], g.initializer[:], g.input[:]
    g.node.extend(keep)
    g.initializer.extend(inits)
    g.input.extend(inputs)
    model.ir_version = max(model.ir_version, 4)  # from IR 4 on initializers need not be graph inputs
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _bytes(path: Path) -> int:
    """The model file and the external data next to it."""
    return sum(p.stat().st_size for p in path.parent.iterdir() if p.is_file())


def run_case(case: str, tmp: Path, args: argparse.Namespace) -> dict[str, object]:
    exe = Path(sys.executable).parent
    folder = tmp / case
    folder.mkdir()
    if case == "resnet50":
        model = folder / "resnet50.onnx"
        make_resnet50(model)
    elif case == "external-2gib":
        model = big_external_model(folder)
    else:
        model = folder / "matmul.onnx"
        make_matmul(model, args.mib, args.layers)
    runs: dict[str, list[dict[str, float]]] = {"workbench": [], "polygraphy": []}
    for i in range(args.repeat):
        env = {**os.environ, "WORKBENCH_HOME": str(tmp / f"ws-{case}-{i}")}  # fresh: nothing cached, nothing stored
        wb = [str(exe / "python"), "-c",
              "import sys; from pathlib import Path; from workbench.service import Workbench; "
              "wb = Workbench.open(); wb.summary(wb.import_path(Path(sys.argv[1])))", str(model)]
        poly = [str(exe / "polygraphy"), "inspect", "model", str(model)]
        if case == "external-2gib":
            poly.append("--ignore-external-data")
        for label, argv in (("polygraphy", poly), ("workbench", wb)):
            r = measure(argv, env, tmp)
            if r["rc"]:
                raise SystemExit(f"{label} failed on {case}: {argv}")
            runs[label].append(r)
    t = {k: statistics.median(r["seconds"] for r in v) for k, v in runs.items()}
    m = {k: max(r["peak_kib"] for r in v) / 1024 for k, v in runs.items()}
    return {"case": case, "mib": round(_bytes(model) / 2**20), "seconds": t, "peak_mib": m}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    ap.add_argument("--mib", type=int, default=400, help="weights of the matmul case")
    ap.add_argument("--layers", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="wb-bench-open-") as tmp_s:
        for case in args.cases:
            rows.append(run_case(case, Path(tmp_s), args))
    for r in rows:
        print(json.dumps(r))
    print("| case | model + external MiB | workbench s | polygraphy s | time × | workbench peak MiB | "
          "polygraphy peak MiB | memory × |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        t, m = r["seconds"], r["peak_mib"]
        assert isinstance(t, dict) and isinstance(m, dict)
        print(f"| {r['case']} | {r['mib']} | {t['workbench']:.2f} | {t['polygraphy']:.2f} | "
              f"{t['workbench'] / t['polygraphy']:.2f} | {m['workbench']:.0f} | {m['polygraphy']:.0f} | "
              f"{m['workbench'] / m['polygraphy']:.2f} |")
    print("(workbench: import by path into a fresh workspace, hashing included, then the summary)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
