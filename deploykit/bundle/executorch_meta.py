"""What an ExecuTorch bundle declares about its runtime: minimum OS, minimum ExecuTorch version, backend, delegates.

A ``.pte`` carries no metadata section (unlike TFLite's TFLITE_METADATA or Core ML's model description),
so nothing is embedded; this module only derives the manifest's ``compatibility`` block from the convert
record. Nothing here imports executorch's Python package: the version is read from its distribution
metadata, and the delegates come from the record's own sentences (``passes[-1]["notes"]``).

Minimum OS versions, each decision with its source:
- Android API 23: the ``org.pytorch:executorch-android`` AAR is built with ``minSdk = 23``
  (pytorch/executorch, extension/android/executorch_android/build.gradle), so an app that links it
  declares at least that. A higher ``--min-android-api`` is kept.
- iOS 17.0: the Swift PM package of ExecuTorch's docs ("Using ExecuTorch on iOS", Package.swift
  example) declares ``platforms: [.iOS(.v17), ...]``; its prebuilt xcframeworks target that release.
"""

from __future__ import annotations

import re
from typing import Any

from deploykit.core.types import Artifact

MIN_ANDROID_API = 23
MIN_IOS = "17.0"
BACKENDS = ("xnnpack", "coreml", "portable")
_DELEGATED = re.compile(r"delegated to ([A-Za-z][A-Za-z0-9_]*)")


def runtime_version(tool_versions: dict[str, str]) -> str:
    """The ExecuTorch version that wrote the program (the record's, else the installed one): a runtime at least
    this new reads it."""
    from importlib import metadata

    if tool_versions.get("executorch"):
        return tool_versions["executorch"]
    try:
        return metadata.version("executorch")
    except metadata.PackageNotFoundError:
        from deploykit.core.errors import InputError

        raise InputError("the record does not say which ExecuTorch version wrote the .pte, and executorch is not "
                         "installed here", hint="bundle on the machine that converted it") from None


def delegation(artifact: Artifact) -> tuple[list[str], list[str]]:
    """(delegates named in the record's delegation sentences, those sentences)."""
    notes = [n for n in (artifact.passes[-1].get("notes", []) if artifact.passes else []) if "delegated to" in n]
    delegates: list[str] = []
    for note in notes:
        delegates.extend(d for d in _DELEGATED.findall(note) if d not in delegates)
    return delegates, notes


def compatibility(artifact: Artifact, platform: str, min_android_api: int, tool_versions: dict[str, str]) -> dict[str, Any]:
    backend = (artifact.quantization or {}).get("backend", "portable")
    if backend not in BACKENDS:
        from deploykit.core.errors import InputError

        raise InputError(f"{artifact.path}: unknown ExecuTorch backend {backend!r} in the record")
    if backend == "coreml" and platform == "android":
        from deploykit.core.errors import InputError

        raise InputError(f"{artifact.path} delegates to ExecuTorch's Core ML backend, which runs on Apple platforms only",
                         hint="convert with --executorch-backend xnnpack for Android")
    delegates, notes = delegation(artifact)
    version = runtime_version(tool_versions)
    runtime = {"name": "executorch", "min_version": version, "backend": backend, "delegates": delegates}
    if notes:
        runtime["delegation"] = notes[0]
    return {"min_ios": MIN_IOS if platform == "ios" else None,
            "min_android_api": max(min_android_api, MIN_ANDROID_API) if platform == "android" else None,
            "min_runtime": version, "deployment_target": None, "runtime": runtime}
