"""Pruning and sparsity measured: sizes, download sizes, host latency and parity of every sparsity scheme beside
fp32 / fp16 / int8-weights / lut4, on real pretrained models and random-weight nets; what LiteRT does with
sparse-encoded tensors; and the deep-compression table on AlexNet.

    .venv/bin/python bench/sparsity_bench.py [--part litert,paired,constant,variants,deep,cli] [--models a,b] [--again] [--render]
                                             [--work DIR]

Parts (each stores its rows in bench/results/sparsity.json as it goes; a later run keeps what it does not redo):
- ``paired``: dense zeros against deploykit's sparse encoding of the same pruned MobileNetV2, timed in alternation.
- ``constant``: a wrong model that ignores its input (the source's mean output; the recogniser's all-blank answer).
- ``rejudge``: each variant's verdict under the profiles as committed, from the records kept with ``--work``.
- ``ctc``: what the PP-OCRv4 recogniser's TFLite artifacts (kept with ``--work``) read, line by line.
- ``litert``: TensorFlow's converter with ``Optimize.EXPERIMENTAL_SPARSITY`` on a pruned Keras MobileNetV2 (what it
  writes, whether LiteRT 2.3 runs it, file / download size, latency, load time, memory), with int8 weights too;
  and deploykit's own encoding of the same pruning.
- ``variants``: ``deploykit.convert`` with every scheme to TFLite and Core ML (iOS18), parity on the corpus's
  inputs (real models) or seeded inputs; each sparse artifact also against wrong models: the same network with each
  weight's values shuffled (trained statistics, no function), the source with its last conv / dense weight
  perturbed by 50 % of its spread (a mild wrong), and for random nets the same net from another seed.
- ``deep``: the ONNX zoo AlexNet topology (seeded random weights): fp32 -> sparse90 -> + lut4 / int8 -> zip.
- ``cli``: the ``deploykit convert`` command of docs/quantization.md on the PP-OCRv4 recogniser, its console output.

"Download size" is the artifact deflated (zip DEFLATE, level 6: what HTTP gzip or a compressed store package
costs). A deploykit bundle stores its entries uncompressed (bundle/archive.py), so inside a bundle an artifact
costs its file size.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.sparsity_render import _num, render  # noqa: E402  (after the path insert, which a script run needs)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

CORPUS = REPO / "bench" / "corpus" / "models"
RESULTS = REPO / "bench" / "results"
SCHEMES = "fp16,int8-weights,lut4,sparse50,sparse75,sparse90,sparse2of4,sparse50+lut4,sparse50+int8"
DEEP_SCHEMES = "fp16,int8-weights,sparse90,sparse90+lut4,sparse90+int8"
# name: (source, --input, parity data, kind). Real: pretrained weights from PyPI wheels; random: seeded weights.
MODELS = {
    "ppocrv4-rec": ("corpus:ppocrv4-rec/model.onnx", ["x=1x3x48x320"], "corpus:ppocrv4-rec/data.npz", "real"),
    "ppocrv4-det": ("corpus:ppocrv4-det/model.onnx", ["x=1x3x320x320"], "corpus:ppocrv4-det/data.npz", "real"),
    "ppocr-cls": ("corpus:ppocr-cls/model.onnx", ["x=1x3x48x192"], "corpus:ppocr-cls/data.npz", "real"),
    "mtcnn-onet": ("corpus:mtcnn-onet/model.onnx", ["image=1x3x48x48"], "corpus:mtcnn-onet/data.npz", "real"),
    "mobilenet_v2": ("keras:mobilenet_v2", None, None, "random"),
    "keras-mobilenet": ("keras:mobilenet", None, None, "random"),
    "keras-resnet": ("keras:resnet", None, None, "random"),
}
METRICS = ("cosine_similarity", "snr_db", "top1_agreement", "max_rel_error")

def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--part", default="litert,paired,constant,variants,deep,cli")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--again", action="store_true", help="measure again what the results already hold")
    parser.add_argument("--render", action="store_true", help="only write sparsity.md from sparsity.json")
    parser.add_argument("--work", help="keep the artifacts in this folder (default: a temporary one)")
    args = parser.parse_args()
    stored = RESULTS / "sparsity.json"
    results = json.loads(stored.read_text()) if stored.is_file() else {}
    if not args.render:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(args.work or tmp)
            work.mkdir(parents=True, exist_ok=True)
            for part in args.part.split(","):
                if part == "rejudge":
                    rejudge(results, work)
                elif part == "variants":
                    for name in args.models.split(","):
                        if name in results.get("variants", {}) and not args.again:
                            continue
                        results.setdefault("variants", {})[name] = variants(name, work)
                        _save(results)
                elif args.again or part not in results:
                    results[part] = {"litert": litert_encoding, "paired": paired_timing, "constant": constant_outputs,
                                     "ctc": ctc_lines, "deep": deep_compression, "cli": cli_demo}[part](work)
                    _save(results)
    _save(results)


# -- measuring ----------------------------------------------------------------------------------------------
def download_bytes(path: Path) -> int:
    """The artifact zipped with DEFLATE at level 6 (a package folder: every file, sorted)."""
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for f in files:
            archive.write(f, f.relative_to(path.parent).as_posix())
    return len(buffer.getvalue())


def size_bytes(path: Path) -> int:
    path = Path(path)
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def litert_timing(path: Path) -> dict:
    """``deploykit bench``'s measurement (its own process, XNNPACK, one thread)."""
    from deploykit.runners.litert_bench import bench

    try:
        result = bench(path, threads=1, warmup=5, runs=30)
    except Exception as exc:  # noqa: BLE001  (a model LiteRT refuses: say so in the table)
        return {"error": str(exc).splitlines()[0][:200]}
    return {"median_ms": result.median_ms, "p90_ms": result.p90_ms, "load_ms": result.load_ms,
            "model_rss_mb": result.model_rss_mb}


def worst_output(summary: dict) -> dict:
    """The parity metrics of the output with the lowest cosine similarity."""
    outputs = summary.get("outputs") or {}
    if not outputs:
        return {"error": summary.get("error") or "no parity summary"}
    name, values = min(outputs.items(), key=lambda kv: _num(kv[1].get("cosine_similarity", 2.0)))
    return {"output": name, **{k: values.get(k) for k in METRICS}, "passed": summary.get("passed")}


def _source(spec: str, work: Path, seed: int = 0) -> str:
    if spec.startswith("corpus:"):
        return str(CORPUS / spec[len("corpus:"):])
    from tests.zoo import keras_nets

    net = spec[len("keras:"):]
    path = work / f"{net}_{seed}.keras"
    if not path.exists():
        keras_nets.build(net, seed).save(path)
    return str(path)


def variants(name: str, work: Path) -> dict:
    import deploykit
    from deploykit.core.noise import capture_output
    from deploykit.loaders import load_source
    from deploykit.pipeline.request import VerifyOptions
    from deploykit.pipeline.verify import verify
    from tests.parity import variants as wrong_models

    spec, inputs, data, kind = MODELS[name]
    source = _source(spec, work)
    data = _source(data, work) if data else None
    out = work / f"out-{name}"
    if out.exists():
        shutil.rmtree(out)
    started = time.perf_counter()
    error = None
    with capture_output():
        try:
            report = deploykit.convert(source, to="tflite,coreml", out=out, inputs=inputs, coreml_target="iOS18",
                                       quantize=SCHEMES, verify_options=VerifyOptions(data=data))
            artifacts = [a.to_json() for a in report.artifacts]
        except Exception as exc:  # noqa: BLE001  (a parity failure still writes the record: read it)
            error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
            record = out / "deploykit-report.json"
            if not record.is_file():
                return {"kind": kind, "error": error}
            artifacts = json.loads(record.read_text())["artifacts"]
    seconds = round(time.perf_counter() - started, 1)
    print(f"{name}: converted in {seconds} s ({error or 'every check passed'})", flush=True)
    with capture_output():
        model = load_source(source, inputs=inputs)
        wrong = [("weights shuffled", _shuffled(model))]
        try:
            wrong.append(("last weight perturbed 50 %", wrong_models.perturbed(model, 0.5, where="last")[0]))
        except StopIteration:  # the last conv / Gemm takes its weight from a node, not an initializer
            pass
        if kind == "random":
            wrong.append(("another seed", load_source(_source(spec, work, seed=1))))
    fp32 = {a["target"]: a for a in artifacts if a["variant"] == "fp32"}
    rows = []
    for a in artifacts:
        path = out / a["path"]
        row = {"target": a["target"], "variant": a["variant"], "size_bytes": a["size_bytes"],
               "download_bytes": download_bytes(path), "fp32_size_bytes": fp32[a["target"]]["size_bytes"],
               "parity": worst_output(a.get("parity") or {}), "profile": (a.get("parity") or {}).get("profile")}
        sparsity = (a.get("quantization") or {}).get("sparsity")
        if sparsity:
            row["sparsity"] = {k: sparsity[k] for k in ("prunable_sparsity", "overall_sparsity", "pruned_layers", "spared_layers")}
        if a["target"] == "tflite":
            row["latency"] = litert_timing(path)
        if a["variant"].startswith("sparse") or a["variant"] == "fp32":
            row["wrong"] = {}
            for label, other in wrong:
                with capture_output():
                    try:
                        checked = verify(other, path, profile=a["variant"], data=data, inputs=inputs)
                        row["wrong"][label] = worst_output(checked.to_summary())
                    except Exception as exc:  # noqa: BLE001
                        row["wrong"][label] = {"error": str(exc).splitlines()[0][:200]}
        rows.append(row)
        print(json.dumps({"model": name, **row}), flush=True)
    return {"kind": kind, "source": spec, "convert_seconds": seconds, "error": error, "rows": rows}


def _shuffled(model):
    """The same network with each conv / dense weight's values shuffled within the tensor: the weight statistics of
    the real model (trained, heavy-tailed), none of its function. For real models, what "another seed" is for
    random ones."""
    from dataclasses import replace

    import numpy as np

    rng = np.random.default_rng(11)
    if model.framework == "keras":
        import keras

        clone = keras.models.clone_model(model.handle)
        clone.set_weights([rng.permutation(w.ravel()).reshape(w.shape) if w.ndim >= 2 else w for w in model.handle.get_weights()])
        return replace(model, handle=clone)
    import onnx
    from onnx import numpy_helper

    proto = onnx.ModelProto()
    proto.CopyFrom(model.handle)
    tensors = list(proto.graph.initializer)  # and Constant nodes (Paddle's exports keep every weight in one)
    tensors += [a.t for n in proto.graph.node if n.op_type == "Constant" for a in n.attribute if a.name == "value"]
    for tensor in tensors:
        value = numpy_helper.to_array(tensor)
        if value.ndim >= 2 and value.dtype.kind == "f":
            tensor.CopyFrom(numpy_helper.from_array(rng.permutation(value.ravel()).reshape(value.shape), tensor.name))
    return replace(model, handle=proto)


def litert_encoding(work: Path) -> dict:
    """What TensorFlow's EXPERIMENTAL_SPARSITY writes for a pruned Keras MobileNetV2 and what LiteRT 2.3 does with it."""
    import keras
    import tensorflow as tf

    from deploykit.core.noise import capture_output
    from deploykit.quantize.sparsity import prune_magnitude

    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3))
    layers = [layer for layer in model.layers if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))]
    dense = [layer.get_weights() for layer in layers]
    rows = []
    for level in (0.0, 0.5, 0.75, 0.9):
        for index, (layer, weights) in enumerate(zip(layers, dense)):  # deploykit's rule: first and < 2048 spared
            kernel = weights[0] if index == 0 or weights[0].size < 2048 else prune_magnitude(weights[0], level)
            layer.set_weights([kernel, *weights[1:]])
        for label, optimizations in (("dense", []), ("EXPERIMENTAL_SPARSITY", [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]),
                                     ("EXPERIMENTAL_SPARSITY + int8 weights",
                                      [tf.lite.Optimize.EXPERIMENTAL_SPARSITY, tf.lite.Optimize.DEFAULT])):
            if level == 0 and label != "dense":
                continue
            with capture_output():
                converter = tf.lite.TFLiteConverter.from_keras_model(model)
                converter.optimizations = optimizations
                data = converter.convert()
            path = work / f"mnv2-{level}-{len(optimizations)}.tflite"
            path.write_bytes(data)
            rows.append({"sparsity": level, "written": label, "size_bytes": len(data), "download_bytes": download_bytes(path),
                         "densify_ops": _count_ops(data, "DENSIFY"), "latency": litert_timing(path)})
            print(json.dumps(rows[-1]), flush=True)
        if level:
            rows.append(_deploykit_encoding(model, level, work))
    return {"model": "keras.applications.MobileNetV2 224, random weights (seed 0)", "rows": rows,
            "same_outputs": _same_outputs(work)}


def _deploykit_encoding(model, level: float, work: Path) -> dict:
    """deploykit's sparse50/75/90 TFLite writer on the unpruned fp32 conversion of the same model."""
    import tensorflow as tf

    from deploykit.core.noise import capture_output
    from deploykit.quantize.options import QuantizeOptions
    from deploykit.quantize.sparse_tflite import sparse_tflite

    base = work / "mnv2-fp32.tflite"
    if not base.exists():
        import keras

        keras.utils.set_random_seed(0)
        fresh = keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3))
        with capture_output():
            base.write_bytes(tf.lite.TFLiteConverter.from_keras_model(fresh).convert())
    out = work / f"mnv2-deploykit-{level}.tflite"
    scheme = f"sparse{int(level * 100)}"
    sparse_tflite(base, out, scheme, QuantizeOptions(), None, work)
    data = out.read_bytes()
    row = {"sparsity": level, "written": f"deploykit {scheme}", "size_bytes": len(data), "download_bytes": download_bytes(out),
           "densify_ops": _count_ops(data, "DENSIFY"), "latency": litert_timing(out)}
    print(json.dumps(row), flush=True)
    return row


def _same_outputs(work: Path) -> dict:
    """Sparse-encoded vs dense zeros through LiteRT with XNNPACK: largest output difference."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    x = np.random.default_rng(0).random((1, 224, 224, 3), dtype=np.float32)
    outputs = {}
    for label, path in (("dense zeros", work / "mnv2-0.9-0.tflite"), ("EXPERIMENTAL_SPARSITY", work / "mnv2-0.9-1.tflite")):
        interpreter = Interpreter(model_path=str(path), num_threads=1)
        interpreter.allocate_tensors()
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
        interpreter.invoke()
        outputs[label] = interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy()
    return {"max_abs_difference_at_90": float(np.abs(outputs["dense zeros"] - outputs["EXPERIMENTAL_SPARSITY"]).max())}


def judge(summary: dict, profile: str) -> bool | None:
    """The verdict of a parity summary (every output) under the profile as it is now, without re-running anything:
    the check's thresholds on its recorded metrics (top-k only for classifier-like outputs, which record them)."""
    from deploykit.parity.profiles import get_profile

    outputs = (summary or {}).get("outputs")
    if not outputs:
        return None
    chosen = get_profile(profile)
    for name, values in outputs.items():
        if values.get("problem"):
            return False
        for threshold in chosen.thresholds_for(name, values.get("top1_agreement") is not None):
            if values.get(threshold.metric) is not None and not threshold.passes(_num(values[threshold.metric])):
                return False
    return True


def rejudge(results: dict, work: Path) -> None:
    """Each variant row's verdict under the committed profiles, from the convert records kept in ``work``."""
    for name, model in (results.get("variants") or {}).items():
        record = work / f"out-{name}" / "deploykit-report.json"
        if not record.is_file():
            continue
        summaries = {(a["target"], a["variant"]): a.get("parity") for a in json.loads(record.read_text())["artifacts"]}
        for row in model.get("rows", []):
            row["parity"]["passes_now"] = judge(summaries.get((row["target"], row["variant"])), row["variant"])


def constant_outputs(work: Path) -> dict:
    """A wrong model the shuffled copies do not cover: one that ignores its input. Per real model, each output's
    cosine (the parity metric: per sample, the worst) against the source's own mean output over the samples, the
    best input-independent answer; for the CTC recogniser also against "blank at every step"."""
    import numpy as np
    import onnxruntime as ort

    from deploykit.parity.metrics import cosine_similarity

    rows = {}
    for name, (spec, _, data, kind) in MODELS.items():
        if kind != "real":
            continue
        session = ort.InferenceSession(_source(spec, work))
        feeds = np.load(_source(data, work))
        key = session.get_inputs()[0].name
        outputs = [session.run(None, {key: x[None].astype(np.float32)}) for x in feeds[key]]
        row = {}
        for index, meta in enumerate(session.get_outputs()):
            values = np.stack([o[index] for o in outputs])
            mean = values.mean(axis=0)
            row[meta.name] = {"mean output": min(cosine_similarity(v, mean) for v in values)}
            if name == "ppocrv4-rec":
                blank = np.zeros_like(values[0])
                blank[..., 0] = 1.0
                row[meta.name]["blank at every step"] = min(cosine_similarity(v, blank) for v in values)
        rows[name] = row
        print(json.dumps({name: row}), flush=True)
    return rows


def ctc_lines(work: Path) -> dict:
    """What the PP-OCRv4 recogniser's TFLite artifacts (kept in ``work`` by ``variants``) read: greedy CTC decoding
    (arg max per step, repeats merged, blank 0 dropped) of each data sample, against the source's reading."""
    import numpy as np
    import onnxruntime as ort

    from deploykit.formats.litert_facade import interpreter as open_interpreter

    spec, _, data, _ = MODELS["ppocrv4-rec"]
    feeds = np.load(_source(data, work))["x"]
    session = ort.InferenceSession(_source(spec, work))

    def read(probabilities) -> list[int]:
        steps = probabilities.argmax(-1).ravel()
        return [int(c) for i, c in enumerate(steps) if c != 0 and (i == 0 or c != steps[i - 1])]

    source = [read(session.run(None, {"x": x[None]})[0]) for x in feeds]
    rows = {"source": {"characters": sum(len(line) for line in source)}}
    for path in sorted((work / "out-ppocrv4-rec").glob("*.tflite")):
        runner = open_interpreter(path).get_signature_runner()
        name, details = next(iter(runner.get_input_details().items()))
        lines = []
        for x in feeds:
            x = x[None] if tuple(x[None].shape) == tuple(details["shape"]) else x[None].transpose(0, 2, 3, 1)
            lines.append(read(next(iter(runner(**{name: x.astype(np.float32)}).values()))))
        rows[path.name] = {"lines_identical": sum(a == b for a, b in zip(source, lines)), "lines": len(lines),
                           "characters": sum(len(line) for line in lines)}
        print(json.dumps({path.name: rows[path.name]}), flush=True)
    return rows


def paired_timing(work: Path, rounds: int = 4) -> dict:
    """Dense zeros against deploykit's sparse encoding of the same pruned MobileNetV2, timed in alternation (the
    host is shared: one file after the other, several rounds, the median of each file's medians)."""
    import keras
    import numpy as np
    import tensorflow as tf

    from deploykit.core.noise import capture_output
    from deploykit.formats.tflite.flatbuffer import read_model, write_model
    from deploykit.quantize.options import QuantizeOptions
    from deploykit.quantize.sparse_tflite import sparse_tflite, weight_layers
    from deploykit.quantize.sparsity import plan, prune_magnitude

    keras.utils.set_random_seed(0)
    base = work / "paired-fp32.tflite"
    with capture_output():
        base.write_bytes(tf.lite.TFLiteConverter.from_keras_model(
            keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3))).convert())
    files = {"fp32": base}
    for level in (0.5, 0.9):
        model = read_model(base.read_bytes())
        found = weight_layers(model)
        spared = plan([layer for layer, _ in found], (), 2048)
        for layer, index in found:
            if spared[layer.name] is None:
                buffer = model.buffers[model.subgraphs[0].tensors[index].buffer]
                weight = np.frombuffer(bytes(buffer.data), dtype=np.float32)
                buffer.data = prune_magnitude(weight, level).tobytes()
        files[f"{level:.0%} dense zeros"] = work / f"paired-{level}-dense.tflite"
        files[f"{level:.0%} dense zeros"].write_bytes(write_model(model))
        files[f"{level:.0%} sparse-encoded"] = work / f"paired-{level}-sparse.tflite"
        sparse_tflite(base, files[f"{level:.0%} sparse-encoded"], f"sparse{int(level * 100)}", QuantizeOptions(), None, work)
    timings: dict[str, list] = {name: [] for name in files}
    for _ in range(rounds):
        for name, path in files.items():
            timings[name].append(litert_timing(path))
    rows = []
    for name, runs in timings.items():
        rows.append({"file": name, "size_bytes": files[name].stat().st_size,
                     **{key: float(np.median([r[key] for r in runs])) for key in ("median_ms", "load_ms", "model_rss_mb")}})
        print(json.dumps(rows[-1]), flush=True)
    return {"model": "keras.applications.MobileNetV2 224, random weights (seed 0)", "rounds": rounds, "rows": rows}


def _count_ops(data: bytes, kind: str) -> int:
    from deploykit.formats.tflite import graph as tflite_graph

    graph = tflite_graph.read(data)
    return sum(1 for i in range(len(graph.graph.operators)) if graph.op_type(i) == kind)


def deep_compression(work: Path) -> dict:
    """AlexNet (ONNX zoo topology, seeded random weights) through pruning, quantization and zip."""
    import deploykit
    from deploykit.core.noise import capture_output

    out = work / "out-alexnet"
    started = time.perf_counter()
    with capture_output():
        report = deploykit.convert(str(CORPUS / "zoo-bvlc_alexnet" / "model.onnx"), to="tflite,coreml", out=out,
                                   coreml_target="iOS18", quantize=DEEP_SCHEMES, verify=False)
    rows = []
    for a in report.artifacts:
        path = out / a.path
        sparsity = (a.quantization or {}).get("sparsity")
        rows.append({"target": a.target, "variant": a.variant, "size_bytes": a.size_bytes, "download_bytes": download_bytes(path),
                     "parameters": (a.size_limit or {}).get("parameters"),
                     **({"prunable_sparsity": sparsity["prunable_sparsity"], "overall_sparsity": sparsity["overall_sparsity"]}
                        if sparsity else {})})
        print(json.dumps(rows[-1]), flush=True)
    return {"model": "zoo-bvlc_alexnet", "seconds": round(time.perf_counter() - started, 1), "rows": rows}


def cli_demo(work: Path) -> dict:
    folder = CORPUS / "ppocrv4-rec"
    command = ["deploykit", "convert", str(folder / "model.onnx"), "--input", "x=1x3x48x320", "--to", "tflite,coreml",
               "--coreml-target", "iOS18", "--quantize", "sparse50,sparse50+lut4,sparse50+int8",
               "--data", str(folder / "data.npz"), "--out", str(work / "x")]
    started = time.perf_counter()
    done = subprocess.run([str(REPO / ".venv" / "bin" / "deploykit"), *command[1:]], capture_output=True, text=True,
                          env=dict(os.environ, COLUMNS="160"))
    shown = " ".join(c.replace(str(REPO) + "/", "") for c in command).replace(str(work / "x"), "/tmp/x")
    record = work / "x" / "deploykit-report.json"
    parity = {}
    if record.is_file():
        for a in json.loads(record.read_text())["artifacts"]:
            parity[a["path"]] = {"size_bytes": a["size_bytes"], **worst_output(a.get("parity") or {})}
    # the progress lines and the summary table go to the terminal's stderr; the record path to stdout
    console = [line for line in (done.stderr + done.stdout).splitlines() if not line.startswith(("Running ", "I0000", "W0000"))]
    return {"command": shown, "exit_code": done.returncode, "seconds": round(time.perf_counter() - started, 1),
            "console": "\n".join(console[-60:]), "artifacts": parity}


# -- writing ------------------------------------------------------------------------------------------------
def _save(results: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "sparsity.json").write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    (RESULTS / "sparsity.md").write_text(render(results))


if __name__ == "__main__":
    main()
