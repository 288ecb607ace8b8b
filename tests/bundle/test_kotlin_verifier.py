"""The Kotlin verifier that ships in every Android bundle, compiled with kotlinc and run on the JVM.

The source compiled is the bundle's own ``integration/kotlin/BundleVerifier.kt``, extracted from a real
signed bundle, so the test checks what app developers get. A small ``Main.kt`` harness verifies one
bundle per run (bundle, trusted raw key in base64, installed sequence or ``-``, unpack directory) and
prints ``OK`` with what it verified, or ``REFUSED: <message>`` with exit code 1. Every attack is also
given to deploykit's own Python verifier (or, for the sequence rule, the reference client ``pull``):
both sides must refuse, for the same reason.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import time
import warnings
import zipfile
from pathlib import Path

import pytest

from deploykit.bundle.client import STATE_FILE, pull
from deploykit.bundle.signing import MANIFEST_PAYLOAD_TYPE, sign_envelope
from deploykit.bundle.verify import verify_bundle
from deploykit.core.errors import IntegrityError
from tests.bundle.bundle_helpers import NAME, rewrite_zip

KOTLINC, JAVA = shutil.which("kotlinc"), shutil.which("java")
pytestmark = pytest.mark.skipif(KOTLINC is None or JAVA is None,
                                reason="kotlinc (or java) is not on PATH; ./setup.sh installs Debian's kotlin package")

HARNESS = r"""
import com.deploykit.generated.BundleVerifier
import com.deploykit.generated.DeployKitException
import java.io.File
import java.util.Base64
import kotlin.system.exitProcess

// Main.kt <bundle.zip> <trusted raw key, base64> <installed sequence or -> <unpack dir>
fun main(args: Array<String>) {
    val verifier = BundleVerifier(listOf(Base64.getDecoder().decode(args[1])))
    val installed = if (args[2] == "-") null else args[2].toLong()
    val bundle = try {
        verifier.verify(File(args[0]), installed, File(args[3]))
    } catch (e: DeployKitException) {
        println("REFUSED: " + e.message)
        exitProcess(1)
    }
    println("OK")
    println("name=" + bundle.name)
    println("version=" + bundle.version)
    println("sequence=" + bundle.sequence)
    println("platform=" + bundle.platform)
    println("variant=" + bundle.variant)
    println("sha256=" + bundle.sha256)
    println("keyids=" + bundle.keyids.joinToString(","))
    for (f in bundle.files) println("file=" + f.path + " " + f.role + " " + f.length + " " + f.sha256)
}
"""


@pytest.fixture(scope="session")
def verifier_jar(bundles, tmp_path_factory) -> Path:
    """BundleVerifier.kt as shipped in the Android bundle plus the harness, compiled once (kotlinc is slow)."""
    root = tmp_path_factory.mktemp("kotlin")
    with zipfile.ZipFile(bundles["android"]) as archive:
        (root / "BundleVerifier.kt").write_bytes(archive.read("integration/kotlin/BundleVerifier.kt"))
    (root / "Main.kt").write_text(HARNESS)
    started = time.monotonic()
    proc = subprocess.run([KOTLINC, "BundleVerifier.kt", "Main.kt", "-include-runtime", "-d", "verifier.jar"],
                          cwd=root, capture_output=True, text=True, timeout=600)
    print(f"kotlinc: {time.monotonic() - started:.1f} s")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The JVM's own notes (e.g. about -Xverify) are not the compiler's; a warning about the code is a defect.
    diagnostics = [line for line in proc.stderr.splitlines() if re.search(r"\.kt:\d+:\d+: (warning|error)", line)]
    assert not diagnostics, "\n".join(diagnostics)
    return root / "verifier.jar"


def kotlin(jar: Path, bundle: Path, key, installed: int | None, unpack: Path) -> tuple[bool, str]:
    proc = subprocess.run([JAVA, "-jar", str(jar), str(bundle), base64.b64encode(key.raw).decode(),
                           "-" if installed is None else str(installed), str(unpack)],
                          capture_output=True, text=True, timeout=120)
    out = proc.stdout.strip()
    # Anything but OK (exit 0) or a DeployKitException (exit 1) is a crash of the verifier, not a refusal.
    verified = proc.returncode == 0 and out.split("\n")[0] == "OK"
    refused = proc.returncode == 1 and out.startswith("REFUSED: ")
    assert verified or refused, f"exit {proc.returncode}\n{out}\n{proc.stderr}"
    return verified, out


def parse_ok(out: str) -> dict:
    lines = out.split("\n")[1:]
    fields = dict(line.split("=", 1) for line in lines if not line.startswith("file="))
    fields["files"] = [line[5:].split(" ") for line in lines if line.startswith("file=")]
    return fields


def read_entry(path: Path, name: str) -> bytes:
    with zipfile.ZipFile(path) as archive:
        return archive.read(name)


def signed_manifest(path: Path) -> dict:
    return json.loads(base64.b64decode(json.loads(read_entry(path, "manifest.json"))["payload"]))


def test_intact_bundle_verifies_and_unpacks_as_in_python(verifier_jar, bundles, keys, tmp_path):
    android, publisher = bundles["android"], keys["publisher"][1]
    ok, out = kotlin(verifier_jar, android, publisher, None, tmp_path / "kotlin")
    assert ok, out
    python = verify_bundle(android, [publisher], unpack_to=tmp_path / "python")
    seen, m = parse_ok(out), python.manifest
    assert (seen["name"], seen["version"], seen["sequence"], seen["platform"], seen["variant"]) == (
        m.name, m.version, str(m.sequence), m.platform, m.variant) == (NAME, "1.2.0", "1002000", "android", "fp32")
    assert seen["sha256"] == python.sha256 and seen["keyids"] == ",".join(python.keyids)
    assert seen["files"] == [[f.path, f.role, str(f.length), f.sha256] for f in m.files]
    unpacked = {p.relative_to(tmp_path / "kotlin").as_posix(): p.read_bytes()
                for p in (tmp_path / "kotlin").rglob("*") if p.is_file()}
    assert unpacked == {f.path: (tmp_path / "python" / f.path).read_bytes() for f in m.files}
    assert "integration/kotlin/BundleVerifier.kt" in unpacked  # the verifier ships in the bundle it checks


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:]


def _flipped_model_byte(src, keys, dst):
    model = read_entry(src, "model/model.tflite")
    return rewrite_zip(src, dst, replace={"model/model.tflite": flip(model, len(model) // 2)})


def _extra_entry(src, keys, dst):
    return rewrite_zip(src, dst, add=[("model/extra.bin", b"payload")])


def _missing_entry(src, keys, dst):
    return rewrite_zip(src, dst, drop={"assets/labels.txt"})


def _duplicate_entry(src, keys, dst):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name: writing it is the attack
        return rewrite_zip(src, dst, add=[("model/model.tflite", b"evil model")])


def _manifest_not_first(src, keys, dst):
    return rewrite_zip(src, dst, order=lambda e: e[1:] + e[:1])


def _path_traversal(src, keys, dst):
    bad = rewrite_zip(src, dst, add=[("QQQQQQQQQQQ", b"owned")])
    data = bad.read_bytes()  # zipfile won't write "../": rename in the local header and central directory
    assert data.count(b"QQQQQQQQQQQ") == 2
    bad.write_bytes(data.replace(b"QQQQQQQQQQQ", b"../evil.txt"))
    return bad


def _case_collision(src, keys, dst):
    return rewrite_zip(src, dst, add=[("assets/LABELS.txt", b"evil")])


def _resigned_by_attacker(src, keys, dst):
    payload = base64.b64decode(json.loads(read_entry(src, "manifest.json"))["payload"])
    forged = sign_envelope(payload, MANIFEST_PAYLOAD_TYPE, [keys["attacker"][0]])
    return rewrite_zip(src, dst, replace={"manifest.json": forged})


def _edited_manifest_keeps_old_signature(src, keys, dst):
    envelope = json.loads(read_entry(src, "manifest.json"))
    manifest = signed_manifest(src)
    manifest["sequence"] += 1000  # jump ahead of a legitimate future release
    envelope["payload"] = base64.b64encode(json.dumps(manifest).encode()).decode()
    return rewrite_zip(src, dst, replace={"manifest.json": json.dumps(envelope).encode()})


def _unsigned(src, keys, dst):
    payload = base64.b64decode(json.loads(read_entry(src, "manifest.json"))["payload"])
    return rewrite_zip(src, dst, replace={"manifest.json": sign_envelope(payload, MANIFEST_PAYLOAD_TYPE, [])})


def _signed_manifest_breaking_the_schema(src, keys, dst):
    manifest = signed_manifest(src)
    manifest["files"][0]["path"] = "../outside"
    envelope = sign_envelope(json.dumps(manifest).encode(), MANIFEST_PAYLOAD_TYPE, [keys["publisher"][0]])
    return rewrite_zip(src, dst, replace={"manifest.json": envelope})


def _oversized_manifest(src, keys, dst):
    return rewrite_zip(src, dst, replace={"manifest.json": b" " * (2 << 20)})


@pytest.mark.parametrize("attack, reason", [
    (_flipped_model_byte, r"model/model\.tflite: sha256 [0-9a-f]{16}\.\.\. does not match the manifest"),
    (_extra_entry, "entries not in the manifest: model/extra.bin"),
    (_missing_entry, "files in the manifest missing from the archive: assets/labels.txt"),
    (_duplicate_entry, "duplicate zip entry 'model/model.tflite'"),
    (_manifest_not_first, "the first entry must be manifest.json"),
    (_path_traversal, r"unsafe zip entry '\.\./evil\.txt': '\.\.' path component"),
    (_case_collision, "collide on a case-insensitive file system"),
    (_resigned_by_attacker, "manifest: signed only by untrusted key"),
    (_edited_manifest_keeps_old_signature, "manifest: the signature by trusted key [0-9a-f]{16} does not verify"),
    (_unsigned, "manifest: it is not signed"),
    (_signed_manifest_breaking_the_schema, "bundle manifest does not match manifest.schema.json: files/0/path"),
    (_oversized_manifest, "declares 2097152 bytes, over the limit of 1048576"),
], ids=lambda v: v.__name__.strip("_") if callable(v) else None)
def test_attacked_bundle_is_refused_by_kotlin_and_python(verifier_jar, bundles, keys, tmp_path, attack, reason):
    bad = attack(bundles["android"], keys, tmp_path / "b.zip")
    trusted = keys["publisher"][1]
    ok, out = kotlin(verifier_jar, bad, trusted, None, tmp_path / "kotlin")
    assert not ok and re.search(reason, out), out
    assert not (tmp_path / "kotlin").exists(), "a refused bundle left files behind"
    with pytest.raises(IntegrityError, match=reason):
        verify_bundle(bad, [trusted])


def test_bundle_signed_by_another_key_than_the_pinned_one_is_refused(verifier_jar, bundles, keys, tmp_path):
    attacker = keys["attacker"][1]  # the app pins a key that did not sign this bundle
    ok, out = kotlin(verifier_jar, bundles["android"], attacker, None, tmp_path / "kotlin")
    reason = f"signed only by untrusted key\\(s\\) {keys['publisher'][1].keyid[:16]}; trusted: {attacker.keyid[:16]}"
    assert not ok and re.search(reason, out), out
    with pytest.raises(IntegrityError, match=reason):
        verify_bundle(bundles["android"], [attacker])


def test_ios_bundle_is_refused_by_the_android_verifier(verifier_jar, bundles, keys, tmp_path):
    # verify_bundle accepts any platform; `pull --platform android` never picks this bundle. The Kotlin
    # side installs on Android only, so it refuses it itself.
    ok, out = kotlin(verifier_jar, bundles["ios"], keys["publisher"][1], None, tmp_path / "kotlin")
    assert not ok and "is for platform ios, not android" in out, out


def _pull_with_installed(repo: Path, dest: Path, trusted, sequence: int):
    """The reference client with ``sequence`` recorded as installed (other content, same variant)."""
    dest.mkdir()
    (dest / STATE_FILE).write_text(json.dumps({"models": {NAME: {
        "sequence": sequence, "version": "x", "sha256": "0" * 64, "platform": "android", "variant": "fp32"}}}))
    return pull(repo, "stable", NAME, [trusted], dest, platform="android")


@pytest.mark.parametrize("installed, kotlin_reason, python_reason", [
    (2_000_000, r"sequence 1002000, lower than the installed 2000000 \(rollback refused\)",
     r"sequence 1002000, lower than the installed 2000000 \(rollback refused\)"),
    (1_002_000, "sequence 1002000 is already installed", "sequence 1002000 is already installed with different content"),
])
def test_sequence_not_above_the_installed_one_is_refused(verifier_jar, bundles, keys, repo_with_release, tmp_path,
                                                         installed, kotlin_reason, python_reason):
    publisher = keys["publisher"][1]
    ok, out = kotlin(verifier_jar, bundles["android"], publisher, installed, tmp_path / "kotlin")
    assert not ok and re.search(kotlin_reason, out), out
    assert not (tmp_path / "kotlin").exists()
    with pytest.raises(IntegrityError, match=python_reason):
        _pull_with_installed(repo_with_release, tmp_path / "python", publisher, installed)


def test_higher_sequence_than_installed_is_installed(verifier_jar, bundles, keys, repo_with_release, tmp_path):
    publisher = keys["publisher"][1]
    ok, out = kotlin(verifier_jar, bundles["android"], publisher, 1_001_999, tmp_path / "kotlin")
    assert ok and parse_ok(out)["sequence"] == "1002000", out
    assert _pull_with_installed(repo_with_release, tmp_path / "python", publisher, 1_001_999).status == "updated"
