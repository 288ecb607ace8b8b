"""OpenSSF model signing: bundles of a real converted model carry model-signing/model.sig, which model-signing's own
verifier (its Python API and its `model_signing verify key` command) accepts on the unpacked bundle and refuses once a
model file is changed, added or removed; deploykit's own signature stays what `verify-bundle` and the client check."""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.bundle import test_kotlin_verifier as kt
from tests.bundle.bundle_helpers import NAME, rewrite_zip
from tests.bundle.test_kotlin_verifier import verifier_jar  # noqa: F401  (the compiled verifier, a fixture)

model_signing = pytest.importorskip("model_signing", reason="./setup.sh installs model-signing")

SIGNATURE = "model-signing/model.sig"


@pytest.fixture(scope="module")
def ms_keys(tmp_path_factory):
    """The release's model-signing pair and another one, as {who: (ModelSigningKey, private path, public path)}."""
    from deploykit.bundle.openssf import generate_model_signing_keypair, load_model_signing_key

    root = tmp_path_factory.mktemp("ms-keys")
    pairs = {}
    for who in ("release", "other"):
        private, public, _ = generate_model_signing_keypair(root, who)
        pairs[who] = (load_model_signing_key(private), private, public)
    return pairs


def _bundle(converted, out, sign_keys, ms_key, labels_file):
    from deploykit.bundle.builder import BundleOptions, bundle

    options = BundleOptions(name=NAME, version="1.2.0", out=out, labels=labels_file, mean=(127.5,), std=(127.5,),
                            sign_keys=tuple(sign_keys), author="Example Inc.", license="Apache-2.0",
                            model_signing_key=ms_key)
    built = bundle([converted / "mobilenet.fp32.tflite", converted / "mobilenet.fp32.mlpackage"], options)
    return {b.manifest["platform"]: b for b in built}


@pytest.fixture(scope="module")
def ms_bundles(converted, keys, ms_keys, labels_file, tmp_path_factory):
    return _bundle(converted, tmp_path_factory.mktemp("ms-bundles"), [keys["publisher"][0]], ms_keys["release"][0],
                   labels_file)


def _unzip(bundle: Path, dest: Path) -> Path:
    with zipfile.ZipFile(bundle) as archive:
        archive.extractall(dest)
    return dest


def _verify(root: Path, public: Path) -> None:
    """model-signing's own verifier, configured as its documentation shows for key-signed models."""
    model_signing.verifying.Config().use_elliptic_key_verifier(public_key=public).verify(root, root / SIGNATURE)


def test_keygen_makes_a_p256_pair_and_the_ed25519_key_cannot_serve(ms_keys, keys, tmp_path):
    from cryptography.hazmat.primitives import serialization

    from deploykit.bundle.openssf import generate_model_signing_keypair, load_model_signing_key
    from deploykit.core.errors import InputError, UnsafeInputError

    key, private, public = ms_keys["release"]
    assert private.name == "release.ms.key" and public.name == "release.ms.pub"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600 and key.curve == "P-256"
    assert serialization.load_pem_public_key(public.read_bytes()).curve.name == "secp256r1"
    with pytest.raises(InputError, match="Ed25519 key: model-signing signs with ECDSA"):
        load_model_signing_key(keys["publisher"][2])
    with pytest.raises(InputError, match="already exists"):
        generate_model_signing_keypair(private.parent, "release")
    loose = tmp_path / "loose.ms.key"
    shutil.copyfile(private, loose)
    os.chmod(loose, 0o644)
    with pytest.raises(UnsafeInputError):
        load_model_signing_key(loose)


def test_model_signing_accepts_the_unpacked_bundle_and_deploykit_still_verifies_it(ms_bundles, keys, ms_keys, tmp_path):
    from deploykit.bundle.verify import verify_bundle

    public = ms_keys["release"][2]
    for platform, built in ms_bundles.items():
        files = {f["path"]: f for f in built.manifest["files"]}
        assert files[SIGNATURE]["role"] == "signature"
        verified = verify_bundle(built.path, [keys["publisher"][1]])  # the client's check, unchanged
        assert verified.keyids == (keys["publisher"][1].keyid,)
        root = _unzip(built.path, tmp_path / platform)
        _verify(root, public)

        bundle = json.loads((root / SIGNATURE).read_text())
        statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
        resources = {r["name"]: r["digest"] for r in statement["predicate"]["resources"]}
        # exactly the model and assets files, with the sha256 the signed manifest lists for them
        assert resources == {p: f["sha256"] for p, f in files.items() if p.split("/")[0] in ("model", "assets")}
        assert "assets/labels.txt" in resources and any(p.startswith("model/") for p in resources)
        ignored = statement["predicate"]["serialization"]["ignore_paths"]
        assert ignored == ["integration", "manifest.json", "model-signing"]
        assert statement["subject"][0]["name"] == built.path.stem
        assert bundle["verificationMaterial"]["publicKey"]["hint"] == ms_keys["release"][0].hint


def test_model_signing_refuses_a_changed_added_or_missing_model_file_and_another_key(ms_bundles, ms_keys, tmp_path):
    built = ms_bundles["ios"]  # an .mlpackage: a tree of model files
    public = ms_keys["release"][2]
    model_files = sorted(f["path"] for f in built.manifest["files"] if f["role"] == "model")
    weights = next(p for p in model_files if p.endswith("weight.bin"))

    def fresh(name: str) -> Path:
        return _unzip(built.path, tmp_path / name)

    root = fresh("changed")
    data = bytearray((root / weights).read_bytes())
    data[len(data) // 2] ^= 1
    (root / weights).write_bytes(bytes(data))
    with pytest.raises(ValueError, match="Hash mismatch for") as refused:
        _verify(root, public)
    assert weights in str(refused.value)

    root = fresh("added")
    (root / "model" / "extra.bin").write_bytes(b"x")
    with pytest.raises(ValueError, match="Extra files"):
        _verify(root, public)

    root = fresh("missing")
    (root / "assets" / "labels.txt").unlink()
    with pytest.raises(ValueError, match="Missing files"):
        _verify(root, public)

    root = fresh("other-key")
    with pytest.raises(ValueError, match="Key mismatch"):
        _verify(root, ms_keys["other"][2])

    # outside model/ and assets/ the model-signing signature says nothing: deploykit's covers those files
    root = fresh("integration")
    (root / "integration" / "README.md").write_text("changed")
    _verify(root, public)


def test_the_documented_command_verifies_and_refuses(ms_bundles, ms_keys, tmp_path):
    cli = Path(sys.executable).with_name("model_signing")
    if not cli.exists():
        pytest.skip("the model_signing command is not installed")
    root = _unzip(ms_bundles["android"].path, tmp_path / "android")
    command = [str(cli), "verify", "key", str(root), "--signature", str(root / SIGNATURE),
               "--public_key", str(ms_keys["release"][2])]
    ok = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "Verification succeeded" in ok.stdout, ok.stdout + ok.stderr
    model = root / "model" / "model.tflite"
    data = bytearray(model.read_bytes())
    data[-100] ^= 1
    model.write_bytes(bytes(data))
    refused = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and "Hash mismatch for 'model/model.tflite'" in refused.stderr, refused.stderr


@pytest.mark.skipif(kt.KOTLINC is None or kt.JAVA is None, reason="kotlinc or java not on PATH")
def test_the_android_verifier_takes_the_signature_role(ms_bundles, keys, request, tmp_path):
    """BundleVerifier.kt (shipped in Android bundles) checks the manifest's roles as the schema lists them."""
    jar = request.getfixturevalue("verifier_jar")  # compiled once, as test_kotlin_verifier.py does
    ok, out = kt.kotlin(jar, ms_bundles["android"].path, keys["publisher"][1], None, tmp_path / "unpacked")
    assert ok, out
    assert [SIGNATURE, "signature"] == next(f[:2] for f in kt.parse_ok(out)["files"] if f[0] == SIGNATURE)


def test_deploykit_signature_covers_the_model_signature(ms_bundles, keys, tmp_path):
    from deploykit.bundle.verify import verify_bundle
    from deploykit.core.errors import IntegrityError

    source = ms_bundles["android"].path
    with zipfile.ZipFile(source) as archive:
        signature = archive.read(SIGNATURE)
    forged = bytearray(signature)
    at = signature.index(b'"hint":"') + len(b'"hint":"')
    forged[at] = ord("0") if forged[at] != ord("0") else ord("1")  # another key's hint, same length
    forged = rewrite_zip(source, tmp_path / "forged.zip", replace={SIGNATURE: bytes(forged)})
    with pytest.raises(IntegrityError, match=SIGNATURE):
        verify_bundle(forged, [keys["publisher"][1]])


def test_bundles_with_a_model_signature_stay_byte_identical(converted, keys, ms_keys, labels_file, ms_bundles,
                                                           tmp_path):
    again = _bundle(converted, tmp_path / "again", [keys["publisher"][0]], ms_keys["release"][0], labels_file)
    for platform, built in ms_bundles.items():
        assert again[platform].path.read_bytes() == built.path.read_bytes()


BUILD_CONFIG = """[build]
out = "out"

[signing]
key = "keys/deploykit.key"
model_signing_key_env = "DEPLOYKIT_MODEL_SIGNING_KEY"

[[models]]
name = "classifier"
source = "classifier.keras"
targets = ["tflite"]
inputs = ["image=1x32x32x3"]
samples = 2

[models.bundle]
name = "com.example.classifier"
version = "1.0.0"
"""


@pytest.mark.parametrize("signing, message", [
    ('key = "k"\nmodel_signing_key = "a"\nmodel_signing_key_env = "B"',
     "give model_signing_key or model_signing_key_env"),
    ('model_signing_key = "a"', "model_signing_key needs key or key_env too"),
])
def test_build_config_checks_the_model_signing_keys(tmp_path, signing, message):
    from deploykit.orchestration.config import ConfigError, load_config

    (tmp_path / "deploykit.toml").write_text(BUILD_CONFIG.replace(
        'key = "keys/deploykit.key"\nmodel_signing_key_env = "DEPLOYKIT_MODEL_SIGNING_KEY"', signing))
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path / "deploykit.toml")


def test_build_signs_each_bundle_with_the_model_signing_key_from_the_environment(ms_keys, tmp_path, monkeypatch):
    from deploykit.bundle.signing import generate_keypair, load_public_key
    from deploykit.bundle.verify import verify_bundle
    from deploykit.orchestration.config import load_config
    from deploykit.orchestration.run import BuildOptions, build
    from tests.zoo import keras_nets

    keras_nets.build("mobilenet").save(tmp_path / "classifier.keras")
    _, public, _ = generate_keypair(tmp_path / "keys")
    (tmp_path / "deploykit.toml").write_text(BUILD_CONFIG)
    monkeypatch.setenv("DEPLOYKIT_MODEL_SIGNING_KEY", ms_keys["release"][1].read_text())
    result = build(load_config(tmp_path / "deploykit.toml"), BuildOptions(jobs=1))
    assert [j["status"] for j in result.jobs] == ["ok"]
    (made,) = [Path(b["bundle"]) for b in result.bundles]
    verify_bundle(made, [load_public_key(public)])
    _verify(_unzip(made, tmp_path / "unpacked"), ms_keys["release"][2])


SIGN_IN_A_PROCESS = """
import sys
from pathlib import Path
from deploykit.bundle.openssf import load_model_signing_key, model_signature
files = {"model/model.tflite": b"weights" * 100, "model/extra/meta.json": b"{}", "assets/labels.txt": b"a\\nb\\n"}
signature = model_signature(files, ["integration/README.md"], "com.example.m-1.0.0-android-fp32",
                            load_model_signing_key(sys.argv[1]))
sys.stdout.buffer.write(signature)
"""


def test_the_signature_bytes_are_the_same_from_one_process_to_the_next(ms_keys):
    """model-signing itself writes its statement in protobuf map order, which upb seeds per process, and draws ECDSA
    nonces at random: deploykit sorts the statement and derives the nonces (RFC 6979)."""
    runs = [subprocess.run([sys.executable, "-c", SIGN_IN_A_PROCESS, str(ms_keys["release"][1])], capture_output=True,
                           timeout=120, check=True).stdout for _ in range(2)]
    assert runs[0] == runs[1] and b'"dsseEnvelope"' in runs[0]
