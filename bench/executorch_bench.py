"""ExecuTorch next to TFLite and Core ML: MobileNetV2 through all three targets at fp32 and int8 in one
`deploykit convert`, and int8 accuracy of a trained PyTorch digits model on ExecuTorch and LiteRT.

    python -m bench.executorch_bench               # both parts; writes bench/results/executorch.{json,md}
    python -m bench.executorch_bench --part 1      # only MobileNetV2 (keeps the other part's stored results)
    python -m bench.executorch_bench --part 2 --runs 50

Part 1: a PyTorch MobileNetV2 1.0 at 224 (standard inverted residuals, random weights, seeded), saved with
torch.export.save, 32 calibration images (smooth random structure plus fine noise, NCHW float32), then one
`deploykit convert mnv2.pt2 --to tflite,coreml,executorch --quantize int8 --calibration cal.npy --samples 2 --json`.
From its record: each artifact's size, conversion_seconds and parity max_rel_error, the ExecuTorch delegation
notes; Core ML latency is the record's estimate (no Core ML runtime off Apple hardware). Host latency is
measured here: .tflite with deploykit.runners.litert_bench.bench (LiteRT, XNNPACK delegate), .pte with
deploykit.runners.executorch_bench.bench_pte (ExecuTorch XNNPACK), both at 1 and 2 threads, same warm-up and runs.

Part 2: a small PyTorch CNN trained a few epochs on examples/make_example_model.py's digits_split() train
split (1,500 images), exported NCHW; `deploykit convert --to executorch,tflite --quantize int8` with 300 train
images as calibration; top-1 on the 297 held-out images through runner_for_artifact for every artifact and
the source module itself. The goal: ExecuTorch int8 within 1 point of ExecuTorch fp32.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "bench" / "results"
DEPLOYKIT = str(Path(sys.executable).parent / "deploykit")


# -- MobileNetV2 (Sandler et al. 2018), width 1.0, 224x224, 1000 classes -------------------------------------
def mobilenet_v2(seed: int = 0):
    import torch
    from torch import nn

    def conv_bn(cin, cout, k, stride=1, groups=1, relu=True):
        layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
        return nn.Sequential(*layers, nn.ReLU6(inplace=True)) if relu else nn.Sequential(*layers)

    class InvertedResidual(nn.Module):
        def __init__(self, cin, cout, stride, expand):
            super().__init__()
            mid = cin * expand
            layers = [] if expand == 1 else [conv_bn(cin, mid, 1)]
            layers += [conv_bn(mid, mid, 3, stride, groups=mid), conv_bn(mid, cout, 1, relu=False)]
            self.conv = nn.Sequential(*layers)
            self.residual = stride == 1 and cin == cout

        def forward(self, x):
            return x + self.conv(x) if self.residual else self.conv(x)

    class MobileNetV2(nn.Module):
        # (expansion t, channels c, repeats n, first stride s)
        SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                    (6, 320, 1, 1)]

        def __init__(self, num_classes=1000):
            super().__init__()
            cin, layers = 32, [conv_bn(3, 32, 3, 2)]
            for t, c, n, s in self.SETTINGS:
                for i in range(n):
                    layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                    cin = c
            layers.append(conv_bn(cin, 1280, 1))
            self.features = nn.Sequential(*layers)
            self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))

        def forward(self, x):
            x = nn.functional.adaptive_avg_pool2d(self.features(x), 1)
            return self.classifier(torch.flatten(x, 1))

    torch.manual_seed(seed)
    model = MobileNetV2()
    for module in model.modules():  # trained-looking batchnorm statistics, so activations neither vanish nor explode
        if isinstance(module, nn.BatchNorm2d):
            with torch.no_grad():
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.0)
                module.bias.uniform_(-0.1, 0.1)
    return model.eval()


def calibration_images(count: int, size: int = 224, seed: int = 0):
    """Smooth random structure (7x7 noise upsampled) plus fine noise, roughly ImageNet-normalized range."""
    import numpy as np

    rng = np.random.default_rng(seed)
    coarse = rng.normal(0.0, 1.0, (count, 3, 7, 7)).astype("float32")
    smooth = np.repeat(np.repeat(coarse, size // 7, axis=2), size // 7, axis=3)
    return (smooth + rng.normal(0.0, 0.3, (count, 3, size, size))).astype("float32")


def convert(source: Path, args: list[str], out: Path) -> tuple[dict, float]:
    command = [DEPLOYKIT, "convert", str(source), *args, "--json", "--quiet", "--out", str(out)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 3) or not done.stdout.strip().startswith("{"):
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}): {done.stderr[-3000:]}")
    return json.loads(done.stdout), seconds


def latency(path: Path, threads: int, warmup: int, runs: int) -> dict:
    from deploykit.runners.executorch_bench import bench_pte
    from deploykit.runners.litert_bench import bench

    result = bench_pte(path, threads=threads, warmup=warmup, runs=runs) if path.suffix == ".pte" else \
        bench(path, threads=threads, warmup=warmup, runs=runs, xnnpack=True)
    figures = result.to_json()
    return {k: figures[k] for k in ("delegate", "median_ms", "p90_ms", "min_ms", "load_ms", "peak_rss_mb", "model_rss_mb")}


def max_rel_error(parity: dict | None) -> float | None:
    outputs = (parity or {}).get("outputs") or {}
    values = [o["max_rel_error"] for o in outputs.values() if o.get("max_rel_error") is not None]
    return max(values) if values else None


def part1(work: Path, warmup: int, runs: int) -> dict:
    import numpy as np
    import torch

    from deploykit.quantize.options import skipped_schemes

    model = mobilenet_v2()
    calibration = calibration_images(32)
    source, cal = work / "mnv2.pt2", work / "cal.npy"
    torch.export.save(torch.export.export(model, (torch.from_numpy(calibration[:1]),)), source)
    np.save(cal, calibration)
    targets = ("tflite", "coreml", "executorch")
    args = ["--to", ",".join(targets), "--quantize", "int8", "--calibration", str(cal), "--samples", "2"]
    record, wall = convert(source, args, work / "out")
    rows = []
    for artifact in record["artifacts"]:
        path = work / "out" / artifact["path"]
        row = {"model": "MobileNetV2 1.0 224", "target": artifact["target"], "variant": artifact["variant"],
               "artifact": artifact["path"], "converter": artifact["converter"], "size_bytes": artifact["size_bytes"],
               "conversion_seconds": artifact["conversion_seconds"],
               "max_rel_error": max_rel_error(artifact.get("parity")),
               "parity_passed": (artifact.get("parity") or {}).get("passed"),
               "quantization": artifact.get("quantization"), "op_histogram": artifact.get("op_histogram")}
        if artifact["target"] == "executorch":
            row["delegation_notes"] = (artifact.get("passes") or [{}])[-1].get("notes", [])
        if artifact["target"] == "coreml":
            row["latency_estimate"] = artifact.get("latency")
        else:
            row["latency"] = {str(t): latency(path, t, warmup, runs) for t in (1, 2)}
        rows.append(row)
        print(json.dumps({k: row[k] for k in ("artifact", "size_bytes", "conversion_seconds", "max_rel_error")}
                         | {"latency": {t: v["median_ms"] for t, v in row.get("latency", {}).items()}}), flush=True)
    return {"command": "deploykit convert mnv2.pt2 " + " ".join(a if a != str(cal) else "cal.npy" for a in args)
            + " --json --out DIR", "wall_seconds": round(wall, 1), "total_seconds": record.get("total_seconds"),
            "failures": record.get("failures"), "skipped": skipped_schemes("int8", targets),
            "params": record["inspection"].get("params"), "macs": record["inspection"].get("macs"),
            "calibration": "32 images 3x224x224: 7x7 normal noise upsampled to 224 plus N(0, 0.3) pixel noise",
            "rows": rows}


# -- Part 2: a trained PyTorch digits classifier ---------------------------------------------------------------
def digits_net():
    from torch import nn

    def block(cin, cout, stride):
        return [nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin), nn.ReLU6(),
                nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU6()]

    return nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU6(),
                         *block(32, 64, 2), *block(64, 128, 2), *block(128, 128, 1),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10))


def train_digits(epochs: int, seed: int = 0):
    """(model in eval mode, train images NCHW, held-out images NCHW, held-out labels, seconds)."""
    import numpy as np
    import torch

    from examples.make_example_model import digits_split

    (train_x, train_y), (test_x, test_y) = digits_split()
    train_x = np.ascontiguousarray(train_x.transpose(0, 3, 1, 2))  # NHWC -> the PyTorch layout
    test_x = np.ascontiguousarray(test_x.transpose(0, 3, 1, 2))
    torch.manual_seed(seed)
    torch.set_num_threads(2)
    model = digits_net()
    optimizer = torch.optim.Adam(model.parameters(), 3e-3)
    x, y = torch.from_numpy(train_x), torch.from_numpy(train_y.astype("int64"))
    started = time.perf_counter()
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x))
        for i in range(0, len(x), 64):
            batch = order[i:i + 64]
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
    return model.eval(), train_x, test_x, test_y, time.perf_counter() - started


def top1(predict, images, labels) -> float:
    import numpy as np

    hits = sum(int(np.argmax(predict(image[None]))) == int(label) for image, label in zip(images, labels))
    return hits / len(labels)


def artifact_top1(path: Path, images, labels) -> float:
    import numpy as np

    from deploykit.targets import runner_for as runner_for_artifact

    with runner_for_artifact(path) as runner:
        spec = runner.input_specs[0]
        nhwc = len(spec.shape) == 4 and spec.shape[-1] == 3 and spec.shape[1] != 3

        def predict(image):
            feed = np.ascontiguousarray(image.transpose(0, 2, 3, 1)) if nhwc else image
            return next(iter(runner.infer({spec.name: feed}).values()))

        return top1(predict, images, labels)


def part2(work: Path, epochs: int, calibration_count: int) -> dict:
    import numpy as np
    import torch

    model, train_x, test_x, test_y, train_seconds = train_digits(epochs)
    with torch.no_grad():
        source_accuracy = top1(lambda image: model(torch.from_numpy(image)).numpy(), test_x, test_y)
    source, cal = work / "digits_torch.pt2", work / "digits_cal.npy"
    torch.export.save(torch.export.export(model, (torch.from_numpy(test_x[:1]),)), source)
    # Evenly spaced training images (never the held-out ones) as int8 calibration.
    np.save(cal, train_x[np.linspace(0, len(train_x) - 1, calibration_count).astype(int)])
    args = ["--to", "executorch,tflite", "--quantize", "int8", "--calibration", str(cal),
            "--calibration-samples", str(calibration_count)]
    record, wall = convert(source, args, work / "digits")
    rows = [{"runtime": "PyTorch (source, eager)", "target": "source", "variant": "fp32", "artifact": source.name,
             "top1": source_accuracy}]
    for artifact in record["artifacts"]:
        accuracy = artifact_top1(work / "digits" / artifact["path"], test_x, test_y)
        rows.append({"runtime": {"executorch": "ExecuTorch XNNPACK", "tflite": "LiteRT"}[artifact["target"]],
                     "target": artifact["target"], "variant": artifact["variant"], "artifact": artifact["path"],
                     "size_bytes": artifact["size_bytes"], "conversion_seconds": artifact["conversion_seconds"],
                     "max_rel_error": max_rel_error(artifact.get("parity")), "top1": accuracy,
                     "delegation_notes": (artifact.get("passes") or [{}])[-1].get("notes", [])
                     if artifact["target"] == "executorch" else None})
        print(json.dumps({k: rows[-1][k] for k in ("artifact", "top1")}), flush=True)

    def accuracy(target, variant):
        return next(r["top1"] for r in rows if r["target"] == target and r["variant"] == variant)

    drops = {t: round((accuracy(t, "fp32") - accuracy(t, "int8")) * 100, 2) for t in ("executorch", "tflite")}
    return {"model": "depthwise-separable CNN, 4 blocks (" + f"{sum(p.numel() for p in model.parameters())} parameters)",
            "training": f"{epochs} epochs, Adam 3e-3, batch 64, on digits_split()'s 1,500 training images "
                        f"({train_seconds:.1f} s on CPU)",
            "held_out": len(test_y), "calibration": f"{calibration_count} evenly spaced training images",
            "command": "deploykit convert digits_torch.pt2 " + " ".join(a if a != str(cal) else "digits_cal.npy"
                                                                        for a in args) + " --json --out DIR",
            "wall_seconds": round(wall, 1), "failures": record.get("failures"), "rows": rows,
            "int8_drop_points": drops, "goal": "ExecuTorch int8 within 1 point of ExecuTorch fp32",
            "goal_met": drops["executorch"] <= 1.0}


# -- Results ---------------------------------------------------------------------------------------------------
def _ms(row: dict, threads: str) -> str:
    if "latency" not in row:
        return "—"
    return f"{row['latency'][threads]['median_ms']:.2f} ms"


def _err(value) -> str:
    return "—" if value is None else f"{value:.2e}"


def markdown(results: dict) -> str:
    lines = ["# ExecuTorch next to TFLite and Core ML", "",
             f"`python -m bench.executorch_bench` on this machine ({results['machine']['cpus']} cores, "
             f"{results['machine']['platform']}), torch {results['tool_versions'].get('torch', '?')}. "
             "Host latency is the median wall time of single-image calls on this x86 host, not a device figure.", ""]
    one = results.get("part1")
    if one:
        warm = one["rows"][0].get("latency", {}).get("1", {})
        lines += ["## MobileNetV2 1.0 224 (random weights) through all three targets, fp32 and int8", "",
                  f"One command: `{one['command']}` ({one['wall_seconds']} s wall, parity on 2 samples). "
                  f"{one['params']:,} parameters, {one['macs'] / 1e6:.0f} M MACs. Calibration: {one['calibration']}. "
                  f"Latency: `bench` (LiteRT, XNNPACK delegate) for .tflite, `bench_pte` (ExecuTorch, XNNPACK "
                  f"delegate) for .pte, {results['warmup']} warm-up + {results['runs']} timed runs, each in its own "
                  "child process, at the same thread counts.", "",
                  "| model | target | variant | size | conversion s | max rel error | latency 1 thread | latency 2 threads |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        order = {"executorch": 0, "tflite": 1, "coreml": 2}
        for row in sorted(one["rows"], key=lambda r: (r["variant"], order.get(r["target"], 9))):
            target = {"executorch": "ExecuTorch (XNNPACK)", "tflite": "TFLite (LiteRT XNNPACK)",
                      "coreml": "Core ML"}[row["target"]]
            if row["target"] == "coreml":
                estimate = (row.get("latency_estimate") or {}).get("median_ms")
                one_t = f"{estimate:.2f} ms (estimate †)" if estimate is not None else "—"
                two_t = "—"
            else:
                one_t, two_t = _ms(row, "1"), _ms(row, "2")
            lines.append(f"| {row['model']} | {target} | {row['variant']} | {row['size_bytes'] / 1e6:.2f} MB | "
                         f"{row['conversion_seconds']:.1f} | {_err(row['max_rel_error'])} | {one_t} | {two_t} |")
        lines += ["", "ExecuTorch vs LiteRT side by side (median ms; ratio > 1: ExecuTorch slower):", "",
                  "| variant | threads | ExecuTorch | LiteRT | ExecuTorch / LiteRT |", "| --- | --- | --- | --- | --- |"]
        for variant in ("fp32", "int8"):
            pair = {r["target"]: r for r in one["rows"] if r["variant"] == variant and "latency" in r}
            if {"executorch", "tflite"} <= set(pair):
                for t in ("1", "2"):
                    et, lt = pair["executorch"]["latency"][t]["median_ms"], pair["tflite"]["latency"][t]["median_ms"]
                    lines.append(f"| {variant} | {t} | {et:.2f} | {lt:.2f} | {et / lt:.2f} |")
        coreml = [r for r in one["rows"] if r["target"] == "coreml"]
        label = (coreml[0].get("latency_estimate") or {}).get("label", "estimate") if coreml else "estimate"
        lines += ["", f"† Core ML latency is deploykit's {label}, not a measurement "
                  "(no thread setting).", ""]
        for note in one["skipped"]:
            lines.append(f"- Core ML int8 not made: `{note}` (deploykit says so and converts the rest; the record "
                         f"lists no failure: {one['failures'] or 'none'}).")
        for row in one["rows"]:
            if row["target"] == "executorch":
                lines.append(f"- {row['artifact']} delegation: {row['delegation_notes'][0] if row['delegation_notes'] else '?'}"
                             f"; delegate at run time: {row['latency']['1']['delegate']}.")
        for row in one["rows"]:
            if "latency" in row:
                lines.append(f"- {row['artifact']}: load {row['latency']['1']['load_ms']:.0f} ms (first call included), "
                             f"peak RSS {row['latency']['1']['peak_rss_mb']:.0f} MB (model {row['latency']['1']['model_rss_mb']:.0f} MB) at 1 thread.")
        lines.append("")
    two = results.get("part2")
    if two:
        lines += ["## Trained digits classifier (PyTorch): int8 accuracy on ExecuTorch and LiteRT", "",
                  f"{two['model']}, trained {two['training']}; `{two['command']}`; calibration: {two['calibration']}. "
                  f"Top-1 on the {two['held_out']} held-out images of `digits_split()` (the Keras example's split), "
                  "one image per call through `runner_for_artifact`.", "",
                  "| runtime | variant | artifact | size | max rel error (parity) | top-1 | vs fp32 of the runtime |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        fp32 = {r["target"]: r["top1"] for r in two["rows"] if r["variant"] == "fp32"}
        for row in two["rows"]:
            delta = "—" if row["target"] == "source" or row["variant"] == "fp32" else \
                f"{(row['top1'] - fp32[row['target']]) * 100:+.2f} points"
            size = f"{row['size_bytes'] / 1e3:.0f} KB" if "size_bytes" in row else "—"
            lines.append(f"| {row['runtime']} | {row['variant']} | {row['artifact']} | {size} | "
                         f"{_err(row.get('max_rel_error'))} | {row['top1'] * 100:.2f} % | {delta} |")
        verdict = "met" if two["goal_met"] else "NOT met"
        lines += ["", f"Goal ({two['goal']}): {verdict} — ExecuTorch int8 drop {two['int8_drop_points']['executorch']:+.2f} "
                  f"points, LiteRT int8 drop {two['int8_drop_points']['tflite']:+.2f} points."]
        for row in two["rows"]:
            if row.get("delegation_notes"):
                lines.append(f"- {row['artifact']}: {row['delegation_notes'][0]}")
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("1", "2", "all"), default="all")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--calibration-samples", type=int, default=200)
    args = parser.parse_args()
    import deploykit.pipeline.tool_versions

    stored = RESULTS / "executorch.json"
    results = json.loads(stored.read_text()) if stored.is_file() and args.part != "all" else {}
    results.update({"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                "platform": platform.platform()},
                    "runs": args.runs, "warmup": args.warmup,
                    "tool_versions": deploykit.pipeline.tool_versions.tool_versions("torch", ("tflite", "coreml", "executorch"))})
    with tempfile.TemporaryDirectory() as tmp:
        if args.part in ("1", "all"):
            results["part1"] = part1(Path(tmp), args.warmup, args.runs)
        if args.part in ("2", "all"):
            results["part2"] = part2(Path(tmp), args.epochs, args.calibration_samples)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stored.write_text(json.dumps(results, indent=2) + "\n")
    text = markdown(results)
    (RESULTS / "executorch.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
