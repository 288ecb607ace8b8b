"""What cannot be made is refused before any work, naming what can; TorchScript is re-exported where it can be."""

from __future__ import annotations

import numpy as np
import pytest

from deploykit.core.errors import InputError, UsageError
from tests.conftest import TORCH_SHAPE, save_torchscript
from tests.converters.executorch_pte.helpers import relative_error, seeded_feeds


@pytest.mark.parametrize(("backend", "scheme", "can"), [
    ("portable", "int8", "it makes fp32"),
    ("portable", "fp16", "it makes fp32"),
    ("coreml", "int8", "it makes fp32, fp16"),
])
def test_a_scheme_the_backend_cannot_make_is_refused_naming_what_it_can(backend, scheme, can):
    from deploykit.converters.torch_executorch import ExecutorchOptions, check_options

    with pytest.raises(UsageError) as caught:
        check_options(ExecutorchOptions(backend=backend, scheme=scheme, calibration=(np.zeros(1),)))
    assert can in caught.value.message
    if scheme == "int8":
        assert "--executorch-backend xnnpack makes int8" in caught.value.hint


def test_unknown_backend_and_int8_without_calibration_are_usage_errors():
    from deploykit.converters.torch_executorch import ExecutorchOptions, check_options

    with pytest.raises(UsageError, match="unknown ExecuTorch backend"):
        check_options(ExecutorchOptions(backend="vulkan"))
    with pytest.raises(UsageError, match="int8 needs calibration data"):
        check_options(ExecutorchOptions(scheme="int8"))


def test_traced_torchscript_is_re_exported(tmp_path):
    from deploykit.converters import Workspace
    from deploykit.converters.torch_executorch import ExecutorchOptions, convert
    from deploykit.loaders import load_source
    from deploykit.runners.executorch_runner import ExecutorchRunner
    from tests.converters.executorch_pte.helpers import torch_outputs

    source = load_source(str(save_torchscript("shufflenet", tmp_path)), inputs={None: TORCH_SHAPE})
    out = tmp_path / "shufflenet.pte"
    converted = convert(source, out, ExecutorchOptions(), Workspace(tmp_path))
    assert converted.converter == "torchscript->executorch (TS2EPConverter + XNNPACK)"
    feeds = seeded_feeds(source)
    with ExecutorchRunner(out, input_names=[t.name for t in source.inputs], output_names=["output"]) as runner:
        got = runner.infer(feeds)
    assert relative_error(got["output"], torch_outputs(source, feeds)["output"]) < 1e-4


def test_torchscript_that_cannot_be_re_exported_asks_for_a_pt2(tmp_path):
    import torch

    from deploykit.converters.torch_executorch import ExecutorchOptions, export_pte

    class Loop(torch.nn.Module):
        def forward(self, x):
            rows: list[torch.Tensor] = []
            for i in range(int(x.shape[0])):
                rows.append(x[i] * i)
            return torch.stack(rows)

    with pytest.raises(InputError) as caught:
        export_pte(torch.jit.script(Loop()), (torch.rand(2, 3),), tmp_path / "loop.pte", ExecutorchOptions())
    assert "cannot be re-exported for ExecuTorch" in caught.value.message
    assert "torch.export.save" in caught.value.hint and ".pt2" in caught.value.hint
    assert not (tmp_path / "loop.pte").exists()


def test_importing_the_modules_loads_no_framework():
    import subprocess
    import sys

    code = ("import sys; import deploykit.converters.torch_executorch, deploykit.runners.executorch_runner, deploykit.runners.executorch_child, "
            "deploykit.inspection.executorch_graph, deploykit.runners.executorch_bench; "
            "print(sorted(m for m in ('torch', 'executorch', 'coremltools') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
