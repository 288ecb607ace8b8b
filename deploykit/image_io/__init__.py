"""Image inputs: a model that takes the pixels an app has, with its preprocessing inside the artifact.

``--image-input NAME`` declares that the source's input ``NAME`` is an image after a fixed
preprocessing: channel order (``--color``), the pixel range the normalization starts from
(``--pixel-range 0-255`` or ``0-1``) and ``--mean`` / ``--std`` per channel in that range's units.
The artifact then takes pixels:

- Core ML: the program's input is declared an image (``imageType``, RGB / BGR / grayscale), which
  Vision and ``CVPixelBuffer`` feed directly. Core ML hands the program the pixels as float values
  0-255 in the declared channel order; the normalization is the first ops of the program.
- TFLite: a ``uint8`` input, channels last, RGB (or grayscale), with the normalization (and a
  BGR source's channel reversal) as the graph's first ops. ``--image-input-dtype float32`` leaves
  the TFLite input as the source's float tensor instead, the normalization to the app (the bundle's
  metadata carries it as ``NormalizationOptions``).

How: the source is wrapped before conversion (``wrap``: one small module per framework) by a
preamble that computes ``(pixels / divisor - mean) / std`` in the source's channel order and layout,
so every conversion path, ladder rung and quantized variant gets the same graph. Decision: the
normalization is always explicit ops rather than ``ct.ImageType(scale=, bias=)``: coremltools
lowers those to the same ``mul`` / ``add`` at the top of the program, ImageType cannot express a
per-channel std, and onnx2coreml (the direct ONNX path) takes no ImageType; the image declaration is
then set on the converted package's description (``coreml_image``), one code path for every converter.

Parity (``deploykit.parity``) runs on pixels: the source gets the float tensor after the declared
preprocessing (computed in numpy, independently of the wrapper), the artifact the raw pixels, and
the two must agree. Without ``--data`` the pixels are generated, natural-looking test images
(``sample_images``).
"""
