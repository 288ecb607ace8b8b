"""The app side of experiments: the Kotlin helper and the Android updater compiled with kotlinc and run on the JVM,
the Swift helper and updaters checked by structure (no Swift compiler here).

1. ``DeployKitExperiment.kt`` as shipped in a real Android bundle gives the golden vectors' buckets and groups,
   Python's group for each of 100,000 ids, the same refusals, and event lines ``deploykit experiment report`` reads.
2. ``DeployKitModelUpdater`` (DeployKitModel.kt's updater, as shipped) against small stubs of the Android classes it
   calls (Context, SharedPreferences persisted to a file, Base64, org.json on the verifier's own parser, Tink's
   Ed25519Verify on the JDK's): over HTTP from a loopback server it installs the arm ``deploykit pull`` installs
   for the same device, reports it through ``onArm``, logs install and outcome events, keeps an arm's newer model
   after the end, and refuses an index whose shares do not add up.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import shutil
import subprocess
import time
import zipfile
from pathlib import Path

import pytest

from deploykit.bundle.client import pull
from deploykit.bundle.events import summarize
from deploykit.bundle.experiment import ArmSpec, ExperimentOptions, assign, end_experiment, start_experiment
from deploykit.bundle.manifest import canonical_json
from deploykit.bundle.repository import publish, rollout_bucket
from deploykit.bundle.signing import CHANNEL_PAYLOAD_TYPE, sign_envelope
from deploykit.core.errors import IntegrityError
from tests.bundle.bundle_helpers import NAME, make_bundles, serve

KOTLINC, JAVA = shutil.which("kotlinc"), shutil.which("java")
needs_kotlin = pytest.mark.skipif(KOTLINC is None or JAVA is None,
                                  reason="kotlinc (or java) is not on PATH; ./setup.sh installs Debian's kotlin package")
VECTORS = Path(__file__).with_name("experiment_vectors.json")
SALT = "c3" * 32
V1, V2 = 1_000_000, 1_001_000

HELPER_MAIN = r"""
import com.deploykit.generated.*
import java.io.File

fun specs(arms: String) = arms.split(",").map {
    val (name, points) = it.split(":")
    DeployKitArmSpec(name, points.toInt(), "1.0.0", 1L, "fp32")
}

fun main(args: Array<String>) {
    when (args[0]) {
        "vectors" -> File(args[1]).readLines(Charsets.UTF_8).forEach { line ->
            val (salt, arms, device) = line.split("\t")
            println("${DeployKitExperiment.bucket(salt, device)}\t${DeployKitExperiment.assign(salt, device, specs(arms))}")
        }
        "bulk" -> {
            val out = StringBuilder()
            for (i in 0 until args[3].toInt()) out.append(DeployKitExperiment.assign(args[1], "device-$i", specs(args[2]))).append('\n')
            print(out)
        }
        "check" -> try {
            DeployKitExperiment.check("x", specs(args[1]), args[2].toInt(), args[3], args[4])
            println("OK")
        } catch (e: DeployKitException) {
            println("REFUSED: " + e.message)
        }
        "events" -> {
            val log = DeployKitEventLog(File(args[1]))
            val now = DeployKitExperiment.parseTime("2031-03-01T12:00:00Z")
            log.append(DeployKitEventLog.install(now, "dev-\"1\"\u00e9", "com.example.classifier", "head-v2", "control", "1.0.0", "fp32"))
            log.append(DeployKitEventLog.event(now, "dev-\"1\"\u00e9", "com.example.classifier", "head-v2", "control", "score", 0.25))
            log.append(DeployKitEventLog.event(now, "dev-\"1\"\u00e9", "com.example.classifier", "head-v2", "control", "opened", null))
            log.append(DeployKitEventLog.event(now, "dev-\"1\"\u00e9", "com.example.classifier", "head-v2", "control", "n", 3.0))
            try {
                DeployKitEventLog.event(now, "d", "m", "e", "a", "install", null)
            } catch (e: IllegalArgumentException) {
                println("REFUSED: " + e.message)
            }
        }
    }
}
"""

ANDROID_STUBS = {
    "Context.kt": r"""
package android.content

import java.io.File

open class Context(private val root: File) {
    init { root.mkdirs() }
    val noBackupFilesDir: File get() = File(root, "files")
    fun getSharedPreferences(name: String, mode: Int): SharedPreferences = FilePreferences(File(root, "$name.prefs"))
    companion object { const val MODE_PRIVATE = 0 }
}

interface SharedPreferences {
    fun getString(key: String, default: String?): String?
    fun getLong(key: String, default: Long): Long
    fun getBoolean(key: String, default: Boolean): Boolean
    fun getStringSet(key: String, default: Set<String>?): Set<String>?
    fun contains(key: String): Boolean
    fun edit(): Editor

    interface Editor {
        fun putString(key: String, value: String?): Editor
        fun putLong(key: String, value: Long): Editor
        fun putBoolean(key: String, value: Boolean): Editor
        fun putStringSet(key: String, value: Set<String>?): Editor
        fun remove(key: String): Editor
        fun apply()
        fun commit(): Boolean
    }
}

/** SharedPreferences kept in a file between runs: one "key\ttype\tvalue" line each (sets joined by \u0001). */
class FilePreferences(private val file: File) : SharedPreferences {
    private val values = HashMap<String, Any>()

    init {
        if (file.exists()) file.readLines().filter { it.isNotEmpty() }.forEach {
            val (key, type, value) = it.split("\t", limit = 3)
            values[key] = when (type) {
                "l" -> value.toLong()
                "b" -> value.toBoolean()
                "set" -> if (value.isEmpty()) emptySet<String>() else value.split("\u0001").toSet()
                else -> value
            }
        }
    }

    override fun getString(key: String, default: String?) = values[key] as? String ?: default
    override fun getLong(key: String, default: Long) = values[key] as? Long ?: default
    override fun getBoolean(key: String, default: Boolean) = values[key] as? Boolean ?: default
    @Suppress("UNCHECKED_CAST")
    override fun getStringSet(key: String, default: Set<String>?) = values[key] as? Set<String> ?: default
    override fun contains(key: String) = key in values
    override fun edit(): SharedPreferences.Editor = object : SharedPreferences.Editor {
        private val changes = HashMap<String, Any?>()
        override fun putString(key: String, value: String?) = apply { changes[key] = value }
        override fun putLong(key: String, value: Long) = apply { changes[key] = value }
        override fun putBoolean(key: String, value: Boolean) = apply { changes[key] = value }
        override fun putStringSet(key: String, value: Set<String>?) = apply { changes[key] = value }
        override fun remove(key: String) = apply { changes[key] = null }
        override fun apply() { commit() }
        override fun commit(): Boolean {
            for ((key, value) in changes) if (value == null) values.remove(key) else values[key] = value
            file.writeText(values.entries.joinToString("") { (key, value) ->
                val type = when (value) { is Long -> "l"; is Boolean -> "b"; is Set<*> -> "set"; else -> "s" }
                "$key\t$type\t${if (value is Set<*>) value.joinToString("\u0001") else value}\n"
            })
            return true
        }
    }
}
""",
    "Base64.kt": """
package android.util

object Base64 {
    const val NO_WRAP = 2
    fun decode(text: String, flags: Int): ByteArray = java.util.Base64.getDecoder().decode(text)
}
""",
    "Ed25519Verify.kt": """
package com.google.crypto.tink.subtle

import java.security.GeneralSecurityException

class Ed25519Verify(private val publicKey: ByteArray) {
    fun verify(signature: ByteArray, message: ByteArray) {
        if (!com.deploykit.generated.jdkEd25519Verify(publicKey, signature, message)) throw GeneralSecurityException("invalid signature")
    }
}
""",
    "JSONObject.kt": """
package org.json

/** org.json's calls the updater makes, on BundleVerifier.kt's own parser. */
class JSONObject(private val map: Map<*, *>) {
    constructor(text: String) : this(com.deploykit.generated.Json.parse(text.toByteArray(Charsets.UTF_8)) as Map<*, *>)

    private fun need(key: String): Any = map[key] ?: throw RuntimeException("JSONObject[$key] not found")
    fun getString(key: String) = need(key) as String
    fun getLong(key: String) = (need(key) as Number).toLong()
    fun getInt(key: String) = (need(key) as Number).toInt()
    fun getDouble(key: String) = (need(key) as Number).toDouble()
    fun getJSONObject(key: String) = JSONObject(need(key) as Map<*, *>)
    fun optJSONObject(key: String): JSONObject? = (map[key] as? Map<*, *>)?.let { JSONObject(it) }
    fun getJSONArray(key: String) = JSONArray(need(key) as List<*>)
    fun keys(): Iterator<String> = map.keys.map { it as String }.iterator()
}

class JSONArray(private val list: List<*>) {
    fun length() = list.size
    fun getJSONObject(index: Int) = JSONObject(list[index] as Map<*, *>)
}
""",
}

UPDATER_MAIN = r"""
import android.content.Context
import com.deploykit.generated.*
import java.io.File
import kotlin.system.exitProcess

// Main.kt <repository url> <trusted key, base64> <device dir> <device id> <event log> [record EVENT VALUE]
fun main(args: Array<String>) {
    val context = Context(File(args[2]))
    context.getSharedPreferences("deploykit.${DeployKitModelInfo.NAME}.stable", Context.MODE_PRIVATE).edit()
        .putString("deviceId", args[3]).apply()
    val updater = DeployKitModelUpdater(context, args[0], "stable", listOf(args[1]), File(args[4])) { arm ->
        println("ARM ${arm.experiment} ${arm.arm} ${arm.version} ${arm.sequence} ${arm.variant} ${arm.first} ${arm.deviceId}")
    }
    if (args.size > 5) {
        println("RECORD " + (updater.recordEvent(args[6], args[7].toDouble())?.let { DeployKitEventLog.jsonLine(it) } ?: "none"))
        return
    }
    val model = try {
        updater.update()
    } catch (e: DeployKitException) {
        println("REFUSED: " + e.message)
        exitProcess(1)
    }
    println("MODEL " + model.parentFile.parentFile.name + " " + model.name)
}
"""


def _compile(root: Path, sources: list[str], jar: str, clean: str | None = None) -> Path:
    """kotlinc once per module; ``clean``: a source file that must compile without a warning."""
    started = time.monotonic()
    proc = subprocess.run([KOTLINC, *sources, "-include-runtime", "-d", jar], cwd=root, capture_output=True, text=True,
                          timeout=900)
    print(f"kotlinc {jar}: {time.monotonic() - started:.1f} s")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    if clean:
        warnings = [line for line in proc.stderr.splitlines() if re.search(rf"{clean}:\d+:\d+: (warning|error)", line)]
        assert not warnings, "\n".join(warnings)
    return root / jar


def _android_file(bundle: Path, name: str) -> str:
    with zipfile.ZipFile(bundle) as archive:
        return archive.read(f"integration/kotlin/{name}").decode()


@pytest.fixture(scope="module")
def helper_jar(bundles, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("experiment-kotlin")
    for name in ("DeployKitExperiment.kt", "BundleVerifier.kt"):  # BundleVerifier.kt holds DeployKitException
        (root / name).write_text(_android_file(bundles["android"], name))
    (root / "Main.kt").write_text(HELPER_MAIN)
    assert "{{" not in (root / "DeployKitExperiment.kt").read_text()
    return _compile(root, ["DeployKitExperiment.kt", "BundleVerifier.kt", "Main.kt"], "helper.jar", clean="DeployKitExperiment.kt")


def _run(jar: Path, *args, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([JAVA, "-jar", str(jar), *map(str, args)], capture_output=True, text=True, timeout=300,
                          cwd=cwd, encoding="utf-8")


@needs_kotlin
def test_kotlin_helper_gives_the_golden_vectors_and_python_groups(helper_jar, tmp_path):
    doc = json.loads(VECTORS.read_text("utf-8"))
    rows, expected = [], []
    for exp in doc["experiments"]:
        arms = ",".join(f"{a['name']}:{a['basis_points']}" for a in exp["arms"])
        for vector in exp["vectors"]:
            rows.append(f"{exp['salt']}\t{arms}\t{vector['device']}")
            expected.append(f"{vector['bucket']}\t{vector['group']}")
    (tmp_path / "vectors.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    ran = _run(helper_jar, "vectors", tmp_path / "vectors.tsv")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines() == expected

    exp = {"salt": SALT, "arms": [{"name": "control", "basis_points": 4500}, {"name": "treatment", "basis_points": 4500}]}
    bulk = _run(helper_jar, "bulk", SALT, "control:4500,treatment:4500", 100_000)
    assert bulk.returncode == 0, bulk.stderr
    assert bulk.stdout.splitlines() == [assign(exp, f"device-{i}") for i in range(100_000)]


@needs_kotlin
def test_kotlin_helper_refuses_what_python_refuses_and_writes_events_the_report_reads(helper_jar, tmp_path):
    start, end = "2031-03-01T00:00:00Z", "2031-03-15T00:00:00Z"
    assert _run(helper_jar, "check", "control:4500,treatment:4500", 1000, start, end).stdout.strip() == "OK"
    assert "add up to 99.99 %" in _run(helper_jar, "check", "control:4500,treatment:4499", 1000, start, end).stdout
    assert "distinct" in _run(helper_jar, "check", "a:5000,a:5000", 0, start, end).stdout
    assert "distinct" in _run(helper_jar, "check", "holdout:5000,b:5000", 0, start, end).stdout
    assert "ends before it starts" in _run(helper_jar, "check", "a:5000,b:5000", 0, end, start).stdout

    log = tmp_path / "events.jsonl"
    ran = _run(helper_jar, "events", log)
    assert ran.returncode == 0 and "REFUSED: event name install" in ran.stdout
    lines = [json.loads(line) for line in log.read_text("ascii").splitlines()]
    device = 'dev-"1"\u00e9'
    assert lines[0] == {"ts": "2031-03-01T12:00:00Z", "device": device, "model": NAME, "experiment": "head-v2",
                        "arm": "control", "event": "install", "value": None, "version": "1.0.0", "variant": "fp32"}
    assert [(e["event"], e["value"]) for e in lines[1:]] == [("score", 0.25), ("opened", None), ("n", 3.0)]
    for line in log.read_text("ascii").splitlines():  # byte for byte what Python's events.append writes
        assert line == json.dumps(json.loads(line), sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    report = summarize(log, metric="score")
    assert report.arms[0].devices == 1 and report.arms[0].metric.mean == 0.25


@pytest.fixture(scope="module")
def versions(converted, keys, labels_file, tmp_path_factory):
    key = keys["publisher"][0]
    return {v: make_bundles(converted, tmp_path_factory.mktemp(v), [key], labels_file, version=v) for v in ("1.0.0", "1.1.0")}


def compile_updater(bundle: Path, root: Path, main: str) -> Path:
    """``DeployKitModelUpdater`` as the Android ``bundle`` ships it (without the bitmap helpers, which need
    android.graphics), its helpers, the Android stubs and ``main``, compiled into ``root/updater.jar``."""
    model = _android_file(bundle, "DeployKitModel.kt")
    info = model[model.index("object DeployKitModelInfo {"):model.index("    /** A picture of any size")] + "}\n"
    imports = "\n".join(line for line in model.splitlines()
                        if line.startswith("import ") and not line.startswith("import android.graphics"))
    updater = model[model.index("/** Tink's Ed25519"):]
    (root / "Updater.kt").write_text(f"package com.deploykit.generated\n\n{imports}\n\n{info}\n{updater}")
    for name in ("DeployKitExperiment.kt", "BundleVerifier.kt"):
        (root / name).write_text(_android_file(bundle, name))
    for name, text in ANDROID_STUBS.items():
        (root / name).write_text(text)
    (root / "Main.kt").write_text(main)
    return _compile(root, ["Updater.kt", "DeployKitExperiment.kt", "BundleVerifier.kt", *ANDROID_STUBS, "Main.kt"],
                    "updater.jar", clean="Updater.kt")


@pytest.fixture(scope="module")
def updater_jar(versions, tmp_path_factory) -> Path:
    return compile_updater(versions["1.0.0"]["android"], tmp_path_factory.mktemp("updater-kotlin"), UPDATER_MAIN)


def _device(group: str) -> str:
    exp = {"salt": SALT, "arms": [{"name": "control", "basis_points": 4500}, {"name": "treatment", "basis_points": 4500}]}
    return next(f"device-{i}" for i in range(1000) if assign(exp, f"device-{i}") == group)


@needs_kotlin
def test_android_updater_installs_reports_and_logs_the_arm_deploykit_pull_does(updater_jar, versions, keys, tmp_path):
    key, public = keys["publisher"][0], keys["publisher"][1]
    trusted = base64.b64encode(public.raw).decode()
    repo = tmp_path / "repo"
    publish(list(versions["1.0.0"].values()), repo, "stable", key)
    publish(list(versions["1.1.0"].values()), repo, "stable", key, rollout=0)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    start_experiment(repo, "stable", ExperimentOptions(
        name="head-v2", model=NAME, arms=(ArmSpec.parse("control=1.0.0:fp32:45"), ArmSpec.parse("treatment=1.1.0:fp32:45")),
        holdout_basis_points=1000, start=now - dt.timedelta(minutes=1), end=now + dt.timedelta(days=14), salt=SALT), key)
    devices = {group: _device(group) for group in ("control", "treatment", "holdout")}
    log = tmp_path / "events.jsonl"
    sequences = {"control": V1, "treatment": V2, "holdout": V1}

    with serve(repo) as url:
        def update(group, *extra):
            return _run(updater_jar, url, trusted, tmp_path / "kotlin" / group, devices[group], log, *extra)

        for group, device in devices.items():
            ran = update(group)
            assert ran.returncode == 0, ran.stdout + ran.stderr
            version = "1.0.0" if sequences[group] == V1 else "1.1.0"
            assert ran.stdout.splitlines() == [f"ARM head-v2 {group} {version} {sequences[group]} fp32 true {device}",
                                               f"MODEL {ran.stdout.split()[-2]} model.tflite"]
            assert ran.stdout.split()[-2].startswith(f"{sequences[group]}-")
            python = pull(url, "stable", NAME, [public], tmp_path / "python" / group, device_id=device, platform="android")
            assert (python.arm, python.sequence) == (group, sequences[group])  # the reference client agrees
        again = update("control")
        assert again.stdout.splitlines()[0] == f"ARM head-v2 control 1.0.0 {V1} fp32 false {devices['control']}"
        recorded = update("treatment", "record", "score", "0.75")
        assert recorded.stdout.startswith("RECORD {") and '"arm":"treatment"' in recorded.stdout

        # the rollout grows to 50 %: a holdout device inside it follows the channel to 1.1.0, the control arm does not
        publish(list(versions["1.1.0"].values()), repo, "stable", key, rollout=50)
        salt = json.loads(base64.b64decode(json.loads((repo / "channels" / "stable.json").read_bytes())["payload"]))[
            "models"][NAME]["rollout"]["salt"]
        exp = {"salt": SALT, "arms": [{"name": "control", "basis_points": 4500}, {"name": "treatment", "basis_points": 4500}]}
        devices["inside"] = next(f"device-{i}" for i in range(1000) if assign(exp, f"device-{i}") == "holdout"
                                 and rollout_bucket(salt, f"device-{i}") < 50)
        inside = update("inside")
        assert inside.stdout.splitlines()[0] == f"ARM head-v2 holdout 1.1.0 {V2} fp32 true {devices['inside']}"
        assert pull(url, "stable", NAME, [public], tmp_path / "python" / "inside", device_id=devices["inside"],
                    platform="android").sequence == V2
        devices["control-inside"] = next(f"device-{i}" for i in range(1000) if assign(exp, f"device-{i}") == "control"
                                         and rollout_bucket(salt, f"device-{i}") < 50)
        assert update("control-inside").stdout.splitlines()[0] == \
            f"ARM head-v2 control 1.0.0 {V1} fp32 true {devices['control-inside']}"

        end_experiment(repo, "stable", NAME, key, at=dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=2))
        time.sleep(3)
        kept = update("treatment")  # 1.1.0 came from the arm; the channel offers 1.0.0 now: kept, no arm
        assert kept.returncode == 0 and kept.stdout.splitlines() == [f"MODEL {kept.stdout.split()[-2]} model.tflite"]
        assert kept.stdout.split()[-2].startswith(f"{V2}-")
        assert update("treatment", "record", "score", "1").stdout.strip() == "RECORD none"

        index = json.loads(base64.b64decode(json.loads((repo / "channels" / "stable.json").read_bytes())["payload"]))
        index["version"] += 1
        index["models"][NAME]["experiment"]["holdout_basis_points"] = 900
        (repo / "channels" / "stable.json").write_bytes(sign_envelope(canonical_json(index), CHANNEL_PAYLOAD_TYPE, [key]))
        refused = update("holdout")
        assert refused.returncode == 1 and "the shares add up to 99.0 %, not 100 %" in refused.stdout
        with pytest.raises(IntegrityError, match="add up to 99 %"):
            pull(url, "stable", NAME, [public], tmp_path / "python" / "holdout", device_id=devices["holdout"], platform="android")

    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(e["arm"], e["event"]) for e in events] == [("control", "install"), ("treatment", "install"),
                                                        ("holdout", "install"), ("treatment", "score"),
                                                        ("holdout", "install"), ("control", "install")]
    assert summarize(log, metric="score").arms[1].metric.mean == 0.75


def test_swift_helper_and_updaters_mirror_the_python_client(bundles):
    """No Swift compiler here: the iOS bundle ships the helper, the updater calls it at the places the Kotlin one
    does, and the helper hashes and checks as experiment.py does."""
    with zipfile.ZipFile(bundles["ios"]) as archive:
        names = set(archive.namelist())
        helper = archive.read("integration/swift/DeployKitExperiment.swift").decode()
        updater = archive.read("integration/swift/DeployKitModel.swift").decode()
    assert "integration/swift/DeployKitExperiment.swift" in names and "{{" not in helper
    assert 'SHA256.hash(data: Data("\\(salt):\\(deviceId)".utf8))' in helper
    assert "digest.prefix(8).reduce(UInt64(0)) { ($0 << 8) | UInt64($1) } % UInt64(basis)" in helper
    assert "shares.reduce(held, +) == basis" in helper and "start <= now, now < end" in helper
    assert "static let basis = 10_000" in helper and 'public static let holdout = "holdout"' in helper
    for call in ("try DeployKitExperiment.check(models:", "DeployKitExperiment.running(entry", "DeployKitExperiment.assign(",
                 "onArm?(DeployKitArm(", "DeployKitEventLog.installRecord(", "public func recordEvent("):
        assert call in updater, call
    assert updater.index("DeployKitExperiment.check(models:") < updater.index('defaults.set(version, forKey: key("channelVersion"))')
    fragment = (Path(__file__).parents[2] / "templates" / "swift" / "DeployKitUpdater.swift.tmpl").read_text()
    assert re.sub(r"\s+", " ", updater[updater.index("    // MARK: - experiments"):updater.index("    // MARK: - verification")]) \
        == re.sub(r"\s+", " ", fragment[fragment.index("    // MARK: - experiments"):fragment.index("    // MARK: - verification")])
