"""Speed and accuracy of the numpy Core ML evaluator on MobileNetV2 224 (random weights).

The PyTorch MobileNetV2 from tests/zoo is traced and converted to an ML Program at fp32 and at
fp16 (iOS16 target), then ``deploykit.runners.coreml_eval.evaluate`` is timed warm (program loaded
and cached, one warm-up run, median of the repeats) with BLAS capped at one thread (the default)
and with BLAS left at its own thread count, and its outputs are compared with torch.
Goal: under 1 s per evaluation on 2 cores.

Usage: .venv/bin/python bench/coreml_eval_bench.py [--repeats 10]
Writes bench/results/coreml_eval.json and bench/results/coreml_eval.md.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from unittest import mock

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

GOAL_SECONDS = 1.0
SHAPE = (1, 3, 224, 224)
# The test suite's tolerances (tests/runners/coreml_eval/coreml_eval_support.py): atol = rtol.
TOLERANCE = {"fp32": 1e-4, "fp16": 2e-2}


def convert(module, x, path: Path, precision: str) -> float:
    import coremltools as ct
    import torch

    started = time.perf_counter()
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        model = ct.convert(torch.jit.trace(module, x), inputs=[ct.TensorType(name="x", shape=SHAPE)],
                           convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16,
                           compute_precision=ct.precision.FLOAT32 if precision == "fp32" else ct.precision.FLOAT16)
        model.save(str(path))
    return time.perf_counter() - started


def timed(fn, repeats: int) -> dict:
    fn()  # warm-up
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return {"median_s": round(statistics.median(samples), 4), "min_s": round(min(samples), 4),
            "max_s": round(max(samples), 4)}


def machine() -> dict:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    import coremltools
    import torch

    return {"nproc": len(os.sched_getaffinity(0)), "cpu": cpu, "python": platform.python_version(),
            "numpy": np.__version__, "torch": torch.__version__, "coremltools": coremltools.__version__,
            "load_average_at_start": [round(v, 2) for v in os.getloadavg()]}


def main(repeats: int) -> None:
    import torch

    from deploykit.runners.coreml_eval import evaluate, load_program
    from tests.zoo import torch_nets

    info = machine()
    module = torch_nets.build("mobilenet_v2")
    x = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, SHAPE).astype(np.float32))
    with torch.no_grad():
        reference = module(x).numpy()
    with torch.no_grad():
        torch_time = timed(lambda: module(x), repeats)
    feeds = {"x": x.numpy()}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for precision in ("fp32", "fp16"):
            path = Path(tmp) / f"mobilenet_v2_{precision}.mlpackage"
            with mock.patch.object(gc, "collect", lambda *a: 0):  # coremltools' gc.collect: ~1 s, memory only
                convert_s = convert(module, x, path, precision)
            started = time.perf_counter()
            program = load_program(path)
            load_s = time.perf_counter() - started
            out = next(iter(evaluate(path, feeds).values())).astype(np.float32)
            results[precision] = {
                "convert_s": round(convert_s, 2),
                "load_s": round(load_s, 3),
                "ops": len(program.steps),
                "evaluate_threads_1": timed(lambda: evaluate(path, feeds), repeats),
                "evaluate_threads_blas_default": timed(lambda: evaluate(path, feeds, threads=None), repeats),
                "max_abs_error_vs_torch": float(np.abs(out - reference).max()),
                "within_tolerance": bool(np.allclose(out, reference, rtol=TOLERANCE[precision],
                                                     atol=TOLERANCE[precision])),
                "tolerance": TOLERANCE[precision],
                "max_abs_logit": float(np.abs(reference).max()),
                "top1_agrees": bool(out.argmax() == reference.argmax()),
            }
    info["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    report = {"model": "tests/zoo/torch_nets.py build('mobilenet_v2'), 1x3x224x224, random weights",
              "goal_seconds": GOAL_SECONDS, "repeats": repeats, "machine": info,
              "torch_eager_s": torch_time, "results": results}
    out_dir = REPO / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "coreml_eval.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "coreml_eval.md").write_text(markdown(report))
    print(markdown(report))


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        "# Numpy Core ML evaluator: MobileNetV2 224",
        "",
        f"{report['model']}; PyTorch -> coremltools {m['coremltools']} ML Program (iOS16). "
        f"Warm `evaluate()` (program cached), median of {report['repeats']} runs after one warm-up. "
        f"Goal: under {report['goal_seconds']:.0f} s.",
        "",
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), Python {m['python']}, numpy {m['numpy']}, torch {m['torch']}. "
        f"Load average {m['load_average_at_start']} at start, {m['load_average_at_end']} at end "
        "(the machine is shared with other workers).",
        "",
        "| precision | ops | load (s) | evaluate, BLAS 1 thread (default) median / min (s) "
        "| evaluate, BLAS default threads median / min (s) | max abs error vs torch (max logit) "
        "| within tolerance (atol = rtol) | top-1 agrees |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for precision, r in report["results"].items():
        one, many = r["evaluate_threads_1"], r["evaluate_threads_blas_default"]
        lines.append(f"| {precision} | {r['ops']} | {r['load_s']:.3f} | {one['median_s']:.3f} / {one['min_s']:.3f} "
                     f"| {many['median_s']:.3f} / {many['min_s']:.3f} "
                     f"| {r['max_abs_error_vs_torch']:.2e} ({r['max_abs_logit']:.3f}) "
                     f"| {r['within_tolerance']} ({r['tolerance']:g}) | {r['top1_agrees']} |")
    t = report["torch_eager_s"]
    lines += [
        "",
        f"For orientation, torch eager on the same input: median {t['median_s']:.3f} s.",
        "",
        "fp16 is emulated by rounding every op result to float16 (computed in float32); GPU / Neural "
        "Engine accumulation order is not modelled. BLAS is capped at one thread by default because "
        "the per-layer products are small and a multi-threaded OpenBLAS spins when the cores are busy.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    main(parser.parse_args().repeats)
