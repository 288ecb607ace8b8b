"""The values the NCNN integration templates need, as C++, Kotlin and Swift literals, all read from the manifest.

NCNN blobs have no batch axis and keep their dimensions innermost first: a source tensor ``(1, C, H, W)`` is an
``ncnn::Mat`` of dims 3 with ``w = W, h = H, c = C`` (``runners.ncnn_runner`` feeds it so). ``blob_dims`` is that
rule; the blob tables of ``DeployKitNcnn.h`` are written with it.

The image path of ``DeployKitNcnn.cpp`` (``fromPixels``) is planned here from the first input's preprocessing
block (``--image-input``) or its normalization (``bundle --mean/--std``, pixel units): every step is done with
ncnn's own pixel functions where they do what deploykit's reference (``image_io.resize``, ``deploykit predict``)
does, and by explicit code where they do not. ``image_plan`` says which, step by step; the generated file carries
the same table as a comment.

- resize: ``Mat::from_pixels_resize`` (bilinear) to the reference's rounded scaled size, then
  ``copy_cut_border`` (shorter-side's centre) or ``copy_make_border`` (letterbox's fill); nearest and bicubic
  (ncnn resizes bilinearly only) are explicit, as Pillow computes them.
- colour: RGB / BGR by the pixel type (``PIXEL_RGBA2RGB`` / ``PIXEL_RGBA2BGR``); grayscale explicitly with
  Pillow's ITU-R 601 weights (ncnn's ``PIXEL_RGBA2GRAY`` weighs 77/150/29 out of 256, which differs).
- values: ``substract_mean_normalize(mean, 1 / std)`` (ncnn multiplies by its ``norm``; mean and std in 0-255
  pixel units, which ``image_io.declare.pixel_normalization`` gives); none when the model normalizes.
- layout: NCHW is what ``from_pixels`` writes; an NHWC input (ncnn holds ``(1, H, W, C)`` as ``c = H, h = W,
  w = C``) is rearranged explicitly.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from deploykit.core.errors import InputError

_RESIZE = {"stretch": "Resize::Stretch", "shorter-side": "Resize::ShorterSide", "letterbox": "Resize::Letterbox"}
_FILTER = {"bilinear": "Filter::Bilinear", "nearest": "Filter::Nearest", "bicubic": "Filter::Bicubic"}
_COLOR = {"RGB": "Color::RGB", "BGR": "Color::BGR", "GRAY": "Color::Gray"}


def cpp_string(value: str) -> str:
    """A C++ narrow string literal of ``value`` (UTF-8): printable ASCII as is, quotes, backslashes and ``?`` (no
    trigraph can start) escaped, every other byte as a three-digit octal escape (octal stops after three digits,
    hexadecimal escapes would swallow the characters that follow)."""
    out = []
    for byte in value.encode("utf-8"):
        ch = chr(byte)
        if ch in '"\\?':
            out.append("\\" + ch)
        elif 32 <= byte < 127:
            out.append(ch)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def cpp_float(value: float) -> str:
    value = float(value)
    if not math.isfinite(value):
        raise InputError(f"the manifest holds {value} where the NCNN templates need a finite number")
    text = repr(value)
    return (text if ("." in text or "e" in text) else text + ".0") + "f"


def comment(text: str) -> str:
    """Manifest text inside a ``//`` comment: one line of printable ASCII (nothing can end the comment)."""
    return "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in str(text))


def blob_dims(tensor: dict[str, Any]) -> tuple[int, int, int, int, int]:
    """(dims, w, h, d, c) of the ``ncnn::Mat`` that holds ``tensor``; 0 where the source's dimension is unknown."""
    shape = list(tensor["shape"])
    if len(shape) > 1:
        if isinstance(shape[0], int) and shape[0] > 1:
            raise InputError(f"tensor {tensor['name']!r} has batch {shape[0]}; NCNN runs one sample at a time")
        shape = shape[1:]
    if not 1 <= len(shape) <= 4:
        raise InputError(f"tensor {tensor['name']!r} of shape {tensor['shape']} has {len(shape)} dimensions without "
                         "its batch axis; an ncnn::Mat holds 1 to 4")
    dims = [d if isinstance(d, int) and d > 0 else 0 for d in shape]
    w = dims[-1]
    h = dims[-2] if len(dims) >= 2 else 1
    c = dims[0] if len(dims) >= 3 else 1
    d = dims[1] if len(dims) == 4 else 1
    return len(dims), w, h, d, c


def _blob_rows(tensors) -> str:
    rows = []
    for t in tensors:
        dims, w, h, d, c = blob_dims(t)
        fixed = "false" if t.get("flexible") or 0 in (w, h, d, c) else "true"
        rows.append(f"    {{{cpp_string(t['name'])}, {dims}, {w}, {h}, {d}, {c}, {fixed}}},  "
                    f"// {comment(t['dtype'])} {comment('x'.join(str(v) for v in t['shape']))}"
                    + (f", {comment(t['layout'])}" if t.get("layout") else ""))
    return "\n".join(rows)


def image_plan(first_in: dict[str, Any]) -> dict[str, Any]:
    """What ``fromPixels`` does for the first input: ``None`` as ``kind`` (with ``why``) when it takes no picture,
    else the resize, filter, colour, layout, normalization and the steps (what, how) for the generated comment."""
    from deploykit.image_io.declare import pixel_normalization

    block, norm, layout, shape = first_in.get("preprocessing"), first_in.get("normalization"), \
        first_in.get("layout"), first_in["shape"]
    if layout not in ("NCHW", "NHWC") or len(shape) != 4:
        return {"kind": None, "why": f"input {first_in['name']!r} is not an image tensor (layout {layout or 'none'}, "
                                     f"shape {'x'.join(map(str, shape))})"}
    channels, height, width = (shape[1], shape[2], shape[3]) if layout == "NCHW" else (shape[3], shape[1], shape[2])
    if block:
        height, width = block["size"]
        resize, interpolation, color = block["resize"], block["interpolation"], block["color"]
        crop_fraction, fill = float(block["crop_fraction"]), int(block["fill"])
        normalize = block["normalized_by"] == "app"
        values = pixel_normalization(block) if normalize else {"mean": [0.0], "std": [1.0]}
        origin = "the manifest's preprocessing block says"
    elif norm:
        resize, interpolation, crop_fraction, fill, normalize, values = "stretch", "bilinear", 1.0, 0, True, norm
        color = "GRAY" if channels == 1 else "RGB"
        origin = "the manifest's normalization says (no preprocessing block: stretched)"
    else:
        return {"kind": None, "why": f"the manifest declares no normalization and no preprocessing for input "
                                     f"{first_in['name']!r}, so nothing says how pixels become its values"}
    if channels != (1 if color == "GRAY" else 3):
        return {"kind": None, "why": f"input {first_in['name']!r} has {channels} channels; a {color} picture has "
                                     f"{1 if color == 'GRAY' else 3}"}
    if not (isinstance(height, int) and isinstance(width, int) and height > 0 and width > 0):
        return {"kind": None, "why": f"input {first_in['name']!r} has no fixed height and width"}
    mean = [float(v) for v in values["mean"]] or [0.0]
    std = [float(v) for v in values["std"]] or [1.0]
    mean, std = (mean * channels if len(mean) == 1 else mean), (std * channels if len(std) == 1 else std)
    if len(mean) != channels or len(std) != channels or any(s <= 0 for s in std):
        raise InputError(f"input {first_in['name']!r}: mean {values['mean']} and std {values['std']} do not fit "
                         f"{channels} channels")
    size = f"{width}x{height}"
    crop = f" at {crop_fraction:g} of the shorter side" if crop_fraction != 1 else ""
    resize_text = {"stretch": f"stretch to {size}", "shorter-side": f"cover {size}{crop}, keep the centre",
                   "letterbox": f"fit in {size}, centre, pad with {fill}"}[resize]
    gray_how = "explicit: Pillow's L = (299 R + 587 G + 114 B) / 1000 (ncnn's PIXEL_RGBA2GRAY weighs otherwise)"
    resize_how = ("ncnn::Mat::from_pixels_resize" if interpolation == "bilinear" else
                  f"explicit {interpolation} resampling as Pillow's (ncnn resizes bilinearly only), then "
                  "ncnn::Mat::from_pixels")
    color_how = gray_how if color == "GRAY" else f"ncnn pixel type PIXEL_RGBA2{color}"
    steps = [("colour", f"{color} from the RGBA pixels", color_how),
             ("resize", f"{resize_text}, {interpolation}", resize_how)]
    if resize == "shorter-side":
        steps.append(("crop", "the centre", "ncnn::copy_cut_border"))
    elif resize == "letterbox":
        steps.append(("pad", f"value {fill} around the picture", "ncnn::copy_make_border, BORDER_CONSTANT"))
    if normalize:
        values_text = f"(pixel - mean) / std, mean {[round(v, 6) for v in mean]}, std {[round(v, 6) for v in std]}"
        steps.append(("values", values_text, "ncnn substract_mean_normalize(mean, 1 / std)"))
    else:
        steps.append(("values", "pixel values 0-255 (the model normalizes)", "as they are"))
    steps.append(("layout", layout, "as from_pixels writes it (channels first)" if layout == "NCHW" else
                  "explicit: ncnn holds (1, H, W, C) as c = H, h = W, w = C"))
    return {"kind": "image", "origin": origin, "resize": resize, "interpolation": interpolation, "color": color,
            "layout": layout, "channels": channels, "width": width, "height": height, "crop_fraction": crop_fraction,
            "fill": fill, "normalize": normalize, "mean": mean, "std": std, "steps": steps}


def _steps_comment(plan: dict[str, Any], name: str) -> str:
    if plan["kind"] is None:
        return f"// fromPixels: this model takes no picture: {comment(plan['why'])}. Feed tensors with run()."
    lines = [f"// fromPixels: input {comment(name)} from a picture, as {comment(plan['origin'])}:"]
    for what, value, how in plan["steps"]:
        lines.append(f"//   {what.ljust(7)} {comment(value)}: {comment(how)}")
    return "\n".join(lines)


def ncnn_context(manifest: dict[str, Any], files: list[dict[str, Any]],
                 lit: Callable[[str, str], str]) -> dict[str, str]:
    """The placeholders of ``templates/cpp``, ``templates/objc`` and the NCNN Kotlin, Swift and USAGE files; ``files``:
    the bundle's files (path, role) as the manifest will list them."""
    import posixpath

    runtime = manifest["compatibility"]["runtime"]
    inputs, outputs = manifest["io"]["inputs"], manifest["io"]["outputs"]
    model = manifest["model"]
    weights = [f["path"] for f in files if f["role"] == "model" and f["path"] != model]
    beside = len(weights) == 1 and posixpath.dirname(weights[0]) == posixpath.dirname(model)
    if not beside or not weights[0].endswith(".bin"):
        raise InputError(f"an NCNN bundle holds its .param ({model}) and one .bin beside it; its model files are "
                         f"{[model, *weights]}")
    # fp16 weights are run with fp16 storage, packing and arithmetic on, as deploykit's parity check ran them
    # (targets.ncnn: the record's runtime_options); float32 weights with all three off
    fp16 = bool(runtime["fp16_storage"])
    flags = {flag: fp16 for flag in ("fp16_storage", "fp16_packed", "fp16_arithmetic")}
    plan = image_plan(inputs[0])
    image = plan["kind"] is not None
    ctx = {
        "ncnn_release": runtime["min_version"].split(".")[-1],
        "ncnn_compute": runtime["compute"],
        "ncnn_cpu_only_layers": comment(", ".join(runtime["cpu_only_layers"]) or "none"),
        "ncnn_weights_file": posixpath.basename(weights[0]), "ncnn_model_path": model,
        "ncnn_fp16_text": "on (the weights are stored as fp16)" if fp16 else "off (float32 throughout)",
        "cpp_inputs": _blob_rows(inputs), "cpp_outputs": _blob_rows(outputs),
        "cpp_input_count": str(len(inputs)), "cpp_output_count": str(len(outputs)),
        **{f"cpp_{flag}": "true" if on else "false" for flag, on in flags.items()},
        "cpp_image_steps": _steps_comment(plan, inputs[0]["name"]),
        "cpp_has_image": "true" if image else "false",
        "cpp_image_resize": _RESIZE[plan["resize"]] if image else "Resize::None",
        "cpp_image_filter": _FILTER[plan["interpolation"]] if image else "Filter::Bilinear",
        "cpp_image_color": _COLOR[plan["color"]] if image else "Color::RGB",
        "cpp_image_channels_last": "true" if image and plan["layout"] == "NHWC" else "false",
        "cpp_image_channels": str(plan["channels"]) if image else "3",
        "cpp_image_width": str(plan["width"]) if image else "0",
        "cpp_image_height": str(plan["height"]) if image else "0",
        "cpp_image_crop_fraction": repr(plan["crop_fraction"]) if image else "1.0",
        "cpp_image_fill": str(plan["fill"]) if image else "0",
        "cpp_image_normalize": "true" if image and plan["normalize"] else "false",
        "cpp_image_mean": "{" + ", ".join(cpp_float(v) for v in (plan["mean"] if image else [0, 0, 0])) + "}",
        "cpp_image_norm": "{" + ", ".join(cpp_float(1.0 / v) for v in (plan["std"] if image else [1, 1, 1])) + "}",
        "kotlin_weights_file": lit(posixpath.basename(weights[0]), "kotlin"),
        "swift_weights_file": lit(posixpath.basename(weights[0]), "swift"),
        "kotlin_has_image": "true" if image else "false", "swift_has_image": "true" if image else "false",
        "ncnn_image_note": (f"{_PICTURE_CALL[manifest['platform']]} prepares the picture in C++ (`fromPixels` in "
                            "`DeployKitNcnn.cpp`) as the input's normalization and preprocessing above say."
                            if image else f"This model takes no picture ({plan['why']}): pass its input values."),
    }
    ctx["kotlin_ncnn_input_names"] = "arrayOf(" + ", ".join(lit(t["name"], "kotlin") for t in inputs) + ")"
    ctx["kotlin_ncnn_output_names"] = "arrayOf(" + ", ".join(lit(t["name"], "kotlin") for t in outputs) + ")"
    ctx["swift_ncnn_input_names"] = "[" + ", ".join(lit(t["name"], "swift") for t in inputs) + "]"
    ctx["swift_ncnn_output_names"] = "[" + ", ".join(lit(t["name"], "swift") for t in outputs) + "]"
    ctx["kotlin_ncnn_input_sizes"] = "intArrayOf(" + ", ".join(str(_size(t)) for t in inputs) + ")"
    ctx["kotlin_ncnn_output_sizes"] = "intArrayOf(" + ", ".join(str(_size(t)) for t in outputs) + ")"
    ctx["swift_ncnn_input_sizes"] = "[" + ", ".join(str(_size(t)) for t in inputs) + "]"
    ctx["swift_ncnn_output_sizes"] = "[" + ", ".join(str(_size(t)) for t in outputs) + "]"
    return ctx


_PICTURE_CALL = {"android": "`run(bitmap)`", "ios": "`DeployKitModelInfo.run(model, image:)`"}


def _size(tensor: dict[str, Any]) -> int:
    """Element count of the tensor's default shape (a dimension the manifest does not fix counts 1)."""
    count = 1
    for d in tensor["shape"]:
        count *= d if isinstance(d, int) and d > 0 else 1
    return count


def requirements(manifest: dict[str, Any]) -> str:
    """The README's requirements line of an NCNN bundle."""
    c, r = manifest["compatibility"], manifest["compatibility"]["runtime"]
    os_line = f"iOS {c['min_ios']}+" if manifest["platform"] == "ios" else f"Android API {c['min_android_api']}+"
    release = r["min_version"].split(".")[-1]
    package = f"ncnn-{release}-{'apple' if manifest['platform'] == 'ios' else 'android'}-vulkan"
    where = ("every layer type has a Vulkan implementation" if r["compute"] == "vulkan" else
             f"on the GPU these layer types run on the CPU: {', '.join(r['cpu_only_layers'])}")
    return (f"{os_line}, ncnn {r['min_version']}+ (the {package} release or newer); "
            f"Vulkan compute where the device has a GPU, the CPU otherwise ({where}); fp16 storage and arithmetic "
            f"{'on: the weights are stored as fp16' if r['fp16_storage'] else 'off: float32 throughout'}.")
