"""A detector's part of a bundle: the manifest's ``detector`` block and what the templates render from it.

The block is the record's (``detection.record.detector_block``) without what only deploykit reads: the fitted
head (the source's raw outputs, strides, bins: gone once the decode is inside the model), how the post-process
is computed, and the source-side options of ``boxes-scores`` (which outputs held the raw boxes, in which format).
An app needs the convention and its output names, how a box is written and in which frame, the input size, the
classes and labels, and the thresholds the model applied; the image preprocessing to undo is the input's own
``preprocessing`` block in ``io``.

The generated helpers (``DeployKitDetector`` in Swift and Kotlin) read the model's detections and map them to
the picture's pixels exactly as ``deploykit predict`` does (``detection.frame``).
"""

from __future__ import annotations

from typing import Any

from deploykit.core.errors import UsageError

APP_KEYS = ("preset", "convention", "outputs", "box_format", "coordinates", "input_size", "classes", "labels", "iou",
            "score_threshold", "max_detections", "class_agnostic")
# The integration file each platform's convention is read by (ExecuTorch bundles get none: no detector made for it).
FILES = {("android", "tflite-four-outputs"): ("integration/kotlin/DeployKitDetector.kt", "kotlin/DeployKitDetector.kt.tmpl"),
         ("ios", "vision"): ("integration/swift/DeployKitDetector.swift", "swift/DeployKitDetector.swift.tmpl")}
SECTIONS = {"android": "kotlin/DETECTOR.md.tmpl", "ios": "swift/DETECTOR.md.tmpl"}


def bundle_labels(record: dict, given, path_name: str):
    """The detector's labels: the record's (``convert --labels``), else ``bundle --labels``; both must agree."""
    recorded = tuple(record["labels"]) if record.get("labels") else None
    if given is not None and recorded is not None and tuple(given) != recorded:
        raise UsageError(f"{path_name} was converted with other labels ({len(recorded)}); the detector block carries "
                         "them", hint="leave out --labels when bundling it")
    labels = recorded or (tuple(given) if given is not None else None)
    if labels is not None and len(labels) != record["classes"]:
        raise UsageError(f"--labels has {len(labels)} labels; the detector {path_name} has {record['classes']} classes")
    return labels


def manifest_block(record: dict, labels) -> dict[str, Any]:
    block = {key: record[key] for key in APP_KEYS if key in record}
    block["labels"] = list(labels) if labels else None
    return block


def described_outputs(outputs, block: dict, labels) -> tuple[dict, ...]:
    """The outputs as the artifact's embedded metadata is to describe them (``BundleMeta``, not the manifest): in
    TFLite's convention the boxes as boxes and the labels on the class ids, as Task Library's ObjectDetector reads
    them and as the conversion embedded them (``labels.tflite_labels.embed_detector_labels``), so the bundle's
    rewritten metadata keeps them."""
    if block["convention"] != "tflite-four-outputs":
        return tuple(outputs)
    boxes, classes = block["outputs"]["boxes"], block["outputs"]["classes"]
    described = []
    for tensor in outputs:
        if tensor["name"] == boxes:
            tensor = dict(tensor, content="boxes")
        elif tensor["name"] == classes and labels:
            tensor = dict(tensor, labels={"path": "labels.txt", "count": len(labels), "of": "values"})
        described.append(tensor)
    return tuple(described)


def detector_file(manifest: dict[str, Any]) -> tuple[str, str] | None:
    """(archive path, template) of the helper that reads this bundle's detections, or None."""
    block = manifest.get("detector")
    if block is None or manifest["format"] == "executorch":
        return None
    return FILES.get((manifest["platform"], block["convention"]))


def detector_context(manifest: dict[str, Any], lit) -> dict[str, str]:
    """The placeholders of the detector templates (an empty section for other models). ``lit``: the templates'
    string literal of a language (``templates._lit``)."""
    block = manifest.get("detector")
    if block is None or detector_file(manifest) is None:
        return {"detector_section": ""}
    height, width = block["input_size"]
    outputs = {t["name"]: t for t in manifest["io"]["outputs"]}
    names = block["outputs"]
    labels = block.get("labels") or []
    ctx = {"detector_convention": block["convention"], "detector_preset": block["preset"],
           "detector_input_width": str(width), "detector_input_height": str(height),
           "detector_score_threshold": repr(float(block["score_threshold"])), "detector_iou": repr(float(block["iou"])),
           "detector_max_detections": str(block["max_detections"]), "detector_classes": str(block["classes"]),
           "detector_frame": ("the pixels of the picture you passed in (origin top-left)"
                              if manifest["io"]["inputs"][0].get("preprocessing") else
                              "the model input's pixels (origin top-left: the model takes a tensor, so no "
                              "preprocessing is declared to undo)"),
           "swift_detector_labels": "[" + ", ".join(lit(label, "swift") for label in labels) + "]",
           "kotlin_detector_labels": ("arrayOf(" + ", ".join(lit(label, "kotlin") for label in labels) + ")"
                                      if labels else "emptyArray<String>()")}
    if block["convention"] == "tflite-four-outputs":
        boxes = outputs.get(names["boxes"], {}).get("shape") or []
        rows = boxes[1] if len(boxes) == 3 and isinstance(boxes[1], int) and boxes[1] > 0 else block["max_detections"]
        ctx.update({f"kotlin_detector_{role}": lit(names[role], "kotlin") for role in ("boxes", "classes", "scores", "count")})
        ctx.update({"detector_rows": str(rows),
                    "kotlin_detector_classes_array": _kotlin_array(outputs.get(names["classes"]), names["classes"]),
                    "kotlin_detector_count_array": _kotlin_array(outputs.get(names["count"]), names["count"])})
    else:
        # Core ML's NMS pads the class columns (coreml_postprocess: to a multiple of 80): the first `classes` count
        columns = (outputs.get(names["confidence"], {}).get("shape") or [None])[-1]
        columns = columns if isinstance(columns, int) and columns > 0 else block["classes"]
        padding = (f" (the first {block['classes']} columns are the classes, the rest zero padding)"
                   if columns != block["classes"] else "")
        ctx.update({"swift_detector_confidence": lit(names["confidence"], "swift"),
                    "swift_detector_coordinates": lit(names["coordinates"], "swift"),
                    "detector_confidence_shape": f"`[K, {columns}]`{padding}"})
    return ctx


def _kotlin_array(tensor: dict | None, name: str) -> str:
    """The Kotlin array LiteRT copies an output of this dtype into (the four outputs are float32 in TFLite's
    detection convention; some writers give int32 classes and count)."""
    dtype = (tensor or {}).get("dtype", "float32")
    if dtype not in ("float32", "int32"):
        raise UsageError(f"detector output {name!r} is {dtype}; the Kotlin helper reads float32 or int32")
    return "FloatArray" if dtype == "float32" else "IntArray"


def usage_calls(manifest: dict[str, Any], ctx: dict[str, str]) -> dict[str, str]:
    """The usage lines of a detector bundle (README and the integration section): a call that returns detections."""
    if manifest.get("detector") is None or detector_file(manifest) is None:
        return {}
    image = bool(manifest["io"]["inputs"][0].get("preprocessing"))
    if manifest["platform"] == "ios":
        call = ("DeployKitDetector.detect(model, image: cgImage)" if image else
                f"DeployKitDetector.detections(from: DeployKitModelInfo.run(model, pixels: rgbPixels))   // "
                f"{ctx['input_shape_text']} floats, {ctx['input_layout']}")
        frame = "the picture's pixels" if image else "the model input's pixels"
        return {"swift_usage_call": (f"let detections = try {call}\n"
                                     f"for d in detections {{ print(d.label, d.confidence, d.box) }}   // {frame}, "
                                     "origin top-left")}
    size = "bitmap.width, bitmap.height" if image else "DeployKitDetector.INPUT_WIDTH, DeployKitDetector.INPUT_HEIGHT"
    frame = "the bitmap's pixels" if image else "the model input's pixels"
    return {"kotlin_usage_run": (f"val detections = DeployKitDetector.detect(interpreter, input, {size})\n"
                                 "for (d in detections) println(\"${d.label} ${d.score} ${d.left},${d.top},${d.right},"
                                 f"${{d.bottom}}\")   // {frame}, origin top-left")}
