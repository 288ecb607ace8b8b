"""Render the app integration files (Swift, Kotlin, README) into a bundle with the model's real signature.

Templates live in ``templates/`` at the repository root (the place app developers look), and are
shipped in wheels as the ``deploykit.templates`` package through a setuptools package-dir mapping.
``template_root`` finds them in this order: an explicit directory (``--templates``, for teams with their
own app code), the installed ``deploykit.templates`` package, the source checkout's ``templates/``.

Placeholders are ``{{name}}``; not ``$name`` (Kotlin and Swift both use ``$``) and not a template
engine (no dependency, nothing executable in a template). Every placeholder must be known and every
value is pre-formatted as a literal of the target language, so rendering can't produce code that
the manifest doesn't describe. An unknown placeholder is an error, not an empty string.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

from deploykit.bundle.detector import SECTIONS, detector_context, detector_file, usage_calls
from deploykit.bundle.readme_sections import (
    accelerators_sentence,
    flexible_section,
    input_row,
    normalization_note,
    output_row,
    preprocessing_section,
    requirements_sentence,
)
from deploykit.core.errors import InputError
from deploykit.core.version import __version__

_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_][a-z0-9_]*)\s*\}\}")
# Every updater picks an experiment's arm and logs its events with the same helper, shipped beside it.
_SWIFT_EXPERIMENT = {"integration/swift/DeployKitExperiment.swift": "swift/DeployKitExperiment.swift.tmpl"}
_FILES = {
    "ios": {"integration/swift/DeployKitModel.swift": "swift/DeployKitModel.swift.tmpl", **_SWIFT_EXPERIMENT},
    "android": {"integration/kotlin/DeployKitModel.kt": "kotlin/DeployKitModel.kt.tmpl",
                "integration/kotlin/BundleVerifier.kt": "kotlin/BundleVerifier.kt.tmpl",
                "integration/kotlin/DeployKitExperiment.kt": "kotlin/DeployKitExperiment.kt.tmpl"},
}
_USAGE = {"ios": "swift/USAGE.md.tmpl", "android": "kotlin/USAGE.md.tmpl"}
# ExecuTorch bundles: the Android updater and verifier are the same (they install whatever MODEL_PATH names),
# plus a runner on org.pytorch.executorch.Module; iOS gets its own updater (no Core ML compile step).
_EXECUTORCH_FILES = {
    "android": {**_FILES["android"], "integration/kotlin/DeployKitExecuTorch.kt": "kotlin/DeployKitExecuTorch.kt.tmpl"},
    "ios": {"integration/swift/DeployKitModel.swift": "swift/DeployKitExecuTorchModel.swift.tmpl", **_SWIFT_EXPERIMENT},
}
_EXECUTORCH_USAGE = {"ios": "swift/USAGE-executorch.md.tmpl", "android": "kotlin/USAGE-executorch.md.tmpl"}
# NCNN bundles: one C++ class over ncnn::Net for both platforms; Android adds its JNI glue, the Kotlin class calling
# it and a CMakeLists.txt beside the same updater and verifier; iOS gets the updater without a compile step (the
# ExecuTorch pattern) and an Objective-C++ bridge Swift calls through a bridging header.
_NCNN_CPP = {"integration/cpp/DeployKitNcnn.h": "cpp/DeployKitNcnn.h.tmpl",
             "integration/cpp/DeployKitNcnn.cpp": "cpp/DeployKitNcnn.cpp.tmpl"}
_NCNN_FILES = {
    "android": {**_FILES["android"], "integration/kotlin/DeployKitNcnn.kt": "kotlin/DeployKitNcnn.kt.tmpl", **_NCNN_CPP,
                "integration/cpp/deploykit_ncnn_jni.cpp": "cpp/deploykit_ncnn_jni.cpp.tmpl",
                "integration/cpp/CMakeLists.txt": "cpp/CMakeLists.txt.tmpl"},
    "ios": {"integration/swift/DeployKitModel.swift": "swift/DeployKitNcnnModel.swift.tmpl", **_SWIFT_EXPERIMENT, **_NCNN_CPP,
            "integration/objc/DeployKitNcnnBridge.h": "objc/DeployKitNcnnBridge.h.tmpl",
            "integration/objc/DeployKitNcnnBridge.mm": "objc/DeployKitNcnnBridge.mm.tmpl"},
}
_NCNN_USAGE = {"ios": "swift/USAGE-ncnn.md.tmpl", "android": "kotlin/USAGE-ncnn.md.tmpl"}
# The Swift updater of the runtimes whose model needs no compile step on the device (ExecuTorch, NCNN): one
# fragment, rendered into each runtime's DeployKitModel.swift as {{swift_updater}}.
_SWIFT_UPDATER = "swift/DeployKitUpdater.swift.tmpl"
# Delta updates (the same steps as delta.py and DeployKitModel.kt's fetchDelta): one fragment, rendered into every iOS
# updater (Core ML's DeployKitModel.swift and the fragment above) as {{swift_delta}}.
_SWIFT_DELTA = "swift/DeployKitDelta.swift.tmpl"


def _templates(platform: str, fmt: str | None) -> tuple[dict[str, str], str]:
    if fmt == "executorch":
        return _EXECUTORCH_FILES[platform], _EXECUTORCH_USAGE[platform]
    if fmt == "ncnn":
        return _NCNN_FILES[platform], _NCNN_USAGE[platform]
    return _FILES[platform], _USAGE[platform]


def template_root(override: str | Path | None = None) -> Path:
    candidates = []
    if override:
        candidates.append(Path(override))
    spec = importlib.util.find_spec("deploykit.templates")
    if spec is not None and spec.submodule_search_locations:
        candidates.extend(Path(p) for p in spec.submodule_search_locations)
    candidates.append(Path(__file__).resolve().parents[2] / "templates")
    for candidate in candidates:
        if (candidate / "README.md.tmpl").is_file():
            return candidate
    raise InputError(f"app integration templates not found (looked in {', '.join(map(str, candidates))})")


def integration_paths(platform: str, fmt: str | None = None, manifest: dict[str, Any] | None = None) -> list[str]:
    """The integration files of a bundle; ``manifest`` (so far) tells whether a detector helper joins them."""
    extra = detector_file(manifest) if manifest is not None else None
    return ["integration/README.md", *_templates(platform, fmt)[0], *([extra[0]] if extra else [])]


def render(text: str, context: dict[str, str], source: str = "template") -> str:
    def substitute(match: re.Match) -> str:
        key = match.group(1)
        if key not in context:
            raise InputError(f"{source}: unknown placeholder {{{{{key}}}}}")
        return context[key]

    return _PLACEHOLDER.sub(substitute, text)


def integration_files(manifest: dict[str, Any], bundle_file: str, trusted_key_raw: bytes | None,
                      trusted_keyid: str | None, root: Path, listed_files: list[dict[str, Any]]) -> dict[str, bytes]:
    """{archive path: bytes} of the integration files for ``manifest["platform"]``."""
    context = build_context(manifest, bundle_file, trusted_key_raw, trusted_keyid, listed_files)
    templates, usage = _templates(manifest["platform"], manifest["format"])
    helper = detector_file(manifest)
    if helper is not None:
        templates = {**templates, helper[0]: helper[1]}
        section = SECTIONS[manifest["platform"]]
        context["detector_section"] = render(_read(root, section), context, section).strip()
    if manifest["platform"] == "ios":
        context["swift_delta"] = render(_read(root, _SWIFT_DELTA), context, _SWIFT_DELTA).rstrip()
    if manifest["platform"] == "ios" and manifest["format"] in ("executorch", "ncnn"):
        context["swift_updater"] = render(_read(root, _SWIFT_UPDATER), context, _SWIFT_UPDATER).strip()
    context["usage"] = render(_read(root, usage), context, usage).strip()
    files = {"integration/README.md": render(_read(root, "README.md.tmpl"), context, "README.md.tmpl")}
    for target, template in templates.items():
        files[target] = render(_read(root, template), context, template)
    return {path: text.encode("utf-8") for path, text in files.items()}


def _read(root: Path, relative: str) -> str:
    path = root / relative
    if not path.is_file():
        raise InputError(f"template {path} is missing")
    return path.read_text("utf-8")


def build_context(manifest: dict[str, Any], bundle_file: str, key_raw: bytes | None, keyid: str | None,
                  listed_files: list[dict[str, Any]]) -> dict[str, str]:
    import base64

    inputs, outputs = manifest["io"]["inputs"], manifest["io"]["outputs"]
    first_in, first_out = inputs[0], outputs[0]
    norm = first_in.get("normalization") or {"mean": [], "std": []}
    labels = next((t["labels"] for t in outputs if t.get("labels")), None)
    compat = manifest["compatibility"]
    key_b64 = base64.b64encode(key_raw).decode() if key_raw else "REPLACE_WITH_PUBLISHER_PUBLIC_KEY_BASE64"
    out_size = 1
    for d in first_out["shape"]:
        out_size *= d if isinstance(d, int) and d > 0 else 1
    ctx = {
        "deploykit_version": __version__, "name": manifest["name"], "version": manifest["version"],
        "sequence": str(manifest["sequence"]), "platform": manifest["platform"], "variant": manifest["variant"],
        "bundle_file": bundle_file, "input_layout": first_in.get("layout") or "none",
        "input_shape_text": "x".join(_dim(d) for d in first_in["shape"]), "output_size": str(out_size),
        "min_ios": compat.get("min_ios") or "16.0", "min_android_api": str(compat.get("min_android_api") or 21),
        "trusted_key_base64": key_b64, "trusted_keyid": keyid or "(bundle not signed)",
        "file_table": "\n".join(f"| `{f['path']}` | {f['role']} |" for f in listed_files),
        "input_table": "\n".join(input_row(t) for t in inputs),
        "output_table": "\n".join(output_row(t) for t in outputs),
        "normalization_note": normalization_note(first_in),
        "preprocessing_section": preprocessing_section(inputs),
        "flexible_section": flexible_section(inputs, manifest["platform"]),
        "requirements": requirements_sentence(manifest) + accelerators_sentence(manifest),
    }
    ctx.update(_runtime_context(manifest, first_in, first_out))
    ctx.update(_variant_context(manifest["platform"], manifest["variant"]))
    ctx["swift_format"] = _lit(manifest["format"], "swift")
    if manifest["format"] == "ncnn":
        from deploykit.bundle.ncnn_code import ncnn_context

        ctx.update(ncnn_context(manifest, listed_files, _lit))
    ctx.update(_swift_image(first_in, outputs, ctx))
    ctx.update(_kotlin_image(first_in, ctx))
    ctx["kotlin_usage_run"] = f"val output = Array(1) {{ FloatArray({out_size}) }}\ninterpreter.run(input, output)"
    ctx.update(detector_context(manifest, _lit))
    ctx.update(usage_calls(manifest, ctx))
    for lang, null in (("swift", "nil"), ("kotlin", "null")):
        ctx.update({
            f"{lang}_name": _lit(manifest["name"], lang), f"{lang}_version": _lit(manifest["version"], lang),
            f"{lang}_variant": _lit(manifest["variant"], lang), f"{lang}_input_name": _lit(first_in["name"], lang),
            f"{lang}_input_layout": _lit(first_in.get("layout") or "none", lang),
            f"{lang}_output_name": _lit(first_out["name"], lang), f"{lang}_model_path": _lit(manifest["model"], lang),
            f"{lang}_labels_path": _lit(labels["path"], lang) if labels else null,
            f"{lang}_trusted_key": _lit(key_b64, lang),
            f"{lang}_input_shape": _ints(first_in["shape"], lang), f"{lang}_output_shape": _ints(first_out["shape"], lang),
            f"{lang}_mean": _floats(norm["mean"], lang), f"{lang}_std": _floats(norm["std"], lang),
        })
    return ctx


# dtype -> (Kotlin array type, org.pytorch.executorch.Tensor getter, Swift scalar type): the types
# Tensor.fromBlob / Tensor<T> take for each dtype a deploykit TensorSpec can carry.
_KOTLIN_RUNTIME = {"litert": "LiteRT (org.tensorflow.lite.Interpreter)",
                   "executorch": "ExecuTorch (org.pytorch.executorch.Module)",
                   "ncnn": "NCNN (DeployKitNcnn.kt over the C++ wrapper in integration/cpp/)"}
_ET_TYPES = {"float32": ("FloatArray", "dataAsFloatArray", "Float"),
             "float64": ("DoubleArray", "dataAsDoubleArray", "Double"),
             "int32": ("IntArray", "dataAsIntArray", "Int32"), "int64": ("LongArray", "dataAsLongArray", "Int64"),
             "int8": ("ByteArray", "dataAsByteArray", "Int8"), "uint8": ("ByteArray", "dataAsUnsignedByteArray", "UInt8")}


def _runtime_context(manifest: dict[str, Any], first_in: dict[str, Any], first_out: dict[str, Any]) -> dict[str, str]:
    """What the ExecuTorch templates need besides the common signature: tensor types, long shapes, the runtime."""
    runtime = manifest["compatibility"].get("runtime") or {}
    ctx = {"runtime_name": manifest["runtime"], "runtime_min_version": runtime.get("min_version", ""),
           "runtime_backend": runtime.get("backend", ""),
           "runtime_delegates": ", ".join(runtime.get("delegates", [])) or "none (portable kernels only)",
           "kotlin_input_shape_long": "longArrayOf(" + ", ".join(f"{_dim(d)}L" for d in first_in["shape"]) + ")",
           "kotlin_model_runtime": _KOTLIN_RUNTIME.get(manifest["runtime"], manifest["runtime"])}
    if manifest["format"] == "executorch":
        for role, tensor in (("input", first_in), ("output", first_out)):
            if tensor["dtype"] not in _ET_TYPES:
                raise InputError(f"{role} {tensor['name']!r} has dtype {tensor['dtype']}, which the ExecuTorch templates do not "
                                 f"handle (they do {', '.join(_ET_TYPES)})")
            kotlin_array, getter, swift_scalar = _ET_TYPES[tensor["dtype"]]
            ctx.update({f"kotlin_{role}_array": kotlin_array, f"kotlin_{role}_getter": getter,
                        f"swift_{role}_scalar": swift_scalar, f"{role}_dtype": tensor["dtype"]})
        ctx["kotlin_input_factory"] = "fromBlobUnsigned" if first_in["dtype"] == "uint8" else "fromBlob"
    return ctx


def _variant_context(platform: str, variant: str) -> dict[str, str]:
    """How the updaters tell this runtime's bundles from the other runtimes' in a release: the catalogue's rule
    (``targets.for_bundle``), the longest variant prefix names the runtime. LiteRT's and Core ML's prefix is empty,
    so their variants are those that begin with none of the longer prefixes of the platform's other runtimes."""
    from deploykit.targets import TARGETS, for_bundle

    own = for_bundle(platform, variant)[0]
    others = sorted(t.variant_prefix for t in TARGETS.values()
                    if t is not own and len(t.variant_prefix) > len(own.variant_prefix)
                    and t.variant_prefix.startswith(own.variant_prefix)
                    and for_bundle(platform, t.variant_prefix + "fp32")[0] is t)
    return {"kotlin_variant_prefix": _lit(own.variant_prefix, "kotlin"),
            "kotlin_other_variant_prefixes": (f"listOf({', '.join(_lit(p, 'kotlin') for p in others)})" if others
                                              else "listOf<String>()"),
            "swift_variant_prefix": _lit(own.variant_prefix, "swift"),
            "swift_other_variant_prefixes": "[" + ", ".join(_lit(p, "swift") for p in others) + "]",
            "runtime_title": own.title, "swift_runtime_title": _lit(own.title, "swift")}


def _swift_image(first_in: dict[str, Any], outputs, ctx: dict[str, str]) -> dict[str, str]:
    """The Swift image path: Vision's crop-and-scale option where it is exactly the manifest's resize mode."""
    block = first_in.get("preprocessing") or {}
    height, width = block.get("size") or (0, 0)
    option = "nil"
    if block.get("resize") == "stretch":
        option = ".scaleFill"
    elif block.get("resize") == "shorter-side":
        option = ".centerCrop" if block["crop_fraction"] == 1 else ".scaleFill"  # prepare() cuts the centre first
    elif block.get("resize") == "letterbox":
        option = ".scaleFit" if block["fill"] == 0 else ".scaleFill"  # prepare() pads with the fill first
    classifier = any(t["name"] == "classLabel_probs" for t in outputs)
    if block:
        call = ("let results = try DeployKitModelInfo.classify(model, image: cgImage)   // "
                + ("[VNClassificationObservation]: identifier = label, confidence" if classifier
                   else "[VNCoreMLFeatureValueObservation]"))
    else:
        call = (f"let scores = try DeployKitModelInfo.predict(model, pixels: rgbPixels)   // {ctx['input_shape_text']} "
                f"floats, {ctx['input_layout']}")
    return {"swift_image_resize": _lit(block.get("resize", ""), "swift"),
            "swift_image_crop_fraction": repr(float(block.get("crop_fraction", 1.0))),
            "swift_image_fill": repr(float(block.get("fill", 0))), "swift_image_width": str(width),
            "swift_image_height": str(height), "swift_is_classifier": "true" if classifier else "false",
            "swift_vision_option": option if block else "nil", "swift_usage_call": call}


def _kotlin_image(first_in: dict[str, Any], ctx: dict[str, str]) -> dict[str, str]:
    """The Kotlin image path: Bitmap operations implementing the preprocessing block."""
    from deploykit.image_io.declare import pixel_normalization

    block = first_in.get("preprocessing") or {}
    height, width = block.get("size") or (0, 0)
    norm = pixel_normalization(block) if block else {"mean": [0.0], "std": [1.0]}
    if block:
        call = ("val input = DeployKitModelInfo.toInput(DeployKitModelInfo.prepare(bitmap))   // "
                f"{width}x{height}, {block['feed']}")
    else:
        call = f"val input = DeployKitModelInfo.preprocess(rgbPixels)   // {ctx['input_shape_text']} floats, {ctx['input_layout']}"
    return {"kotlin_image_resize": _lit(block.get("resize", ""), "kotlin"),
            "kotlin_image_crop_fraction": repr(float(block.get("crop_fraction", 1.0))),
            "kotlin_image_fill": str(int(block.get("fill", 0))), "kotlin_image_width": str(width),
            "kotlin_image_height": str(height), "kotlin_image_filter": _lit(block.get("interpolation", "bilinear"), "kotlin"),
            "kotlin_image_feed": _lit(block.get("feed", ""), "kotlin"),
            "kotlin_image_gray": "true" if block.get("color") == "GRAY" else "false",
            "kotlin_image_bgr": "true" if block.get("color") == "BGR" else "false",
            "kotlin_pixel_mean": _floats(norm["mean"], "kotlin"), "kotlin_pixel_std": _floats(norm["std"], "kotlin"),
            "kotlin_usage_call": call}


def _lit(value: str, lang: str) -> str:
    """A double-quoted string literal for Swift or Kotlin; nothing in it can start an interpolation."""
    out = []
    for ch in value:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "$" and lang == "kotlin":
            out.append("\\$")
        elif 32 <= code < 127:
            out.append(ch)
        elif lang == "swift":
            out.append(f"\\u{{{code:x}}}")
        else:  # Kotlin: UTF-16 code units
            units = ch.encode("utf-16-be")
            out.extend(f"\\u{int.from_bytes(units[i:i + 2], 'big'):04x}" for i in range(0, len(units), 2))
    return '"' + "".join(out) + '"'


def _dim(d) -> str:
    return str(d) if isinstance(d, int) and d > 0 else "1"


def _ints(shape, lang: str) -> str:
    items = ", ".join(_dim(d) for d in shape)
    return f"[{items}]" if lang == "swift" else f"intArrayOf({items})"


def _floats(values, lang: str) -> str:
    if lang == "swift":
        return "[" + ", ".join(repr(float(v)) for v in values) + "]"
    return "floatArrayOf(" + ", ".join(f"{float(v)!r}f" for v in values) + ")"
