"""The exact TFLite rewrites for LiteRT's GPU delegate, before and after, on the models that need them.

Each model is converted to TFLite twice with the CLI: ``--passes shorten_names`` (every other tflite pass off: the
converter's own graph) and the default ``--passes auto`` (which runs gather_as_slice, int64_as_int32,
slices_for_gpu, split_relu_0_to_1 and fold_constant_broadcast). For both artifacts it records the ops the GPU
delegate refuses, as LiteRT's model analyzer says with ``gpu_compatibility=True``, and the pieces XNNPACK takes the
graph in; for the second, what each pass rewrote and the record's parity verdict; and whether the two artifacts give
byte-identical outputs on seeded inputs (the rewrites are exact).

The analyzer: the one ai-edge-litert 2.3.0 and TensorFlow 2.21 ship checks no op for the GPU delegate (it calls
every model, even one made of a custom op, compatible), so this uses the one deploykit's compatibility report uses
(``formats.tflite.analyzer.gpu_analyzer``): TensorFlow 2.16.2's, which setup.sh extracts into the venv, or the
module given with ``--analyzer PATH``.

Models: PP-OCRv4's recogniser and detector and the PicoDet layout detector (onnx2tf), the transformers ViT and
DistilBERT (.pt2, litert-torch; the ViT also as torch.onnx exported it, through onnx2tf), and IndexNet, a small
torch model built here with the index patterns exporters write (``x[:, 0]``, ``index_select``, ``.long()``),
exported by torch.onnx. ``--clean`` adds corpus models whose TFLite artifact the GPU delegate takes whole.

Run: .venv/bin/python bench/compatibility_passes_bench.py [--models a,b] [--clean] [--analyzer PATH]
Writes bench/results/compatibility-passes.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
CORPUS = REPO / "bench" / "corpus" / "models"
RESULTS = REPO / "bench" / "results"
CLI = str(REPO / ".venv" / "bin" / "deploykit")
PASSES = ("gather_as_slice", "int64_as_int32", "slices_for_gpu", "split_relu_0_to_1", "fold_constant_broadcast")

# name -> (source, --input values, what it is)
MODELS = {
    "ppocrv4-rec": ("ppocrv4-rec/model.onnx", ["x=1x3x48x320"], "PP-OCRv4 recogniser (SVTR), ONNX -> onnx2tf"),
    "ppocrv4-det": ("ppocrv4-det/model.onnx", ["x=1x3x320x320"], "PP-OCRv4 detector, ONNX -> onnx2tf"),
    "layout-cdla": ("layout-cdla/model.onnx", [], "PicoDet layout detector, ONNX -> onnx2tf"),
    "vit-onnx": ("arch-t-vit/model.onnx", ["pixel_values=1x3x224x224"], "ViT (transformers), torch.onnx -> onnx2tf"),
    "vit-pt2": ("arch-t-vit/model.pt2", [], "ViT (transformers), .pt2 -> litert-torch"),
    "distilbert-pt2": ("arch-t-distilbert/model.pt2", [], "DistilBERT (transformers), .pt2 -> litert-torch"),
    "indexnet": (None, [], "IndexNet (built here), torch.onnx -> onnx2tf"),
}
CLEAN = {
    "nudenet-320n": ("nudenet-320n/model.onnx", ["images=1x3x320x320"], "YOLOv8n detector, ONNX -> onnx2tf"),
    "ddddocr-det": ("ddddocr-det/model.onnx", ["images=1x3x416x416"], "YOLOX-tiny detector, ONNX -> onnx2tf"),
    "swin-pt2": ("arch-t-swin/model.pt2", [], "Swin (transformers), .pt2 -> litert-torch"),
    "mobilevit-pt2": ("arch-t-mobilevit/model.pt2", [], "MobileViT (transformers), .pt2 -> litert-torch"),
}


# ---- the analyzer ---------------------------------------------------------------------------------------------

def gpu_analyzer(path: str | None) -> tuple[str, Path | None]:
    """(its title, its module or None for the installed one): the analyzer that checks GPU compatibility here."""
    from deploykit.formats.tflite import analyzer

    if path is not None:
        return f"the analyzer module {path}", Path(path)
    found = analyzer.gpu_analyzer()
    if found is None:
        raise SystemExit("no model analyzer here checks GPU compatibility: run setup.sh (it extracts TensorFlow "
                         f"{analyzer.FALLBACK_RELEASE}'s) or give --analyzer PATH")
    return found


def gpu_refused(module: Path | None, tflite: Path) -> dict:
    """{ops, refused: [[op, reason, count]]}: the analyzer's per-op GPU warnings, read by deploykit's own parser
    (``formats.tflite.analyzer.parse``: each warning belongs to the op printed above it)."""
    from deploykit.formats.tflite import analyzer

    analysis = analyzer.analyze(tflite) if module is None else analyzer.analyze_with(module, tflite)
    refused = Counter((op.op, op.gpu_warning) for op in analysis.refused)
    return {"ops": len(analysis.ops), "analyzer_runtime": analysis.runtime_version,
            "refused": [[op, reason, n] for (op, reason), n in sorted(refused.items())]}


# ---- sources --------------------------------------------------------------------------------------------------

def indexnet_onnx(folder: Path) -> Path:
    """IndexNet exported by torch.onnx (opset 17, TorchScript exporter), seeded weights."""
    import torch
    from torch import nn

    class IndexNet(nn.Module):
        """A patch classifier with the index patterns exporters write: a token picked by a scalar index, a contiguous
        index_select, positions from an int64 arange, a level made an integer with .long()."""

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 16, 4, stride=4)
            self.pos = nn.Embedding(64, 16)
            self.fc = nn.Linear(16, 10)

        def forward(self, x):
            t = self.conv(x).flatten(2).transpose(1, 2)  # [1, 64, 16]
            t = t + self.pos(torch.arange(t.shape[1], device=x.device))
            cls = t[:, 0]
            mid = t.index_select(1, torch.tensor([4, 5, 6, 7]))
            level = (torch.sigmoid(cls) * 7).long()
            return self.fc(cls + mid.mean(1)) + level.float().sum(-1, keepdim=True)

    torch.manual_seed(0)
    path = folder / "indexnet.onnx"
    torch.onnx.export(IndexNet().eval(), (torch.rand(1, 3, 32, 32),), str(path), dynamo=False, opset_version=17,
                      input_names=["image"], output_names=["logits"])
    return path


# ---- one model ------------------------------------------------------------------------------------------------

def convert(source: Path, inputs: list[str], out: Path, passes: str) -> tuple[dict, float]:
    command = [CLI, "convert", str(source), "--to", "tflite", "--out", str(out), "--passes", passes, "--json"]
    for value in inputs:
        command += ["--input", value]
    start = time.perf_counter()
    done = subprocess.run(["nice", "-n", "10", *command], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"convert {source} --passes {passes} failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout), seconds


def same_outputs(before: Path, after: Path, samples: int = 4) -> bool:
    """Byte-identical outputs of the two artifacts on seeded inputs, with LiteRT's builtin kernels."""
    import numpy as np

    from deploykit.formats import litert_facade

    runners = [litert_facade.interpreter(path, delegates=False).get_signature_runner() for path in (before, after)]
    details = runners[0].get_input_details()
    for seed in range(samples):
        rng = np.random.default_rng(seed)
        feeds = {}
        for name, detail in details.items():
            shape, dtype = detail["shape"], detail["dtype"]
            feeds[name] = (rng.standard_normal(shape).astype(dtype) if np.issubdtype(dtype, np.floating)
                           else rng.integers(0, 100, shape).astype(dtype))
        first, second = (runner(**feeds) for runner in runners)
        if first.keys() != second.keys() or any(np.asarray(first[k]).tobytes() != np.asarray(second[k]).tobytes()
                                                for k in first):
            return False
    return True


def partitions(path: Path) -> int:
    from deploykit.core.noise import capture_output
    from deploykit.formats.tflite.delegation import delegation

    with capture_output():
        return delegation(path).partitions


def measure(name: str, source: Path, inputs: list[str], what: str, analyzer, work: Path) -> dict:
    before_record, before_seconds = convert(source, inputs, work / f"{name}-before", "shorten_names")
    after_record, after_seconds = convert(source, inputs, work / f"{name}-after", "auto")
    before_artifact, after_artifact = before_record["artifacts"][0], after_record["artifacts"][0]
    before_path = work / f"{name}-before" / before_artifact["path"]
    after_path = work / f"{name}-after" / after_artifact["path"]
    rewrites = {p["name"]: p["items"] for p in after_artifact["passes"] if p.get("name") in PASSES and p.get("items")}
    parity = after_artifact.get("parity") or {}
    return {
        "model": name, "what": what,
        "source": str(source.relative_to(REPO)) if source.is_relative_to(REPO) else source.name,
        "converter": after_artifact.get("converter"),
        "before": {**gpu_refused(analyzer, before_path), "xnnpack_partitions": partitions(before_path),
                   "size_bytes": before_artifact["size_bytes"], "convert_seconds": round(before_seconds, 1),
                   "parity_passed": (before_artifact.get("parity") or {}).get("passed")},
        "after": {**gpu_refused(analyzer, after_path), "xnnpack_partitions": partitions(after_path),
                  "size_bytes": after_artifact["size_bytes"], "convert_seconds": round(after_seconds, 1),
                  "parity_passed": parity.get("passed"), "parity_profile": parity.get("profile")},
        "rewrites": rewrites,
        "identical_outputs": same_outputs(before_path, after_path),
    }


# ---- report ---------------------------------------------------------------------------------------------------

def refused_text(entry: dict) -> str:
    if not entry["refused"]:
        return "none"
    return "<br>".join(f"{n} {op}: {reason}" for op, reason, n in entry["refused"])


def count(entry: dict) -> int:
    return sum(n for _, _, n in entry["refused"])


def markdown(rows: list[dict], analyzer_note: str) -> str:
    lines = [
        "# Exact TFLite rewrites for LiteRT's GPU delegate: before and after",
        "",
        "`bench/compatibility_passes_bench.py`. Each model converted to TFLite twice: `--passes shorten_names` (the",
        "converter's graph) and the default `--passes auto`, which runs `gather_as_slice`, `int64_as_int32`,",
        "`slices_for_gpu`, `split_relu_0_to_1` and `fold_constant_broadcast` (docs/quantization.md, Graph passes).",
        f"GPU: {analyzer_note}",
        "XNNPACK pieces: the partitions LiteRT's default delegate takes the graph in (formats/tflite/delegation.py).",
        "",
        "| model | converter | GPU-refused ops before | after | ops before -> after | XNNPACK pieces "
        "| size before -> after | parity (after) | outputs identical |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        b, a = row["before"], row["after"]
        lines.append(
            f"| {row['model']}: {row['what']} | {row['converter']} | {count(b)}: {refused_text(b)} | "
            f"{count(a)}: {refused_text(a)} | {b['ops']} -> {a['ops']} | {b['xnnpack_partitions']} -> "
            f"{a['xnnpack_partitions']} | {b['size_bytes']:,} -> {a['size_bytes']:,} B | "
            f"{'passed' if a['parity_passed'] else 'FAILED'} ({a['parity_profile']}) | "
            f"{'yes' if row['identical_outputs'] else 'NO'} |")
    lines += ["", "## What each pass rewrote", ""]
    for row in rows:
        if not row["rewrites"]:
            lines.append(f"- **{row['model']}**: nothing to rewrite")
            continue
        for name, items in row["rewrites"].items():
            shown = "; ".join(items[:3]) + (f"; ... ({len(items)} in all)" if len(items) > 3 else "")
            lines.append(f"- **{row['model']}** `{name}` ({len(items)}): {shown}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="comma-separated names (default: every model that needs a rewrite)")
    parser.add_argument("--clean", action="store_true", help="add corpus models the GPU delegate already takes whole")
    parser.add_argument("--analyzer", help="path of a _pywrap_analyzer_wrapper.so that checks GPU compatibility "
                                           "(default: the one deploykit's compatibility report uses)")
    parser.add_argument("--work", help="folder for the artifacts (default: a temporary one)")
    args = parser.parse_args()
    catalogue = {**MODELS, **CLEAN}
    names = args.models.split(",") if args.models else list(MODELS) + (list(CLEAN) if args.clean else [])
    title, analyzer = gpu_analyzer(args.analyzer)
    note = (f"{title} (`gpu_compatibility=True`: the GPU delegate's `gpu_compatibility.cc` rules of its release, "
            "one warning per refused op); the analyzer of ai-edge-litert 2.3.0 / TensorFlow 2.21 checks no op.")
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="deploykit-compat-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in names:
        relative, inputs, what = catalogue[name]
        source = indexnet_onnx(work) if relative is None else CORPUS / relative
        print(f"{name}: converting twice", flush=True)
        row = measure(name, source, inputs, what, analyzer, work)
        print(f"  GPU-refused {count(row['before'])} -> {count(row['after'])}, parity "
              f"{row['after']['parity_passed']}, identical outputs {row['identical_outputs']}", flush=True)
        rows.append(row)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "compatibility-passes.json").write_text(json.dumps({"analyzer": note, "rows": rows}, indent=2) + "\n")
    (RESULTS / "compatibility-passes.md").write_text(markdown(rows, note))
    print(f"wrote {RESULTS / 'compatibility-passes.md'}")


if __name__ == "__main__":
    main()
