"""The prose sections of a bundle's integration README, written from its manifest: the input and output tables,
normalization and preprocessing, flexible sizes, requirements and accelerators. ``templates.build_context`` puts
them into the README templates' placeholders."""

from __future__ import annotations

from typing import Any


def input_row(t: dict[str, Any]) -> str:
    norm = t.get("normalization")
    text = f"(x - {norm['mean']}) / {norm['std']}" if norm else "none"
    return f"| `{t['name']}` | {t['dtype']} | {_shape_text(t)} | {t.get('layout') or '-'} | {text} |"


def output_row(t: dict[str, Any]) -> str:
    labels = f"`{t['labels']['path']}` ({t['labels']['count']})" if t.get("labels") else "-"
    return f"| `{t['name']}` | {t['dtype']} | {_shape_text(t)} | {labels} |"


def _shape_text(t: dict[str, Any]) -> str:
    from deploykit.core.flexible import FlexibleShape

    if t.get("flexible"):
        return FlexibleShape.from_json(t["flexible"]).compact()
    return "x".join("?" if d is None else str(d) for d in t["shape"]) or "scalar"


_RESIZE_CALL = {
    "android": "call `interpreter.resizeInput(index, intArrayOf(...))` and `interpreter.allocateTensors()` first",
    "ios": "pass an `MLMultiArray` of that size (Core ML refuses sizes it does not accept)",
}


def flexible_section(inputs, platform: str) -> str:
    """The README paragraph on inputs that take more than one size (empty when every input is fixed)."""
    from deploykit.core.flexible import FlexibleShape

    lines = []
    for t in inputs:
        if not t.get("flexible"):
            continue
        accepted = FlexibleShape.from_json(t["flexible"])
        what = ("one of these sizes: " + ", ".join("x".join(map(str, s)) for s in accepted.shapes)
                if accepted.kind == "enumerated" else
                "any size within " + accepted.describe() + " (each dimension from its low to its high end)")
        lines.append(f"- `{t['name']}` accepts {what}; the default is {'x'.join(map(str, t['shape']))}.")
    if not lines:
        return ""
    checked = ("every listed size" if all(FlexibleShape.from_json(t["flexible"]).kind == "enumerated"
                                          for t in inputs if t.get("flexible")) else "the low end, middle and high end")
    return ("### Flexible input sizes\n\n" + "\n".join(lines) + f"\n\nParity with the source model was checked at "
            f"{checked}. To run at another size, {_RESIZE_CALL.get(platform, 'feed an input of that size')}.")


def normalization_note(t: dict[str, Any]) -> str:
    norm = t.get("normalization")
    block = t.get("preprocessing")
    if block and block["normalized_by"] == "model":
        return "The model normalizes its image input itself: hand it the pixels, prepared as below."
    if not norm:
        return "The model takes its input as is: no normalization was declared at bundle time."
    return (f"Normalize every input value per channel as `(x - mean) / std` with mean {norm['mean']} and "
            f"std {norm['std']} before calling the model (the generated helpers do it).")


_FEEDS = {"coreml-image": "a `CVPixelBuffer` / `CGImage` (Core ML image input; Vision can feed it)",
          "uint8-pixels": "uint8 pixels, channels last, RGB (grayscale for one channel)",
          "float32-normalized": "float32 values `(pixel - mean) / std` per channel (mean and std below, in 0-255 units)"}


def preprocessing_section(inputs) -> str:
    """The README's table of each image input's preprocessing block: what the app must do, step by step."""
    parts = []
    for t in inputs:
        block = t.get("preprocessing")
        if not block:
            continue
        height, width = block["size"]
        if block["resize"] == "stretch":
            resize = f"resize to {width}x{height} (width x height), aspect ratio not kept"
        elif block["resize"] == "shorter-side":
            resize = (f"scale so the picture covers {width}x{height}"
                      + (f" with the shorter side at {block['crop_fraction']:g} of it" if block["crop_fraction"] != 1 else "")
                      + f", then cut the centre {width}x{height} out (the edges are not seen)")
        else:
            resize = f"scale so the whole picture fits {width}x{height}, centre it, pad with {block['fill']}"
        rows = [("resize", resize), ("interpolation", block["interpolation"]), ("crop", block["crop"]),
                ("channel order the model computes in", block["color"]),
                ("normalization", f"(pixel / {'255' if block['pixel_range'] == '0-1' else '1'} - {block['mean']}) / "
                                  f"{block['std']}, computed by the {block['normalized_by']}"),
                ("hand the model", _FEEDS[block["feed"]])]
        parts.append(f"Preprocessing of image input `{t['name']}` (the manifest's `preprocessing` block; "
                     "`deploykit predict` is the reference implementation):\n\n| step | value |\n| --- | --- |\n"
                     + "\n".join(f"| {k} | {v} |" for k, v in rows))
    return "\n\n".join(parts)


def accelerators_sentence(manifest: dict[str, Any]) -> str:
    """The manifest's ``compatibility.accelerators`` as one sentence of the README's requirements."""
    parts = []
    for a in manifest["compatibility"].get("accelerators") or []:
        if a.get("unavailable"):
            parts.append(f"{a['title']}: {a['unavailable']}")
            continue
        if a["static"]:
            parts.append(f"{a['title']}: {a['ops'] if a['ops'] is not None else '?'} ops read statically (no runtime "
                         "was asked, so nothing proves they run there)")
            continue
        refused = ", ".join(f"`{r['op']}` × {r['count']}" for r in a["refused"][:8]) \
            + (f" and {len(a['refused']) - 8} more op types" if len(a["refused"]) > 8 else "")
        parts.append(f"{a['title']} takes {a['supported']} of {a['ops']} ops" + (f" (refuses {refused})" if refused else ""))
    return ("\n\nAccelerators (deploykit's compatibility analysis, `compatibility.accelerators`): " + "; ".join(parts) + ".") \
        if parts else ""


def requirements_sentence(manifest: dict[str, Any]) -> str:
    c = manifest["compatibility"]
    if manifest["format"] == "executorch":
        r = c["runtime"]
        os_line = f"iOS {c['min_ios']}+" if manifest["platform"] == "ios" else f"Android API {c['min_android_api']}+"
        return (f"{os_line}, ExecuTorch runtime {r['min_version']}+ with the {r['backend']} backend linked "
                f"(delegates: {', '.join(r['delegates']) or 'none, portable kernels only'}).")
    if manifest["format"] == "ncnn":
        from deploykit.bundle.ncnn_code import requirements

        return requirements(manifest)
    if manifest["platform"] == "ios":
        return f"iOS {c.get('min_ios')}+ (Core ML, deployment target {c.get('deployment_target')})."
    return f"Android API {c.get('min_android_api')}+, LiteRT runtime {c.get('min_runtime') or 'any'}+."
