"""Size accounting: deployed parameters agree across frameworks and with the folded graphs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deploykit.loaders import load_source
from deploykit.passes.fold_batchnorm import PassContext, fold_batchnorm
from deploykit.quantize.size import count_parameters, size_limit
from tests.conftest import save_keras, save_onnx, save_pt2

# conv 3x3x3x16 + dw 3x3x16 + pw 16x32 + dw 3x3x32 + pw 32x64 + dense 64x10+10, plus one folded bias
# per batch norm (16 + 16 + 32 + 32 + 64): the same network in every framework.
MOBILENET = 432 + 144 + 512 + 288 + 2048 + 650 + 160


@pytest.mark.parametrize("save", [save_keras, save_pt2, save_onnx])
def test_same_network_same_count_in_every_framework(save, model_dir):
    deployed, stored = count_parameters(load_source(save("mobilenet", model_dir)))
    assert deployed == MOBILENET
    assert stored >= deployed  # frameworks store batch-norm statistics (Keras, ONNX, PyTorch buffers)


def test_count_equals_the_folded_graph(keras_probe_file, torch_probe_files, tmp_path):
    keras_source = load_source(keras_probe_file)
    folded = fold_batchnorm(keras_source, PassContext(tmp_path)).value.handle
    assert count_parameters(keras_source)[0] == sum(int(np.prod(w.shape)) for w in folded.weights)
    onnx_source = load_source(torch_probe_files / "probe.onnx")
    folded = fold_batchnorm(onnx_source, PassContext(tmp_path)).value.handle
    assert count_parameters(onnx_source)[0] == sum(int(np.prod(t.dims)) for t in folded.graph.initializer)
    script = load_source(torch_probe_files / "probe.ts.pt", inputs=["1x3x32x32"])
    # the PyTorch probe is the Keras probe plus one 1x1 conv (16 x 16 + 16)
    assert count_parameters(script)[0] == count_parameters(onnx_source)[0] == count_parameters(keras_source)[0] + 272


def test_size_limit_record():
    record = size_limit(1_100_000, parameters=1_000_000, source_parameters=1_050_000, bits=8)
    assert record == {"parameters": 1_000_000, "source_parameters": 1_050_000, "bits_per_weight": 8,
                      "limit_bytes": 1_000_000, "ratio": 1.1}
    assert size_limit(100, 3, 3, 4)["limit_bytes"] == math.ceil(3 * 4 / 8)
