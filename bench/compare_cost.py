"""What a per-layer comparison costs, against one plain ONNX Runtime inference, on the largest bundled sample.

The candidate is the sample's FP16 simulation (the build's own converter); the data are one batch of the
sample's suggested (opt) shape, or its labelled test data when it has some. Times are the best of ``--repeat``
runs in this process (sessions are created inside each comparison, as a user's comparison does), as wall time
and as this process's CPU time (steadier on a busy machine). Prints each measurement and the ratio per-layer
comparison / plain inference. No GPU needed.

    python bench/compare_cost.py [--repeat 3] [--sample transformer_block]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _best(fn, repeat: int) -> tuple[float, float]:
    """(best wall time, best CPU time) of ``repeat`` calls."""
    wall = cpu = float("inf")
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall, cpu = min(wall, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
    return wall, cpu


def main(argv: list[str] | None = None) -> int:
    from workbench.accuracy import CompareSpec, compare, load_data, simulate_fp16
    from workbench.accuracy.data import feeds
    from workbench.accuracy.runners import plain_inference_seconds
    from workbench.samples import get_sample, list_samples

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sample", help="a sample name (default: the largest model file)")
    args = parser.parse_args(argv)

    sample = (
        get_sample(args.sample) if args.sample else max(list_samples(), key=lambda s: s.path.stat().st_size)
    )
    model = sample.path
    opt = sample.suggested_profiles[0]["opt"] if sample.suggested_profiles else {}
    batch = next(iter(opt.values()))[0] if opt else 8
    shapes = {name: list(shape[1:]) for name, shape in opt.items()}
    data = load_data(model, sample.test_data, shapes=shapes or None, n_random=batch)
    (feed,), n, _ = feeds(data, model, batch, batch)

    with tempfile.TemporaryDirectory(prefix="wb-bench-") as tmp:
        cand = simulate_fp16(model, Path(tmp))
        one = CompareSpec(max_samples=n, batch_size=n)
        plain = _best(lambda: plain_inference_seconds(model, feed, repeat=1), 1)  # warm up ONNX Runtime
        plain = (plain_inference_seconds(model, feed, repeat=max(args.repeat, 5)), _plain_cpu(model, feed))
        outputs_only = _best(lambda: compare(model, cand, data, one.with_(per_layer=False)), args.repeat)
        per_layer = _best(lambda: compare(model, cand, data, one), args.repeat)
        result = compare(model, cand, data, one)
        with_artifacts = _best(
            lambda: compare(model, cand, data, one, out_dir=Path(tmp) / "out"), args.repeat
        )

    shape = ", ".join(f"{k} {list(v.shape)}" for k, v in feed.items())
    print(
        f"sample: {sample.name} ({model.stat().st_size / 1024:.0f} KiB, {len(result.tensors)} tensors compared), "
        f"one batch: {shape}"
    )
    print(f"  {'':52} {'wall ms':>10} {'CPU ms':>10}")
    for label, (wall, cpu) in (
        ("plain ONNX Runtime inference (FP32, outputs only)", plain),
        ("comparison, model outputs only", outputs_only),
        ("comparison, per layer", per_layer),
        ("comparison, per layer + saved artifacts + HTML", with_artifacts),
    ):
        print(f"  {label:52} {wall * 1e3:10.2f} {cpu * 1e3:10.2f}")
    print(
        f"ratio per-layer comparison / plain inference: {per_layer[0] / plain[0]:.0f}x wall, "
        f"{per_layer[1] / plain[1]:.0f}x CPU (with artifacts: {with_artifacts[0] / plain[0]:.0f}x wall)"
    )
    return 0


def _plain_cpu(model: Path, feed: dict) -> float:
    """CPU time of one plain inference (best of 5, session already built)."""
    from workbench.accuracy.runners import ort_runner, quiet_polygraphy

    with tempfile.TemporaryDirectory() as tmp:
        runner = ort_runner(model, None, "plain", Path(tmp))
        with quiet_polygraphy(), runner:
            runner.infer(feed)
            best = float("inf")
            for _ in range(5):
                c0 = time.process_time()
                runner.infer(feed)
                best = min(best, time.process_time() - c0)
    return best


if __name__ == "__main__":
    sys.exit(main())
