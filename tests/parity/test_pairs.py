"""Right pairs pass and wrong pairs fail, for both targets, on real conversions.

Wrong pairs: the artifact of the same architecture built from another seed (same signature), the
source with one middle conv weight perturbed after conversion, the source with one middle layer
dropped. The default profile of a freshly converted artifact is fp32 (from deploykit-report.json).
"""

from __future__ import annotations

import pytest

from deploykit.pipeline.verify import verify
from tests.parity import variants

TARGETS = ("tflite", "coreml")


@pytest.mark.parametrize("target", TARGETS)
def test_torch_right_pair_passes(torch_pair, target):
    report = verify(torch_pair.model, torch_pair.artifacts[target])
    assert report, report.to_json()
    assert report.profile == "fp32" and "deploykit-report.json" in report.profile_origin
    assert report.inputs["samples"] == 8 and report.inputs["kind"] == "random"
    (output,) = report.outputs
    assert output.metrics["max_rel_error"] < 1e-5 and output.metrics["top1_agreement"] == 1.0
    if target == "coreml":
        assert report.runners["artifact"] == "Core ML numpy evaluator"
        assert any("not modelled" in note for note in report.notes)


@pytest.mark.parametrize("target", TARGETS)
def test_torch_other_seed_fails(torch_pair, target):
    report = verify(torch_pair.model, torch_pair.other_seed[target])
    assert not report
    assert not report.outputs[0].passed


@pytest.mark.parametrize("target", TARGETS)
def test_torch_perturbed_weight_fails(torch_pair, target):
    changed, _ = variants.perturbed(torch_pair.model, 0.1)
    report = verify(changed, torch_pair.artifacts[target])
    assert not report
    assert "snr_db" in {c.metric for c in report.outputs[0].failed_checks}


@pytest.mark.parametrize("target", TARGETS)
def test_torch_dropped_layer_fails(torch_pair, target):
    changed, _ = variants.dropped(torch_pair.model)
    assert not verify(changed, torch_pair.artifacts[target])


@pytest.mark.parametrize("target", TARGETS)
def test_keras_right_and_wrong_pairs(keras_pair, target):
    artifact = keras_pair.artifacts[target]
    assert verify(keras_pair.model, artifact)
    assert not verify(keras_pair.model, keras_pair.other_seed[target])
    assert not verify(variants.perturbed(keras_pair.model, 0.1)[0], artifact)
    assert not verify(variants.dropped(keras_pair.model)[0], artifact)


@pytest.mark.parametrize("target", TARGETS)
def test_onnx_right_pair_with_layout_change(onnx_pair, torch_pair, target):
    report = verify(onnx_pair.model, onnx_pair.artifacts[target])
    assert report, report.to_json()
    # onnx2tf makes the input NHWC: the samples were transposed for the artifact, not the source
    assert onnx_pair.model.inputs[0].layout == "NCHW"
    # the torch seed-1 artifact has the same architecture and layout-compatible signature: a wrong model
    assert not verify(onnx_pair.model, torch_pair.other_seed[target])


def test_verify_from_paths_and_explicit_profile(torch_pair, keras_pair):
    report = verify(keras_pair.model.path, keras_pair.artifacts["tflite"], profile="fp16", samples=3, seed=5)
    assert report and report.profile == "fp16" and report.profile_origin == "given (fp16)"
    assert report.inputs == {**report.inputs, "samples": 3, "seed": 5}


def test_tolerance_override_can_pass_a_wrong_pair_on_purpose(keras_pair):
    changed, _ = variants.perturbed(keras_pair.model, 0.02)
    strict = verify(changed, keras_pair.artifacts["coreml"])
    assert not strict
    loose = verify(changed, keras_pair.artifacts["coreml"],
                   tolerances={"*": {"max_rel_error": None, "snr_db": 20, "cosine_similarity": 0.99}})
    assert loose, loose.to_json()
    assert any("override" in c.reason for c in loose.outputs[0].checks)


def test_signature_mismatch_is_a_failure(torch_pair, keras_pair):
    report = verify(keras_pair.model, torch_pair.artifacts["coreml"])  # 1x32x32x3 vs 1x3x32x32 is a layout change...
    assert not report  # ...and the models differ
    from dataclasses import replace

    from deploykit.core.types import TensorSpec

    other = replace(keras_pair.model, inputs=(TensorSpec("image", (1, 16, 16, 3), "float32", "NHWC"),))
    broken = verify(other, keras_pair.artifacts["tflite"])
    assert not broken and "inputs do not match" in broken.problem


def test_verify_artifacts_is_the_convert_hook(keras_pair):
    import json

    from deploykit.core.types import REPORT_FILENAME, ConversionReport
    from deploykit.pipeline.request import VerifyOptions
    from deploykit.pipeline.verify import verify_artifacts

    folder = keras_pair.artifacts["tflite"].parent
    record = ConversionReport.from_json(json.loads((folder / REPORT_FILENAME).read_text()))
    reports = verify_artifacts(keras_pair.model, record.artifacts, folder, VerifyOptions(samples=2))
    assert [r.target for r in reports] == [a.target for a in record.artifacts]
    assert all(reports)
    summary = reports[0].to_summary()
    assert summary["passed"] is True and summary["profile"] == "fp32" and summary["samples"] == 2
    assert set(summary["outputs"]["logits"]) >= {"passed", "max_rel_error", "snr_db"}


def test_profile_comes_from_the_report_beside_the_artifact(keras_pair, tmp_path):
    import json
    import shutil

    from deploykit.core.types import REPORT_FILENAME

    artifact = tmp_path / "m.lut4.mlpackage"
    shutil.copytree(keras_pair.artifacts["coreml"], artifact)
    entries = json.loads((keras_pair.artifacts["coreml"].parent / REPORT_FILENAME).read_text())["artifacts"]
    entry = next(e for e in entries if e["target"] == "coreml")
    entry.update(path=artifact.name, variant="lut4", quantization={"scheme": "lut4"})
    (tmp_path / REPORT_FILENAME).write_text(json.dumps({"artifacts": [entry]}))
    report = verify(keras_pair.model, artifact, samples=2)
    assert report.profile == "lut4" and "deploykit-report.json" in report.profile_origin
    alone = tmp_path / "alone"
    shutil.copytree(artifact, alone / "m.mlpackage")
    assumed = verify(keras_pair.model, alone / "m.mlpackage", samples=2)
    assert assumed.profile == "fp32" and any("fp32 assumed" in n for n in assumed.notes)


def test_real_data_from_npy_and_images(onnx_pair, tmp_path):
    import numpy as np
    from PIL import Image

    stack = np.random.default_rng(1).normal(size=(3, 32, 32, 3)).astype(np.float32)  # NHWC on disk
    np.save(tmp_path / "x.npy", stack)
    report = verify(onnx_pair.model, onnx_pair.artifacts["tflite"], data=tmp_path / "x.npy", data_layout="NHWC")
    assert report and report.inputs["kind"] == "npy" and report.inputs["samples"] == 3
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(folder / f"{i}.jpg")
    report = verify(onnx_pair.model, onnx_pair.artifacts["coreml"], data=folder, mean=[0.485, 0.456, 0.406],
                    std=[0.229, 0.224, 0.225])
    assert report and report.inputs["samples"] == 2 and report.inputs["mean"] == pytest.approx([0.485, 0.456, 0.406])
