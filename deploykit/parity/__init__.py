"""Parity: does the artifact compute what the source computes?

    from deploykit.pipeline.verify import verify
    report = verify("model.pt2", "dist/model.fp32.mlpackage")   # ParityReport, truthy when it passed

Modules: ``inputs`` (seeded random samples or real data), ``metrics`` (small pure functions),
``profiles`` (tolerances as data, with reasons), ``compare`` (ParityReport), ``localize`` (first
diverging layer), ``report`` (terminal table, JSON, JUnit XML), ``verify`` (the whole check).
Nothing heavy is imported until a check runs.
"""
