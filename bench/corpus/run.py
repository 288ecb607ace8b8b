"""Convert every corpus model through every path with ``deploykit convert``, as a user would, and
write ``bench/results/corpus.md`` (and ``corpus.json``): model x path -> converted, parity, attempts, error.

    .venv/bin/python -m bench.corpus.run [--only NAME,...] [--small] [--targets tflite,coreml] [--tag after]
    .venv/bin/python -m bench.corpus.run --merge after-tflite,after-coreml,rerun --tag after   # one table

Two runs with one target each (``--targets tflite`` / ``--targets coreml``) use both cores of a 2-core
machine; ``--merge`` joins their results in corpus order, a later tag's row replacing an earlier one.

Each (source file, target) is its own ``deploykit convert SOURCE --to TARGET --quantize fp16`` run, so
one path's failure cannot hide another's result. fp32 passes when its parity passes (max error relative
to output scale <= 1e-4 is the fp32 profile's bound); fp16 is reported beside it.

The architecture entries (architectures.py) are measured as a new user would meet them:

    .venv/bin/python -m bench.corpus.run --arch --targets tflite,coreml,executorch --quantize none --no-data \
        --tag arch-before-default

``--arch`` takes only those entries; ``--quantize none`` makes only the fp32 artifact; ``--no-data`` leaves
``--data`` out, so parity runs on deploykit's default inputs; ``executorch`` is measured for ``.pt2``
sources only (pairs a target cannot take are skipped, not failed). Every file of an entry is a source
(``model-dynamo.onnx`` is the format ``onnx-dynamo``). Each row keeps the report's ``inputs`` (what
parity was fed), the converter and the attempts.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.corpus.build import DEFAULT_OUT, build
from bench.corpus.sources import ENTRIES

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "bench" / "results"
DEPLOYKIT = [sys.executable, "-m", "deploykit.cli.app"]
TIMEOUT = 1800


# Which source formats a target takes (deploykit convert --help: executorch is for PyTorch sources, ncnn for
# PyTorch and ONNX ones).
TARGET_SOURCES = {"executorch": (".pt2",), "ncnn": (".pt2", ".onnx")}


def source_format(source: Path) -> str:
    """``model.onnx`` -> ``onnx``; ``model-dynamo.onnx`` -> ``onnx-dynamo`` (a second file of one format)."""
    variant = source.stem.removeprefix("model").lstrip("-")
    return source.suffix[1:] + (f"-{variant}" if variant else "")


def takes(target: str, source: Path) -> bool:
    return source.suffix in TARGET_SOURCES.get(target, (source.suffix,))


def run_one(folder: Path, source: Path, target: str, work: Path, extra: list[str], quantize: str = "fp16",
            data: bool = True, timeout: int = TIMEOUT) -> dict:
    entry = json.loads((folder / "entry.json").read_text())
    fmt = source_format(source)
    out = work / f"{folder.name}-{fmt}-{target}"
    command = DEPLOYKIT + ["convert", str(source), "--to", target, "--out", str(out), "--quiet"]
    if quantize != "none":
        command += ["--quantize", quantize]
    for value in entry["inputs"] if source.suffix == ".onnx" else ():  # .pt2 programs fix their own shapes
        command += ["--input", value]
    if data and entry.get("data"):  # samples shaped like the model's real input (inputs.py, arch_inputs.py)
        command += ["--data", str((folder / entry["data"]).resolve())]
    command += extra
    started = time.perf_counter()
    # its own process group, so a timeout also ends what it started (pnnx, onnx2tf's workers)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=work,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, start_new_session=True)
    try:
        _, stderr = process.communicate(timeout=timeout)
        code = process.returncode
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        code, stderr = -1, f"timed out after {timeout} s"
    seconds = round(time.perf_counter() - started, 1)
    row = {"model": folder.name, "format": fmt, "target": target, "exit": code, "seconds": seconds,
           "error": _message(stderr) if code else None}
    report = out / "deploykit-report.json"
    if report.is_file():
        record = json.loads(report.read_text())
        row.update(_from_report(record, target))
        if record.get("inputs") is not None:
            row["inputs"] = record["inputs"]
    return row


def _message(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for marker in ("usage error:", "bad input:", "unsupported operator:", "conversion failed:", "parity check failed:",
                   "internal error:", "error:", "unsafe input refused:", "timed out"):
        for line in lines:
            if line.startswith(marker):
                return line[:400]
    return (lines[-1] if lines else "(no message)")[:400]


def _from_report(report: dict, target: str) -> dict:
    found = {}
    for artifact in report.get("artifacts", []):
        if artifact["target"] != target:
            continue
        parity = artifact.get("parity") or {}
        outputs = parity.get("outputs", {})
        worst = max((o.get("max_rel_error", 0) for o in outputs.values() if isinstance(o.get("max_rel_error"), (int, float))),
                    default=None)
        mixed = (artifact.get("quantization") or {}).get("mixed_precision")
        found[artifact["variant"]] = {"passed": parity.get("passed"), "max_rel_error": worst, "outputs": len(outputs),
                                      "parity_inputs": parity.get("inputs"),
                                      "converter": artifact.get("converter"), "attempts": artifact.get("attempts"),
                                      "size_bytes": artifact.get("size_bytes"),
                                      "latency_ms": (artifact.get("latency") or {}).get("median_ms"),
                                      "mixed": None if not mixed else {k: mixed.get(k) for k in (
                                          "search", "kept_float32", "float32_weight_share", "estimate", "verdict")}}
    failures = [f for f in report.get("failures", []) if f.get("target") == target]
    if failures:
        found["failure"] = failures[0]
    return found


def write_results(rows: list[dict], tag: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"corpus-{tag}.json").write_text(json.dumps(rows, indent=2) + "\n")
    ok32 = [r for r in rows if (r.get("fp32") or {}).get("passed")]
    ok16 = [r for r in rows if (r.get("fp16") or {}).get("passed")]
    targets = sorted({r["target"] for r in rows})
    per_target = "; ".join(f"{t}: {sum(r['target'] == t for r in ok32)} of {sum(r['target'] == t for r in rows)}"
                           for t in targets)
    lines = [f"# Corpus: every model through every path ({tag})", "",
             f"{len(ok32)} of {len(rows)} (model, source format, target) pairs converted and passed fp32 parity "
             f"({per_target}); {len(ok16)} passed fp16 as well.", "",
             "| model | source | target | inputs | fp32 | max rel err | fp16 | fp16 max rel err | converter "
             + "| attempts | s | error |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        fp32, fp16 = r.get("fp32") or {}, r.get("fp16") or {}
        err, err16 = fp32.get("max_rel_error"), fp16.get("max_rel_error")
        attempts = fp32.get("attempts") or []
        lines.append("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
            r["model"], r["format"], r["target"], fp32.get("parity_inputs") or "", _mark(fp32),
            "" if err is None else f"{err:.1e}",
            _mark(fp16) + _mixed(fp16), "" if err16 is None else f"{err16:.1e}",
            fp32.get("converter") or "", len(attempts) if attempts else "", r["seconds"],
            (r.get("error") or "").replace("|", "/")[:200]))
    (RESULTS / f"corpus-{tag}.md").write_text("\n".join(lines) + "\n")


def _mixed(variant: dict) -> str:
    """" (mixed: ...)" when the fp16 variant kept was the one with layers in float32 (quantize.fp16_mixed)."""
    for attempt in variant.get("attempts") or []:
        if attempt.get("outcome") == "kept" and "float32" in attempt.get("name", ""):
            return f" (mixed: {attempt['name'].removeprefix('fp16 + ')})"
    return ""


def _mark(variant: dict) -> str:
    if not variant:
        return "—"
    return "pass" if variant.get("passed") else "FAIL"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated entry names")
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--arch", action="store_true", help="only the architecture entries (architectures.py)")
    parser.add_argument("--targets", default="tflite,coreml", help="comma-separated; executorch: .pt2 sources only")
    parser.add_argument("--quantize", default="fp16", help="deploykit --quantize value; none: the fp32 artifact only")
    parser.add_argument("--no-data", action="store_true",
                        help="convert without --data: parity on deploykit's default inputs, as a new user runs it")
    parser.add_argument("--tag", default="after", help="results file suffix: corpus-<tag>.md")
    parser.add_argument("--models", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--merge", help="comma-separated tags of finished runs to join into corpus-<tag>.md")
    parser.add_argument("extra", nargs="*", help="extra deploykit convert flags (after --)")
    args = parser.parse_args(argv)
    if args.merge:
        merged = {}  # a later tag's row replaces an earlier one for the same pair (a re-run of some pairs)
        for tag in args.merge.split(","):
            for row in json.loads((RESULTS / f"corpus-{tag}.json").read_text()):
                merged[(row["model"], row["format"], row["target"])] = {**row, "run": tag}
        order = {e.name: i for i, e in enumerate(ENTRIES)}
        rows = sorted(merged.values(), key=lambda r: (order.get(r["model"], len(order)), r["format"], r["target"]))
        write_results(rows, args.tag)
        return 0
    only = set(args.only.split(",")) if args.only else None
    if args.arch:
        only = {e.name for e in ENTRIES if e.kind == "arch" and (only is None or e.name in only)}
        if not only:
            parser.error("--arch with --only names no architecture entry")
    folders = build(args.models, only, args.small)
    rows = []
    with tempfile.TemporaryDirectory(prefix="deploykit-corpus-") as tmp:
        for folder in folders:
            for name in json.loads((folder / "entry.json").read_text())["files"]:
                for target in args.targets.split(","):
                    if not takes(target, folder / name):
                        continue
                    row = run_one(folder, folder / name, target, Path(tmp), args.extra, args.quantize,
                                  not args.no_data)
                    rows.append(row)
                    print(json.dumps({k: row.get(k) for k in ("model", "format", "target", "exit", "seconds", "error")}),
                          flush=True)
                    write_results(rows, args.tag)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
