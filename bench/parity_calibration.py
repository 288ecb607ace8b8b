"""Evidence for the default tolerance profiles: metrics of right and wrong pairs for every precision.

Right pairs: a network and every artifact ``deploykit convert --quantize`` makes of it (fp32, fp16,
int8-weights, int8 calibrated on 32 samples of the verify distribution, int4, lut8/6/4/2). Wrong
pairs, each checked under the profile of the artifact it is compared with: the fp32 artifact of
the same architecture built from another seed (same signature), the source with one middle conv
weight perturbed by Gaussian noise of 2 %, 10 % and 50 % of the weight's std, the source with its
last layer's weight perturbed by 50 %, and the source with one middle batch norm (or ReLU) dropped.

    .venv/bin/python bench/parity_calibration.py [--full] [--only torch,keras,onnx|none] [--render]
    .venv/bin/python bench/parity_calibration.py --schemes int16x8 --to tflite   # one scheme's rows, merged in

Writes bench/results/parity_calibration.json and .md. Slow (minutes); run it when profiles change.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SMALL = ("mobilenet", "resnet", "shufflenet", "squeezenet", "efficientnet")
KEYS = ("max_rel_error", "cosine_similarity", "snr_db", "top1_agreement", "top5_agreement")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--full", action="store_true", help="also the full-size keras.applications networks and torch MobileNetV2")
    parser.add_argument("--only", default="", help="comma-separated frameworks: torch,keras,onnx; 'none' for no small nets")
    parser.add_argument("--render", action="store_true", help="only re-judge the stored metrics with the current profiles")
    parser.add_argument("--schemes", default=SCHEMES, help="the schemes to measure (rows of the others are kept); "
                                                           "fp32 rows only when all of them are measured")
    parser.add_argument("--to", default="tflite,coreml", help="the targets to convert to")
    args = parser.parse_args()
    wanted = Wanted(args.schemes, args.to)
    out = REPO / "bench" / "results"
    stored = out / "parity_calibration.json"
    # Rows of earlier runs are kept (a run replaces the rows it measures again).
    rows: list[dict] = json.loads(stored.read_text()) if stored.is_file() else []
    if args.render:
        _save(rows, out)
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        frameworks = [] if args.only == "none" else args.only.split(",") if args.only else ["torch", "keras", "onnx"]
        for framework in frameworks:
            for net in (SMALL if framework != "onnx" else ("mobilenet", "resnet")):
                rows = _merge(rows, calibrate(framework, net, work, small=True, wanted=wanted))
                _save(rows, out)
        if args.full:
            for framework, net in (("keras", "mobilenet_v2"), ("torch", "mobilenet_v2"), ("keras", "mobilenet_v3_small"),
                                   ("keras", "efficientnet_b0"), ("keras", "resnet50")):
                rows = _merge(rows, calibrate(framework, net, work, small=False, wanted=wanted))
                _save(rows, out)
    _save(rows, out)


SCHEMES = "fp16,int8-weights,int8,int4,lut8,lut6,lut4,lut2"


@dataclass(frozen=True)
class Wanted:
    """What one run measures: ``schemes`` (comma-separated, as --quantize takes them) on ``targets``."""

    schemes: str = SCHEMES
    targets: str = "tflite,coreml"

    def measures(self, variant: str) -> bool:  # fp32 rows are the full run's: a one-scheme run leaves them as stored
        return variant in self.schemes.split(",") or (variant == "fp32" and self.schemes == SCHEMES)


def calibrate(framework: str, net: str, work: Path, *, small: bool, wanted: Wanted = Wanted()) -> list[dict]:
    """Every scheme deploykit convert makes for one network, against right and wrong sources."""
    import numpy as np

    import deploykit
    from deploykit.core.noise import capture_output
    from deploykit.loaders import load_source
    from tests.parity import variants

    folder = work / f"{framework}-{net}"
    folder.mkdir()
    sources = [_source_file(framework, net, seed, folder) for seed in (0, 1)]
    shapes = {None: (1, 3, 32, 32) if small else (1, 3, 224, 224)} if framework == "torch" else None
    with capture_output():
        model = load_source(sources[0], inputs=shapes)
        shape = model.inputs[0].shape
        calibration = folder / "calibration.npy"  # the verify distribution, in the source's layout
        np.save(calibration, np.random.default_rng(99).uniform(-1, 1, (32, *shape[1:])).astype(np.float32))
        right = deploykit.convert(sources[0], to=wanted.targets, out=folder / "out0", name=f"{net}0", inputs=shapes,
                                  quantize=wanted.schemes, calibration=calibration, calibration_samples=32,
                                  coreml_target="iOS18")
        wrong = deploykit.convert(sources[1], to=wanted.targets, out=folder / "out1", name=f"{net}1", inputs=shapes)
    other = {a.target: folder / "out1" / a.path for a in wrong.artifacts}
    wrongs = [("other seed", None)]
    for relative in (0.02, 0.1, 0.5):
        wrongs.append((f"perturbed {relative:g}", variants.perturbed(model, relative)))
    # Deep random-weight networks barely propagate a middle layer's change to the output (see docs):
    # the classifier's weights are perturbed too.
    wrongs.append(("perturbed last 0.5", variants.perturbed(model, 0.5, where="last")))
    if framework in ("torch", "keras"):
        wrongs.append(("dropped layer", variants.dropped(model)))
    rows = []
    for artifact in (a for a in right.artifacts if wanted.measures(a.variant)):
        path = folder / "out0" / artifact.path
        variant, target = artifact.variant, artifact.target
        rows.append(_row(framework, net, variant, target, "right", model, path, variant))
        for kind, changed in wrongs:
            if changed is None:
                rows.append(_row(framework, net, variant, target, kind, model, other[target], variant))
            else:
                rows.append(_row(framework, net, variant, target, f"{kind} ({changed[1]})", changed[0], path, variant))
    return rows


def _row(framework, net, variant, target, kind, model, artifact, profile) -> dict:
    from deploykit.pipeline.verify import verify

    started = time.perf_counter()
    report = verify(model, artifact, profile=profile)
    output = report.outputs[0]
    row = {"framework": framework, "net": net, "variant": variant, "target": target, "pair": kind,
           "passed": report.passed, "seconds": round(time.perf_counter() - started, 2),
           **{k: output.metrics.get(k) for k in KEYS}, "failed": [c.metric for c in output.failed_checks]}
    print(json.dumps(row), flush=True)
    return row


def _source_file(framework: str, net: str, seed: int, folder: Path) -> str:
    if framework == "keras":
        import keras

        from tests.zoo import keras_nets

        path = folder / f"{net}_{seed}.keras"
        keras.utils.set_random_seed(seed)
        if net == "mobilenet_v3_small":
            model = keras.applications.MobileNetV3Small(weights=None, input_shape=(224, 224, 3), classifier_activation=None)
        elif net == "efficientnet_b0":
            model = keras.applications.EfficientNetB0(weights=None, input_shape=(224, 224, 3), classifier_activation=None)
        elif net == "resnet50":
            model = keras.applications.ResNet50(weights=None, input_shape=(224, 224, 3), classifier_activation=None)
        elif net == "mobilenet_v2":
            model = keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3), classifier_activation=None)
        else:
            model = keras_nets.build(net, seed)
        if net in ("mobilenet_v3_small", "efficientnet_b0", "resnet50", "mobilenet_v2"):
            model = keras_nets._randomize_batchnorm(model, seed)
        model.save(path)
        return str(path)
    if framework == "torch":
        entry = folder / f"entry_{seed}.py"
        entry.write_text(f"from tests.zoo.torch_nets import build\n\ndef net():\n    return build({net!r}, {seed})\n")
        return f"{entry}:net"
    from tests.conftest import save_onnx

    return str(save_onnx(net, folder, seed))


def _merge(rows: list[dict], new: list[dict]) -> list[dict]:
    key = lambda r: (r["framework"], r["net"], r["variant"], r["target"], r["pair"])  # noqa: E731
    fresh = {key(r) for r in new}
    return [r for r in rows if key(r) not in fresh] + new


def _judge(row: dict) -> list[str]:
    """The metrics that fail the row's profile as it is now (verdicts follow profile changes)."""
    from deploykit.parity.profiles import get_profile

    classifier = row.get("top1_agreement") is not None
    return [t.metric for t in get_profile(row["variant"]).thresholds_for("output", classifier)
            if row.get(t.metric) is not None and not t.passes(row[t.metric])]


def _save(rows: list[dict], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for row in rows:
        row["failed"] = _judge(row)
        row["passed"] = not row["failed"]
    (out / "parity_calibration.json").write_text(json.dumps(rows, indent=1) + "\n")
    lines = ["# Parity calibration: metrics of right and wrong pairs", "",
             "Generated by `bench/parity_calibration.py`; each pair is judged under the profile of the artifact's "
             "variant, with the profiles as they are now (`--render` re-judges stored metrics).", "",
             *_summary(rows), "",
             "## Every pair", "",
             "| framework | net | variant | target | pair | verdict | max rel err | cosine | SNR dB | top-1 | top-5 |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        cells = [_fmt(r.get(k)) for k in KEYS]
        verdict = "pass" if r["passed"] else "FAIL (" + ", ".join(r["failed"]) + ")"
        lines.append(f"| {r['framework']} | {r['net']} | {r['variant']} | {r['target']} | {r['pair']} | {verdict} | " + " | ".join(cells) + " |")
    (out / "parity_calibration.md").write_text("\n".join(lines) + "\n")


def _summary(rows: list[dict]) -> list[str]:
    """Per profile: the worst right pair, and how many wrong pairs of each kind fail."""
    kinds = ("other seed", "perturbed 0.02", "perturbed 0.1", "perturbed 0.5", "perturbed last 0.5", "dropped layer")
    lines = ["## Summary", "", "Right pairs: the worst value over every network and target (all must pass). "
             "Wrong pairs: failed / measured (a failure is a catch).", "",
             "| profile | right pairs | worst SNR dB | worst cosine | worst max rel err | min top-1 | min top-5 | "
             + " | ".join(kinds) + " |", "| --- " * (7 + len(kinds)) + "|"]
    order = ["fp32", "fp16", "int8-weights", "int8", "int16x8", "int4", "lut8", "lut6", "lut4", "lut2"]
    for variant in order:
        mine = [r for r in rows if r["variant"] == variant]
        right = [r for r in mine if r["pair"] == "right"]
        if not right:
            continue
        passed = sum(r["passed"] for r in right)
        worst = [min(r["snr_db"] for r in right), min(r["cosine_similarity"] for r in right),
                 max(r["max_rel_error"] for r in right),
                 min(r["top1_agreement"] for r in right if r["top1_agreement"] is not None),
                 min(r["top5_agreement"] for r in right if r["top5_agreement"] is not None)]
        cells = []
        for kind in kinds:
            wrong = [r for r in mine if r["pair"].split(" (")[0] == kind]
            cells.append(f"{sum(not r['passed'] for r in wrong)}/{len(wrong)}" if wrong else "-")
        shown = [_fmt(worst[0]), f"{worst[1]:.6f}", *(_fmt(v) for v in worst[2:])]
        lines.append(f"| {variant} | {passed}/{len(right)} pass | " + " | ".join(shown) + " | "
                     + " | ".join(cells) + " |")
    return lines


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return f"{value:.3g}"


if __name__ == "__main__":
    main()
