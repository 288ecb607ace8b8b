"""decompose_prelu on PyTorch graphs (exported .pt2, entry point, TorchScript, and an entry point
torch.export cannot export): op types before and after, outputs unchanged, and the Core ML
conversion that coremltools refuses without it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import deploykit
from deploykit.core.errors import ConversionError
from deploykit.loaders import load_source
from deploykit.passes.decompose_prelu import decompose_prelu, refused
from deploykit.core.types import SourceModel
from tests.passes.helpers import assert_pass

HERE = Path(__file__)
MIXED_SHAPE = (1, 3, 8, 8)
RNET_SHAPE = (1, 3, 24, 24)
# act2 (rank 4) and single (one alpha) are what coremltools converts; the other three it refuses.
MIXED_ITEMS = ["act3 (rank 5)", "act1 (rank 3)", "act_fc (rank 2)"]


def mixed_net():
    """Linear+PReLU (rank 2), Conv1d+PReLU (rank 3), Conv3d+PReLU (rank 5), and two PReLUs that stay:
    a per-channel one on rank 4 and a single-alpha one on rank 2."""
    import torch
    from torch import nn

    class Mixed(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.conv2, self.act2 = nn.Conv2d(3, 4, 3, padding=1), nn.PReLU(4)
            self.conv3, self.act3 = nn.Conv3d(1, 2, 3, padding=1), nn.PReLU(2)
            self.conv1, self.act1 = nn.Conv1d(4, 5, 3, padding=1), nn.PReLU(5)
            self.fc, self.act_fc = nn.Linear(5 * 64, 6), nn.PReLU(6)
            self.single = nn.PReLU()
            _randomize_alphas(self)

        def forward(self, x):  # 1x3x8x8
            x = self.act2(self.conv2(x))  # 1x4x8x8
            volume = self.act3(self.conv3(x.unsqueeze(1)))  # 1x2x4x8x8
            x = x + volume.mean(1)
            sequence = self.act1(self.conv1(x.flatten(2)))  # 1x5x64
            return self.single(self.act_fc(self.fc(sequence.flatten(1))))

    return Mixed().eval()


def mtcnn_rnet_like():
    """The shape of MTCNN's R-Net (facenet-pytorch): three Conv+PReLU, Linear+PReLU, two heads."""
    import torch
    from torch import nn

    class RNet(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
            self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
            self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
            self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
            self.dense5_1, self.dense5_2 = nn.Linear(128, 2), nn.Linear(128, 4)
            _randomize_alphas(self)

        def forward(self, x):
            x = self.pool1(self.prelu1(self.conv1(x)))
            x = self.pool2(self.prelu2(self.conv2(x)))
            x = self.prelu3(self.conv3(x))
            x = x.permute(0, 3, 2, 1).contiguous().reshape(x.shape[0], -1)
            x = self.prelu4(self.dense4(x))
            return self.dense5_2(x), torch.softmax(self.dense5_1(x), dim=1)

    return RNet().eval()


def data_dependent_net():
    """Linear+PReLU behind a branch on a value: torch.export refuses it, torch.jit.trace takes one branch."""
    import torch
    from torch import nn

    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.fc, self.act = nn.Linear(8, 6), nn.PReLU(6)
            _randomize_alphas(self)

        def forward(self, x):
            if x.sum() > 0:
                x = x * 2
            return self.act(self.fc(x))

    return Branchy().eval()


def _randomize_alphas(module) -> None:
    """Alphas of both signs, all different: a decomposition that drops or misplaces one shows."""
    import torch

    gen = torch.Generator().manual_seed(1)
    for m in module.modules():
        if isinstance(m, torch.nn.PReLU):
            m.weight.data.copy_(torch.rand(m.weight.shape, generator=gen) * 2 - 1)


@pytest.fixture(scope="module")
def mixed_files(tmp_path_factory):
    import torch

    folder = tmp_path_factory.mktemp("prelu")
    module, example = mixed_net(), torch.rand(MIXED_SHAPE)
    torch.export.save(torch.export.export(module, (example,)), folder / "mixed.pt2")
    torch.jit.save(torch.jit.trace(module, example), folder / "mixed.ts.pt")
    return folder


@pytest.mark.parametrize("rank, alphas, expected", [
    (2, 128, True), (3, 5, True), (5, 2, True), (6, 1, True),
    (4, 64, False), (2, 1, False), (3, 1, False), (5, 1, False),
])
def test_refused_matches_coremltools(rank, alphas, expected):
    assert refused(rank, alphas) is expected


@pytest.mark.parametrize("kind", ["pt2", "entrypoint", "torchscript"])
def test_torch(mixed_files, tmp_path, kind):
    import torch

    path = {"pt2": mixed_files / "mixed.pt2", "torchscript": mixed_files / "mixed.ts.pt",
            "entrypoint": f"{HERE}:mixed_net"}[kind]
    source = load_source(path, inputs=["1x3x8x8"])
    result = decompose_prelu(source)
    assert list(result.items) == MIXED_ITEMS
    before, after = source.handle["module"], result.value.handle["module"]
    x = torch.randn(MIXED_SHAPE, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        outputs = (before(x).numpy(), after(x).numpy())
    assert_pass(_ops(before), _ops(after), removed={"prelu": 3}, added={"relu": 6, "neg": 3, "sub": 3}, outputs=outputs)
    assert np.abs(outputs[0] - outputs[1]).max() <= 1e-6
    assert result.value.inputs == source.inputs and result.value.outputs == source.outputs
    assert _ops(source.handle["module"]).count("prelu") == 5  # the loaded model is not modified


def test_nothing_to_rewrite_returns_the_source(tmp_path):
    import torch

    path = tmp_path / "rank4.pt2"
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.PReLU(4)).eval()
    torch.export.save(torch.export.export(module, (torch.rand(MIXED_SHAPE),)), path)
    source = load_source(path)
    result = decompose_prelu(source)
    assert result.items == () and result.value is source


def test_not_exportable_entry_point_swaps_modules():
    import torch

    source = load_source(f"{HERE}:data_dependent_net", inputs=["1x8"])
    result = decompose_prelu(source)
    assert result.items == ("act (rank 2)",)
    assert any("torch.export failed" in note for note in result.notes)
    before, after = source.handle["module"], result.value.handle["module"]
    kinds = lambda m: [type(s).__name__ for s in m.modules()]  # noqa: E731
    assert_pass(kinds(before), kinds(after), removed={"PReLU": 1}, added={"DecomposedPReLU": 1})
    for sign in (1, -1):  # both branches
        x = sign * torch.rand(1, 8)
        with torch.no_grad():
            assert torch.abs(before(x) - after(x)).max() <= 1e-6


def test_other_frameworks_are_left_alone():
    source = SourceModel("onnx", "onnx", "m.onnx", "", "m", (), (), handle=object())
    result = decompose_prelu(source)
    assert result.value is source and result.items == () and result.notes


def test_coreml_mtcnn_like_converts_with_parity(tmp_path):
    """The MTCNN R-Net shape, as a .pt2 (the corpus format): refused without the pass, exact with it."""
    import torch

    path = tmp_path / "rnet.pt2"
    torch.export.save(torch.export.export(mtcnn_rnet_like(), (torch.rand(RNET_SHAPE),)), path)
    with pytest.raises(ConversionError, match="prelu"):
        deploykit.convert(path, to="coreml", passes="none", route="jit.trace", out=tmp_path / "refused")
    report = deploykit.convert(path, to="coreml", out=tmp_path / "out")
    artifact = report.artifacts[0]
    (record,) = [p for p in artifact.passes if p["name"] == "decompose_prelu"]
    assert record["items"] == ["prelu4 (rank 2)"]
    assert artifact.parity["passed"]


def test_coreml_ranks_2_3_5_convert_with_parity(tmp_path):
    report = deploykit.convert(f"{HERE}:mixed_net", to="coreml", inputs=["1x3x8x8"], out=tmp_path / "out")
    artifact = report.artifacts[0]
    (record,) = [p for p in artifact.passes if p["name"] == "decompose_prelu"]
    assert record["items"] == MIXED_ITEMS
    assert artifact.parity["passed"]


def _ops(module) -> list[str]:
    import torch

    if isinstance(module, torch.jit.ScriptModule):
        return [n.kind().split("::")[-1] for n in module.inlined_graph.nodes() if n.kind().startswith("aten::")]
    if not isinstance(module, torch.fx.GraphModule):
        module = torch.export.export(module, (torch.rand(MIXED_SHAPE),)).module()
    return [getattr(n.target, "__name__", str(n.target)).split(".")[0] for n in module.graph.nodes if n.op == "call_function"]
