"""``deploykit predict``: run an artifact or a verified bundle on picture files, with the declared preprocessing.

This is the reference an app's preprocessing must reproduce: each picture is brought to the input's
size with the manifest's (or record's) ``resize`` mode (``image_io.resize``), fed as the artifact takes
pixels (``image_io.pixels``), and the classifier output's top-k printed with labels when there are any; a
detector's (its record or manifest has a ``detector`` block) boxes in the picture's pixels instead, drawn on it
with ``draw`` (``predict_detections``). ``dump_input`` writes the exact tensors fed, for an app developer to
compare byte for byte.

A bundle runs only after it verifies (signature, listing, every file's sha256) against ``trusted``
keys, exactly as an app would; an artifact is described by the deploykit-report.json beside it.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deploykit.core.errors import InputError, UsageError
from deploykit.image_io.spec import ImageInput, image_geometry


@dataclass(frozen=True)
class Prediction:
    image: str
    top: tuple[tuple[int, str | None, float], ...]  # (class index, label, score)
    scores_are: str  # "probabilities" (the output sums to 1) or "softmax of the output"

    def to_json(self) -> dict:
        return {"image": self.image, "scores": self.scores_are,
                "top": [{"index": i, "label": label, "score": score} for i, label, score in self.top]}


@dataclass(frozen=True)
class PredictOptions:
    top_k: int = 5
    labels: Path | None = None  # a labels file (one per line) for an artifact; a bundle brings its own
    output: str | None = None  # which output holds the class scores (default: the labelled one, else the only one)
    trusted_keys: tuple = ()  # PublicKey objects, for a bundle
    dump_input: Path | None = None
    draw: Path | None = None  # a detector: write each picture with its boxes drawn into this folder (PNG)


@dataclass(frozen=True)
class _Model:
    path: Path
    target: object  # deploykit.targets.Target
    image: ImageInput
    input_spec: object  # the artifact's TensorSpec of the image input
    labels: tuple[str, ...] | None
    labelled_output: str | None
    cleanup: tuple = field(default=())
    detector: dict | None = None  # the record's or manifest's detector block (detection.record)


def predict(model_path, pictures, options: PredictOptions = PredictOptions()) -> list:
    """A ``Prediction`` per picture, or for a detector a ``predict_detections.Detected``."""
    if options.top_k < 1:
        raise UsageError(f"--top-k must be at least 1, got {options.top_k}")
    files = _picture_files(pictures)
    model = _open(Path(model_path), options)
    try:
        _check_detector_options(model, options)
        return _run(model, files, options)
    finally:
        for folder in model.cleanup:
            shutil.rmtree(folder, ignore_errors=True)


def _run(model: _Model, files: list[Path], options: PredictOptions) -> list:
    from deploykit.core.atomic import write_bytes_atomic
    from deploykit.image_io.pixels import read_image, to_artifact
    from deploykit.targets import runner_for

    height, width, _, _ = _geometry(model)
    feed = model.target.pixel_feed
    feeds = [to_artifact(read_image(f, model.image, height, width)[None], model.image, model.input_spec, feed)
             for f in files]
    with runner_for(model.path, model.target.name) as runner:
        if model.detector is not None:
            from deploykit.pipeline.predict_detections import detect

            results = detect(runner, files, feeds, model.input_spec.name, model.image, model.detector, model.labels,
                             options.draw)
        else:
            results = _classify(runner, model, files, feeds, options)
    if options.dump_input is not None:
        import io

        buffer = io.BytesIO()
        np.save(buffer, np.concatenate(feeds), allow_pickle=False)
        write_bytes_atomic(Path(options.dump_input), buffer.getvalue())
    return results


def _classify(runner, model: _Model, files: list[Path], feeds: list, options: PredictOptions) -> list[Prediction]:
    name = _output_name(runner.output_specs, options.output or model.labelled_output)
    results = []
    for path, feed in zip(files, feeds):
        value = runner.infer({model.input_spec.name: feed})[name]
        if _positions(value) > 1:
            results.append(_top_classes(str(path), value, model.labels, options.top_k, name))
        else:
            results.append(_top(str(path), class_scores(value, model.labels), model.labels, options.top_k))
    return results


def _check_detector_options(model: _Model, options: PredictOptions) -> None:
    if model.detector is None and options.draw is not None:
        raise UsageError(f"--draw draws a detector's boxes; {model.path.name} is not a detector (no detector block)",
                         hint="convert the model with --detector PRESET (docs/detection.md), or leave out --draw")
    if model.detector is not None and options.output is not None:
        raise UsageError("--output picks a classifier's score output; a detector's outputs are read as its "
                         "detector block names them", hint="leave out --output")


def class_scores(value, labels) -> np.ndarray:
    """The class scores as an array; a Core ML classifier's probability dictionary in label order."""
    table = value.item() if isinstance(value, np.ndarray) and value.dtype == object else value
    if isinstance(table, dict):
        return np.asarray([table[label] for label in labels] if labels else list(table.values()), dtype=np.float64)
    return np.asarray(value, dtype=np.float64).reshape(-1)


def _top(image: str, scores: np.ndarray, labels, k: int) -> Prediction:
    is_distribution = scores.min() >= 0 and abs(scores.sum() - 1.0) < 1e-3
    shown = scores if is_distribution else np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
    order = np.argsort(-shown, kind="stable")[:k]
    top = tuple((int(i), labels[i] if labels and i < len(labels) else None, float(shown[i])) for i in order)
    return Prediction(image, top, "probabilities" if is_distribution else "softmax of the output")


def _positions(value) -> int:
    """How many score vectors an output holds: 1 for a classifier (N, 1xN), boxes or cells for a detector."""
    array = np.asarray(value)
    if array.dtype == object or array.ndim < 2:
        return 1
    return int(np.prod([d for d in array.shape[:-1]])) if array.shape[-1] > 1 else 1


def _top_classes(image: str, value, labels, k: int, name: str) -> Prediction:
    """A detector's scores: each class's best score over all positions (the class axis is the last one as long
    as the labels), so predict says which classes the detector sees in the picture, at what confidence."""
    array = np.asarray(value, dtype=np.float64)
    if not labels:
        axis = array.ndim - 1
    else:
        axes = [a for a, size in enumerate(array.shape) if size == len(labels)]
        if not axes:
            raise UsageError(f"output {name!r} has shape {array.shape}: no axis has the {len(labels)} classes of the labels")
        axis = axes[-1]
    best = np.moveaxis(array, axis, -1).reshape(-1, array.shape[axis]).max(axis=0)
    order = np.argsort(-best, kind="stable")[:k]
    top = tuple((int(i), labels[i] if labels and i < len(labels) else None, float(best[i])) for i in order)
    return Prediction(image, top, "best score per class over all positions")


def _output_name(specs, wanted: str | None) -> str:
    names = [s.name for s in specs]
    if wanted is not None:
        if wanted not in names:
            raise UsageError(f"the model has no output {wanted!r}", hint=f"its outputs are: {', '.join(names)}")
        return wanted
    if len(names) != 1:
        raise UsageError(f"the model has {len(names)} outputs; say which holds the class scores",
                         hint=f"--output one of: {', '.join(names)}")
    return names[0]


def _geometry(model: _Model):
    shape = tuple(model.input_spec.shape)
    if model.target.pixel_feed.kind == "image" or (len(shape) == 4 and shape[1] == model.image.channels):
        return shape[2], shape[3], shape[1], "NCHW"
    return image_geometry(model.input_spec)


def _picture_files(pictures) -> list[Path]:
    from deploykit.image_io.folders import IMAGE_SUFFIXES

    files = []
    for item in map(Path, pictures):
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise InputError(f"{item} holds no pictures", hint=f"picture types: {' '.join(IMAGE_SUFFIXES)}")
            files += found
        elif item.is_file():
            files.append(item)
        else:
            raise InputError(f"picture {item} not found")
    if not files:
        raise UsageError("give at least one picture file or folder")
    return files


def _open(path: Path, options: PredictOptions) -> _Model:
    if path.suffix == ".zip":
        return _open_bundle(path, options)
    from deploykit.core.types import recorded_entry
    from deploykit.targets import for_path

    target = for_path(path)
    recorded = recorded_entry(path)
    if recorded is None:
        raise InputError(f"{path} has no entry in a deploykit-report.json beside it, so its preprocessing is unknown",
                         hint="predict the bundle instead, or keep the artifact next to the record `convert` wrote")
    spec = _image_spec([s.to_json() for s in recorded.inputs], path, key="image")
    image = ImageInput.from_json(spec["original_name"] if "original_name" in spec else spec["name"], spec["image"])
    classifier, detector = recorded.classifier, recorded.detector
    labels = _read_labels(options.labels) if options.labels else (tuple(classifier["labels"]) if classifier else None)
    if detector is not None and not options.labels and detector.get("labels"):
        labels = tuple(detector["labels"])
    labelled = target.labelled_output(classifier, recorded.outputs) if classifier else None
    return _Model(path, target, image, _spec_of(spec), labels, labelled, detector=detector)


def _open_bundle(path: Path, options: PredictOptions) -> _Model:
    from deploykit.bundle.verify import verify_bundle
    from deploykit.targets import for_bundle

    if not options.trusted_keys:
        raise UsageError(f"{path.name} is a bundle: predict runs it only after verifying it, as an app would",
                         hint="pass --trusted-key publisher.pub (or predict the artifact next to its record)")
    folder = Path(tempfile.mkdtemp(prefix="deploykit-predict-"))
    try:
        verified = verify_bundle(path, options.trusted_keys, unpack_to=folder / "bundle", _fresh=False)
        manifest = verified.manifest.raw
        spec = _image_spec(manifest["io"]["inputs"], path, key="preprocessing")
        block = spec["preprocessing"]
        image = ImageInput(spec["name"], block["color"], block["pixel_range"], tuple(block["mean"]), tuple(block["std"]),
                           "float32" if block["feed"] == "float32-normalized" else "uint8", block["resize"],
                           block["crop_fraction"], block["interpolation"], block["fill"])
        labelled = next((t for t in manifest["io"]["outputs"] if t.get("labels")), None)
        labels = _read_labels(folder / "bundle" / labelled["labels"]["path"]) if labelled else None
        detector = manifest.get("detector")
        if detector is not None and detector.get("labels"):
            labels = tuple(detector["labels"])
        if options.labels:
            labels = _read_labels(options.labels)
        target, _ = for_bundle(manifest["platform"], manifest["variant"])
        return _Model(folder / "bundle" / manifest["model"], target, image, _spec_of(spec), labels,
                      labelled["name"] if labelled else None, (folder,), detector)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _image_spec(tensors: list[dict], path: Path, key: str) -> dict:
    found = [t for t in tensors if t.get(key)]
    if len(found) != 1:
        raise UsageError(f"{path.name}: predict needs a model with exactly one image input; it has {len(found)}",
                         hint="convert with --image-input NAME (see docs/image-inputs.md)")
    return found[0]


def _spec_of(tensor: dict):
    from deploykit.core.types import TensorSpec

    return TensorSpec(tensor["name"], tuple(tensor["shape"]), tensor["dtype"], tensor.get("layout"))


def _read_labels(path: Path) -> tuple[str, ...]:
    from deploykit.labels.spec import read_labels

    return read_labels(Path(path))
