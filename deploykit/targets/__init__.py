"""The targets deploykit converts to, each described once (``deploykit.targets.base.Target``).

This is the catalogue: a new target is one module of this folder plus one line in ``_CATALOGUE``. Every
stage that must tell targets apart (the pipeline, parity, predict, bench, inspect, the report, bundles,
build gates) asks here, by name, by an artifact's suffix, or by a bundle's platform and variant.
"""

from __future__ import annotations

from pathlib import Path

from deploykit.core.errors import InputError, UsageError
from deploykit.targets import coreml, executorch, ncnn, tflite
from deploykit.targets.base import BundleMeta, BundleSlot, Made, Payload, Target, VariantContext

_CATALOGUE = (tflite.TARGET, coreml.TARGET, executorch.TARGET, ncnn.TARGET)
TARGETS: dict[str, Target] = {target.name: target for target in _CATALOGUE}
DEFAULT = ("tflite", "coreml")  # what --to means when it is not given

__all__ = ["TARGETS", "DEFAULT", "Target", "Made", "VariantContext", "BundleSlot", "BundleMeta", "Payload", "get",
           "for_path", "for_bundle", "parse_targets", "runner_for"]


def get(name: str) -> Target:
    try:
        return TARGETS[name]
    except KeyError:
        raise UsageError(f"unknown target {name!r}", hint=f"targets are: {', '.join(TARGETS)}") from None


def for_path(path) -> Target:
    """The target of an artifact, from its suffix (``model.fp16.tflite``, ``model.mlpackage/``, ``model.pte``)."""
    suffix = Path(str(path).rstrip("/")).suffix.lower()
    for target in _CATALOGUE:
        if suffix == target.suffix or suffix in target.also_reads:
            return target
    known = ", ".join(t.suffix for t in _CATALOGUE)
    raise InputError(f"cannot tell the artifact type of {path}", hint=f"deploykit reads these artifacts: {known}")


def runner_for(path, target: str | None = None, **options):
    """The runner of an artifact on this machine (its target from ``target`` or the suffix)."""
    if not Path(path).exists():
        raise InputError(f"artifact not found: {path}")
    return (get(target) if target else for_path(path)).runner(path, **options)


def for_bundle(platform: str, variant: str) -> tuple[Target, str]:
    """The target that made a bundle of ``platform`` and manifest ``variant``, and the artifact's own variant."""
    for target in sorted(_CATALOGUE, key=lambda t: -len(t.variant_prefix)):
        slots = target.bundle_slots(_AnyArtifact)
        if any(slot.platform == platform for slot in slots) and variant.startswith(target.variant_prefix):
            return target, variant[len(target.variant_prefix):]
    raise InputError(f"no target makes {platform} bundles of variant {variant!r}")


def parse_targets(value: str | tuple | list) -> tuple[str, ...]:
    """``--to tflite,coreml`` as target names, checked, in the order given, without repeats."""
    items = [t.strip().lower() for t in (value.split(",") if isinstance(value, str) else value) if t.strip()]
    if not items:
        raise UsageError("no target given", hint="use --to tflite, --to coreml or --to tflite,coreml")
    unknown = [t for t in items if t not in TARGETS]
    if unknown:
        raise UsageError(f"unknown target {', '.join(unknown)}", hint=f"targets are: {', '.join(TARGETS)}")
    return tuple(dict.fromkeys(items))


class _AnyArtifact:
    """Stands for an artifact whose record is unknown: every platform its target can make bundles for."""

    quantization = None
