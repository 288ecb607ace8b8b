"""Every PyTorch (.pt2) and ONNX file of the corpus through `deploykit convert --to ncnn --quantize fp16`, parity
on the corpus's own inputs (data.npz), one conversion at a time; writes bench/results/corpus-ncnn.{json,md}.

    nice -n 10 .venv/bin/python -m bench.corpus_ncnn                 # converts every pair, then tabulates
    nice -n 10 .venv/bin/python -m bench.corpus_ncnn --only zoo-vgg19  # re-runs some entries (others: kept records)
    .venv/bin/python -m bench.corpus_ncnn --tabulate                 # only tabulates the records already written

Each pair is `bench.corpus.run.run_one` (the run the other targets' corpus tables come from: `--input` for ONNX
sources, `--data <entry>/data.npz`), with a 15-minute limit: a pair that takes longer is a failure with that
reason. One record per pair is kept in ``--records`` (NAME-FORMAT.json), so a re-run of some pairs replaces
their rows only. The artifacts stay in ``--work`` (NAME-FORMAT-ncnn/).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from bench.corpus.build import DEFAULT_OUT, build
from bench.corpus.run import RESULTS, run_one, source_format, takes
from bench.corpus.sources import ENTRIES

TIMEOUT = 900
WORK = Path("/tmp/h4")


def convert_all(models: Path, only: set[str] | None, work: Path, records: Path) -> None:
    records.mkdir(parents=True, exist_ok=True)
    for folder in build(models, only):
        for name in json.loads((folder / "entry.json").read_text())["files"]:
            source = folder / name
            if not takes("ncnn", source):
                continue
            shutil.rmtree(work / f"{folder.name}-{source_format(source)}-ncnn", ignore_errors=True)
            row = run_one(folder, source, "ncnn", work, [], "fp16", True, timeout=TIMEOUT)
            (records / f"{folder.name}-{row['format']}.json").write_text(json.dumps(row, indent=2) + "\n")
            print(json.dumps({k: row.get(k) for k in ("model", "format", "exit", "seconds", "error")}), flush=True)


def _route(variant: dict) -> str:
    """The rung the artifact came from, with the rungs before it that failed (``pnnx:original after pnnx``)."""
    attempts = variant.get("attempts") or []
    kept = [a for a in attempts if a.get("outcome") in ("kept", "converted")]
    chosen = kept[-1] if kept else next((a for a in attempts if a.get("outcome") == "parity-failed"), None)
    if chosen is None:
        return ""
    before = [f"{a['name']} {a['outcome']}" for a in attempts[:attempts.index(chosen)]]
    return chosen["name"] + (f" (after {', '.join(before)})" if before else "")


def _cell(variant: dict) -> str:
    if not variant:
        return "—"
    return "pass" if variant.get("passed") else "FAIL"


def _error(value) -> str:
    return "" if value is None else f"{value:.1e}"


def tabulate(records: Path) -> tuple[list[dict], list[str]]:
    order = {e.name: i for i, e in enumerate(ENTRIES)}
    rows = [json.loads(p.read_text()) for p in records.glob("*.json")]
    rows.sort(key=lambda r: (order.get(r["model"], len(order)), r["format"]))
    ok32 = sum(bool((r.get("fp32") or {}).get("passed")) for r in rows)
    ok16 = sum(bool((r.get("fp16") or {}).get("passed")) for r in rows)
    lines = [f"{ok32} of {len(rows)} (model, source file) pairs converted to NCNN and passed fp32 parity; "
             f"{ok16} of {len(rows)} passed fp16.", "",
             "| model | source | fp32 | max rel err | size | latency | fp16 | max rel err | size | latency "
             "| route (fp32) | s | error |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        fp32, fp16 = r.get("fp32") or {}, r.get("fp16") or {}
        cells = [r["model"], r["format"]]
        for v in (fp32, fp16):
            size, latency = v.get("size_bytes"), v.get("latency_ms")
            cells += [_cell(v), _error(v.get("max_rel_error")), "" if size is None else f"{size / 2**20:.2f} MB",
                      "" if latency is None else f"{latency:.3g} ms"]
        error = r.get("error") or (r.get("failure") or {}).get("message") or ""
        cells += [_route(fp32), r["seconds"], error.replace("|", "/").replace("\n", " ")[:300]]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return rows, lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated entry names")
    parser.add_argument("--tabulate", action="store_true", help="only tabulate the records already written")
    parser.add_argument("--models", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--work", type=Path, default=WORK, help="where the artifacts are written")
    parser.add_argument("--records", type=Path, default=WORK / "records", help="one NAME-FORMAT.json per pair")
    args = parser.parse_args(argv)
    if not args.tabulate:
        convert_all(args.models, set(args.only.split(",")) if args.only else None, args.work, args.records)
    rows, lines = tabulate(args.records)
    header = ["# Corpus: the PyTorch and ONNX models through `--to ncnn`", "",
              "Written by `python -m bench.corpus_ncnn`: every .pt2 and ONNX file of bench/corpus, "
              "`deploykit convert --to ncnn --quantize fp16 --data <entry>/data.npz` (`--input` for ONNX), one pair at "
              f"a time, {TIMEOUT // 60} minutes at most. Size: the pair (.param + .bin); latency: the record's host "
              "median (ncnn on the CPU, 1 thread); route: the rung of the ladder the fp32 artifact took.", ""]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "corpus-ncnn.json").write_text(json.dumps(rows, indent=2, sort_keys=True) + "\n")
    (RESULTS / "corpus-ncnn.md").write_text("\n".join(header + lines) + "\n")
    print("\n".join(lines[:1]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
