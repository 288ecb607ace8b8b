"""``deploykit build``: plan the jobs, reuse the unchanged ones, run the rest in worker processes, then bundle.

Workers are separate processes (``spawn``: TensorFlow and PyTorch are not fork-safe once imported), each
converting one job at a time; ``jobs=1`` runs them in this process, one after the other. The build
record ``OUT/deploykit-build.json`` lists every job (run or reused) and every bundle.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from deploykit.orchestration.jobs import job_dir, previous, run_job, spec_for
from deploykit.orchestration.plan import Job, plan
from deploykit.orchestration.settings import BuildConfig
from deploykit.orchestration.signing import model_signing_key, signing_keys

BUILD_RECORD = "deploykit-build.json"


@dataclass(frozen=True)
class BuildOptions:
    only: tuple[str, ...] = ()
    jobs: int | None = None  # None: the config's build.jobs, 0 there meaning one per core
    force: bool = False
    bundle: bool = True
    executor: str = "local"  # "local" (worker processes here) | "ray" (one Ray task per job)
    ray_address: str | None = None  # an existing Ray cluster; None starts a local instance
    baseline: Path | None = None  # a previous deploykit-build.json / deploykit-report.json (build.gates)
    junit: Path | None = None  # write the gates as JUnit XML here
    publish: bool = False  # publish the bundles to [publish] repository / channel when everything passed


@dataclass(frozen=True)
class BuildResult:
    jobs: tuple[dict, ...]
    bundles: tuple[dict, ...] = ()
    seconds: float = 0.0
    workers: int = 1
    record_path: Path | None = None
    failed: tuple[dict, ...] = field(default=())
    gates: tuple = ()  # build.gates.GateResult
    published: dict | None = None  # the channel after publishing, or {"skipped": why}
    report_path: Path | None = None  # OUT/report.html: every job's variants, with accuracy and latency

    @property
    def gates_failed(self) -> tuple:
        return tuple(g for g in self.gates if g.status == "failed")

    def to_json(self) -> dict:
        from dataclasses import asdict

        return {"schema": "deploykit.build/1", "workers": self.workers, "seconds": self.seconds,
                "jobs": list(self.jobs), "bundles": list(self.bundles), "gates": [asdict(g) for g in self.gates],
                "published": self.published}


def build(config: BuildConfig, options: BuildOptions = BuildOptions(), progress=None) -> BuildResult:
    from deploykit.core.atomic import write_text_atomic
    from deploykit.core.progress import NullProgress
    from deploykit.orchestration.gates import load_baseline

    progress = progress or NullProgress()
    started = time.perf_counter()
    # Read first: a bad path fails before any conversion, and the baseline may be this folder's own last record.
    baseline = load_baseline(options.baseline, config) if options.baseline is not None else None
    if options.publish:
        _check_publish(config, options)
    todo, records = [], {}
    for job in plan(config, options.only):
        reused = None if options.force else previous(config.out, job)
        if reused is not None:
            records[job.id] = {**reused, "reused": True}
        else:
            todo.append(job)
    workers = _workers(config, options, len(todo))
    _hook(progress, "jobs_planned", [job.id for job in todo])
    if options.executor == "ray":
        from deploykit.orchestration.ray_executor import execute_on_ray

        executed = execute_on_ray(config, todo, options.ray_address, workers, progress)
    else:
        executed = _execute(config, todo, workers, progress)
    try:
        for record in executed:
            records[record["id"]] = {**record, "reused": False}
    finally:
        _hook(progress, "jobs_done")
    ordered = tuple(records[job.id] for job in plan(config, options.only))
    bundles = tuple(_bundles(config, ordered, progress)) if options.bundle else ()
    gates = _gates(config, ordered, baseline)
    _check_accelerator_names(config, ordered)
    failed = tuple(r for r in ordered if r["status"] != "ok")
    published = _publish(config, bundles, failed, gates, progress) if options.publish else None
    result = BuildResult(ordered, bundles, round(time.perf_counter() - started, 1), workers,
                         config.out / BUILD_RECORD, failed, gates, published)
    config.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(config.out / BUILD_RECORD, json.dumps(result.to_json(), indent=2, sort_keys=True) + "\n")
    from dataclasses import replace

    from deploykit.report.write import write_build_report

    result = replace(result, report_path=write_build_report(config.out, result.to_json(), job_dir))
    if options.junit is not None:
        from deploykit.orchestration.gates import junit_xml

        write_text_atomic(Path(options.junit), junit_xml(list(gates)))
    return result


def _check_publish(config: BuildConfig, options: BuildOptions) -> None:
    from deploykit.orchestration.config import ConfigError

    if config.publish is None:
        raise ConfigError(f"{config.path}: --publish needs a [publish] table with repository (and channel, rollout)")
    if config.signing is None:
        raise ConfigError(f"{config.path}: --publish needs [signing]: the channel index must be signed")
    if not options.bundle:
        raise ConfigError("--publish publishes the bundles; it cannot be combined with --no-bundle")


def _publish(config: BuildConfig, bundles, failed, gates, progress) -> dict:
    """Publish every bundle of this build, only when every job built and passed its gates: a release that
    regressed must not reach a device."""
    from deploykit.bundle.repository import publish

    regressions = [g for g in gates if g.status == "failed"]
    if failed or regressions or not bundles:
        why = (f"{len(failed)} job(s) did not build or pass parity" if failed else
               f"{len(regressions)} gate(s) failed" if regressions else "no bundles")
        return {"skipped": why}
    spec = config.publish
    with progress.step(f"Publishing {len(bundles)} bundles to {spec.repository} ({spec.channel})"):
        result = publish([b["bundle"] for b in bundles], config.resolve(spec.repository).resolve(), spec.channel,
                         signing_keys(config)[0], rollout=float(spec.rollout))
    return result.to_json()


def _gates(config: BuildConfig, jobs, baseline) -> tuple:
    from deploykit.orchestration.gates import check_gates

    return tuple(check_gates(jobs, baseline, {m.name: m.gates for m in config.models},
                             {m.name: m.require_accelerators for m in config.models}))


def _check_accelerator_names(config: BuildConfig, jobs) -> None:
    """A required accelerator the target has no analysis of is a config error (exit 2), not a failed gate. Config
    checks the names before anything runs when the target declares its accelerators; the others are known once a
    job has analysed an artifact. Raised before anything is published."""
    from deploykit.orchestration.config import accelerator_error
    from deploykit.orchestration.gates import unknown_accelerators

    unknown = unknown_accelerators(jobs, {m.name: m.require_accelerators for m in config.models})
    if unknown:
        raise accelerator_error(config, *unknown[0])


def _workers(config: BuildConfig, options: BuildOptions, count: int) -> int:
    wanted = options.jobs if options.jobs is not None else config.jobs
    return max(1, min(wanted or os.cpu_count() or 1, count or 1))


def _hook(progress, name: str, *args) -> None:
    """Call a job-progress hook when the progress object has one (the CLI's live rows); plain steps otherwise."""
    method = getattr(progress, name, None)
    if method is not None:
        method(*args)


def _execute(config: BuildConfig, todo: list[Job], workers: int, progress):
    if workers == 1:
        for job in todo:
            _hook(progress, "job_started", job.id)
            record = run_job(spec_for(config, job))
            _hook(progress, "job_finished", job.id, record["status"], record["seconds"])
            yield record
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(run_job, spec_for(config, job)): job for job in todo}
        # The pool takes jobs in submission order as workers free up: the first `workers` start now,
        # the next one each time one finishes.
        waiting = list(todo)
        for job in waiting[:workers]:
            _hook(progress, "job_started", job.id)
        del waiting[:workers]
        for future in as_completed(futures):
            job = futures[future]
            record = future.result()
            _hook(progress, "job_finished", job.id, record["status"], record["seconds"])
            if waiting:
                _hook(progress, "job_started", waiting.pop(0).id)
            yield record


def _bundles(config: BuildConfig, records, progress) -> list[dict]:
    """One signed bundle per built artifact of each model with a [models.bundle] table."""
    from deploykit.bundle.builder import BundleOptions, bundle

    keys, ms_key = signing_keys(config), model_signing_key(config)
    made = []
    for model in config.models:
        meta = model.bundle
        if meta is None:
            continue
        for record in records:
            if record["model"] != model.name or record["status"] != "ok" or not record.get("artifact"):
                continue
            artifact = job_dir(config.out, record["id"]) / record["artifact"]
            with progress.step(f"Bundling {record['id']}"):
                built = bundle([artifact], BundleOptions(
                    name=meta.name, version=meta.version, out=config.out / "bundles", sequence=meta.sequence,
                    sign_keys=keys, author=meta.author, license=meta.license, description=meta.description,
                    measured=_measured(record), model_signing_key=ms_key))
            made.extend({"job": record["id"], **b.to_json()} for b in built)
    return made


def _measured(record: dict) -> dict:
    measured = {"artifact_bytes": int(record["size_bytes"])}
    if record.get("accuracy"):
        measured["accuracy"] = {"top1": record["accuracy"]["top1"], "samples": record["accuracy"]["samples"]}
    return measured
