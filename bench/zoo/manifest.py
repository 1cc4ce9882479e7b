"""The zoo's manifest: `<zoo dir>/manifest.json` maps a model name to its file (relative to the zoo dir), where it
came from, and the optimization-profile shapes for its dynamic inputs (`{input: [min, opt, max]}`, trtexec
syntax `1x3x224x224`) plus data hints (`{input: "ids" | "mask" | "zeros" | "sr16k" | "bytes"}`) that bench/zoo.py
uses to make calibration/comparison data. No dependencies beyond the standard library."""

from __future__ import annotations

import json
import os
from pathlib import Path

# /work/zoo-models on the project's machines; elsewhere bench/zoo/models (gitignored).
DEFAULT_OUT = Path(os.environ.get("ZOO_DIR") or ("/work/zoo-models" if Path("/work").is_dir()
                                                  else Path(__file__).resolve().parent / "models"))


def load_manifest(out: Path) -> dict[str, dict]:
    f = out / "manifest.json"
    return json.loads(f.read_text()) if f.is_file() else {}


def update_manifest(out: Path, name: str, entry: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    manifest = load_manifest(out)
    manifest[name] = entry
    tmp = out / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    tmp.replace(out / "manifest.json")
