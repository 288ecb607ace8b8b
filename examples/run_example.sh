#!/usr/bin/env bash
# The main job on the included example: build a small trained Keras classifier, then convert it to
# TFLite and Core ML into dist/ with its record (dist/deploykit-report.json).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f examples/models/digits.keras ] || .venv/bin/python examples/make_example_model.py examples/models
.venv/bin/deploykit convert examples/models/digits.keras --to tflite,coreml --out dist/
