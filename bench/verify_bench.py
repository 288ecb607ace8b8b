"""How long ``deploykit verify`` takes on MobileNetV2 224x224, against TFLite and Core ML.

Sources: Keras ``keras.applications.MobileNetV2(weights=None)`` and the PyTorch MobileNetV2 of
tests/zoo/torch_nets.py. Each is converted once (fp32, both targets), then verified with the
defaults (8 seeded samples): cold (first call in the process: runner start-up, Core ML program load)
and warm (the same call again). Per-sample inference times come from the runners themselves, and a
localization run on a deliberately broken pair (one middle conv perturbed) is timed too. The Keras
model's batch-norm statistics are randomized (as in tests/zoo): with Keras' initial ones a random
MobileNetV2 outputs the same constant for every input.

    .venv/bin/python bench/verify_bench.py

Writes bench/results/verify.json and bench/results/verify.md. Timings are wall-clock on a shared
machine: the load average at the start and end is recorded with them.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for framework in ("keras", "torch"):
            rows += bench(framework, Path(tmp))
    result = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_average_before": [round(x, 2) for x in load_before],
                    "load_average_after": [round(x, 2) for x in os.getloadavg()]},
        "model": "MobileNetV2 224x224, random weights, fp32 artifacts",
        "samples": 8,
        "rows": rows,
    }
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "verify.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "verify.md").write_text(markdown(result))
    print(markdown(result))


def bench(framework: str, folder: Path) -> list[dict]:
    import numpy as np

    import deploykit
    from deploykit.core.noise import capture_output
    from deploykit.loaders import load_source
    from deploykit.pipeline.verify import verify
    from deploykit.runners import runner_for_source
    from deploykit.targets import runner_for as runner_for_artifact
    from tests.parity import variants

    source, shapes = _source(framework, folder)
    with capture_output():
        started = time.perf_counter()
        report = deploykit.convert(source, out=folder / f"out-{framework}", inputs=shapes)
        convert_seconds = time.perf_counter() - started
        model = load_source(source, inputs=shapes)
    rows = []
    for artifact in report.artifacts:
        path = folder / f"out-{framework}" / artifact.path
        cold = _timed(lambda: verify(model, path))
        warm = _timed(lambda: verify(model, path))
        assert cold[1] and warm[1], cold[1].to_json()
        rng = np.random.default_rng(0)
        with runner_for_source(model) as src, runner_for_artifact(path) as art:
            feeds = [{t.name: rng.uniform(-1, 1, t.shape).astype(np.float32) for t in model.inputs} for _ in range(8)]
            source_times = [_timed(lambda f=f: src.infer(f))[0] for f in feeds]
            spec = art.input_specs[0]
            art_feeds = [{spec.name: f[model.inputs[0].name] if tuple(spec.shape) == f[model.inputs[0].name].shape
                          else f[model.inputs[0].name].transpose(0, 2, 3, 1)} for f in feeds]
            artifact_times = [_timed(lambda f=f: art.infer(f))[0] for f in art_feeds]
            backend = getattr(art, "backend_used", None) or art.name
        # A middle conv perturbed 50x its std: random deep nets damp smaller changes below fp32 noise. The
        # Keras model's softmax squashes even that; then the last layer is perturbed instead.
        broken, layer = variants.perturbed(model, 50.0)
        if verify(broken, path, samples=2):
            broken, layer = variants.perturbed(model, 0.5, where="last")
        localized = _timed(lambda: verify(broken, path, localize=True))
        loc = localized[1].localization
        output = cold[1].outputs[0]
        rows.append({
            "source": framework, "target": artifact.target, "artifact_runner": backend,
            "convert_seconds_both_targets": round(convert_seconds, 2),
            "verify_cold_seconds": round(cold[0], 3), "verify_warm_seconds": round(warm[0], 3),
            "source_ms_per_sample": round(1000 * statistics.median(source_times), 1),
            "artifact_ms_per_sample": round(1000 * statistics.median(artifact_times), 1),
            "verify_localize_seconds": round(localized[0], 3),
            "localized": loc.culprit["source"] if loc and loc.culprit else None, "perturbed_layer": layer,
            "max_rel_error": output.metrics["max_rel_error"], "snr_db": output.metrics["snr_db"],
        })
        print(json.dumps(rows[-1]), flush=True)
    return rows


def _source(framework: str, folder: Path):
    if framework == "keras":
        import keras

        from tests.zoo.keras_nets import _randomize_batchnorm

        keras.utils.set_random_seed(0)
        path = folder / "mobilenet_v2.keras"
        # Batch-norm statistics randomized as tests/zoo does: with Keras' initial statistics a random
        # MobileNetV2 outputs the same constant for every input, and nothing could fail or be localized.
        _randomize_batchnorm(keras.applications.MobileNetV2(weights=None), 0).save(path)
        return str(path), None
    entry = folder / "mobilenet_v2_entry.py"
    entry.write_text("from tests.zoo.torch_nets import build\n\n\ndef net():\n    return build('mobilenet_v2', 0)\n")
    return f"{entry}:net", {None: (1, 3, 224, 224)}


def _timed(fn):
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        "# deploykit verify: MobileNetV2 224x224", "",
        f"Generated by `bench/verify_bench.py`. {result['model']}; {result['samples']} seeded samples per check.",
        f"Machine: {m['cpus']} CPUs shared with other jobs ({m['platform']}, Python {m['python']}); load average "
        f"{m['load_average_before'][0]} before, {m['load_average_after'][0]} after: read the times as orders of magnitude.", "",
        "| source | target | artifact runner | verify, cold (s) | verify, warm (s) | source ms/sample | artifact ms/sample "
        "| verify --localize on a broken pair (s) | localized | max rel err | SNR dB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in result["rows"]:
        found = f"{r['localized']} (perturbed: {r['perturbed_layer']})"
        lines.append(f"| {r['source']} | {r['target']} | {r['artifact_runner']} | {r['verify_cold_seconds']} | "
                     f"{r['verify_warm_seconds']} | {r['source_ms_per_sample']} | {r['artifact_ms_per_sample']} | "
                     f"{r['verify_localize_seconds']} | {found} | {r['max_rel_error']:.2e} | {r['snr_db']:.1f} |")
    lines += ["", "Cold includes the first inference of each runner in the process (graph building, the Core ML "
              "program load from weight.bin); warm is the same check again. Conversion (not part of verify) took "
              + ", ".join(f"{r['source']} {r['convert_seconds_both_targets']} s" for r in result["rows"][::2])
              + " for both targets.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
