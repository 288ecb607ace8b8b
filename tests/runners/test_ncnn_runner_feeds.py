"""Token ids into an NCNN pair: ncnn's Embed reads int32 indices from its input blob, so the runner feeds integer
inputs as int32. DistilBERT's ONNX export in the corpus first failed with "input 'input_ids' expects float32, got
int64"; fed as floats, every id read as a huge int and clamped to the last row (cosine -0.04 against the source)."""

from __future__ import annotations

import numpy as np
import pytest

from deploykit.core.errors import UsageError
from deploykit.core.types import TensorSpec
from deploykit.runners.ncnn_runner import NcnnRunner

VOCAB, WIDTH, WORDS = 10, 4, 6
PARAM = f"""7767517
2 2
Input                    input_ids                0 1 input_ids 0={WORDS}
Embed                    embed_0                  1 1 input_ids y 0={WIDTH} 1={VOCAB} 2=0 3={VOCAB * WIDTH}
"""
TABLE = np.arange(VOCAB * WIDTH, dtype=np.float32).reshape(VOCAB, WIDTH)


@pytest.fixture()
def pair(tmp_path):
    folder = tmp_path / "m.ncnn"
    folder.mkdir()
    (folder / "model.ncnn.param").write_text(PARAM)
    (folder / "model.ncnn.bin").write_bytes(b"\0\0\0\0" + TABLE.tobytes())  # a tagged float32 weight
    return folder


@pytest.mark.parametrize("dtype", ["int64", "int32"])
def test_token_ids_index_the_embedding_rows(pair, dtype):
    ids = np.array([[1, 9, 0, 3, 3, 7]], dtype=dtype)
    with NcnnRunner(pair) as runner:  # specs from the .param: a float32 Input layer
        out = runner.infer({"input_ids": ids})["y"]
    np.testing.assert_array_equal(out.reshape(WORDS, WIDTH), TABLE[ids[0]])
    spec = (TensorSpec("input_ids", (1, WORDS), dtype="int64"),)
    with NcnnRunner(pair, inputs=spec, outputs=(TensorSpec("y", (1, WORDS, WIDTH)),)) as runner:  # as the record says
        np.testing.assert_array_equal(runner.infer({"input_ids": ids})["y"][0], TABLE[ids[0]])


def test_ids_int32_cannot_hold_and_wrong_shapes_are_refused(pair):
    with NcnnRunner(pair) as runner:
        with pytest.raises(UsageError, match="as int32, which cannot hold"):
            runner.infer({"input_ids": np.full((1, WORDS), 2**40, dtype=np.int64)})
        with pytest.raises(UsageError, match="expects shape"):
            runner.infer({"input_ids": np.zeros((1, WORDS + 1), dtype=np.int64)})
