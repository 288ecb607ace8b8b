"""Zoo nets exported to .pte once per session: ``pte(name, backend, scheme)`` -> (SourceModel, PteRecord, Converted).

Real conversions only (torch.export, ExecuTorch's partitioners, PT2E); every test reads the same files.
This folder is not called ``executorch``: pytest puts ``tests/`` on sys.path, where a package of that
name would hide the real one.
"""

from __future__ import annotations

import pytest

from tests.conftest import save_pt2
from tests.converters.executorch_pte.helpers import random_calibration


@pytest.fixture(scope="session")
def pte(tmp_path_factory):
    from deploykit.converters import Workspace
    from deploykit.converters.torch_executorch import ExecutorchOptions, convert
    from deploykit.loaders import load_source

    folder = tmp_path_factory.mktemp("executorch")
    sources: dict[str, object] = {}
    made: dict[tuple, tuple] = {}

    def make(name: str, backend: str = "xnnpack", scheme: str = "fp32"):
        if (name, backend, scheme) not in made:
            if name not in sources:
                sources[name] = load_source(str(save_pt2(name, folder)))
            source = sources[name]
            workspace = Workspace(folder / f"work-{name}")
            workspace.root.mkdir(exist_ok=True)
            options = ExecutorchOptions(backend=backend, scheme=scheme,
                                        calibration=random_calibration() if scheme == "int8" else None)
            out = folder / f"{name}.{backend}.{scheme}.pte"
            converted = convert(source, out, options, workspace)
            made[(name, backend, scheme)] = (source, workspace.products[("executorch", str(out))], converted)
        return made[(name, backend, scheme)]

    return make
