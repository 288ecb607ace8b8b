"""``shorten_names`` for Core ML: drop the model-name prefix the TensorFlow frontend repeats in every
op and value name of the ML Program (a MIL pass run inside ``coremltools.convert``).

Keras models convert through TensorFlow, whose names carry the model's scope:
``mobilenetv2_1_00_224_1_block_13_depthwise_BN_1_FusedBatchNormV3``. In an ML Program each name is
stored up to three times (op, output, every use); on MobileNetV2 the prefix alone is ~25 KB of the
7 MB fp16 package, enough to take it past 1.02x of 2 bytes per parameter.
"""

from __future__ import annotations

from collections import Counter

from deploykit.formats import coremltools_facade
from deploykit.passes.registry import PassResult, register_pass

MIL_NAME = "deploykit::shorten_names"
LAST_ITEMS: list[str] = []


@register_pass(
    "shorten_names",
    stage="coreml",
    needed_for={("keras", "coreml"), ("onnx", "coreml")},
    summary="Drop the model-name prefix repeated in every op and value name (Core ML).",
)
def shorten_names_coreml(pipeline, context=None) -> PassResult:
    """Drop the model-name prefix repeated in every op and value name (Core ML).

    Given:
        %mobilenetv2_1.00_224_1/block_1_expand_1/convolution = conv(...)   # sanitized to _ when saved
    Result:
        %block_1_expand_1/convolution = conv(...)

    The prefix is the longest TensorFlow scope (ending in ``/``, else in ``_``) that at least half of
    the names share; a name is
    left as is when the shortened name would be empty, start with a digit or collide. Model inputs
    and outputs keep their names. Runs with the TensorFlow-based frontends (Keras, and ONNX through
    onnx2tf's SavedModel); PyTorch names are short already.
    """
    install()
    pipeline.append_pass(MIL_NAME)
    return PassResult(pipeline)


def common_prefix(names: list[str]) -> str:
    """The longest scope prefix (ending in ``/``, else in ``_``) shared by at least half of ``names``,
    at least 6 characters, after which names do not start with a digit; '' when there is none."""
    wanted = len(names) / 2
    for separator in "/_":
        counts = Counter()
        for name in names:
            for i, char in enumerate(name):
                if char == separator and i >= 5 and i + 1 < len(name) and not name[i + 1].isdigit():
                    counts[name[:i + 1]] += 1
        shared = [p for p, n in counts.items() if n >= wanted]
        if shared:
            return max(shared, key=len)
    return ""


def install() -> None:
    """Register the MIL pass with coremltools (once per process)."""

    def rename(function):
        keep = {v.name for v in list(function.inputs.values()) + list(function.outputs)}
        ops = list(function.operations)
        names = [v.name for op in ops for v in op.outputs if v.name not in keep]
        prefix = common_prefix(names)
        if not prefix:
            return 0
        taken = set(names) | keep
        saved = 0
        for op in ops:
            for var in op.outputs:
                new = var.name[len(prefix):] if var.name.startswith(prefix) else None
                if var.name in keep or not new or new[0].isdigit() or new in taken:
                    continue
                taken.add(new)
                saved += len(prefix)
                if op.name == var.name:
                    op.name = new
                var.name = new
            if op.name.startswith(prefix) and op.name[len(prefix):] and not op.name[len(prefix)].isdigit():
                op.name = op.name[len(prefix):]
        LAST_ITEMS.append(f"prefix {prefix!r} dropped from {saved // max(len(prefix), 1)} names")
        return saved

    coremltools_facade.register_function_pass("deploykit", "shorten_names", rename)
