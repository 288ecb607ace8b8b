"""Detectors an app can use as they come: the head's decode and non-maximum suppression put inside the artifact.

``options`` (what ``--detector`` asks for), ``presets`` (fitting a preset to a model's outputs: a ``Head``),
``decode`` and ``nms`` (the numpy reference every artifact is checked against), ``match`` (box-level parity),
``outputs`` (reading an artifact's detections back), ``tflite_postprocess`` and ``coreml_postprocess`` (what
each target appends to its artifact), ``frame`` (boxes from the model input's pixels to the picture's) and
``draw`` (a picture with its boxes, for ``predict --draw``). See docs/detection.md.
"""
