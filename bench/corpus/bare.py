"""The upstream call a user makes without deploykit, timed on every architecture entry's (file, target) pair:
does the bare converter take the model, how long does it take, and what does it say when it fails.

    .venv/bin/python -m bench.corpus.bare [--only NAME,...] [--targets tflite,coreml,executorch] [--tag bare]

Writes ``bench/results/corpus-<tag>.md`` and ``.json``. The calls, with each library's defaults:

- Keras -> TFLite: ``tf.lite.TFLiteConverter.from_keras_model(model).convert()``
- Keras -> Core ML: ``coremltools.convert(model)`` (an ML Program, fp16 compute by default)
- PyTorch -> TFLite: ``litert_torch.convert(module, (example,)).export(path)`` (deploykit's own call,
  converters/litert_torch_facade.py)
- PyTorch -> Core ML: ``coremltools.convert(torch.jit.trace(module, example), inputs=[TensorType(shape, dtype)])``:
  coremltools' torch frontend takes TorchScript and needs the input types
- PyTorch -> ExecuTorch: ``to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
  .to_executorch()``, the buffer written to a ``.pte``
- ONNX -> TFLite: ``onnx2tf.convert(input_onnx_file_path=..., output_folder_path=...)``; it passes when it
  writes ``*_float32.tflite``
- ONNX -> Core ML: ``onnx2coreml.convert(model_proto)`` (coremltools has no ONNX frontend), saved

The PyTorch module is the ``.pt2``'s ``torch.export.load(path).module()`` and the example the first
sample of the entry's data.npz; the ``.keras`` is loaded with ``keras.saving.load_model``. Loading is
not timed (``seconds`` is the call; ``wall`` the child process, imports included). Nothing is checked
for parity: this is whether the tool takes the model at all.

Two concessions, so that the calls run here at all and leave the corpus as it was: onnx2tf gets a copy
of the ONNX file (its onnxsim step rewrites the file it is given) and, in its working directory, the
calibration sample file it would otherwise download from the internet on a 3-channel input (no network
here); ``onnxsim``, which it runs as a program, is on PATH (the venv's bin, as an activated venv has it).

Each pair runs in its own child process (``--child``), bounded by ``TIMEOUT``, so a crash or a hang is a
row, not the end of the run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.corpus.build import DEFAULT_OUT, build
from bench.corpus.run import RESULTS, source_format, takes
from bench.corpus.sources import ENTRIES

TIMEOUT = 900
CALLS = {
    ("keras", "tflite"): "tf.lite.TFLiteConverter.from_keras_model(model).convert()",
    ("keras", "coreml"): "coremltools.convert(model)",
    ("pt2", "tflite"): "litert_torch.convert(module, (example,))",
    ("pt2", "coreml"): "coremltools.convert(torch.jit.trace(module, example), inputs=[TensorType])",
    ("pt2", "executorch"): "to_edge_transform_and_lower(program, [XnnpackPartitioner()]).to_executorch()",
    ("onnx", "tflite"): "onnx2tf.convert(input_onnx_file_path, output_folder_path)",
    ("onnx", "coreml"): "onnx2coreml.convert(model_proto)",
}


def _example(folder: Path):
    import numpy as np

    with np.load(folder / "data.npz") as data:
        (array,) = [data[key] for key in data.files]
    return array[:1]


def _keras(source: Path, target: str, out: Path) -> float:
    import keras

    model = keras.saving.load_model(str(source), safe_mode=True)
    started = time.perf_counter()
    if target == "tflite":
        import tensorflow as tf

        (out / "model.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    else:
        import coremltools as ct

        ct.convert(model).save(str(out / "model.mlpackage"))
    return time.perf_counter() - started


def _torch(source: Path, target: str, out: Path, example) -> float:
    import torch

    program = torch.export.load(str(source))
    tensor = torch.from_numpy(example)
    started = time.perf_counter()
    if target == "tflite":
        import litert_torch

        litert_torch.convert(program.module(), (tensor,)).export(str(out / "model.tflite"))
    elif target == "coreml":
        import coremltools as ct

        traced = torch.jit.trace(program.module(), (tensor,))
        ct.convert(traced, inputs=[ct.TensorType(shape=tensor.shape, dtype=example.dtype.type)]).save(
            str(out / "model.mlpackage"))
    else:
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower

        lowered = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch()
        (out / "model.pte").write_bytes(lowered.buffer)
    return time.perf_counter() - started


def _onnx(source: Path, target: str, out: Path) -> float:
    import shutil

    import numpy as np

    copy = out / "model.onnx"
    shutil.copyfile(source, copy)
    if target == "coreml":
        import onnx
        import onnx2coreml

        model = onnx.load(str(copy))
        started = time.perf_counter()
        onnx2coreml.convert(model).save(str(out / "model.mlpackage"))
        return time.perf_counter() - started
    import onnx2tf

    calibration = "calibration_image_sample_data_20x128x128x3_float32.npy"
    np.save(out / calibration, np.random.default_rng(0).random((20, 128, 128, 3), dtype=np.float32))
    os.chdir(out)
    started = time.perf_counter()
    try:
        onnx2tf.convert(input_onnx_file_path=str(copy), output_folder_path=str(out / "saved_model"))
    except SystemExit as exc:  # onnx2tf exits on some graphs instead of raising
        raise RuntimeError(f"onnx2tf called sys.exit({exc.code})") from exc
    seconds = time.perf_counter() - started
    if not list((out / "saved_model").glob("*_float32.tflite")):
        raise RuntimeError("onnx2tf returned without writing *_float32.tflite")
    return seconds


def child(request: dict) -> dict:
    """One bare call (in this process): the timing, or the error's type and first line."""
    source, out, target = Path(request["source"]), Path(request["out"]), request["target"]
    out.mkdir(parents=True, exist_ok=True)
    try:
        if source.suffix == ".keras":
            seconds = _keras(source, target, out)
        elif source.suffix == ".pt2":
            seconds = _torch(source, target, out, _example(source.parent))
        else:
            seconds = _onnx(source, target, out)
    except Exception as exc:  # noqa: BLE001 - any failure is a result: the row records what the user would see
        lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
        return {"ok": False, "error": f"{type(exc).__name__}: {lines[0] if lines else ''}"[:300]}
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file() and p.suffix not in (".onnx", ".npy"))
    return {"ok": True, "seconds": round(seconds, 1), "artifact_bytes": size}


def run_pair(folder: Path, source: Path, target: str, work: Path) -> dict:
    fmt = source_format(source)
    out = work / f"{folder.name}-{fmt}-{target}"
    result_file = work / f"{out.name}.json"
    request = {"source": str(source.resolve()), "out": str(out), "target": target, "result": str(result_file)}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
           "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")}
    started = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-m", "bench.corpus.bare", "--child", json.dumps(request)],
                              capture_output=True, text=True, timeout=TIMEOUT, env=env, check=False,
                              cwd=Path(__file__).resolve().parents[2])
        if result_file.is_file():
            result = json.loads(result_file.read_text())
        else:
            tail = [line for line in done.stderr.splitlines() if line.strip()][-1:] or ["(no output)"]
            result = {"ok": False, "error": f"process ended with exit code {done.returncode}: {tail[0][:250]}"}
    except subprocess.TimeoutExpired:
        result = {"ok": False, "error": f"timed out after {TIMEOUT} s"}
    kind = fmt.split("-")[0]
    return {"model": folder.name, "format": fmt, "target": target, "call": CALLS[(kind, target)], **result,
            "wall": round(time.perf_counter() - started, 1)}


def write_results(rows: list[dict], tag: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"corpus-{tag}.json").write_text(json.dumps(rows, indent=2) + "\n")
    targets = sorted({r["target"] for r in rows})
    counts = "; ".join(f"{t}: {sum(r['ok'] for r in rows if r['target'] == t)} of "
                       f"{sum(r['target'] == t for r in rows)}" for t in targets)
    lines = [f"# Architecture corpus: the bare upstream calls, without deploykit ({tag})", "",
             (f"{sum(r['ok'] for r in rows)} of {len(rows)} (model, source format, target) calls returned an "
              f"artifact ({counts}). No parity check: whether the tool takes the model at all "
              "(bench/corpus/bare.py says which call, with which defaults)."), "",
             "| model | source | target | call | converted | s (call) | s (process) | error |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append("| {} | {} | {} | `{}` | {} | {} | {} | {} |".format(
            r["model"], r["format"], r["target"], r["call"], "yes" if r["ok"] else "FAIL", r.get("seconds", ""),
            r["wall"], (r.get("error") or "").replace("|", "/")))
    (RESULTS / f"corpus-{tag}.md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated entry names (architecture entries only)")
    parser.add_argument("--targets", default="tflite,coreml,executorch")
    parser.add_argument("--tag", default="bare", help="results file suffix: corpus-<tag>.md")
    parser.add_argument("--models", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        request = json.loads(args.child)
        Path(request["result"]).write_text(json.dumps(child(request)))
        return 0
    wanted = set(args.only.split(",")) if args.only else None
    names = {e.name for e in ENTRIES if e.kind == "arch" and (wanted is None or e.name in wanted)}
    if not names:
        parser.error("--only names no architecture entry")
    rows = []
    with tempfile.TemporaryDirectory(prefix="deploykit-bare-") as tmp:
        for folder in build(args.models, names):
            for name in json.loads((folder / "entry.json").read_text())["files"]:
                for target in args.targets.split(","):
                    if not takes(target, folder / name):
                        continue
                    row = run_pair(folder, folder / name, target, Path(tmp))
                    rows.append(row)
                    print(json.dumps({k: row.get(k) for k in ("model", "format", "target", "ok", "seconds", "error")}),
                          flush=True)
                    write_results(rows, args.tag)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
