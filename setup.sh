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
# tests/bundle/test_kotlin_verifier.py compiles the Kotlin verifier shipped in Android bundles and runs it on
# the JVM; Debian's kotlin package (kotlinc 1.3 on the system JDK) is enough. Without kotlinc those tests skip,
# so a machine where it can't be installed is still set up.
if ! command -v kotlinc >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    if ! command -v apt-get >/dev/null 2>&1 || { [ -n "$SUDO" ] && ! command -v sudo >/dev/null 2>&1; }; then
        echo "note: kotlinc not found and apt-get (or sudo) is not available; install a Kotlin compiler to run the Kotlin verifier tests (they skip without one)"
    else
        echo "installing Debian's kotlin package (kotlinc) for the Kotlin verifier tests"
        install_kotlin() { $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends kotlin >/dev/null; }
        # apt-get update only when the install fails: the package lists are usually fresh enough.
        install_kotlin || { $SUDO apt-get update -qq >/dev/null && install_kotlin; } \
            || echo "note: apt-get could not install kotlin; the Kotlin verifier tests will skip"
    fi
fi
echo "deploykit is installed in .venv: run .venv/bin/deploykit --help"
