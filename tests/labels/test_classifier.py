"""--labels: a Core ML classifier (classLabel + a probability per label) and TFLite label metadata, checked by parity
class by class; bad labels end in one message and exit 2."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from deploykit.labels.spec import ClassifierOptions
from deploykit import convert
from tests.conftest import save_pt2
from tests.cli.test_convert_cmd import run

LABELS = [f"class-{i}" for i in range(10)]


@pytest.fixture(scope="module")
def labels_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("labels") / "labels.txt"
    path.write_text("\n".join(LABELS) + "\n")
    return path


@pytest.fixture(scope="module")
def logits_model(model_dir, labels_file, tmp_path_factory):
    source = save_pt2("mobilenet", model_dir)
    out = tmp_path_factory.mktemp("classifier") / "out"
    convert(source, to=["tflite", "coreml"], out=out, quantize="fp16", classifier=ClassifierOptions(labels_file))
    record = json.loads((out / "deploykit-report.json").read_text())
    return source, out, record, {(a["target"], a["variant"]): a for a in record["artifacts"]}


def test_coreml_is_a_classifier_with_an_added_softmax(logits_model):
    from deploykit.formats.coreml.metadata import read_spec

    _, out, record, artifacts = logits_model
    assert record["source"]["classifier"]["softmax_added"] is True  # the torch net ends in a Linear: logits
    for variant in ("fp32", "fp16"):
        artifact = artifacts[("coreml", variant)]
        spec = read_spec(out / artifact["path"])
        assert (spec.description.predictedFeatureName, spec.description.predictedProbabilitiesName) == (
            "classLabel", "classLabel_probs")
        assert [o.type.WhichOneof("Type") for o in spec.description.output] == ["stringType", "dictionaryType"]
        assert artifact["op_histogram"].get("classify") == 1 and artifact["op_histogram"].get("softmax") == 1
        parity = artifact["parity"]
        (output,) = parity["outputs"].values()
        assert parity["passed"] and output["value_range"] == [0.0, 1.0]
    (output,) = artifacts[("coreml", "fp32")]["parity"]["outputs"].values()
    assert output["max_rel_error"] < 1e-5


def test_probabilities_are_the_softmax_of_the_source(logits_model):
    """Independently of the parity check: the evaluator's dictionary against softmax(module(x)) by hand."""
    import torch

    from deploykit.runners.coreml_eval.runner import CoreMLEvaluatorRunner

    source, out, _, artifacts = logits_model
    x = np.random.default_rng(4).uniform(-1, 1, (1, 3, 32, 32)).astype(np.float32)
    logits = torch.export.load(source).module()(torch.from_numpy(x)).detach().numpy().reshape(-1).astype(np.float64)
    expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    with CoreMLEvaluatorRunner(out / artifacts[("coreml", "fp32")]["path"]) as runner:
        result = runner.infer({runner.input_specs[0].name: x})
    table = result["classLabel_probs"].item()
    assert list(table) == LABELS
    assert np.allclose([table[label] for label in LABELS], expected, atol=1e-6)
    assert str(result["classLabel"]) == LABELS[int(np.argmax(expected))]


def test_tflite_carries_the_labels_in_its_metadata(logits_model):
    from deploykit.formats.tflite.metadata_read import associated_files, read_metadata

    _, out, _, artifacts = logits_model
    for variant in ("fp32", "fp16"):
        data = (out / artifacts[("tflite", variant)]["path"]).read_bytes()
        assert associated_files(data)["labels.txt"].decode().split() == LABELS
        (output,) = read_metadata(data)["model_metadata"]["outputs"]
        assert output["associated_files"] == [{"name": "labels.txt", "type": "TENSOR_AXIS_LABELS"}]
        assert artifacts[("tflite", variant)]["parity"]["passed"]


def test_verify_catches_labels_in_the_wrong_order(logits_model, tmp_path):
    """The record claims the labels reversed: the dictionary no longer lines up with the source's classes."""
    from deploykit.pipeline.verify import verify

    source, out, record, artifacts = logits_model
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    for artifact in record["artifacts"]:
        if artifact.get("classifier"):
            artifact["classifier"]["labels"] = artifact["classifier"]["labels"][::-1]
    (copy / "deploykit-report.json").write_text(json.dumps(record))
    report = verify(source, copy / artifacts[("coreml", "fp32")]["path"])
    assert not report and report.outputs[0].metrics["max_rel_error"] > 1e-2


def test_a_softmax_output_gets_no_second_softmax(tmp_path, labels_file):
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((8,), name="features")  # batch None, as Keras models declare it
    out = keras.layers.Dense(10, activation="softmax", name="probs")(keras.layers.Dense(16, activation="relu")(inp))
    keras.Model(inp, out).save(tmp_path / "probs.keras")
    convert(tmp_path / "probs.keras", to=["coreml"], out=tmp_path / "out", classifier=ClassifierOptions(labels_file))
    record = json.loads((tmp_path / "out" / "deploykit-report.json").read_text())
    (artifact,) = record["artifacts"]
    assert artifact["classifier"]["softmax_added"] is False
    assert artifact["op_histogram"].get("softmax") == 1 and artifact["parity"]["passed"]  # the model's own softmax only


@pytest.mark.parametrize("content, flags, message", [
    ("a\nb\n", [], "has 2 labels; output"),
    ("a\na\n" + "\n".join(LABELS[2:]), [], "repeats labels"),
    ("\n".join(LABELS), ["--classifier-output", "nope"], "the model has no such output"),
])
def test_bad_labels_exit_2(model_dir, tmp_path, content, flags, message):
    source = save_pt2("mobilenet", model_dir)
    labels = tmp_path / "labels.txt"
    labels.write_text(content)
    result = run("convert", source, "--to", "coreml", "--out", tmp_path / "out", "--labels", labels, *flags)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_bundle_takes_the_labels_from_the_record(logits_model, tmp_path, labels_file):
    import base64
    import zipfile

    _, out, _, artifacts = logits_model
    result = run("bundle", out / artifacts[("coreml", "fp32")]["path"], "--name", "com.example.cls", "--version", "1.0.0",
                 "--out", tmp_path / "bundles")
    assert result.returncode == 0, result.stderr
    (bundle,) = (tmp_path / "bundles").glob("*.zip")
    with zipfile.ZipFile(bundle) as archive:
        assert archive.read("assets/labels.txt").decode().split() == LABELS
        manifest = json.loads(base64.b64decode(json.loads(archive.read("manifest.json"))["payload"]))
    labelled = [t for t in manifest["io"]["outputs"] if t["labels"]]
    assert [t["name"] for t in labelled] == ["classLabel_probs"]
    other = tmp_path / "other.txt"
    other.write_text("\n".join(reversed(LABELS)))
    refused = run("bundle", out / artifacts[("coreml", "fp32")]["path"], "--name", "com.example.cls", "--version", "1.0.0",
                  "--labels", other, "--out", tmp_path / "b2")
    assert refused.returncode == 2 and "converted with other labels" in refused.stderr
