#!/usr/bin/env bash
# One command for a fresh machine: a virtual environment in .venv with the tested stack (constraints.txt).
# torch is installed first, pinned to the CPU build, so no other package can pull a CUDA build
# (a CUDA torch plus triton segfaults on import on CPU-only machines).
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), f"deploykit needs Python 3.11, found {sys.version.split()[0]}"'
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade "pip>=24" wheel
.venv/bin/python -m pip install --quiet -c constraints.txt "torch==2.13.0+cpu"
.venv/bin/python -m pip install --quiet -c constraints.txt -e ".[test]"
.venv/bin/python - <<'PY'
import torch
assert torch.__version__ == "2.13.0+cpu", f"torch moved off the pinned CPU build: {torch.__version__}"
PY
echo "deploykit is installed in .venv: run .venv/bin/deploykit --help"
