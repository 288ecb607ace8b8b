"""``deploykit.toml``: read, check every key against ``FIELDS`` before anything runs, and hand on the frozen
records of ``orchestration.settings``.

An error names the file and line, the key, the value and what is allowed:

    deploykit.toml:14: models[0].targets: 'tflit' is not allowed (allowed: tflite, coreml, executorch)

tomllib gives values without positions, so ``key_lines`` maps each dotted key path to its line by
reading the file's table headers and ``key =`` lines (the subset of TOML a config uses: tables, arrays
of tables, inline tables and arrays).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path

from deploykit.core.errors import UsageError
from deploykit.orchestration.settings import BuildConfig, model_config, publish_settings, signing_settings
from deploykit.targets import DEFAULT
from deploykit.targets import TARGETS as CATALOGUE

CONFIG_NAME = "deploykit.toml"
TARGETS = tuple(CATALOGUE)
DEFAULT_TARGETS = DEFAULT  # executorch is asked for: it takes PyTorch sources only


class ConfigError(UsageError):
    """A config that cannot run: exit 2, before any conversion."""


@dataclass(frozen=True)
class Field:
    kind: str  # "str" | "int" | "float" | "bool" | "list[str]" | "floats" | "table" | "variants" | "per-target"
    required: bool = False
    allowed: tuple = ()
    minimum: float | None = None
    maximum: float | None = None
    help: str = ""


def _variants_allowed() -> tuple[str, ...]:
    from deploykit.quantize.schemes import SCHEMES

    return tuple(SCHEMES)


FIELDS: dict[str, dict[str, Field]] = {
    "": {
        "build": Field("table"), "signing": Field("table"), "publish": Field("table"), "models": Field("models", required=True),
    },
    "build": {
        "out": Field("str", help="the output folder (default build/)"),
        "jobs": Field("int", minimum=0, help="worker processes; 0 means one per core"),
    },
    "signing": {
        "key": Field("str", help="path of the Ed25519 private key (PEM)"),
        "key_env": Field("str", help="environment variable holding the private key (PEM)"),
        "model_signing_key": Field("str", help="path of the ECDSA key from `deploykit keygen --model-signing` (PEM): "
                                               "also an OpenSSF model-signing signature in each bundle"),
        "model_signing_key_env": Field("str", help="environment variable holding the model-signing key (PEM)"),
    },
    "publish": {
        "repository": Field("str", required=True, help="a static repository folder"),
        "channel": Field("str", help="default stable"),
        "rollout": Field("int", minimum=1, maximum=100, help="percent of devices"),
    },
    "models": {
        "name": Field("str", required=True, help="unique; jobs are named NAME/TARGET/VARIANT"),
        "source": Field("str", required=True, help="a model file, SavedModel folder or entry point path.py:factory"),
        "targets": Field("list[str]", allowed=TARGETS),
        "inputs": Field("list[str]", help='--input values, e.g. ["image=1x3x224x224"]'),
        "weights": Field("str"),
        "variants": Field("variants", help='["fp32", "fp16"] for every target, or { tflite = [...], coreml = [...] }'),
        "calibration": Field("str", help="calibration data for int8 (.npy, .npz or an image folder)"),
        "validation": Field("str", help="an image folder with one sub-folder per label, or an .npz with x and y"),
        "samples": Field("int", minimum=1, help="parity samples (default 8)"),
        "tolerances": Field("list[str]", help='parity threshold overrides as in `verify --tolerance`, e.g. ["logits:snr_db=30"]'),
        "data": Field("str", help="parity data (.npy, .npz or an image folder)"),
        "coreml_target": Field("str", help="minimum deployment target, e.g. iOS16"),
        "require_accelerators": Field("per-target", help='accelerators every op of each artifact must run on, e.g. ["gpu"] '
                                      'for every target, or { tflite = ["gpu"], executorch = ["delegate"] }'),
        "image": Field("table"), "labels": Field("table"), "bundle": Field("table"), "gates": Field("table"),
        "detector": Field("table"),
    },
    "models.detector": {  # convert --detector and its flags (docs/detection.md)
        "preset": Field("str", required=True, help="yolov8, yolox, picodet, ssd or boxes-scores"),
        "iou": Field("float", minimum=0.0, maximum=1.0), "score_threshold": Field("float", minimum=0.0, maximum=1.0),
        "max_detections": Field("int", minimum=1, maximum=1000), "class_agnostic": Field("bool"),
        "boxes_output": Field("str"), "scores_output": Field("str"),
        "box_format": Field("str", allowed=("xyxy", "xywh", "cxcywh", "yxyx")), "normalized_boxes": Field("bool"),
    },
    "models.image": {
        "input": Field("str", required=True),
        "color": Field("str", allowed=("RGB", "BGR", "GRAY")),
        "pixel_range": Field("str", allowed=("0-1", "0-255")),
        "mean": Field("floats"), "std": Field("floats"),
        "dtype": Field("str", allowed=("uint8", "float32")),
        "resize": Field("str", allowed=("stretch", "shorter-side", "letterbox")),
        "crop_fraction": Field("float", minimum=0.01, maximum=1.0),
        "interpolation": Field("str", allowed=("bilinear", "nearest", "bicubic")),
        "letterbox_fill": Field("int", minimum=0, maximum=255),
    },
    "models.labels": {
        "file": Field("str", required=True, help="one label per line"),
        "output": Field("str", help="the output holding the class scores"),
    },
    "models.bundle": {
        "name": Field("str", required=True, help="reverse-DNS, e.g. com.example.classifier"),
        "version": Field("str", required=True, help="semantic version, e.g. 1.2.0"),
        "author": Field("str"), "license": Field("str"), "description": Field("str"),
        "sequence": Field("int", minimum=1),
    },
    "models.gates": {
        "accuracy_drop": Field("float", minimum=0, help="points of top-1 accuracy a variant may lose against the baseline"),
        "size_growth": Field("float", minimum=0, help="percent an artifact may grow against the baseline"),
        "latency_growth": Field("float", minimum=0, help="percent host latency may grow against the baseline"),
    },
}


def load_config(path: str | Path | None) -> BuildConfig:
    import tomllib

    path = Path(path) if path is not None else Path(CONFIG_NAME)
    if path.is_dir():
        path = path / CONFIG_NAME
    if not path.is_file():
        raise ConfigError(f"config {path} not found", hint="write one with `deploykit build --init MODEL`")
    text = path.read_text("utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    lines = key_lines(text)
    _check_table(data, "", (), path, lines)
    return _build(data, path, lines)


def _build(data: dict, path: Path, lines: dict) -> BuildConfig:
    names = [m["name"] for m in data["models"]]
    for index, name in enumerate(names):
        where = ("models", index, "name")
        if names.index(name) != index:
            raise _error(path, lines, where, f"models[{index}].name: {name!r} is used twice (model names must be unique)")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
            raise _error(path, lines, where, f"models[{index}].name: {name!r} is not allowed (letters, digits, _ . -)")
    signing = data.get("signing", {})
    if "key" in signing and "key_env" in signing:
        raise _error(path, lines, ("signing",), "signing: give key or key_env, not both")
    if "model_signing_key" in signing and "model_signing_key_env" in signing:
        raise _error(path, lines, ("signing",), "signing: give model_signing_key or model_signing_key_env, not both")
    if {"model_signing_key", "model_signing_key_env"} & set(signing) and not {"key", "key_env"} & set(signing):
        raise _error(path, lines, ("signing",), "signing: model_signing_key needs key or key_env too (deploykit's own "
                                                "signature is the one apps check; the model-signing one is a second)")
    models = []
    for index, entry in enumerate(data["models"]):
        try:
            if "tolerances" in entry:
                _check_tolerances(entry["tolerances"], path, index)
            targets = tuple(entry.get("targets", DEFAULT_TARGETS))
            variants = _variants(entry.get("variants", ["fp32"]), targets, path, index)
            accelerators = _accelerators(entry.get("require_accelerators", []), targets, path, index)
        except ConfigError as exc:
            key = next((k for k in ("tolerances", "require_accelerators") if f".{k}:" in exc.message), "variants")
            raise _error(path, lines, ("models", index, key), exc.message.split(": ", 1)[1]) from None
        models.append(model_config(entry, targets, variants, accelerators))
    build = data.get("build", {})
    root = path.resolve().parent
    out = Path(build.get("out", "build"))
    return BuildConfig(path=path, root=root, out=out if out.is_absolute() else (root / out).resolve(), jobs=int(build.get("jobs", 0)),
                       models=tuple(models), signing=signing_settings(signing),
                       publish=publish_settings(data.get("publish", {})))


def _check_tolerances(values, path: Path, index: int) -> None:
    from deploykit.core.errors import DeployKitError
    from deploykit.parity.profiles import parse_tolerances

    try:
        parse_tolerances(values)
    except DeployKitError as exc:
        raise ConfigError(f"{path}: models[{index}].tolerances: {exc.message}", hint=exc.hint) from None


def _variants(value, targets, path: Path, index: int) -> dict[str, tuple[str, ...]]:
    allowed = _variants_allowed()
    per_target = value if isinstance(value, dict) else {t: value for t in targets}
    where = f"models[{index}].variants"
    unknown = [t for t in per_target if t not in targets]
    if unknown:
        raise ConfigError(f"{path}: {where}: {unknown[0]!r} is not one of this model's targets ({', '.join(targets)})")
    from deploykit.quantize.schemes import SCHEMES

    result = {}
    for target in targets:
        names = list(per_target.get(target, ["fp32"]))
        for name in names:
            if name not in allowed:
                raise ConfigError(f"{path}: {where}: {name!r} is not allowed ({_suggest(name, allowed)})")
            if target not in SCHEMES[name].targets:
                raise ConfigError(f"{path}: {where}: {name!r} does not exist for {target}")
        result[target] = tuple(dict.fromkeys(["fp32"] + names))  # every variant derives from the fp32 artifact
    return result


def _accelerators(value, targets, path: Path, index: int) -> dict[str, tuple[str, ...]]:
    """``require_accelerators`` per target: a list asks it of every target, a table names them per target. Each name
    must be one of the target's accelerators (``Target.accelerators``, what its compatibility analysis reports),
    checked here when the target declares them and otherwise once a job has analysed an artifact
    (``run._check_accelerator_names``)."""
    from deploykit.targets import get

    per_target = value if isinstance(value, dict) else {t: value for t in targets}
    where = f"models[{index}].require_accelerators"
    unknown = [t for t in per_target if t not in targets]
    if unknown:
        raise ConfigError(f"{path}: {where}: {unknown[0]!r} is not one of this model's targets ({', '.join(targets)})")
    result = {}
    for target, names in per_target.items():
        if not names:
            continue
        known = getattr(get(target), "accelerators", None)
        for name in names:
            if known is not None and name not in known:
                table = "" if isinstance(value, dict) else "; name them per target, e.g. { tflite = [\"gpu\"] }"
                raise ConfigError(f"{path}: {where}: {name!r} is not an accelerator of {target} ("
                                  + (_suggest(name, known) if known else f"{target} has none") + f"){table}")
        result[target] = tuple(dict.fromkeys(names))
    return result


def accelerator_error(config: BuildConfig, model: str, target: str, name: str, known: tuple[str, ...]) -> ConfigError:
    """``require_accelerators`` names ``name`` for ``target``, whose analysis has only ``known``: found after a job ran
    (the target declares no ``accelerators`` to check it against before), reported as ``load_config`` would."""
    index = next(i for i, m in enumerate(config.models) if m.name == model)
    lines = key_lines(config.path.read_text("utf-8")) if config.path.is_file() else {}
    return _error(config.path, lines, ("models", index, "require_accelerators"),
                  f"models[{index}].require_accelerators: {name!r} is not an accelerator of {target} "
                  f"({_suggest(name, known) if known else f'{target} has none'})")


def _check_table(table: dict, kind: str, where: tuple, path: Path, lines: dict) -> None:
    fields = FIELDS[kind]
    for key, value in table.items():
        dotted = where + (key,)
        if key not in fields:
            raise _error(path, lines, dotted, f"unknown key {key!r} ({_suggest(key, tuple(fields))})")
        _check_value(fields[key], value, f"{kind}.{key}".strip("."), dotted, path, lines)
    for key, spec in fields.items():
        if spec.required and key not in table:
            raise _error(path, lines, where, f"{_name(where + (key,))} is missing" + (f" ({spec.help})" if spec.help else ""))


def _check_value(spec: Field, value, kind: str, dotted: tuple, path: Path, lines: dict) -> None:
    def fail(problem: str):
        raise _error(path, lines, dotted, f"{_name(dotted)}: {value!r} {problem}" + (f"; {spec.help}" if spec.help else ""))

    if spec.kind == "models":
        if not isinstance(value, list) or not value or not all(isinstance(v, dict) for v in value):
            raise _error(path, lines, dotted, "at least one [[models]] table is needed")
        for index, entry in enumerate(value):
            _check_table(entry, "models", dotted[:-1] + ("models", index), path, lines)
        return
    if spec.kind == "table":
        if not isinstance(value, dict):
            fail("is not a table")
        _check_table(value, "models." + dotted[-1] if kind.startswith("models.") else dotted[-1], dotted, path, lines)
        return
    if spec.kind in ("variants", "per-target"):
        ok = (isinstance(value, list) and all(isinstance(v, str) for v in value)) or (
            isinstance(value, dict) and all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in value.values()))
        if not ok:
            fail("is not a list of variants or a table of them per target" if spec.kind == "variants"
                 else "is not a list of names or a table of them per target")
        return
    checks = {"str": lambda v: isinstance(v, str) and v != "", "bool": lambda v: isinstance(v, bool),
              "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
              "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
              "list[str]": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
              "floats": lambda v: (isinstance(v, (int, float)) and not isinstance(v, bool))
              or (isinstance(v, list) and v and all(isinstance(x, (int, float)) for x in v))}
    if not checks[spec.kind](value):
        fail(f"is not {_KIND_TEXT[spec.kind]}")
    items = value if isinstance(value, list) else [value]
    if spec.allowed:
        for item in items:
            if item not in spec.allowed:
                raise _error(path, lines, dotted, f"{_name(dotted)}: {item!r} is not allowed ({_suggest(item, spec.allowed)})")
    for item in items:
        if isinstance(item, (int, float)) and spec.minimum is not None and item < spec.minimum:
            fail(f"is below {spec.minimum:g}")
        if isinstance(item, (int, float)) and spec.maximum is not None and item > spec.maximum:
            fail(f"is above {spec.maximum:g}")


_KIND_TEXT = {"str": "a non-empty string", "bool": "true or false", "int": "an integer", "float": "a number",
              "list[str]": "a list of strings", "floats": "a number or a list of numbers"}


def _suggest(value: str, allowed: tuple) -> str:
    close = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=1)
    text = f"allowed: {', '.join(map(str, allowed))}"
    return f"did you mean {close[0]!r}? {text}" if close else text


def _name(dotted: tuple) -> str:
    text = ""
    for part in dotted:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "the config"


def _error(path: Path, lines: dict, dotted: tuple, message: str) -> ConfigError:
    line = None
    for length in range(len(dotted), 0, -1):
        line = lines.get(dotted[:length])
        if line:
            break
    return ConfigError(f"{path}{f':{line}' if line else ''}: {message}")


_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-]+|\"[^\"]+\")\s*=")


def key_lines(text: str) -> dict[tuple, int]:
    """Dotted key path (``("models", 0, "bundle", "name")``) -> 1-based line number."""
    found: dict[tuple, int] = {}
    counts: dict[tuple, int] = {}
    current: tuple = ()
    for number, line in enumerate(text.splitlines(), 1):
        header = _HEADER.match(line)
        if header:
            parts = tuple(p.strip().strip("\"'") for p in header[2].split("."))
            current = _with_indices(parts, counts, is_array=header[1] == "[[")
            found.setdefault(current, number)
            continue
        key = _KEY.match(line)
        if key:
            found.setdefault(current + (key[1].strip('"'),), number)
    return found


def _with_indices(parts: tuple, counts: dict, is_array: bool) -> tuple:
    """``models.bundle`` under the third ``[[models]]`` -> ("models", 2, "bundle")."""
    path: tuple = ()
    for position, part in enumerate(parts):
        path += (part,)
        last = position == len(parts) - 1
        if last and is_array:
            counts[path] = counts.get(path, -1) + 1
            path += (counts[path],)
        elif path in counts:
            path += (counts[path],)
    return path
