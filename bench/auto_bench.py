"""``--quantize auto --max-accuracy-drop 1`` on PP-OCRv4's recogniser, against every single scheme.

The budget is judged during the search on the *calibration* lines (`ocr-calibration.npz`, 100 lines, another seed:
bench/accuracy, with their text as labels: `--validation` then measures points of character accuracy), and the result is scored on the 300 held-out lines of the accuracy benchmark, so the table tests
the search's choice on lines it never saw. The single-scheme rows come from bench/results/accuracy.json (the same
300 lines, the same scorer). Writes bench/results/auto.md and .json.

    nice -n 10 .venv/bin/python -m bench.auto_bench            # converts once into dist/accuracy/ppocr/out-auto
    nice -n 10 .venv/bin/python -m bench.auto_bench --rescore  # only scores an existing folder
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "dist" / "accuracy" / "ppocr"
OUT = WORK / "out-auto"
RESULTS = ROOT / "bench" / "results"
BUDGET = 1.0


def labelled_validation() -> Path:
    """The calibration lines with their text as CTC class indices (rows padded with -1): ``--validation`` then
    judges the budget in points of character accuracy, the benchmark's own measure (metric.sequence_accuracy)."""
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from bench.accuracy.ocr import characters

    index = {c: i for i, c in enumerate(characters())}
    texts = (WORK / "ocr-calibration.labels.txt").read_text().splitlines()
    labels = np.full((len(texts), max(len(t) for t in texts)), -1, np.int64)
    for row, text in enumerate(texts):
        labels[row, :len(text)] = [index[c] for c in text]
    target = WORK / "ocr-calibration-labelled.npz"
    with np.load(WORK / "ocr-calibration.npz") as data:
        np.savez(target, x=data["x"], labels=labels)
    return target


def convert() -> float:
    started = time.perf_counter()
    validation = labelled_validation()
    command = [str(ROOT / ".venv" / "bin" / "deploykit"), "convert", str(ROOT / "bench/corpus/models/ppocrv4-rec/model.onnx"),
               "--input", "x=1x3x48x320", "--name", "ppocrv4-rec", "--to", "tflite,coreml", "--coreml-target", "iOS18",
               "--quantize", "auto", "--max-accuracy-drop", str(BUDGET), "--validation", str(validation),
               "--data", str(WORK / "ocr-calibration.npz"), "--out", str(OUT)]
    subprocess.run(command, check=False)
    return round(time.perf_counter() - started, 1)


def download_bytes(path: Path) -> int:
    target = Path("/tmp/auto-bench.zip")
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for file in ([path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())):
            archive.write(file, file.relative_to(path.parent))
    return target.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rescore", action="store_true")
    args = parser.parse_args()
    seconds = None if args.rescore else convert()
    sys.path.insert(0, str(ROOT))
    from bench.accuracy.ocr import score_folder

    scored = score_folder(OUT, count=300)
    record = json.loads((OUT / "deploykit-report.json").read_text())
    singles = json.loads((RESULTS / "accuracy.json").read_text())["models"]["ocr"]["rows"]
    rows = []
    for artifact in record["artifacts"]:
        if artifact["variant"] != "auto":
            continue
        target = artifact["target"]
        fp32 = next(r for r in singles if r["target"] == target and r["variant"] == "fp32")
        mine = scored[Path(artifact["path"]).name]
        q = artifact["quantization"]
        auto = {"target": target, "variant": "auto", "size_bytes": artifact["size_bytes"],
                "download_bytes": download_bytes(OUT / artifact["path"]),
                "char_accuracy": mine["char_accuracy"], "line_accuracy": mine["line_accuracy"],
                "char_drop": round(100 * (fp32["char_accuracy"] - mine["char_accuracy"]), 2),
                "weights": q["weights"], "validation_cost": q["chosen"]["cost"], "seconds": q["seconds"],
                "parity": artifact["parity"]["passed"], "candidates": len(q["candidates"])}
        within = [r for r in singles if r["target"] == target and r["variant"] != "fp32"
                  and 100 * (fp32["char_accuracy"] - r["char_accuracy"]) <= BUDGET]
        auto["smaller_than_every_single_within"] = all(auto["size_bytes"] < r["size_bytes"] for r in within)
        auto["singles_within"] = [(r["variant"], r["size_bytes"]) for r in within]
        rows.append(auto)
    result = {"budget_points": BUDGET, "convert_seconds": seconds, "rows": rows}
    (RESULTS / "auto.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["# `--quantize auto --max-accuracy-drop 1` on PP-OCRv4's recogniser", "",
             "Written by `bench/auto_bench.py`. Search judged on the 100 calibration lines (character accuracy "
             "against their text, the labels given to --validation); scored here on the 300 held-out lines of bench/results/accuracy.md "
             "(character accuracy, greedy CTC). Single-scheme rows: that file's.", "",
             "| target | variant | size | download | char acc | Δ char vs fp32 | line acc | weights | smaller than every single scheme within 1 point |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        fp32 = next(r for r in singles if r["target"] == row["target"] and r["variant"] == "fp32")
        for single in [r for r in singles if r["target"] == row["target"]]:
            drop = 100 * (fp32["char_accuracy"] - single["char_accuracy"])
            lines.append(f"| {single['target']} | {single['variant']} | {single['size_bytes'] / 1e6:.2f} MB | "
                         f"{single['download_bytes'] / 1e6:.2f} MB | {100 * single['char_accuracy']:.2f} % | "
                         f"{-drop:+.2f} | {100 * single['line_accuracy']:.2f} % | | {'within' if drop <= BUDGET else 'over'} |")
        lines.append(f"| {row['target']} | **auto** | **{row['size_bytes'] / 1e6:.2f} MB** | {row['download_bytes'] / 1e6:.2f} MB | "
                     f"{100 * row['char_accuracy']:.2f} % | {-row['char_drop']:+.2f} | {100 * row['line_accuracy']:.2f} % | "
                     f"{row['weights']} | {'yes' if row['smaller_than_every_single_within'] else 'NO'} |")
    lines += ["", "Seconds (search phases per target): " + "; ".join(f"{r['target']} {r['seconds']}" for r in rows),
              f"Whole convert (both targets, fp16 base search included): {seconds} s." if seconds else ""]
    (RESULTS / "auto.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
