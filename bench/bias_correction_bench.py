"""Bias correction measured: each compressed variant made with and without it, on real weights, scored on a task.

    nice -n 10 .venv/bin/python bench/bias_correction_bench.py                       # digits and ocr, both targets
    nice -n 10 .venv/bin/python bench/bias_correction_bench.py --models ocr --targets tflite
    .venv/bin/python bench/bias_correction_bench.py --render                         # only the .md from the .json

For each model and target, ``deploykit convert`` runs twice as a user runs it (a subprocess), once as is and once
with ``--no-bias-correction``, into ``--work``/<model>/<target>-{on,off}; both folders' artifacts are then scored on
the task's held-out set with deploykit's runners (bench/accuracy/artifacts.py). Per scheme the row gives the step's
record (applied or why not, layers corrected, output noise before and after on the held-out calibration samples,
seconds), the parity verdict, what the repair kept in float in each run, the size, and the task metric without and
with the step.

Models (the sets of bench/accuracy, README there):
- ``digits``: the example digits classifier (examples/models/digits.keras), top-1 on its 297 held-out images;
  calibration: the first 200 training images. TFLite int8, int8-weights, sparse50; Core ML int8 (W8A8, iOS17),
  int8-weights, lut4, sparse50.
- ``ocr``: PP-OCRv4's recogniser (bench/corpus/models/ppocrv4-rec/model.onnx, x=1x3x48x320), character accuracy on
  300 rendered lines; calibration: dist/accuracy/ppocr/ocr-calibration.npz (100 other lines). TFLite int8,
  int8-weights, int4, sparse50; Core ML (iOS18, as bench/accuracy) int8-weights, lut4, sparse50.

Results: bench/results/bias-correction.json (each model and target stored as it finishes; a later run redoes only
what it is asked, ``--again`` to measure again what is stored) and bias-correction.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bench.accuracy import artifacts as arts  # noqa: E402

RESULTS = REPO / "bench" / "results"
DEPLOYKIT = [sys.executable, "-m", "deploykit.cli.app"]
SCHEMES = {
    ("digits", "tflite"): "int8,int8-weights,sparse50",
    ("digits", "coreml"): "int8,int8-weights,lut4,sparse50",
    ("ocr", "tflite"): "int8,int8-weights,int4,sparse50",
    ("ocr", "coreml"): "int8-weights,lut4,sparse50",
}
COREML_TARGET = {"digits": "iOS17", "ocr": "iOS18"}  # Core ML int8 (W8A8) needs iOS17; bench/accuracy used iOS18


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def convert(source: Path, name: str, target: str, schemes: str, data: Path, out: Path, extra: list[str],
            correction: bool, verify: bool = True) -> float:
    command = DEPLOYKIT + ["convert", str(source), "--to", target, "--name", name, "--quantize", schemes,
                           *(["--data", str(data)] if verify else ["--no-verify"]), "--out", str(out), "--quiet", *extra]
    if "int8" in schemes.split(","):
        command += ["--calibration", str(data)]
    if target == "coreml":
        command += ["--coreml-target", COREML_TARGET["ocr" if name.startswith("ppocr") else "digits"]]
    if not correction and verify:
        command.append("--no-bias-correction")
    log(" ".join(command[2:]))
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=out.parent)
    (out.parent / f"{out.name}.log").write_text(done.stdout + done.stderr)
    seconds = time.perf_counter() - started
    log(f"exit {done.returncode} in {seconds:.0f} s")
    if not (out / arts.REPORT).is_file():
        raise RuntimeError(f"deploykit convert wrote no record (exit {done.returncode}); see {out}.log")
    return round(seconds, 1)


def setup(model: str, work: Path, lines: int) -> dict:
    """Where the model's runs go, its source and calibration data, and how an artifact is scored."""
    if model == "digits":
        from bench.accuracy import digits

        folder = work / "digits"
        folder.mkdir(parents=True, exist_ok=True)
        data = folder / "digits-calibration.npz"
        np.savez(data, **{digits.INPUT_NAME: digits.calibration()})
        source, name, extra = digits.model_path(folder), "digits", []
        x, y = digits.held_out()

        def score(item):
            with arts.open_artifact(item) as predict:
                return {"top1": digits.top1(predict, x, y)["top1"]}
        metric, set_size = "top1", len(x)
    else:
        from bench.accuracy import ocr

        folder = work / "ocr"
        folder.mkdir(parents=True, exist_ok=True)
        data = REPO / "dist" / "accuracy" / "ppocr" / "ocr-calibration.npz"
        if not data.is_file():
            data, _ = ocr.write_set(ocr.build_set(100, seed=ocr.SEED + 1), folder, "ocr-calibration")
        source, name, extra = ocr.MODEL, "ppocrv4-rec", ["--input", f"{ocr.INPUT_NAME}=1x3x{ocr.HEIGHT}x{ocr.WIDTH}"]
        held_out = ocr.build_set(lines)

        def score(item):
            with arts.open_artifact(item) as predict:
                found = ocr.score_predict(predict, held_out)
            return {"char_accuracy": found["char_accuracy"], "line_accuracy": found["line_accuracy"]}
        metric, set_size = "char_accuracy", len(held_out)
    return {"folder": folder, "data": data, "source": source, "name": name, "extra": extra, "score": score,
            "metric": metric, "set": set_size}


def pipeline(model: str, target: str, work: Path, lines: int) -> dict:
    """``deploykit convert`` with and without the step; both scored."""
    schemes = SCHEMES[(model, target)]
    the = setup(model, work, lines)
    folder, data, source, name, extra, score, metric = (the[k] for k in ("folder", "data", "source", "name", "extra",
                                                                         "score", "metric"))
    runs, seconds = {}, {}
    for mode in ("off", "on"):
        out = folder / f"{target}-{mode}"
        if not (out / arts.REPORT).is_file():
            seconds[mode] = convert(source, name, target, schemes, data, out, extra, mode == "on")
        runs[mode] = {item.variant: item for item in arts.artifacts_of(out)}
    rows = []
    started = time.perf_counter()
    fp32 = score(runs["off"]["fp32"])
    log(f"{model} {target} fp32: {fp32}")
    for scheme in schemes.split(","):
        off, on = runs["off"].get(scheme), runs["on"].get(scheme)
        if off is None or on is None:
            rows.append({"scheme": scheme, "missing": [m for m, i in (("off", off), ("on", on)) if i is None]})
            continue
        row = {"scheme": scheme, "bias_correction": on.record.quantization.get("bias_correction"),
               "size_off": off.size_bytes, "size_on": on.size_bytes,
               "parity_off": _parity(off), "parity_on": _parity(on),
               "kept_float_off": _kept(off), "kept_float_on": _kept(on)}
        row["off"], row["on"] = score(off), score(on)
        row["change"] = round(100 * (row["on"][metric] - row["off"][metric]), 2)
        log(f"{model} {target} {scheme}: {row['off']} -> {row['on']} ({row['bias_correction']})")
        rows.append(row)
    return {"model": model, "target": target, "schemes": schemes, "metric": metric, "set": the["set"],
            "calibration": str(data.relative_to(REPO) if data.is_relative_to(REPO) else data),
            "convert_seconds": seconds, "score_seconds": round(time.perf_counter() - started, 1), "fp32": fp32, "rows": rows}


def plain(model: str, target: str, work: Path, lines: int) -> dict:
    """The step alone, without the repair it can spare: variants made with ``--no-verify`` (no repair, no step), then
    ``bias_correction.correct`` on each with the samples the step takes (every calibration sample in the artifact's
    layout: 8 spread over them fit, 32 others judge), both scored. Core ML's reference is the plain fp16 program
    (``--no-verify`` makes no fp16 rescue), so these variants can differ from the pipeline's."""
    import dataclasses
    import shutil

    from deploykit.quantize.layerwise.bias_correction import correct

    schemes = SCHEMES[(model, target)]
    the = setup(model, work, lines)
    folder, data, score, metric = the["folder"], the["data"], the["score"], the["metric"]
    out = folder / f"{target}-plain"
    asked = schemes + (",fp16" if target == "coreml" else "")
    seconds = None
    if not (out / arts.REPORT).is_file():
        seconds = convert(the["source"], the["name"], target, asked, data, out, the["extra"], False, verify=False)
    made = {item.variant: item for item in arts.artifacts_of(out)}
    reference = made["fp32" if target == "tflite" else "fp16"].path
    with np.load(data) as archive:
        samples = {key: archive[key] for key in archive.files}
    rows = []
    for scheme in schemes.split(","):
        item = made.get(scheme)
        if item is None:
            rows.append({"scheme": scheme, "missing": ["plain"]})
            continue
        with arts.open_artifact(item) as session:
            feeds = [{b.artifact: b.to_artifact(samples[b.source][i:i + 1].astype(np.float32)) for b in session.inputs}
                     for i in range(len(next(iter(samples.values()))))]
        copy = item.path.with_name(f"{item.path.stem}.corrected{item.path.suffix}")
        if copy.is_dir():
            shutil.rmtree(copy)
        (shutil.copytree if item.path.is_dir() else shutil.copyfile)(item.path, copy)
        result = correct(target, reference, copy, feeds)
        row = {"scheme": scheme, "bias_correction": result.record, "plain": score(item)}
        row["corrected"] = score(dataclasses.replace(item, path=copy)) if result.record["applied"] else row["plain"]
        row["change"] = round(100 * (row["corrected"][metric] - row["plain"][metric]), 2)
        log(f"{model} {target} plain {scheme}: {row['plain']} -> {row['corrected']} ({result.record})")
        rows.append(row)
    return {"model": model, "target": target, "schemes": schemes, "metric": metric, "set": the["set"],
            "reference": reference.name, "convert_seconds": seconds, "fp32": score(made["fp32"]), "rows": rows}


def _parity(item) -> dict | None:
    parity = item.record.parity
    if not parity:
        return None
    worst = {}
    for output in (parity.get("outputs") or {}).values():
        for key in ("max_rel_error", "cosine_similarity"):
            value = output.get(key)
            if value is not None:
                worst[key] = value if key not in worst else (max if key == "max_rel_error" else min)(worst[key], value)
    return {"passed": parity.get("passed"), **worst}


def _kept(item) -> int:
    repair = item.record.quantization.get("repair") or {}
    return len(repair.get("kept_float", ()))


# ---- results ------------------------------------------------------------------------------------------------


def markdown(results: dict) -> str:
    parts = ["# Bias correction after weight compression, measured", "",
             "Written by `bench/bias_correction_bench.py` (how to run: its docstring). Each variant is made twice by "
             "`deploykit convert`, with the step (the default) and with `--no-bias-correction`, and both are scored on "
             "the task's held-out set. The step's own figures: output noise (noise power over signal power, all "
             "outputs, `quantize/layerwise/metric.noise`) against the reference artifact (TFLite: fp32; Core ML: the "
             "fp16 program the variant is made from) on held-out calibration samples, before and after the correction "
             "(it keeps the corrected variant only when the noise is lower). Task changes are in points, with the step "
             "minus without. `kept float`: layers the repair left in float (off / on). Core ML runs on deploykit's "
             "numpy evaluator of the ML Program.", ""]
    for key in sorted(results.get("runs", {})):
        section = results["runs"][key]
        metric = section["metric"]
        parts += [f"## {section['model']}, {section['target']}", "",
                  f"{metric} on {section['set']} held-out samples; fp32: {_pct(section['fp32'][metric])}. Calibration: "
                  f"`{section['calibration']}`. Conversion seconds: {_seconds(section['convert_seconds'])}; scoring "
                  f"{section['score_seconds']} s. Run {results.get('date', '')}.", "",
                  f"| scheme | applied | layers | noise before | noise after | step s | {metric} without | {metric} with "
                  f"| change (points) | parity without / with | kept float | why not |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for row in section["rows"]:
            if "missing" in row:
                parts.append(f"| {row['scheme']} | not made ({', '.join(row['missing'])}) |" + " |" * 10)
                continue
            step = row["bias_correction"] or {}
            parts.append(" | ".join([
                f"| {row['scheme']}", "yes" if step.get("applied") else "no", str(step.get("layers", "")),
                _db(step.get("noise_db_before")), _db(step.get("noise_db_after")), str(step.get("seconds", "")),
                _pct(row["off"][metric]), _pct(row["on"][metric]), f"{row['change']:+.2f}",
                f"{_verdict(row['parity_off'])} / {_verdict(row['parity_on'])}",
                f"{row['kept_float_off']} / {row['kept_float_on']}", step.get("why", "") + " |"]))
        parts.append("")
    if results.get("plain"):
        parts += ["## The step alone: variants made without parity checks (so without repair)", "",
                  "`deploykit convert --no-verify` makes each plain variant; `bias_correction.correct` then runs on it "
                  "with the samples the step takes in a conversion (every calibration sample in the artifact's layout: 8 "
                  "spread over them fit the shifts, 32 others judge). Core ML's reference is the plain fp16 program "
                  "(`--no-verify` makes no fp16 rescue).", ""]
    for key in sorted(results.get("plain", {})):
        section = results["plain"][key]
        metric = section["metric"]
        parts += [f"### {section['model']}, {section['target']}", "",
                  f"{metric} on {section['set']} held-out samples; fp32: {_pct(section['fp32'][metric])}; reference "
                  f"`{section['reference']}`.", "",
                  f"| scheme | applied | layers | noise before | noise after | step s | {metric} plain | {metric} "
                  "corrected | change (points) | why not |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for row in section["rows"]:
            if "missing" in row:
                parts.append(f"| {row['scheme']} | not made |" + " |" * 8)
                continue
            step = row["bias_correction"]
            parts.append(" | ".join([
                f"| {row['scheme']}", "yes" if step.get("applied") else "no", str(step.get("layers", "")),
                _db(step.get("noise_db_before")), _db(step.get("noise_db_after")), str(step.get("seconds", "")),
                _pct(row["plain"][metric]), _pct(row["corrected"][metric]), f"{row['change']:+.2f}",
                step.get("why", "") + " |"]))
        parts.append("")
    parts += results.get("notes", [])
    return "\n".join(parts) + "\n"


def _seconds(seconds: dict) -> str:
    return ", ".join(f"{mode} {seconds[mode]:.0f}" if mode in seconds else f"{mode} (an earlier run)" for mode in ("off", "on"))


def _pct(value) -> str:
    return "—" if value is None else f"{100 * value:.2f} %"


def _db(value) -> str:
    return "—" if value is None else f"{value:.2f} dB"


def _verdict(parity) -> str:
    if not parity:
        return "—"
    cosine = parity.get("cosine_similarity")
    return ("pass" if parity.get("passed") else "FAIL") + (f" (cos {cosine:.3g})" if cosine is not None else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="digits,ocr")
    parser.add_argument("--targets", default="tflite,coreml")
    parser.add_argument("--work", default=str(REPO / "dist" / "bias-correction"))
    parser.add_argument("--lines", type=int, default=300)
    parser.add_argument("--parts", default="pipeline,plain", help="pipeline (convert with and without the step), "
                        "plain (the step alone on variants made without parity checks, so without repair)")
    parser.add_argument("--again", action="store_true")
    parser.add_argument("--render", action="store_true")
    args = parser.parse_args()
    stored = RESULTS / "bias-correction.json"
    results = json.loads(stored.read_text()) if stored.is_file() else {}
    if not args.render:
        for part in args.parts.split(","):
            section = {"pipeline": "runs", "plain": "plain"}[part]
            for model in args.models.split(","):
                for target in args.targets.split(","):
                    key = f"{model}-{target}"
                    if key in results.get(section, {}) and not args.again:
                        continue
                    measured = (pipeline if part == "pipeline" else plain)(model, target, Path(args.work), args.lines)
                    results.setdefault(section, {})[key] = measured
                    results["date"] = datetime.date.today().isoformat()
                    stored.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    (RESULTS / "bias-correction.md").write_text(markdown(results))


if __name__ == "__main__":
    main()
