"""CI gates: the new build against a baseline (a previous build record or a convert record).

Per job (model, target, variant) and gate:
- ``parity``: the artifact passed its tolerance profile (always checked, baseline or not; skipped, not failed,
  when the verdict is inconclusive: docs/verify.md);
- ``accuracy``: top-1 on the validation data dropped by at most ``gates.accuracy_drop`` points;
- ``size``: the artifact grew by at most ``gates.size_growth`` percent;
- ``latency``: host latency grew by at most ``gates.latency_growth`` percent;
- ``accelerator:NAME`` (``require_accelerators``, no baseline needed): every op of the artifact runs on that
  accelerator: the record's compatibility analysis lists it with no refused op. A static analysis (Core ML off
  macOS: no runtime was asked) or an unavailable one cannot show that, so it fails the gate and says why.
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

GATES = ("parity", "accuracy", "size", "latency", "accelerator")
SHOWN_REFUSED = 6  # op types named in a failed accelerator gate's message; the report lists them all


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


def accelerator_gate(job: dict, name: str) -> GateResult:
    """Whether every op of the job's artifact runs on accelerator ``name``, from the record's ``compatibility`` block
    (job.json carries the artifact's). Only a runtime's own analysis with an empty refused list passes."""
    block = job.get("compatibility") or {}
    entry = next((a for a in block.get("accelerators") or [] if a.get("name") == name), None)
    title = (entry or {}).get("title") or name
    gate, limit = f"accelerator:{name}", f"every op on {title}"

    def failed(message: str) -> GateResult:  # no baseline and no single figure: the message has the counts
        return GateResult(job["id"], gate, "failed", None, None, limit, message)

    if not block:
        return failed("the record has no compatibility analysis (made before deploykit analysed artifacts?): "
                      "rebuild the job with --force")
    if "unavailable" in block:
        return failed(f"the compatibility analysis was unavailable ({block['unavailable']}), so nothing shows the ops "
                      f"run on {name}")
    if entry is None:
        known = ", ".join(str(a.get("name")) for a in block.get("accelerators") or []) or "none"
        return failed(f"the analysis has no {name!r} entry (it has: {known})")
    if entry.get("unavailable"):
        return failed(f"{title}: {entry['unavailable']}")
    if block.get("static") or entry.get("static") or entry.get("supported") is None:
        return failed(f"{title} is a static reading of the file ({block.get('checked_with') or 'no runtime asked'}): it "
                      "cannot show that every op runs there; only an analysis that asks the runtime passes this gate")
    refused = entry.get("refused") or []
    ops, supported = entry.get("ops"), entry.get("supported")
    if not refused and (ops is None or supported == ops):
        return GateResult(job["id"], gate, "passed", None, None, limit, f"{supported} of {ops} ops")
    count = sum(int(r.get("count") or 0) for r in refused) or (int(ops) - int(supported))
    named = ", ".join(f"{r.get('op')} × {int(r.get('count') or 0)}" + (f" ({r['reason']})" if r.get("reason") else "")
                      for r in refused[:SHOWN_REFUSED])
    more = f", and {len(refused) - SHOWN_REFUSED} more op types" if len(refused) > SHOWN_REFUSED else ""
    return failed(f"{title} refuses {count} of {ops} ops" + (f": {named}{more}" if named else ""))


def unknown_accelerators(jobs, accelerators_by_model: dict) -> list[tuple[str, str, str, tuple[str, ...]]]:
    """(model, target, name, the names it has) for each required accelerator that a job's analysis shows its target
    does not have: a config error (exit 2) found after the run when the target does not declare its accelerators."""
    found = {}
    for job in jobs:
        block = job.get("compatibility") or {}
        if not job.get("artifact") or not block.get("accelerators"):
            continue
        known = tuple(a.get("name") for a in block["accelerators"])
        for name in ((accelerators_by_model or {}).get(job["model"]) or {}).get(job.get("target"), ()):
            if name not in known:
                found.setdefault((job["model"], job["target"], name), known)
    return [(*key, known) for key, known in found.items()]


def check_gates(jobs, baseline: dict[str, dict] | None, gates_by_model: dict,
                accelerators_by_model: dict | None = None) -> list[GateResult]:
    """Every gate of every job that made an artifact; ``gates_by_model``: model name -> ``GateLimits``;
    ``accelerators_by_model``: model name -> {target: accelerator names every op must run on}."""
    results = []
    for job in jobs:
        if not job.get("artifact"):
            continue
        limits = gates_by_model.get(job["model"]) or GateLimits()
        base = (baseline or {}).get(job["id"])
        current = _figures(job)
        results.append(_parity_gate(job))
        for name in ((accelerators_by_model or {}).get(job["model"]) or {}).get(job.get("target"), ()):
            results.append(accelerator_gate(job, name))
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
        detail = f"baseline {r.baseline} -> {r.current} ({r.limit})" if r.baseline is not None else r.limit
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
