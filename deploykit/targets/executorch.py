"""ExecuTorch: ``.pte`` programs for PyTorch-native apps on Android and iOS (XNNPACK, the Core ML delegate, or
portable kernels).

Every scheme is its own export of the PyTorch module (PT2E quantizes before lowering, so there is no fp32
program to derive the others from). A ``.pte`` names no tensors and holds no metadata: the record keeps the
source's names (parity binds by position), labels travel in the bundle's ``labels.txt``. One program gives
an Android and an iOS bundle (iOS only when it is delegated to Core ML), their variants prefixed with the
runtime so they sit beside LiteRT and Core ML bundles of the same quantization in one release.
"""

from __future__ import annotations

import re
from pathlib import Path

from deploykit.targets.base import BundleSlot, Made, Payload, Target

# Minimum OS versions, each decision with its source:
# - Android API 23: the ``org.pytorch:executorch-android`` AAR is built with ``minSdk = 23``
#   (pytorch/executorch, extension/android/executorch_android/build.gradle), so an app that links it
#   declares at least that. A higher ``--min-android-api`` is kept.
# - iOS 17.0: the Swift PM package of ExecuTorch's docs ("Using ExecuTorch on iOS", Package.swift
#   example) declares ``platforms: [.iOS(.v17), ...]``; its prebuilt xcframeworks target that release.
MIN_ANDROID_API = 23
MIN_IOS = "17.0"
_DELEGATED = re.compile(r"delegated to ([A-Za-z][A-Za-z0-9_]*)")
_ACTIVATIONS = {"fp32": "float32", "fp16": "float16", "int8": "int8"}


class ExecuTorch(Target):
    name = "executorch"
    title = "ExecuTorch"
    suffix = ".pte"
    sources = ("torch",)  # its programs come from torch.export
    tool_packages = ("executorch", "torchao")  # torchao: PT2E int8
    bundle_model = "model/model.pte"
    plot_title, plot_colour, plot_marker = "ExecuTorch", "#2f855a", "^"
    variant_prefix = "executorch-"
    derives_from_fp32 = False  # every scheme is its own export

    def check_source(self, model) -> None:
        if model.framework not in self.sources:
            from deploykit.core.errors import UsageError

            raise UsageError(
                f"--to executorch needs a PyTorch source (.pt2, path/to/file.py:factory, TorchScript); this is a "
                f"{model.format} model",
                hint="convert it to tflite or coreml, or export the PyTorch model it came from")

    def check_images(self, images) -> None:
        if images:
            from deploykit.core.errors import UsageError

            raise UsageError("--image-input is not made for ExecuTorch programs yet: they take the float tensor "
                             "the PyTorch model takes", hint="convert --to executorch without --image-input")

    # -- making ---------------------------------------------------------------------------------------------
    def make(self, model, scheme, path, options, workspace, context) -> Made:
        """The PteRecord is kept in the workspace for the artifact's interface and graph check."""
        from deploykit.converters import torch_executorch as et
        from deploykit.core.flexible import has_flexible, refuse
        from deploykit.loaders.torch_loader import example_tensors
        from deploykit.quantize.executorch_int8 import calibration_samples

        calibration = calibration_samples(context.calibration, model.inputs) if scheme == "int8" else None
        opts = et.ExecutorchOptions(backend=options.executorch_backend, scheme=scheme, calibration=calibration,
                                    coreml_target=options.coreml_target)
        if has_flexible(model.inputs):
            raise refuse(model, et.label(opts), "deploykit exports ExecuTorch programs for one size per input")
        record = et.export_pte(model.handle["module"], example_tensors(model.inputs), path, et.check_options(opts),
                               input_names=[t.name for t in model.inputs], output_names=[t.name for t in model.outputs])
        workspace.products[("executorch", str(path))] = record
        quantization = {"scheme": scheme, "backend": record.backend, **(record.quantization or {}),
                        "weights": _ACTIVATIONS[scheme], "activations": _ACTIVATIONS[scheme]}
        return Made(path, et.label(opts, bool(model.handle.get("torchscript"))), quantization, ())

    def finish(self, path, model) -> dict | None:
        """ExecuTorch programs carry no metadata: labels travel in the bundle's labels.txt and manifest."""
        if model.classifier is None:
            return None
        return {**model.classifier.to_json(), "carried_as": "bundle labels.txt (a .pte holds no metadata)"}

    def interface(self, path, model, workspace):
        """The export's record: the source's names, and an op histogram counting the Edge ops per place they
        run ("xnnpack: aten.convolution.default", "portable: ...")."""
        record = workspace.products[("executorch", str(path))]
        ops = {**{f"{record.backend}: {op}": n for op, n in record.delegated_ops.items()},
               **{f"portable: {op}": n for op, n in record.portable_ops.items()}}
        return record.inputs, record.outputs, ops

    def graph_check(self, path, workspace):
        """The partitioner fuses inside its delegate; what matters for an ExecuTorch program is which ops it left
        to the portable kernels (``converters.executorch_record.PteRecord``), so that is what the check reports."""
        from deploykit.passes.check import GraphReport

        record = workspace.products.get(("executorch", str(path)))
        return GraphReport(notes=record.sentences() if record is not None else ())

    # -- running ----------------------------------------------------------------------------------------------
    def runner(self, path, **options):
        """The ExecuTorch runtime in a child process, or for a Core ML-delegated program the numpy evaluator on
        its ML Program. A .pte names no tensors: parity binds them to the source's by position."""
        from deploykit.runners.executorch_runner import runner_for_pte

        return runner_for_pte(path, **options)

    def latency(self, artifact, path) -> dict:
        """The ExecuTorch runtime in a child process, as parity runs it: a crash costs only the figure."""
        from deploykit.runners.executorch_bench import time_pte
        from deploykit.runners.latency import RUNS, WARMUP, why

        try:
            return {"source": "executorch", **time_pte(path, threads=1, warmup=WARMUP, runs=RUNS)}
        except Exception as exc:  # noqa: BLE001
            return {"source": "executorch", "unavailable": f"the ExecuTorch runtime could not time it: {why(exc)}"}

    def bench(self, path, *, threads, warmup, runs, xnnpack: bool = True):
        from deploykit.runners.executorch_bench import bench_pte

        return bench_pte(path, threads=threads, warmup=warmup, runs=runs)

    def inspect(self, path):
        from deploykit.inspection import executorch_graph

        return executorch_graph.inspect(Path(path))

    def compatibility(self, path, workspace=None) -> dict:
        """The delegate's ops and the portable kernel calls, read from the .pte; the export's own count as a note."""
        from deploykit.inspection.compat_executorch import compatibility

        record = workspace.products.get(("executorch", str(path))) if workspace is not None else None
        return compatibility(Path(path), record)

    # -- bundles ----------------------------------------------------------------------------------------------
    def bundle_slots(self, artifact):
        """A program delegated to ExecuTorch's Core ML backend runs on Apple platforms only."""
        slots = (BundleSlot("android", "executorch", "executorch"), BundleSlot("ios", "executorch", "executorch"))
        if (artifact.quantization or {}).get("backend") == "coreml":
            slots = tuple(s for s in slots if s.platform == "ios")
        return slots

    def bundle_payload(self, path, artifact, slot, scratch, meta) -> Payload:
        """A .pte has no metadata section: it goes in as converted (its sha256 is the one the record checked),
        labels go to assets/labels.txt, and the manifest is the only description of its inputs and outputs."""
        return Payload({self.bundle_model: Path(path).read_bytes()},
                       compatibility(artifact, slot.platform, meta.min_android_api, dict(meta.tool_versions)))

    def weight_spans(self, files) -> dict[str, list[tuple[int, int]]]:
        """Every segment (delegate payloads, named data) and every constant tensor of the program."""
        from deploykit.formats.pte.layout import segment_spans

        source = files.get(self.bundle_model)
        if source is None:
            return {}
        return {self.bundle_model: segment_spans(source if isinstance(source, (bytes, bytearray)) else Path(source).read_bytes())}


TARGET = ExecuTorch()

BACKENDS = ("xnnpack", "coreml", "portable")


def _runtime_version(tool_versions: dict[str, str]) -> str:
    """The ExecuTorch version that wrote the program (the record's, else the installed one): a runtime at least
    this new reads it."""
    from importlib import metadata

    if tool_versions.get("executorch"):
        return tool_versions["executorch"]
    try:
        return metadata.version("executorch")
    except metadata.PackageNotFoundError:
        from deploykit.core.errors import InputError

        raise InputError("the record does not say which ExecuTorch version wrote the .pte, and executorch is not "
                         "installed here", hint="bundle on the machine that converted it") from None


def _delegation(artifact) -> tuple[list[str], list[str]]:
    """(delegates named in the record's delegation sentences, those sentences)."""
    notes = [n for n in (artifact.passes[-1].get("notes", []) if artifact.passes else []) if "delegated to" in n]
    delegates: list[str] = []
    for note in notes:
        delegates.extend(d for d in _DELEGATED.findall(note) if d not in delegates)
    return delegates, notes


def compatibility(artifact, platform: str, min_android_api: int, tool_versions: dict[str, str]) -> dict:
    """What an ExecuTorch bundle declares about its runtime: minimum OS, minimum ExecuTorch version, backend,
    delegates. Nothing here imports executorch's Python package: the version is read from the record (else
    its distribution metadata), and the delegates come from the record's own sentences
    (``passes[-1]["notes"]``)."""
    from deploykit.core.errors import InputError

    backend = (artifact.quantization or {}).get("backend", "portable")
    if backend not in BACKENDS:
        raise InputError(f"{artifact.path}: unknown ExecuTorch backend {backend!r} in the record")
    if backend == "coreml" and platform == "android":
        raise InputError(f"{artifact.path} delegates to ExecuTorch's Core ML backend, which runs on Apple platforms only",
                         hint="convert with --executorch-backend xnnpack for Android")
    delegates, notes = _delegation(artifact)
    version = _runtime_version(tool_versions)
    runtime = {"name": "executorch", "min_version": version, "backend": backend, "delegates": delegates}
    if notes:
        runtime["delegation"] = notes[0]
    return {"min_ios": MIN_IOS if platform == "ios" else None,
            "min_android_api": max(min_android_api, MIN_ANDROID_API) if platform == "android" else None,
            "min_runtime": version, "deployment_target": None, "runtime": runtime}
