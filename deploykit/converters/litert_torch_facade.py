"""The one seam between deploykit and litert-torch (Google's PyTorch -> TFLite converter, pinned in
constraints.txt): every litert_torch call goes through here, so a version bump touches this file only."""

from __future__ import annotations

from pathlib import Path


def export_tflite(module, examples: tuple, path: Path, dynamic_shapes=None) -> None:
    """Convert ``module`` on ``examples`` and write the ``.tflite`` at ``path``; ``dynamic_shapes`` as
    ``torch.export`` takes them (None: every size fixed by the examples)."""
    import litert_torch

    if dynamic_shapes is not None:
        litert_torch.convert(module, examples, dynamic_shapes=dynamic_shapes).export(str(path))
    else:
        litert_torch.convert(module, examples).export(str(path))
