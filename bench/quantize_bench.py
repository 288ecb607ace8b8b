"""Quantized variants: size against the physical limit, host latency, accuracy.

1. Sizes: MobileNetV2 224 (Keras ``keras.applications.MobileNetV2(weights=None)`` and the PyTorch
   zoo MobileNetV2, random weights) converted with every scheme; each artifact against parameters
   x bits / 8, and the issue's goals checked (fp16 <= 1.02, int8 <= 1.08, lut4 <= 1.15).
2. Latency: the Keras MobileNetV2 fp32 / fp16 / int8-weights / int8 (and int4) .tflite files side by
   side with ``deploykit bench`` (LiteRT, XNNPACK), in one run.
3. Accuracy: the digits model of examples/make_example_model.py trained with TensorFlow op
   determinism, every variant's held-out top-1 (LiteRT for TFLite, the numpy Core ML evaluator).

Usage: .venv/bin/python bench/quantize_bench.py [--threads 1] [--runs 30] [--skip-torch]
Writes bench/results/quantize.json and bench/results/quantize.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "examples"))

GOALS = {"fp16": 1.02, "int8-weights": 1.08, "int8": 1.08, "lut4": 1.15}
MAIN = "fp16,int8-weights,int8,int4,lut8,lut6,lut4,lut2"


def sizes(folder: Path, skip_torch: bool) -> list[dict]:
    import keras
    import numpy as np

    from deploykit import convert

    keras.utils.set_random_seed(0)
    keras_path = folder / "mobilenet_v2.keras"
    keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3)).save(keras_path)
    np.save(folder / "cal_nhwc.npy", np.random.default_rng(0).random((16, 224, 224, 3), dtype=np.float32))
    np.save(folder / "cal_nchw.npy", np.random.default_rng(0).random((16, 3, 224, 224), dtype=np.float32))
    runs = [("keras", keras_path, "cal_nhwc.npy", None, {})]
    if not skip_torch:
        runs.append(("torch", f"{REPO / 'tests/zoo/torch_nets.py'}:MobileNetV2", "cal_nchw.npy", ["1x3x224x224"], {}))
    runs.append(("keras", keras_path, "cal_nhwc.npy", None, {"per_tensor": True}))
    rows = []
    for framework, source, calibration, shape, extra in runs:
        started = time.perf_counter()
        # iOS18 so that Core ML int4 (per-block) is possible in the same run
        out = folder / f"out-{framework}{'-per-tensor' if extra else ''}"
        report = convert(source, to="tflite" if extra else "tflite,coreml", out=out, inputs=shape,
                         quantize="int8" if extra else MAIN, calibration=folder / calibration, coreml_target="iOS18",
                         verify=False, **extra)  # sizes only; random weights
        print(f"{framework}: converted {len(report.artifacts)} artifacts in {time.perf_counter() - started:.0f} s", flush=True)
        for a in report.artifacts:
            if extra and a.variant == "fp32":
                continue
            goal = GOALS.get(a.variant)
            rows.append({"source": framework, "target": a.target, "scheme": a.variant + (" per-tensor" if extra else ""), "bytes": a.size_bytes,
                         **{k: a.size_limit[k] for k in ("parameters", "bits_per_weight", "limit_bytes", "ratio")},
                         "goal": goal, "met": None if goal is None else a.size_limit["ratio"] <= goal,
                         "seconds": a.conversion_seconds, "path": str(out / a.path),
                         "uncompressed": len(a.quantization.get("uncompressed_weights", [])),
                         "float32_bytes_left": a.quantization.get("weights_left_float32_bytes")})
    return rows


def latency(rows: list[dict], threads: int, runs: int) -> list[dict]:
    from deploykit.runners.litert_bench import bench

    chosen = [r for r in rows if r["source"] == "keras" and r["target"] == "tflite"
              and r["scheme"] in ("fp32", "fp16", "int8-weights", "int8", "int4", "int8 per-tensor")]
    return [dict(bench(r["path"], threads=threads, warmup=5, runs=runs).to_json(), scheme=r["scheme"]) for r in chosen]


def accuracy(folder: Path) -> dict:
    import numpy as np
    import tensorflow as tf
    from make_example_model import build_digits_model

    from deploykit import convert
    from deploykit.runners.coreml_eval import evaluate
    from tests.pipeline.tflite_run import run_tflite
    from tests.quantize.test_accuracy import digits_training_images, top1

    tf.config.experimental.enable_op_determinism()
    np.save(folder / "digits_cal.npy", digits_training_images())
    results = {}
    for seed in (0, 1, 2):  # three training runs: the 2-point lut4 bar must hold on each, not on a lucky one
        model, keras_accuracy, (x, y) = build_digits_model(seed=seed)
        source = folder / f"digits_{seed}.keras"
        model.save(source)
        tag = "" if seed == 0 else f" seed {seed}"
        results[f"keras{tag}"] = keras_accuracy
        runs = [("", {"quantize": MAIN if seed == 0 else "tflite=int8,coreml=lut4", "calibration": folder / "digits_cal.npy",
                      "to": "tflite,coreml"})]
        runs.append((" lut-budget 0", {"quantize": "lut4", "to": "coreml", "lut_budget": 0}))
        if seed == 0:
            runs.append((" per-tensor", {"quantize": "tflite=int8,coreml=int8-weights", "to": "tflite,coreml", "per_tensor": True,
                                         "calibration": folder / "digits_cal.npy"}))
        for label, kwargs in runs:
            out = folder / f"digits-out-{seed}{label.replace(' ', '-')}"
            report = convert(source, out=out, coreml_target="iOS18", verify=False, **kwargs)
            for a in report.artifacts:
                if label and a.variant == "fp32":
                    continue
                path = out / a.path
                run = (lambda v, p=path: next(iter(run_tflite(p, {"image": v}).values()))) if a.target == "tflite" \
                    else (lambda v, p=path: next(iter(evaluate(p, {"image": v}).values())))
                results[f"{a.target}/{a.variant}{label}{tag}"] = top1(run, x, y)
    return results


def write(result: dict) -> None:
    out = REPO / "bench" / "results"
    (out / "quantize.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["# Quantized variants: size, latency, accuracy", "",
             f"Generated by bench/quantize_bench.py on {result['machine']}.", "",
             "## Size against parameters x bits / 8 (MobileNetV2 224, random weights)", "",
             "| source | target | scheme | size | limit | ratio | goal | met |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in result["sizes"]:
        met = "" if r["met"] is None else ("yes" if r["met"] else "**no**")
        lines.append(f"| {r['source']} | {r['target']} | {r['scheme']} | {r['bytes'] / 1e6:.3f} MB | {r['limit_bytes'] / 1e6:.3f} MB | "
                     f"{r['ratio']:.3f} | {r['goal'] or ''} | {met} |")
    lat = result["latency"]
    lines += ["", f"## Host latency (LiteRT {lat[0]['delegate']}, {lat[0]['threads']} thread(s), {lat[0]['warmup']} warm-up + "
              f"{lat[0]['runs']} runs; Keras MobileNetV2 224)", "",
              "| scheme | size | median | p90 | load | peak RSS |", "| --- | --- | --- | --- | --- | --- |"]
    for r in lat:
        lines.append(f"| {r['scheme']} | {r['size_bytes'] / 1e6:.2f} MB | {r['median_ms']:.1f} ms | {r['p90_ms']:.1f} ms | "
                     f"{r['load_ms']:.0f} ms | {r['peak_rss_mb']:.0f} MB |")
    acc = result["accuracy"]
    keras = ", ".join(f"{k}: {100 * v:.2f} %" for k, v in acc.items() if k.startswith("keras"))
    lines += ["", "## Held-out top-1 accuracy (digits model, 297 test images, three training seeds)", "",
              f"Keras sources: {keras}", "", "| artifact | top-1 | vs fp32 |", "| --- | --- | --- |"]
    for key, value in acc.items():
        if key.startswith("keras"):
            continue
        seed = key[key.index(" seed "):] if " seed " in key else ""
        base = acc[f"{key.split('/')[0]}/fp32{seed}"]
        lines.append(f"| {key} | {100 * value:.2f} % | {100 * (value - base):+.2f} |")
    (out / "quantize.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--skip-torch", action="store_true")
    parser.add_argument("--accuracy-only", action="store_true", help="re-measure accuracy; keep the recorded sizes and latency")
    args = parser.parse_args()
    import deploykit

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.accuracy_only:
            recorded = json.loads((REPO / "bench" / "results" / "quantize.json").read_text())
            size_rows, lat = recorded["sizes"], recorded["latency"]
        else:
            size_rows = sizes(folder, args.skip_torch)
            lat = latency(size_rows, args.threads, args.runs)
        acc = accuracy(folder)
    result = {"deploykit": deploykit.__version__, "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
              "sizes": [{k: v for k, v in r.items() if k != "path"} for r in size_rows], "latency": lat, "accuracy": acc,
              "goals": {f"{r['source']} {r['target']} {r['scheme']}": r["met"] for r in size_rows if r["met"] is not None}}
    write(result)
    missed = [k for k, v in result["goals"].items() if not v]
    print(f"size goals: {len(result['goals']) - len(missed)} met, {len(missed)} missed: {', '.join(missed) or 'none'}")


if __name__ == "__main__":
    main()
