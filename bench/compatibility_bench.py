"""Accelerator compatibility of the corpus's three detectors as TFLite: what XNNPACK takes and what LiteRT's GPU
analyzer says, as ``deploykit convert`` records it (the artifact's ``compatibility`` block, docs/compatibility.md).

Each detector is converted twice with ``.venv/bin/deploykit convert model.onnx --to tflite``: the network alone
(raw outputs), and with ``--detector`` (its decode and non-maximum suppression appended, with the parameters its
own project uses: bench/detection_bench.py). Also records the probe that decides whether the installed model
analyzer checks ops for the GPU delegate at all (formats/tflite/analyzer.py). Writes
bench/results/compatibility.md and .json.

    nice -n 10 .venv/bin/python -m bench.compatibility_bench [--only NAME,...] [--rescore]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

from bench.detection_bench import DETECTORS, labels_file

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "bench" / "corpus" / "models"
WORK = ROOT / "dist" / "compatibility"
RESULTS = ROOT / "bench" / "results"
KINDS = ("network", "detector")  # without / with --detector


def convert(name: str, kind: str) -> dict:
    preset, flags, key = DETECTORS[name]
    folder = WORK / name
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / kind
    entry = json.loads((MODELS / name / "entry.json").read_text())
    command = [str(ROOT / ".venv" / "bin" / "deploykit"), "convert", str(MODELS / name / "model.onnx"), "--to", "tflite",
               "--data", str(MODELS / name / "data.npz"), "--out", str(out), "--quiet"]
    for shape in entry.get("inputs", []):
        command += ["--input", shape]
    if kind == "detector":
        command += ["--detector", preset, *flags]
        labels = labels_file(name, key, folder)
        if labels:
            command += ["--labels", str(labels)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    (folder / f"convert-{kind}.log").write_text(" ".join(command[1:]) + "\n" + done.stdout + done.stderr)
    return {"exit": done.returncode, "seconds": round(time.perf_counter() - started, 1),
            "error": (done.stderr.strip().splitlines() or [""])[0] if done.returncode else None}


def row(name: str, kind: str, run: dict) -> dict:
    record_path = WORK / name / kind / "deploykit-report.json"
    if not record_path.is_file():
        return {"model": name, "kind": kind, "error": run.get("error") or "no record"}
    artifact = json.loads(record_path.read_text())["artifacts"][0]
    return {"model": name, "kind": kind, "path": artifact["path"], "ops": sum(artifact["op_histogram"].values()),
            "parity": (artifact.get("parity") or {}).get("passed"), "compatibility": artifact.get("compatibility"),
            "seconds": run.get("seconds")}


def probe() -> dict:
    """The installed analyzer on the one-op probe model: its verdict, and whether it checks GPU ops at all."""
    import tempfile

    from deploykit.formats import litert_facade
    from deploykit.formats.tflite import analyzer

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "canary.tflite"
        path.write_bytes(analyzer.canary_model())
        found = analyzer.parse(litert_facade.analyze(path, gpu_compatibility=True))
    return {"ai_edge_litert": litert_facade.version(), "runtime_version": found.runtime_version,
            "op": analyzer.CANARY_OP, "verdict": found.gpu_verdict, "checks_gpu_ops": analyzer.checks_gpu_ops()}


def _xnnpack(result: dict):
    """(the XNNPACK entry, its pieces) of a result, or None."""
    block = result.get("compatibility") or {}
    entry = next((a for a in block.get("accelerators", []) if a["name"] == "xnnpack"), None)
    if entry is None:
        return None
    pieces = next((n for n in block["notes"] if n.startswith("XNNPACK runs the graph in ")), "")
    return entry, pieces.removeprefix("XNNPACK runs the graph in ").split(" ")[0]


def _refused(entry: dict) -> str:
    if entry.get("unavailable"):
        return "not checked"
    return ", ".join(f"{r['op']} x{r['count']}" for r in entry["refused"]) or "none"


def write(results: list[dict], canary: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "compatibility.json").write_text(json.dumps({"probe": canary, "artifacts": results}, indent=2) + "\n")
    lines = ["# Accelerator compatibility of the corpus detectors (TFLite)", "",
             "Written by `bench/compatibility_bench.py`: each detector converted with `deploykit convert model.onnx "
             "--to tflite`, the network alone and with `--detector` (decode + NMS appended); the figures are the "
             "record's `compatibility` block (docs/compatibility.md).", "",
             "## Where the GPU verdicts come from", "",
             f"The model analyzer of ai-edge-litert {canary['ai_edge_litert']} (TFLite runtime "
             f"{canary['runtime_version']}; TensorFlow 2.21's `tf.lite.experimental.Analyzer` loads the same code), "
             f"asked with `gpu_compatibility=True` about a model whose one op is the custom op `{canary['op']}` (no "
             f"delegate has it), answers **{canary['verdict']}**: its source (google-ai-edge/LiteRT, "
             "tflite/python/analyzer_wrapper/model_analyzer.cc) no longer calls the GPU compatibility check. The GPU "
             "column is therefore TensorFlow 2.16.2's analyzer (the GPU delegate's rules of that release), which "
             "setup.sh extracts and deploykit asks in a child process after the same probe "
             "(`formats/tflite/analyzer.py`: `gpu_analyzer`); the record's `checked_with` names it.", "",
             "## Per artifact", "",
             "| model | graph | ops | XNNPACK takes | XNNPACK pieces | refused by XNNPACK | GPU delegate | parity |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['kind']} | error: {r['error']} | | | | | |")
            continue
        block = r["compatibility"] or {}
        if "unavailable" in block or not block:
            lines.append(f"| {r['model']} | {r['kind']} | {r['ops']} | unavailable: {block.get('unavailable')} | | | | |")
            continue
        gpu = next(a for a in block["accelerators"] if a["name"] == "gpu")
        xnnpack, pieces = _xnnpack(r)
        lines.append(f"| {r['model']} | {r['kind']} | {r['ops']} | {xnnpack['supported']} of {xnnpack['ops']} | "
                     f"{pieces} | {_refused(xnnpack)} | {_refused(gpu)} | "
                     f"{'pass' if r['parity'] else 'fail' if r['parity'] is False else '-'} |")
    lines += ["", "What `--detector` adds: the ops of the decode and NMS appended to each network, how many of them "
              "XNNPACK takes, and the pieces it then runs the graph in (each border a copy):", ""]
    for name in dict.fromkeys(r["model"] for r in results):
        pair = {r["kind"]: _xnnpack(r) for r in results if r["model"] == name}
        if all(pair.get(kind) for kind in KINDS):
            (net, net_pieces), (det, det_pieces) = pair["network"], pair["detector"]
            lines.append(f"- {name}: {det['ops'] - net['ops']} ops appended, {det['supported'] - net['supported']} of "
                         f"them taken by XNNPACK; pieces {net_pieces} -> {det_pieces}")
    reasons: dict[str, set] = {}  # reason -> ops XNNPACK refused with it
    for r in results:
        for entry in (r.get("compatibility") or {}).get("accelerators", []):
            for refused in entry["refused"] if entry["name"] == "xnnpack" else ():
                reasons.setdefault(refused["reason"], set()).add(refused["op"])
    if reasons:
        lines += ["", "Reasons recorded for the ops XNNPACK refused:", ""]
        lines += [f"- {reason}: {', '.join(f'`{op}`' for op in sorted(ops))}" for reason, ops in sorted(reasons.items())]
    if results and "checked_with" in (results[0].get("compatibility") or {}):
        lines += ["", f"Checked with: {results[0]['compatibility']['checked_with']}."]
    (RESULTS / "compatibility.md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated detector names")
    parser.add_argument("--rescore", action="store_true", help="only read the records already written")
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else list(DETECTORS)
    results = []
    for name in names:
        for kind in KINDS:
            run = {} if args.rescore else convert(name, kind)
            print(name, kind, run, flush=True)
            results.append(row(name, kind, run))
    write(results, probe())
    print((RESULTS / "compatibility.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
