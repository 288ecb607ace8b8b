"""Where files are cut into delta-update chunks: content-defined cuts that resynchronize after an edit, cuts at
every weight span, the chunk budget, and the per-format span readers (NCNN .bin blobs in float32 and fp16, .pte
segments and constants)."""

from __future__ import annotations

import numpy as np
import pytest

from deploykit.bundle.chunking import MAX_CHUNKS_PER_FILE, CdcParams, chunk_list, cut_points, tiling_problem


def random_bytes(n: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).bytes(n)


def test_the_gear_table_and_the_cuts_never_change():
    """Boundaries are part of every published manifest: the same bytes must give the same chunks in every version."""
    cuts = cut_points(random_bytes(1 << 20), [])
    assert len(cuts) == 110 and cuts[:4] == [5607, 17736, 22747, 33166] and cuts[-1] == 1 << 20


def test_content_defined_cuts_resynchronize_after_an_insertion():
    data = random_bytes(1 << 20)
    edited = data[:300_000] + b"inserted by a fine-tune" * 40 + data[300_000:]
    before = {c["sha256"] for c in chunk_list(data)}
    after = chunk_list(edited)
    shared = sum(c["length"] for c in after if c["sha256"] in before)
    assert shared > 0.9 * len(data)
    assert {c["sha256"] for c in after} != before


def test_cuts_fall_at_both_ends_of_every_weight_span_and_sizes_stay_bounded():
    data = random_bytes(600_000)
    spans = [(1000, 50_000), (51_003, 4_000), (60_000, 200_000), (400_000, 100)]  # the last one is under the floor
    cuts = set(cut_points(data, spans))
    for offset, length in spans[:3]:
        assert {offset, offset + length} <= cuts
    assert 400_000 not in cuts or 400_100 not in cuts
    params = CdcParams.for_size(len(data))
    lengths = np.diff([0] + sorted(cuts))
    assert lengths.max() <= params.max and params.avg == 8 << 10


def test_overlapping_or_outside_spans_are_ignored_not_trusted():
    data = random_bytes(100_000)
    chunks = chunk_list(data, [(10_000, 20_000), (15_000, 20_000), (90_000, 50_000), (-5, 10)])
    assert tiling_problem({"length": len(data), "chunks": chunks}) is None
    assert 10_000 in {c["offset"] for c in chunks} and 30_000 in {c["offset"] for c in chunks}


def test_a_file_gets_at_most_its_budget_of_chunks():
    data = random_bytes(2 << 20)
    spans = [(i * 4096, 2048) for i in range(512)]  # 512 tensors: 1024 cuts unbounded
    assert len(cut_points(data, spans)) > 1000
    assert len(cut_points(data, spans, budget=64)) <= 64
    assert len(cut_points(data, spans, budget=MAX_CHUNKS_PER_FILE)) <= MAX_CHUNKS_PER_FILE
    assert cut_points(b"", []) == [] and chunk_list(b"") == []


def test_tiling_problems_are_named():
    chunks = [{"offset": 0, "length": 10, "sha256": "0" * 64}, {"offset": 11, "length": 5, "sha256": "0" * 64}]
    assert "chunk 1 starts at 11, not at 10" in tiling_problem({"length": 16, "chunks": chunks})
    chunks[1]["offset"] = 10
    assert "cover 15 bytes, the file has 16" in tiling_problem({"length": 16, "chunks": chunks})


def test_ncnn_blobs_are_walked_in_float32_and_fp16():
    from deploykit.formats.ncnn import param, weights
    from tests.formats.test_ncnn_weights_walk import PARAM, E, N, raw, tagged

    rng = np.random.default_rng(0)
    data = b"".join(tagged(rng.normal(0, 0.3, E * E)) + raw(rng.normal(0, 0.1, E)) for _ in range(4))
    data += tagged(rng.normal(0, 0.3, N * E)) + tagged(rng.normal(0, 0.1, N))
    graph = param.parse(PARAM)
    spans = weights.blob_spans(graph, data)
    assert [n for _, n in spans] == [4 + 4 * E * E, 4 * E] * 4 + [4 + 4 * N * E, 4 + 4 * N]
    assert sum(n for _, n in spans) == len(data)
    fp16 = weights.to_fp16(data, weights.tagged_blobs(graph, data))
    halves = weights.blob_spans(graph, fp16)
    assert [n for _, n in halves] == [4 + 2 * E * E, 4 * E] * 4 + [4 + 2 * N * E, 4 + 4 * N]
    assert weights.blob_spans(graph, data[:-4]) == []  # a walk that does not end at the file's end gives nothing


@pytest.mark.parametrize("xnnpack", [False, True])
def test_pte_segments_and_constants_are_found_where_the_weights_are(xnnpack):
    torch = pytest.importorskip("torch")
    pytest.importorskip("executorch")
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    from deploykit.formats.pte.layout import segment_spans

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10)).eval()
    program = to_edge_transform_and_lower(torch.export.export(model, (torch.rand(1, 64),)),
                                          partitioner=[XnnpackPartitioner()] if xnnpack else []).to_executorch()
    data = bytes(program.buffer)
    spans = segment_spans(data)
    weight = model[0].weight.detach().numpy().astype("<f4").tobytes()
    at = data.find(weight)
    assert at > 0 and (at, len(weight)) in spans  # the 64 x 64 weight is a range of its own
    assert all(0 < o and o + n <= len(data) for o, n in spans)
    assert segment_spans(data[:100]) == [] and segment_spans(b"not a program at all, just bytes....") == []
