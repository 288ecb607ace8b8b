"""Real attacks on real signed bundles: each must be refused with a clear error, writing nothing.

Every test takes a bundle built from a converted model, changes it the way an attacker would, and
then both verifies it and tries to unpack it into ``dest/x``: the error must name the problem, and
the file tree around the destination must be exactly as before.
"""

from __future__ import annotations

import base64
import json
import stat
import struct
import zipfile
import zlib
from pathlib import Path

import pytest

from deploykit.bundle.signing import MANIFEST_PAYLOAD_TYPE, sign_envelope
from deploykit.bundle.verify import verify_bundle
from deploykit.core.errors import IntegrityError
from tests.bundle.bundle_helpers import rewrite_zip, tree_snapshot


def refused(path: Path, trusted, match: str, tmp_path: Path, threshold: int = 1) -> None:
    before = tree_snapshot(tmp_path)
    with pytest.raises(IntegrityError, match=match):
        verify_bundle(path, trusted, threshold=threshold)
    dest = tmp_path / "dest"
    with pytest.raises(IntegrityError, match=match):
        verify_bundle(path, trusted, threshold=threshold, unpack_to=dest / "x")
    assert not (dest / "x").exists()
    after = {k: v for k, v in tree_snapshot(tmp_path).items() if not k.startswith("dest")}
    assert after == before, "something was written outside the destination"


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:]


def read_entry(path: Path, name: str) -> bytes:
    with zipfile.ZipFile(path) as archive:
        return archive.read(name)


def patch_bytes(path: Path, old: bytes, new: bytes) -> Path:
    """Rename an entry at the byte level (local header and central directory): what zipfile won't write."""
    data = path.read_bytes()
    assert len(old) == len(new) and data.count(old) == 2
    path.write_bytes(data.replace(old, new))
    return path


def test_intact_bundles_verify(bundles, keys):
    for path in bundles.values():
        assert verify_bundle(path, [keys["publisher"][1]]).manifest.name == "com.example.classifier"


def test_flipped_byte_in_tflite_model(bundles, keys, tmp_path):
    model = read_entry(bundles["android"], "model/model.tflite")
    bad = rewrite_zip(bundles["android"], tmp_path / "b.zip", replace={"model/model.tflite": flip(model, len(model) // 2)})
    refused(bad, [keys["publisher"][1]], "model/model.tflite: sha256 .* was modified", tmp_path)


def test_flipped_byte_in_mlpackage_weights(bundles, keys, tmp_path):
    name = "model/model.mlpackage/Data/com.apple.CoreML/weights/weight.bin"
    bad = rewrite_zip(bundles["ios"], tmp_path / "b.zip", replace={name: flip(read_entry(bundles["ios"], name), 100)})
    refused(bad, [keys["publisher"][1]], "weight.bin: sha256", tmp_path)


def test_edited_manifest_keeps_old_signature(bundles, keys, tmp_path):
    envelope = json.loads(read_entry(bundles["android"], "manifest.json"))
    manifest = json.loads(base64.b64decode(envelope["payload"]))
    manifest["sequence"] += 1000  # try to jump ahead of a legitimate future release
    envelope["payload"] = base64.b64encode(json.dumps(manifest).encode()).decode()
    bad = rewrite_zip(bundles["android"], tmp_path / "b.zip", replace={"manifest.json": json.dumps(envelope).encode()})
    refused(bad, [keys["publisher"][1]], "does not verify", tmp_path)


def test_manifest_resigned_by_untrusted_key(bundles, keys, tmp_path):
    payload = base64.b64decode(json.loads(read_entry(bundles["android"], "manifest.json"))["payload"])
    forged = sign_envelope(payload, MANIFEST_PAYLOAD_TYPE, [keys["attacker"][0]])
    bad = rewrite_zip(bundles["android"], tmp_path / "b.zip", replace={"manifest.json": forged})
    refused(bad, [keys["publisher"][1]], "untrusted key", tmp_path)


def test_wrong_trusted_key(bundles, keys, tmp_path):
    refused(bundles["android"], [keys["attacker"][1]], "untrusted key", tmp_path)


def test_same_key_twice_does_not_make_two_signatures(bundles, keys, tmp_path):
    publisher = keys["publisher"][1]
    refused(bundles["android"], [publisher, publisher], "1 of 2", tmp_path, threshold=2)


def test_unsigned_bundle(bundles, tmp_path, keys):
    payload = base64.b64decode(json.loads(read_entry(bundles["android"], "manifest.json"))["payload"])
    bad = rewrite_zip(bundles["android"], tmp_path / "b.zip",
                      replace={"manifest.json": sign_envelope(payload, MANIFEST_PAYLOAD_TYPE, [])})
    refused(bad, [keys["publisher"][1]], "not signed", tmp_path)


def test_signed_manifest_that_breaks_the_schema(bundles, keys, tmp_path):
    manifest = json.loads(base64.b64decode(json.loads(read_entry(bundles["android"], "manifest.json"))["payload"]))
    manifest["files"][0]["path"] = "../outside"
    envelope = sign_envelope(json.dumps(manifest).encode(), MANIFEST_PAYLOAD_TYPE, [keys["publisher"][0]])
    bad = rewrite_zip(bundles["android"], tmp_path / "b.zip", replace={"manifest.json": envelope})
    refused(bad, [keys["publisher"][1]], "does not match manifest.schema.json", tmp_path)


def test_extra_entry(bundles, keys, tmp_path):
    bad = rewrite_zip(bundles["android"], tmp_path / "b.zip", add=[("model/extra.bin", b"payload")])
    refused(bad, [keys["publisher"][1]], "entries not in the manifest: model/extra.bin", tmp_path)


def test_missing_entry(bundles, keys, tmp_path):
    bad = rewrite_zip(bundles["android"], tmp_path / "b.zip", drop={"assets/labels.txt"})
    refused(bad, [keys["publisher"][1]], "missing from the archive: assets/labels.txt", tmp_path)


def test_duplicate_entry(bundles, keys, tmp_path):
    with pytest.warns(UserWarning, match="Duplicate name"):
        bad = rewrite_zip(bundles["android"], tmp_path / "b.zip", add=[("model/model.tflite", b"evil model")])
    refused(bad, [keys["publisher"][1]], "duplicate zip entry 'model/model.tflite'", tmp_path)


def test_manifest_must_be_first(bundles, keys, tmp_path):
    bad = rewrite_zip(bundles["android"], tmp_path / "b.zip", order=lambda e: e[1:] + e[:1])
    refused(bad, [keys["publisher"][1]], "first entry must be manifest.json", tmp_path)


@pytest.mark.parametrize("evil, why", [
    ("../evil.txt", "'..'"),
    ("model/../../evil.txt", "'..'"),
    ("/tmp/evil.txt", "absolute path"),
    ("C:\\evil.txt", "backslash"),
    ("C:/evil.txt", "absolute path"),
    ("model/./a.txt", "'.' path component"),
    ("model//a.txt", "empty or '.' path component"),
    ("model/evil/", "directory entry"),
])
def test_path_traversal_entries(bundles, keys, tmp_path, evil, why):
    placeholder = "Q" * len(evil.encode())
    bad = rewrite_zip(bundles["android"], tmp_path / "b.zip", add=[(placeholder, b"owned")])
    patch_bytes(bad, placeholder.encode(), evil.encode())
    refused(bad, [keys["publisher"][1]], f"unsafe zip entry .*{why}", tmp_path)
    assert not (tmp_path / "evil.txt").exists() and not Path("/tmp/evil.txt").exists()


def test_nul_byte_in_entry_name(bundles, keys, tmp_path):
    bad = rewrite_zip(bundles["android"], tmp_path / "b.zip", add=[("model/model.tflitxX.png", b"x")])
    patch_bytes(bad, b"model/model.tflitxX.png", b"model/model.tflit\x00X.png")
    refused(bad, [keys["publisher"][1]], "NUL byte", tmp_path)


@pytest.mark.parametrize("kind, mode, why", [
    ("symlink", stat.S_IFLNK | 0o777, "symbolic link"),
    ("fifo", stat.S_IFIFO | 0o644, "not a regular file"),
    ("device", stat.S_IFCHR | 0o644, "not a regular file"),
])
def test_link_and_special_file_entries(bundles, keys, tmp_path, kind, mode, why):
    info = zipfile.ZipInfo(f"model/{kind}", date_time=(1980, 1, 1, 0, 0, 0))
    info.create_system, info.external_attr = 3, mode << 16
    bad = rewrite_zip(bundles["android"], tmp_path / "b.zip", add=[(info, b"/etc/passwd")])
    refused(bad, [keys["publisher"][1]], why, tmp_path)


def test_entry_colliding_with_a_listed_file_after_case_folding(bundles, keys, tmp_path):
    bad = rewrite_zip(bundles["android"], tmp_path / "b.zip", add=[("assets/LABELS.txt", b"evil")])
    refused(bad, [keys["publisher"][1]], "collide on a case-insensitive file system", tmp_path)


def test_too_many_entries(bundles, keys, tmp_path):
    bad = rewrite_zip(bundles["android"], tmp_path / "b.zip", add=[(f"junk/{i}", b"") for i in range(10_001)])
    refused(bad, [keys["publisher"][1]], "over the limit of 10000", tmp_path)


def _deflated(name: str, size: int) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type, info.create_system, info.external_attr = zipfile.ZIP_DEFLATED, 3, 0o100644 << 16
    return info, bytes(size)


def _lie_about_size(path: Path, name: str, size: int, crc: int) -> None:
    """Patch an entry's declared size and CRC in both headers: a zip bomb whose headers lie."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(name)
    struct.pack_into("<II", data, info.header_offset + 14, crc, info.compress_size)
    struct.pack_into("<I", data, info.header_offset + 22, size)
    central = data.find(b"PK\x01\x02" + data[info.header_offset + 4:info.header_offset + 6])
    while data[central + 46:central + 46 + len(name)] != name.encode():
        central = data.find(b"PK\x01\x02", central + 4)
    struct.pack_into("<I", data, central + 16, crc)
    struct.pack_into("<I", data, central + 24, size)
    path.write_bytes(bytes(data))


def test_zip_bomb_with_honest_headers_is_refused_unread(bundles, keys, tmp_path):
    info, zeros = _deflated("model/model.tflite", 256 << 20)  # 256 MiB of zeros, ~256 KiB compressed
    bad = rewrite_zip(bundles["android"], tmp_path / "b.zip", drop={"model/model.tflite"}, add=[(info, zeros)])
    assert bad.stat().st_size < 2 << 20
    refused(bad, [keys["publisher"][1]], "zip header declares 268435456 bytes, the manifest says", tmp_path)


def test_zip_bomb_whose_headers_lie_is_cut_at_the_declared_size(bundles, keys, tmp_path):
    length = len(read_entry(bundles["android"], "model/model.tflite"))
    info, zeros = _deflated("model/model.tflite", 64 << 20)
    bad = rewrite_zip(bundles["android"], tmp_path / "b.zip", drop={"model/model.tflite"}, add=[(info, zeros)])
    _lie_about_size(bad, "model/model.tflite", length, zlib.crc32(bytes(length)))
    refused(bad, [keys["publisher"][1]], "model/model.tflite: sha256", tmp_path)


def test_oversized_manifest_is_refused_unread(bundles, keys, tmp_path):
    bad = rewrite_zip(bundles["android"], tmp_path / "b.zip", replace={"manifest.json": b" " * (2 << 20)})
    refused(bad, [keys["publisher"][1]], "over the limit of 1048576", tmp_path)
