#!/usr/bin/env bash
# The main job on the included example, end to end:
#   1. build a small Keras digits classifier (trained on scikit-learn's bundled digits: nothing is downloaded)
#   2. convert it to TFLite and Core ML in dist/, app-ready: the image input takes pixels (Core ML image,
#      TFLite uint8), the labels make the Core ML artifact a classifier; checked numerically against Keras
#   3. predict on held-out digit pictures: the reference an app's preprocessing must match
#   4. sign and bundle both artifacts for apps, publish them to a static repository, pull and verify
set -euo pipefail
cd "$(dirname "$0")/.."
DK=.venv/bin/deploykit
[ -d examples/models/pictures ] || .venv/bin/python examples/make_example_model.py examples/models
$DK convert examples/models/digits.keras --to tflite,coreml --out dist/ \
    --image-input image --pixel-range 0-1 --labels examples/models/labels.txt --data examples/models/pictures
$DK predict dist/digits.fp32.tflite examples/models/pictures --top-k 2
[ -f dist/keys/deploykit.key ] || $DK keygen --out dist/keys
$DK bundle dist/digits.fp32.tflite dist/digits.fp32.mlpackage --name com.example.digits --version 1.0.0 \
    --sign-key dist/keys/deploykit.key --out dist/bundles
$DK predict dist/bundles/com.example.digits-1.0.0-ios-fp32.zip examples/models/pictures --top-k 1 \
    --trusted-key dist/keys/deploykit.pub
$DK verify-bundle dist/bundles/com.example.digits-1.0.0-android-fp32.zip --trusted-key dist/keys/deploykit.pub
$DK publish dist/bundles/*.zip --repo dist/repo --channel stable --sign-key dist/keys/deploykit.key
$DK pull --repo dist/repo --channel stable --name com.example.digits --platform android \
    --trusted-key dist/keys/deploykit.pub --dest dist/installed
echo "done: artifacts and deploykit-report.json in dist/, signed bundles in dist/bundles, installed model in dist/installed"
