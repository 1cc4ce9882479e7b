"""Score sentence-embedding candidates against MiniLM's FP32 reference on the 256 held-out sentences.

    python bench/zoo/score_minilm.py CANDIDATE.onnx [...] [--dir /work/zoo-models/minilm]

Prints, per candidate (an FP16 / Q/DQ ONNX model run in ONNX Runtime): mean and min cosine of its
`sentence_embedding` to heldout_fp32_embeddings.npy, and nearest-neighbour agreement (the share of sentences
whose most similar other held-out sentence is the same as under FP32). Needs numpy + onnxruntime only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def score(candidate: Path, folder: Path) -> dict[str, float]:
    import onnxruntime as ort

    held = dict(np.load(folder / "heldout.npz"))
    ref = np.load(folder / "heldout_fp32_embeddings.npy")
    sess = ort.InferenceSession(str(candidate), providers=["CPUExecutionProvider"])
    emb = np.concatenate([sess.run(["sentence_embedding"], {k: v[i:i + 32] for k, v in held.items()})[0]
                          for i in range(0, len(ref), 32)])

    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    cos = (unit(emb) * unit(ref)).sum(1)
    sim_ref, sim_emb = unit(ref) @ unit(ref).T, unit(emb) @ unit(emb).T
    np.fill_diagonal(sim_ref, -2)
    np.fill_diagonal(sim_emb, -2)
    return {"mean_cosine": float(cos.mean()), "min_cosine": float(cos.min()),
            "nn_agreement": float((sim_ref.argmax(1) == sim_emb.argmax(1)).mean())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("candidates", nargs="+", type=Path)
    ap.add_argument("--dir", type=Path, default=Path("/work/zoo-models/minilm"))
    a = ap.parse_args(argv)
    for c in a.candidates:
        s = score(c, a.dir)
        print(f"{c}: mean cosine {s['mean_cosine']:.4f}, min {s['min_cosine']:.4f}, "
              f"NN agreement {s['nn_agreement']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
