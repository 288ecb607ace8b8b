"""Delta updates in the app updaters: the Android updater (DeployKitModel.kt as shipped, compiled with kotlinc against
the Android stubs of test_experiment_templates.py) run over HTTP against a real repository holding two versions of a
small torch classifier (delta_helpers.py: the same backbone, a fine-tuned head), and the Swift updaters by structure
(no Swift compiler here).

A byte-counting loopback server shows what the Kotlin fetched: after 1.0.0 was installed from its bundle, 1.1.0
costs the index, the release, the signed manifest and exactly the chunks 1.0.0 lacks (the same bytes `deploykit
pull` fetches), and installs the same files a whole-bundle install does. A tampered, missing or overlong chunk is
refused with nothing installed and no fallback to the bundle; installed files damaged on the device make the delta
no smaller than the bundle, which is then fetched instead.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import re
import zipfile
from functools import partial
from pathlib import Path

import pytest

from deploykit.bundle.client import pull
from deploykit.bundle.delta import chunk_path
from deploykit.bundle.repository import publish
from tests.bundle.bundle_helpers import NAME, serve, tree_snapshot
from tests.bundle.delta_helpers import bundle_version, converted_versions, files_of, manifest_of, tree_bytes
from tests.bundle.test_experiment_templates import _run, compile_updater, needs_kotlin

TEMPLATES = Path(__file__).parents[2] / "templates"

DELTA_MAIN = r"""
import android.content.Context
import com.deploykit.generated.*
import java.io.File
import kotlin.system.exitProcess

// Main.kt <repository url> <trusted key, base64> <device dir>
fun main(args: Array<String>) {
    val updater = DeployKitModelUpdater(Context(File(args[2])), args[0], "stable", listOf(args[1]))
    val model = try {
        updater.update()
    } catch (e: DeployKitException) {
        println("REFUSED: " + e.message)
        exitProcess(1)
    }
    println("MODEL " + model.path.removeSuffix("/" + DeployKitModelInfo.MODEL_PATH))
    updater.lastTransfer?.let {
        println("TRANSFER ${it.method}\t${it.bytes}\t${it.bundleBytes}\t${it.chunks}\t${it.chunksFetched}\t${it.bytesReused}\t${it.fallback}")
    }
}
"""


class CountingHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the repository and records every request: [path, status, body bytes sent]."""

    def __init__(self, *args, log: list, **kwargs):
        self.log = log
        super().__init__(*args, **kwargs)

    def log_request(self, code="-", size="-"):
        self.entry = [self.path.lstrip("/"), int(code), 0]
        self.log.append(self.entry)

    def log_message(self, *args):
        pass

    def copyfile(self, source, outputfile):
        while data := source.read(1 << 16):
            outputfile.write(data)
            self.entry[2] += len(data)


@pytest.fixture(scope="module")
def versions(tmp_path_factory, keys, labels_file):
    """{"v1": {platform: bundle}, "v2": {...}}: 1.0.0 and the head-only fine-tune 1.1.0."""
    dists = converted_versions(tmp_path_factory)
    out = tmp_path_factory.mktemp("delta-app-bundles")
    return {"v1": bundle_version(dists["v1"], out / "v1", keys["publisher"][0], "1.0.0", labels_file),
            "v2": bundle_version(dists["v2"], out / "v2", keys["publisher"][0], "1.1.0", labels_file)}


@pytest.fixture(scope="module")
def delta_jar(versions, tmp_path_factory) -> Path:
    return compile_updater(versions["v1"]["android"], tmp_path_factory.mktemp("delta-kotlin"), DELTA_MAIN)


class Device:
    """One app install of the Kotlin updater: ``update()`` runs it once; the parsed MODEL and TRANSFER lines."""

    def __init__(self, jar: Path, url: str, trusted: str, root: Path):
        self.jar, self.url, self.trusted, self.root = jar, url, trusted, root

    @property
    def store(self) -> Path:
        return self.root / "files" / "deploykit" / NAME

    def update(self) -> dict:
        ran = _run(self.jar, self.url, self.trusted, self.root)
        out = {"returncode": ran.returncode, "stdout": ran.stdout + ran.stderr}
        for line in ran.stdout.splitlines():
            if line.startswith("MODEL "):
                out["dir"] = Path(line[6:])
            elif line.startswith("TRANSFER "):
                fields = line[9:].split("\t")
                out["transfer"] = dict(zip(("method", "bytes", "bundle_bytes", "chunks", "chunks_fetched", "bytes_reused"),
                                           [fields[0], *map(int, fields[1:6])]), fallback=None if fields[6] == "null" else fields[6])
        return out


def chunk_ids(bundle: Path) -> dict[str, int]:
    return {c["sha256"]: c["length"] for e in manifest_of(bundle)["files"] for c in e["chunks"]}


@pytest.fixture
def setup(tmp_path, versions, keys, delta_jar):
    """A repository with 1.0.0 published behind a counting server; ``device(name)`` makes a Kotlin install."""
    repo = tmp_path / "repo"
    publish(list(versions["v1"].values()), repo, "stable", keys["publisher"][0])
    log: list = []
    trusted = base64.b64encode(keys["publisher"][1].raw).decode()
    with serve(repo, partial(CountingHandler, log=log, directory=str(repo))) as url:
        yield {"repo": repo, "log": log, "url": url,
               "device": lambda name: Device(delta_jar, url, trusted, tmp_path / "devices" / name),
               "publish_v2": lambda: publish(list(versions["v2"].values()), repo, "stable", keys["publisher"][0])}


def _install_v1(setup, name: str) -> Device:
    device = setup["device"](name)
    first = device.update()
    assert first["returncode"] == 0, first["stdout"]
    assert first["transfer"]["method"] == "bundle" and first["transfer"]["fallback"] == "nothing installed yet"
    return device


@needs_kotlin
def test_android_updater_fetches_only_the_missing_chunks_and_installs_what_the_bundle_installs(setup, versions, keys):
    repo, log = setup["repo"], setup["log"]
    device = _install_v1(setup, "delta")
    kept = list((device.store / "manifests").glob("*.json"))
    with zipfile.ZipFile(versions["v1"]["android"]) as archive:  # the whole-bundle install keeps the signed manifest
        assert [p.read_bytes() for p in kept] == [archive.read("manifest.json")]
    python = pull(setup["url"], "stable", NAME, [keys["publisher"][1]], device.root.parent / "python", platform="android")
    assert python.transfer["method"] == "bundle"

    setup["publish_v2"]()
    log.clear()
    delta = device.update()
    assert delta["returncode"] == 0, delta["stdout"]
    transfer = delta["transfer"]
    assert transfer["method"] == "delta" and transfer["fallback"] is None, transfer
    requested = {path: (status, size) for path, status, size in log}
    assert all(status == 200 for status, _ in requested.values()) and len(requested) == len(log)
    assert not [p for p in requested if p.endswith(".zip")]  # no bundle
    assert sum(size for _, size in requested.values()) == transfer["bytes"]  # what the updater counted
    # exactly the chunks of 1.1.0 that 1.0.0 lacks, each once, and nothing else but index, release, manifest
    v1, v2 = chunk_ids(versions["v1"]["android"]), chunk_ids(versions["v2"]["android"])
    changed = {sha: length for sha, length in v2.items() if sha not in v1}
    fetched = {p.rsplit("/", 1)[1]: size for p, (_, size) in requested.items() if p.startswith("chunks/")}
    assert fetched == changed and transfer["chunks_fetched"] == len(changed) and transfer["chunks"] == len(v2)
    assert transfer["bytes_reused"] == sum(v2.values()) - sum(changed.values())
    others = sorted(p.split("/")[0] for p in requested if not p.startswith("chunks/"))
    assert others == ["channels", "manifests", "releases"]
    # `deploykit pull` fetches the same bytes for the same update
    reference = pull(setup["url"], "stable", NAME, [keys["publisher"][1]], device.root.parent / "python", platform="android")
    assert reference.transfer["method"] == "delta"
    assert (reference.transfer["bytes"], reference.transfer["chunks_fetched"]) == (transfer["bytes"], len(changed))
    print(f"Kotlin delta 1.0.0 -> 1.1.0: {transfer['bytes']} bytes on the wire ({sum(changed.values())} in "
          f"{len(changed)} of {len(v2)} chunks, manifest {requested[next(p for p in requested if p.startswith('manifests/'))][1]}), "
          f"whole bundle {transfer['bundle_bytes']} ({100 * transfer['bytes'] / transfer['bundle_bytes']:.1f} %)")
    assert transfer["bytes"] < 0.2 * transfer["bundle_bytes"]

    # byte-identical to a whole-bundle install of 1.1.0 (a fresh device), and to the bundle's files
    fresh = setup["device"]("fresh")
    whole = fresh.update()
    assert whole["transfer"]["method"] == "bundle" and whole["transfer"]["bytes"] > transfer["bundle_bytes"]
    installed = tree_bytes(delta["dir"])
    assert installed == tree_bytes(whole["dir"]) == files_of(versions["v2"]["android"])
    assert delta["dir"].name == whole["dir"].name
    # the old version is gone, the new version's signed manifest kept for the next delta
    assert sorted(p.name for p in device.store.iterdir()) == sorted([delta["dir"].name, "manifests"])
    pin = next(b for r in (repo / "releases").glob("*.json") for b in json.loads(r.read_text())["bundles"]
               if b["platform"] == "android" and b["manifest"]["path"] in requested)
    assert [p.read_bytes() for p in (device.store / "manifests").iterdir()] == [(repo / pin["manifest"]["path"]).read_bytes()]

    log.clear()
    again = device.update()  # up to date: nothing but the index and the release
    assert again["returncode"] == 0 and "transfer" not in again
    assert sorted(p.split("/")[0] for p, _, _ in log) == ["channels", "releases"]


def _refused(device: Device, log: list, match: str) -> str:
    """The update fails with ``match``; the installed version and every file stay, no bundle is fetched."""
    prefs = next(device.root.glob("*.prefs"))
    current = re.search(r"^current\ts\t(.*)$", prefs.read_text(), re.M).group(1)
    before = tree_snapshot(device.store)
    log.clear()
    ran = device.update()
    assert ran["returncode"] == 1 and match in ran["stdout"], ran["stdout"]
    assert tree_snapshot(device.store) == before
    assert re.search(r"^current\ts\t(.*)$", prefs.read_text(), re.M).group(1) == current
    assert not [p for p, _, _ in log if p.endswith(".zip")]  # refused, not retried as a whole bundle
    return ran["stdout"]


@needs_kotlin
def test_android_updater_refuses_a_tampered_missing_or_overlong_chunk_with_nothing_installed(setup, versions):
    repo, log = setup["repo"], setup["log"]
    device = _install_v1(setup, "attacked")
    setup["publish_v2"]()
    v1 = chunk_ids(versions["v1"]["android"])
    sha, length = max(((s, n) for s, n in chunk_ids(versions["v2"]["android"]).items() if s not in v1), key=lambda c: c[1])
    stored = repo / chunk_path(sha)
    original = stored.read_bytes()

    tampered = bytearray(original)
    tampered[len(tampered) // 2] ^= 0x01
    stored.write_bytes(bytes(tampered))
    out = _refused(device, log, f"{chunk_path(sha)}: {length} bytes with sha256")
    assert "(mix-and-match or tampering)" in out
    stored.unlink()
    _refused(device, log, f"chunk {sha[:16]}... of the signed manifest is missing from the repository")
    stored.write_bytes(original + b"\0")
    _refused(device, log, f"{chunk_path(sha)} is too long")

    stored.write_bytes(original)  # repaired: the same device updates by delta
    repaired = device.update()
    assert repaired["returncode"] == 0 and repaired["transfer"]["method"] == "delta", repaired["stdout"]
    assert tree_bytes(repaired["dir"]) == files_of(versions["v2"]["android"])


@needs_kotlin
def test_android_updater_refuses_a_stored_manifest_that_is_not_the_signed_one(setup, versions, keys):
    from deploykit.bundle.manifest import canonical_json
    from deploykit.bundle.signing import MANIFEST_PAYLOAD_TYPE, sign_envelope

    repo, log = setup["repo"], setup["log"]
    device = _install_v1(setup, "forged")
    setup["publish_v2"]()
    with zipfile.ZipFile(versions["v2"]["android"]) as archive:
        original = archive.read("manifest.json")
    stored = repo / "manifests" / f"{hashlib.sha256(original).hexdigest()}.json"
    assert stored.read_bytes() == original
    manifest = manifest_of(versions["v2"]["android"])
    # re-signed by another key, with the pin updated in nothing: the pinned hash no longer matches
    stored.write_bytes(sign_envelope(canonical_json(manifest), MANIFEST_PAYLOAD_TYPE, [keys["attacker"][0]]))
    _refused(device, log, "does not match its pinned length and sha256")
    stored.write_bytes(original)


@needs_kotlin
def test_android_updater_fetches_the_bundle_when_the_installed_files_were_damaged(setup, versions):
    device = _install_v1(setup, "damaged")
    setup["publish_v2"]()
    current = next(p for p in device.store.iterdir() if p.name != "manifests")
    for path in current.rglob("*"):
        if path.is_file():
            path.write_bytes(bytes(b ^ 0xFF for b in path.read_bytes()))  # same lengths, no chunk hashes to its id
    ran = device.update()
    assert ran["returncode"] == 0, ran["stdout"]
    transfer = ran["transfer"]
    assert transfer["method"] == "bundle" and transfer["fallback"].startswith("a delta (")
    assert f"the whole bundle is {transfer['bundle_bytes']}" in transfer["fallback"]
    assert tree_bytes(ran["dir"]) == files_of(versions["v2"]["android"])


# -- Swift: no compiler here, the same steps and checks by structure ------------------------------------------
DELTA_STEPS = [  # in the order of delta.py and the Kotlin updater's fetchDelta
    'guard let installed = defaults.string(forKey: key("current")) else { return .fallback("nothing installed yet") }',
    'guard let pin = bundle["manifest"] as? [String: Any] else {',  # the release pins the manifest
    "let envelope = try await fetchPinned(pin)",  # its length and sha256
    "let manifest = try json(try verify(envelope, type: Self.manifestType))",  # the signature before parsing
    "let files = try checkDeltaManifest(manifest,",  # identity, file list, chunks that tile each file
    'guard files.allSatisfy({ $0["chunks"] != nil }) else { return .fallback("the manifest lists no chunks") }',
    "let local = localChunks(needed,",  # plan: installed bytes that hash to the ids
    "if cost >= bundleLength {",  # not smaller: the whole bundle
    "try await fetchChunk(sha, length: length)",  # the missing chunks, capped, hashed
    "for file in files { try rebuild(file,",  # every file into staging, checked against the manifest
]
KOTLIN_STEPS = [
    'val installed = prefs.getString("current", null) ?: return Delta.Fallback("nothing installed yet")',
    'val pin = ref.optJSONObject("manifest")',
    "val envelope = fetchPinned(pin)",
    "val manifest = verifier.verifyManifest(envelope, label, installedSequence)",
    "if (actual != expected)",
    'if (manifest.files.any { it.chunks == null }) return Delta.Fallback("the manifest lists no chunks")',
    "val local = localChunks(needed, manifest.files, current)",
    'if (cost >= ref.getLong("length"))',
    "for ((sha, length) in missing) downloadPinned(chunkPath(sha), length, sha, File(work, sha))",
    "for (f in manifest.files) rebuild(f, staging, local, current, work)",
]


def _in_order(text: str, steps: list[str]) -> None:
    at = [text.find(step) for step in steps]
    assert all(i >= 0 for i in at), [s for s, i in zip(steps, at) if i < 0]
    assert at == sorted(at), "the delta steps are out of order"


def test_swift_updaters_take_the_delta_steps_of_the_kotlin_and_python_clients(versions):
    """No Swift compiler here: the delta fragment takes the Kotlin's steps in its order with its checks and messages,
    and every iOS updater (Core ML's, rendered in a real bundle; ExecuTorch's and NCNN's) installs through it."""
    fragment = (TEMPLATES / "swift" / "DeployKitDelta.swift.tmpl").read_text()
    kotlin = (TEMPLATES / "kotlin" / "DeployKitModel.kt.tmpl").read_text()
    _in_order(fragment, DELTA_STEPS)
    _in_order(kotlin, KOTLIN_STEPS)
    for check in ("static let chunkOverhead = 512",  # the plan's cost per request, as delta.py's CHUNK_OVERHEAD
                  "data = try await fetch(path, maxBytes: length)",  # a chunk's listed length as the read cap
                  "guard data.count == length, actual == sha else",  # its bytes against its id
                  'chunk["offset"] as? Int == cursor', "guard cursor == length else",  # chunks tile each file
                  "folded.insert(path.precomposedStringWithCanonicalMapping",  # no case-colliding paths
                  'try Data().write(to: target, options: .withoutOverwriting)',  # fresh files in staging
                  'guard size == file["length"] as? Int, actual == file["sha256"] as? String else',  # each file
                  "resolved.hasPrefix(root.resolvingSymlinksInPath().path",  # installed reads stay in the version
                  "keepManifest(envelope, for: dirName)", "lastTransfer = transfer"):
        assert check in fragment, check
    for message in ("missing from the repository", "changed while the update was built",
                    "rebuilt from its chunks it is", "the release has no stored manifest (published before delta updates)",
                    "the manifest lists no chunks", "nothing installed yet", "no installed version to reuse",
                    "chunks and the manifest) would be about", "(mix-and-match)", "(mix-and-match or tampering)"):
        assert message in fragment and message in kotlin, message
    for name in ("DeployKitModel.swift.tmpl", "DeployKitUpdater.swift.tmpl"):
        updater = (TEMPLATES / "swift" / name).read_text()
        for call in ("{{swift_delta}}", "try await deliver(bundle, release: release, sequence: sequence)",
                     "func unpack(_ bundle: Data, sequence: Int, into staging: URL) throws -> ([[String: Any]], Data)",
                     "func place(_ staging: URL, files: [[String: Any]], sequence: Int) throws -> (String, URL)",
                     "func sourceRoot(of version: URL) -> URL", "received += data.count"):
            assert call in updater, (name, call)
        assert "func install(" not in updater
    with zipfile.ZipFile(versions["v1"]["ios"]) as archive:
        coreml = archive.read("integration/swift/DeployKitModel.swift").decode()
    assert fragment.rstrip() in coreml and "{{" not in coreml
    # Core ML keeps the verified files beside model.mlmodelc: the chunks the next delta reuses
    assert "try fm.moveItem(at: staging, to: sourceRoot(of: final))" in coreml
