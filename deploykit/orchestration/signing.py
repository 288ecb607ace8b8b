"""The build's signing keys: from the file ``[signing] key`` names, or from the environment variable ``key_env``
names (CI: a secret, never the key itself in the config); likewise the optional model-signing key
(``model_signing_key`` / ``model_signing_key_env``: the ECDSA key of the OpenSSF signature, docs/bundles.md)."""

from __future__ import annotations

import os
from pathlib import Path

from deploykit.orchestration.settings import BuildConfig


def signing_keys(config: BuildConfig) -> tuple:
    from deploykit.bundle.signing import load_signing_key

    signing = config.signing
    if signing is None:
        return ()
    if signing.key is not None:
        return (load_signing_key(config.resolve(signing.key)),)
    if signing.key_env is not None:
        return (_from_env(signing.key_env, "signing.key_env", load_signing_key),)
    return ()


def model_signing_key(config: BuildConfig):
    """The ``ModelSigningKey`` of ``[signing]``, or None when the build makes no model-signing signature."""
    from deploykit.bundle.openssf import load_model_signing_key

    signing = config.signing
    if signing is None:
        return None
    if signing.model_signing_key is not None:
        return load_model_signing_key(config.resolve(signing.model_signing_key))
    if signing.model_signing_key_env is not None:
        return _from_env(signing.model_signing_key_env, "signing.model_signing_key_env", load_model_signing_key)
    return None


def _from_env(variable: str, key: str, load):
    """``load`` the PEM private key held by the environment variable, through a private file (mode 0600)."""
    import tempfile

    from deploykit.core.errors import UsageError

    pem = os.environ.get(variable)
    if not pem:
        raise UsageError(f"{key}: the environment variable {variable} is not set",
                         hint="export the PEM private key in it (keep the key out of the config file)")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "signing.key"
        path.write_text(pem, "utf-8")
        path.chmod(0o600)
        return load(path)
