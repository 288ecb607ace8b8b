"""Host latency of an NCNN pair with the ncnn runtime (CPU, the threads asked for, fp16 arithmetic when the .bin
stores fp16 weights, as ``targets.ncnn`` runs it for parity).

``time_in_process``: the short timing ``convert`` records. ``bench``: ``deploykit bench``'s figure, in a child
process (``python -m deploykit.runners.ncnn_bench``) so its memory high-water mark is the model's and the
runtime's alone, with the same loop as ``litert_bench``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from deploykit.core.errors import ConversionError
from deploykit.runners.litert_bench import timings as _timings


def _prepared(path, threads: int):
    """(one inference as a callable, load time in ms including the first inference)."""
    import time

    from deploykit.formats.ncnn import pair, weights
    from deploykit.runners.ncnn_runner import NcnnRunner

    started = time.perf_counter()
    runner = NcnnRunner(path, fp16=weights.storage(pair.files(path)[1]) == "float16", threads=threads)
    runner.activate()
    rng = np.random.default_rng(0)
    feeds = {t.name: rng.uniform(-1, 1, t.shape).astype(np.float32) for t in runner.input_specs}

    def once():
        runner.infer(feeds)

    once()
    return once, (time.perf_counter() - started) * 1000


def time_in_process(path, *, threads: int = 1, warmup: int = 3, runs: int = 10) -> dict:
    once, load_ms = _prepared(path, threads)
    return {"threads": threads, "delegate": "ncnn-cpu", "warmup": warmup, "runs": runs, "load_ms": round(load_ms, 1),
            **_timings(once, warmup, runs)}


def bench(path, *, threads: int = 1, warmup: int = 10, runs: int = 50, timeout: float = 600):
    from deploykit.core.hashing import size_path
    from deploykit.formats.ncnn import pair
    from deploykit.runners.litert_bench import BenchResult

    pair.files(path)  # a clear error for a missing or incomplete pair before a process starts
    done = subprocess.run([sys.executable, "-m", "deploykit.runners.ncnn_bench", str(path), str(threads), str(warmup),
                           str(runs)], capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        raise ConversionError(f"ncnn could not time {path}: {lines[-1] if lines else f'exit code {done.returncode}'}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    return BenchResult(artifact=str(path), size_bytes=size_path(path), threads=threads, delegate="ncnn-cpu",
                       warmup=warmup, runs=runs, **figures)


def _child(path: str, threads: int, warmup: int, runs: int) -> dict:
    import resource

    import ncnn  # noqa: F401  (the runtime's own memory is the baseline)

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    once, load_ms = _prepared(Path(path), threads)
    figures = _timings(once, warmup, runs)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {**figures, "load_ms": round(load_ms, 1), "peak_rss_mb": round(peak, 1), "model_rss_mb": round(peak - baseline, 1)}


if __name__ == "__main__":
    print(json.dumps(_child(sys.argv[1], *(int(a) for a in sys.argv[2:5]))))
