"""Compression decided layer by layer: how much each layer's weights can lose, measured.

``--quantize auto`` and ``--localize`` on a compressed variant rest on one idea: a layer's weights can be
compressed in a copy of the fp32 artifact without converting anything (``choices`` emulates what each
scheme stores, ``layers`` patches them into the artifact and runs it), so the error each layer causes
alone, and any per-layer assignment, is measured on the artifact's own runtime (LiteRT, deploykit's
Core ML evaluator) in milliseconds. ``search`` turns those measurements into the smallest assignment
within a budget, which the target then makes for real and checks end to end; ``localize`` ranks where
a variant's error comes from; ``repair`` keeps the fewest layers in float when a plain variant fails.
"""
