"""The conditioning-aware verdict measured: right artifacts against their source's own noise, broken ones against
the widened limits (issue 21, item 3; deploykit/parity/conditioning.py).

    .venv/bin/python -m bench.conditioning [--models bench/corpus/models] [--skip-corpus]

Two sets of models:

- the ill-conditioned fixture (tests/parity/ill_conditioned.py: a LayerNorm that removes a 1e5 offset), its
  right artifact and four deliberately broken ones (swapped colour order, dropped bias, wrong resize mode,
  transposed weight), to TFLite and Core ML, verified on deploykit's default inputs and on uniform(-1, 1)
  data (where the source is ill-conditioned);
- corpus architectures the issue names (LeViT-128S and EfficientNetV2-B0, bench/corpus/architectures.py),
  converted as a user would (default inputs), then verified on inputs outside their domain (uniform(-1, 1),
  where their own noise is above the fp32 bound) to measure the ratio of the artifact's error to the source's
  noise, the figure ``MULTIPLE`` is chosen against.

Writes bench/results/conditioning.md and .json. Each row: the artifact's worst max_rel_error, the source's
noise on the deciding sample, their ratio, the limit used and the verdict.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_MODELS = Path(__file__).resolve().parent / "corpus" / "models"
TARGETS = ("tflite", "coreml")
CORPUS = {"arch-t-levit": ("model.pt2", ("tflite", "coreml", "executorch")),
          "arch-k-efficientnetv2b0": ("model.keras", ("tflite", "coreml"))}


def _rows(report, model: str, artifact: str, inputs: str, expected: str) -> list[dict]:
    rows = []
    for output in report.outputs:
        check = next((c for c in output.checks if c.metric == "max_rel_error"), None)
        err = output.metrics.get("max_rel_error")
        noise = output.metrics.get("source_noise")
        rows.append({"model": model, "artifact": artifact, "inputs": inputs, "output": output.name,
                     "max_rel_error": err, "source_noise": noise,
                     "ratio": (err / noise) if err is not None and noise else None,
                     "limit": None if check is None else (check.effective_limit or check.limit),
                     "ill_conditioned_samples": len(output.ill_conditioned), "status": output.status,
                     "report_status": report.status, "expected": expected})
    return rows


def fixture_rows(folder: Path) -> list[dict]:
    import deploykit
    from tests.parity import ill_conditioned

    ill_conditioned.save(ill_conditioned.source(), folder / "source.pt2")
    data = folder / "ill.npy"
    np.save(data, np.random.default_rng(1).uniform(-1, 1, (8, *ill_conditioned.SHAPE[1:])).astype(np.float32))
    artifacts = {}
    right = deploykit.convert(folder / "source.pt2", to=",".join(TARGETS), out=folder / "right", verify=False)
    for made in right.artifacts:
        artifacts[("right", made.target)] = folder / "right" / made.path
    for index, (fault, module) in enumerate(ill_conditioned.broken().items()):
        ill_conditioned.save(module, folder / f"broken{index}.pt2")
        made = deploykit.convert(folder / f"broken{index}.pt2", to=",".join(TARGETS), out=folder / f"broken{index}",
                                 verify=False)
        for artifact in made.artifacts:
            artifacts[(fault, artifact.target)] = folder / f"broken{index}" / artifact.path
    rows = []
    for (fault, target), path in artifacts.items():
        for label, given in (("default", None), ("uniform(-1, 1) --data", data)):
            report = deploykit.verify(folder / "source.pt2", path, data=given, profile="fp32")
            expected = "pass" if fault == "right" else "fail"
            rows += _rows(report, "ill-conditioned fixture", f"{fault} ({target})", label, expected)
            print(json.dumps(rows[-1]), flush=True)
    return rows


def corpus_rows(models: Path, folder: Path) -> list[dict]:
    import deploykit
    from deploykit.loaders import load_source

    rows = []
    for name, (file, targets) in CORPUS.items():
        source = models / name / file
        if not source.is_file():
            print(f"skipping {name}: build it first (python -m bench.corpus.build --only {name})")
            continue
        made = deploykit.convert(source, to=",".join(targets), out=folder / name)
        spec = load_source(source).inputs[0]
        data = folder / f"{name}-ill.npy"
        np.save(data, np.random.default_rng(1).uniform(-1, 1, (8, *spec.shape[1:])).astype(np.float32))
        for artifact in made.artifacts:
            rows += _summary_rows(artifact.parity, name, f"right ({artifact.target})")
            report = deploykit.verify(source, folder / name / artifact.path, data=data, profile="fp32")
            rows += _rows(report, name, f"right ({artifact.target})", "uniform(-1, 1) --data", "pass")
            print(json.dumps(rows[-1]), flush=True)
    return rows


def _summary_rows(parity: dict, model: str, artifact: str) -> list[dict]:
    """Rows from a convert record's parity summary (default inputs, as the user ran it)."""
    status = parity.get("status", "passed" if parity.get("passed") else "failed")
    inputs = "default: " + ", ".join(f"{k} {v}" for k, v in (parity.get("input_distribution") or {}).items())
    rows = []
    for name, values in parity["outputs"].items():
        err, noise = values.get("max_rel_error"), values.get("source_noise")
        rows.append({"model": model, "artifact": artifact, "inputs": inputs, "output": name, "max_rel_error": err,
                     "source_noise": noise, "ratio": err / noise if err is not None and noise else None,
                     "limit": values.get("effective_max_rel_error"),
                     "ill_conditioned_samples": len(values.get("ill_conditioned_samples") or ()), "status": status,
                     "report_status": status, "expected": "pass"})
    return rows


def write(rows: list[dict], seconds: float) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "conditioning.json").write_text(json.dumps(rows, indent=2, default=float) + "\n")
    judged = [r for r in rows if r["expected"] == "pass" and r["ratio"] is not None and r["report_status"] == "passed"]
    ill = [r for r in judged if r["source_noise"] > 1e-4]
    wrong = [r for r in rows if r["expected"] == "fail"]
    undecided = [r for r in rows if r["report_status"] == "inconclusive"]
    summary = (f"{len(rows)} rows in {seconds:.0f} s. Right artifacts: error at most "
               f"{max(r['ratio'] for r in judged):.2f} x the source's own noise over all {len(judged)} judged rows, "
               f"{max((r['ratio'] for r in ill), default=0):.2f} x on the {len(ill)} ill-conditioned ones (source "
               f"noise above the fp32 bound of 1e-4); MULTIPLE is 10. Broken artifacts: "
               f"{sum(r['report_status'] == 'failed' for r in wrong)} of {len(wrong)} failed, their error at least "
               f"{min(r['ratio'] for r in wrong):.0f} x the source's noise (smallest error "
               f"{min(r['max_rel_error'] for r in wrong):.3g}). Inconclusive (every sample's own noise above 1e-3): "
               f"{len(undecided)} rows.") if judged and wrong else ""
    lines = ["# Parity against the source's own noise (bench/conditioning.py)", "", summary, "",
             "| model | artifact | inputs | output | max rel err | source noise | err / noise | limit used | "
             "ill-cond. samples | verdict | expected |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
            r["model"], r["artifact"], r["inputs"], r["output"], _g(r["max_rel_error"]), _g(r["source_noise"]),
            "" if r["ratio"] is None else f"{r['ratio']:.2f}", _g(r["limit"]), r["ill_conditioned_samples"],
            r["report_status"], r["expected"]))
    (RESULTS / "conditioning.md").write_text("\n".join(lines) + "\n")


def _g(value) -> str:
    return "" if value is None else f"{value:.2e}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=DEFAULT_MODELS)
    parser.add_argument("--skip-corpus", action="store_true", help="the fixture only")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="deploykit-conditioning-") as tmp:
        rows = fixture_rows(Path(tmp))
        if not args.skip_corpus:
            rows += corpus_rows(args.models, Path(tmp))
    write(rows, time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
