"""Host latency and memory of ExecuTorch ``.pte`` programs, as ``deploykit.runners.litert_bench`` measures TFLite.

The program runs in the ExecuTorch runner's child process (``deploykit.runners.executorch_child``, driven by ``runners.executorch_runner``): a
crash in a kernel or a delegate costs the measurement, not deploykit. The child sets the runtime's
thread pool to ``threads``, loads the program, times one first call (XNNPACK packs its weights there,
as LiteRT's first invoke does: both are in ``load_ms``), runs ``warmup`` calls, then times each of
``runs`` calls on seeded random inputs. Memory is the child's own high-water mark (VmHWM), and that
mark minus the mark after importing the runtime (torch included), like LiteRT's figure.
The result is ``deploykit.runners.litert_bench.BenchResult``, so both targets share one table.
"""

from __future__ import annotations

from pathlib import Path

from deploykit.core.errors import InputError, UsageError
from deploykit.runners.litert_bench import BenchResult


def bench_pte(path: str | Path, *, threads: int = 1, warmup: int = 10, runs: int = 50,
              timeout: float = 600) -> BenchResult:
    path = Path(path)
    _check(path, threads, warmup, runs)
    figures, delegate = _measure(path, threads, warmup, runs, timeout)
    return BenchResult(artifact=str(path), size_bytes=path.stat().st_size, threads=threads, delegate=delegate,
                       warmup=warmup, runs=runs, **{k: figures[k] for k in (
                           "median_ms", "p90_ms", "mean_ms", "min_ms", "load_ms", "peak_rss_mb", "model_rss_mb")})


def time_pte(path: str | Path, *, threads: int = 1, warmup: int = 3, runs: int = 10, timeout: float = 600) -> dict:
    """The short figure convert records (``deploykit.runners.litert_bench.time_in_process``'s keys), from the same child."""
    path = Path(path)
    _check(path, threads, warmup, runs)
    figures, delegate = _measure(path, threads, warmup, runs, timeout)
    return {"threads": threads, "delegate": delegate, "warmup": warmup, "runs": runs,
            "load_ms": figures["load_ms"], **{k: figures[k] for k in ("median_ms", "p90_ms", "mean_ms", "min_ms")}}


def delegate_label(path: Path) -> str:
    """What runs the program: its delegates' backend ids, and portable kernels when any kernel call is left."""
    from deploykit.formats.pte.program import split

    where = split(path)
    parts = sorted(where.delegate_calls)
    if where.kernel_calls:
        parts.append(f"portable kernels ({where.portable_calls} calls)")
    return " + ".join(parts) or "empty program"


def _measure(path: Path, threads: int, warmup: int, runs: int, timeout: float):
    from deploykit.runners.executorch_runner import ExecutorchRunner

    delegate = delegate_label(path)
    if "CoreMLBackend" in delegate:
        raise UsageError(f"{path}: a Core ML-delegated program runs only on Apple hardware; it cannot be timed here")
    with ExecutorchRunner(path, threads=threads, timeout=timeout) as runner:
        return runner.bench(warmup, runs), delegate


def _check(path: Path, threads: int, warmup: int, runs: int) -> None:
    if path.suffix != ".pte":
        raise UsageError(f"{path}: bench_pte times ExecuTorch .pte programs")
    if not path.is_file():
        raise InputError(f"{path} does not exist")
    if threads < 1 or runs < 1 or warmup < 0:
        raise UsageError("--threads and --runs must be at least 1, --warmup at least 0")
