"""The NCNN target's done-when figures: MobileNetV2 (3.5M parameters, the zoo's architecture with seeded weights and
calibrated batch norm) from .pt2 and from .onnx through `deploykit convert --to ncnn --quantize fp16`, parity through
the ncnn runtime, size, and host latency with `deploykit bench` (ncnn, CPU) beside LiteRT's for the same model.

    python -m bench.ncnn_bench          # writes bench/results/ncnn.{json,md}
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
DEPLOYKIT = [sys.executable, "-m", "deploykit.cli.app"]


def sources(folder: Path) -> dict[str, Path]:
    import torch

    from tests.zoo import torch_nets

    module = torch_nets.build("mobilenet_v2", 0)
    example = torch.rand(1, 3, 224, 224)
    pt2, onnx = folder / "mobilenet_v2.pt2", folder / "mobilenet_v2.onnx"
    torch.export.save(torch.export.export(module, (example,)), pt2)
    torch.onnx.export(module, (example,), str(onnx), dynamo=False, opset_version=17, input_names=["image"],
                      output_names=["logits"])
    return {"pt2": pt2, "onnx": onnx}


def convert(source: Path, out: Path, to: str) -> tuple[dict, float]:
    started = time.perf_counter()
    done = subprocess.run([*DEPLOYKIT, "convert", str(source), "--to", to, "--quantize", "fp16", "--out", str(out),
                           "--json"], capture_output=True, text=True, cwd=REPO)
    if done.returncode not in (0, 1):
        raise SystemExit(done.stderr)
    return json.loads(done.stdout), time.perf_counter() - started


def bench(paths: list[Path]) -> list[dict]:
    done = subprocess.run([*DEPLOYKIT, "bench", *map(str, paths), "--runs", "50", "--json"], capture_output=True,
                          text=True, cwd=REPO, check=True)
    return json.loads(done.stdout)


def main() -> int:
    rows, timings = [], []
    with tempfile.TemporaryDirectory(prefix="deploykit-ncnn-bench-") as scratch:
        folder = Path(scratch)
        made = sources(folder)
        for kind, source in made.items():
            record, seconds = convert(source, folder / f"{kind}-ncnn", "ncnn")
            for artifact in record["artifacts"]:
                parity = artifact["parity"]
                rows.append({"source": kind, "variant": artifact["variant"], "converter": artifact["converter"],
                             "size_bytes": artifact["size_bytes"], "passed": parity["passed"], "profile": parity["profile"],
                             "max_rel_error": max(o["max_rel_error"] for o in parity["outputs"].values()),
                             "float32_layers": len(artifact["quantization"].get("float32_layers", [])),
                             "attempts": [f"{a['name']}: {a['outcome']}" for a in artifact["attempts"]],
                             "convert_seconds": round(seconds, 1)})
        tflite, _ = convert(made["pt2"], folder / "pt2-tflite", "tflite")
        paths = [folder / "pt2-ncnn" / f"mobilenet_v2.{v}.ncnn" for v in ("fp32", "fp16")]
        paths += [folder / "pt2-tflite" / a["path"] for a in tflite["artifacts"]]
        timings = bench(paths)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ncnn.json").write_text(json.dumps({"conversions": rows, "bench": timings}, indent=2) + "\n")
    lines = ["# NCNN: MobileNetV2 through `--to ncnn`", "",
             "MobileNetV2 (tests/zoo/torch_nets.py, 3.5M parameters, seeded weights, calibrated batch norm), 1x3x224x224, "
             "`deploykit convert SOURCE --to ncnn --quantize fp16`; parity on deploykit's 8 seeded samples through the "
             "ncnn runtime (fp32: fp16 storage and arithmetic off; fp16: on, as an app runs it). Produced by "
             "`python -m bench.ncnn_bench` on 2 cores.", "",
             "| source | variant | converter | size | parity | max rel. error | float32 layers kept | attempts |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['source']} | {r['variant']} | {r['converter']} | {r['size_bytes'] / 1e6:.2f} MB | "
                     f"{'pass' if r['passed'] else 'FAIL'} ({r['profile']}) | {r['max_rel_error']:.2e} | {r['float32_layers']} | "
                     f"{'; '.join(r['attempts'])} |")
    lines += ["", "Host latency, `deploykit bench --runs 50`, 1 thread (this machine's x86 CPU; ncnn on the CPU, LiteRT with "
              "XNNPACK):", "", "| artifact | runtime | size | median | p90 | peak memory |", "| --- | --- | --- | --- | --- | --- |"]
    for t in timings:
        lines.append(f"| {Path(t['artifact']).name} | {t['delegate']} | {t['size_bytes'] / 1e6:.2f} MB | {t['median_ms']:.2f} ms | "
                     f"{t['p90_ms']:.2f} ms | {t['peak_rss_mb']:.0f} MB |")
    (RESULTS / "ncnn.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if all(r["passed"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
