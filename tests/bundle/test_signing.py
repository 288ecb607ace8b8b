"""Keys and DSSE envelopes: every signature attack from the threat list, on real keys."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat

import pytest

from deploykit.bundle.signing import (CHANNEL_PAYLOAD_TYPE, MANIFEST_PAYLOAD_TYPE, generate_keypair, load_public_key,
                                      load_signing_key, pae, sign_envelope, verify_envelope)
from deploykit.core.errors import InputError, IntegrityError, UnsafeInputError


def test_keygen_writes_private_key_0600_and_keyid_is_sha256_of_raw_key(tmp_path):
    private, public, keyid = generate_keypair(tmp_path / "k")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    key = load_public_key(public)
    assert keyid == key.keyid == hashlib.sha256(key.raw).hexdigest() and len(key.raw) == 32
    assert load_signing_key(private).keyid == keyid
    assert not list((tmp_path / "k").glob(".*"))  # no temporary files left behind


def test_keygen_refuses_to_overwrite_and_loading_refuses_open_permissions(tmp_path):
    private, _, _ = generate_keypair(tmp_path)
    with pytest.raises(InputError, match="already exists"):
        generate_keypair(tmp_path)
    os.chmod(private, 0o644)
    with pytest.raises(UnsafeInputError, match="readable by other users"):
        load_signing_key(private)


def test_private_key_is_not_accepted_as_trusted_key(tmp_path):
    private, _, _ = generate_keypair(tmp_path)
    with pytest.raises(InputError, match="private key"):
        load_public_key(private)


def test_envelope_round_trip_and_pae(keys):
    signer, public = keys["publisher"][0], keys["publisher"][1]
    envelope = sign_envelope(b'{"a": 1}', MANIFEST_PAYLOAD_TYPE, [signer])
    assert verify_envelope(envelope, [public], MANIFEST_PAYLOAD_TYPE, "test").payload == b'{"a": 1}'
    assert pae("t", b"xy") == b"DSSEv1 1 t 2 xy"
    assert sign_envelope(b"x", MANIFEST_PAYLOAD_TYPE, [signer]) == sign_envelope(b"x", MANIFEST_PAYLOAD_TYPE, [signer])


def test_untrusted_key_is_refused(keys):
    envelope = sign_envelope(b"{}", MANIFEST_PAYLOAD_TYPE, [keys["attacker"][0]])
    with pytest.raises(IntegrityError, match="untrusted key"):
        verify_envelope(envelope, [keys["publisher"][1]], MANIFEST_PAYLOAD_TYPE, "test")


def test_signature_claiming_a_trusted_key_id_but_made_by_another_key_is_refused(keys):
    forged = json.loads(sign_envelope(b"{}", MANIFEST_PAYLOAD_TYPE, [keys["attacker"][0]]))
    forged["signatures"][0]["keyid"] = keys["publisher"][1].keyid
    with pytest.raises(IntegrityError, match="does not verify"):
        verify_envelope(json.dumps(forged).encode(), [keys["publisher"][1]], MANIFEST_PAYLOAD_TYPE, "test")


def test_edited_payload_is_refused(keys):
    doc = json.loads(sign_envelope(b'{"sequence": 5}', MANIFEST_PAYLOAD_TYPE, [keys["publisher"][0]]))
    doc["payload"] = base64.b64encode(b'{"sequence": 9}').decode()
    with pytest.raises(IntegrityError, match="does not verify"):
        verify_envelope(json.dumps(doc).encode(), [keys["publisher"][1]], MANIFEST_PAYLOAD_TYPE, "test")


def test_same_key_counted_twice_does_not_meet_a_threshold_of_two(keys):
    signer, public = keys["publisher"][0], keys["publisher"][1]
    doc = json.loads(sign_envelope(b"{}", MANIFEST_PAYLOAD_TYPE, [signer]))
    doc["signatures"] = doc["signatures"] * 2  # the same signature listed twice
    with pytest.raises(IntegrityError, match="1 of 2"):
        verify_envelope(json.dumps(doc).encode(), [public, public], MANIFEST_PAYLOAD_TYPE, "test", threshold=2)
    both = sign_envelope(b"{}", MANIFEST_PAYLOAD_TYPE, [signer, keys["second"][0]])
    ok = verify_envelope(both, [public, keys["second"][1]], MANIFEST_PAYLOAD_TYPE, "test", threshold=2)
    assert len(ok.keyids) == 2


def test_manifest_signature_cannot_be_replayed_as_a_channel_index(keys):
    envelope = sign_envelope(b"{}", MANIFEST_PAYLOAD_TYPE, [keys["publisher"][0]])
    with pytest.raises(IntegrityError, match="payload type"):
        verify_envelope(envelope, [keys["publisher"][1]], CHANNEL_PAYLOAD_TYPE, "test")


def test_unsigned_and_malformed_envelopes_are_refused(keys):
    public = keys["publisher"][1]
    with pytest.raises(IntegrityError, match="not signed"):
        verify_envelope(sign_envelope(b"{}", MANIFEST_PAYLOAD_TYPE, []), [public], MANIFEST_PAYLOAD_TYPE, "test")
    for bad in (b"not json", b"[]", b'{"payload": "x"}', b"x" * (2 << 20)):
        with pytest.raises(IntegrityError):
            verify_envelope(bad, [public], MANIFEST_PAYLOAD_TYPE, "test")
