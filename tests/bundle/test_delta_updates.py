"""Delta updates on real converted models: the chunk lists, a delta pull over HTTP that installs exactly what a
whole-bundle pull installs, refused tampered / missing / swapped chunks with nothing installed, and the fallback to
the whole bundle when a delta would not be smaller."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest

from deploykit.bundle.client import STATE_FILE, pull
from deploykit.bundle.delta import chunk_path
from deploykit.bundle.repository import publish
from deploykit.core.errors import IntegrityError
from tests.bundle.bundle_helpers import NAME, rewrite_zip, serve, tree_snapshot
from tests.bundle.delta_helpers import bundle_version, converted_versions, files_of, manifest_of, tree_bytes


@pytest.fixture(scope="module")
def versions(tmp_path_factory, keys, labels_file):
    """{"v1": {platform: bundle}, "v2": {...}}: 1.0.0 and the head-only fine-tune 1.1.0."""
    dists = converted_versions(tmp_path_factory)
    out = tmp_path_factory.mktemp("delta-bundles")
    return {"v1": bundle_version(dists["v1"], out / "v1", keys["publisher"][0], "1.0.0", labels_file),
            "v2": bundle_version(dists["v2"], out / "v2", keys["publisher"][0], "1.1.0", labels_file)}


@pytest.fixture
def repo_v1_installed(tmp_path, versions, keys):
    """A repository with 1.0.0 published, installed on an Android and an iOS device; then 1.1.0 published."""
    repo = tmp_path / "repo"
    publish(list(versions["v1"].values()), repo, "stable", keys["publisher"][0])
    public = keys["publisher"][1]
    for platform in ("android", "ios"):
        first = pull(repo, "stable", NAME, [public], tmp_path / platform, platform=platform)
        assert first.transfer["method"] == "bundle" and first.transfer["fallback"] == "nothing installed yet"
    publish(list(versions["v2"].values()), repo, "stable", keys["publisher"][0])
    return repo


# -- the chunk lists -------------------------------------------------------------------------------------------
def test_every_file_is_listed_as_chunks_that_tile_it_and_hash_to_their_ids(versions):
    for bundle in versions["v1"].values():
        files = files_of(bundle)
        for entry in manifest_of(bundle)["files"]:
            data, chunks = files[entry["path"]], entry["chunks"]
            assert [c["offset"] for c in chunks] == [sum(c["length"] for c in chunks[:i]) for i in range(len(chunks))]
            assert sum(c["length"] for c in chunks) == len(data) == entry["length"]
            for c in chunks:
                assert hashlib.sha256(data[c["offset"]:c["offset"] + c["length"]]).hexdigest() == c["sha256"]


def test_chunks_are_cut_at_every_tensor(versions):
    """Each TFLite buffer and each Core ML weight blob of at least the floor starts and ends at a chunk boundary
    (one chunk, or several when it is longer than the file's largest chunk)."""
    from deploykit.bundle.chunking import SPAN_FLOOR
    from deploykit.formats.coreml.package import blob_spans
    from deploykit.formats.tflite.layout import buffer_spans

    readers = {"android": ("model/model.tflite", buffer_spans),
               "ios": ("model/model.mlpackage/Data/com.apple.CoreML/weights/weight.bin", blob_spans)}
    for platform, (path, reader) in readers.items():
        bundle = versions["v1"][platform]
        data = files_of(bundle)[path]
        chunks = [c for e in manifest_of(bundle)["files"] if e["path"] == path for c in e["chunks"]]
        cuts = {c["offset"] for c in chunks} | {len(data)}
        spans = [s for s in reader(data) if s[1] >= SPAN_FLOOR]
        assert len(spans) >= 4  # three convolutions and the head, each with weights of at least 1 KiB
        uncut = [(o, n) for o, n in spans if o not in cuts or o + n not in cuts]
        assert not uncut, f"{platform}: tensors not cut at chunk boundaries: {uncut[:3]}"
        assert any((o, n) in {(c["offset"], c["length"]) for c in chunks} for o, n in spans)  # the head: one chunk


def test_a_head_only_fine_tune_changes_only_the_chunks_around_the_head(versions):
    for platform in ("android", "ios"):
        old = {c["sha256"] for e in manifest_of(versions["v1"][platform])["files"] for c in e["chunks"]}
        model = [e for e in manifest_of(versions["v2"][platform])["files"] if e["role"] == "model"]
        new = [c for e in model for c in e["chunks"] if c["sha256"] not in old]
        total = sum(e["length"] for e in model)
        # the head is 128 x 10 floats (5 KB) of 376 KB of weights; the rest is metadata and graph structure
        assert 0 < sum(c["length"] for c in new) < 0.1 * total, (platform, [c["length"] for c in new])


def test_verify_refuses_chunks_that_do_not_tile_the_file(versions, keys, tmp_path):
    from deploykit.bundle.manifest import canonical_json
    from deploykit.bundle.signing import MANIFEST_PAYLOAD_TYPE, sign_envelope
    from deploykit.bundle.verify import verify_bundle

    bundle = versions["v1"]["android"]
    manifest = manifest_of(bundle)
    entry = next(e for e in manifest["files"] if e["path"] == "model/model.tflite")
    entry["chunks"][1]["offset"] += 1  # still validates against the schema; no longer tiles the file
    forged = rewrite_zip(bundle, tmp_path / "forged.zip", replace={
        "manifest.json": sign_envelope(canonical_json(manifest), MANIFEST_PAYLOAD_TYPE, [keys["publisher"][0]])})
    with pytest.raises(IntegrityError, match="model/model.tflite: chunk 1 starts at"):
        verify_bundle(forged, [keys["publisher"][1]])


# -- publish ---------------------------------------------------------------------------------------------------
def test_publish_stores_every_chunk_and_the_signed_manifest(repo_v1_installed, versions):
    for bundle in versions["v2"].values():
        for entry in manifest_of(bundle)["files"]:
            for c in entry["chunks"]:
                stored = repo_v1_installed / chunk_path(c["sha256"])
                assert hashlib.sha256(stored.read_bytes()).hexdigest() == c["sha256"]
    release_path = next((repo_v1_installed / "releases").glob("*.json"))
    releases = [json.loads(p.read_text()) for p in (repo_v1_installed / "releases").glob("*.json")]
    assert release_path and all("manifest" in b for r in releases for b in r["bundles"])
    for r in releases:
        for b in r["bundles"]:
            stored = (repo_v1_installed / b["manifest"]["path"]).read_bytes()
            assert hashlib.sha256(stored).hexdigest() == b["manifest"]["sha256"]
            with zipfile.ZipFile(repo_v1_installed / b["path"]) as archive:
                assert archive.read("manifest.json") == stored


# -- pull ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("platform", ["android", "ios"])
def test_a_delta_pull_over_http_installs_the_same_files_as_a_whole_bundle(repo_v1_installed, keys, tmp_path, platform):
    public = keys["publisher"][1]
    with serve(repo_v1_installed) as url:
        delta = pull(url, "stable", NAME, [public], tmp_path / platform, platform=platform)
        whole = pull(url, "stable", NAME, [public], tmp_path / "whole", platform=platform)
    assert delta.status == "updated" and delta.version == "1.1.0"
    transfer = delta.transfer
    assert transfer["method"] == "delta" and transfer["fallback"] is None
    assert 0 < transfer["chunks_fetched"] < transfer["chunks"] / 4
    assert transfer["bytes"] < 0.2 * transfer["bundle_bytes"], transfer  # the tiny model's manifest is most of it
    assert whole.transfer["method"] == "bundle" and whole.transfer["bytes"] > transfer["bundle_bytes"]
    installed = tree_bytes(delta.path.resolve())
    assert installed == tree_bytes(whole.path.resolve()) == files_of(_bundle(repo_v1_installed, platform, "1.1.0"))
    # the next delta finds its chunks through the kept manifest of the installed version
    kept = sorted(p.stem for p in (tmp_path / platform / NAME / "manifests").glob("*.json"))
    assert kept == sorted(p.name for p in (tmp_path / platform / NAME / "versions").iterdir())


def _bundle(repo: Path, platform: str, version: str) -> Path:
    for release in (repo / "releases").glob("*.json"):
        doc = json.loads(release.read_text())
        if doc["version"] == version:
            return repo / next(b for b in doc["bundles"] if b["platform"] == platform)["path"]
    raise AssertionError(version)


def _needed_chunk(repo: Path, dest: Path, platform: str) -> dict:
    """A chunk of 1.1.0's model that the installed 1.0.0 does not hold: one a delta must fetch."""
    old = {c["sha256"] for e in json.loads(next((dest / NAME / "manifests").glob("*.json")).read_text())["files"]
           for c in e["chunks"]}
    new = manifest_of(_bundle(repo, platform, "1.1.0"))
    return max((c for e in new["files"] if e["role"] == "model" for c in e["chunks"] if c["sha256"] not in old),
               key=lambda c: c["length"])


def refused(dest: Path, match: str, **kwargs) -> IntegrityError:
    """The pull fails with ``match``; nothing but the state file changes, the installed version stays."""
    before = {k: v for k, v in tree_snapshot(dest).items() if not k.endswith(STATE_FILE)}
    target = (dest / NAME / "current").resolve()
    with pytest.raises(IntegrityError, match=match) as caught:
        pull(**kwargs, dest=dest)
    assert {k: v for k, v in tree_snapshot(dest).items() if not k.endswith(STATE_FILE)} == before
    assert (dest / NAME / "current").resolve() == target
    return caught.value


@pytest.mark.parametrize("platform", ["android", "ios"])
def test_a_tampered_chunk_is_refused_and_nothing_is_installed(repo_v1_installed, keys, tmp_path, platform):
    chunk = _needed_chunk(repo_v1_installed, tmp_path / platform, platform)
    stored = repo_v1_installed / chunk_path(chunk["sha256"])
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0x01
    stored.write_bytes(bytes(data))
    with serve(repo_v1_installed) as url:
        error = refused(tmp_path / platform, "sha256", repo=url, channel="stable", name=NAME,
                        trusted=[keys["publisher"][1]], platform=platform)
    assert error.exit_code == 4 and chunk["sha256"][:16] in error.message


def test_a_missing_chunk_is_refused_like_a_tampered_bundle(repo_v1_installed, keys, tmp_path):
    chunk = _needed_chunk(repo_v1_installed, tmp_path / "android", "android")
    (repo_v1_installed / chunk_path(chunk["sha256"])).unlink()
    with serve(repo_v1_installed) as url:
        error = refused(tmp_path / "android", "missing from the repository", repo=url, channel="stable", name=NAME,
                        trusted=[keys["publisher"][1]], platform="android")
    assert error.exit_code == 4


def test_a_chunk_with_other_bytes_or_more_bytes_is_refused(repo_v1_installed, keys, tmp_path):
    """The server answers a chunk's name with other bytes of the same length (they do not hash to the id), then
    with the right bytes and one more (the listed length is the read cap): both refused."""
    chunk = _needed_chunk(repo_v1_installed, tmp_path / "ios", "ios")
    stored = repo_v1_installed / chunk_path(chunk["sha256"])
    original = stored.read_bytes()
    stored.write_bytes(original[::-1])
    kwargs = dict(channel="stable", name=NAME, trusted=[keys["publisher"][1]], platform="ios")
    with serve(repo_v1_installed) as url:
        refused(tmp_path / "ios", "sha256", repo=url, **kwargs)
        stored.write_bytes(original + b"\0")
        refused(tmp_path / "ios", "more than the declared|longer than its declared", repo=url, **kwargs)


def test_a_tampered_stored_manifest_is_refused(repo_v1_installed, keys, tmp_path):
    release = json.loads(next(p for p in (repo_v1_installed / "releases").glob("*.json")
                              if json.loads(p.read_text())["version"] == "1.1.0").read_text())
    stored = repo_v1_installed / next(b for b in release["bundles"] if b["platform"] == "android")["manifest"]["path"]
    data = bytearray(stored.read_bytes())
    at = data.index(b'"payload"') + 20  # a character of the signed payload's base64, same length
    data[at] = ord("A") if data[at] != ord("A") else ord("B")
    stored.write_bytes(bytes(data))
    with serve(repo_v1_installed) as url:
        refused(tmp_path / "android", "differs from", repo=url, channel="stable", name=NAME,
                trusted=[keys["publisher"][1]], platform="android")


def test_a_local_file_changed_on_the_device_is_not_reused(repo_v1_installed, keys, tmp_path):
    """Installed bytes count only when they hash to the id: a corrupted installed model costs a fetch, not a bad
    install."""
    model = (tmp_path / "android" / NAME / "current" / "model" / "model.tflite").resolve()
    model.chmod(0o644)
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    result = pull(repo_v1_installed, "stable", NAME, [keys["publisher"][1]], tmp_path / "android", platform="android")
    assert result.transfer["method"] == "delta"
    assert tree_bytes(result.path.resolve()) == files_of(_bundle(repo_v1_installed, "android", "1.1.0"))


def test_the_whole_bundle_comes_when_a_delta_would_not_be_smaller(repo_v1_installed, keys, tmp_path):
    """A device that runs the Android model switches to the iOS bundle: nothing to reuse, so no delta."""
    result = pull(repo_v1_installed, "stable", NAME, [keys["publisher"][1]], tmp_path / "android", platform="ios")
    assert result.transfer["method"] == "bundle"
    assert result.transfer["fallback"].startswith("a delta (") and "the whole bundle is" in result.transfer["fallback"]
    assert tree_bytes(result.path.resolve()) == files_of(_bundle(repo_v1_installed, "ios", "1.1.0"))


def test_no_delta_fetches_the_whole_bundle(repo_v1_installed, keys, tmp_path):
    result = pull(repo_v1_installed, "stable", NAME, [keys["publisher"][1]], tmp_path / "ios", platform="ios", delta=False)
    assert result.transfer == {"method": "bundle", "fallback": "delta updates are off", "bytes": result.transfer["bytes"],
                               "bundle_bytes": result.transfer["bundle_bytes"]}
    assert result.transfer["bytes"] > result.transfer["bundle_bytes"]


def test_cli_pull_prints_the_bytes_and_takes_no_delta(repo_v1_installed, keys, tmp_path):
    import subprocess
    import sys

    def deploykit(*args):
        return subprocess.run([sys.executable, "-m", "deploykit.cli.app", *map(str, args)], capture_output=True,
                              text=True, timeout=300, cwd=tmp_path)

    common = ["--channel", "stable", "--name", NAME, "--trusted-key", keys["publisher"][3], "--platform", "android"]
    with serve(repo_v1_installed) as url:
        delta = deploykit("pull", "--repo", url, "--dest", tmp_path / "android", *common)
        whole = deploykit("pull", "--repo", url, "--dest", tmp_path / "other", *common, "--no-delta", "--json")
    assert delta.returncode == 0, delta.stderr
    assert "updated" in delta.stdout and "as a delta" in delta.stdout and "bytes fetched" in delta.stdout
    assert whole.returncode == 0, whole.stderr
    assert json.loads(whole.stdout)["transfer"]["method"] == "bundle"
    helped = deploykit("pull", "--help")
    assert "--no-delta" in helped.stdout and "chunks" in helped.stdout


def test_tensors_moved_by_a_converter_keep_their_chunks(versions):
    """Chunks follow content, not position: the same model with its buffers stored in reverse order (a converter
    that renumbers them; every offset in the file changes) still shares all its weights' chunks."""
    from deploykit.bundle.chunking import chunk_list
    from deploykit.formats.tflite.flatbuffer import read_model, write_model
    from deploykit.formats.tflite.layout import buffer_spans

    data = files_of(versions["v1"]["android"])["model/model.tflite"]
    model = read_model(data)
    order = [0] + list(range(len(model.buffers) - 1, 0, -1))  # buffer 0 stays the empty sentinel
    position = {old: new for new, old in enumerate(order)}
    model.buffers = [model.buffers[i] for i in order]
    for graph in model.subgraphs:
        for tensor in graph.tensors:
            tensor.buffer = position[tensor.buffer]
    for entry in model.metadata or []:
        entry.buffer = position[entry.buffer]
    moved = write_model(model, len(data))
    assert buffer_spans(moved) != buffer_spans(data)
    before = {c["sha256"] for c in chunk_list(data, buffer_spans(data))}
    after = chunk_list(moved, buffer_spans(moved))
    weights = sum(n for _, n in buffer_spans(moved))
    shared = sum(c["length"] for c in after if c["sha256"] in before)
    assert shared > 0.97 * weights, (shared, weights, len(moved))
