"""``--quantize`` and its companion flags, parsed into one frozen record.

``--quantize fp16,int8-weights,lut4`` applies each scheme to every target of the conversion that
can do it (lut4 only to Core ML); a bare scheme no target can do is an error naming what each can
do. ``--quantize coreml=lut4,tflite=int8`` picks per target, and a ``target=scheme`` the target
cannot do is an error naming what it can do. Both forms mix; repeat ``target=`` for several
schemes. ``fp32`` always comes first in every target's list.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from deploykit.core.errors import UsageError
from deploykit.quantize.schemes import SCHEMES, UNAVAILABLE, UNAVAILABLE_EXAMPLES, supported

DEFAULT_CALIBRATION_SAMPLES = 100
DEFAULT_SMALL_TENSOR = 2048  # elements; coremltools' own weight_threshold default
DEFAULT_LUT_BUDGET = 8.0  # percent of the index bytes; keeps MobileNetV2 lut4 under the 1.15x goal (lut_plan.py)
GROUPED_LUT_TARGETS = ("iOS18", "macOS15")  # per_grouped_channel tables (constexpr_lut_to_dense of iOS18)


@dataclass(frozen=True)
class KeepFloat:
    """``--keep-float``: layers and tensors left in float in every compressed variant."""

    first: bool = False  # the first conv / dense layer
    last: bool = False  # the last conv / dense layer (the classifier)
    small: int | None = None  # weights with fewer elements than this stay float; None: the scheme's default
    names: tuple[str, ...] = ()  # substrings of the artifact's op / tensor names

    def small_for(self, target: str, scheme: str) -> int:
        """The size threshold for one variant. Without --keep-float small every weight is compressed,
        except in TFLite int8-weights, which keeps the legacy TFLite dynamic-range rule (tensors under
        1024 elements stay float): measured on MobileNetV2 it is 23 % faster with LiteRT (16.6 vs
        21.5 ms) for 5 KB more, because hybrid depthwise kernels are slower than float ones."""
        if self.small is not None:
            return self.small
        if scheme.startswith("sparse"):  # pruning spares small weights unless told otherwise (quantize/sparsity.py)
            return DEFAULT_SMALL_TENSOR
        return 1024 if (target, scheme) == ("tflite", "int8-weights") else 0

    def coreml_threshold(self, scheme: str) -> int:
        """coremltools compresses weights with more than ``weight_threshold`` elements."""
        return max(self.small_for("coreml", scheme) - 1, 0)

    def to_json(self) -> dict:
        return {"first": self.first, "last": self.last, "small": self.small, "names": list(self.names)}


@dataclass(frozen=True)
class AutoOptions:
    """``--quantize auto``: the budget (``--max-accuracy-drop`` or ``--max-error``), the samples it is judged on
    (``--validation``: a .npy / .npz in the source's layout, an .npz may hold ``labels``), and ``--auto-choices``
    (per-layer choices allowed, default all the target has: quantize/layerwise/choices.py)."""

    max_accuracy_drop: float | None = None
    max_error: float | None = None
    validation: str | None = None
    objective: str = "size"
    choices: tuple[str, ...] = ()

    def budget(self):
        from deploykit.quantize.layerwise.metric import Budget

        return Budget(self.max_accuracy_drop, self.max_error, self.objective)

    def to_json(self) -> dict:
        return {"max_accuracy_drop": self.max_accuracy_drop, "max_error": self.max_error,
                "validation": self.validation, "objective": self.objective, "choices": list(self.choices)}


@dataclass(frozen=True)
class QuantizeOptions:
    plan: tuple[tuple[str, tuple[str, ...]], ...] = ()  # ((target, (scheme, ...)), ...)
    calibration: str | None = None
    calibration_samples: int = DEFAULT_CALIBRATION_SAMPLES
    int8_io: bool = False
    keep_float: KeepFloat = field(default_factory=KeepFloat)
    per_tensor: bool = False
    lut_group_size: int | None = None
    lut_budget: float = DEFAULT_LUT_BUDGET  # --lut-budget, percent
    lut_grouped: bool = False  # the Core ML target has per-group tables (iOS18 / macOS15)
    auto: AutoOptions | None = None  # --quantize auto's budget and validation samples
    bias_correction: bool = True  # --no-bias-correction turns it off (quantize/layerwise/bias_correction.py)

    def schemes(self, target: str) -> tuple[str, ...]:
        return dict(self.plan).get(target, ("fp32",))

    @property
    def needs_calibration(self) -> bool:
        return any(SCHEMES[s].needs_calibration for _, schemes in self.plan for s in schemes)


def parse_quantize(values, targets: tuple[str, ...], coreml_target: str | None = None) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The (target, schemes) plan for ``--quantize`` values (a string or a list of strings). With ``coreml_target``
    a scheme whose Core ML ops need a newer target is refused when asked of Core ML alone, else left out for it."""
    entries = []
    for value in ([values] if isinstance(values, str) else list(values or ())):
        entries += [e.strip().lower() for e in str(value).split(",") if e.strip()]
    plan = {target: ["fp32"] for target in targets}
    for entry in entries:
        target, _, name = entry.rpartition("=")
        if target and target not in targets:
            raise UsageError(f"--quantize {entry}: {target!r} is not a target of this conversion",
                             hint=f"targets here: {', '.join(targets)} (set them with --to)")
        name = _scheme_name(name)
        able = [t for t in ([target] if target else targets) if _can(t, name)]
        if not able:  # explicit target=scheme, or a bare scheme none of the targets can do
            _refuse(target or targets[0], name, several=len(targets) > 1 and not target)
        too_old = [t for t in able if _needs_newer_coreml(t, name, coreml_target)]
        if too_old and (target or len(able) == 1):
            _refuse_target(name, coreml_target)
        able = [t for t in able if t not in too_old]  # a bare scheme: the others make it (skipped_schemes says so)
        for t in able:
            if name not in plan[t]:
                plan[t].append(name)
    return tuple((t, tuple(s)) for t, s in plan.items())


def skipped_schemes(values, targets: tuple[str, ...], coreml_target: str | None = None) -> list[str]:
    """Bare schemes left out for a target that cannot do them (said once on the terminal)."""
    notes = []
    for value in ([values] if isinstance(values, str) else list(values or ())):
        for entry in (e.strip().lower() for e in str(value).split(",") if e.strip()):
            if "=" in entry or entry not in SCHEMES:
                continue
            for t in targets:
                if not _can(t, entry) and any(_can(o, entry) for o in targets):
                    why = UNAVAILABLE.get((t, entry), f"{t} has no {entry}")
                    notes.append(f"{entry}: not made for {t} ({why})")
                elif _needs_newer_coreml(t, entry, coreml_target) and any(_can(o, entry) for o in targets if o != t):
                    notes.append(f"{entry}: not made for {t} (needs --coreml-target iOS17 or later, got {coreml_target})")
    return notes


def _needs_newer_coreml(target: str, name: str, coreml_target: str | None) -> bool:
    """Core ML int8 (W8A8) writes quantize / dequantize ops, which exist from the iOS17 opset on."""
    from deploykit.quantize.coreml_w8a8 import MIN_TARGETS

    return target == "coreml" and name == "int8" and coreml_target is not None and coreml_target not in MIN_TARGETS


def _refuse_target(name: str, coreml_target: str | None) -> None:
    raise UsageError(f"Core ML {name} (8-bit activations) needs --coreml-target iOS17 or later (got {coreml_target}): "
                     "its quantize / dequantize ops exist from the iOS17 opset on",
                     hint="add --coreml-target iOS17 (or macOS14); --quantize coreml=int8-weights runs on earlier targets")


def _scheme_name(name: str) -> str:
    if name.startswith("sparse"):  # pruning: its names, spellings and refusal live in quantize/sparsity.py
        from deploykit.quantize.sparsity import parse

        return parse(name).name
    aliases = {"float16": "fp16", "int8w": "int8-weights", "int8-weight": "int8-weights", "float32": "fp32"}
    name = aliases.get(name, name)
    if name not in SCHEMES:
        raise UsageError(f"unknown quantization scheme {name!r}", hint=f"schemes: {', '.join(SCHEMES)}")
    return name


def _can(target: str, name: str) -> bool:
    return target in SCHEMES[name].targets


def _refuse(target: str, name: str, *, several: bool) -> None:
    if (target, name) in UNAVAILABLE:
        example = UNAVAILABLE_EXAMPLES.get((target, name), "")
        raise UsageError(f"{target} cannot do {name} here: {UNAVAILABLE[(target, name)]}",
                         hint=f"{target} can do: {', '.join(supported(target))}" + (f"; e.g. {example}" if example else ""))
    if several:
        raise UsageError(f"no target of this conversion can do {name}",
                         hint=f"{name} is made for: {', '.join(SCHEMES[name].targets) or 'none'}")
    others = ", ".join(SCHEMES[name].targets)
    raise UsageError(f"{target} cannot do {name}",
                     hint=f"{target} can do: {', '.join(supported(target))}" + (f" ({name} is for {others})" if others else ""))


def parse_keep_float(values) -> KeepFloat:
    """``first``, ``last``, ``small`` (or ``small=N`` elements) and layer names, comma-separated."""
    items = []
    for value in ([values] if isinstance(values, str) else list(values or ())):
        items += [v.strip() for v in str(value).split(",") if v.strip()]
    first = last = False
    small, names = None, []
    for item in items:
        key, _, arg = item.partition("=")
        if key == "first":
            first = True
        elif key == "last":
            last = True
        elif key == "first-last":
            first = last = True
        elif key == "small":
            try:
                small = int(arg) if arg else DEFAULT_SMALL_TENSOR
            except ValueError:
                raise UsageError(f"--keep-float {item}: the size must be a number of elements") from None
            if small < 0:
                raise UsageError(f"--keep-float {item}: the size must be positive")
        else:
            names.append(item)
    return KeepFloat(first, last, small, tuple(names))


def check_combinations(options: QuantizeOptions, coreml_target: str) -> None:
    """Flag combinations that cannot mean anything, before any conversion starts."""
    schemes = {s for _, names in options.plan for s in names}
    tflite = set(options.schemes("tflite"))
    if options.int8_io and "int8" not in tflite:
        raise UsageError("--int8-io applies to TFLite int8 only", hint="add --quantize tflite=int8")
    if options.needs_calibration and not options.calibration:
        calibrated = [s for s in SCHEMES if SCHEMES[s].needs_calibration and s in schemes]
        raise UsageError(f"{' and '.join(calibrated)} need{'s' if len(calibrated) == 1 else ''} calibration data: "
                         "--calibration FILE.npy / FILE.npz / IMAGE_FOLDER",
                         hint="100 representative inputs are enough; see docs/quantization.md")
    if options.calibration and not options.needs_calibration:
        raise UsageError("--calibration is only used by --quantize int8 and int16x8")
    if options.per_tensor and not schemes & {"int8-weights", "int8", "int16x8"}:
        raise UsageError("--per-tensor applies to int8-weights, int8 and int16x8")
    if options.lut_group_size is not None:
        if not any(s.startswith("lut") for s in schemes):
            raise UsageError("--lut-group-size applies to the lut schemes")
        if options.lut_group_size < 1:
            raise UsageError("--lut-group-size must be at least 1")
    if options.lut_budget != DEFAULT_LUT_BUDGET:
        if not any(s.startswith("lut") for s in schemes):
            raise UsageError("--lut-budget applies to the lut schemes")
        if options.lut_group_size is not None:
            raise UsageError("--lut-budget and --lut-group-size exclude each other",
                             hint="--lut-group-size N puts one table per N channels everywhere; the budget chooses per layer")
    if not 0 <= options.lut_budget <= 100:
        raise UsageError("--lut-budget is a percentage of the index bytes, from 0 to 100")
    if options.calibration_samples < 1:
        raise UsageError("--calibration-samples must be at least 1")
    _check_auto(options, schemes)
    if not options.bias_correction and not schemes - {"fp32", "fp16", "int16x8"}:
        raise UsageError("--no-bias-correction applies to the compressed schemes (int8-weights, int8, int4, lut*, sparse*, "
                         "auto)", hint="fp16 and int16x8 variants get no bias correction")
    coreml = set(options.schemes("coreml")) if "coreml" in dict(options.plan) else set()
    needs_ios18 = ("int4" in coreml) or (options.lut_group_size is not None and any(s.startswith("lut") for s in coreml))
    if needs_ios18 and coreml_target not in ("iOS18", "macOS15"):
        what = "int4 (per-block)" if "int4" in coreml else "per-grouped-channel LUTs"
        raise UsageError(f"Core ML {what} needs --coreml-target iOS18 or macOS15 (got {coreml_target})",
                         hint="add --coreml-target iOS18")
    joint = sorted(s for s in coreml if s.startswith("sparse") and "+" in s)  # pruning + lut4 / int8 (sparse_coreml.py)
    if joint and coreml_target not in ("iOS18", "macOS15"):
        raise UsageError(f"Core ML {joint[0]} needs --coreml-target iOS18 or macOS15 (got {coreml_target}): joint "
                         "compression writes constexpr_lut_to_sparse / constexpr_sparse_blockwise_shift_scale, which "
                         "exist from the iOS18 opset on",
                         hint="add --coreml-target iOS18; pruning alone (sparse50, sparse75, sparse90, sparse2of4) "
                              "runs from iOS16" + ("; or ask it of TFLite only: --quantize tflite=" + joint[0]
                                                   if joint[0].endswith("+int8") else ""))


def _check_auto(options: QuantizeOptions, schemes: set[str]) -> None:
    """``--quantize auto`` needs a budget, and its flags mean nothing without it."""
    auto = options.auto
    given = auto is not None and (auto.max_accuracy_drop is not None or auto.max_error is not None
                                  or auto.validation is not None or auto.choices)
    if "auto" not in schemes:
        if given:
            raise UsageError("--max-accuracy-drop, --max-error, --validation and --auto-choices apply to --quantize auto",
                             hint="add --quantize auto (e.g. --quantize auto --max-accuracy-drop 1 --validation val.npz)")
        return
    if auto is None:
        raise UsageError("--quantize auto needs a budget: --max-accuracy-drop POINTS or --max-error E",
                         hint="e.g. --quantize auto --max-accuracy-drop 1 --validation val.npz")
    auto.budget()  # raises on a missing, doubled or out-of-range budget
    if auto.max_accuracy_drop is not None and not (auto.validation or options.calibration):
        raise UsageError("--max-accuracy-drop is judged on real samples: give --validation FILE.npz (with a 'labels' "
                         "array for top-1, without it the fp32 model's decisions are the reference)",
                         hint="random inputs carry no accuracy; --max-error E works on them")
    from deploykit.quantize.layerwise.choices import CHOICES

    unknown = [c for c in auto.choices if c not in CHOICES]
    if unknown:
        raise UsageError(f"--auto-choices {unknown[0]!r} is not a per-layer choice", hint=f"choices: {', '.join(CHOICES)}")
