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
# ExecuTorch (--to executorch) declares no torch pin, so it is installed without its dependencies: pip must not
# move torch. What its export and runtime import besides the stack above is ruamel.yaml (coremltools imports
# executorch.exir once executorch is installed, so without ruamel.yaml Core ML conversion fails too).
.venv/bin/python -m pip install --quiet --no-deps -c constraints.txt "executorch==1.5.1" "ruamel.yaml==0.19.1"
.venv/bin/python - <<'PY'
import torch
assert torch.__version__ == "2.13.0+cpu", f"torch moved off the pinned CPU build: {torch.__version__}"
PY
# System packages some tests need, from Debian's archive (without them those tests skip, so a machine where
# they can't be installed is still set up):
#   kotlin   - tests/bundle/test_kotlin_verifier.py compiles the Kotlin verifier shipped in Android bundles and
#              runs it on the JVM (kotlinc 1.3 on the system JDK is enough);
#   chromium - tests/report/ open report.html in headless Chromium, screenshot it and check every plot rendered.
install_system_package() {  # $1: command that the package provides, $2: Debian package name
    command -v "$1" >/dev/null 2>&1 && return 0
    local package="$2" sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    if ! command -v apt-get >/dev/null 2>&1 || { [ -n "$sudo" ] && ! command -v sudo >/dev/null 2>&1; }; then
        echo "note: $1 not found and apt-get (or sudo) is not available; install Debian's $2 package to run the tests that need it (they skip without it)"
        return 0
    fi
    echo "installing Debian's $2 package ($1) for the tests that need it"
    install_it() { $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$package" >/dev/null; }
    # apt-get update only when the install fails: the package lists are usually fresh enough.
    install_it || { $sudo apt-get update -qq >/dev/null && install_it; } \
        || echo "note: apt-get could not install $2; the tests that need $1 will skip"
}
install_system_package kotlinc kotlin
install_system_package chromium chromium
echo "deploykit is installed in .venv: run .venv/bin/deploykit --help"
