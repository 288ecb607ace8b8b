"""Bias correction: each compressed layer's output mean put back where the reference has it.

Compressing weights moves the mean of a layer's output: E[W_q x] != E[W x] when the rounding errors of a
channel's weights do not cancel (k-means tables and integer grids round the weights of an all-positive
channel one way more than the other; pruning removes small weights of one sign more than the other). The
shift passes through the next layers and grows (Krishnamoorthi 2018, "Quantizing deep convolutional networks
for efficient inference", who recompute batch-norm statistics for it; Nagel et al. 2019, "Data-Free
Quantization", section 4.2, "bias correction"). Adding the shift back to the layer's bias removes it.

Empirical and sequential, on the artifacts themselves:

1. The reference artifact (TFLite: the fp32 ``.tflite``; Core ML: the fp16 program the variant was made from,
   as ``localize`` uses them) runs the fit samples once; each conv / dense layer's per-channel output mean
   (over samples and positions, before any activation) is recorded.
2. The reference with the variant's own weights (read back from the variant, ``localize._variant_weights``,
   so any scheme is exact without re-implementing it) runs again for each layer in execution order: the
   layer's channel means are measured with every earlier correction in place, and the difference to the
   reference is added to its bias. The later layers' weights cannot reach this layer's output, so they are the
   variant's too. A layer without a bias is skipped (and counted).
3. The shifts are written into a copy of the variant: TFLite float32 / fp16 biases, int32 biases of full int8
   (``round(shift / (input_scale * weight_scale))`` per channel, the accumulator's unit); Core ML's fp16 bias
   constants (coremltools' MIL, no pass pipeline).
4. The copy is kept only when its output noise against the reference (``metric.noise``) is lower than the
   variant's on samples the shifts were **not** fitted on (the second half of the samples): a mean estimated
   from a few samples can fit them and miss the rest, and a measure on the same samples would not see it.

TFLite's convolutions carry their activation fused, so the measuring copy runs each one as a convolution
followed by its own activation op (exactly the same arithmetic in float), which exposes the pre-activation
tensor. What the scheme does to activations (full int8's rounding, dynamic-range kernels) is not in the
shifts, which correct the weights' error; the judgement on the real artifact sees both.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deploykit.quantize.layerwise import metric
from deploykit.quantize.layerwise.bias_coreml import CoreMLMeans, write_coreml_biases
from deploykit.quantize.layerwise.bias_tflite import TFLiteMeans, write_tflite_biases
from deploykit.quantize.layerwise.layers import run_tflite

# The compressed schemes the step runs on, per target (fp16's rounding moves no mean that matters).
SCHEMES = {
    "tflite": ("int8-weights", "int8", "int4", "auto", "sparse"),
    "coreml": ("int8-weights", "int8", "int4", "lut", "auto", "sparse"),
}
# Samples the shifts are fitted on (at most half of those given; each costs one run per layer), and at most how many
# of the others the correction is judged on (two runs each). Judging needs many: on PP-OCRv4's recogniser with int8
# weights (TFLite's dynamic-range kernels requantize activations at run time, and its output is a softmax over 6625
# classes), moving the shifts by 1e-6 moved the noise on 4 held-out lines from -31.5 to -26.9 dB.
FIT_SAMPLES = 8
JUDGED_SAMPLES = 32


def applies_to(target: str, scheme: str) -> bool:
    return any(scheme == name or (name in ("lut", "sparse") and scheme.startswith(name)) for name in SCHEMES.get(target, ()))


@dataclass(frozen=True)
class Shifts:
    values: dict  # layer -> the per-channel shift for its bias (float64), in execution order
    skipped: dict  # why -> how many layers
    spread: dict  # layer -> the spread (std) of its channel means in the reference, what a shift is compared with
    refused: str | None = None  # why nothing could be measured


@dataclass(frozen=True)
class Corrected:
    record: dict  # quantization.bias_correction
    shifts: dict  # layer -> the shift written into its bias, when the corrected variant was kept


def bias_correction_step(target: str, reference: Path, variant: Path, workspace, scheme: str | None = None) -> dict:
    """The targets' step for a compressed variant: correct ``variant`` in place when that lowers its output noise on
    the calibration samples (``workspace.validation``: --validation, --calibration, else the parity inputs); returns the
    record ``quantization.bias_correction``.

    A corrected variant that fails its parity check (``workspace.check``) where the uncorrected one passes is undone:
    lower noise on average can still cost a sample its verdict. Measured on PP-OCRv4's recogniser, TFLite int8-weights
    repaired with 19 layers in float (cosine 0.999, just over its profile's bound): corrected, the noise on 32 held-out
    lines went from -20.3 to -20.6 dB while one of the 8 parity lines fell to cosine 0.957 (its softmax over 6625
    classes flips between near-equal characters)."""
    started = time.perf_counter()
    validation, samples = getattr(workspace, "validation", None), getattr(workspace, "samples", None)
    if validation is None and samples is None:
        return _not_applied("no samples to measure on: parity checking is off (--no-verify)", started)
    variant = Path(variant)
    check = getattr(workspace, "check", None)
    backup = variant.with_name(f"{variant.stem}.uncorrected{variant.suffix}")
    progress = getattr(workspace, "progress", None)
    with progress.step(f"Correcting the biases of {variant.name}") if progress else contextlib.nullcontext():
        if validation is not None:
            found = validation(Path(reference), target)
            feeds, outputs = list(found.feeds), list(found.reference)
        else:
            feeds, outputs = samples(Path(reference), target)[0], None
        if check is not None:
            (shutil.copytree if variant.is_dir() else shutil.copyfile)(variant, backup)
        try:
            record = correct(target, Path(reference), variant, feeds, outputs).record
            if record["applied"] and check is not None and not check(variant, target, scheme) and check(backup, target, scheme):
                _remove(variant)
                backup.rename(variant)
                record = {**record, "applied": False, "why": "the corrected variant fails its parity check where the "
                                                                  "uncorrected one passes"}
        finally:
            _remove(backup)
    return {**record, "seconds": round(time.perf_counter() - started, 3)}


def correct(target: str, reference: Path, variant: Path, feeds: list[dict], reference_outputs=None) -> Corrected:
    """Measure the shifts on ``FIT_SAMPLES`` of ``feeds`` (at most half, spread over them: calibration files are often
    ordered), write them into a copy of ``variant``, and let the copy take the variant's place only when its output
    noise on the others (up to ``JUDGED_SAMPLES``) is lower. ``reference_outputs``: the reference's outputs on
    ``feeds``, when the caller has them."""
    started = time.perf_counter()
    feeds = list(feeds)
    if len(feeds) < 2:
        return Corrected(_not_applied(f"{len(feeds)} sample(s): the shifts need samples to fit and others to judge on",
                                      started), {})
    fitted = set(np.linspace(0, len(feeds) - 1, min(FIT_SAMPLES, len(feeds) // 2)).round().astype(int).tolist())
    held_out = [i for i in range(len(feeds)) if i not in fitted][:JUDGED_SAMPLES]
    judged = [feeds[i] for i in held_out]
    found = measure_shifts(target, reference, variant, [feeds[i] for i in sorted(fitted)])
    if found.refused:
        return Corrected(_not_applied(found.refused, started), {})
    skipped = dict(found.skipped)
    counts = {"samples": len(fitted), "held_out": len(judged), "skipped": skipped}
    if not found.values:
        return Corrected(_not_applied("no conv / dense layer with a bias to correct", started, **counts), {})
    shifts = {layer: shift for layer, shift in found.values.items() if np.any(shift)}  # zero: the reference's so far
    reference_outputs = ([reference_outputs[i] for i in held_out] if reference_outputs is not None
                         else _outputs(target, reference, judged))
    before = metric.noise(reference_outputs, _outputs(target, variant, judged))
    if not shifts or before <= 0:
        return Corrected(_not_applied("the variant's layer means and outputs are the reference's already", started,
                                      **counts), {})
    candidate = variant.with_name(f"{variant.stem}.bias-corrected{variant.suffix}")
    written, unwritable = write_biases(target, variant, candidate, shifts)
    for layer, why in unwritable.items():
        skipped[why] = skipped.get(why, 0) + 1
        shifts.pop(layer)
    after = metric.noise(reference_outputs, _outputs(target, candidate, judged)) if written else before
    record = {"applied": bool(written) and after < before, "layers": len(shifts), "noise_db_before": _db(before),
              "noise_db_after": _db(after), **counts, "largest_shift": _largest(shifts, found.spread)}
    if record["applied"]:
        _remove(variant)
        candidate.rename(variant)
    else:
        _remove(candidate)
        record["why"] = ("no bias could be written into the variant" if not written else
                         f"it did not lower the output noise on the {len(judged)} held-out sample(s) "
                         f"({record['noise_db_before']} dB before, {record['noise_db_after']} dB after)")
    record["seconds"] = round(time.perf_counter() - started, 3)
    return Corrected(record, shifts if record["applied"] else {})


def measure_shifts(target: str, reference: Path, variant: Path, feeds: list[dict]) -> Shifts:
    """Per layer in execution order: the reference's channel means minus the variant's, every earlier shift applied."""
    engine = (TFLiteMeans if target == "tflite" else CoreMLMeans)(Path(reference), Path(variant))
    if engine.refused:
        return Shifts({}, {}, {}, engine.refused)
    goal = engine.reference_means(feeds)
    shifts: dict[str, np.ndarray] = {}
    skipped: dict[str, int] = {}
    for layer in engine.layers:
        why = engine.skip.get(layer)
        if why is None and layer not in goal:
            why = "its output could not be traced in the reference"
        if why is not None:
            skipped[why] = skipped.get(why, 0) + 1
            continue
        shift = goal[layer] - engine.variant_mean(layer, feeds)
        engine.add_to_bias(layer, shift)
        shifts[layer] = shift
    return Shifts(shifts, skipped, {name: float(np.std(mean)) for name, mean in goal.items()})


def write_biases(target: str, variant: Path, out_path: Path, shifts: dict) -> tuple[int, dict[str, str]]:
    """``variant`` written to ``out_path`` with each layer's bias moved by its shift: (layers written, {layer: why
    not}). TFLite: float32 / fp16 biases, full int8's int32 ones; Core ML: plain bias constants."""
    return (write_tflite_biases if target == "tflite" else write_coreml_biases)(Path(variant), Path(out_path), shifts)


def _outputs(target: str, path: Path, feeds: list[dict]) -> list[dict]:
    from deploykit.quantize.layerwise.layers import open_layers

    return run_tflite(Path(path).read_bytes(), feeds) if target == "tflite" else open_layers(target, path).run({}, feeds)


# -- the record -----------------------------------------------------------------------------------------------
def _not_applied(why: str, started: float, **counts) -> dict:
    return {"applied": False, "layers": 0, "noise_db_before": None, "noise_db_after": None, "samples": 0, **counts,
            "why": why, "seconds": round(time.perf_counter() - started, 3)}


def _largest(shifts: dict[str, np.ndarray], spread: dict[str, float]) -> dict | None:
    """The layer whose shift is largest against the spread of its channel means in the reference."""
    if not shifts:
        return None
    scored = {name: float(np.max(np.abs(shift))) / (spread.get(name) or 1.0) for name, shift in shifts.items()}
    name = max(scored, key=scored.get)
    return {"layer": name, "max_abs": round(float(np.max(np.abs(shifts[name]))), 6), "of_channel_spread": round(scored[name], 4)}


def _db(ratio: float) -> float | None:
    return None if ratio <= 0 else round(10 * math.log10(ratio), 2)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def corrected(target: str, scheme: str, reference: Path, variant: Path, record: dict, workspace, options) -> dict:
    """A target's named step after making a compressed variant: ``record`` with ``bias_correction`` when the step
    applies to ``scheme`` (``options``: the QuantizeOptions; ``--no-bias-correction`` turns it off)."""
    if not getattr(options, "bias_correction", True) or not applies_to(target, scheme):
        return record
    profile = record.get("profile", scheme)  # --quantize auto: checked as its coarsest choice (auto.py), "auto" is no profile
    return {**record, "bias_correction": bias_correction_step(target, Path(reference), Path(variant), workspace, profile)}
