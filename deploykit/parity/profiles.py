"""Tolerance profiles: per artifact precision, which metric must stay within which limit, and why.

A profile is data. Each threshold carries the reason for its value, and the evidence behind the
defaults (right conversions that must pass, wrong ones that must fail) is in docs/verify.md and
bench/results/verify.md. Thresholds on top-1/top-5 agreement apply to classifier-like outputs only
(rank 2, at least two classes). ``max_abs_error`` and ``mean_abs_error`` are always reported but
have no default limit: they are in the output's own units; set them per output with an override.

Overrides: ``{"logits": {"max_rel_error": 1e-3}, "*": {"top5_agreement": None}}``. ``"*"`` applies
to every output; a named output wins over ``"*"``; ``None`` switches a metric off. On the command
line: ``--tolerance logits:max_rel_error=1e-3`` or ``--tolerance top5_agreement=off``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from deploykit.core.errors import UsageError

# Metric -> "max" (value must be <= limit) or "min" (value must be >= limit).
BOUNDS = {
    "max_abs_error": "max",
    "max_rel_error": "max",
    "mean_abs_error": "max",
    "cosine_similarity": "min",
    "snr_db": "min",
    "top1_agreement": "min",
    "top5_agreement": "min",
}
ALIASES = {"cosine": "cosine_similarity", "snr": "snr_db", "top1": "top1_agreement", "top5": "top5_agreement",
           "max_abs": "max_abs_error", "max_rel": "max_rel_error", "mean_abs": "mean_abs_error"}
CLASSIFIER_METRICS = ("top1_agreement", "top5_agreement")


@dataclass(frozen=True)
class Threshold:
    metric: str
    limit: float
    reason: str
    # A limit the user gave (--tolerance): used as given, never widened by the source's own noise
    # (parity.conditioning), since the user chose it knowing the model.
    exact: bool = False

    @property
    def bound(self) -> str:
        return BOUNDS[self.metric]

    def passes(self, value: float) -> bool:
        if isinstance(value, float) and math.isnan(value):
            return False
        return value <= self.limit if self.bound == "max" else value >= self.limit

    def describe(self) -> str:
        return f"{'<=' if self.bound == 'max' else '>='} {self.limit:g}"


@dataclass(frozen=True)
class Profile:
    """Thresholds for one artifact precision.

    ``tie_rel``: classes whose reference scores differ by less than this fraction of the output's
    peak are a near-tie, and the artifact ranking them the other way is not a top-k disagreement.
    ``localize_rel_error``: how far an intermediate tensor may drift (max error / the tensor's peak)
    and still count as agreeing, when localizing.
    """

    name: str
    description: str
    thresholds: tuple[Threshold, ...]
    tie_rel: float
    tie_reason: str
    localize_rel_error: float
    localize_reason: str

    def thresholds_for(self, output: str, classifier: bool, overrides: dict | None = None) -> tuple[Threshold, ...]:
        chosen = {t.metric: t for t in self.thresholds if classifier or t.metric not in CLASSIFIER_METRICS}
        for key in ("*", output):
            for metric, limit in ((overrides or {}).get(key) or {}).items():
                if limit is None:
                    chosen.pop(metric, None)
                elif classifier or metric not in CLASSIFIER_METRICS:
                    where = "every output" if key == "*" else f"output {output!r}"
                    chosen[metric] = Threshold(metric, float(limit), f"override for {where}", exact=True)
        return tuple(chosen[m] for m in BOUNDS if m in chosen)


def _t(metric: str, limit: float, reason: str) -> Threshold:
    return Threshold(metric, limit, reason)


# The evidence: bench/results/parity_calibration.md. "Right" is every deploykit conversion of the
# 12 small nets (PyTorch, Keras, ONNX sources) and of MobileNetV2 (Keras and PyTorch), MobileNetV3Small,
# EfficientNetB0 and ResNet50 at 224x224; "wrong" is the artifact of the same architecture from another
# seed, the source with a perturbed weight, the source with a dropped layer.
_TOPK = ("top1_agreement", "top5_agreement")


def _topk(limit: float, reason: str) -> tuple[Threshold, ...]:
    return tuple(_t(metric, limit, reason) for metric in _TOPK)


FP32 = Profile(
    "fp32", "float32 weights and compute: only operation order and fusions differ",
    (
        _t("max_rel_error", 1e-4, "correct fp32 conversions measured <= 2.1e-6 of the output's peak (folded batch "
           "norm, fused activations, other conv kernels); 1e-4 keeps a 50x margin for deeper nets and other CPUs"),
        _t("cosine_similarity", 0.99999, "correct fp32 conversions measure 1 - 1e-12; another seed's model "
           "measured <= 0.77"),
        _t("snr_db", 80.0, "correct fp32 conversions measured >= 121 dB; 80 dB is noise at 1e-4 of the signal, "
           "the same bound as max_rel_error, and fails every other-seed model, and on the small nets every dropped "
           "layer and 10 % weight perturbation"),
        *_topk(1.0, "fp32 cannot reorder classes whose scores differ by more than 2e-4 of the peak (the tie margin)"),
    ),
    2e-4, "twice the max_rel_error bound: errors within it cannot swap classes further apart",
    1e-3, "intermediate fp32 tensors of a correct conversion agree to ~1e-6 of their peak",
)

FP16 = Profile(
    "fp16", "float16 weights (TFLite: dequantized to float32 at load) or fp16 weights and compute (Core ML)",
    (
        _t("max_rel_error", 1e-2, "fp16 rounds each value to 2^-11 (~5e-4); correct conversions measured <= 1.13e-3 "
           "of the output's peak; 1e-2 leaves a 9x margin for deeper nets"),
        _t("cosine_similarity", 0.9999, "correct fp16 conversions measure > 0.999999"),
        _t("snr_db", 40.0, "correct fp16 conversions measured >= 59.9 dB; 40 dB (noise 1 % of the signal) still "
           "fails every other-seed model, and on the small nets every dropped layer"),
        *_topk(1.0, "fp16 noise cannot reorder classes further apart than the 2e-2 tie margin"),
    ),
    2e-2, "twice the max_rel_error bound",
    3e-2, "fp16 intermediates agree to ~1e-3 of their peak; accumulated over a few layers, 3e-2 separates drift from a break",
)

INT8_WEIGHTS = Profile(
    "int8-weights", "int8 weights, float activations (TFLite dynamic range; Core ML int8 weights on an fp16 program)",
    (
        _t("cosine_similarity", 0.999, "per-channel int8 weights measured >= 0.99992 on correct conversions; "
           "another seed's model <= 0.77"),
        _t("snr_db", 25.0, "correct int8-weight conversions measured >= 36 dB; another seed's model <= 1.6 dB"),
        *_topk(0.875, "one sample in eight may reorder classes beyond the 0.05 tie margin; a wrong model "
                      "agrees at chance level"),
    ),
    0.05, "correct int8-weight conversions measured max errors <= 0.017 of the peak: ties are twice that, rounded up",
    0.1, "int8 weight rounding changes each layer's output by a few percent of its peak",
)

FULL_INT8 = Profile(
    "int8", "int8 weights and activations, calibrated (TFLite full integer quantization)",
    (
        _t("cosine_similarity", 0.95, "full int8 measured >= 0.9978 on the random-weight nets and 0.979 on the trained "
           "digits model's held-out images (trained logits are large and sharp); another seed's model <= 0.77, "
           "and 0.51 for another training run of the digits model on the same images"),
        _t("snr_db", 8.0, "full int8 measured >= 17.5 dB on the random-weight nets, 11.4 dB on the trained digits "
           "model; another seed's model <= 1.6 dB (0.04 dB for another training run of the digits model)"),
        *_topk(0.875, "activation quantization reorders near classes; one sample in eight may go beyond the "
                      "0.3 tie margin"),
    ),
    0.3, "correct full-int8 conversions measured max errors <= 0.15 of the peak: ties are twice that",
    0.3, "int8 activations carry a step of 1/256 of each tensor's range at every layer, compounding",
)

INT16X8 = Profile(
    "int16x8", "int8 weights, int16 activations, calibrated (TFLite 16x8 full integer quantization)",
    (
        _t("cosine_similarity", 0.998, "16x8 measured >= 0.99995 on the random-weight nets and 0.99945 on the trained "
           "digits model's held-out images (int8: 0.979 there); another seed's model <= 0.77, and 0.51 for another "
           "training run of the digits model. PP-OCRv4's recogniser measures 0.95 (its 6625-class CTC softmax, "
           "which int8-weights fails too) while reading every character fp32 reads: bench/results/int16x8.md"),
        _t("snr_db", 20.0, "16x8 measured >= 36.8 dB on the random-weight nets and 25.8 dB on the trained digits "
           "model (int8: 11.4 dB); the int8 weights set this floor (weight-only int8 measured 32 dB there), not the "
           "int16 activations. Another seed's model <= 1.6 dB, a classifier layer perturbed by 50 % <= 17 dB"),
        *_topk(0.875, "int8 weights reorder near classes as int8-weights do; one sample in eight may go beyond the "
                      "0.12 tie margin (every top-1 kept on the digits model's 297 held-out images)"),
    ),
    0.12, "correct 16x8 conversions measured max errors <= 0.061 of the peak: ties are twice that",
    0.1, "int8 weight rounding changes each layer's output by a few percent of its peak; the int16 activations' "
         "1/65536 steps add little to that",
)

INT4 = Profile(
    "int4", "int4 weights, float activations (TFLite weight-only per-channel; Core ML per-block of 32 on an fp16 program)",
    (
        _t("cosine_similarity", 0.85, "int4 weights measured >= 0.906 on correct conversions; another seed's "
           "model <= 0.77"),
        _t("snr_db", 4.0, "int4 weights measured >= 7.3 dB on correct conversions; another seed's model <= 1.6 dB"),
        *_topk(0.75, "4-bit weights reorder near classes; two samples in eight may go beyond the 0.5 tie margin"),
    ),
    0.5, "correct int4 conversions measured max errors <= 0.39 of the peak",
    0.5, "4-bit weights change each layer's output by tens of percent of its peak",
)

# Palettized weights (Core ML palettize_weights, k-means, on an fp16 program): measured for 8, 6, 4 and 2
# bits; 7, 5 and 3 bits are interpolated between their neighbours.
# The 6- and 4-bit floors come from the trained digits model (examples/make_example_model.py) on its 297
# held-out images, whose logits drift more than random-weight nets' (lut6: cosine 0.987, 15.5 dB; lut4:
# 0.937, 9.0 dB, every top-1 kept); another training run of that model measures 0.51 and 0.04 dB there.
_LUT = {  # bits: (cosine floor, snr floor, tie, measured worst right pair)
    8: (0.999, 30.0, 0.05, "cosine >= 0.99996, SNR >= 41.2 dB, max error <= 0.0099 of the peak"),
    6: (0.96, 10.0, 0.25, "cosine >= 0.987, SNR >= 15.5 dB, max error <= 0.21 of the peak (trained digits model)"),
    4: (0.9, 6.0, 0.5, "cosine >= 0.937, SNR >= 9.0 dB, max error <= 0.45 of the peak (trained digits model)"),
    2: (0.85, 0.0, 0.8, "cosine >= 0.894, SNR >= 2.7 dB (too close to a wrong model's 1.6 dB to set a floor), "
        "max error <= 0.76 of the peak"),
}


def lut(bits: int) -> Profile:
    """Palettized weights with 2**bits entries per lookup table."""
    if not 2 <= bits <= 8:
        raise UsageError(f"LUT profiles exist for 2 to 8 bits, not {bits}")
    if bits in _LUT:
        cosine, snr, tie, seen = _LUT[bits]
        origin = f"correct {bits}-bit conversions measured {seen}"
    else:  # the looser neighbour's limits: interpolation must not fail a correct conversion
        cosine, snr, tie, _ = _LUT[bits - 1]
        origin = f"not measured: the limits of {bits - 1} bits, the looser neighbour"
    return Profile(
        f"lut{bits}", f"{bits}-bit palettized weights ({2 ** bits}-entry lookup tables), fp16 activations",
        (
            _t("cosine_similarity", cosine, f"{origin}; another seed's model measured <= 0.77"),
            *((_t("snr_db", snr, f"{origin}; another seed's model measured <= 1.6 dB"),) if snr > 0 else ()),
            *_topk(0.75, f"palettized weights reorder near classes beyond the {tie} tie margin in some samples"),
        ),
        tie, "about twice the largest max error measured on correct conversions (0.8 at 2 bits: top-k there "
             "only catches gross reordering)",
        min(0.8, 2 * tie), "palettized weights change each layer's output by up to tens of percent at low bit widths",
    )


# Pruning without retraining (quantize/sparsity.py). The evidence is bench/results/sparsity.md (bench/sparsity_bench.py):
# right pairs (each variant against its own source, TFLite and Core ML, with deploykit's bias correction as convert
# makes them) on the corpus's pretrained models with their own inputs (PP-OCRv4 recogniser and detector, PP-OCR
# direction classifier, MTCNN O-Net) and on random-weight nets; wrong pairs against the same network with each
# weight's values shuffled (pretrained) or from another seed (random), and an answer that ignores the input (the
# source's own mean output over the samples). Pruning moves outputs by what the zeroed weights carried: random-weight
# nets barely notice (cosine >= 0.99 even at 90 %), pretrained models do, to where an input-independent answer is
# (the PP-OCRv4 recogniser pruned 50 % decodes every line to nothing at cosine 0.82; its mean output scores 0.82).
# So, unlike the other profiles, the limits cannot sit under the measured right pairs: they sit above the wrong
# ones, and an artifact that fails them has lost the model's function, which the check reports.
_SPARSE_COSINE = (0.9, "an answer that ignores the input measured up to 0.82 (the PP-OCRv4 recogniser's mean output; "
                       "blank at every step 0.78), shuffled-weight copies up to 0.81, random nets against another seed "
                       "<= 0.1 (an output nearly constant across inputs, such as MTCNN's landmarks at 0.99, cannot be "
                       "judged by cosine: the model's other outputs are)")
_SPARSE_SNR = (3.0, "cosine cannot see a scale error (an output off by 2x measures 0 dB); every right pair above the "
                    "cosine floor measured >= 12 dB. Not a separator: near-empty outputs (a detector's probability "
                    "map, a 6625-class softmax) give wrong models up to 37 dB")
_SPARSE = {  # name: the right pairs' cosine at this level (bench/results/sparsity.md)
    "sparse50": "MTCNN O-Net 0.98, PP-OCRv4 recogniser 0.82 (every line decoded to nothing), PP-OCRv4 detector "
                "0.72, PP-OCR direction classifier 0.54; random-weight nets >= 0.99",
    "sparse75": "pretrained models 0.01-0.82, random-weight nets >= 0.99",
    "sparse90": "pretrained models 0.16-0.78, random-weight nets >= 0.99",
    "sparse2of4": "pretrained models 0.0 (the PP-OCRv4 recogniser's fp16 program overflows to NaN) to 0.78, "
                  "random-weight nets >= 0.99",
}
_JOINT = {"sparse50+lut4": "pretrained models 0.38-0.97, random-weight nets >= 0.99",
          "sparse50+int8": "pretrained models 0.53-0.98, random-weight nets >= 0.99"}
_SPARSE_THEN = {"lut4": lambda: lut(4), "int8": lambda: INT8_WEIGHTS}


def sparse(name: str) -> Profile:
    """A pruning scheme's profile (``_SPARSE``); for a joint scheme (``sparse50+lut4``) the looser of its parts'
    limits, metric by metric, over the metrics both parts check."""
    pruned, _, then = name.partition("+")
    if pruned not in _SPARSE or (then and then not in _SPARSE_THEN):
        raise UsageError(f"unknown parity profile {name!r}", hint=f"sparsity profiles: {', '.join(_SPARSE)} and "
                                                                  "sparseNN+lut4 / sparseNN+int8")
    measured = f"{pruned}'s right pairs measured cosine {_SPARSE[pruned]}"
    profile = Profile(
        pruned, f"{pruned}: conv / dense weights pruned by magnitude without retraining (first and small layers "
                "spared), fp16 (Core ML) or float32 (TFLite) otherwise",
        (_t("cosine_similarity", _SPARSE_COSINE[0], f"{_SPARSE_COSINE[1]} ({measured})"),
         _t("snr_db", _SPARSE_SNR[0], _SPARSE_SNR[1]),
         *_topk(0.75, "right pairs above the cosine floor kept every top-1 (MTCNN O-Net); the PP-OCR direction "
                      "classifier flips one sample in eight at every level: one in four may go")),
        0.5, "right pairs above the cosine floor measured max errors up to 0.28 of the peak: ties are about twice that",
        0.8, "each pruned layer's output moves by what its zeroed weights carried: tens of percent of its peak")
    if not then:
        return profile
    other = _SPARSE_THEN[then]()
    theirs = {t.metric: t for t in other.thresholds}
    chosen = []
    for mine in profile.thresholds:
        if mine.metric not in theirs:
            continue
        looser = min if mine.bound == "min" else max
        limit = looser(mine.limit, theirs[mine.metric].limit)
        measured = f"; measured: {_JOINT[name]}" if name in _JOINT else "; not measured jointly"
        chosen.append(Threshold(mine.metric, limit, f"the looser of {pruned}'s ({mine.limit:g}) and {other.name}'s "
                                                    f"({theirs[mine.metric].limit:g}){measured}"))
    return Profile(name, f"{pruned}, its non-zeros then {'palettized to 4 bits' if then == 'lut4' else 'int8 weights'}",
                   tuple(chosen), max(profile.tie_rel, other.tie_rel), f"the looser of {pruned}'s and {other.name}'s",
                   max(profile.localize_rel_error, other.localize_rel_error), f"the looser of {pruned}'s and {other.name}'s")


SPARSE_PROFILES = (*_SPARSE, *(f"sparse{p}+{then}" for p in (50, 75, 90) for then in _SPARSE_THEN))
PROFILES: dict[str, Profile] = {p.name: p for p in (FP32, FP16, INT8_WEIGHTS, FULL_INT8, INT16X8, INT4,
                                                    *(lut(b) for b in range(2, 9)), *(sparse(n) for n in SPARSE_PROFILES))}
PROFILE_ALIASES = {"sparse2:4": "sparse2of4", "float32": "fp32", "float16": "fp16", "int8w": "int8-weights", "int8_weights": "int8-weights",
                   "w8": "int8-weights", "full-int8": "int8", "full_int8": "int8", "int8-full": "int8", "w4": "int4"}


def get_profile(name: str | Profile) -> Profile:
    if isinstance(name, Profile):
        return name
    key = PROFILE_ALIASES.get(name.lower(), name.lower())
    if key not in PROFILES:
        raise UsageError(f"unknown parity profile {name!r}", hint=f"profiles: {', '.join(PROFILES)}")
    return PROFILES[key]


def profile_for_variant(variant: str | None, quantization: dict | None = None) -> str | None:
    """The profile for an artifact's recorded ``variant`` and ``quantization``, or None if unknown.

    deploykit names variants after its quantization schemes (fp32, fp16, int8-weights, int8, int4,
    lut8 ...), which are profile names; the ``scheme`` recorded in ``quantization`` comes next; then
    the words of a hand-written variant name (e.g. "float16", "palettized" with ``nbits``). A per-layer variant
    (``--quantize auto``) records the profile of its coarsest choice as ``profile``.
    """
    if variant == "auto" and (quantization or {}).get("profile") in PROFILES:
        return quantization["profile"]
    for name in (variant, (quantization or {}).get("scheme")):
        if isinstance(name, str) and (name.lower() in PROFILES or name.lower() in PROFILE_ALIASES):
            return get_profile(name).name
    text = (variant or "").lower()
    nbits = (quantization or {}).get("nbits") or (quantization or {}).get("bits")
    if "lut" in text or "palett" in text:
        digits = re.search(r"(\d)", text)
        bits = int(digits.group(1)) if digits else nbits
        return f"lut{bits}" if isinstance(bits, int) and 1 <= bits <= 8 else None
    if re.search(r"fp16|float16|half", text):
        return "fp16"
    if "int4" in text or "w4" in text:
        return "int4"
    if "int8" in text or "w8" in text:
        return "int8" if re.search(r"full|a8|integer", text) else "int8-weights"
    if re.search(r"fp32|float32", text):
        return "fp32"
    return None


def parse_tolerances(values: list[str]) -> dict[str, dict[str, float | None]]:
    """``["logits:max_rel_error=1e-3", "top5=off"]`` -> ``{"logits": {...}, "*": {...}}``."""
    overrides: dict[str, dict[str, float | None]] = {}
    for raw in values or []:
        match = re.fullmatch(r"\s*(?:(?P<output>[^:=]+):)?(?P<metric>[a-z0-9_]+)\s*=\s*(?P<value>\S+)\s*", raw)
        if not match:
            raise UsageError(f"bad --tolerance {raw!r}", hint="write OUTPUT:METRIC=VALUE or METRIC=VALUE, e.g. logits:snr_db=30")
        metric = ALIASES.get(match["metric"], match["metric"])
        if metric not in BOUNDS:
            raise UsageError(f"bad --tolerance {raw!r}: unknown metric {match['metric']!r}", hint=f"metrics: {', '.join(BOUNDS)}")
        text = match["value"].lower()
        if text in ("off", "none"):
            value = None
        else:
            try:
                value = float(text)
            except ValueError:
                raise UsageError(f"bad --tolerance {raw!r}: {match['value']!r} is not a number or 'off'") from None
        overrides.setdefault(match["output"] or "*", {})[metric] = value
    return overrides


def markdown() -> str:
    """Every profile as Markdown (docs/verify.md embeds this text; a test keeps the two equal)."""
    lines = []
    for p in PROFILES.values():
        lines += [f"#### `{p.name}`: {p.description}", "", "| metric | limit | why |", "| --- | --- | --- |"]
        lines += [f"| {t.metric} | {t.describe()} | {t.reason} |" for t in p.thresholds]
        lines += ["", f"Tie margin {p.tie_rel:g} of the output's peak: {p.tie_reason}. Localization: an intermediate "
                      f"tensor agrees within {p.localize_rel_error:g} of its peak: {p.localize_reason}.", ""]
    return "\n".join(lines)


if __name__ == "__main__":  # python -m deploykit.parity.profiles docs/verify.md: refresh the embedded tables
    import sys
    from pathlib import Path

    doc = Path(sys.argv[1])
    text = doc.read_text()
    start = text.index("-->", text.index("<!-- profiles:")) + 3
    end = text.index("<!-- /profiles -->")
    doc.write_text(text[:start] + "\n\n" + markdown().strip() + "\n\n" + text[end:])
