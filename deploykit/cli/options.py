"""Option definitions shared by several commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Show upstream converter logs (TensorFlow, coremltools, onnx2tf).")]
JsonOutput = Annotated[bool, typer.Option("--json", help="Print the machine-readable record to stdout instead of tables.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]
InputShapes = Annotated[
    Optional[list[str]],
    typer.Option("--input", "-i", metavar="[NAME=]1x3x224x224",
                  help="Fix an input's shape (repeat per input; the name may be left out for a single input). "
                       "A dynamic batch dimension defaults to 1. Flexible sizes (convert only): [224,320] per "
                       "dimension enumerates sizes (every combination), 1x3x224x224|1x3x320x320 lists whole shapes, "
                       "(160..640) is a range; parity runs at each size (see docs/flexible-sizes.md)."),
]

# The parity check's inputs and source options: the same for `verify` and for the check `convert` ends with.
Samples = Annotated[int, typer.Option("--samples", "-n", help="Parity check: samples to compare (also caps --data; 0 = all of --data).")]
Data = Annotated[Optional[Path], typer.Option("--data", help="Parity check: real inputs: .npy, .npz (one array per input) or a folder of images.")]
Mean = Annotated[Optional[str], typer.Option("--mean", help="Parity check: per-channel mean for --data images in [0, 1] units, e.g. 0.485,0.456,0.406. With --image-input: the model's own preprocessing, in --pixel-range units.")]
Std = Annotated[Optional[str], typer.Option("--std", help="Parity check: per-channel std for --data images in [0, 1] units, e.g. 0.229,0.224,0.225. With --image-input: the model's own preprocessing, in --pixel-range units.")]
Seed = Annotated[int, typer.Option("--seed", help="Parity check: seed of the random inputs.")]
Localize = Annotated[bool, typer.Option("--localize", help="Parity check: on failure, name the first layer where source and artifact diverge.")]
StrictParity = Annotated[bool, typer.Option(
    "--strict-parity", help="Parity check: fail (exit 1) when the verdict is inconclusive, i.e. on every sample the source's own output moves by more than 1e-3 of its scale under a 1e-7 input change, so no comparison can tell a right artifact from a wrong one. By default that is a warning and exit 0.")]
Weights = Annotated[Optional[Path], typer.Option("--weights", help="state_dict for an entry-point source (loaded with weights_only=True).")]
AllowH5 = Annotated[bool, typer.Option("--allow-h5", help="Load a legacy .h5 Keras file. It ignores safe mode: only for files you trust.")]


def parse_floats(text: str | None, flag: str):
    from deploykit.core.errors import UsageError

    if text is None:
        return None
    try:
        values = [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise UsageError(f"{flag} takes numbers separated by commas, got {text!r}") from None
    if not values:
        raise UsageError(f"{flag} is empty")
    return values[0] if len(values) == 1 else values
