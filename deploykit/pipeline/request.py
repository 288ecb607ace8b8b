"""``ConvertRequest``: everything one ``convert`` job needs, as typed option groups, checked before any work.

The CLI (``deploykit convert``), ``deploykit build`` and the Python API all build one; nothing downstream
reads a dict of options. The groups are the ones each stage owns: ``ConvertOptions`` (converters),
``QuantizeOptions`` (quantize), ``ImageInputOptions`` (image_io), ``ClassifierOptions`` (labels),
``PassSelection`` (passes) and ``VerifyOptions`` (parity). :func:`request` builds one from the flags as
the CLI spells them, parsing and cross-checking every value (``UsageError`` before anything is loaded).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from deploykit.converters import ConvertOptions, check_coreml_target, check_executorch_backend, parse_routes
from deploykit.passes.registry import PassSelection, parse_passes
from deploykit.quantize.options import QuantizeOptions
from deploykit.targets import DEFAULT, parse_targets


@dataclass(frozen=True)
class VerifyOptions:
    """How an artifact is checked against its source (``deploykit.parity``).

    ``data``: real inputs (a ``.npy`` / ``.npz`` or a folder of images) instead of seeded random ones (drawn in
    the model's stated input domain, and from a narrower range when those are ill-conditioned: ``parity.reference``);
    ``mean`` / ``std`` / ``data_layout`` describe ``data``; ``tolerances``: per-output threshold overrides
    (``parity.profiles.parse_tolerances``); ``profile``: the tolerance profile by name (default: the one the
    artifact's variant maps to); ``localize``: find the first diverging layer when an output fails."""

    samples: int = 8
    data: str | Path | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    data_layout: str | None = None
    seed: int = 0
    tolerances: dict[str, dict[str, float | None]] | None = field(default=None, hash=False)
    localize: bool = False
    profile: str | None = None
    strict: bool = False  # --strict-parity: an inconclusive verdict fails (exit 1) instead of warning

    def for_candidates(self) -> "VerifyOptions":
        """What a conversion ladder checks each candidate with: no localization, that is for the end."""
        return replace(self, localize=False)


@dataclass(frozen=True)
class ConvertRequest:
    """One ``convert`` job. ``verify`` None is ``--no-verify``. ``write_fp32`` False: the fp32 artifact is made
    only as the base the quantized variants derive from (not verified, timed or written): what a build job
    that asks for one variant needs."""

    source: str
    targets: tuple[str, ...] = DEFAULT
    out: Path = Path("dist")
    name: str | None = None
    inputs: Any = None  # --input values ("NAME=1x3x224x224", a list) or {name: shape}, as loaders.load_source takes
    weights: Path | None = None
    allow_h5: bool = False
    convert: ConvertOptions = ConvertOptions()
    quantize: QuantizeOptions = QuantizeOptions()
    images: Any = None  # image_io.spec.ImageInputOptions
    classifier: Any = None  # labels.spec.ClassifierOptions
    detector: Any = None  # detection.options.DetectorOptions (--detector)
    verify: VerifyOptions | None = VerifyOptions()
    passes: PassSelection = PassSelection("auto")
    strict_graph: bool = False
    all_or_nothing: bool = False
    write_fp32: bool = True
    verbose: bool = False

    def schemes(self, target: str) -> tuple[str, ...]:
        """The variants of ``target`` to make, fp32 first (the base the others derive from)."""
        return self.quantize.schemes(target)

    def written(self, scheme: str) -> bool:
        return scheme != "fp32" or self.write_fp32


def request(source, *, to=DEFAULT, out="dist", inputs=None, weights=None, allow_h5=False, coreml_target="iOS16",
            name=None, quantize=None, calibration=None, calibration_samples=None, int8_io=False, keep_float=None,
            per_tensor=False, lut_group_size=None, lut_budget=None, passes=None, strict_graph=False, verify=True,
            verify_options: VerifyOptions | None = None, allow_flex=False, all_or_nothing=False, image_inputs=None,
            classifier=None, executorch_backend="xnnpack", route=None, write_fp32=True, verbose=False,
            auto=None, bias_correction=True, detector=None) -> ConvertRequest:
    """A checked request from the flags as ``deploykit convert`` spells them (the Python API's keywords)."""
    from deploykit.quantize import build_options

    targets = parse_targets(to)
    options = ConvertOptions(coreml_target=check_coreml_target(coreml_target), allow_flex=allow_flex,
                             executorch_backend=check_executorch_backend(executorch_backend),
                             routes=parse_routes(route, targets))
    quantization = build_options(targets, quantize, calibration, calibration_samples, int8_io, keep_float, per_tensor,
                                 lut_group_size, options.coreml_target, lut_budget, auto, bias_correction)
    return ConvertRequest(
        source=str(source), targets=targets, out=Path(out), name=name,
        inputs=inputs or None, weights=Path(weights) if weights else None, allow_h5=allow_h5,
        convert=options, quantize=quantization, images=image_inputs, classifier=classifier, detector=detector,
        verify=(verify_options or VerifyOptions()) if verify else None, passes=parse_passes(passes),
        strict_graph=strict_graph, all_or_nothing=all_or_nothing, write_fp32=write_fp32, verbose=verbose)
