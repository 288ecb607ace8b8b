"""``deploykit inspect`` against the papers' published mult-adds and parameters, within 5 %.

Keras networks come from keras.applications with weights=None; SqueezeNet 1.0 and AlexNet are the PyTorch
re-implementations in paper_nets (nothing is downloaded). The full table from sources and both artifacts is
bench/inspect_bench.py (results in bench/results/inspect.md); VGG-16 (550 MB of weights) is marked heavy here.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.inspection.paper_nets import MOBILENET_TABLE, PUBLISHED, keras_application

DEPLOYKIT = [sys.executable, "-m", "deploykit.cli.app"]
TOLERANCE = 0.05


_CACHE: dict[tuple, dict] = {}


def inspect_json(*args) -> dict:
    """The CLI's --json figures, run once per argument list in this worker."""
    if args in _CACHE:
        return _CACHE[args]
    result = subprocess.run([*DEPLOYKIT, "inspect", *map(str, args), "--json"], capture_output=True, text=True,
                            cwd=REPO, timeout=600)
    assert result.returncode == 0, result.stderr
    _CACHE[args] = json.loads(result.stdout)
    return _CACHE[args]


def assert_published(figures: dict, name: str) -> None:
    macs, params = PUBLISHED[name]
    assert figures["macs"] == pytest.approx(macs, rel=TOLERANCE), f"{name}: {figures['macs']:,} mult-adds"
    assert figures["params"] == pytest.approx(params, rel=TOLERANCE), f"{name}: {figures['params']:,} parameters"


@pytest.fixture(scope="module")
def keras_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("applications")

    def save(name: str):
        path = folder / f"{name}.keras"
        if not path.exists():
            keras_application(name).save(path)
        return path

    return save


@pytest.mark.parametrize("name", ["mobilenet_v1_1.0_224", "mobilenet_v1_0.5_160", "mobilenet_v2_1.0_224",
                                  "resnet50_224"])
def test_keras_applications_match_the_papers(keras_file, name):
    assert_published(inspect_json(keras_file(name)), name)


@pytest.mark.heavy
def test_vgg16_matches_the_paper(keras_file):
    figures = inspect_json(keras_file("vgg16_224"))
    assert 15.3e9 * (1 - TOLERANCE) <= figures["macs"] <= 15.5e9 * (1 + TOLERANCE)
    assert_published(figures, "vgg16_224")


def test_mobilenet_resources_per_layer_type(keras_file):
    """MobileNet paper, Table 2: the share of mult-adds and parameters in each layer type."""
    figures = inspect_json(keras_file("mobilenet_v1_1.0_224"))
    rows = figures["by_layer_type"]
    for kind, (macs_percent, params_percent) in MOBILENET_TABLE.items():
        assert rows[kind]["macs_percent"] == pytest.approx(macs_percent, rel=TOLERANCE), kind
        assert rows[kind]["params_percent"] == pytest.approx(params_percent, rel=TOLERANCE, abs=0.005), kind
    assert rows["other"]["macs"] == 0  # batch norm and ReLU carry no mult-adds
    assert sum(r["macs"] for r in rows.values()) == figures["macs"]


@pytest.mark.parametrize("factory, name", [("squeezenet1_0", "squeezenet1_0_224"), ("alexnet", "alexnet_224")])
def test_pytorch_reimplementations_match_the_papers(factory, name):
    entry = f"{REPO / 'tests' / 'inspection' / 'paper_nets.py'}:{factory}"
    figures = inspect_json(entry, "--input", "1x3x224x224")
    assert_published(figures, name)


def test_alexnet_per_layer_table_has_the_weights_of_each_layer():
    """The AlexNet / VGG per-layer weight tables: conv1 is 11x11x3x64 + 64, fc6 is 9216x4096 + 4096."""
    entry = f"{REPO / 'tests' / 'inspection' / 'paper_nets.py'}:alexnet"
    layers = inspect_json(entry, "--input", "1x3x224x224", "--per-layer")["layers"]
    weighted = [(layer["name"], layer["params"], layer["macs"]) for layer in layers if layer["params"]]
    assert weighted[0] == ("0", 11 * 11 * 3 * 64 + 64, 55 * 55 * 64 * 11 * 11 * 3)
    assert weighted[5] == ("14", 9216 * 4096 + 4096, 9216 * 4096)
    assert len(weighted) == 8  # 5 convolutions, 3 fully connected
