"""``deploykit bundle``: converted artifacts -> one signed, reproducible zip per (platform, variant).

Each artifact's target (``deploykit.targets``) says which bundles it gives (a .tflite an Android bundle, an
.mlpackage an iOS bundle, a .pte one of each) and what goes into them.

Per artifact, top to bottom: find its entry in the sibling deploykit-report.json (inputs, outputs,
provenance come from there, never from hand-typed flags: a shape typed by hand drifts from the real
model, the report was measured on it), check the file still has the hash the report recorded, let the
target embed metadata into a private copy (``Target.bundle_payload``; a .pte has no metadata section, its
target only derives its runtime requirements), with a model-signing key sign model/ and assets/ the OpenSSF way
(openssf.py: a second signature, listed as a file), render the app integration files, list every file with
role, length and sha256, validate the manifest against its schema, sign it, and write the zip (temporary
name, then rename). Signed bundles are verified once more after writing.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from deploykit.bundle.archive import write_zip
from deploykit.bundle.chunking import add_chunks
from deploykit.bundle.detector import bundle_labels, described_outputs, manifest_block
from deploykit.bundle.manifest import (
    MANIFEST_NAME,
    MANIFEST_SCHEMA,
    canonical_json,
    check_name,
    check_version,
    default_sequence,
    validate,
)
from deploykit.bundle.openssf import SIGNATURE_PATH, ModelSigningKey, covered, model_signature
from deploykit.bundle.signing import MANIFEST_PAYLOAD_TYPE, SigningKey, sign_envelope
from deploykit.bundle.templates import integration_files, integration_paths, template_root
from deploykit.core.errors import InputError, UsageError
from deploykit.core.hashing import sha256_file, sha256_path
from deploykit.core.types import REPORT_FILENAME, Artifact, ConversionReport
from deploykit.targets import TARGETS, BundleMeta, BundleSlot
from deploykit.targets import get as target_named


@dataclass(frozen=True)
class BundleOptions:
    name: str
    version: str
    out: Path
    sequence: int | None = None
    labels: Path | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    sign_keys: tuple[SigningKey, ...] = ()
    author: str = ""
    license: str = ""
    description: str = ""
    min_android_api: int = 21
    templates: Path | None = None
    report: Path | None = None
    measured: dict | None = None  # deploykit build's figures for the manifest's provenance (one artifact per bundle)
    model_signing_key: ModelSigningKey | None = None  # also write model-signing/model.sig (openssf.py)


@dataclass(frozen=True)
class BuiltBundle:
    path: Path
    sha256: str
    length: int
    manifest: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        m = self.manifest
        return {"bundle": str(self.path), "sha256": self.sha256, "length": self.length, "name": m["name"],
                "version": m["version"], "sequence": m["sequence"], "platform": m["platform"], "variant": m["variant"],
                "files": len(m["files"])}


def bundle(artifacts: Sequence[str | Path], options: BundleOptions) -> list[BuiltBundle]:
    check_name(options.name)
    check_version(options.version)
    sequence = options.sequence if options.sequence is not None else default_sequence(options.version)
    if sequence < 1:
        raise UsageError("--sequence must be a positive integer")
    if (options.mean is None) != (options.std is None):
        raise UsageError("--mean and --std go together")
    labels = _read_labels(options.labels) if options.labels else None
    found = [_find_artifact(Path(a), options.report) for a in artifacts]
    keys = [(slot.platform, bundle_variant(art)) for _, art, _ in found for slot in _slots(art)]
    if len(set(keys)) != len(keys):
        raise UsageError(f"two artifacts for the same (platform, variant): {keys}")
    root = template_root(options.templates)
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    return [_bundle_one(path, art, report, slot, sequence, labels, root, options)
            for path, art, report in found for slot in _slots(art)]


def _slots(artifact: Artifact) -> tuple[BundleSlot, ...]:
    """The bundles one artifact gives (its target decides)."""
    return target_named(artifact.target).bundle_slots(artifact)


def bundle_variant(artifact: Artifact) -> str:
    """The manifest's variant: the artifact's (fp32, fp16, int8 ...), prefixed with the runtime where its target
    shares a platform with another (ExecuTorch bundles sit beside LiteRT and Core ML bundles in one release)."""
    return target_named(artifact.target).bundle_variant(artifact)


def _read_labels(path: Path) -> tuple[str, ...]:
    try:
        text = Path(path).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read labels {path}: {exc}") from None
    labels = tuple(line.rstrip() for line in text.splitlines())
    if not labels or any(not label for label in labels):
        raise InputError(f"{path}: labels must be one non-empty line each")
    return labels


def _find_artifact(path: Path, report_path: Path | None) -> tuple[Path, Artifact, ConversionReport]:
    if not path.exists():
        raise InputError(f"artifact {path} not found")
    report_file = Path(report_path) if report_path else path.parent / REPORT_FILENAME
    if not report_file.is_file():
        raise InputError(f"no {REPORT_FILENAME} next to {path}",
                         hint="bundle the artifacts `deploykit convert --out DIR` wrote (its report carries the "
                              "inputs, outputs and provenance of each artifact), or pass --report")
    try:
        report = ConversionReport.from_json(json.loads(report_file.read_text("utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{report_file} is not a deploykit report: {exc}") from None
    for artifact in report.artifacts:
        if (report_file.parent / artifact.path).resolve() == path.resolve():
            break
    else:
        raise InputError(f"{path} is not listed in {report_file}", hint="run `deploykit convert` again")
    if artifact.target not in TARGETS:
        raise InputError(f"{path}: unknown target {artifact.target!r}")
    if path.is_symlink() or sha256_path(path) != artifact.sha256:
        raise InputError(f"{path} changed since `deploykit convert` recorded it in {report_file.name}",
                         hint="convert again; a bundle must describe exactly the artifact that was checked")
    return path, artifact, report


def _io(artifact: Artifact, labels: tuple[str, ...] | None, options: BundleOptions) -> dict[str, Any]:
    from deploykit.image_io.declare import pixel_normalization, preprocessing_block

    inputs = [dict(t.to_json(), normalization=None, labels=None) for t in artifact.inputs]
    outputs = [dict(t.to_json(), normalization=None, labels=None) for t in artifact.outputs]
    for tensor in inputs:
        if "image" not in tensor:
            continue
        if options.mean is not None or options.std is not None:
            raise UsageError(f"input {tensor['name']!r} was converted with --image-input: its preprocessing is in the "
                             "record already", hint="leave out --mean and --std when bundling it")
        block = tensor["preprocessing"] = preprocessing_block(tensor, target_named(artifact.target).pixel_feed)
        del tensor["image"]
        if block["normalized_by"] == "app":
            tensor["normalization"] = pixel_normalization(block)
    if options.mean is not None:
        targets = [t for t in inputs if t["layout"] in ("NHWC", "NCHW")] or inputs[:1]
        for tensor in targets:
            channels = tensor["shape"][3 if tensor["layout"] == "NHWC" else 1] if tensor["layout"] else None
            for flag, values in (("--mean", options.mean), ("--std", options.std)):
                if len(values) != 1 and len(values) != channels:
                    raise UsageError(f"{flag} has {len(values)} values; input {tensor['name']!r} has {channels} channels")
            if any(s <= 0 for s in options.std):
                raise UsageError("--std values must be positive")
            tensor["normalization"] = {"mean": [float(v) for v in options.mean], "std": [float(v) for v in options.std]}
    if labels:
        classifier = artifact.classifier or {}
        recorded = [t for t in outputs if classifier and (t["name"] in (classifier.get("probabilities_feature"),
                                                                          classifier.get("output"))
                                                           or t.get("original_name") == classifier.get("output"))]
        target = recorded[-1] if recorded else next((t for t in outputs if t["shape"] and t["shape"][-1] == len(labels)), None)
        if target is None:
            shapes = ", ".join(f"{t['name']} {t['shape']}" for t in outputs)
            raise InputError(f"labels file has {len(labels)} lines but no output has {len(labels)} classes ({shapes})")
        target["labels"] = {"path": "assets/labels.txt", "count": len(labels)}
    return {"inputs": inputs, "outputs": outputs}


def _bundle_one(path: Path, artifact: Artifact, report: ConversionReport, slot: BundleSlot, sequence: int,
                labels: tuple[str, ...] | None, root: Path, options: BundleOptions) -> BuiltBundle:
    platform, runtime, fmt = slot
    target = target_named(artifact.target)
    variant = bundle_variant(artifact)
    if artifact.classifier:  # labels given at conversion (--labels): the record carries them
        if labels is not None and tuple(labels) != tuple(artifact.classifier["labels"]):
            raise UsageError(f"{path.name} was converted with other labels ({len(artifact.classifier['labels'])}); "
                             "a Core ML classifier carries them in its program", hint="leave out --labels when bundling it")
        labels = tuple(artifact.classifier["labels"])
    detector = None
    if artifact.detector:  # --detector: the labels name the classes of the detections, not an output's axis
        labels = bundle_labels(artifact.detector, labels, path.name)
        detector = manifest_block(artifact.detector, labels)
    io = _io(artifact, None if detector else labels, options)
    with tempfile.TemporaryDirectory(prefix="deploykit-bundle-") as scratch:
        meta = BundleMeta(name=options.name, version=options.version, description=options.description or options.name,
                          author=options.author, license=options.license, inputs=tuple(io["inputs"]),
                          outputs=described_outputs(io["outputs"], detector, labels) if detector else tuple(io["outputs"]),
                          labels=labels, sequence=sequence,
                          min_android_api=options.min_android_api, tool_versions=dict(report.tool_versions or {}))
        payload = target.bundle_payload(path, artifact, slot, Path(scratch), meta)
        compat, embedded = dict(payload.compatibility), list(payload.embedded)
        accelerators = manifest_accelerators(getattr(artifact, "compatibility", None))
        if accelerators:
            compat["accelerators"] = accelerators
        files: dict[str, tuple[str, bytes | Path]] = {name: ("model", src) for name, src in payload.files.items()}
        if labels and not detector:  # a detector's labels are in its manifest block and its helpers
            files["assets/labels.txt"] = ("labels", ("\n".join(labels) + "\n").encode("utf-8"))
        manifest = {
            "schema": MANIFEST_SCHEMA, "name": options.name, "version": options.version, "sequence": sequence,
            "platform": platform, "runtime": runtime, "format": fmt, "variant": variant,
            "model": target.bundle_model, "io": io, "compatibility": compat,
            "metadata": {"author": options.author, "license": options.license, "description": options.description},
            "provenance": {
                "source": {k: report.source.get(k, "") for k in ("sha256", "framework", "format", "name")},
                "deploykit_version": report.deploykit_version, "tool_versions": dict(report.tool_versions),
                "converter": artifact.converter, "artifact_sha256": artifact.sha256,
                "quantization": _without_timings(artifact.quantization), "passes": [dict(p) for p in artifact.passes],
                "parity": _parity_summary(artifact.parity), "embedded_metadata": embedded,
                **({"measured": options.measured} if options.measured else {}),
            },
            **({"detector": detector} if detector else {}),
        }
        bundle_file = f"{options.name}-{options.version}-{platform}-{variant}.zip"
        key = options.sign_keys[0].public if options.sign_keys else None
        code = integration_paths(platform, fmt, manifest)
        if options.model_signing_key is not None:  # over model/ and assets/, so before the integration code lists it
            signed = {p: src for p, (_, src) in files.items() if covered(p)}
            others = [p for p in files if not covered(p)] + list(code) + [SIGNATURE_PATH]
            files[SIGNATURE_PATH] = ("signature", model_signature(signed, others, Path(bundle_file).stem,
                                                                  options.model_signing_key))
        listed = sorted([{"path": p, "role": r} for p, (r, _) in files.items()]
                        + [{"path": p, "role": "integration"} for p in code], key=lambda f: f["path"])
        rendered = integration_files(manifest, bundle_file, key.raw if key else None, key.keyid if key else None, root, listed)
        files.update({p: ("integration", data) for p, data in rendered.items()})
        manifest["files"] = [_entry(p, role, src) for p, (role, src) in sorted(files.items())]
        sources = {p: src for p, (_, src) in files.items()}
        add_chunks(manifest["files"], sources, target.weight_spans(sources))  # what a delta update fetches (chunking.py)
        validate(manifest, "manifest", f"manifest of {bundle_file}", error=InputError)
        envelope = sign_envelope(canonical_json(manifest), MANIFEST_PAYLOAD_TYPE, options.sign_keys)
        target = Path(options.out) / bundle_file
        write_zip(target, [(MANIFEST_NAME, envelope)] + [(p, src) for p, (_, src) in sorted(files.items())])
    if options.sign_keys:
        from deploykit.bundle.verify import verify_bundle

        try:
            verify_bundle(target, [k.public for k in options.sign_keys])  # the writer's own self-check
        except BaseException:
            target.unlink(missing_ok=True)  # never leave a bundle that fails its own verification
            raise
    return BuiltBundle(path=target, sha256=sha256_file(target), length=target.stat().st_size, manifest=manifest)


def _entry(path: str, role: str, src: bytes | Path) -> dict[str, Any]:
    if isinstance(src, (bytes, bytearray)):
        import hashlib

        return {"path": path, "role": role, "length": len(src), "sha256": hashlib.sha256(src).hexdigest()}
    return {"path": path, "role": role, "length": Path(src).stat().st_size, "sha256": sha256_file(src)}


def manifest_accelerators(block: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The record's compatibility analysis as a manifest carries it: per accelerator its name, title, ops, how many
    it takes (None for a static reading or one not checked), the op types it refuses with their counts, whether the
    reading was static (no runtime asked) and, for an accelerator the analyzer could not check, why. The analyzer's
    per-op reasons and notes stay in the record and the report: an app acts on the counts. Empty when the whole
    analysis was unavailable or not made."""
    if not block or "unavailable" in block:
        return []
    static = bool(block.get("static"))
    return [{"name": a["name"], "title": a.get("title") or a["name"], "ops": a.get("ops"),
             "supported": a.get("supported"),
             "static": (static or bool(a.get("static")) or a.get("supported") is None) and not a.get("unavailable"),
             "refused": [{"op": str(r["op"]), "count": int(r["count"])} for r in a.get("refused") or []],
             **({"unavailable": a["unavailable"]} if a.get("unavailable") else {})}
            for a in block.get("accelerators") or []]


def _without_timings(record: Any) -> Any:
    """``record`` without its ``seconds`` entries: how long a step took differs from run to run, and a bundle is
    byte-identical whoever builds it (a build's fanned-out slices and a local build give the same signed zips)."""
    if isinstance(record, dict):
        return {k: _without_timings(v) for k, v in record.items() if k != "seconds"}
    if isinstance(record, list):
        return [_without_timings(v) for v in record]
    return record


def _parity_summary(parity: dict[str, Any] | None) -> dict[str, Any] | None:
    """The scalar top-level facts of the parity report (passed, metrics, tolerance profile): small and stable."""
    if parity is None:
        return None
    import math

    summary = {}
    for key, value in parity.items():
        if isinstance(value, float) and not math.isfinite(value):
            summary[key] = str(value)  # canonical JSON has no NaN/Infinity
        elif isinstance(value, (bool, int, float, str)) or value is None:
            summary[key] = value
    return summary
