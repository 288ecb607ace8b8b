#!/usr/bin/env bash
# The main job on the included example, end to end, as one reviewed build (examples/deploykit.toml):
#   1. make a small Keras digits classifier, its labels and labelled validation pictures (trained on
#      scikit-learn's bundled digits: nothing is downloaded), and a signing key
#   2. `deploykit build`: convert to TFLite (fp32, fp16, int8-weights) and Core ML (fp32, fp16, lut4), app-ready
#      (pixel input, labels), each checked against Keras, top-1 accuracy measured, signed bundles written
#   3. build again against the first build as baseline: nothing is rebuilt, the gates pass, and the bundles
#      are published to a static repository (dist/repo, channel stable)
#   4. predict on held-out pictures with a verified bundle (the reference an app must match), then pull and
#      verify one from the repository as an app would
set -euo pipefail
cd "$(dirname "$0")/.."
DK=.venv/bin/deploykit
[ -d examples/models/validation ] || .venv/bin/python examples/make_example_model.py examples/models
[ -f dist/keys/deploykit.key ] || $DK keygen --out dist/keys
$DK build examples/deploykit.toml
cp dist/build/deploykit-build.json dist/baseline.json
$DK build examples/deploykit.toml --baseline dist/baseline.json --junit dist/gates.xml --publish
$DK predict dist/build/bundles/com.example.digits-1.0.0-ios-fp16.zip examples/models/pictures --top-k 1 \
    --trusted-key dist/keys/deploykit.pub
$DK pull --repo dist/repo --channel stable --name com.example.digits --platform android \
    --variant fp16 --trusted-key dist/keys/deploykit.pub --dest dist/installed
echo "done: jobs and signed bundles in dist/build (record: dist/build/deploykit-build.json), gates in dist/gates.xml, installed model in dist/installed"
