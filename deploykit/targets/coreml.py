"""Core ML: ML Program packages (``.mlpackage``) for iOS, checked on Linux by deploykit's numpy evaluator.

``fp32`` is converted at FLOAT32; ``fp16`` and every compressed scheme start from one FLOAT16 conversion
kept in the workspace (fp16 weights and compute, the variance of written-out normalizations in fp32:
``converters.coreml_common.FP32_VARIANCE_OPS``; their records list the op types the base computes in fp32
as ``fp32_ops``). An fp16 base that fails its profile is made again with layers in float32, then as fp16
weights with float32 compute (``quantize.fp16_rescue``). Labels make a Core ML classifier; pixel inputs
are Core ML images. Saved packages are made byte-reproducible.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from deploykit.image_io.feeds import PixelFeed
from deploykit.targets.base import FP32, BundleSlot, Made, Payload, Target, source_preparation_records

# Schemes whose failing variant is repaired by keeping weights in fp16 (fp16 itself has fp16_rescue). Each try is a
# coremltools compression and a check on the evaluator: seconds on small models, a minute or two on PP-OCR-sized ones.
REPAIRABLE = ("int8-weights", "int4", "lut8", "lut6", "lut4")


class CoreML(Target):
    name = "coreml"
    title = "Core ML"
    suffix = ".mlpackage"
    also_reads = (".mlmodel",)
    tool_packages = ("coremltools",)
    bundle_model = "model/model.mlpackage"
    plot_title, plot_colour, plot_marker = "Core ML", "#c05621", "s"
    pixel_feed = PixelFeed("coreml", "image")
    classifier_features = True
    latency_is_estimate = True
    timed_here = False  # Core ML runs only on Apple hardware

    # -- making ---------------------------------------------------------------------------------------------
    def make(self, model, scheme, path, options, workspace, context) -> Made:
        if scheme == "fp32":
            converted, records = _convert(model, path, options, workspace, context, "fp32")
            workspace.products["coreml-fp32-artifact"] = _plain_copy(converted.path, model, workspace)
            return Made(converted.path, converted.converter, {**FP32, "compute": "float32"}, tuple(records),
                        converted.attempts)
        base, label, records, attempts, fp32 = _fp16_base(model, options, workspace, context)
        if scheme == "fp16":
            shutil.copytree(base, path)
            return Made(path, label, {"scheme": "fp16", "weights": "float16", "activations": "float16", **fp32},
                        tuple(records), attempts)
        from deploykit.converters.coreml_common import fp32_ops
        from deploykit.quantize.coreml import compress_coreml
        from deploykit.quantize.layerwise.bias_correction import corrected

        if scheme == "int8":  # W8A8: activation ranges from the evaluator on --calibration (quantize.coreml_w8a8)
            from deploykit.quantize.coreml_w8a8 import quantize_w8a8

            record = quantize_w8a8(base, path, context.quantize, context.calibration, model.inputs)
        elif scheme == "auto":  # per-layer choices within a budget, against the fp32 artifact (quantize.layerwise)
            from deploykit.quantize.layerwise.auto import run_auto

            record = run_auto(self.name, base, path, workspace, context.quantize, ios18=context.quantize.lut_grouped,
                              judged_against=workspace.products.get("coreml-fp32-artifact"))
        elif scheme.startswith("sparse"):  # pruning, alone or with lut4 / int8 non-zeros (quantize.sparse_coreml)
            from deploykit.quantize.sparse_coreml import compress_sparse_coreml

            record = compress_sparse_coreml(base, path, scheme, context.quantize)
        else:
            record = compress_coreml(base, path, scheme, context.quantize)
            if scheme in REPAIRABLE:  # a failing variant made again with the fewest weights in fp16 (quantize.layerwise)
                from deploykit.quantize.layerwise.repair import repair

                def remake_float(kept, out):
                    return compress_coreml(base, out, scheme, context.quantize, float_weights=kept)

                # corrected before the check repair starts with: a corrected variant may need no weight in fp16
                record = corrected(self.name, scheme, base, path, record, workspace, context.quantize)
                repaired, tried = repair(self.name, scheme, base, path, workspace, f"{label} + {record['engine']}",
                                         remake_float)
                record, attempts = repaired or record, tuple(attempts) + tried
        if "bias_correction" not in record:  # every other compressed scheme, and a repaired variant
            record = corrected(self.name, scheme, base, path, record, workspace, context.quantize)
        return Made(path, f"{label} + {record['engine']}", {**record, **fp32, "fp32_ops": fp32_ops(path)},
                    tuple(records), attempts)

    def layerwise_reference(self, workspace):
        made = workspace.products.get("coreml-fp16")
        return made[0] if made else None

    def finish(self, path, model) -> dict | None:
        """Labels (a classifier, or a detector's label metadata), then a byte-reproducible package."""
        from deploykit.formats.coreml.reproducible import make_reproducible

        carried = None
        classifier = model.classifier
        if classifier is not None and not classifier.is_classifier:
            from deploykit.labels.coreml_classifier import label_metadata

            label_metadata(path, classifier)
            carried = {**classifier.to_json(), "carried_as": "Core ML metadata: com.deploykit.labels and "
                                                             "com.deploykit.labels_output (axis of the class scores)"}
        elif classifier is not None:
            from deploykit.labels.coreml_classifier import make_classifier

            make_classifier(path, classifier, model.images)
            carried = {**classifier.to_json(), "carried_as": "Core ML classifier (classLabel, classLabel_probs)"}
        make_reproducible(path)
        return carried

    def attach_detector(self, path, head, options, labels) -> dict:
        """The decode and Core ML's NonMaximumSuppression model, in a pipeline Vision reads as recognized objects
        (``detection.coreml_postprocess``); the package is made byte-reproducible again."""
        from deploykit.detection.coreml_postprocess import append_postprocess
        from deploykit.detection.record import detector_block
        from deploykit.formats.coreml.reproducible import make_reproducible

        description = append_postprocess(Path(path), head, options, labels)
        make_reproducible(Path(path))
        return detector_block(head, options, labels, "vision", description)

    def interface(self, path, model, workspace):
        from deploykit.formats.coreml import spec as coreml_spec

        spec = coreml_spec.load_spec(path)
        inputs, outputs = coreml_spec.signature(spec)
        return inputs, outputs, coreml_spec.op_histogram(spec)

    def graph_check(self, path, workspace):
        from deploykit.passes.check_coreml import check_coreml

        return check_coreml(path)

    def deployment_target(self, options) -> str | None:
        return options.coreml_target

    def variant_packages(self, variant: str) -> tuple[str, ...]:
        return ("scikit-learn",) if variant.startswith("lut") else ()  # k-means palettization

    # -- running ----------------------------------------------------------------------------------------------
    def runner(self, path, **options):
        from deploykit.runners.coreml_runner import CoreMLRunner

        return CoreMLRunner(path, **options)

    def latency(self, artifact, path) -> dict:
        """No Core ML runtime off Apple hardware: the op-count estimate (``runners.coreml_cost``), labelled so."""
        from deploykit.runners import coreml_cost
        from deploykit.runners.latency import why

        try:
            return coreml_cost.estimate(path)
        except Exception as exc:  # noqa: BLE001  (an op the evaluator cannot load: no estimate, say why)
            return {"source": coreml_cost.SOURCE, "label": coreml_cost.LABEL, "unavailable": why(exc)}

    def slower_reason(self, artifact, path, fp32, fp32_path) -> str:
        """Both figures are the cost model's: which of its three terms (MACs, bytes, ops) the extra time is."""
        from deploykit.runners import coreml_cost

        mine, base = artifact.latency or {}, fp32.latency or {}
        extra = {"its extra multiply-accumulates": (mine.get("macs", 0) - base.get("macs", 0)) / coreml_cost.MAC_RATE,
                 "its extra bytes": (mine.get("bytes", 0) - base.get("bytes", 0)) / coreml_cost.MEMORY_RATE,
                 "its extra ops": (mine.get("ops", 0) - base.get("ops", 0)) * coreml_cost.OP_OVERHEAD_S}
        most = max(extra, key=extra.get)
        return (f"an estimate, not a measurement (no Core ML runtime on this machine): the op-count cost model counts "
                f"{mine.get('ops')} ops and {mine.get('bytes', 0) / 1e6:.1f} MB read and written against fp32's "
                f"{base.get('ops')} and {base.get('bytes', 0) / 1e6:.1f} MB: {most} add {extra[most] * 1000:.2f} ms. A device's "
                "Core ML may run the variant's ops differently")

    def bench(self, path, *, threads, warmup, runs, xnnpack: bool = True):
        from deploykit.core.errors import UsageError

        raise UsageError(f"{path}: bench runs TFLite artifacts with LiteRT; Core ML runs only on Apple devices")

    def inspect(self, path):
        from deploykit.inspection import coreml_graph

        return coreml_graph.inspect(Path(path))

    def compatibility(self, path, workspace=None) -> dict:
        """Static off macOS: the ML Program's ops and data types (Core ML's compute plan needs Apple's framework)."""
        from deploykit.inspection.compat_coreml import compatibility

        return compatibility(Path(path))

    def labelled_output(self, classifier: dict, outputs) -> str:
        if classifier.get("axis") is None:  # a Core ML classifier: its probability dictionary
            return classifier["probabilities_feature"]
        return super().labelled_output(classifier, outputs)

    # -- bundles ----------------------------------------------------------------------------------------------
    def bundle_slots(self, artifact):
        return (BundleSlot("ios", "coreml", "mlpackage"),)

    def bundle_payload(self, path, artifact, slot, scratch, meta) -> Payload:
        """A copy of the package with the metadata Xcode's model viewer and ``MLModel.modelDescription`` show."""
        from deploykit.core.hashing import tree_files
        from deploykit.formats.coreml import metadata

        package = scratch / "model.mlpackage"
        metadata.copy_package(path, package)
        metadata.embed(package, metadata.CoremlMetadata(**meta.description_fields(), sequence=meta.sequence,
                                                        variant=artifact.variant))
        spec_version = metadata.read_spec(package).specificationVersion
        target = artifact.deployment_target or "iOS15"
        digits = "".join(c for c in target if c.isdigit())
        compat = {"min_ios": f"{digits}.0" if target.startswith("iOS") and digits else None, "min_android_api": None,
                  "min_runtime": f"coreml-spec-{spec_version}", "deployment_target": target}
        files = {f"{self.bundle_model}/{p.relative_to(package).as_posix()}": p for p in tree_files(package)}
        return Payload(files, compat, ("coreml:description.metadata", "coreml:feature descriptions", "coreml:com.deploykit.*"))

    def weight_spans(self, files) -> dict[str, list[tuple[int, int]]]:
        """Every blob of the package's weight files (the program's protobuf is cut by content)."""
        from deploykit.formats.coreml.package import blob_spans

        return {p: blob_spans(src if isinstance(src, (bytes, bytearray)) else Path(src).read_bytes())
                for p, src in files.items() if p.startswith(self.bundle_model + "/") and "/weights/" in p and p.endswith(".bin")}


TARGET = CoreML()


def _plain_copy(path: Path, model, workspace) -> Path:
    """What an fp16 estimate starts from: the fp32 program as converted. With labels, the artifact itself is
    made a classifier afterwards (``finish``), whose dictionary output no estimate can score."""
    if model.classifier is None or not model.classifier.is_classifier:
        return path
    copy = workspace.root / "coreml-fp32-plain" / path.name
    copy.parent.mkdir()
    shutil.copytree(path, copy)
    return copy


def _fp16_base(model, options, workspace, context):
    """The FLOAT16 conversion every fp16-based Core ML variant starts from, and its fp32 ops: the op types
    the program declares fp32 (``coreml_common.fp32_ops``), which is what the evaluator computes them in."""
    key = "coreml-fp16"
    if key not in workspace.products:
        from deploykit.converters.coreml_common import FP32_VARIANCE_OPS, fp32_ops

        base = workspace.root / "coreml-fp16" / "base.mlpackage"
        base.parent.mkdir()
        converted, records = _convert(model, base, options, workspace, context, "fp16")
        attempts, mixed = converted.attempts, {}
        fp32_artifact = workspace.products.get("coreml-fp32-artifact")
        if fp32_artifact is not None:
            attempts, mixed = _mixed(model, converted, fp32_artifact, options, workspace, context)
        fp32 = {"fp32_ops": fp32_ops(converted.path), "fp32_rule": FP32_VARIANCE_OPS, **mixed}
        workspace.products[key] = (converted.path, converted.converter, records, attempts, fp32)
    return workspace.products[key]


def _mixed(model, converted, fp32_artifact: Path, options, workspace, context):
    """(attempts, record entries): the fp16 base, made again with layers in float32 if it fails (fp16_rescue)."""
    from deploykit.converters.coreml_common import fp32_layers
    from deploykit.quantize.fp16_estimate_coreml import CoreMLFp16Estimate
    from deploykit.quantize.fp16_rescue import rescue_fp16

    def remake(kept, out):
        remade, _ = _convert(model, out, dataclasses.replace(options, coreml_fp32_ops=tuple(kept)), workspace,
                             context, "fp16")
        return remade.parity  # the ladder checked it as fp16 already

    rescued = rescue_fp16(TARGET.name, converted.path, fp32_artifact, remake, workspace, converted.converter,
                          report=converted.parity, estimator=CoreMLFp16Estimate)
    if rescued.mixed is None:
        return converted.attempts, {}
    attempts, record = converted.attempts + rescued.attempts[1:], {"mixed_precision": rescued.mixed}
    if rescued.mixed["verdict"] != "passed":
        weights = _fp16_weights(converted, fp32_artifact, workspace)
        attempts += weights.attempts[1:]
        if weights.mixed is not None:
            record["mixed_precision"] = {**weights.mixed, "compute_fp16": rescued.mixed}
        if weights.made_as is not None:
            return attempts, {**record, "activations": "float32", "compute": "float32 (fp16 weights cast at load)",
                              "fp32_weights": list(weights.kept)}
    return attempts, {**record, "fp32_layers": fp32_layers(converted.path)}


def _fp16_weights(converted, fp32_artifact: Path, workspace):
    """The last Core ML fp16 candidate: fp16 weights, float32 compute (``quantize.coreml_fp16_weights``)."""
    from deploykit.quantize.coreml_fp16_weights import write_fp16_weights
    from deploykit.quantize.fp16_estimate_coreml_weights import CoreMLWeightsEstimate
    from deploykit.quantize.fp16_rescue import rescue_fp16

    def remake(kept, out):
        write_fp16_weights(fp32_artifact, out, tuple(kept))

    return rescue_fp16(TARGET.name, converted.path, fp32_artifact, remake, workspace,
                       f"{converted.converter} + fp16 weights", report=converted.parity, estimator=CoreMLWeightsEstimate)


def _convert(model, path: Path, options, workspace, context, precision: str):
    from deploykit.converters import path_for
    from deploykit.passes.apply import clear_coreml_logs, coreml_pipeline, coreml_records

    pipeline, names = coreml_pipeline(model.framework, context.selection)
    clear_coreml_logs()
    options = dataclasses.replace(options, coreml_precision=precision, coreml_pipeline=pipeline)
    converted = path_for(model.framework, TARGET.name)(model, path, options, workspace)
    if model.images:
        from deploykit.image_io.coreml_image import declare_image_inputs

        declare_image_inputs(converted.path, model.images)
    return converted, source_preparation_records(model, workspace) + coreml_records(names)
