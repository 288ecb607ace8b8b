"""The corpus's PyTorch models (MTCNN P-Net, R-Net, O-Net from facenet-pytorch 2.6.0, as .pt2) through
`deploykit convert --to executorch --quantize fp16`, parity on the corpus's own inputs (data.npz).

    python -m bench.corpus_executorch                     # converts, writes bench/results/corpus-executorch.{json,md}
    python -m bench.corpus_executorch --records /tmp/etc  # only tabulates records already written as NAME.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "bench" / "corpus" / "models"
RESULTS = REPO / "bench" / "results"
NAMES = ("mtcnn-pnet", "mtcnn-rnet", "mtcnn-onet")


def convert(name: str, out: Path) -> dict:
    folder = MODELS / name
    entry = json.loads((folder / "entry.json").read_text())
    args = [a for spec in entry["inputs"] for a in ("--input", spec.split("=", 1)[1])]
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "deploykit.cli.app", "convert", str(folder / "model.pt2"), "--to",
                           "executorch", "--quantize", "fp16", *args, "--data", str(folder / "data.npz"), "--out",
                           str(out / name), "--json"], capture_output=True, text=True, cwd=REPO)
    record = json.loads(done.stdout) if done.returncode == 0 else {"error": done.stderr.strip().splitlines()[-2:]}
    record["wall_seconds"] = round(time.perf_counter() - started, 1)
    return record


def rows(name: str, record: dict) -> list[str]:
    if "error" in record:
        return [f"| {name} | - | - | - | FAIL: {' '.join(record['error'])} | - | - |"]
    lines = []
    for a in record["artifacts"]:
        parity = a["parity"]
        worst = max(o["max_rel_error"] for o in parity["outputs"].values())
        delegated = a["passes"][-1]["notes"][0]
        latency = a.get("latency", {}).get("median_ms")
        lines.append(f"| {name} | {a['variant']} | {a['size_bytes'] / 1024:.1f} KB | {worst:.2e} | "
                     f"{'pass' if parity['passed'] else 'FAIL'} ({parity['profile']}) | {delegated} | {latency} ms |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=Path, help="tabulate NAME.json records from this folder instead")
    args = parser.parse_args()
    records = {}
    for name in NAMES:
        if args.records:
            records[name] = json.loads((args.records / f"{name}.json").read_text())
        else:
            records[name] = convert(name, Path("/tmp/deploykit-corpus-executorch"))
    lines = ["# Corpus: the PyTorch models through `--to executorch`", "",
             "Written by `python -m bench.corpus_executorch`. MTCNN's three nets (facenet-pytorch 2.6.0 weights, "
             "saved as .pt2 by bench/corpus), `deploykit convert --to executorch --quantize fp16` with the corpus "
             "inputs (data.npz) for parity. Latency: the record's host figure (ExecuTorch runtime, 1 thread).", "",
             "| model | variant | size | worst max rel error | parity | where the ops run | latency |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, record in records.items():
        lines += rows(name, record)
    lines += ["", "R-Net and O-Net first failed to lower (XNNPACK's ChannelsLastTaggedReshapePass raised on their "
              "per-channel PReLU after nn.Linear); deploykit's decompose_prelu pass now runs for the executorch "
              "target too, and both lower with every op delegated at fp32. At fp16 the casts at the program's "
              "float32 inputs and outputs run in portable kernels."]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "corpus-executorch.json").write_text(json.dumps(records, indent=2, sort_keys=True) + "\n")
    (RESULTS / "corpus-executorch.md").write_text("\n".join(lines) + "\n")
    return 0 if all("error" not in r and all(a["parity"]["passed"] for a in r["artifacts"]) for r in records.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
