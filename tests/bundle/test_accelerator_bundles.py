"""The manifest's ``compatibility.accelerators``: the record's analysis, compact, validated by the schema, the same
bytes when built twice, and one sentence of the bundle's README.

One real conversion (``tests/zoo/accelerator_nets.py``: a convolution and a cumulative sum) to TFLite, Core ML and
ExecuTorch: XNNPACK and the ExecuTorch delegate refuse the CUMSUM, the GPU entry is not checked by this LiteRT, Core ML
is a static reading.
"""

from __future__ import annotations

import copy
import json
import zipfile
from pathlib import Path

import pytest

from deploykit.bundle.builder import BundleOptions, bundle, manifest_accelerators
from deploykit.bundle.manifest import validate
from deploykit.bundle.verify import verify_bundle
from deploykit.core.errors import InputError
from tests.bundle.bundle_helpers import NAME


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Path:
    """The cumsum net converted to the three targets, once for all xdist workers."""
    from filelock import FileLock

    folder = tmp_path_factory.getbasetemp().parent / "bundle-accelerators"
    folder.mkdir(exist_ok=True)
    dist = folder / "dist"
    with FileLock(str(folder / ".lock")):
        if not (dist / "deploykit-report.json").exists():
            import deploykit
            from deploykit.pipeline.request import VerifyOptions
            from tests.zoo import accelerator_nets

            deploykit.convert(accelerator_nets.save(folder), to=("tflite", "coreml", "executorch"), out=dist,
                              verify_options=VerifyOptions(samples=2))
    return dist


def _build(converted: Path, out: Path, keys) -> dict[str, Path]:
    options = BundleOptions(name=NAME, version="1.0.0", out=out, sign_keys=(keys["publisher"][0],))
    artifacts = [converted / f"cumsum.fp32{suffix}" for suffix in (".tflite", ".mlpackage", ".pte")]
    return {f"{b.manifest['platform']}-{b.manifest['variant']}": b.path for b in bundle(artifacts, options)}


def test_each_manifest_carries_its_artifacts_analysis_compactly(converted, keys, tmp_path):
    record = {a["target"]: a for a in json.loads((converted / "deploykit-report.json").read_text())["artifacts"]}
    built = _build(converted, tmp_path / "first", keys)
    assert set(built) == {"android-fp32", "ios-fp32", "android-executorch-fp32", "ios-executorch-fp32"}
    manifests = {key: verify_bundle(path, [keys["publisher"][1]]).manifest.raw for key, path in built.items()}

    gpu, xnnpack = manifests["android-fp32"]["compatibility"]["accelerators"]
    recorded_gpu = record["tflite"]["compatibility"]["accelerators"][0]
    assert gpu["name"] == "gpu" and gpu["static"] is False and gpu["refused"] == []
    if recorded_gpu["supported"] is None:  # no analyzer here checks the GPU delegate (setup.sh extracts one)
        assert gpu["supported"] is None and "not checked" in gpu["unavailable"]
    else:  # TensorFlow 2.16.2's GPU rules take every op of this net, the cumulative sum included
        assert gpu["supported"] == gpu["ops"] == recorded_gpu["ops"] and "unavailable" not in gpu
    ops = record["tflite"]["compatibility"]["accelerators"][1]["ops"]
    assert xnnpack == {"name": "xnnpack", "title": "XNNPACK", "ops": ops, "supported": ops - 1, "static": False,
                       "refused": [{"op": "CUMSUM", "count": 1}]}  # no reasons: the record and the report keep them
    (coreml,) = manifests["ios-fp32"]["compatibility"]["accelerators"]
    assert (coreml["name"], coreml["static"], coreml["supported"], coreml["refused"]) == ("coreml-static", True, None, [])
    assert "op_types" not in coreml  # the static entry's readings stay in the record
    for key in ("android-executorch-fp32", "ios-executorch-fp32"):
        (delegate,) = manifests[key]["compatibility"]["accelerators"]
        assert delegate["name"] == "delegate" and delegate["refused"] == [{"op": "aten::cumsum.out", "count": 1}]
        assert delegate["supported"] == delegate["ops"] - 1
        assert manifests[key]["compatibility"]["runtime"]["name"] == "executorch"  # beside the runtime block
    for key, manifest in manifests.items():
        target = {"android-fp32": "tflite", "ios-fp32": "coreml"}.get(key, "executorch")
        assert manifest["compatibility"]["accelerators"] == manifest_accelerators(record[target]["compatibility"])

    with zipfile.ZipFile(built["android-fp32"]) as z:
        readme = z.read("integration/README.md").decode()
    assert "Accelerators (deploykit's compatibility analysis, `compatibility.accelerators`)" in readme
    assert f"XNNPACK takes {ops - 1} of {ops} ops (refuses `CUMSUM` × 1)" in readme

    again = _build(converted, tmp_path / "second", keys)
    assert {k: p.read_bytes() for k, p in again.items()} == {k: p.read_bytes() for k, p in built.items()}


def test_the_schema_bounds_the_block(converted, keys, tmp_path):
    built = _build(converted, tmp_path, keys)
    manifest = verify_bundle(built["android-fp32"], [keys["publisher"][1]]).manifest.raw
    validate(manifest, "manifest", "ok", error=InputError)

    def refused(change) -> None:
        broken = copy.deepcopy(manifest)
        change(broken["compatibility"]["accelerators"])
        with pytest.raises(InputError):
            validate(broken, "manifest", "broken", error=InputError)

    refused(lambda a: a[1].update(reason="the analyzer's words"))  # additionalProperties false
    refused(lambda a: a[1]["refused"][0].update(reason="why"))
    refused(lambda a: a[1].update(name="Not A Name"))
    refused(lambda a: a[1].update(ops=-1))
    refused(lambda a: a[1]["refused"][0].update(count=0))
    refused(lambda a: a.extend([copy.deepcopy(a[1])] * 15))  # at most 16 accelerators
    refused(lambda a: a[1].update(refused=[{"op": f"OP{i}", "count": 1} for i in range(513)]))
    refused(lambda a: a[0].pop("static"))


def test_an_unavailable_analysis_leaves_the_block_out():
    assert manifest_accelerators(None) == [] and manifest_accelerators({"unavailable": "the analysis failed"}) == []
