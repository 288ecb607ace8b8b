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
# OpenSSF model signing (`bundle --model-signing-key`, docs/bundles.md "Two signatures") is installed without its
# dependencies too: model-signing 1.1.1 needs sigstore 4.x, which needs sigstore-models 0.0.6, which declares
# pydantic>=2.12 and typing-extensions>=4.14.1, and the stack holds pydantic 2.11.10 and typing-extensions 4.12.2
# (litert-converter pins xdsl 0.28.0, which needs typing-extensions<4.13): pip finds no solution. The list is what
# `import model_signing` imports (its __init__ loads every signer, the Sigstore one included), pyOpenSSL among them
# although model-signing does not declare it; sigstore-models runs on pydantic 2.11 (the settings it uses came in
# 2.11) and tests/bundle/test_model_signing.py signs and verifies with it. Left out: asn1crypto (PKCS#11 signing
# only) and email-validator (sigstore's keyless signing only).
.venv/bin/python -m pip install --quiet --no-deps -c constraints.txt "model-signing==1.1.1" "sigstore==4.5.1" \
    "sigstore-models==0.0.6" "sigstore-rekor-types==0.0.18" "in-toto-attestation==0.9.3" "blake3==1.0.11" \
    "pyOpenSSL==26.4.0" "tuf==7.0.1" "securesystemslib==1.6.0" "rfc8785==0.1.4" "rfc3161-client==1.0.9" "id==1.6.1" \
    "PyJWT==2.15.1" "platformdirs==4.14.9"
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
install_system_package cmake cmake  # configures ncnn's sources for its headers (below)
# ncnn's C++ headers, for tests/bundle/test_ncnn_templates.py: it compiles the C++ and JNI code of NCNN bundles with
# `g++ -fsyntax-only` against them (and the system JDK's jni.h). No wheel ships them and Debian has no ncnn package,
# so they come from the ncnn sdist on PyPI, the version constraints.txt pins: pip downloads it (by its file URL and
# sha256: the sdist computes its version from the build date, so `pip download ncnn==...` fails on any other day),
# then CMake configures it twice, as ncnn-android-vulkan / ncnn-apple-vulkan are built (NCNN_VULKAN with ncnn's
# own simplevk loader, no Vulkan SDK needed) and CPU-only, to generate platform.h and the other headers CMake writes.
# Result: .venv/share/ncnn-include/{vulkan,cpu}/ncnn/*.h (a build input, never committed). Needs cmake and g++;
# without them, or offline, the test skips.
NCNN_SDIST="https://files.pythonhosted.org/packages/b7/50/32b5172afe7d3e0dce410b7d8f4a5b7b84b942a0d69affbaedf669de52bc/ncnn-1.0.20261020.tar.gz#sha256=ad8cdd63e9755cfa8e23b9b6d9ce46156077d80298a89e7c3ba325ffccfca200"
install_ncnn_headers() {
    local dest=.venv/share/ncnn-include version tmp flavour vulkan
    [ -f "$dest/vulkan/ncnn/net.h" ] && [ -f "$dest/cpu/ncnn/net.h" ] && return 0
    if ! command -v cmake >/dev/null 2>&1 || ! command -v g++ >/dev/null 2>&1; then
        echo "note: cmake or g++ not found; the NCNN template compile test will skip"
        return 0
    fi
    version=$(sed -n 's/^ncnn==\(.*\)$/\1/p' constraints.txt)
    case "$NCNN_SDIST" in *"ncnn-$version.tar.gz"*) ;; *) echo "note: NCNN_SDIST in setup.sh is not ncnn $version"; return 0 ;; esac
    tmp=$(mktemp -d)
    if ! .venv/bin/python -m pip download --quiet --no-deps --no-binary :all: "ncnn @ $NCNN_SDIST" -d "$tmp" >/dev/null 2>&1; then
        echo "note: could not download the ncnn $version sdist; the NCNN template compile test will skip"
        rm -rf "$tmp"
        return 0
    fi
    tar -xzf "$tmp/ncnn-$version.tar.gz" -C "$tmp"
    for flavour in vulkan cpu; do
        if [ "$flavour" = vulkan ]; then vulkan=ON; else vulkan=OFF; fi
        cmake -S "$tmp/ncnn-$version" -B "$tmp/build-$flavour" -DNCNN_VERSION="${version##*.}" -DNCNN_VULKAN=$vulkan \
            -DNCNN_SIMPLEVK=ON -DNCNN_BUILD_TOOLS=OFF -DNCNN_BUILD_EXAMPLES=OFF -DNCNN_BUILD_BENCHMARK=OFF \
            -DNCNN_BUILD_TESTS=OFF -DNCNN_PYTHON=OFF >/dev/null 2>&1 || { echo "note: cmake could not configure ncnn"; rm -rf "$tmp"; return 0; }
        mkdir -p "$dest/$flavour/ncnn"
        cp "$tmp/ncnn-$version"/src/*.h "$tmp/build-$flavour"/src/{platform,ncnn_export,layer_type_enum,layer_shader_type_enum}.h \
            "$dest/$flavour/ncnn/"
    done
    cp "$tmp/ncnn-$version/LICENSE.txt" "$dest/"
    rm -rf "$tmp"
    echo "ncnn $version headers in $dest"
}
install_ncnn_headers
# LiteRT's GPU-delegate compatibility check: the model analyzer of ai-edge-litert 2.3.0 (and TensorFlow 2.21) checks
# no op for the GPU delegate, so deploykit's compatibility report asks TensorFlow 2.16.2's, the last one found that
# does (deploykit.formats.tflite.analyzer). Only its analyzer module is kept (2.6 MB, out of a 214 MB wheel that pip
# downloads here once and deletes); without it the report's GPU entry says "not checked".
install_gpu_analyzer() {
    local dest=.venv/share/litert-gpu-analyzer/tf-2.16.2 tmp
    [ -f "$dest/_pywrap_analyzer_wrapper.so" ] && return 0
    tmp=$(mktemp -d)
    if ! .venv/bin/python -m pip download --quiet --no-deps --only-binary=:all: "tensorflow-cpu==2.16.2" -d "$tmp" >/dev/null 2>&1; then
        echo "note: could not download tensorflow-cpu 2.16.2; the compatibility report's GPU entry will say 'not checked'"
        rm -rf "$tmp"; return 0
    fi
    mkdir -p "$dest"
    .venv/bin/python - "$tmp" "$dest" <<'PY'
import pathlib, sys, zipfile
wheel = next(pathlib.Path(sys.argv[1]).glob("tensorflow_cpu-2.16.2-*.whl"))
with zipfile.ZipFile(wheel) as archive:
    data = archive.read("tensorflow/lite/python/analyzer_wrapper/_pywrap_analyzer_wrapper.so")
(pathlib.Path(sys.argv[2]) / "_pywrap_analyzer_wrapper.so").write_bytes(data)
PY
    rm -rf "$tmp"
    echo "LiteRT GPU analyzer (TensorFlow 2.16.2) in $dest"
}
install_gpu_analyzer
echo "deploykit is installed in .venv: run .venv/bin/deploykit --help"
