"""OpenSSF model signing: a second signature, over a bundle's model files, that a security team checks without
deploykit (``model_signing verify key``).

deploykit's own signature (signing.py) is an Ed25519 DSSE envelope over the manifest: it covers every file of the
bundle (each one's length and sha256) with the bundle's name, version, sequence, compatibility and provenance, and it
is what the reference client and the app templates check. This one, ``model-signing/model.sig`` inside the bundle, is
the OpenSSF format (a Sigstore bundle over an in-toto statement, model_signing_facade.py): it covers what an app
loads, every file under ``model/`` and ``assets/``, and nothing else; the statement records the bundle's other
top-level entries (``integration/``, ``manifest.json``, ``model-signing/``) as ignored, so ``model_signing verify``
runs on the unpacked bundle as it is and refuses a changed, missing or extra file under ``model/`` or ``assets/``.

Decisions:
- A second key. model-signing 1.1.1 signs with ECDSA and takes elliptic-curve keys on NIST P-256, P-384 and P-521
  only (``sign_ec_key._check_supported_ec_key``: the curves of Sigstore's key details); an Ed25519 key is not one
  (it has no ``curve`` and signs EdDSA), so deploykit's key cannot make this signature. ``deploykit keygen
  --model-signing`` makes a P-256 pair, ``NAME.ms.key`` / ``NAME.ms.pub`` (ECDSA-SHA256: the curve every Sigstore
  and cosign tool takes); a P-384 or P-521 key made elsewhere (a security team's own) is accepted too.
- The model-signing signature is listed in the manifest (role ``signature``), so deploykit's signature covers it;
  it cannot cover ``manifest.json`` in turn (the manifest holds its hash).
- Reproducible: the same files and key give the same signature bytes (sorted statement, RFC 6979 nonces, the bundle
  file's stem as the statement's subject name), so bundles stay byte-identical.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from deploykit.bundle.manifest import MANIFEST_NAME
from deploykit.bundle.signing import _read_small, _write_private
from deploykit.core.errors import InputError, UnsafeInputError

SIGNATURE_DIR = "model-signing"
SIGNATURE_PATH = f"{SIGNATURE_DIR}/model.sig"  # inside the bundle; the library's default file name
SIGNED_DIRS = ("model", "assets")  # what the signature covers: the files an app loads
CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}  # what model-signing 1.1.1 takes


@dataclass(frozen=True)
class ModelSigningKey:
    """An ECDSA private key for model-signing, with its public key as model-signing names it."""

    public_pem: bytes  # SubjectPublicKeyInfo PEM: what `model_signing verify key --public_key` reads
    curve: str  # P-256, P-384 or P-521
    private: Any = field(repr=False, compare=False)  # cryptography EllipticCurvePrivateKey

    @property
    def hint(self) -> str:
        """sha256 of the public PEM: what the signature's ``verificationMaterial.publicKey.hint`` holds."""
        return hashlib.sha256(self.public_pem).hexdigest()


def _from_private(key) -> ModelSigningKey:
    from cryptography.hazmat.primitives import serialization

    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return ModelSigningKey(public_pem=pem, curve=CURVES[key.curve.name], private=key)


def generate_model_signing_keypair(out_dir: str | Path, name: str = "deploykit",
                                   force: bool = False) -> tuple[Path, Path, str]:
    """Write ``<name>.ms.key`` (P-256, PKCS#8 PEM, mode 0600 from creation on) and ``<name>.ms.pub`` (PEM) into
    ``out_dir``. Returns (private path, public path, hint). Refuses to overwrite a key unless ``force``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    private_path, public_path = out / f"{name}.ms.key", out / f"{name}.ms.pub"
    if not force and (private_path.exists() or public_path.exists()):
        raise InputError(f"{private_path} or {public_path} already exists", hint="pass --force to replace the key pair")
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    made = _from_private(key)
    _write_private(private_path, pem)
    tmp = public_path.with_name(f".{public_path.name}.tmp")
    tmp.write_bytes(made.public_pem)
    os.replace(tmp, public_path)
    return private_path, public_path, made.hint


def load_model_signing_key(path: str | Path) -> ModelSigningKey:
    """Read an unencrypted PEM EC private key on a curve model-signing takes; like ssh, refuse one others can read."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = Path(path)
    data = _read_small(path, "model-signing key")
    if os.name == "posix" and stat.S_IMODE(path.stat().st_mode) & 0o077:
        raise UnsafeInputError(f"model-signing key {path} is readable by other users", hint=f"chmod 600 {path}")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise InputError(f"{path} is not an unencrypted PEM private key: {exc}") from None
    make = "create one with `deploykit keygen --model-signing --out DIR`"
    if isinstance(key, Ed25519PrivateKey):
        raise InputError(f"{path} is an Ed25519 key: model-signing signs with ECDSA on P-256, P-384 or P-521",
                         hint=f"deploykit's own key signs the manifest (--sign-key); {make}")
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name not in CURVES:
        raise InputError(f"{path} is not an elliptic-curve key on P-256, P-384 or P-521 (what model-signing takes)",
                         hint=make)
    return _from_private(key)


def covered(path: str) -> bool:
    """Whether the model-signing signature covers this bundle path."""
    return path.split("/", 1)[0] in SIGNED_DIRS


def model_signature(files: Mapping[str, bytes | Path], others: Iterable[str], subject: str,
                    key: ModelSigningKey) -> bytes:
    """The bytes of ``model-signing/model.sig`` for a bundle: ``files`` (bundle path -> content or file) are the
    bundle's files under model/ and assets/, ``others`` the bundle's other paths, ``subject`` the statement's name
    (the bundle file's stem). The signature is checked with model-signing's own verifier before it is returned."""
    from deploykit.bundle import model_signing_facade as facade

    if stray := sorted(p for p in files if not covered(p)):
        raise ValueError(f"not under {', '.join(SIGNED_DIRS)}: {stray}")
    tops = {p.split("/", 1)[0] for p in others if not covered(p)}
    ignored = sorted(tops | {MANIFEST_NAME, SIGNATURE_DIR})
    with tempfile.TemporaryDirectory(prefix="deploykit-model-signing-") as scratch:
        root = Path(scratch) / subject  # the directory's name is the statement's subject
        for name, src in files.items():
            target = root / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(src, (bytes, bytearray)):
                target.write_bytes(src)
            else:
                _link_or_copy(Path(src), target)
        signature = facade.sign_directory(root, key.private, ignored)
        facade.verify_directory(root, signature, key.public_pem, f"model-signing signature of {subject}")
    return signature


def _link_or_copy(src: Path, target: Path) -> None:
    try:
        os.link(src, target)  # no copy of a large model when the scratch folder is on the same file system
    except OSError:
        shutil.copyfile(src, target)
