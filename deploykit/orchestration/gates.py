"""CI gates: the new build against a baseline (a previous build record or a convert record).

Per job (model, target, variant) and gate:
- ``parity``: the artifact passed its tolerance profile (always checked, baseline or not; skipped, not failed,
  when the verdict is inconclusive: docs/verify.md);
- ``accuracy``: top-1 on the validation data dropped by at most ``gates.accuracy_drop`` points;
- ``size``: the artifact grew by at most ``gates.size_growth`` percent;
- ``latency``: host latency grew by at most ``gates.latency_growth`` percent.
A gate the config does not set is not checked; one the baseline has no figure for is skipped (and
says so). Decision: no default thresholds. What counts as a regression is the team's call, written in
the reviewed config, and a host-latency gate is only meaningful on a quiet, fixed CI machine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

from deploykit.core.errors import InputError
from deploykit.orchestration.settings import GateLimits

GATES = ("parity", "accuracy", "size", "latency")


@dataclass(frozen=True)
class GateResult:
    job: str
    gate: str
    status: str  # "passed" | "failed" | "skipped"
    baseline: float | None
    current: float | None
    limit: str
    message: str


def load_baseline(path: str | Path, config=None) -> dict[str, dict]:
    """Job id -> {accuracy, size_bytes, latency_ms} from a deploykit-build.json, a deploykit-report.json, a folder
    holding either, or a static repository (the channel's current release, read from its signed bundles)."""
    path = Path(path)
    if path.is_dir() and (path / "channels").is_dir():
        return repository_baseline(path, config)
    if path.is_dir():
        for name in ("deploykit-build.json", "deploykit-report.json"):
            if (path / name).is_file():
                return load_baseline(path / name)
        raise InputError(f"baseline {path} holds no deploykit-build.json or deploykit-report.json")
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise InputError(f"baseline {path} not found") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"baseline {path} is not JSON: {exc}") from None
    if isinstance(data, dict) and data.get("schema") == "deploykit.build/1":
        return {job["id"]: _figures(job) for job in data.get("jobs", []) if job.get("artifact")}
    if isinstance(data, dict) and "artifacts" in data and "source" in data:
        stem = lambda artifact: Path(artifact["path"]).name.split(".")[0]  # noqa: E731 - name.variant.suffix
        return {f"{stem(a)}/{a['target']}/{a['variant']}": {"size_bytes": a.get("size_bytes")} for a in data["artifacts"]}
    raise InputError(f"baseline {path} is neither a deploykit build record nor a convert record")


def repository_baseline(repo: Path, config) -> dict[str, dict]:
    """The release in production: the channel index (``[publish] channel``, default stable) is verified with the
    config's signing key, then each bundle of each model's current release; their manifests carry what the
    build that made them measured (``provenance.measured``). Latency is not in a bundle, so that gate skips."""
    from deploykit.bundle.manifest import parse_json
    from deploykit.bundle.repository import read_channel
    from deploykit.bundle.verify import verify_bundle
    from deploykit.orchestration.signing import signing_keys
    from deploykit.targets import for_bundle

    if config is None or config.signing is None:
        raise InputError(f"baseline {repo} is a repository: its channel is verified with the config's [signing] key")
    key = signing_keys(config)[0].public
    channel = config.publish.channel if config.publish is not None else "stable"
    index = read_channel(repo, channel, key)
    if index is None:
        raise InputError(f"baseline {repo} has no channel {channel!r}")
    models = {m.bundle.name: m.name for m in config.models if m.bundle is not None}
    figures = {}
    for name, entry in index["models"].items():
        if name not in models:
            continue
        ref = entry["release"]
        release = parse_json((repo / ref["path"]).read_bytes(), "release", ref["path"])
        for item in release["bundles"]:
            manifest = verify_bundle(repo / item["path"], [key]).manifest.raw
            measured = manifest["provenance"].get("measured") or {}
            target, variant = for_bundle(item["platform"], item["variant"])
            job = f"{models[name]}/{target.name}/{variant}"
            figures[job] = {"accuracy": (measured.get("accuracy") or {}).get("top1"),
                            "size_bytes": measured.get("artifact_bytes"), "latency_ms": None}
    return figures


def _figures(job: dict) -> dict:
    return {"accuracy": (job.get("accuracy") or {}).get("top1"), "size_bytes": job.get("size_bytes"),
            "latency_ms": (job.get("latency") or {}).get("median_ms")}


def _parity_gate(job: dict) -> GateResult:
    """Passed, failed, or skipped when the verdict was inconclusive: the only failures were on inputs where the
    source's own noise swamps the comparison (docs/verify.md); a build gate must not cry wolf on them."""
    if job.get("parity_status") == "inconclusive":
        return GateResult(job["id"], "parity", "skipped", None, None, "the tolerance profile",
                          "inconclusive: the source's own noise exceeds the tolerance on these inputs; give the "
                          "model data: in the build config")
    passed = bool(job.get("parity"))
    return GateResult(job["id"], "parity", "passed" if passed else "failed", None, None, "the tolerance profile",
                      "" if passed else "parity failed against the source")


def check_gates(jobs, baseline: dict[str, dict] | None, gates_by_model: dict) -> list[GateResult]:
    """Every gate of every job that made an artifact; ``gates_by_model``: model name -> ``GateLimits``."""
    results = []
    for job in jobs:
        if not job.get("artifact"):
            continue
        limits = gates_by_model.get(job["model"]) or GateLimits()
        base = (baseline or {}).get(job["id"])
        current = _figures(job)
        results.append(_parity_gate(job))
        if baseline is None:
            continue  # without a baseline only parity is a gate
        for gate, key, limit_key, drop in (("accuracy", "accuracy", "accuracy_drop", True),
                                           ("size", "size_bytes", "size_growth", False),
                                           ("latency", "latency_ms", "latency_growth", False)):
            if getattr(limits, limit_key) is None:
                continue
            limit = float(getattr(limits, limit_key))
            if base is None or base.get(key) is None or current.get(key) is None:
                results.append(GateResult(job["id"], gate, "skipped", None, current.get(key), _limit_text(limit, drop),
                                          "no baseline figure" if base is None or base.get(key) is None else "not measured"))
                continue
            old, new = float(base[key]), float(current[key])
            change = (old - new) if drop else (100.0 * (new - old) / old if old else 0.0)
            failed = change > limit
            message = (f"dropped {change:.2f} points" if drop else f"grew {change:+.1f} %") if failed else ""
            results.append(GateResult(job["id"], gate, "failed" if failed else "passed", old, new,
                                      _limit_text(limit, drop), message))
    return results


def _limit_text(limit: float, drop: bool) -> str:
    return f"drop <= {limit:g} points" if drop else f"growth <= {limit:g} %"


def junit_xml(results: list[GateResult], name: str = "deploykit build gates") -> str:
    """One test case per (job, gate): classname the job, name the gate; failures and skips as JUnit marks them."""
    failures = sum(r.status == "failed" for r in results)
    skipped = sum(r.status == "skipped" for r in results)
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             f'<testsuite name={quoteattr(name)} tests="{len(results)}" failures="{failures}" skipped="{skipped}">']
    for r in results:
        detail = f"baseline {r.baseline} -> {r.current} ({r.limit})"
        lines.append(f"  <testcase classname={quoteattr(r.job)} name={quoteattr(r.gate)}>")
        if r.status == "failed":
            lines.append(f"    <failure message={quoteattr(r.message or 'failed')}>{_escape(detail)}</failure>")
        elif r.status == "skipped":
            lines.append(f"    <skipped message={quoteattr(r.message)}/>")
        lines.append("  </testcase>")
    lines.append("</testsuite>")
    return "\n".join(lines) + "\n"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
