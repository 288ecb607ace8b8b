"""A tiny torch model converted to NCNN once per test session (all xdist workers share it), and its bundles."""

from __future__ import annotations

from pathlib import Path

SHAPE = (1, 3, 32, 32)
MEAN, STD = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)  # ImageNet's, in 0-255 pixel units


def tiny_module():
    """conv 3->8 + relu + max-pool + linear -> 10 classes, seeded: the same weights in every process."""
    import torch

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
            self.fc = torch.nn.Linear(8 * 8 * 8, 10)

        def forward(self, x):
            y = torch.nn.functional.max_pool2d(torch.relu(self.conv(x)), 4)
            return self.fc(y.flatten(1))

    torch.manual_seed(0)
    return Tiny().eval()


def converted_tiny(tmp_path_factory) -> Path:
    """``dist/`` with ``tiny.fp32.ncnn/`` and its record, from ``tiny.pt2`` (torch.export.save)."""
    from filelock import FileLock

    folder = tmp_path_factory.getbasetemp().parent / "bundle-ncnn"
    folder.mkdir(exist_ok=True)
    dist = folder / "dist"
    with FileLock(str(folder / ".lock")):
        if not (dist / "deploykit-report.json").exists():
            import torch

            import deploykit

            source = folder / "tiny.pt2"
            torch.export.save(torch.export.export(tiny_module(), (torch.rand(*SHAPE),)), str(source))
            deploykit.convert(source, to=("ncnn",), out=dist)
    return dist


def bundle_tiny(dist: Path, out: Path, key, labels: Path | None, **extra) -> dict[str, Path]:
    """{platform: bundle} of ``tiny.fp32.ncnn``, version 1.2.0, normalized with ``MEAN`` / ``STD``."""
    from deploykit.bundle.builder import BundleOptions, bundle
    from tests.bundle.bundle_helpers import NAME

    options = BundleOptions(name=NAME, version="1.2.0", out=out, labels=labels, mean=MEAN, std=STD, sign_keys=(key,),
                            **extra)
    return {b.manifest["platform"]: b.path for b in bundle([dist / "tiny.fp32.ncnn"], options)}
