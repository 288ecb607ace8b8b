"""Two versions of a small torch classifier (the same backbone, a fine-tuned head), converted to TFLite and Core ML
once per test session (all xdist workers share them), for the delta-update tests."""

from __future__ import annotations

import base64
import json
import zipfile
from pathlib import Path

SHAPE = (1, 3, 32, 32)


def classifier(head_seed: int):
    """Three convolutions (93k weights, the backbone: seeded 0 in every version) and a 128 -> 10 head seeded
    ``head_seed``: a fine-tune that touched only the last layer."""
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU(),
                                          nn.Conv2d(64, 128, 3, 2, 1), nn.ReLU())
            self.head = nn.Linear(128, 10)

        def forward(self, x):
            return self.head(self.features(x).mean(dim=(2, 3)))

    torch.manual_seed(0)
    net = Net()
    torch.manual_seed(head_seed)
    net.head.reset_parameters()
    return net.eval()


def converted_versions(tmp_path_factory) -> dict[str, Path]:
    """{"v1": dist, "v2": dist}: ``net.fp32.tflite`` and ``net.fp32.mlpackage`` with their record; v2's head differs."""
    from filelock import FileLock

    folder = tmp_path_factory.getbasetemp().parent / "bundle-delta"
    folder.mkdir(exist_ok=True)
    dists = {f"v{i}": folder / f"v{i}" / "dist" for i in (1, 2)}
    with FileLock(str(folder / ".lock")):
        for i, (version, dist) in enumerate(dists.items(), start=1):
            if (dist / "deploykit-report.json").exists():
                continue
            import torch

            import deploykit

            source = dist.parent / "net.pt2"
            source.parent.mkdir(exist_ok=True)
            torch.export.save(torch.export.export(classifier(head_seed=i), (torch.rand(*SHAPE),)), str(source))
            deploykit.convert(source, to=("tflite", "coreml"), out=dist)
    return dists


def bundle_version(dist: Path, out: Path, key, version: str, labels: Path) -> dict[str, Path]:
    """{platform: bundle} of the converted pair."""
    from deploykit.bundle.builder import BundleOptions, bundle
    from tests.bundle.bundle_helpers import NAME

    options = BundleOptions(name=NAME, version=version, out=out, labels=labels, mean=(127.5,), std=(127.5,),
                            sign_keys=(key,))
    built = bundle([dist / "net.fp32.tflite", dist / "net.fp32.mlpackage"], options)
    return {b.manifest["platform"]: b.path for b in built}


def manifest_of(bundle: Path) -> dict:
    """The signed manifest's payload of a bundle zip."""
    with zipfile.ZipFile(bundle) as archive:
        return json.loads(base64.b64decode(json.loads(archive.read("manifest.json"))["payload"]))


def files_of(bundle: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(bundle) as archive:
        return {n: archive.read(n) for n in archive.namelist() if n != "manifest.json"}


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
