"""Versions of the tools a run used, read from package metadata (no imports): the source's framework, each
target's runtime (``Target.tool_packages``), each conversion path's converters (``converters.PATH_PACKAGES``)
and the engines of the variants made (``Target.variant_packages``)."""

from __future__ import annotations

from importlib import metadata

SOURCE_PACKAGES = {
    "keras": ("tensorflow", "keras"),
    "torch": ("torch",),
    "onnx": ("onnx", "onnxruntime"),
}


def version_of(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def tool_versions(framework: str, targets: tuple[str, ...]) -> dict[str, str]:
    from deploykit.converters import PATH_PACKAGES
    from deploykit.core.version import __version__
    from deploykit.targets import get

    packages = {"numpy", *SOURCE_PACKAGES.get(framework, ())}
    for name in targets:
        packages.update(get(name).tool_packages)
        packages.update(PATH_PACKAGES.get((framework, name), ()))
    versions = {p: version_of(p) for p in sorted(packages)}
    versions["deploykit"] = __version__
    return versions


def record_versions(framework: str, targets: tuple[str, ...], artifacts) -> dict[str, str]:
    """The path's tools plus the quantizers that made the artifacts' variants."""
    from deploykit.converters.onnx_export import route_packages
    from deploykit.targets import get

    versions = tool_versions(framework, targets)
    for artifact in artifacts:
        packages = get(artifact.target).variant_packages(artifact.variant) + route_packages(artifact.converter,
                                                                                          artifact.target)
        for package in packages:
            versions[package] = version_of(package)
    return dict(sorted(versions.items()))
