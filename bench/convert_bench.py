"""Conversion time of deploykit against the bare upstream call, MobileNetV2 224 (random weights), every path.

Both sides start from the same file on disk and end with the artifact written, run in the same
process after a warm-up (imports paid once), interleaved, repeated; the median is recorded.
Usage: .venv/bin/python bench/convert_bench.py [--repeats 3]
Writes bench/results/convert.json and bench/results/convert.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import deploykit  # noqa: E402
from deploykit.core.noise import capture_output  # noqa: E402

SHAPE_NCHW = (1, 3, 224, 224)


def make_sources(folder: Path) -> dict[str, Path]:
    import keras
    import torch

    from tests.zoo import torch_nets

    keras.utils.set_random_seed(0)
    keras_path = folder / "mobilenet_v2.keras"
    keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3)).save(keras_path)
    module = torch_nets.build("mobilenet_v2")
    example = torch.rand(SHAPE_NCHW)
    pt2_path = folder / "mobilenet_v2.pt2"
    torch.export.save(torch.export.export(module, (example,)), pt2_path)
    onnx_path = folder / "mobilenet_v2.onnx"
    torch.onnx.export(module, (example,), str(onnx_path), dynamo=False, opset_version=17, input_names=["image"], output_names=["logits"])
    return {"keras": keras_path, "torch": pt2_path, "onnx": onnx_path}


def bare_keras_tflite(src: Path, out: Path):
    import keras
    import tensorflow as tf

    model = keras.saving.load_model(src, safe_mode=True)
    out.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())


def bare_keras_coreml(src: Path, out: Path):
    import coremltools as ct
    import keras

    model = keras.saving.load_model(src, safe_mode=True)
    ct.convert(model, convert_to="mlprogram", inputs=[ct.TensorType(shape=(1, 224, 224, 3))],
               compute_precision=ct.precision.FLOAT32, minimum_deployment_target=ct.target.iOS16).save(str(out))


def bare_torch_tflite(src: Path, out: Path):
    import litert_torch
    import torch

    module = torch.export.load(src).module()
    litert_torch.convert(module, (torch.rand(SHAPE_NCHW),)).export(str(out))


def bare_torch_coreml(src: Path, out: Path):
    import coremltools as ct
    import torch

    module = torch.export.load(src).module()
    traced = torch.jit.trace(module, torch.rand(SHAPE_NCHW))
    ct.convert(traced, convert_to="mlprogram", inputs=[ct.TensorType(name="x", shape=SHAPE_NCHW)],
               compute_precision=ct.precision.FLOAT32, minimum_deployment_target=ct.target.iOS16).save(str(out))


def _onnx2tf(src: Path, work: Path) -> Path:
    import shutil

    import numpy as np
    import onnx2tf

    work.mkdir(parents=True, exist_ok=True)
    local = work / src.name  # onnx2tf's onnxsim rewrites its input in place
    shutil.copyfile(src, local)
    np.save(work / "calibration_image_sample_data_20x128x128x3_float32.npy", np.zeros((20, 128, 128, 3), np.float32))
    cwd = os.getcwd()
    os.chdir(work)
    try:
        onnx2tf.convert(input_onnx_file_path=str(local), output_folder_path=str(work / "out"), non_verbose=True)
    finally:
        os.chdir(cwd)
    return work / "out"


def bare_onnx_tflite(src: Path, out: Path):
    import shutil

    folder = _onnx2tf(src, out.parent / f"bare-{out.stem}")
    shutil.copyfile(next(folder.glob("*_float32.tflite")), out)


def bare_onnx_coreml(src: Path, out: Path):
    import coremltools as ct

    folder = _onnx2tf(src, out.parent / f"bare-{out.stem}")
    ct.convert(str(folder), source="tensorflow", convert_to="mlprogram", compute_precision=ct.precision.FLOAT32,
               minimum_deployment_target=ct.target.iOS16).save(str(out))


BARE = {
    ("keras", "tflite"): bare_keras_tflite, ("keras", "coreml"): bare_keras_coreml,
    ("torch", "tflite"): bare_torch_tflite, ("torch", "coreml"): bare_torch_coreml,
    ("onnx", "tflite"): bare_onnx_tflite, ("onnx", "coreml"): bare_onnx_coreml,
}


def timed(fn) -> float:
    started = time.perf_counter()
    with capture_output():
        fn()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with capture_output():
            sources = make_sources(tmp)
        for (framework, target), bare in BARE.items():
            src = sources[framework]
            suffix = ".tflite" if target == "tflite" else ".mlpackage"
            # Warm-up: pay each library's import and first-call cost once, for both sides.
            timed(lambda: bare(src, tmp / f"warm{suffix}"))
            timed(lambda: deploykit.convert(src, to=target, out=tmp / "warm-dk"))
            bare_times, dk_times = [], []
            for i in range(args.repeats):
                bare_times.append(timed(lambda: bare(src, tmp / f"bare{i}{suffix}")))
                dk_times.append(timed(lambda: deploykit.convert(src, to=target, out=tmp / f"dk{i}")))
            report = deploykit.convert(src, to=target, out=tmp / "final")
            artifact = report.artifacts[0]
            bare_median, dk_median = statistics.median(bare_times), statistics.median(dk_times)
            rows.append({
                "path": f"{framework}->{target}", "converter": artifact.converter,
                "bare_seconds": [round(t, 3) for t in bare_times], "deploykit_seconds": [round(t, 3) for t in dk_times],
                "bare_median": round(bare_median, 3), "deploykit_median": round(dk_median, 3),
                "overhead": round(dk_median / bare_median - 1, 4), "artifact_bytes": artifact.size_bytes,
            })
            print(json.dumps(rows[-1]), flush=True)
    result = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
              "model": "MobileNetV2 224x224, random weights (Keras applications / tests.zoo.torch_nets)",
              "repeats": args.repeats, "goal": "deploykit overhead <= 10% over the bare upstream conversion", "rows": rows,
              "tool_versions": deploykit.pipeline.tool_versions.tool_versions("onnx", ("tflite", "coreml")) | deploykit.pipeline.tool_versions.tool_versions("torch", ("tflite",))}
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "convert.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["# Conversion time: deploykit vs the bare upstream call", "",
             f"MobileNetV2 224 (random weights), {os.cpu_count()} CPUs, median of {args.repeats} after a warm-up. "
             "Both sides start from the file on disk and end with the artifact written.", "",
             "| path | bare upstream (s) | deploykit (s) | overhead | artifact |", "| --- | --- | --- | --- | --- |"]
    for row in rows:
        lines.append(f"| {row['path']} | {row['bare_median']:.2f} | {row['deploykit_median']:.2f} | "
                     f"{row['overhead'] * 100:+.1f}% | {row['artifact_bytes'] / 1e6:.1f} MB |")
    (out / "convert.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    import deploykit.pipeline.tool_versions  # noqa: F401

    main()
