"""Ed25519 keys and DSSE envelopes: how manifests and channel indexes are signed and checked.

Decisions:
- Ed25519 (RFC 8032): small keys, deterministic signatures (so the same key and manifest give the same
  bundle bytes), and available on device without extra code (CryptoKit ``Curve25519.Signing``; Tink on Android).
- Key id = sha256 of the 32-byte raw public key, as hex. It names a key; it never grants trust.
- What is signed is a DSSE envelope (the format of in-toto and sigstore model signing):
  ``{"payloadType", "payload": base64(exact bytes), "signatures": [{"keyid", "sig"}]}`` with the
  signature over ``PAE(payloadType, payload)``. The verifier checks the signature over the exact
  payload bytes *before* parsing them, so no parser ever sees unauthenticated manifest content, and the
  payload type binds a signature to its role (a signed manifest can't be replayed as a channel index).
- Threshold: ``verify_envelope`` counts *distinct trusted key ids* with a valid signature, so one key
  listed or used twice counts once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from deploykit.core.errors import InputError, IntegrityError, UnsafeInputError

MANIFEST_PAYLOAD_TYPE = "application/vnd.deploykit.manifest+json"
CHANNEL_PAYLOAD_TYPE = "application/vnd.deploykit.channel+json"
MAX_ENVELOPE_BYTES = 1 << 20  # a manifest of 10,000 files fits; anything larger is refused unread


@dataclass(frozen=True)
class PublicKey:
    keyid: str
    raw: bytes  # 32 bytes

    def verify(self, signature: bytes, data: bytes) -> bool:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        try:
            Ed25519PublicKey.from_public_bytes(self.raw).verify(signature, data)
            return True
        except InvalidSignature:
            return False


@dataclass(frozen=True)
class SigningKey:
    public: PublicKey
    private: Any = field(repr=False, compare=False)  # cryptography Ed25519PrivateKey

    @property
    def keyid(self) -> str:
        return self.public.keyid

    def sign(self, data: bytes) -> bytes:
        return self.private.sign(data)


def keyid_of(raw_public: bytes) -> str:
    return hashlib.sha256(raw_public).hexdigest()


def _public_from_object(key) -> PublicKey:
    from cryptography.hazmat.primitives import serialization

    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return PublicKey(keyid=keyid_of(raw), raw=raw)


def generate_keypair(out_dir: str | Path, name: str = "deploykit", force: bool = False) -> tuple[Path, Path, str]:
    """Write ``<name>.key`` (PKCS#8 PEM, mode 0600 from creation on) and ``<name>.pub`` into ``out_dir``.

    Returns (private path, public path, key id). Refuses to overwrite a key unless ``force``: losing a
    signing key means every installed app must be re-pinned.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    private_path, public_path = out / f"{name}.key", out / f"{name}.pub"
    if not force and (private_path.exists() or public_path.exists()):
        raise InputError(f"{private_path} or {public_path} already exists", hint="pass --force to replace the key pair")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    _write_private(private_path, pem)
    tmp = public_path.with_name(f".{public_path.name}.tmp")
    tmp.write_bytes(pub)
    os.replace(tmp, public_path)
    return private_path, public_path, _public_from_object(key.public_key()).keyid


def _write_private(path: Path, pem: bytes) -> None:
    # Created with 0600 by open(2) itself, so the key is never readable by others, not even briefly.
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    os.chmod(tmp, 0o600)  # in case a umask or ACL widened it
    os.replace(tmp, path)


def load_signing_key(path: str | Path) -> SigningKey:
    """Read a private key written by ``generate_keypair``. Like ssh, refuse a key file others can read."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = Path(path)
    data = _read_small(path, "signing key")
    if os.name == "posix" and stat.S_IMODE(path.stat().st_mode) & 0o077:
        raise UnsafeInputError(f"signing key {path} is readable by other users",
                               hint=f"chmod 600 {path}")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise InputError(f"{path} is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InputError(f"{path} is not an Ed25519 key", hint="create one with `deploykit keygen --out DIR`")
    return SigningKey(public=_public_from_object(key.public_key()), private=key)


def load_public_key(path: str | Path) -> PublicKey:
    """Read a ``.pub`` file (SubjectPublicKeyInfo PEM) written by ``generate_keypair``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    path = Path(path)
    data = _read_small(path, "public key")
    if b"PRIVATE KEY" in data:
        raise InputError(f"{path} is a private key", hint="pass the .pub file; the private key stays with the publisher")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise InputError(f"{path} is not a PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise InputError(f"{path} is not an Ed25519 public key")
    return _public_from_object(key)


def _read_small(path: Path, what: str) -> bytes:
    if not path.is_file():
        raise InputError(f"{what} {path} not found")
    if path.stat().st_size > 16 << 10:
        raise InputError(f"{path} is too large to be a {what}")
    return path.read_bytes()


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding: ``DSSEv1 <len> <type> <len> <payload>``."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def sign_envelope(payload: bytes, payload_type: str, keys: Sequence[SigningKey]) -> bytes:
    """The envelope as canonical JSON bytes. With no keys the envelope is unsigned (``signatures: []``)."""
    message = pae(payload_type, payload)
    unique = {k.keyid: k for k in keys}
    signatures = [{"keyid": kid, "sig": base64.b64encode(unique[kid].sign(message)).decode()} for kid in sorted(unique)]
    envelope = {"payloadType": payload_type, "payload": base64.b64encode(payload).decode(), "signatures": signatures}
    return (json.dumps(envelope, indent=2, sort_keys=True) + "\n").encode("ascii")


@dataclass(frozen=True)
class Verified:
    payload: bytes
    keyids: tuple[str, ...]  # trusted keys whose signature verified


def verify_envelope(data: bytes, trusted: Sequence[PublicKey], payload_type: str, what: str,
                    threshold: int = 1) -> Verified:
    """Return the payload bytes only if at least ``threshold`` distinct trusted keys signed them.

    Raises IntegrityError naming what was wrong: not an envelope, wrong payload type, no signature,
    signatures only by unknown keys, or a signature by a trusted key id that does not verify.
    """
    if threshold < 1:
        raise ValueError("threshold must be at least 1")
    if not trusted:
        raise InputError(f"no trusted key given to verify {what}", hint="pass --trusted-key PUB")
    if len(data) > MAX_ENVELOPE_BYTES:
        raise IntegrityError(f"{what}: envelope is {len(data)} bytes, over the {MAX_ENVELOPE_BYTES} byte limit")
    envelope = _parse_envelope(data, what)
    if envelope["payloadType"] != payload_type:
        raise IntegrityError(f"{what}: payload type is {envelope['payloadType']!r}, expected {payload_type!r}")
    try:
        payload = base64.b64decode(envelope["payload"], validate=True)
    except (binascii.Error, ValueError):
        raise IntegrityError(f"{what}: payload is not valid base64") from None
    keys = {k.keyid: k for k in trusted}
    message = pae(payload_type, payload)
    valid: set[str] = set()
    unknown, bad = [], []
    for entry in envelope["signatures"]:
        key = keys.get(entry["keyid"])
        if key is None:
            unknown.append(entry["keyid"][:16])
            continue
        try:
            sig = base64.b64decode(entry["sig"], validate=True)
        except (binascii.Error, ValueError):
            sig = b""
        if len(sig) == 64 and key.verify(sig, message):
            valid.add(key.keyid)
        else:
            bad.append(key.keyid[:16])
    if len(valid) >= threshold:
        return Verified(payload=payload, keyids=tuple(sorted(valid)))
    if bad:
        reason = f"the signature by trusted key {', '.join(bad)} does not verify (content changed after signing, or forged)"
    elif unknown:
        reason = f"signed only by untrusted key(s) {', '.join(unknown)}; trusted: {', '.join(k[:16] for k in sorted(keys))}"
    elif not envelope["signatures"]:
        reason = "it is not signed"
    else:
        reason = "no trusted signature"
    if valid:
        reason = f"{len(valid)} of {threshold} required distinct trusted signatures; {reason}"
    raise IntegrityError(f"{what}: {reason}", hint="check that --trusted-key is the publisher's .pub file")


def _parse_envelope(data: bytes, what: str) -> dict:
    try:
        envelope = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IntegrityError(f"{what}: not a signed envelope ({exc})") from None
    ok = (isinstance(envelope, dict) and set(envelope) == {"payloadType", "payload", "signatures"}
          and isinstance(envelope["payloadType"], str) and isinstance(envelope["payload"], str)
          and isinstance(envelope["signatures"], list) and len(envelope["signatures"]) <= 16
          and all(isinstance(s, dict) and set(s) == {"keyid", "sig"} and isinstance(s["keyid"], str)
                  and isinstance(s["sig"], str) for s in envelope["signatures"]))
    if not ok:
        raise IntegrityError(f"{what}: not a DSSE envelope with payloadType, payload and signatures")
    return envelope
