"""The one place deploykit calls ``model_signing`` (OpenSSF model signing, PyPI ``model-signing`` 1.1.1): sign a
directory with an elliptic-curve key, and check a directory against such a signature with the library's own verifier.

What the library makes, and deploykit keeps: a Sigstore bundle (media type v0.3, no transparency-log entry, the key
named by the sha256 of its PEM in ``verificationMaterial.publicKey.hint``) holding a DSSE envelope over an in-toto
statement: the subject is the model's name and a digest over all file digests, the predicate lists every file
(``resources``: name, algorithm, digest) and how the directory was read (``serialization``: files, sha256, no
symlinks, the ignored paths).

Two things deploykit does differently from ``model_signing.signing.Config.sign``, both so that the same inputs give
the same signature bytes (deploykit's bundles are byte-identical from one build to the next):

- the statement is written with sorted keys: the library writes its protobuf ``Struct`` in map order, which differs
  from one process to the next (upb seeds its hash tables at random);
- ECDSA nonces are derived from the key and the message (RFC 6979, ``deterministic_signing=True``) instead of drawn
  at random. A verifier cannot tell: an ECDSA signature verifies the same whichever nonce made it.

Everything else is the library's: its hashing (``hashing.Config``), its statement (``Payload``), its envelope and
bundle types, the key check and the verification material of its EC signer (``sign_ec_key.Signer``). The signer
below subclasses that signer and replaces only ``sign``; it leans on model-signing's private modules, which is why
the version is pinned and every signature deploykit writes is checked right away with the library's public verifier
(``verify_directory``).
"""

from __future__ import annotations

import base64
import tempfile
from pathlib import Path
from typing import Any, Sequence

from deploykit.core.errors import IntegrityError, UsageError

SIGNATURE_NAME = "model.sig"  # the library's and its CLI's default name


def version() -> str:
    return _library().__version__


def _library():
    try:
        import model_signing
    except ImportError as exc:
        raise UsageError(f"OpenSSF model signing needs the model-signing package ({exc})",
                         hint="./setup.sh installs model-signing 1.1.1 (without its declared dependencies: see "
                              "constraints.txt)") from None
    return model_signing


def sign_directory(root: Path, private_key: Any, ignored: Sequence[str]) -> bytes:
    """The signature (the Sigstore bundle's JSON bytes) over every file under ``root`` (``private_key``: a
    cryptography ``EllipticCurvePrivateKey``). ``ignored``: paths relative to ``root`` that the statement records as
    not signed, so that a verifier run on a directory holding them skips them; none of them may exist under ``root``.
    """
    _library()
    from model_signing import hashing
    from model_signing._signing import signing

    # use_file_serialization records ``ignored`` in the given order; set_ignored_paths would record a frozenset (in
    # an order that changes from one process to the next) and add git's paths. Nothing under root is ignored: it
    # holds exactly the files to sign.
    config = (hashing.Config()
              .set_ignored_paths(paths=[], ignore_git_paths=False)
              .use_file_serialization(hashing_algorithm="sha256", ignore_paths=[Path(p) for p in ignored]))
    manifest = config.hash(root)
    signature = _reproducible_signer(private_key).sign(signing.Payload(manifest))
    return signature.bundle.to_json().encode("utf-8")


def _reproducible_signer(private_key: Any):
    from cryptography.hazmat.primitives.asymmetric import ec
    from google.protobuf import json_format
    from model_signing._signing import sign_ec_key, sign_sigstore_pb, signing
    from sigstore_models import intoto
    from sigstore_models.bundle import v1 as bundle_v1

    class ReproducibleSigner(sign_ec_key.Signer):
        """``sign_ec_key.Signer.sign`` with sorted statement keys and RFC 6979 nonces (the module's docstring)."""

        def __init__(self, key):  # the library's takes a PEM path; this one the loaded key
            sign_ec_key._check_supported_ec_key(key.public_key())
            self._private_key = key

        def sign(self, payload):
            statement = json_format.MessageToJson(payload.statement.pb, sort_keys=True).encode("utf-8")
            digest = sign_ec_key.get_ec_key_hash(self._private_key.public_key())
            raw = self._private_key.sign(sign_sigstore_pb.pae(statement), ec.ECDSA(digest, deterministic_signing=True))
            envelope = intoto.Envelope(payload=base64.b64encode(statement),
                                       payload_type=signing._IN_TOTO_JSON_PAYLOAD_TYPE,
                                       signatures=[intoto.Signature(sig=base64.b64encode(raw), keyid="")])
            return sign_sigstore_pb.Signature(bundle_v1.Bundle(
                media_type=sign_sigstore_pb._BUNDLE_MEDIA_TYPE,
                verification_material=self._get_verification_material(), dsse_envelope=envelope))

    try:
        return ReproducibleSigner(private_key)
    except ValueError as exc:  # a curve model-signing does not take
        raise UsageError(f"model-signing refuses this key: {exc}",
                         hint="make one with `deploykit keygen --model-signing`") from None


def verify_directory(root: Path, signature: bytes, public_pem: bytes, what: str) -> None:
    """Check ``root`` against ``signature`` with model-signing's own verifier and the public key ``public_pem``, as
    ``model_signing verify key`` does; IntegrityError saying why when it refuses."""
    _library()
    from model_signing import verifying

    with tempfile.TemporaryDirectory(prefix="deploykit-model-signing-") as folder:
        signature_path, key_path = Path(folder) / SIGNATURE_NAME, Path(folder) / "key.pub"
        signature_path.write_bytes(signature)
        key_path.write_bytes(public_pem)
        try:
            verifying.Config().use_elliptic_key_verifier(public_key=key_path).verify(root, signature_path)
        except Exception as exc:  # the library raises ValueError, cryptography's InvalidSignature, KeyError ...
            raise IntegrityError(f"{what}: model-signing refuses the signature: {exc or type(exc).__name__}") from None
