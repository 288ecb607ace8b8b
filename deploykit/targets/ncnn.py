"""NCNN: Tencent's runtime for Android, iOS and embedded apps (no dependency, Vulkan GPU, small binary).

An artifact is a folder ``NAME.VARIANT.ncnn/`` holding ``model.ncnn.param`` (the graph, text) and
``model.ncnn.bin`` (the weights), written by pnnx from a PyTorch module or an ONNX graph
(``converters.torch_ncnn``, ``converters.onnx_ncnn``). Blobs carry the source's tensor names, Input layers the
input's shape without the batch axis (NCNN has none). ``fp16`` is the fp32 pair with its weights stored as fp16
(layers kept float32 when the all-fp16 pair fails its profile); it is run with fp16 storage and arithmetic on, as
an app runs it. NCNN's int8 needs ncnn's own tools, which no wheel
ships (``quantize.schemes.UNAVAILABLE``).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from deploykit.image_io.feeds import PixelFeed
from deploykit.targets.base import FP32, BundleSlot, Made, Payload, Target, source_preparation_records

# Minimum OS versions, each decision with its reason:
# - Android API 24: ncnn's CPU-only Android libraries build for android-21, its Vulkan ones need the platform's
#   libvulkan, which Android has from API 24 (7.0); the integration code links ncnn-android-vulkan and falls back
#   to the CPU at run time when a device has no Vulkan driver. A higher --min-android-api is kept.
# - iOS 13.0: the floor of the MoltenVK-based Vulkan xcframework the integration code links (ncnn-apple-vulkan);
#   a CPU-only ncnn.xcframework runs on older releases, but deploykit declares one floor per bundle.
MIN_ANDROID_API = 24
MIN_IOS = "13.0"
BUNDLE_PARAM, BUNDLE_BIN = "model/model.ncnn.param", "model/model.ncnn.bin"


class Ncnn(Target):
    name = "ncnn"
    title = "NCNN"
    suffix = ".ncnn"
    also_reads = (".param",)
    sources = ("torch", "onnx")
    tool_packages = ("pnnx", "ncnn")
    bundle_model = BUNDLE_PARAM
    variant_prefix = "ncnn-"
    derives_from_fp32 = True  # fp16 is written from the fp32 pair (quantize.fp16_ncnn)
    plot_title, plot_colour, plot_marker = "NCNN", "#c05621", "D"
    # The app normalizes (ncnn's Mat::from_pixels_resize + substract_mean_normalize, as the bundle's C++ does): the
    # pair takes the source's float tensor and --image-input declares the pixels behind it (float32 only).
    pixel_feed = PixelFeed("ncnn", "tensor")

    def check_images(self, images) -> None:
        from deploykit.core.errors import UsageError

        if images and images.names and images.dtype.lower() != "float32":  # images: image_io.spec.ImageInputOptions
            raise UsageError(f"--to ncnn takes image input {', '.join(images.names)} as the normalized float32 tensor: NCNN apps "
                             "normalize pixels themselves (Mat::from_pixels_resize + substract_mean_normalize, in the "
                             "bundle's C++), so the graph gets no uint8 preamble", hint="add --image-input-dtype float32")

    def check_source(self, model) -> None:
        super().check_source(model)
        from deploykit.converters.ncnn_common import check_source

        check_source(model, "--to ncnn")

    # -- making ---------------------------------------------------------------------------------------------
    def make(self, model, scheme, path, options, workspace, context) -> Made:
        """fp32 through the path's ladder; fp16 written from the fp32 pair (``quantize.fp16_ncnn``), with the
        layers the fp16 rescue picks kept in float32 when the all-fp16 pair fails its profile."""
        from deploykit.converters import path_for
        from deploykit.converters.ncnn_common import recorded_blobs
        from deploykit.formats import ncnn_facade

        if scheme == "fp32":
            converted = path_for(model.framework, self.name)(model, path, options, workspace)
            blobs = recorded_blobs(model)
            names = {"name": "ncnn_blob_names", "stage": "artifact", "by": "deploykit", "count": len(blobs),
                     "items": [f"{blob} -> {name}" for blob, name in blobs.items()]}
            records = tuple(source_preparation_records(model, workspace) + [names])
            workspace.products["ncnn-fp32"] = (converted.path, converted.converter, records)
            quantization = {**FP32, "runtime_options": {"use_fp16_storage": False, "use_fp16_packed": False,
                                                        "use_fp16_arithmetic": False}, "ncnn": ncnn_facade.version()}
            return Made(converted.path, converted.converter, quantization, records, converted.attempts)
        from deploykit.quantize.fp16_ncnn import NcnnFp16Estimate, spans_of, write_fp16
        from deploykit.quantize.fp16_rescue import rescue_fp16

        base, label, records = workspace.products["ncnn-fp32"]
        spans = spans_of(base)
        if spans is None:  # a layer whose weights deploykit cannot walk: pnnx writes the fp16 pair itself
            converted = path_for(model.framework, self.name)(model, path, replace(options, ncnn_fp16=True), workspace)
            record = {"scheme": "fp16", "weights": "float16", "activations": "float16", "engine": "pnnx fp16=1",
                      "runtime_options": {"use_fp16_storage": True, "use_fp16_packed": True, "use_fp16_arithmetic": True}}
            return Made(converted.path, converted.converter, record, records, converted.attempts)
        record = write_fp16(base, path, spans=spans)

        def remake(kept, out):
            write_fp16(base, out, kept, spans)

        rescued = rescue_fp16(self.name, path, base, remake, workspace, f"{label} + fp16 weights", estimator=NcnnFp16Estimate)
        if rescued.kept:
            record = {**record, "float32_layers": list(rescued.kept)}
        if rescued.mixed is not None:
            record = {**record, "mixed_precision": rescued.mixed}
        return Made(path, f"{label} + fp16 weights", record, records, rescued.attempts)

    def finish(self, path, model) -> dict | None:
        """An NCNN pair carries no metadata: labels travel in the bundle's labels.txt and manifest."""
        if model.classifier is None:
            return None
        return {**model.classifier.to_json(), "carried_as": "bundle labels.txt (an NCNN pair holds no metadata)"}

    def interface(self, path, model, workspace):
        """The source's tensors under their NCNN blob names (read back from the .param), layers by type."""
        from deploykit.core.errors import ConversionError
        from deploykit.formats.ncnn import pair, param

        graph = param.read(pair.files(path)[0])
        specs = []
        for blobs, tensors in ((graph.input_blobs, model.inputs), (graph.output_blobs, model.outputs)):
            wanted = [param.blob_name(t.name) for t in tensors]
            if sorted(blobs) != sorted(wanted):
                raise ConversionError(f"{path}: the NCNN blobs {list(blobs)} are not the source's tensors {wanted}")
            specs.append(tuple(replace(t, name=name, original_name=t.name if name != t.name else None)
                               for t, name in zip(tensors, wanted)))
        return specs[0], specs[1], graph.histogram()

    def graph_check(self, path, workspace):
        """What matters for an NCNN pair is which layers have no Vulkan implementation: the check lists them."""
        from deploykit.passes.check import GraphReport

        return GraphReport(notes=tuple(_vulkan_notes(path)))

    def compatibility(self, path, workspace=None) -> dict:
        """The ``vulkan`` accelerator: layers whose type ncnn's registry says has no Vulkan implementation run on
        the CPU when the app turns the GPU on (ncnn splits the graph there and copies blobs between them)."""
        from deploykit.formats import ncnn_facade
        from deploykit.formats.ncnn import pair, param

        histogram = param.read(pair.files(path)[0]).histogram()
        support = ncnn_facade.vulkan_support(sorted(histogram))
        version = ncnn_facade.version()
        refused = [{"op": kind, "count": histogram[kind],
                    "reason": f"no Vulkan implementation in ncnn {version}: runs on the CPU when the GPU is used"}
                   for kind, on in support.items() if not on]
        total = sum(histogram.values())
        return {"static": False, "checked_with": f"ncnn {version} layer registry (Layer::support_vulkan)",
                "accelerators": [{"name": "vulkan", "title": "ncnn Vulkan", "ops": total,
                                  "supported": total - sum(r["count"] for r in refused), "refused": refused}],
                "notes": ["no GPU on the checking machine: the registry, not a run, says which layers have Vulkan code"]}

    # -- running ----------------------------------------------------------------------------------------------
    def runner(self, path, **options):
        """The ncnn runtime in this process, fp16 arithmetic on when the .bin stores fp16 weights."""
        from deploykit.formats.ncnn import pair, weights
        from deploykit.runners.ncnn_runner import NcnnRunner

        options.setdefault("fp16", weights.storage(pair.files(path)[1]) == "float16")
        return NcnnRunner(path, **options)

    def latency(self, artifact, path) -> dict:
        from deploykit.runners.latency import RUNS, WARMUP, why
        from deploykit.runners.ncnn_bench import time_in_process

        try:
            return {"source": "ncnn", **time_in_process(path, threads=1, warmup=WARMUP, runs=RUNS)}
        except Exception as exc:  # noqa: BLE001  (a figure that cannot be had is recorded, never fatal)
            return {"source": "ncnn", "unavailable": f"ncnn could not run it: {why(exc)}"}

    def bench(self, path, *, threads, warmup, runs, xnnpack: bool = True):
        from deploykit.runners.ncnn_bench import bench

        return bench(path, threads=threads, warmup=warmup, runs=runs)

    def inspect(self, path):
        from deploykit.inspection import ncnn_graph

        return ncnn_graph.inspect(Path(path))

    # -- bundles ----------------------------------------------------------------------------------------------
    def bundle_slots(self, artifact):
        return (BundleSlot("android", "ncnn", "ncnn"), BundleSlot("ios", "ncnn", "ncnn"))

    def bundle_payload(self, path, artifact, slot, scratch, meta) -> Payload:
        """The pair goes in as converted (its hash is the one the record checked); labels to assets/labels.txt."""
        from deploykit.formats.ncnn import pair

        param_file, bin_file = pair.files(path)
        return Payload({BUNDLE_PARAM: param_file.read_bytes(), BUNDLE_BIN: bin_file},
                       compatibility(artifact, slot.platform, meta.min_android_api, dict(meta.tool_versions), path))

    def weight_spans(self, files) -> dict[str, list[tuple[int, int]]]:
        """Every blob of the .bin, walked with the .param's layers as ncnn reads them."""
        from deploykit.core.errors import InputError
        from deploykit.formats.ncnn import param, weights

        if BUNDLE_PARAM not in files or BUNDLE_BIN not in files:
            return {}
        text, data = (s if isinstance(s, (bytes, bytearray)) else Path(s).read_bytes() for s in (files[BUNDLE_PARAM], files[BUNDLE_BIN]))
        try:
            graph = param.parse(text.decode("utf-8"))
        except (InputError, UnicodeDecodeError):
            return {}
        return {BUNDLE_BIN: weights.blob_spans(graph, data)}


TARGET = Ncnn()


def _vulkan_notes(path) -> list[str]:
    from deploykit.formats import ncnn_facade
    from deploykit.formats.ncnn import pair, param

    histogram = param.read(pair.files(path)[0]).histogram()
    support = ncnn_facade.vulkan_support(sorted(histogram))
    cpu_only = [f"{kind} x{histogram[kind]}" for kind, on in support.items() if on is False]
    if not cpu_only:
        return [f"every layer type ({len(histogram)}) has a Vulkan implementation in ncnn {ncnn_facade.version()}"]
    return [f"{len(cpu_only)} layer type(s) have no Vulkan implementation in ncnn {ncnn_facade.version()} and run on the "
            f"CPU when the GPU is used: {', '.join(cpu_only)}"]


def compatibility(artifact, platform: str, min_android_api: int, tool_versions: dict[str, str], path) -> dict:
    """What an NCNN bundle declares: minimum OS, the ncnn that wrote and checked it, Vulkan or CPU, fp16 storage."""
    from deploykit.formats import ncnn_facade
    from deploykit.formats.ncnn import pair, param

    version = tool_versions.get("ncnn") or ncnn_facade.version()
    histogram = param.read(pair.files(path)[0]).histogram()
    support = ncnn_facade.vulkan_support(sorted(histogram))
    fp16 = (artifact.quantization or {}).get("weights") == "float16"
    runtime = {"name": "ncnn", "min_version": version, "compute": "vulkan" if all(support.values()) else "vulkan+cpu",
               "fp16_storage": fp16, "cpu_only_layers": sorted(k for k, on in support.items() if on is False)}
    return {"min_ios": MIN_IOS if platform == "ios" else None,
            "min_android_api": max(min_android_api, MIN_ANDROID_API) if platform == "android" else None,
            "min_runtime": version, "deployment_target": None, "runtime": runtime}
