"""The build's signing key: from the file ``[signing] key`` names, or from the environment variable ``key_env``
names (CI: a secret, never the key itself in the config)."""

from __future__ import annotations

import os
from pathlib import Path

from deploykit.orchestration.settings import BuildConfig


def signing_keys(config: BuildConfig) -> tuple:
    from deploykit.bundle.signing import load_signing_key
    from deploykit.core.errors import UsageError

    signing = config.signing
    if signing is None:
        return ()
    if signing.key is not None:
        return (load_signing_key(config.resolve(signing.key)),)
    if signing.key_env is not None:
        import tempfile

        pem = os.environ.get(signing.key_env)
        if not pem:
            raise UsageError(f"signing.key_env: the environment variable {signing.key_env} is not set",
                             hint="export the PEM private key in it (keep the key out of the config file)")
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "signing.key"
            path.write_text(pem, "utf-8")
            path.chmod(0o600)
            return (load_signing_key(path),)
    return ()
