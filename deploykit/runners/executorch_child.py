"""The ExecuTorch runtime's side of ``runners.executorch_runner``: ``python -m deploykit.runners.executorch_child``.

It loads one .pte with the runtime's pybindings and answers load / run / bench requests over stdin and
stdout in the frame format below (an 8-byte little-endian length, a JSON header, then the raw bytes of the
arrays the header describes: no pickles cross the pipe). Its own module so the parent's runner reads as the
client it is, and the code that runs next to native kernels stays small and separate.
"""

from __future__ import annotations

import json
import os
import select
import struct
import sys
import time
from typing import Sequence

import numpy as np

# ExecuTorch's ScalarType codes (runtime/core/portable_type/scalar_type.h) -> numpy dtype names.
SCALAR_TYPES = {0: "uint8", 1: "int8", 2: "int16", 3: "int32", 4: "int64", 5: "float16", 6: "float32",
                7: "float64", 11: "bool", 15: "bfloat16"}

# -- the frame format, both sides ----------------------------------------------------------------------
def send_frame(stream, header: dict, arrays: Sequence[np.ndarray]) -> None:
    arrays = [np.ascontiguousarray(a) for a in arrays]
    header = {**header, "arrays": [{"dtype": a.dtype.str, "shape": list(a.shape)} for a in arrays]}
    data = json.dumps(header).encode()
    stream.write(struct.pack("<Q", len(data)) + data)
    for array in arrays:
        stream.write(array.tobytes())
    stream.flush()


def receive_frame(fd: int, deadline: float | None = None):
    (size,) = struct.unpack("<Q", _read_exact(fd, 8, deadline))
    header = json.loads(_read_exact(fd, size, deadline))
    arrays = []
    for described in header.pop("arrays", []):
        dtype, shape = np.dtype(described["dtype"]), tuple(described["shape"])
        count = int(np.prod(shape)) if shape else 1
        data = _read_exact(fd, count * dtype.itemsize, deadline)
        arrays.append(np.frombuffer(data, dtype=dtype).reshape(shape).copy())
    return header, arrays


def _read_exact(fd: int, size: int, deadline: float | None) -> bytes:
    chunks, left = [], size
    while left:
        if deadline is not None:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([fd], [], [], wait)[0]:
                raise TimeoutError
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


# -- the child -----------------------------------------------------------------------------------------
def _serve() -> int:
    protocol = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # native code that prints to stdout must not write into the protocol
    sys.stdout = sys.stderr
    incoming = sys.stdin.buffer.fileno()
    state: dict = {}
    while True:
        try:
            header, arrays = receive_frame(incoming)
        except EOFError:
            return 0
        op = header.get("op")
        if op == "close":
            return 0
        try:
            reply, values = _handle(op, header, arrays, state)
        except _Failure as exc:
            reply, values = {"ok": False, "stage": exc.stage, "error": str(exc)}, []
        except Exception as exc:  # a runtime error raised by the bindings: report it, keep serving
            text = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:400]
            reply, values = {"ok": False, "stage": "load" if op == "load" else "run",
                             "error": f"{type(exc).__name__}: {text}"}, []
        send_frame(protocol, reply, values)


class _Failure(Exception):
    def __init__(self, stage: str, message: str):
        super().__init__(message)
        self.stage = stage


def _handle(op: str, header: dict, arrays: list, state: dict):
    if op == "load":
        return _load(header, state), []
    if "method" not in state:
        raise _Failure("usage", "no program is loaded")
    if op == "run":
        return {"ok": True}, _run(state, arrays)
    if op == "bench":
        return {"ok": True, "bench": _bench(state, header["warmup"], header["runs"])}, []
    raise _Failure("usage", f"unknown request {op!r}")


def _bindings():
    from deploykit.formats.executorch_facade import runtime_bindings

    return runtime_bindings()


def _load(header: dict, state: dict) -> dict:
    bindings = _bindings()
    # The baseline after importing the runtime (torch included), as bench's child takes it after
    # importing LiteRT: model_rss_mb and load_ms are the model's own.
    state["runtime_rss_mb"] = _peak_rss_mb()
    started = time.perf_counter()
    if header.get("threads"):
        bindings._unsafe_reset_threadpool(int(header["threads"]))
    path = header["path"]
    try:
        program = bindings._load_program(path, enable_etdump=False, debug_buffer_size=0,
                                         program_verification=bindings.Verification.InternalConsistency,
                                         data_path=None)
    except Exception as exc:
        raise _Failure("load", (str(exc).strip().splitlines() or [type(exc).__name__])[0][:400]) from exc
    names = [program.get_method_name(i) for i in range(program.num_methods())]
    name = header.get("method", "forward")
    if name not in names:
        raise _Failure("load", f"the program has no method {name!r} (methods: {', '.join(names)})")
    try:
        method = program.load_method(name)
    except Exception as exc:
        raise _Failure("load", (str(exc).strip().splitlines() or [type(exc).__name__])[0][:400]) from exc
    meta = method.method_meta()
    state.update(program=program, method=method, path=path, load_ms=(time.perf_counter() - started) * 1000)
    state["inputs"] = [_tensor_meta(meta.input_tensor_meta(i)) for i in range(meta.num_inputs())]
    state["outputs"] = [_tensor_meta(meta.output_tensor_meta(i)) for i in range(meta.num_outputs())]
    return {"ok": True, "inputs": state["inputs"], "outputs": state["outputs"], "methods": names,
            "threads": int(bindings._threadpool_get_thread_count())}


def _tensor_meta(info) -> dict:
    dtype = info.dtype() if callable(info.dtype) else info.dtype
    sizes = info.sizes() if callable(info.sizes) else info.sizes
    return {"shape": [int(d) for d in sizes], "dtype": SCALAR_TYPES.get(int(dtype), f"scalar_type_{int(dtype)}")}


def _run(state: dict, arrays: list) -> list:
    import torch

    expected = state["inputs"]
    if len(arrays) != len(expected):
        raise _Failure("usage", f"the program takes {len(expected)} input(s), {len(arrays)} were given")
    tensors = [torch.from_numpy(np.ascontiguousarray(a)) for a in arrays]
    results = state["method"](tensors)
    values = []
    for value in results:
        if isinstance(value, torch.Tensor):
            values.append(value.detach().contiguous().numpy().copy())
        else:
            values.append(np.asarray(value))
    return values


def _bench(state: dict, warmup: int, runs: int) -> dict:
    import torch

    generator = torch.Generator().manual_seed(0)
    tensors = []
    for spec in state["inputs"]:
        dtype = getattr(torch, spec["dtype"])
        if dtype.is_floating_point:
            tensors.append(torch.rand(spec["shape"], generator=generator).to(dtype))
        else:
            tensors.append(torch.randint(-128, 128, spec["shape"], generator=generator).to(dtype))
    method = state["method"]
    started = time.perf_counter()
    method(tensors)  # the first call packs delegate weights: part of loading, as LiteRT's first invoke is
    first_ms = (time.perf_counter() - started) * 1000
    for _ in range(warmup):
        method(tensors)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        method(tensors)
        times.append((time.perf_counter_ns() - t0) / 1e6)
    times = np.array(times)
    peak = _peak_rss_mb()
    return {"median_ms": round(float(np.median(times)), 3), "p90_ms": round(float(np.percentile(times, 90)), 3),
            "mean_ms": round(float(times.mean()), 3), "min_ms": round(float(times.min()), 3),
            "load_ms": round(state["load_ms"] + first_ms, 1), "peak_rss_mb": round(peak, 1),
            "model_rss_mb": round(peak - state["runtime_rss_mb"], 1)}


def _peak_rss_mb() -> float:
    """This process's own high-water mark (VmHWM), as deploykit.runners.litert_bench measures LiteRT's."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1 << 20 if sys.platform == "darwin" else 1024)


if __name__ == "__main__":
    sys.exit(_serve())
