"""Make a saved .mlpackage byte-identical for the same model: the same conversion twice gives the same sha256.

coremltools writes two things that change from run to run although the model does not (measured: two
conversions of one network differed in exactly these two files): ``Manifest.json`` names its items by
random UUIDs, and ``model.mlmodel`` is serialized with protobuf's map order, which is not stable. The
identifiers are only keys inside the manifest, so they are replaced by UUIDs derived from each item's
path; the specification is re-serialized deterministically. Records, bundles and incremental builds
(`deploykit build`) compare artifacts by hash, so an unchanged model must not look changed.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

_NAMESPACE = uuid.UUID("6f1b4c8e-2d5a-4e7b-9c3f-0a1d2e3f4b5c")


def make_reproducible(package: Path) -> None:
    from deploykit.core.atomic import write_bytes_atomic
    from deploykit.formats.coreml.metadata import read_spec, spec_path

    manifest_path = package / "Manifest.json"
    manifest = json.loads(manifest_path.read_text("utf-8"))
    renamed = {key: str(uuid.uuid5(_NAMESPACE, entry["path"])) for key, entry in manifest["itemInfoEntries"].items()}
    manifest["itemInfoEntries"] = {renamed[key]: entry for key, entry in sorted(manifest["itemInfoEntries"].items(),
                                                                                key=lambda item: item[1]["path"])}
    manifest["rootModelIdentifier"] = renamed[manifest["rootModelIdentifier"]]
    write_bytes_atomic(manifest_path, (json.dumps(manifest, indent=4) + "\n").encode("utf-8"))
    spec = read_spec(package)
    write_bytes_atomic(spec_path(package), spec.SerializeToString(deterministic=True))
