"""The app-facing side of a conversion, resolved once the model is loaded: image inputs and labels."""

from __future__ import annotations

from dataclasses import replace

from deploykit.core.errors import UsageError
from deploykit.core.types import SourceModel


def with_app_io(model: SourceModel, image_inputs, classifier, qopts, checks) -> SourceModel:
    """``model`` with its image inputs (``image_io``) and classifier (``labels``) checked and attached.
    ``checks`` (the request's ``VerifyOptions``, None without parity checking) names the parity pictures,
    read here already so that a broken file fails in a second, not after the conversion."""
    from deploykit.image_io.consistency import check_color
    from deploykit.image_io.spec import parse_image_inputs
    from deploykit.labels.spec import parse_classifier

    images = parse_image_inputs(image_inputs, model.inputs)
    for image in images:
        check_color(model, image.name, image.color)
    if images and qopts.needs_calibration:
        raise UsageError("--image-input with full-integer int8 is not supported yet: its calibration data would "
                         "have to be pixels", hint="use fp16, int8-weights or a lut scheme with --image-input")
    flexible = [image.name for image in images if next(t for t in model.inputs if t.name == image.name).flexible]
    if flexible:
        # The preprocessing block names the one size an app resizes its pictures to.
        raise UsageError(f"--image-input {flexible[0]} with flexible sizes is not supported: an image input's "
                         "preprocessing resizes to one size", hint="give the image input one size, or leave out "
                         "--image-input and feed the flexible input tensors")
    model = replace(model, images=images, classifier=parse_classifier(classifier, model))
    if images and checks is not None and checks.data:
        from deploykit.parity.image_feeds import pixel_inputs

        pixel_inputs(model, {image.name: image for image in images}, samples=checks.samples, data=checks.data, seed=0)
    return model
