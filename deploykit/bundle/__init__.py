"""Signed, versioned, reproducible model bundles and a self-hosted over-the-air channel.

One module per responsibility, read top to bottom in the order data flows:

    signing.py      Ed25519 keys, key ids, DSSE envelopes (sign / verify before parsing)
    openssf.py      the second signature: OpenSSF model signing over model/ and assets/, its ECDSA key
                    (model_signing_facade.py: the one place model-signing is called)
    manifest.py     the manifest's JSON Schema (schemas/), canonical JSON, the typed view
    templates.py    Swift / Kotlin / README integration files rendered from the manifest
    readme_sections.py  the README's prose sections (I/O tables, preprocessing, requirements, accelerators)
    archive.py      deterministic zip writing; defensive zip reading with limits
    chunking.py     where files are cut into content-addressed chunks (per tensor, content-defined elsewhere)
    builder.py      artifacts + report -> bundles; each artifact's target says which bundles it gives and
                    embeds its metadata (formats/tflite/metadata.py, formats/coreml/metadata.py)
                                                                        (deploykit bundle)
    verify.py       full verification and safe unpacking               (deploykit verify-bundle)
    repository.py   static repository, signed channel index, rollouts  (deploykit publish)
    fetch.py        capped HTTP / directory reads
    delta.py        delta updates: the repository's chunk store, the client's rebuild from chunks
    client.py       the reference client                               (deploykit pull)
    experiment.py   experiments in the channel index: arms, shares, assignment (deploykit experiment start | end)
    events.py       the experiment event log and its per-arm summary      (deploykit experiment report)

Heavy imports (cryptography, jsonschema, ai_edge_litert, coremltools protobufs) happen inside the
functions that need them, so importing this package costs almost nothing.
"""

from __future__ import annotations

from deploykit.bundle.archive import Limits
from deploykit.bundle.builder import BuiltBundle, BundleOptions, bundle
from deploykit.bundle.client import ArmReport, PullResult, pull, record_event
from deploykit.bundle.events import summarize
from deploykit.bundle.experiment import ArmSpec, ExperimentOptions, end_experiment, start_experiment
from deploykit.bundle.openssf import generate_model_signing_keypair, load_model_signing_key
from deploykit.bundle.repository import PublishResult, publish
from deploykit.bundle.signing import generate_keypair, load_public_key, load_signing_key
from deploykit.bundle.verify import VerifiedBundle, verify_bundle

__all__ = [
    "ArmReport", "ArmSpec", "BundleOptions", "BuiltBundle", "ExperimentOptions", "Limits", "PublishResult", "PullResult",
    "VerifiedBundle", "bundle", "end_experiment", "generate_keypair", "generate_model_signing_keypair",
    "load_model_signing_key", "load_public_key", "load_signing_key", "publish", "pull", "record_event",
    "start_experiment", "summarize", "verify_bundle",
]
