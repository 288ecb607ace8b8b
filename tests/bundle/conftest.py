"""Shared fixtures: one real conversion per session, keys, real signed bundles, a published repository."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bundle.bundle_helpers import LABELS, make_bundles


@pytest.fixture(scope="session")
def converted(tmp_path_factory) -> Path:
    """A real Keras model converted by ``deploykit.convert`` to .tflite and .mlpackage, with its report."""
    from tests.zoo.keras_nets import build

    import deploykit

    root = tmp_path_factory.mktemp("converted")
    source = root / "mobilenet.keras"
    build("mobilenet").save(source)
    deploykit.convert(source, to=("tflite", "coreml"), out=root / "dist")
    return root / "dist"


@pytest.fixture(scope="session")
def keys(tmp_path_factory):
    """The publisher's key pair and an attacker's, as (SigningKey, PublicKey, paths)."""
    from deploykit.bundle.signing import generate_keypair, load_public_key, load_signing_key

    root = tmp_path_factory.mktemp("keys")
    pairs = {}
    for who in ("publisher", "attacker", "second"):
        private, public, _ = generate_keypair(root, who)
        pairs[who] = (load_signing_key(private), load_public_key(public), private, public)
    return pairs


@pytest.fixture(scope="session")
def labels_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("labels") / "labels.txt"
    path.write_text("\n".join(LABELS) + "\n")
    return path


@pytest.fixture(scope="session")
def bundles(converted, keys, labels_file, tmp_path_factory):
    """Signed bundles {"android": path, "ios": path} of version 1.2.0. Tests copy before they tamper."""
    return make_bundles(converted, tmp_path_factory.mktemp("bundles"), [keys["publisher"][0]], labels_file)


@pytest.fixture
def repo_with_release(tmp_path, bundles, keys):
    """A repository with 1.2.0 published to 'stable' at 100%."""
    from deploykit.bundle.repository import publish

    repo = tmp_path / "repo"
    publish(list(bundles.values()), repo, "stable", keys["publisher"][0])
    return repo
