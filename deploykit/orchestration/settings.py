"""The frozen records ``deploykit.toml`` becomes once ``config`` has checked every key: what the rest of the build
reads (nothing downstream reads the TOML's tables as dicts). Paths stay as written, relative to the config's
folder; ``BuildConfig.resolve`` makes them absolute where they are used."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_SAMPLES = 8


@dataclass(frozen=True)
class BundleSettings:
    """``[models.bundle]``: what the model's bundles say about it."""

    name: str  # reverse-DNS
    version: str  # semantic version
    author: str = ""
    license: str = ""
    description: str = ""
    sequence: int | None = None  # the anti-rollback counter; derived from the version when not given


@dataclass(frozen=True)
class GateLimits:
    """``[models.gates]``: what counts as a regression against a baseline; None: not checked."""

    accuracy_drop: float | None = None  # points of top-1 accuracy
    size_growth: float | None = None  # percent
    latency_growth: float | None = None  # percent


@dataclass(frozen=True)
class ImageSettings:
    """``[models.image]``: the input that takes pixels and its preprocessing (``image_io.spec``)."""

    input: str
    color: str = "RGB"
    pixel_range: str = "0-1"
    mean: tuple[float, ...] | float | None = None
    std: tuple[float, ...] | float | None = None
    dtype: str = "uint8"
    resize: str = "stretch"
    crop_fraction: float = 1.0
    interpolation: str = "bilinear"
    letterbox_fill: int = 0


@dataclass(frozen=True)
class ModelConfig:
    name: str
    source: str
    targets: tuple[str, ...]
    variants: dict[str, tuple[str, ...]]  # target -> variants, fp32 first
    section: dict[str, Any]  # the whole [[models]] entry as written, for the job's content hash
    inputs: tuple[str, ...] | None = None  # --input values
    weights: str | None = None
    calibration: str | None = None
    validation: str | None = None  # labelled data for top-1 accuracy
    data: str | None = None  # parity data
    samples: int = DEFAULT_SAMPLES
    tolerances: tuple[str, ...] = ()  # verify --tolerance values
    coreml_target: str = "iOS16"
    image: ImageSettings | None = None
    labels_file: str | None = None
    labels_output: str | None = None
    bundle: BundleSettings | None = None
    gates: GateLimits = GateLimits()
    require_accelerators: dict[str, tuple[str, ...]] = field(default_factory=dict)  # target -> accelerator names
    detector: dict[str, Any] | None = None  # [models.detector]: convert --detector and its flags

    def files(self) -> dict[str, str]:
        """The data files the section names (key -> path as written): what a job's content key hashes."""
        named = {"calibration": self.calibration, "validation": self.validation, "data": self.data,
                 "weights": self.weights}
        return {key: value for key, value in named.items() if value is not None}


@dataclass(frozen=True)
class PublishSettings:
    """``[publish]``: where ``deploykit build --publish`` puts the bundles."""

    repository: str
    channel: str = "stable"
    rollout: float = 100


@dataclass(frozen=True)
class SigningSettings:
    """``[signing]``: the private key's file, or the environment variable that holds it (CI: a secret); likewise the
    optional ECDSA key of the OpenSSF model-signing signature."""

    key: str | None = None
    key_env: str | None = None
    model_signing_key: str | None = None
    model_signing_key_env: str | None = None


@dataclass(frozen=True)
class BuildConfig:
    path: Path
    root: Path  # relative paths in the file are relative to its folder
    out: Path
    jobs: int
    models: tuple[ModelConfig, ...]
    signing: SigningSettings | None = None
    publish: PublishSettings | None = None

    def resolve(self, relative: str) -> Path:
        return (self.root / relative) if not Path(relative).is_absolute() else Path(relative)

    def entry_point_file(self, source: str) -> Path | None:
        """The Python file of a ``path.py:factory`` source, resolved against the config's folder; None otherwise."""
        if self.resolve(source).exists() or ":" not in source:
            return None
        file_part = self.resolve(source.rsplit(":", 1)[0])
        return file_part if file_part.is_file() else None


def model_config(entry: dict[str, Any], targets: tuple[str, ...], variants: dict[str, tuple[str, ...]],
                 accelerators: dict[str, tuple[str, ...]] | None = None) -> ModelConfig:
    """The typed record of one checked ``[[models]]`` entry (``accelerators``: ``require_accelerators`` per target)."""
    image = entry.get("image")
    labels = entry.get("labels") or {}
    bundle = entry.get("bundle")
    gates = entry.get("gates") or {}
    return ModelConfig(
        name=entry["name"], source=entry["source"], targets=targets, variants=variants, section=entry,
        inputs=tuple(entry["inputs"]) if "inputs" in entry else None, weights=entry.get("weights"),
        calibration=entry.get("calibration"), validation=entry.get("validation"), data=entry.get("data"),
        samples=entry.get("samples", DEFAULT_SAMPLES), tolerances=tuple(entry.get("tolerances", ())),
        coreml_target=entry.get("coreml_target", "iOS16"),
        image=ImageSettings(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in image.items()}) if image else None,
        labels_file=labels.get("file"), labels_output=labels.get("output"),
        bundle=BundleSettings(**bundle) if bundle else None,
        gates=GateLimits(**{k: float(v) for k, v in gates.items()}), require_accelerators=dict(accelerators or {}),
        detector=dict(entry["detector"]) if entry.get("detector") else None,
    )


def publish_settings(table: dict[str, Any]) -> PublishSettings | None:
    return PublishSettings(**table) if table else None


def signing_settings(table: dict[str, Any]) -> SigningSettings | None:
    return SigningSettings(**table) if table else None

