"""How long `deploykit --help` takes (goal: under 0.5 s; heavy frameworks are imported lazily).

Usage: .venv/bin/python bench/cli_startup_bench.py   -> bench/results/cli_startup.json / .md
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEPLOYKIT = Path(sys.executable).parent / "deploykit"


def main(runs: int = 10) -> None:
    timings = {}
    for args in (["--help"], ["convert", "--help"], ["--version"]):
        samples = []
        for _ in range(runs):
            started = time.perf_counter()
            subprocess.run([str(DEPLOYKIT), *args], check=True, capture_output=True)
            samples.append(time.perf_counter() - started)
        timings[" ".join(args)] = {"median": round(statistics.median(samples), 3), "max": round(max(samples), 3)}
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "cli_startup.json").write_text(json.dumps({"cpus": os.cpu_count(), "runs": runs, "goal_seconds": 0.5, "timings": timings}, indent=2) + "\n")
    lines = ["# CLI start-up", "", f"{runs} runs each, {os.cpu_count()} CPUs. Goal: `deploykit --help` under 0.5 s.", "",
             "| command | median (s) | max (s) |", "| --- | --- | --- |"]
    lines += [f"| deploykit {k} | {v['median']:.3f} | {v['max']:.3f} |" for k, v in timings.items()]
    (out / "cli_startup.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
