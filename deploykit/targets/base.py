"""What a target is: the one description of an artifact format and its runtime that every stage asks.

A target (``tflite``, ``coreml``, ``executorch``) is one module of this folder that defines a subclass of
:class:`Target` and is listed in ``deploykit.targets``' catalogue. The pipeline makes and reads artifacts
through it, parity and predict run them through it, the report asks it for latency and a plot style, the
bundle for its platforms and payload. Nothing outside a target's own module asks "which target is this?".

The records that flow between the pipeline and a target (``VariantContext``, ``Made``, ``BundleSlot``,
``BundleMeta``, ``Payload``) are small frozen dataclasses defined here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from deploykit.core.errors import UsageError
from deploykit.core.types import ModelDescription

FP32 = {"scheme": "fp32", "weights": "float32", "activations": "float32"}


@dataclass(frozen=True)
class VariantContext:
    """What every variant of one conversion shares."""

    selection: object  # passes.PassSelection
    quantize: object  # quantize.QuantizeOptions
    calibration: object = None  # quantize.calibration.Calibration, or None


@dataclass(frozen=True)
class Made:
    """One (target, scheme) artifact as its target made it, before the pipeline inspects it."""

    path: Path
    converter: str
    quantization: dict
    passes: tuple[dict, ...]
    attempts: tuple = ()  # converters.ladder.Attempt, when the path has a ladder


class BundleSlot(NamedTuple):
    """One bundle an artifact gives: the platform, the runtime that runs it there, the manifest's format."""

    platform: str  # "android" | "ios"
    runtime: str  # "litert" | "coreml" | "executorch"
    format: str  # "tflite" | "mlpackage" | "executorch"


@dataclass(frozen=True)
class BundleMeta(ModelDescription):
    """What a bundle says about its model, handed to the target that embeds it into a private copy."""

    sequence: int
    min_android_api: int
    tool_versions: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Payload:
    """A bundle's model files (bundle path -> bytes or a file), its ``compatibility`` block, and what was embedded."""

    files: dict[str, Any]
    compatibility: dict[str, Any]
    embedded: tuple[str, ...] = ()


def source_preparation_records(model, workspace) -> list[dict]:
    """The record entries of what was done to an ONNX graph before any converter saw it (``converters.onnx_prepare``)."""
    if model.framework != "onnx":
        return []
    from deploykit.converters.onnx_prepare import recorded_steps

    return recorded_steps(model, workspace)


class Target:
    """One artifact format and its runtime. Subclasses set the data below and implement the methods."""

    name: str = ""  # "tflite"
    title: str = ""  # "TFLite (LiteRT)": what tables and the report call it
    suffix: str = ""  # the artifact's suffix, ".tflite"
    also_reads: tuple[str, ...] = ()  # other suffixes of the same format deploykit accepts (".mlmodel")
    sources: tuple[str, ...] = ("keras", "torch", "onnx")  # source frameworks that reach it
    tool_packages: tuple[str, ...] = ()  # distributions whose versions a record names when the target is made
    bundle_model: str = ""  # where the model sits inside a bundle, "model/model.tflite"
    variant_prefix: str = ""  # prefixed to the bundle's variant when its platform has several runtimes
    derives_from_fp32: bool = True  # quantized variants start from the fp32 artifact (or need it to rescue fp16)
    pixel_feed = None  # image_io.feeds.PixelFeed, or None: the target takes no pixel inputs
    classifier_features: bool = False  # a classifier gets the platform's own label features (Core ML)
    latency_is_estimate: bool = False  # the report's latency figure is a model, not a measurement
    timed_here: bool = True  # a runtime on this machine times it (``deploykit bench``)
    build_latency_runner: str | None = None  # a build's own latency figure is the target's, when this runner made it
    plot_title: str = ""  # the report's legend
    plot_colour: str = "#555555"
    plot_marker: str = "o"

    # -- checks before anything is converted -----------------------------------------------------------
    def check_source(self, model) -> None:
        """Refuse a source this target cannot take (``model`` is a loaded ``SourceModel``)."""
        if model.framework not in self.sources:
            raise UsageError(f"--to {self.name} needs a {' or '.join(self.sources)} source; this is a {model.format} model",
                             hint="convert it to another target")

    def check_images(self, images) -> None:
        """Refuse ``--image-input`` when the target takes no pixels."""
        if images and self.pixel_feed is None:
            raise UsageError(f"--image-input is not made for {self.title} artifacts yet: they take the float tensor "
                             "the source model takes", hint=f"convert --to {self.name} without --image-input")

    # -- making an artifact (pipeline) -------------------------------------------------------------------
    def make(self, model, scheme: str, path: Path, options, workspace, context: VariantContext) -> Made:
        raise NotImplementedError

    def finish(self, path: Path, model) -> dict | None:
        """Put the labels into the finished artifact (and anything else it carries); the record's ``classifier``."""
        return None

    def attach_detector(self, path: Path, head, options, labels) -> dict:
        """``--detector``: append the head's decode and non-maximum suppression (``deploykit.detection``) to the
        finished artifact at ``path``, in place, with this platform's detector outputs; returns the record's
        ``detector`` block. ``head``: detection.presets.Head (fitted on the source's outputs), ``options``:
        detection.options.DetectorOptions, ``labels``: the class names or None."""
        raise UsageError(f"--detector is not made for {self.title} artifacts yet",
                         hint="convert this target without --detector, or --to tflite / coreml with it")

    def interface(self, path: Path, model, workspace) -> tuple[tuple, tuple, dict[str, int]]:
        """(inputs, outputs, op histogram) of a written artifact, read back from the file itself."""
        raise NotImplementedError

    def graph_check(self, path: Path, workspace):
        """The ``--strict-graph`` check of a written artifact (``passes.check.GraphReport``)."""
        raise NotImplementedError

    def needs_select_ops(self, path: Path) -> tuple[str, ...]:
        """Ops a stock runtime lacks that the artifact needs (TFLite's Select-TF ops)."""
        return ()

    def deployment_target(self, options) -> str | None:
        return None

    def variant_packages(self, variant: str) -> tuple[str, ...]:
        """Distributions a variant's engine used, for the record's tool versions."""
        return ()

    # -- running ----------------------------------------------------------------------------------------
    def runner(self, path, **options):
        """The runner (``runners.base.Runner``) that runs an artifact of this target on this machine."""
        raise NotImplementedError

    def layerwise_reference(self, workspace) -> Path | None:
        """The artifact this target's compressed variants are made from, whose weights ``--localize`` and
        ``--quantize auto`` replace layer by layer (quantize.layerwise); None when the target has no such base."""
        return None

    def latency(self, artifact, path: Path) -> dict:
        """The record's ``latency`` entry: measured where a runtime exists, else an estimate, else why not."""
        return {"source": None, "unavailable": f"no host latency measurement for {self.name} artifacts"}

    def slower_reason(self, artifact, path: Path, fp32, fp32_path: Path) -> str:
        """Why ``artifact`` times slower than this target's ``fp32`` artifact on the host (pipeline.latency_notes):
        what was verified on the two files, and what is only likely, worded so."""
        return (f"not analysed for {self.title} artifacts; likely the {artifact.variant} kernels of the runtime are slower "
                f"than its float32 ones on this CPU (compare the two with `deploykit bench`)")

    def bench(self, path: Path, *, threads: int, warmup: int, runs: int):
        """``deploykit bench``: a ``runners.litert_bench.BenchResult``."""
        raise UsageError(f"{path}: deploykit bench times .tflite and .pte artifacts",
                         hint=f"{self.title} artifacts have no runtime on this machine")

    def inspect(self, path: Path):
        """``deploykit inspect`` of an artifact (``inspection.Inspection``)."""
        raise NotImplementedError

    def compatibility(self, path: Path, workspace=None) -> dict | None:
        """The record's ``compatibility`` block of a written artifact: per accelerator of this target, how many of
        its ops the accelerator takes and which it refuses, with the analyzer's reason (docs/compatibility.md).
        ``{"static", "checked_with", "accelerators": [{"name", "title", "ops", "supported", "refused": [{"op",
        "count", "reason"}]}], "notes"}``; None when the target has no analysis. ``workspace``: the conversion's,
        when there is one (what the export recorded)."""
        return None

    def labelled_output(self, classifier: dict, outputs) -> str:
        """The artifact output holding the class scores the record's ``classifier`` labels."""
        source_name = classifier["output"]
        return next((t.name for t in outputs if source_name in (t.name, t.original_name)), source_name)

    # -- bundles ----------------------------------------------------------------------------------------
    def bundle_slots(self, artifact) -> tuple[BundleSlot, ...]:
        raise NotImplementedError

    def bundle_variant(self, artifact) -> str:
        """The manifest's variant: the artifact's (fp32, fp16, int8 ...), prefixed when the platform has
        other runtimes (publish, pull and the app updaters tell bundles apart by platform and variant)."""
        variant = self.variant_prefix + artifact.variant
        if len(variant) > 32:
            from deploykit.core.errors import InputError

            raise InputError(f"variant {variant!r} is longer than the manifest's 32 characters")
        return variant

    def bundle_payload(self, path: Path, artifact, slot: BundleSlot, scratch: Path, meta: BundleMeta) -> Payload:
        raise NotImplementedError

    def weight_spans(self, files: dict[str, Any]) -> dict[str, list[tuple[int, int]]]:
        """Bundle path -> (offset, length) of each tensor's bytes in that payload file (``files``: the payload's
        paths -> bytes or a file), where the bundle cuts its delta-update chunks (``bundle.chunking``); files left out
        are cut by content alone."""
        return {}

    # -- the report ---------------------------------------------------------------------------------------
    @property
    def hatch(self) -> str | None:
        """How the report's bars tell this target's estimated figures from measured ones."""
        return "//" if self.latency_is_estimate else None
