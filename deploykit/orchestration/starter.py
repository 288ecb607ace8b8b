"""``deploykit build --init MODEL``: a commented deploykit.toml to review, written next to nothing else."""

from __future__ import annotations

from pathlib import Path

from deploykit.core.errors import UsageError

STARTER = '''# deploykit build configuration (docs/build.md). Paths are relative to this file.

[build]
out = "build"          # jobs, bundles and deploykit-build.json go here
jobs = 0               # worker processes; 0 = one per core

# [signing]
# key = "keys/deploykit.key"         # an Ed25519 key from `deploykit keygen`, or:
# key_env = "DEPLOYKIT_SIGNING_KEY"  # an environment variable holding it (CI secrets); never the key itself
# model_signing_key = "keys/deploykit.ms.key"   # also an OpenSSF model-signing signature (`keygen --model-signing`)

[[models]]
name = "{name}"
source = "{source}"
targets = ["tflite", "coreml"]
variants = ["fp32", "fp16"]              # or per target: {{ tflite = ["fp16", "int8-weights"], coreml = ["lut4"] }}
# inputs = ["x=1x3x224x224"]             # fix dynamic dimensions (flexible sizes: docs/flexible-sizes.md)
# calibration = "data/calibration"       # for int8: .npy, .npz or an image folder
# data = "data/pictures"                 # parity inputs (default: seeded noise, or generated pictures)
# require_accelerators = {{ tflite = ["xnnpack"] }}   # fail unless every op runs there (docs/build.md)

# [models.image]                         # the app hands over pixels (docs/image-inputs.md)
# input = "x"
# pixel_range = "0-1"
# mean = [0.485, 0.456, 0.406]
# std = [0.229, 0.224, 0.225]

# [models.labels]                        # docs/labels.md
# file = "labels.txt"

[models.bundle]
name = "com.example.{name}"
version = "1.0.0"
'''


def write_starter(source: str, path: Path) -> Path:
    path = Path(path)
    if path.exists():
        raise UsageError(f"{path} exists; --init does not overwrite a config", hint="move it away or name another file")
    stem = Path(source.rsplit(":", 1)[0] if source.endswith((".py",)) is False and ":" in source else source).stem
    name = "".join(c if c.isalnum() or c in "-_" else "-" for c in stem).strip("-_") or "model"
    relative = source
    try:
        relative = str(Path(source).resolve().relative_to(path.resolve().parent))
    except ValueError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(STARTER.format(name=name, source=relative), "utf-8")
    return path
