"""Prove that a change left behaviour alone: the same jobs run by two checkouts give the same bytes.

    .venv/bin/python -m bench.same_outputs OLD_CHECKOUT NEW_CHECKOUT [--tag redesign] [--work DIR]

Both checkouts run with this repository's .venv (``PYTHONPATH`` picks the code), on the same inputs: the
example project's model, labels and pictures made once, one signing key, and the corpus models
(``bench/corpus/models``, built with ``python -m bench.corpus.build``). The jobs:

- the example build (``examples/run_example.sh``: two builds, publish, predict, pull): every bundle's sha256;
- ``deploykit convert --json`` of one model per source format, every target plus quantized variants
  (Keras digits with pixel input and labels; PyTorch MTCNN O-Net to TFLite, Core ML and ExecuTorch; ONNX
  PP-OCR direction classifier and SqueezeNet with int8): each ``deploykit-report.json``.

Records must be identical except for timings (``TIMING`` keys), the checkout's own paths and Keras' automatic
tensor names (``keras_tensor_N``: a process-wide counter, so a build's worker processes number them in whatever
order they happen to run jobs); bundles must be byte-identical. Writes ``bench/results/same_outputs-<tag>.md`` and exits 1 when anything differs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "bench" / "corpus" / "models"
KERAS_TENSOR = re.compile(r"\bkeras_tensor_\d+\b")
TIMING = {"total_seconds", "conversion_seconds", "seconds", "export_seconds", "latency", "load_ms", "median_ms",
          "p90_ms", "mean_ms", "min_ms", "expires"}


def convert_jobs(shared: Path) -> dict[str, list[str]]:
    models = shared / "models"
    return {
        "keras": [str(models / "digits.keras"), "--to", "tflite,coreml", "--quantize", "fp16,int8-weights",
                  "--image-input", "image", "--labels", str(models / "labels.txt"), "--data", str(models / "pictures")],
        "torch": [str(CORPUS / "mtcnn-onet/model.pt2"), "--to", "tflite,coreml,executorch", "--quantize", "fp16",
                  "--data", str(CORPUS / "mtcnn-onet/data.npz")],
        "onnx": [str(CORPUS / "ppocr-cls/model.onnx"), "--input", "x=1x3x48x192", "--to", "tflite,coreml",
                 "--quantize", "fp16,int8-weights,lut4", "--data", str(CORPUS / "ppocr-cls/data.npz")],
        "onnx-int8": [str(CORPUS / "zoo-squeezenet/model.onnx"), "--to", "tflite,coreml", "--quantize", "int8",
                      "--calibration", str(CORPUS / "zoo-squeezenet/data.npz")],
    }


def run_checkout(checkout: Path, shared: Path, out: Path) -> None:
    """Every job with ``checkout``'s code; outputs under ``out``."""
    env = {**os.environ, "PYTHONPATH": str(checkout), "TF_CPP_MIN_LOG_LEVEL": "3"}
    out.mkdir(parents=True)
    for folder in ("examples/models", "dist"):
        shutil.rmtree(checkout / folder, ignore_errors=True)
    shutil.copytree(shared / "models", checkout / "examples" / "models")
    shutil.copytree(shared / "keys", checkout / "dist" / "keys")
    venv = checkout / ".venv"
    if not venv.exists():
        venv.symlink_to(REPO / ".venv")
    done = subprocess.run(["bash", "examples/run_example.sh"], cwd=checkout, env=env, capture_output=True, text=True)
    (out / "example.log").write_text(done.stdout + done.stderr)
    shutil.copytree(checkout / "dist", out / "example-dist")
    for name, args in convert_jobs(shared).items():
        done = subprocess.run([str(REPO / ".venv/bin/deploykit"), "convert", *args, "--out", str(out / name), "--quiet"],
                              cwd=checkout, env=env, capture_output=True, text=True)
        (out / f"{name}.log").write_text(f"exit {done.returncode}\n{done.stderr}")


def bundle_hashes(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((out / "example-dist").rglob("*.zip"))}


def normalized(value, roots: tuple[str, ...]):
    if isinstance(value, dict):
        return {k: "<timing>" if k in TIMING else normalized(v, roots) for k, v in value.items()}
    if isinstance(value, list):
        return [normalized(v, roots) for v in value]
    if isinstance(value, str):
        for root in roots:
            value = value.replace(root, "<checkout>")
        return KERAS_TENSOR.sub("keras_tensor_N", value)
    return value


def differences(a, b, where: str = "") -> list[str]:
    if type(a) is not type(b):
        return [f"{where}: {str(a)[:100]} != {str(b)[:100]}"]
    if isinstance(a, dict):
        found = []
        for key in sorted(set(a) | set(b)):
            found += ([f"{where}.{key}: only on one side"] if key not in a or key not in b
                      else differences(a[key], b[key], f"{where}.{key}"))
        return found
    if isinstance(a, list):
        found = [] if len(a) == len(b) else [f"{where}: {len(a)} != {len(b)} items"]
        for index, (x, y) in enumerate(zip(a, b)):
            found += differences(x, y, f"{where}[{index}]")
        return found
    return [] if a == b else [f"{where}: {str(a)[:100]} != {str(b)[:100]}"]


def records(out: Path) -> dict[str, Path]:
    found = {p.relative_to(out).as_posix(): p for p in out.rglob("deploykit-report.json")}
    found.update({p.relative_to(out).as_posix(): p for p in out.rglob("deploykit-build.json")})
    return dict(sorted(found.items()))


def compare(old: Path, new: Path, roots: tuple[str, ...]) -> dict:
    result = {"bundles": {}, "records": {}, "exit_codes": {}}
    old_bundles, new_bundles = bundle_hashes(old), bundle_hashes(new)
    for name in sorted(set(old_bundles) | set(new_bundles)):
        result["bundles"][name] = old_bundles.get(name) == new_bundles.get(name) and name in old_bundles
    old_records, new_records = records(old), records(new)
    for name in sorted(set(old_records) | set(new_records)):
        if name not in old_records or name not in new_records:
            result["records"][name] = ["only on one side"]
            continue
        result["records"][name] = differences(normalized(json.loads(old_records[name].read_text()), roots),
                                              normalized(json.loads(new_records[name].read_text()), roots))
    for log in sorted(new.glob("*.log")):
        result["exit_codes"][log.stem] = (_exit(old / log.name), _exit(log))
    return result


def _exit(log: Path) -> str:
    text = log.read_text() if log.is_file() else ""
    if log.stem == "example":
        return "ok" if "done: jobs and signed bundles" in text else "failed"
    return text.splitlines()[0] if text else "missing"


def _commit(checkout: Path) -> str:
    """The checkout's commit, and whether its work tree has changes (what a result is about, without local paths)."""
    head = subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(checkout), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True)
    return (head.stdout.strip() or "unknown") + (" with uncommitted changes" if dirty.stdout.strip() else "")


def write(result: dict, tag: str, old: Path, new: Path) -> bool:
    same = all(result["bundles"].values()) and not any(result["records"].values()) and all(
        a == b for a, b in result["exit_codes"].values())
    lines = [f"# Same outputs: {tag}", "",
             f"`python -m bench.same_outputs OLD NEW --tag {tag}` with OLD at {_commit(old)} and NEW at {_commit(new)}: "
             "the example build and four `deploykit convert` jobs run by both checkouts on the same inputs (see the "
             "module docstring).", "",
             f"**{'identical' if same else 'DIFFERENT'}**: {sum(result['bundles'].values())} of {len(result['bundles'])} "
             f"bundles byte-identical; {sum(not d for d in result['records'].values())} of {len(result['records'])} "
             "records identical except timings and checkout paths.", "",
             "| output | same |", "| --- | --- |"]
    lines += [f"| bundle `{name}` | {'yes' if same_bundle else 'NO'} |" for name, same_bundle in result["bundles"].items()]
    lines += [f"| record `{name}` | {'yes' if not diff else 'NO: ' + '; '.join(diff[:3])} |"
              for name, diff in result["records"].items()]
    lines += [f"| exit `{name}` | {a} / {b} |" for name, (a, b) in result["exit_codes"].items()]
    (REPO / "bench" / "results" / f"same_outputs-{tag}.md").write_text("\n".join(lines) + "\n")
    (REPO / "bench" / "results" / f"same_outputs-{tag}.json").write_text(json.dumps(result, indent=2) + "\n")
    return same


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--tag", default="change")
    parser.add_argument("--work", type=Path, default=Path("/tmp/deploykit-same-outputs"))
    args = parser.parse_args(argv)
    work = args.work
    shutil.rmtree(work, ignore_errors=True)
    shared = work / "shared"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run([str(REPO / ".venv/bin/python"), "examples/make_example_model.py", str(shared / "models")],
                   cwd=REPO, env=env, check=True, capture_output=True)
    subprocess.run([str(REPO / ".venv/bin/deploykit"), "keygen", "--out", str(shared / "keys")], env=env, check=True,
                   capture_output=True)
    for side, checkout in (("old", args.old), ("new", args.new)):
        run_checkout(checkout.resolve(), shared, work / side)
    roots = (str(args.old.resolve()), str(args.new.resolve()))
    same = write(compare(work / "old", work / "new", roots), args.tag, args.old, args.new)
    print(f"{'identical' if same else 'DIFFERENT'}: bench/results/same_outputs-{args.tag}.md")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
