"""Tables for a before/after summary of the architecture entries: two run.py results side by side (deploykit's
default inputs and the entries' data.npz) and, when there is one, the bare-call results (bare.py).

    .venv/bin/python -m bench.corpus.arch_summary arch-before-default arch-after [--bare arch-bare]

Prints Markdown: pass counts per target and source kind, every pair with both outcomes, every failure's
message once with the pairs it stopped. The prose around it (why each failure happens) is written by hand.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

from bench.corpus.architectures import BY_NAME, KERAS
from bench.corpus.run import RESULTS

TARGETS = ("tflite", "coreml", "executorch")


def _load(tag: str) -> list[dict]:
    return json.loads((RESULTS / f"corpus-{tag}.json").read_text())


def _passed(row: dict) -> bool:
    return bool((row.get("fp32") or {}).get("passed"))


def _kind(row: dict) -> str:
    """The source as the tables group it: the file's format, and for ONNX which exporter wrote it."""
    fmt = row["format"]
    if not fmt.startswith("onnx"):
        return fmt
    arch = BY_NAME.get(row["model"])
    if arch is None:
        return fmt
    if arch.source == KERAS:
        return "onnx (tf2onnx)"
    return "onnx (torch dynamo)" if fmt == "onnx-dynamo" else "onnx (torch ts)"


def _outcome(row: dict | None) -> str:
    if row is None:
        return "—"
    fp32 = row.get("fp32") or {}
    if fp32.get("passed"):
        return f"pass ({fp32['max_rel_error']:.0e})"
    if fp32:
        err = fp32.get("max_rel_error")
        return "parity FAIL" + (f" ({err:.1e})" if err is not None else "")
    return "FAIL"


def counts(runs: dict[str, list[dict]]) -> list[str]:
    lines = ["| source | target | pairs | " + " | ".join(f"fp32 pass, {tag}" for tag in runs) + " |",
             "| --- | --- | --- | " + " | ".join("---" for _ in runs) + " |"]
    first = next(iter(runs.values()))
    groups = sorted({(_kind(r), r["target"]) for r in first}, key=lambda g: (g[0], TARGETS.index(g[1])))
    for kind, target in groups + [("all", "all")]:
        def chosen(rows, kind=kind, target=target):
            return [r for r in rows if kind == "all" or (_kind(r) == kind and r["target"] == target)]
        cells = [f"{sum(map(_passed, chosen(rows)))}" for rows in runs.values()]
        lines.append(f"| {kind} | {target} | {len(chosen(first))} | " + " | ".join(cells) + " |")
    return lines


def pairs(runs: dict[str, list[dict]], bare: list[dict] | None) -> list[str]:
    """Every pair: each run's outcome, then the last run's route (its converter) and seconds (the whole
    ``deploykit convert``: load, convert, parity, inspect), and the bare upstream call's seconds."""
    keyed = {tag: {(r["model"], r["format"], r["target"]): r for r in rows} for tag, rows in runs.items()}
    bare_keyed = {(r["model"], r["format"], r["target"]): r for r in bare or []}
    last = list(runs)[-1]
    header = "| model | source | target | " + " | ".join(runs) + f" | route ({last}) | deploykit s"
    header += " | bare call s |" if bare else " |"
    lines = [header, "|" + " --- |" * (5 + len(runs) + bool(bare))]
    for key in keyed[last]:
        cells = [_outcome(keyed[tag].get(key)) for tag in runs]
        row = keyed[last][key]
        cells += [((row.get("fp32") or {}).get("converter") or "").replace("|", "/"), f"{row['seconds']:.0f}"]
        if bare:
            b = bare_keyed.get(key)
            cells.append("—" if b is None else (f"{b['seconds']:.0f}" if b["ok"] else "FAIL"))
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | " + " | ".join(cells) + " |")
    return lines


def failures(runs: dict[str, list[dict]]) -> list[str]:
    """Each distinct failure message once, with the (pair, run) it stopped."""
    seen: dict[str, list[str]] = defaultdict(list)
    for tag, rows in runs.items():
        for r in rows:
            if _passed(r):
                continue
            message = r.get("error") or "parity check failed"
            seen[message].append(f"{r['model']} {r['format']}->{r['target']} ({tag})")
    lines = []
    for message, where in seen.items():
        lines.append(f"- `{message[:300]}`: {', '.join(where)}")
    return lines


def bare_failures(bare: list[dict]) -> list[str]:
    seen: dict[str, list[str]] = defaultdict(list)
    for r in bare:
        if not r["ok"]:
            seen[r["error"]].append(f"{r['model']} {r['format']}->{r['target']}")
    return [f"- `{message[:300]}`: {', '.join(where)}" for message, where in seen.items()]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tags", nargs="+", help="run.py result tags, e.g. arch-before-default arch-before-data")
    parser.add_argument("--bare", help="bare.py result tag")
    args = parser.parse_args(argv)
    runs = {tag: _load(tag) for tag in args.tags}
    bare = _load(args.bare) if args.bare else None
    out = ["## Pass counts (fp32)", "", *counts(runs), "", "## Every pair", "", *pairs(runs, bare), "",
           "## Failure messages", "", *failures(runs)]
    if bare:
        out += ["", "## Bare calls that failed", "", *bare_failures(bare)]
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
