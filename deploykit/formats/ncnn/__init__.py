"""NCNN artifacts: the ``.param`` text graph and its ``.bin`` weights (``param``), and where the pair sits (``pair``)."""
