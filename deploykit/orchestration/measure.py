"""What a build measures on each artifact beyond parity: top-1 accuracy on validation data, and host latency.

Validation data (``validation`` in the model's section):
- an image folder with one sub-folder per label (``val/cat/*.jpg``, ``val/dog/*.jpg``): each picture goes
  through the artifact with its declared preprocessing, exactly as ``deploykit predict`` runs it, and counts
  when the top label is the folder's name. Needs an image input and labels.
- an ``.npz`` with ``x`` (samples stacked on the first axis, in the source's layout) and ``y`` (class
  indices): each sample is fed as a batch of one; the top class is the argmax of the labelled output (or
  the only one), a Core ML classifier's dictionary read in label order.

Host latency: the median of ``LATENCY_RUNS`` inferences of one sample on this machine, after one warm-up,
with the runner parity used (LiteRT; Core ML through deploykit's evaluator off macOS). It is a regression
signal for the same host, not a device figure.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np

from deploykit.core.errors import InputError, UsageError

LATENCY_RUNS = 20
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif")


def measure(artifact: Path, target: str, validation: Path | None) -> dict:
    from deploykit.core.types import recorded_entry

    recorded = recorded_entry(artifact)
    result = {"latency": _latency(artifact, target, recorded)}
    if validation is not None:
        result["accuracy"] = accuracy(artifact, target, recorded, validation)
    return result


def accuracy(artifact: Path, target: str, recorded, validation: Path) -> dict:
    validation = Path(validation)
    if not validation.exists():
        raise InputError(f"validation data {validation} not found")
    if validation.is_dir():
        correct, total = _folder_accuracy(artifact, recorded, validation)
    elif validation.suffix == ".npz":
        correct, total = _npz_accuracy(artifact, target, recorded, validation)
    else:
        raise InputError(f"validation data {validation}: give an image folder with one sub-folder per label, or an .npz "
                         "with x and y")
    return {"top1": round(100.0 * correct / total, 2), "correct": correct, "samples": total, "data": str(validation)}


def _folder_accuracy(artifact: Path, recorded, folder: Path) -> tuple[int, int]:
    from deploykit.pipeline.predict import PredictOptions, predict

    if not any(t.image for t in recorded.inputs):
        raise UsageError(f"validation folder {folder}: labelled pictures need an image input ([models.image])",
                         hint="or give an .npz with x (preprocessed tensors) and y (class indices)")
    if not recorded.classifier:
        raise UsageError(f"validation folder {folder}: its sub-folders name labels, so the model needs [models.labels]")
    pictures, truth = [], []
    for label_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        for picture in sorted(p for p in label_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            pictures.append(picture)
            truth.append(label_dir.name)
    if not pictures:
        raise InputError(f"validation folder {folder} has no pictures in sub-folders (one per label)")
    unknown = sorted(set(truth) - set(recorded.classifier["labels"]))
    if unknown:
        raise InputError(f"validation folder {folder}: sub-folder {unknown[0]!r} is not a label of the model")
    predictions = predict(artifact, pictures, PredictOptions(top_k=1))
    return sum(p.top[0][1] == label for p, label in zip(predictions, truth)), len(pictures)


def _npz_accuracy(artifact: Path, target: str, recorded, path: Path) -> tuple[int, int]:
    from deploykit.parity.layout import bind
    from deploykit.targets import runner_for

    with np.load(path, allow_pickle=False) as data:
        if "x" not in data or "y" not in data:
            raise InputError(f"{path} needs arrays x and y (it has {', '.join(data.files)})")
        x, y = data["x"], data["y"].astype(np.int64).reshape(-1)
    if len(x) != len(y):
        raise InputError(f"{path}: x has {len(x)} samples, y {len(y)}")
    source = _source_inputs(artifact)
    if len(source) != 1:
        raise UsageError(f"{path}: .npz validation feeds models with one input; this one has {len(source)}")
    labels = tuple(recorded.classifier["labels"]) if recorded.classifier else None
    correct = 0
    with runner_for(artifact, target) as runner:
        (binding,) = bind(source, runner.input_specs, {t.name: t.layout for t in recorded.inputs})
        output = _labelled_output(runner, recorded)
        for sample, label in zip(x, y):
            value = runner.infer({binding.artifact: binding.to_artifact(sample[None].astype(np.float32))})[output]
            correct += int(_top_index(value, labels) == label)
    return correct, len(y)


def _source_inputs(artifact: Path):
    import json

    from deploykit.core.types import REPORT_FILENAME, TensorSpec

    report = json.loads((artifact.parent / REPORT_FILENAME).read_text("utf-8"))
    return tuple(TensorSpec.from_json(t) for t in report["source"]["inputs"])


def _labelled_output(runner, recorded) -> str:
    names = runner.output_names
    classifier = recorded.classifier or {}
    for wanted in (classifier.get("probabilities_feature"), classifier.get("output")):
        if wanted in names:
            return wanted
    if len(names) != 1:
        raise UsageError(f"the model has {len(names)} outputs; name the class scores with [models.labels] output")
    return names[0]


def _top_index(value, labels) -> int:
    """The top class: predict's reading of the scores (a Core ML classifier's dictionary in label order)."""
    from deploykit.pipeline.predict import class_scores

    return int(np.argmax(class_scores(value, labels)))


def _latency(artifact: Path, target: str, recorded) -> dict:
    from deploykit.targets import runner_for

    rng = np.random.default_rng(0)
    with runner_for(artifact, target) as runner:
        feeds = {spec.name: _sample(rng, spec) for spec in runner.input_specs}
        runner.infer(feeds)
        times = []
        for _ in range(LATENCY_RUNS):
            started = time.perf_counter()
            runner.infer(feeds)
            times.append((time.perf_counter() - started) * 1000)
        name = getattr(runner, "backend_used", None) or runner.name
    return {"median_ms": round(statistics.median(times), 3), "runs": LATENCY_RUNS, "runner": name}


def _sample(rng, spec):
    shape = tuple(1 if d is None else d for d in spec.shape)
    if spec.dtype in ("uint8", "image"):
        return rng.integers(0, 256, shape).astype(np.uint8 if spec.dtype == "uint8" else np.float32)
    if spec.dtype.startswith("int"):
        return np.zeros(shape, dtype=spec.dtype)
    return rng.uniform(-1, 1, shape).astype(spec.dtype)
