#!/usr/bin/env bash
# Make the zoo's own environment (torch, torchvision, transformers): used only to export the zoo and the CI
# fixtures, never by the workbench at run time.
#   bash bench/zoo/setup.sh [VENV]        # default /work/zoo-venv (or $ZOO_VENV)
# On x86_64 with Python 3.11, pip takes torch 2.14.1 / torchvision 0.29.1 from this machine's disk (a cap in
# /etc/xdg/pip keeps it there; leave it in place). On aarch64 use torch 2.9.1 / torchvision 0.24.1.
set -euo pipefail
VENV="${1:-${ZOO_VENV:-/work/zoo-venv}}"
case "$(uname -m)" in
  aarch64|arm64) TORCH="torch==2.9.1 torchvision==0.24.1" ;;
  *)             TORCH="torch==2.14.1 torchvision==0.29.1" ;;
esac
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q $TORCH transformers onnx onnxruntime onnxscript onnxconverter-common
"$VENV/bin/python" - <<'PY'
import torch, torchvision, transformers, onnx, onnxruntime
print("zoo env ok: torch", torch.__version__, "torchvision", torchvision.__version__,
      "transformers", transformers.__version__, "onnx", onnx.__version__, "onnxruntime", onnxruntime.__version__)
PY
