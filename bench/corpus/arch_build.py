"""Build one architecture entry (architectures.py) into its corpus folder: the model, seeded; its batch norms
calibrated; ``model.keras`` / ``model.pt2``, the ONNX exports, ``data.npz`` and ``entry.json``.

Why calibrate: a freshly built network's batch norms hold mean 0 and variance 1, so they normalize
nothing, and a deep random network's activations then grow or vanish layer after layer until outputs are
one-hot or overflow fp16: a state no trained network is in, and one that says nothing about conversion.
The statistics are measured on the entry's own kind of input (arch_inputs.py) with another seed than
``data.npz`` (seed 1 for calibration, 0 for the data), as build.py does for the ONNX zoo.

Every file is checked before the entry is recorded: the ``.keras`` reloaded with
``keras.saving.load_model`` (safe mode, as deploykit loads it), the ``.pt2`` with ``torch.export.load``,
and each ONNX file (``onnx.checker``, then ONNX Runtime) must reproduce the source model on ``data.npz``
within ``TOLERANCE`` of the output's scale; the errors are kept in ``entry.json`` (``checks``).
"""

from __future__ import annotations

import importlib
import json
import os
import time
from pathlib import Path

import numpy as np

from bench.corpus import arch_inputs
from bench.corpus.architectures import BY_NAME, KERAS, ONNX_FILES, Arch

DATA_FILE = "data.npz"
CALIBRATION_SAMPLES = 8
TOLERANCE = 1e-5  # max |difference| / max |source output|, per output


def build_arch(name: str, folder: Path) -> Path:
    """Build the entry ``name`` into ``folder`` (created), recording it in ``entry.json`` last."""
    arch = BY_NAME[name]
    started = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    module_name, function = arch.builder.split(":")
    model = getattr(importlib.import_module(f"bench.corpus.{module_name}"), function)(arch.shape)
    calibration = arch_inputs.make_inputs(arch, n=CALIBRATION_SAMPLES, seed=1)[arch.input_name]
    data = arch_inputs.make_inputs(arch)
    _save_npz(data, folder / DATA_FILE)
    samples = data[arch.input_name]
    if arch.source == KERAS:
        norms, checks, reference = _keras_files(arch, model, calibration, samples, folder)
    else:
        norms, checks, reference = _torch_files(arch, model, calibration, samples, folder)
    record = {
        "name": arch.name, "kind": "arch", "source": arch.source, "builder": arch.builder,
        "inputs": [arch.input_value], "files": list(arch.files), "exporters": _exporters(arch),
        "notes": arch.notes, "small": False, "data": DATA_FILE, "preprocessing": arch.data,
        "calibrated_batchnorms": norms, "checks": checks, "outputs": _describe(arch, reference),
        "build_seconds": round(time.perf_counter() - started, 1),
    }
    (folder / "entry.json").write_text(json.dumps(record, indent=2) + "\n")
    return folder


def _keras_files(arch: Arch, model, calibration, samples, folder: Path):
    from bench.corpus import arch_keras

    norms = arch_keras.calibrate_batchnorms(model, calibration)
    reference = [arch_keras.predict(model, samples)]
    arch_keras.save(model, folder / "model.keras")
    reloaded = arch_keras.load(folder / "model.keras")
    checks = {"model.keras": _worst([arch_keras.predict(reloaded, samples)], reference, "model.keras")}
    for exporter in arch.onnx:
        path = folder / ONNX_FILES[exporter]
        arch_keras.export_tf2onnx(model, arch.shape, arch.input_name, arch.output_names, path)
        checks[path.name] = _check_onnx(path, arch, samples, reference)
    return norms, checks, reference


def _torch_files(arch: Arch, model, calibration, samples, folder: Path):
    import torch

    from bench.corpus import arch_torch

    norms = arch_torch.calibrate_batchnorms(model, calibration)
    reference = arch_torch.outputs(model, samples)
    example = samples[:1]
    arch_torch.save_pt2(model, example, folder / "model.pt2")
    reloaded = torch.export.load(str(folder / "model.pt2")).module()
    checks = {"model.pt2": _worst([np.concatenate(c) for c in zip(*(
        arch_torch.outputs(reloaded, samples[i:i + 1]) for i in range(len(samples))))], reference, "model.pt2")}
    for exporter in arch.onnx:
        path = folder / ONNX_FILES[exporter]
        arch_torch.export_onnx(model, example, exporter, arch.input_name, arch.output_names, path)
        checks[path.name] = _check_onnx(path, arch, samples, reference)
    return norms, checks, reference


def _describe(arch: Arch, reference: list[np.ndarray]) -> dict:
    """Shape and spread of each output on data.npz: evidence that the calibrated activations are not
    degenerate (a constant or one-hot output would show as a tiny std or a huge max)."""
    return {name: {"shape": list(array.shape[1:]), "std": float(array.std()), "max_abs": float(np.abs(array).max())}
            for name, array in zip(arch.output_names, reference)}


def _check_onnx(path: Path, arch: Arch, samples, reference) -> float:
    """``onnx.checker`` on the file, then ONNX Runtime against the source, sample by sample (batch 1)."""
    import onnx
    import onnxruntime as ort

    onnx.checker.check_model(str(path), full_check=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [value.name for value in session.get_inputs()]
    if names != [arch.input_name]:
        raise ValueError(f"{path}: ONNX inputs {names}, expected [{arch.input_name!r}]")
    runs = [session.run(list(arch.output_names), {arch.input_name: samples[i:i + 1]}) for i in range(len(samples))]
    return _worst([np.concatenate(outputs) for outputs in zip(*runs)], reference, path.name)


def _worst(got: list[np.ndarray], reference: list[np.ndarray], label: str) -> float:
    if len(got) != len(reference):
        raise ValueError(f"{label}: {len(got)} outputs, the source has {len(reference)}")
    worst = 0.0
    for a, b in zip(got, reference):
        scale = float(np.max(np.abs(b))) or 1.0
        worst = max(worst, float(np.max(np.abs(a.astype(np.float64) - b))) / scale)
    if not worst <= TOLERANCE:
        raise ValueError(f"{label} differs from the source by {worst:.2e} of the output's scale (> {TOLERANCE})")
    return worst


def _exporters(arch: Arch) -> dict[str, str]:
    """What made each file, for the tables (``model.onnx`` is a different exporter per source)."""
    how = {"ts": "torch.onnx.export(dynamo=False, opset_version=17)", "dynamo": "torch.onnx.export(dynamo=True)",
           "tf2onnx": "tf2onnx.convert.from_keras(opset=17)"}
    native = "keras.Model.save" if arch.source == KERAS else "torch.export.export + torch.export.save"
    return {arch.files[0]: native, **{ONNX_FILES[e]: how[e] for e in arch.onnx}}


def _save_npz(arrays: dict[str, np.ndarray], path: Path) -> None:
    staged = path.with_name(path.name + ".tmp")
    with open(staged, "wb") as handle:  # a file object: np.savez would append .npz to a path
        np.savez(handle, **arrays)
    os.replace(staged, path)
