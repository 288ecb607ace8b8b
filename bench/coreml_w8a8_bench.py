"""Core ML int8 (W8A8) on Linux, run the way a user runs it: size, parity, held-out accuracy, seconds.

Each case is one ``deploykit convert SOURCE --to coreml --quantize fp16,int8 --calibration DATA --coreml-target
iOS17 --json`` (the CLI in a subprocess, wall time measured), so the fp32, fp16 and int8 artifacts of one
conversion sit side by side with the parity record ``convert`` checked each of them with.

1. digits: the example model (examples/models/digits.keras; ``bash examples/run_example.sh`` makes it), calibrated
   on 100 of its 1,500 training images; top-1 on its 297 held-out images for Keras, Core ML fp32 / fp16 / int8
   (numpy Core ML evaluator) and, as a yardstick, TFLite int8 of the same conversion (LiteRT).
2. ppocrv4-rec: bench/corpus/models/ppocrv4-rec/model.onnx (PP-OCRv4 text recogniser, a real pretrained model),
   its data.npz (8 real-shaped samples) as ``--calibration`` and ``--data``.
3. mobilenet_v2: keras.applications.MobileNetV2(weights=None, classifier_activation=None) at 224 (3.5M
   parameters, random weights, batch norms with random statistics as tests/zoo does), 32 uniform(-1, 1)
   calibration samples (its input domain).

Usage: .venv/bin/python bench/coreml_w8a8_bench.py [--only digits,ppocrv4-rec,mobilenet_v2]
Writes bench/results/coreml-w8a8.json and bench/results/coreml-w8a8.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "examples"))
DEPLOYKIT = [sys.executable, "-m", "deploykit.cli.app"]
PPOCR = REPO / "bench" / "corpus" / "models" / "ppocrv4-rec"


def convert(source, out: Path, extra: list[str], to: str = "coreml", quantize: str = "fp16,int8") -> tuple[dict, float, list[str]]:
    """(deploykit-report.json, wall seconds, the command as a user types it). Exit code 1 is a parity failure:
    the artifacts and the record are written for inspection, and the figures are kept."""
    command = [*DEPLOYKIT, "convert", str(source), "--to", to, "--quantize", quantize, "--coreml-target", "iOS17",
               "--out", str(out), "--json", *extra]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 1) or not (out / "deploykit-report.json").exists():
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    shown = ["deploykit", *command[len(DEPLOYKIT):]]
    record = json.loads((out / "deploykit-report.json").read_text())
    record["exit_code"] = done.returncode
    return record, seconds, shown


def rows(record: dict, case: str) -> list[dict]:
    artifacts = record["artifacts"]
    sizes = {(a["target"], a["variant"]): a["size_bytes"] for a in artifacts}
    result = []
    for a in artifacts:
        parity = a.get("parity") or {}
        outputs = parity.get("outputs") or {}
        first = next(iter(outputs.values()), {})
        q = a.get("quantization") or {}
        result.append({
            "case": case, "target": a["target"], "variant": a["variant"], "bytes": a["size_bytes"],
            "vs_fp32": a["size_bytes"] / sizes[(a["target"], "fp32")], "vs_fp16": a["size_bytes"] / sizes.get((a["target"], "fp16"), a["size_bytes"]),
            "limit_ratio": (a.get("size_limit") or {}).get("ratio"), "seconds": a.get("conversion_seconds"),
            "profile": parity.get("profile"), "passed": parity.get("passed"), "samples": parity.get("samples"),
            "cosine": first.get("cosine_similarity"), "snr_db": first.get("snr_db"), "max_rel_error": first.get("max_rel_error"),
            "top1_agreement": first.get("top1_agreement"), "outputs": len(outputs),
            "quantized_activations": q.get("quantized_activations"), "activations": q.get("activations"),
            "weights": q.get("weights"), "calibration": q.get("calibration"), "ops": a.get("op_histogram"),
        })
    return result


def digits(folder: Path) -> dict:
    import numpy as np
    from make_example_model import digits_split

    from deploykit.runners.coreml_eval import evaluate
    from tests.pipeline.tflite_run import run_tflite
    from tests.quantize.test_accuracy import top1

    source = REPO / "examples" / "models" / "digits.keras"
    if not source.exists():
        raise SystemExit(f"{source} is missing: bash examples/run_example.sh makes it")
    (train_x, _), (test_x, test_y) = digits_split()
    np.save(folder / "digits_cal.npy", train_x)
    out = folder / "digits"
    record, seconds, command = convert(source, out, ["--calibration", str(folder / "digits_cal.npy")], to="tflite,coreml",
                                       quantize="tflite=int8,coreml=fp16,coreml=int8")
    import keras

    import deploykit.quantize.coreml_w8a8 as w8a8
    from deploykit.core.types import TensorSpec
    from deploykit.parity import metrics
    from deploykit.quantize.calibration import load_calibration
    from deploykit.quantize.options import QuantizeOptions

    model = keras.models.load_model(source)
    reference = model(test_x, training=False).numpy().astype(np.float64)
    accuracy = {"keras": top1(lambda v: model(v, training=False).numpy(), test_x, test_y)}
    paths = {f"{a['target']}/{a['variant']}": out / a["path"] for a in record["artifacts"]}
    # the alternative not taken: coremltools' default linear_symmetric activations, from the same fp16 artifact
    inputs = (TensorSpec("image", (1, 32, 32, 3), "float32", "NHWC"),)
    chosen, w8a8.ACTIVATION_MODE = w8a8.ACTIVATION_MODE, "linear_symmetric"
    try:
        w8a8.quantize_w8a8(paths["coreml/fp16"], folder / "digits-symmetric.mlpackage", QuantizeOptions(),
                           load_calibration(folder / "digits_cal.npy", inputs, 100), inputs)
    finally:
        w8a8.ACTIVATION_MODE = chosen
    paths["coreml/int8, linear_symmetric activations (not taken)"] = folder / "digits-symmetric.mlpackage"
    held_out = {}
    for name, path in paths.items():
        run = (lambda v, p=path: next(iter(run_tflite(p, {"image": v}).values()))) if name.startswith("tflite") \
            else (lambda v, p=path: next(iter(evaluate(p, {"image": v}).values())))
        accuracy[name] = top1(run, test_x, test_y)
        logits = np.concatenate([run(test_x[i:i + 1]) for i in range(len(test_x))]).astype(np.float64)
        held_out[name] = {"cosine": metrics.cosine_similarity(reference, logits), "snr_db": metrics.snr_db(reference, logits)}
    return {"command": command, "wall_seconds": seconds, "exit_code": record["exit_code"], "rows": rows(record, "digits"),
            "accuracy": accuracy, "held_out_logits": held_out, "held_out": len(test_y)}


def ppocr(folder: Path) -> dict:
    """The CLI conversion (Core ML and, as a yardstick, TFLite int8), then what an OCR decoder reads: the argmax
    class of each of the 40 time steps against ONNX Runtime's, over every step and over the steps where the
    source reads a character (not the CTC blank, class 0). Also the alternative not taken: the same pairs with
    coremltools' default linear_symmetric activations (no zero point), made in-process from the fp16 artifact."""
    import numpy as np
    import onnxruntime as ort

    import deploykit.quantize.coreml_w8a8 as w8a8
    from deploykit.core.types import TensorSpec
    from deploykit.parity import metrics
    from deploykit.quantize.calibration import load_calibration
    from deploykit.quantize.options import QuantizeOptions
    from deploykit.runners.coreml_eval import evaluate
    from tests.pipeline.tflite_run import run_tflite

    data = str(PPOCR / "data.npz")
    out = folder / "ppocr"
    record, seconds, command = convert(PPOCR / "model.onnx", out, ["--input", "x=1x3x48x320", "--calibration", data, "--data", data],
                                       to="tflite,coreml", quantize="tflite=int8,coreml=fp16,coreml=int8")
    samples = np.load(data)["x"]
    session = ort.InferenceSession(str(PPOCR / "model.onnx"))
    reference = np.concatenate([session.run(None, {"x": s[None]})[0] for s in samples]).astype(np.float64)
    read = reference.argmax(-1) != 0

    def score(outputs):
        got = np.concatenate(outputs).astype(np.float64).reshape(reference.shape)
        same = got.argmax(-1) == reference.argmax(-1)
        return {"cosine": metrics.cosine_similarity(reference, got), "argmax_agreement": float(same.mean()),
                "character_agreement": float(same[read].mean())}

    def tflite(path, sample):
        try:
            return next(iter(run_tflite(path, {"x": sample[None]}).values()))
        except Exception:  # noqa: BLE001  (onnx2tf made the input NHWC)
            return next(iter(run_tflite(path, {"x": sample[None].transpose(0, 2, 3, 1)}).values()))

    decoded = {}
    for a in record["artifacts"]:
        path = out / a["path"]
        if a["target"] == "coreml":
            decoded[f"coreml/{a['variant']}"] = score([next(iter(evaluate(path, {"x": s[None]}).values())) for s in samples])
        elif a["variant"] == "int8":
            decoded["tflite/int8"] = score([tflite(path, s) for s in samples])
    fp16 = next(out / a["path"] for a in record["artifacts"] if (a["target"], a["variant"]) == ("coreml", "fp16"))
    inputs = (TensorSpec("x", (1, 3, 48, 320), "float32", "NCHW"),)
    calibration = load_calibration(data, inputs, 100)
    chosen, w8a8.ACTIVATION_MODE = w8a8.ACTIVATION_MODE, "linear_symmetric"
    try:
        w8a8.quantize_w8a8(fp16, folder / "ppocr-symmetric.mlpackage", QuantizeOptions(), calibration, inputs)
    finally:
        w8a8.ACTIVATION_MODE = chosen
    decoded["coreml/int8, linear_symmetric activations (coremltools' default, not taken)"] = score(
        [next(iter(evaluate(folder / "ppocr-symmetric.mlpackage", {"x": s[None]}).values())) for s in samples])
    return {"command": command, "wall_seconds": seconds, "exit_code": record["exit_code"], "rows": rows(record, "ppocrv4-rec"),
            "decoded": decoded, "time_steps": int(read.size), "character_steps": int(read.sum())}


def mobilenet(folder: Path) -> dict:
    import keras
    import numpy as np

    from tests.zoo.keras_nets import _randomize_batchnorm

    keras.utils.set_random_seed(0)
    source = folder / "mobilenet_v2.keras"
    # logits, and batch norms with random statistics: the default softmax over 1,000 classes of an untrained
    # net is near-uniform, and hides any error (fp16 and int8 both measured 4e-7 of the peak on it)
    model = keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3), classifier_activation=None)
    _randomize_batchnorm(model, 0).save(source)
    np.save(folder / "mnv2_cal.npy", np.random.default_rng(0).uniform(-1, 1, (32, 224, 224, 3)).astype(np.float32))
    record, seconds, command = convert(source, folder / "mnv2", ["--calibration", str(folder / "mnv2_cal.npy")])
    return {"command": command, "wall_seconds": seconds, "exit_code": record["exit_code"], "rows": rows(record, "mobilenet_v2")}


CASES = {"digits": digits, "ppocrv4-rec": ppocr, "mobilenet_v2": mobilenet}


def write(result: dict) -> None:
    out = REPO / "bench" / "results"
    (out / "coreml-w8a8.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["# Core ML int8 (W8A8) on Linux", "",
             f"Generated by bench/coreml_w8a8_bench.py on {result['machine']}. Activation ranges from deploykit's numpy "
             "Core ML evaluator on the calibration data; quantize / dequantize pairs and int8 weights written by "
             "coremltools' own passes (deploykit/quantize/coreml_w8a8.py). Parity is what `convert` recorded for each "
             "artifact against its source (profile `int8` for the W8A8 artifact).", ""]
    for case, figures in result["cases"].items():
        lines += [f"## {case}", "", "```sh", " ".join(figures["command"]), "```", "",
                  f"Wall time of the command: {figures['wall_seconds']:.0f} s; exit code {figures['exit_code']}"
                  + (" (a variant failed its parity profile: artifacts and record written for inspection)." if figures["exit_code"] else "."), "",
                  "| target | variant | size | vs fp32 | vs fp16 | seconds | profile | passed | cosine | SNR dB | max rel | "
                  "top-1 agree | activations with pairs |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in figures["rows"]:
            f = (lambda v, fmt: format(v, fmt) if isinstance(v, (int, float)) else ("" if v is None else str(v)))
            lines.append(f"| {r['target']} | {r['variant']} | {r['bytes'] / 1e6:.3f} MB | {r['vs_fp32']:.3f} | {r['vs_fp16']:.3f} | "
                         f"{f(r['seconds'], '.1f')} | {r['profile'] or ''} | {r['passed']} | {f(r['cosine'], '.5f')} | "
                         f"{f(r['snr_db'], '.1f')} | {f(r['max_rel_error'], '.3g')} | {f(r['top1_agreement'], '.3f')} | "
                         f"{'' if r['quantized_activations'] is None else r['quantized_activations']} |")
        if "decoded" in figures:
            lines += ["", f"What a CTC decoder reads: the argmax class of each time step against ONNX Runtime's, over all "
                      f"{figures['time_steps']} steps of the samples and over the {figures['character_steps']} steps where the "
                      "source reads a character (cosine over the whole softmax output):", "",
                      "| artifact | cosine | argmax agreement | character agreement |", "| --- | --- | --- | --- |"]
            lines += [f"| {k} | {v['cosine']:.4f} | {100 * v['argmax_agreement']:.1f} % | {100 * v['character_agreement']:.1f} % |"
                      for k, v in figures["decoded"].items()]
        if "accuracy" in figures:
            lines += ["", f"Held-out top-1 ({figures['held_out']} images the model never saw), and the logits of all of them "
                      "against Keras':", "", "| model | top-1 | cosine | SNR dB |", "| --- | --- | --- | --- |"]
            logits = figures.get("held_out_logits", {})
            lines += [f"| {k} | {100 * v:.2f} % | " + (f"{logits[k]['cosine']:.5f} | {logits[k]['snr_db']:.1f} |" if k in logits else " | |")
                      for k, v in figures["accuracy"].items()]
        lines.append("")
    (out / "coreml-w8a8.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default=",".join(CASES), help="comma-separated cases")
    args = parser.parse_args()
    import deploykit

    chosen = [c.strip() for c in args.only.split(",") if c.strip()]
    previous = REPO / "bench" / "results" / "coreml-w8a8.json"
    cases = json.loads(previous.read_text())["cases"] if previous.exists() else {}
    with tempfile.TemporaryDirectory() as tmp:
        for case in chosen:  # written after each case: one failing case keeps the others' figures
            print(f"{case} ...", flush=True)
            cases[case] = CASES[case](Path(tmp))
            print(f"{case}: {cases[case]['wall_seconds']:.0f} s", flush=True)
            write({"deploykit": deploykit.__version__,
                   "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
                   "cases": {c: cases[c] for c in CASES if c in cases}})


if __name__ == "__main__":
    main()
