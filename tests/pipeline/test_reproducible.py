"""The same conversion twice gives byte-identical artifacts (records, bundles and incremental builds compare hashes)."""

from __future__ import annotations

import json

from deploykit import convert
from tests.conftest import save_pt2


def test_two_conversions_give_the_same_bytes(model_dir, tmp_path):
    source = save_pt2("resnet", model_dir)
    hashes = []
    for run in ("first", "second"):
        convert(source, to=("tflite", "coreml"), out=tmp_path / run, verify=False)
        record = json.loads((tmp_path / run / "deploykit-report.json").read_text())
        hashes.append({a["path"]: a["sha256"] for a in record["artifacts"]})
    assert hashes[0] == hashes[1] and len(hashes[0]) == 2
    manifests = [json.loads((tmp_path / run / "resnet_0.fp32.mlpackage" / "Manifest.json").read_text())
                 for run in ("first", "second")]
    assert manifests[0] == manifests[1]  # coremltools' random item identifiers are replaced by derived ones
