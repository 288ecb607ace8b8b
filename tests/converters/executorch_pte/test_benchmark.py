"""Host latency of a .pte in the runner's child process, in deploykit.runners.litert_bench's BenchResult."""

from __future__ import annotations

import pytest

from deploykit.core.errors import UsageError


def test_bench_pte_times_the_program_in_a_child(pte):
    from deploykit.runners.litert_bench import BenchResult
    from deploykit.runners.executorch_bench import bench_pte, time_pte

    _, record, _ = pte("mobilenet")
    result = bench_pte(record.path, threads=1, warmup=2, runs=5)
    assert isinstance(result, BenchResult)
    assert result.delegate == "XnnpackBackend" and result.runs == 5 and result.threads == 1
    assert 0 < result.min_ms <= result.median_ms <= result.p90_ms
    assert result.load_ms > 0 and result.peak_rss_mb > result.model_rss_mb >= 0
    assert result.size_bytes == record.size_bytes
    short = time_pte(record.path, runs=3, warmup=1)
    assert set(short) == {"threads", "delegate", "warmup", "runs", "load_ms",
                          "median_ms", "p90_ms", "mean_ms", "min_ms"}


def test_bench_pte_names_portable_kernels_and_refuses_core_ml(pte):
    from deploykit.runners.executorch_bench import bench_pte, delegate_label

    _, portable, _ = pte("resnet", "portable")
    assert delegate_label(portable.path).startswith("portable kernels (")
    _, coreml, _ = pte("squeezenet", "coreml")
    with pytest.raises(UsageError, match="Apple hardware"):
        bench_pte(coreml.path, runs=1, warmup=0)
