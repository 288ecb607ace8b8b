"""Fit the Core ML latency cost model (deploykit/runners/coreml_cost.py) to LiteRT latencies on this machine.

No Core ML runtime runs here, so the report estimates a Core ML artifact's latency from its ML Program:
MACs / MAC_RATE + bytes / MEMORY_RATE + ops x OP_OVERHEAD_S. The three constants are fitted on models
converted to both targets: for each, the op counts of its fp32 Core ML program (``program_cost``) against
the measured LiteRT latency of its fp32 TFLite twin (``deploykit.runners.litert_bench.bench``: a child process,
XNNPACK, one thread, 10 warm-up + 50 timed runs; the median of ``--repeats`` such runs). The fit is a
non-negative least squares on relative errors (the latencies span three orders of magnitude), and every
model's error is also given leave-one-out (fitted without it), the honest figure for a new model.

Models: tests/zoo's five small Keras nets at 32 and 128 pixels, Keras' MobileNetV2 (random weights) at
96 and 224 pixels, and a dense MLP (fully connected only).

Usage: .venv/bin/python bench/coreml_cost_calibration.py [--repeats 3]
Writes bench/results/coreml_cost_calibration.json and .md; copy the fitted constants into coreml_cost.py.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

SMALL = ("mobilenet", "resnet", "shufflenet", "squeezenet", "efficientnet")


def models(folder: Path) -> list[tuple[str, Path]]:
    """(name, .keras path) of every calibration model, written to ``folder``."""
    import keras

    from tests.zoo import keras_nets

    made = []
    for size in (32, 128):
        made += [(f"{name} {size}px", keras_nets.build(name, 0, size)) for name in SMALL]
    keras.utils.set_random_seed(0)  # latency does not depend on the weights' values
    made.append(("MobileNetV2 96px", keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3))))
    made.append(("MobileNetV2 224px", keras_nets.build("mobilenet_v2")))
    keras.utils.set_random_seed(0)
    inp = keras.Input((784,), name="x")
    x = keras.layers.Dense(1024, activation="relu")(keras.layers.Dense(1024, activation="relu")(inp))
    made.append(("MLP 784-1024-1024-10", keras.Model(inp, keras.layers.Dense(10)(x))))
    paths = []
    for name, model in made:
        path = folder / (name.replace(" ", "_").replace("-", "_") + ".keras")
        model.save(path)
        paths.append((name, path))
    return paths


def measure(name: str, source: Path, out: Path, repeats: int) -> dict:
    from deploykit import convert
    from deploykit.runners.coreml_cost import program_cost
    from deploykit.runners.coreml_eval.api import load_program
    from deploykit.runners.litert_bench import bench

    with contextlib.redirect_stdout(sys.stderr):
        report = convert(source, to=("tflite", "coreml"), out=out, verify=False)
    paths = {a.target: out / a.path for a in report.artifacts}
    medians = [bench(paths["tflite"], threads=1, warmup=10, runs=50).median_ms for _ in range(repeats)]
    cost = program_cost(load_program(paths["coreml"]))
    return {"model": name, "litert_ms": statistics.median(medians), "litert_runs_ms": medians,
            "macs": cost.macs, "bytes": cost.bytes, "ops": cost.ops}


def fit(rows: list[dict]) -> tuple[float, float, float]:
    """(MACs per s, bytes per s, s per op) minimizing the relative error, all three non-negative."""
    from scipy.optimize import nnls

    seconds = np.array([r["litert_ms"] / 1000 for r in rows])
    features = np.array([[r["macs"], r["bytes"], r["ops"]] for r in rows], dtype=np.float64)
    scale = features.max(axis=0)  # conditioning: the columns differ by nine orders of magnitude
    coef, _ = nnls(features / scale / seconds[:, None], np.ones(len(rows)))
    coef = coef / scale  # seconds per MAC, per byte, per op
    return (1 / coef[0] if coef[0] else float("inf"), 1 / coef[1] if coef[1] else float("inf"), float(coef[2]))


def predict(row: dict, constants) -> float:
    mac_rate, memory_rate, overhead = constants
    return 1000 * (row["macs"] / mac_rate + row["bytes"] / memory_rate + row["ops"] * overhead)


def machine() -> dict:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    from deploykit.pipeline.tool_versions import version_of

    return {"nproc": len(os.sched_getaffinity(0)), "cpu": cpu, "python": platform.python_version(),
            "ai-edge-litert": version_of("ai-edge-litert"), "coremltools": version_of("coremltools"),
            "load_average_at_start": [round(v, 2) for v in os.getloadavg()]}


def main(repeats: int) -> None:
    info = machine()
    with tempfile.TemporaryDirectory() as tmp:
        sources = models(Path(tmp))
        rows = []
        for name, source in sources:
            print(f"{name} ...", file=sys.stderr)
            rows.append(measure(name, source, Path(tmp) / source.stem, repeats))
    constants = fit(rows)
    for i, row in enumerate(rows):
        row["estimate_ms"] = predict(row, constants)
        row["error_percent"] = 100 * (row["estimate_ms"] / row["litert_ms"] - 1)
        held_out = fit(rows[:i] + rows[i + 1:])
        row["leave_one_out_ms"] = predict(row, held_out)
        row["leave_one_out_error_percent"] = 100 * (row["leave_one_out_ms"] / row["litert_ms"] - 1)
    info["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    result = {"constants": {"MAC_RATE": constants[0], "MEMORY_RATE": constants[1], "OP_OVERHEAD_S": constants[2]},
              "repeats": repeats, "machine": info, "models": rows}
    out = REPO / "bench" / "results"
    (out / "coreml_cost_calibration.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "coreml_cost_calibration.md").write_text(markdown(result))
    print(markdown(result))


def markdown(result: dict) -> str:
    c, m = result["constants"], result["machine"]
    rows = result["models"]
    errors = [abs(r["error_percent"]) for r in rows]
    held = [abs(r["leave_one_out_error_percent"]) for r in rows]
    lines = [
        "# Core ML latency estimate: calibrating the op-count cost model",
        "",
        "Core ML does not run here, so deploykit's report estimates a Core ML artifact's host latency from its "
        "ML Program (`deploykit/runners/coreml_cost.py`): MACs / MAC_RATE + bytes read and written / MEMORY_RATE "
        "+ ops x OP_OVERHEAD_S. This run fits the three constants to the measured LiteRT latency of each "
        "model's fp32 TFLite twin (`deploykit.runners.litert_bench.bench`: XNNPACK, 1 thread, 10 warm-up + 50 timed runs, "
        f"median of {result['repeats']} runs), by non-negative least squares on relative error.",
        "",
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), Python {m['python']}, ai-edge-litert {m['ai-edge-litert']}, "
        f"coremltools {m['coremltools']}. Load average {m['load_average_at_start']} at start, "
        f"{m['load_average_at_end']} at end (the machine is shared).",
        "",
        "## Fitted constants (hard-coded in deploykit/runners/coreml_cost.py)",
        "",
        "| constant | value |",
        "| --- | --- |",
        f"| MAC_RATE | {c['MAC_RATE']:.4g} MACs/s ({c['MAC_RATE'] / 1e9:.3g} GMAC/s) |",
        f"| MEMORY_RATE | {c['MEMORY_RATE']:.4g} bytes/s ({c['MEMORY_RATE'] / 1e9:.3g} GB/s) |",
        f"| OP_OVERHEAD_S | {c['OP_OVERHEAD_S']:.4g} s ({c['OP_OVERHEAD_S'] * 1e6:.3g} µs per op) |",
        "",
        "## Estimate against measurement",
        "",
        "| model | MACs | bytes | Core ML ops | LiteRT measured (ms) | estimate (ms) | error | "
        "leave-one-out estimate (ms) | leave-one-out error |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(f"| {r['model']} | {r['macs']:,} | {r['bytes']:,} | {r['ops']} | {r['litert_ms']:.3f} | "
                     f"{r['estimate_ms']:.3f} | {r['error_percent']:+.0f} % | {r['leave_one_out_ms']:.3f} | "
                     f"{r['leave_one_out_error_percent']:+.0f} % |")
    lines += [
        "",
        f"Absolute error: median {statistics.median(errors):.0f} %, worst {max(errors):.0f} % (fitted on all); "
        f"leave-one-out median {statistics.median(held):.0f} %, worst {max(held):.0f} %.",
        "",
        "What the figure is: how long this op mix takes on this host's CPU, calibrated so that it is comparable "
        "with the TFLite figures in the same report and between Core ML variants. It is not a device figure: "
        "a phone's Neural Engine or GPU runs the same program on other hardware, and Core ML fuses ops at "
        "compile time (the overhead term absorbs some of that). The report labels it \"estimate (op-count cost "
        "model, no Core ML runtime on this machine)\".",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    main(parser.parse_args().repeats)
