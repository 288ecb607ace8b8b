"""The record's view of image inputs: which artifact inputs take pixels, and how."""

from __future__ import annotations

from dataclasses import replace


def declared_images(specs, images, feed) -> tuple:
    """``specs`` (an artifact's inputs) with ``image`` set on those that are image inputs: the preprocessing
    and what the app hands over (``pixels``); ``feed`` is the target's ``image_io.feeds.PixelFeed``."""
    if not images:
        return specs
    by_name = {image.name: image for image in images}
    out = []
    for spec in specs:
        image = by_name.get(spec.original_name or spec.name)
        if image is None:
            out.append(spec)
            continue
        described = {**image.to_json(), "pixels": feed.describe(image)}
        if feed.kind == "image":
            del described["dtype"]  # what a tensor input takes; an image input is always pixels
        out.append(replace(spec, image=described))
    return tuple(out)


def preprocessing_block(tensor: dict, feed) -> dict:
    """The manifest's ``preprocessing`` for an artifact input recorded with ``image`` (schema: manifest.schema.json)."""
    image = tensor["image"]
    shape, layout = tensor["shape"], tensor.get("layout")
    size = [shape[2], shape[3]] if layout == "NCHW" else [shape[1], shape[2]]
    how, by = feed.preprocessing(image.get("dtype"))
    return {"size": [int(v) for v in size], "resize": image.get("resize", "stretch"), "crop": image.get("crop", "none"),
            "crop_fraction": float(image.get("crop_fraction", 1.0)), "interpolation": image.get("interpolation", "bilinear"),
            "fill": int(image.get("fill", 0)), "color": image["color"], "pixel_range": image["pixel_range"],
            "mean": [float(v) for v in image["mean"]], "std": [float(v) for v in image["std"]],
            "normalized_by": by, "feed": how}


def pixel_normalization(block: dict) -> dict:
    """``(pixel - mean) / std`` on 0-255 pixel values: the block's normalization as TFLite's
    NormalizationOptions and the templates apply it (mean and std scaled by the range's divisor)."""
    divisor = 255.0 if block["pixel_range"] == "0-1" else 1.0
    return {"mean": [v * divisor for v in block["mean"]], "std": [v * divisor for v in block["std"]]}
