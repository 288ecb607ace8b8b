"""The fp16 .bin deploykit writes for layers whose reads depend on several parameters (Gemm's constant operands,
MultiHeadAttention's four projections), checked against what ncnn itself reads: without them in the walk, every
transformer (PP-OCR's recognisers in the corpus) fell back to ``pnnx fp16=1`` and lost the fp16 rescue."""

from __future__ import annotations

import numpy as np

from deploykit.formats import ncnn_facade
from deploykit.formats.ncnn import param, weights

E, HEADS, SEQ, N = 8, 2, 5, 6  # embed dim, heads, sequence length, Gemm's output width
PARAM = f"""7767517
3 3
Input                    in0                      0 1 in0 0={E} 1={SEQ}
MultiHeadAttention       attention_0              1 1 in0 1 0={E} 1={HEADS} 2={E * E}
Gemm                     gemm_0                   1 1 1 out0 10=4 2=0 3=1 4=0 5=1 6=1 7={SEQ} 8={N} 9={E}
"""


def tagged(values) -> bytes:
    return b"\0\0\0\0" + np.asarray(values, "<f4").tobytes()


def raw(values) -> bytes:
    return np.asarray(values, "<f4").tobytes()


def pair(folder, text, data):
    folder.mkdir()
    (folder / "m.param").write_text(text)
    (folder / "m.bin").write_bytes(data)
    return folder / "m.param", folder / "m.bin"


def run(param_file, bin_file, x):
    net = ncnn_facade.open_net(param_file, bin_file, fp16=False)
    return ncnn_facade.run(net, {"in0": x}, ("out0",))["out0"]


def test_gemm_and_attention_weights_are_walked_as_ncnn_reads_them(tmp_path):
    rng = np.random.default_rng(0)
    mha = b"".join(tagged(rng.normal(0, 0.3, E * E)) + raw(rng.normal(0, 0.1, E)) for _ in range(4))
    gemm_b, gemm_c = rng.normal(0, 0.3, N * E), rng.normal(0, 0.1, N)
    data = mha + tagged(gemm_b) + tagged(gemm_c)
    graph = param.parse(PARAM)
    spans = weights.tagged_blobs(graph, data)
    assert spans is not None
    assert [count for _, count in spans["attention_0"]] == [E * E] * 4
    assert spans["gemm_0"] == [(len(mha), N * E)]  # C, the bias, is walked but stays float32

    fp16 = weights.to_fp16(data, spans)
    assert len(fp16) == len(data) - 2 * (4 * E * E + N * E)
    x = rng.normal(0, 1, (SEQ, E)).astype(np.float32)
    want = run(*pair(tmp_path / "fp32", PARAM, data), x)
    got = run(*pair(tmp_path / "fp16", PARAM, fp16), x)
    assert want.shape == (SEQ, N)
    np.testing.assert_allclose(got, want, atol=5e-3 * np.abs(want).max())
    kept = weights.to_fp16(data, spans, frozenset(["gemm_0"]))  # a layer kept float32 keeps its bytes
    assert kept[len(kept) - len(tagged(gemm_b)) - len(tagged(gemm_c)):] == tagged(gemm_b) + tagged(gemm_c)


def test_a_quantized_gemm_or_a_bin_of_another_length_is_left_alone():
    rng = np.random.default_rng(1)
    data = b"".join(tagged(rng.normal(0, 0.3, E * E)) + raw(np.zeros(E)) for _ in range(4))
    data += tagged(np.zeros(N * E)) + tagged(np.zeros(N))
    assert weights.tagged_blobs(param.parse(PARAM.replace("9=8", "9=8 18=2")), data) is None
    assert weights.tagged_blobs(param.parse(PARAM), data + b"\0" * 4) is None
    assert weights.tagged_blobs(param.parse(PARAM.replace("10=4", "10=3")), data) is None  # C of M x N: too short
