"""The artifacts of ``deploykit convert --out`` folders, run the way ``deploykit verify`` runs them.

``artifacts_of(folder)`` reads the deploykit-report.json of the folder (or of each folder one level down, so
one folder can hold a TFLite and a Core ML ``--out``) and lists every artifact with its target, variant, size
and the source's tensors. ``open_artifact(item)`` opens the target's own runner (deploykit.targets:
LiteRT for ``.tflite``, for ``.mlpackage`` Core ML where it exists and deploykit's numpy evaluator of the ML
Program elsewhere) and binds the source's tensors to the artifact's with ``deploykit.parity.layout.bind``
and the layouts the record gives, as pipeline/verify.py does: callers feed and read arrays in the
**source's** layout (NCHW for these ONNX models) whatever layout onnx2tf gave the artifact.

Also the two size figures of a row: the file's size (a ``.mlpackage`` folder: the sum of its files) and
its download size, the artifact zipped with deflate (level 6). deploykit's bundles store entries
uncompressed (deploykit/bundle/archive.py: deflate bytes depend on the zlib build, and Android wants
``.tflite`` stored to memory-map it); deflate is what HTTP compression or a store's package compression
sends over the network, and how much of a scheme's saving survives it.
"""

from __future__ import annotations

import contextlib
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPORT = "deploykit-report.json"


@dataclass(frozen=True)
class Item:
    path: Path
    target: str
    variant: str
    record: object  # deploykit.core.types.Artifact
    source_inputs: tuple  # TensorSpec of the source model, in its layout
    source_outputs: tuple

    @property
    def size_bytes(self) -> int:
        return artifact_bytes(self.path)


def reports_in(folder: Path) -> list[Path]:
    folder = Path(folder)
    if (folder / REPORT).is_file():
        return [folder / REPORT]
    found = sorted(p / REPORT for p in folder.iterdir() if (p / REPORT).is_file()) if folder.is_dir() else []
    if not found:
        raise FileNotFoundError(f"no {REPORT} in {folder} or the folders in it: give a deploykit convert --out folder")
    return found


def artifacts_of(folder: Path, names=None) -> list[Item]:
    """Every artifact the record(s) list whose file exists (``names``: only these file names)."""
    from deploykit.core.types import Artifact, TensorSpec

    items = []
    for report in reports_in(folder):
        data = json.loads(report.read_text(encoding="utf-8"))
        source_in = tuple(TensorSpec.from_json(t) for t in data["source"]["inputs"])
        source_out = tuple(TensorSpec.from_json(t) for t in data["source"]["outputs"])
        for entry in data["artifacts"]:
            record = Artifact.from_json(entry)
            path = report.parent / Path(record.path).name
            if path.exists() and (names is None or path.name in names):
                items.append(Item(path, record.target, record.variant, record, source_in, source_out))
    return items


class Session:
    """One open artifact: ``run(feeds)`` maps source input names to arrays in the source's layout and returns
    the outputs by source name in the source's layout; calling it with one array feeds the only input and
    returns the first output."""

    def __init__(self, runner, inputs, outputs):
        self.runner, self.inputs, self.outputs = runner, inputs, outputs

    @property
    def backend(self) -> str:
        return getattr(self.runner, "backend_used", None) or self.runner.name

    def run(self, feeds: dict) -> dict:
        fed = {b.artifact: b.to_artifact(np.asarray(feeds[b.source], dtype=np.float32)) for b in self.inputs}
        got = self.runner.infer(fed)
        return {b.source: b.to_source(np.asarray(got[b.artifact])) for b in self.outputs}

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.run({self.inputs[0].source: x})[self.outputs[0].source]


@contextlib.contextmanager
def open_artifact(item: Item):
    from deploykit.parity.layout import bind
    from deploykit.targets import runner_for

    layouts = {t.name: t.layout for t in (*item.record.inputs, *item.record.outputs)}
    with runner_for(item.path, item.target) as runner:
        inputs = bind(item.source_inputs, runner.input_specs, layouts)
        outputs = bind(item.source_outputs, runner.output_specs, layouts)
        broken = [b.problem for b in (*inputs, *outputs) if b.problem]
        if broken:
            raise RuntimeError(f"{item.path.name}: cannot pair its tensors with the source's: {'; '.join(broken)}")
        yield Session(runner, inputs, outputs)


def artifact_files(path: Path) -> list[Path]:
    path = Path(path)
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]


def artifact_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in artifact_files(path))


def download_bytes(path: Path, level: int = 6) -> int:
    """The size of a zip of the artifact (every file deflated at ``level``), as sent over a compressing link."""
    path = Path(path)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=level) as archive:
        for file in artifact_files(path):
            name = file.relative_to(path.parent).as_posix()
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, file.read_bytes(), compresslevel=level)
    return len(buffer.getvalue())


# MIL DataType values of the weight constants (coremltools' MIL.proto): what a Core ML artifact stores its
# uncompressed weights as.
_MIL_DTYPES = {10: "fp16", 11: "fp32"}
WEIGHT_MIN_ELEMENTS = 1000  # smaller constants are scalars, shapes, biases of small layers


def coreml_weights(path: Path) -> dict:
    """How a Core ML artifact stores its weights, read from the program: elements held as fp32 / fp16
    constants (>= 1000 elements each), elements behind compression ops (``constexpr_*``), and for look-up
    tables how many weights got one table per tensor and how many finer tables."""
    from deploykit.formats.coreml.spec import load_spec, main_block

    stored = {"fp32": 0, "fp16": 0, "compressed": 0}
    tables = {"per_tensor": 0, "grouped": 0}
    for op in main_block(load_spec(path)).operations:
        tensor = op.outputs[0].type.tensorType if op.outputs else None
        if tensor is None:
            continue
        elements = int(np.prod([d.constant.size for d in tensor.dimensions])) if tensor.dimensions else 1
        if op.type == "const" and elements >= WEIGHT_MIN_ELEMENTS and tensor.dataType in _MIL_DTYPES:
            stored[_MIL_DTYPES[tensor.dataType]] += elements
        elif op.type.startswith("constexpr_"):
            stored["compressed"] += elements
            if op.type == "constexpr_lut_to_dense" and "lut" in op.inputs:
                argument = op.inputs["lut"].arguments[0]
                if argument.HasField("value"):
                    lut = [d.constant.size for d in argument.value.type.tensorType.dimensions]
                    tables["per_tensor" if int(np.prod(lut[:-2])) == 1 else "grouped"] += 1
    return {**stored, **({"lut_weights": tables} if any(tables.values()) else {})}
