"""Two tiny PyTorch nets for the accelerator-compatibility tests: one every accelerator takes whole, one with an op
XNNPACK and ExecuTorch's XNNPACK delegate refuse (a cumulative sum over channels), saved as torch.export programs."""

from __future__ import annotations

from pathlib import Path

SHAPE = (1, 3, 16, 16)


def build(cumsum: bool):
    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)

        def forward(self, x):
            y = torch.relu(self.conv(x))
            return torch.cumsum(y, dim=1) if cumsum else y

    torch.manual_seed(0)
    return Net().eval()


def save(folder: Path, cumsum: bool = True) -> Path:
    """``folder/cumsum.pt2`` (or ``plain.pt2``): the net as a torch.export program."""
    import torch

    path = Path(folder) / ("cumsum.pt2" if cumsum else "plain.pt2")
    if not path.exists():
        torch.export.save(torch.export.export(build(cumsum), (torch.rand(SHAPE),)), path)
    return path
