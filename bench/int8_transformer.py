"""INT8 on a trained transformer, round by round: the culprit loop on a sentence-embedding model.

    python bench/int8_transformer.py [--model-dir /work/zoo-models/minilm] [--calibrator minmax]
                                     [--rounds 3] [--trials 6] [--output sentence_embedding] [--json out.json]

Needs the zoo's all-MiniLM-L6-v2 export (``model.onnx`` with dynamic batch and sequence, ``calib.npz`` of 128 real
English sentences, ``heldout.npz`` of 256 others); nothing is downloaded and nothing here is committed. Prints:
the FP32 reference; INT8 as ONNX Runtime quantizes it without any exclusion (the issue's starting point); the loop's
round 0 (transformer defaults), every measured proposal of every round, the verdict; and, when INT8 is not
advisable, FP16 / BF16 / FP8 / ONNX Runtime dynamic INT8 measured on the same held-out sentences. The metric is
the mean cosine of the model's embeddings to FP32's (mean-pooled over the real tokens for ``last_hidden_state``),
with the nearest-neighbour agreement over the 256 held-out sentences beside it.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


class _Log:
    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def log(self, message: str, level: int = logging.INFO) -> None:
        if level >= logging.WARNING or message.startswith(("Round", "Kept in float by default", "FP16", "BF16",
                                                               "FP8", "INT8", "The ", "Symbolic")):
            sys.stderr.write(f"[{time.monotonic() - self.t0:7.1f} s] {message[:400]}\n")

    def progress(self, fraction: float, phase: str) -> None:
        pass

    def cancelled(self) -> bool:
        return False


def smoothquant(model: Path, calib, heldout, out: Path, alpha: float) -> dict:
    """ONNX Runtime's SmoothQuant (``extra_options={"SmoothQuant": True}``), which imports
    ``neural_compressor.adaptor.ox_utils.smooth_quant``: neural-compressor 2.x (3.x dropped its ONNX adaptor),
    which pins numpy<2 and cannot join the project's environment (numpy 2.x). Measured only when that module is
    importable (e.g. a ``pip install --no-deps --target DIR neural-compressor==2.6`` plus its imports on
    PYTHONPATH). Same settings as the workbench's INT8 (symmetric, per-channel, float biases), GEMMs only."""
    import importlib

    import numpy as np
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from workbench.accuracy.task_score import score
    from workbench.quantize import run_model

    try:
        importlib.import_module("neural_compressor.adaptor.ox_utils.smooth_quant")
    except Exception as err:  # what a user without neural-compressor 2.x sees
        return {"smoothquant": None, "why": f"neural-compressor 2.x is not importable: {err}"}

    class Reader:
        def __init__(self) -> None:
            n = calib.n_samples
            self.batches = [{k: np.ascontiguousarray(v[i:i + 16]) for k, v in calib.arrays.items()}
                            for i in range(0, n - n % 16, 16)]
            self.i = 0

        def get_next(self):
            self.i += 1
            return self.batches[self.i - 1] if self.i <= len(self.batches) else None

        def rewind(self) -> None:
            self.i = 0

        def __iter__(self):
            return iter(self.batches)

    out.mkdir(parents=True, exist_ok=True)
    path = out / f"smoothquant_{alpha}.onnx"
    quantize_static(str(model), str(path), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"],
                    calibrate_method=CalibrationMethod.MinMax,
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False,
                                   "SmoothQuant": True, "SmoothQuantAlpha": alpha})
    ref, cand = run_model(model, heldout, batch_size=32), run_model(path, heldout, batch_size=32)
    s = score(ref, cand, heldout.arrays)
    return {"smoothquant": s.value, "alpha": alpha, "neighbour_agreement": s.neighbour_agreement, "model": str(path)}


def alternatives_only(model: Path, calib, heldout, out: Path, calibrator: str) -> dict:
    """INT8 as ONNX Runtime quantizes it (no exclusion), INT8 with the transformer defaults (round 0), then the
    verdict's other precisions, all on the same held-out sentences."""
    from dataclasses import replace

    from workbench.accuracy.data import labels_for
    from workbench.accuracy.loop import ROUND0, _alternatives, _Context, _quantize
    from workbench.progress import NullReporter
    from workbench.quantize import QuantizeSpec, run_model
    from workbench.quantize_defaults import float_groups

    log = _Log()
    reference = run_model(model, heldout, batch_size=32)
    ctx = _Context(model, heldout, labels_for(heldout, heldout.n_samples), reference, None, None, log)
    spec = QuantizeSpec(calibrator=calibrator)
    _, plain = _quantize(ctx, spec, out / "plain", calib, None, NullReporter())
    log.log(f"INT8 without defaults: {plain.text()}")
    spec0 = replace(spec, exclude_nodes=float_groups(model).nodes)
    _, base = _quantize(ctx, spec0, out / ROUND0, calib, None, NullReporter())
    log.log(f"INT8 with the transformer defaults: {base.text()}")
    alts = _alternatives(ctx, spec0, calib, out / "alternatives", log, base=out / ROUND0 / "model_qdq.onnx")
    return {"int8_plain": plain.to_dict(), "int8_defaults": base.to_dict(),
            "alternatives": [a.__dict__ for a in alts]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", default="/work/zoo-models/minilm")
    ap.add_argument("--calibrator", default="minmax")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--trials", type=int, default=6)
    ap.add_argument("--output", default=None, help="model output to score (default: the loop's choice)")
    ap.add_argument("--no-alternatives", action="store_true")
    ap.add_argument("--keep", metavar="DIR", help="keep the loop's folder (Q/DQ models of every round) here")
    ap.add_argument("--json", metavar="OUT.json")
    ap.add_argument("--no-calibrators", action="store_true", help="do not measure the other calibrators in round 0")
    ap.add_argument("--no-contrast", action="store_true", help="do not measure round 0 without the defaults")
    ap.add_argument("--alternatives-only", action="store_true",
                    help="only INT8 without and with the defaults, then FP16/BF16/FP8/weight-only/dynamic INT8 "
                    "(run beside a loop with --no-alternatives)")
    ap.add_argument("--smoothquant", type=float, metavar="ALPHA",
                    help="only measure ONNX Runtime's SmoothQuant INT8 (GEMMs only) with this alpha")
    args = ap.parse_args()

    from workbench.accuracy.loop import culprit_loop
    from workbench.accuracy.loop_job import LoopRequest, load_inputs
    from workbench.quantize import QuantizeSpec

    folder = Path(args.model_dir)
    model = folder / "model.onnx"
    req = LoopRequest(calib_path=str(folder / "calib.npz"), heldout_path=str(folder / "heldout.npz"),
                      calibrator=args.calibrator, max_rounds=args.rounds, max_trials=args.trials)
    calib, heldout = load_inputs(model, req)
    out = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="int8-transformer-"))
    if args.smoothquant is not None:
        doc = smoothquant(model, calib, heldout, out, args.smoothquant)
        print(json.dumps(doc, indent=1))
        if args.json:
            Path(args.json).write_text(json.dumps(doc, indent=1))
        return 0
    t0 = time.monotonic()
    if args.alternatives_only:
        doc = alternatives_only(model, calib, heldout, out, args.calibrator)
        doc["wall_s"] = time.monotonic() - t0
        print(json.dumps(doc, indent=1))
        if args.json:
            Path(args.json).write_text(json.dumps(doc, indent=1))
        return 0
    result = culprit_loop(model, calib, heldout, QuantizeSpec(calibrator=args.calibrator), out,
                          max_rounds=args.rounds, max_trials=args.trials, output=args.output,
                          alternatives=not args.no_alternatives, try_calibrators=not args.no_calibrators,
                          contrast=not args.no_contrast, reporter=_Log())
    wall = time.monotonic() - t0
    print(f"model: {model} ({heldout.n_samples} held-out sentences, {calib.n_samples} calibration sentences)")
    print(f"metric: {result.metric} of '{result.output}' to FP32 (target {result.target:g})")
    print("\n".join(result.round_lines()))
    print()
    print(result.verdict)
    for a in result.alternatives:
        print(f"  {a.precision}: {'not measured' if a.value is None else f'{a.value:.5f}'}  {a.note}")
    for note in result.notes:
        print(f"note: {note}")
    print(f"wall time: {wall:.0f} s; artifacts in {out}")
    if args.json:
        Path(args.json).write_text(json.dumps({**result.to_dict(), "wall_s": wall}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
