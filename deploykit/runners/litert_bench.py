"""Host latency and memory of .tflite artifacts with LiteRT (``deploykit bench``).

Each artifact runs in its own child process (``python -m deploykit.runners.litert_bench``), so its peak
resident memory is its own: the child imports only numpy and ai_edge_litert, records its peak RSS,
loads the model (LiteRT applies the XNNPACK delegate by default), runs warm-up iterations, then
times each of ``runs`` invocations. Inputs are seeded random values of each input's shape and
dtype. Figures are wall-clock medians on this host, not device figures.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from deploykit.core.errors import InputError, UsageError


@dataclass(frozen=True)
class BenchResult:
    artifact: str
    size_bytes: int
    threads: int
    delegate: str
    warmup: int
    runs: int
    median_ms: float
    p90_ms: float
    mean_ms: float
    min_ms: float
    load_ms: float
    peak_rss_mb: float  # the child process's high-water mark, runtime and model included
    model_rss_mb: float  # that mark minus the mark after importing the runtime

    def to_json(self) -> dict:
        return asdict(self)


def bench(path: str | Path, *, threads: int = 1, warmup: int = 10, runs: int = 50, xnnpack: bool = True,
          timeout: float = 600) -> BenchResult:
    path = Path(path)
    if path.suffix == ".mlpackage" or path.is_dir():
        raise UsageError(f"{path}: bench runs TFLite artifacts with LiteRT; Core ML runs only on Apple devices")
    if not path.is_file():
        raise InputError(f"{path} does not exist")
    if threads < 1 or runs < 1 or warmup < 0:
        raise UsageError("--threads and --runs must be at least 1, --warmup at least 0")
    request = json.dumps({"path": str(path), "threads": threads, "warmup": warmup, "runs": runs, "xnnpack": xnnpack})
    done = subprocess.run([sys.executable, "-m", "deploykit.runners.litert_bench", request], capture_output=True, text=True, timeout=timeout)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        detail = (done.stderr.strip().splitlines() or ["no output"])[-1][:300]
        raise InputError(f"LiteRT could not run {path}: {detail}")
    return BenchResult(**json.loads(lines[-1]))


def time_in_process(path: str | Path, *, threads: int = 1, warmup: int = 3, runs: int = 10,
                    xnnpack: bool = True) -> dict:
    """Median and spread of ``runs`` timed invocations in this process, with the same interpreter set-up,
    inputs and timing loop as ``bench``. No memory figure: that is what ``bench``'s child process is for,
    and for a convert that has LiteRT loaded already a new process would cost more than the timing itself."""
    once, load_ms = _prepared(str(path), threads, xnnpack)
    return {"threads": threads, "delegate": _delegate(xnnpack), "warmup": warmup, "runs": runs,
            "load_ms": round(load_ms, 1), **timings(once, warmup, runs)}


def _prepared(path: str, threads: int, xnnpack: bool):
    """(one invocation as a callable, load time in ms including the first invocation)."""
    import time

    import numpy as np

    from deploykit.formats.litert_facade import interpreter as open_interpreter

    started = time.perf_counter()
    interpreter = open_interpreter(path, threads=threads, delegates=xnnpack)
    signatures = interpreter.get_signature_list()
    runner = interpreter.get_signature_runner(next(iter(signatures))) if signatures else None
    details = runner.get_input_details() if runner else {d["name"]: d for d in interpreter.get_input_details()}
    rng = np.random.default_rng(0)
    feeds = {name: _random(rng, d) for name, d in details.items()}
    if runner is None:
        interpreter.allocate_tensors()

    def once():
        if runner is not None:
            runner(**feeds)
        else:
            for d in interpreter.get_input_details():
                interpreter.set_tensor(d["index"], feeds[d["name"]])
            interpreter.invoke()

    once()
    return once, (time.perf_counter() - started) * 1000


def timings(once, warmup: int, runs: int) -> dict:
    """Median, p90, mean and min of ``runs`` timed calls of ``once`` after ``warmup`` untimed ones (every runtime's loop)."""
    import time

    import numpy as np

    for _ in range(warmup):
        once()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        once()
        times.append((time.perf_counter_ns() - t0) / 1e6)
    times = np.array(times)
    return {"median_ms": round(float(np.median(times)), 3), "p90_ms": round(float(np.percentile(times, 90)), 3),
            "mean_ms": round(float(times.mean()), 3), "min_ms": round(float(times.min()), 3)}


def _delegate(xnnpack: bool) -> str:
    return "XNNPACK" if xnnpack else "builtin kernels"


def _child(request: dict) -> dict:
    import resource

    import numpy  # noqa: F401  (imported before the baseline: model_rss_mb leaves the runtime out)

    from deploykit.formats.litert_facade import preload

    preload()

    def peak_mb() -> float:
        # VmHWM is this process image's own high-water mark; ru_maxrss would include the parent's
        # resident size at fork time (Linux keeps it across exec), i.e. whoever launched the bench.
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1 << 20 if sys.platform == "darwin" else 1024)

    baseline = peak_mb()
    once, load_ms = _prepared(request["path"], request["threads"], request["xnnpack"])
    figures = timings(once, request["warmup"], request["runs"])
    return {
        "artifact": request["path"], "size_bytes": Path(request["path"]).stat().st_size, "threads": request["threads"],
        "delegate": _delegate(request["xnnpack"]), "warmup": request["warmup"], "runs": request["runs"],
        **figures, "load_ms": round(load_ms, 1),
        "peak_rss_mb": round(peak_mb(), 1), "model_rss_mb": round(peak_mb() - baseline, 1),
    }


def _random(rng, detail):
    import numpy as np

    shape, dtype = tuple(int(d) for d in detail["shape"]), np.dtype(detail["dtype"])
    if np.issubdtype(dtype, np.floating):
        return rng.random(shape, dtype=np.float32).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(max(info.min, -128), min(info.max, 127) + 1, shape).astype(dtype)


if __name__ == "__main__":
    print(json.dumps(_child(json.loads(sys.argv[1]))))
