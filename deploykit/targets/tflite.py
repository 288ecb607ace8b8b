"""TFLite (LiteRT): ``.tflite`` flatbuffers for Android, run by LiteRT with XNNPACK.

``fp32`` is the converter's output after the tflite-stage passes; every other scheme is ai-edge-quantizer
applied to that file (``quantize.tflite``), an fp16 that fails its profile made again with layers kept in
float32 (``quantize.fp16_rescue``). Labels travel in the TFLite metadata; pixel inputs are uint8 tensors.
"""

from __future__ import annotations

from pathlib import Path

from deploykit.image_io.feeds import PixelFeed
from deploykit.targets.base import FP32, BundleSlot, Made, Payload, Target, source_preparation_records

# Schemes whose failing variant is repaired by keeping layers in float: the integer ones (fp16 has its own search,
# fp16_rescue). A repair costs one conversion and one parity check per try, seconds on TFLite.
REPAIRABLE = ("int8", "int16x8", "int8-weights", "int4")


class TFLite(Target):
    name = "tflite"
    title = "TFLite (LiteRT)"
    suffix = ".tflite"
    tool_packages = ("ai-edge-litert",)
    bundle_model = "model/model.tflite"
    plot_title, plot_colour, plot_marker = "TFLite", "#2b6cb0", "o"
    pixel_feed = PixelFeed("tflite", "tensor")
    build_latency_runner = "litert"

    # -- making ---------------------------------------------------------------------------------------------
    def make(self, model, scheme, path, options, workspace, context) -> Made:
        from deploykit.converters import path_for
        from deploykit.passes.apply import apply_tflite_passes

        if scheme == "fp32":
            converted = path_for(model.framework, self.name)(model, path, options, workspace)
            records = source_preparation_records(model, workspace) + apply_tflite_passes(
                converted.path, model.framework, context.selection)
            workspace.products["tflite-fp32"] = (converted.path, converted.converter, records)
            return Made(converted.path, converted.converter, dict(FP32), tuple(records), converted.attempts)
        from deploykit.quantize.layerwise.bias_correction import corrected
        from deploykit.quantize.tflite import quantize_tflite

        base, label, records = workspace.products["tflite-fp32"]
        if scheme == "auto":  # per-layer choices within a budget (quantize.layerwise)
            from deploykit.quantize.layerwise.auto import run_auto

            record = run_auto(self.name, base, path, workspace, context.quantize)
            record = corrected(self.name, scheme, base, path, record, workspace, context.quantize)
            return Made(path, f"{label} + ai-edge-quantizer (per layer)", record, tuple(records))
        if scheme.startswith("sparse"):  # pruning, sparse-encoded or with int8 weights (quantize.sparse_tflite)
            from deploykit.quantize.sparse_tflite import sparse_tflite

            record = sparse_tflite(base, path, scheme, context.quantize, context.calibration, workspace.root)
            record = corrected(self.name, scheme, base, path, record, workspace, context.quantize)
            return Made(path, f"{label} + {record['engine']}", record, tuple(records))
        record = quantize_tflite(base, path, scheme, context.quantize, context.calibration)
        if scheme in REPAIRABLE:  # a failing variant made again with the fewest layers in float (quantize.layerwise)
            from deploykit.quantize.layerwise.repair import repair

            def remake_float(kept, out):
                return quantize_tflite(base, out, scheme, context.quantize, context.calibration, fp32_layers=kept)

            # corrected before the check repair starts with: a corrected variant may need no layer in float
            record = corrected(self.name, scheme, base, path, record, workspace, context.quantize)
            repaired, attempts = repair(self.name, scheme, base, path, workspace, f"{label} + ai-edge-quantizer", remake_float)
            if repaired:
                record = corrected(self.name, scheme, base, path, repaired, workspace, context.quantize)
            return Made(path, f"{label} + ai-edge-quantizer", record, tuple(records), attempts)
        if scheme != "fp16":
            return Made(path, f"{label} + ai-edge-quantizer", record, tuple(records))
        from deploykit.quantize.fp16_estimate_tflite import TFLiteFp16Estimate
        from deploykit.quantize.fp16_rescue import rescue_fp16

        remade = {}

        def remake(kept, out):
            remade[out] = quantize_tflite(base, out, scheme, context.quantize, context.calibration, fp32_layers=kept)

        rescued = rescue_fp16(self.name, path, base, remake, workspace, f"{label} + ai-edge-quantizer",
                              estimator=TFLiteFp16Estimate)
        if rescued.kept:
            record = remade[rescued.made_as]
        if rescued.mixed is not None:
            record = {**record, "mixed_precision": rescued.mixed}
        return Made(path, f"{label} + ai-edge-quantizer", record, tuple(records), rescued.attempts)

    def layerwise_reference(self, workspace):
        made = workspace.products.get("tflite-fp32")
        return made[0] if made else None

    def finish(self, path, model) -> dict | None:
        if model.classifier is None:
            return None
        from deploykit.labels.tflite_labels import embed_labels

        embed_labels(path, model.classifier, model)
        return {**model.classifier.to_json(), "softmax_added": False,
                "carried_as": "TFLite metadata: labels.txt associated with the output (TENSOR_AXIS_LABELS)"}

    def attach_detector(self, path, head, options, labels) -> dict:
        """The decode and NMS appended to the graph (``detection.tflite_postprocess``); the labels, which ``finish``
        put on the raw scores output, then go on ``detection_classes`` (the post-process drops the stale metadata)."""
        from deploykit.core.errors import InputError
        from deploykit.detection.outputs import TFLITE_OUTPUTS
        from deploykit.detection.record import detector_block
        from deploykit.detection.tflite_postprocess import append_postprocess

        if labels and len(labels) != head.classes:
            raise InputError(f"{len(labels)} labels for a detector of {head.classes} classes")
        path = Path(path)
        name = _described_name(path)
        description = append_postprocess(path, head, options)
        if labels:
            from deploykit.labels.tflite_labels import embed_detector_labels

            embed_detector_labels(path, labels, name, boxes=TFLITE_OUTPUTS[0], classes=TFLITE_OUTPUTS[1])
        return detector_block(head, options, labels, "tflite-four-outputs", description)

    def interface(self, path, model, workspace):
        """``dynamic``: a dimension resizable at run time is recorded as None (for flexible inputs), and the
        artifact's inputs carry the sizes the source declared; otherwise the allocated size is (a
        SavedModel's dynamic batch is 1, as apps run it)."""
        from deploykit.core.flexible import carry, has_flexible
        from deploykit.formats.tflite import signature

        interpreter = signature.open_interpreter(str(path))
        inputs, outputs = signature.signature(interpreter, dynamic=has_flexible(model.inputs))
        return carry(inputs, model.inputs), outputs, signature.op_histogram(interpreter)

    def graph_check(self, path, workspace):
        from deploykit.passes.check import check_tflite

        return check_tflite(Path(path).read_bytes())

    def needs_select_ops(self, path) -> tuple[str, ...]:
        from deploykit.formats.tflite.flex import flex_ops

        return tuple(flex_ops(path))

    def variant_packages(self, variant: str) -> tuple[str, ...]:
        return ("ai-edge-quantizer",) if variant != "fp32" else ()

    # -- running ----------------------------------------------------------------------------------------------
    def runner(self, path, **options):
        from deploykit.runners.litert_runner import LiteRTRunner

        return LiteRTRunner(path, **options)

    def latency(self, artifact, path) -> dict:
        """A short ``runners.litert_bench`` timing with LiteRT (XNNPACK, one thread), in this process since
        convert has LiteRT loaded already."""
        if artifact.select_tf_ops:
            return {"source": "litert", "unavailable": "needs Select-TF ops, which stock LiteRT cannot run"}
        from deploykit.core.noise import capture_output
        from deploykit.runners.latency import RUNS, WARMUP, why
        from deploykit.runners.litert_bench import time_in_process

        try:
            with capture_output():  # LiteRT announces its delegate on stderr
                return {"source": "litert", **time_in_process(path, threads=1, warmup=WARMUP, runs=RUNS)}
        except Exception as exc:  # noqa: BLE001  (LiteRT raises RuntimeError / ValueError for a model it cannot run)
            return {"source": "litert", "unavailable": f"LiteRT could not run it: {why(exc)}"}

    def slower_reason(self, artifact, path, fp32, fp32_path) -> str:
        """What XNNPACK takes of each file (formats.tflite.delegation): ops it leaves to LiteRT's builtin kernels
        are what made int8-weights and int4 slower than fp32 when measured (docs/quantization.md)."""
        from deploykit.core.noise import capture_output
        from deploykit.formats.tflite.delegation import delegation, explain
        from deploykit.runners.latency import why

        try:
            with capture_output():  # LiteRT announces its delegate on stderr
                mine, base = delegation(path), delegation(fp32_path)
        except Exception as exc:  # noqa: BLE001  (an analysis that fails costs only the explanation)
            return f"not analysed: {why(exc)}"
        if mine.hybrid and explain(mine, base):  # measured on MobileNetV2: then all 65 ops delegated, 2.5x fp32's speed
            return f"{explain(mine, base)}. Keeping those layers float (--keep-float with their names) lets XNNPACK take them"
        return explain(mine, base) or (
            f"XNNPACK takes as much of it as of fp32 ({mine.delegated} of {mine.ops} ops, {mine.partitions} piece(s)), "
            f"so the difference is inside its kernels; likely its {artifact.variant} kernels are slower than its float32 "
            "ones on this CPU")

    def bench(self, path, *, threads, warmup, runs, xnnpack: bool = True):
        from deploykit.runners.litert_bench import bench

        return bench(path, threads=threads, warmup=warmup, runs=runs, xnnpack=xnnpack)

    def inspect(self, path):
        from deploykit.inspection import tflite_graph

        return tflite_graph.inspect(Path(path))

    def compatibility(self, path, workspace=None) -> dict:
        """LiteRT's GPU delegate (the model analyzer's per-op check) and XNNPACK (the delegate applied)."""
        from deploykit.inspection.compat_tflite import compatibility

        return compatibility(Path(path))

    # -- bundles ----------------------------------------------------------------------------------------------
    def bundle_slots(self, artifact):
        return (BundleSlot("android", "litert", "tflite"),)

    def bundle_payload(self, path, artifact, slot, scratch, meta) -> Payload:
        """The metadata embedded in a copy of the file (both places a LiteRT app reads it), checked to run
        exactly as the recorded artifact does."""
        from deploykit.core.errors import ConversionError
        from deploykit.core.noise import capture_output
        from deploykit.formats.tflite import metadata
        from deploykit.formats.tflite.metadata_read import runs_identically

        data = Path(path).read_bytes()
        compat = {"min_ios": None, "min_android_api": meta.min_android_api,
                  "min_runtime": metadata.min_runtime_version(data), "deployment_target": artifact.deployment_target}
        if artifact.select_tf_ops:  # written with --allow-flex: the app must link the Select-TF ops library
            compat["select_tf_ops"] = list(artifact.select_tf_ops)
        embedded_meta = metadata.TfliteMetadata(**meta.description_fields(),
                                                extra={"sequence": meta.sequence, "variant": artifact.variant})
        try:
            embedded = metadata.embed(data, embedded_meta)
        except metadata.NotEmbeddable as exc:
            return Payload({self.bundle_model: data}, compat, (f"skipped: {exc}",))
        with capture_output():  # LiteRT prints delegate banners straight to fd 2
            same = runs_identically(data, embedded)
        if same is False:
            raise ConversionError("embedding TFLite metadata changed the model's outputs; refusing to bundle it")
        notes = ["tflite:TFLITE_METADATA", "tflite:deploykit"] + (["tflite:labels.txt"] if meta.labels else [])
        notes.append("runtime check: identical outputs" if same else "runtime check: skipped (model does not load here)")
        return Payload({self.bundle_model: embedded}, compat, tuple(notes))

    def weight_spans(self, files) -> dict[str, list[tuple[int, int]]]:
        """Every buffer of the flatbuffer."""
        from deploykit.formats.tflite.layout import buffer_spans

        return {self.bundle_model: buffer_spans(_data(files[self.bundle_model]))} if self.bundle_model in files else {}


def _data(source) -> bytes:
    return source if isinstance(source, (bytes, bytearray)) else Path(source).read_bytes()


def _described_name(path: Path) -> str:
    """The model name the artifact's metadata gives (``finish`` wrote it with the labels), else the file's stem."""
    from deploykit.formats.tflite.metadata_read import read_metadata

    described = read_metadata(path.read_bytes()).get("model_metadata") or {}
    return described.get("name") or path.name.split(".")[0]


TARGET = TFLite()
