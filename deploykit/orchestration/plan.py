"""The build's jobs: one per (model, target, variant), each with the content key that decides whether it reruns.

A job's key hashes everything its outputs depend on: the source's bytes (a file, a folder, or an entry
point's Python file and its ``--weights``), the bytes of every data file the model section names
(calibration, validation, parity data, labels), the model's config section itself (but
``require_accelerators``, a gate on the recorded analysis), the target and
variant, and the versions of deploykit and of every conversion tool. Same key, same outputs: the job
is skipped and its previous outputs reused.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from deploykit.orchestration.config import ConfigError
from deploykit.orchestration.settings import BuildConfig, ModelConfig

TOOLS = ("tensorflow", "torch", "coremltools", "onnx", "onnxruntime", "onnx2tf", "onnx2coreml", "litert-torch",
         "ai-edge-litert", "ai-edge-quantizer", "numpy", "scikit-learn")
DATA_KEYS = ("calibration", "validation", "data", "weights")
GATE_ONLY_KEYS = ("require_accelerators",)  # [[models]] keys left out of a job's key


@dataclass(frozen=True)
class Job:
    model: str
    target: str
    variant: str
    key: str

    @property
    def id(self) -> str:
        return f"{self.model}/{self.target}/{self.variant}"

    def to_json(self) -> dict:
        return {"id": self.id, "model": self.model, "target": self.target, "variant": self.variant, "key": self.key}


def plan(config: BuildConfig, only: tuple[str, ...] = ()) -> list[Job]:
    """Every job, in config order (models, then targets, then variants fp32 first); ``only`` selects by
    ``MODEL``, ``MODEL/TARGET`` or ``MODEL/TARGET/VARIANT``."""
    versions = tool_fingerprint()
    jobs = []
    for model in config.models:
        inputs = model_fingerprint(config, model)
        for target in model.targets:
            for variant in model.variants[target]:
                payload = json.dumps({"model": inputs, "target": target, "variant": variant, "tools": versions},
                                     sort_keys=True)
                jobs.append(Job(model.name, target, variant, hashlib.sha256(payload.encode()).hexdigest()))
    if only:
        selected = [job for job in jobs if any(_selects(pattern, job) for pattern in only)]
        unmatched = [p for p in only if not any(_selects(p, job) for job in jobs)]
        if unmatched:
            raise ConfigError(f"--only {unmatched[0]!r} matches no job", hint="the jobs are: " + ", ".join(j.id for j in jobs[:12]))
        return selected
    return jobs


def _selects(pattern: str, job: Job) -> bool:
    parts = pattern.strip("/").split("/")
    return tuple(parts) == (job.model, job.target, job.variant)[:len(parts)]


def model_fingerprint(config: BuildConfig, model: ModelConfig) -> dict:
    from deploykit.core.hashing import sha256_path

    files = {"source": _source_hash(config, model.source)}
    named = model.files()
    for key in DATA_KEYS:
        if key in named:
            files[key] = _hash_or_missing(config.resolve(named[key]), sha256_path, f"models.{model.name}.{key}")
    labels = model.labels_file
    if labels:
        files["labels"] = _hash_or_missing(config.resolve(labels), sha256_path, f"models.{model.name}.labels.file")
    # A gate decides nothing about the outputs: requiring an accelerator re-checks the recorded analysis, it does
    # not convert again.
    section = {k: v for k, v in model.section.items() if k not in GATE_ONLY_KEYS}
    return {"section": section, "files": files}


def _source_hash(config: BuildConfig, source: str) -> str:
    """The source's bytes; for an entry point ``path.py:factory`` the Python file's (an installed
    ``package.module:factory`` cannot be hashed by path: its name stands in, so --force rebuilds it)."""
    from deploykit.core.hashing import sha256_path

    entry = config.entry_point_file(source)
    if entry is not None:
        return sha256_path(entry)
    if not config.resolve(source).exists() and ":" in source:
        return "entry point " + source
    return _hash_or_missing(config.resolve(source), sha256_path, "source")


def _hash_or_missing(path: Path, sha256_path, what: str) -> str:
    if not path.exists():
        raise ConfigError(f"{what}: {path} not found")
    return sha256_path(path)


def tool_fingerprint() -> dict:
    from deploykit.core.version import __version__
    from deploykit.pipeline.tool_versions import version_of

    return {"deploykit": __version__, **{tool: version_of(tool) for tool in TOOLS}}
