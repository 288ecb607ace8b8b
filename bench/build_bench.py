"""Wall time of one `deploykit build` of the example project with 1 and 2 workers, and how its plan would split
across N machines.

    python -m bench.build_bench          # writes bench/results/build.{json,md}

The example's 6 jobs (digits classifier: TFLite fp32 / fp16 / int8-weights, Core ML fp32 / fp16 / lut4, each
converted, checked on pictures, measured on 200 labelled pictures) are built with --force, first with --jobs 1,
then with --jobs 2. The split across N machines is the longest-job-first assignment of the jobs' own measured
seconds (from the 1-worker record) to N machines, plus each machine's fixed cost (set-up excluded): the makespan
is the slowest machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
CONFIG = REPO / "examples" / "deploykit.toml"
NOTE = ("Why 2 workers do not give 2x: in one process the frameworks are imported once (the first TFLite job "
        "includes importing TensorFlow, the later ones take 1-2 s), while each spawned worker imports them again, "
        "and on 2 cores the imports and the evaluator compete. For the same reason the per-machine figures are a "
        "lower bound: each machine also pays one import of the frameworks (~5-8 s here) and its set-up.")


def timed_build(jobs: int) -> tuple[float, dict]:
    deploykit = str(Path(sys.executable).parent / "deploykit")
    started = time.perf_counter()
    done = subprocess.run([deploykit, "build", str(CONFIG), "--force", "--jobs", str(jobs), "--json", "--quiet"],
                          capture_output=True, text=True, cwd=REPO)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"build with --jobs {jobs} failed ({done.returncode}): {done.stderr[-2000:]}")
    return seconds, json.loads(done.stdout)


def split(job_seconds: dict[str, float], machines: int) -> tuple[float, list[list[str]]]:
    loads = [0.0] * machines
    assigned: list[list[str]] = [[] for _ in range(machines)]
    for job, seconds in sorted(job_seconds.items(), key=lambda item: -item[1]):
        target = loads.index(min(loads))
        loads[target] += seconds
        assigned[target].append(job)
    return max(loads), assigned


def main() -> int:
    if not (REPO / "examples" / "models" / "validation").is_dir():
        subprocess.run([sys.executable, "examples/make_example_model.py", "examples/models"], cwd=REPO, check=True)
    if not (REPO / "dist" / "keys" / "deploykit.key").is_file():
        subprocess.run([str(Path(sys.executable).parent / "deploykit"), "keygen", "--out", "dist/keys"], cwd=REPO, check=True)
    one, record = timed_build(1)
    two, _ = timed_build(2)
    job_seconds = {job["id"]: job["seconds"] for job in record["jobs"]}
    splits = {n: split(job_seconds, n) for n in (1, 2, 3, 6)}
    results = {"cores": os.cpu_count(), "jobs": len(job_seconds), "wall_seconds": {"1 worker": round(one, 1),
               "2 workers": round(two, 1)}, "job_seconds": job_seconds,
               "split": {str(n): {"makespan_s": round(m, 1), "machines": a} for n, (m, a) in splits.items()}}
    (RESULTS / "build.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = ["# `deploykit build` of the example: 1 vs 2 workers, and the plan split across machines", "",
             f"`python -m bench.build_bench` on this machine ({os.cpu_count()} cores): {len(job_seconds)} jobs, each "
             "converted, checked on pictures and measured on 200 labelled pictures, built with --force.", "",
             "| workers | wall time (whole command) |", "| --- | --- |",
             f"| 1 | {one:.1f} s |", f"| 2 | {two:.1f} s |", "",
             "Per job (1-worker record, seconds of conversion + parity + measurement in the job's process):", "",
             "| job | seconds |", "| --- | --- |"] + [f"| {j} | {s} |" for j, s in job_seconds.items()] + [
             "", "The plan across N machines (`--plan --json` as a CI matrix, longest job first; set-up and the "
             "assemble stage not included):", "", "| machines | slowest machine | jobs per machine |", "| --- | --- | --- |"]
    lines += [f"| {n} | {m:.1f} s | {' / '.join(str(len(a)) for a in assigned)} |" for n, (m, assigned) in splits.items()]
    lines += ["", NOTE]
    (RESULTS / "build.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
