"""``--input NAME=1x3x224x224`` parsing and resolution of dynamic dimensions against a model's inputs."""

from __future__ import annotations

import re

from deploykit.core.errors import UsageError
from deploykit.core.flexible import FlexibleShape
from deploykit.core.types import TensorSpec

_NAME_AND_DTYPE = re.compile(r"^(?:(?P<name>[^=]+)=)?(?P<dims>.+?)(?::(?P<dtype>[a-z0-9]+))?$")
DTYPES = ("float32", "float16", "int32", "int64", "uint8", "int8", "bool")


def parse_input_specs(values: list[str]) -> dict[str | None, tuple]:
    """``["image=1x3x224x224", "mask=1x224:int64"]`` -> ``{"image": (1, 3, 224, 224), ...}``.

    A dtype suffix is kept as the last tuple element when given (``(1, 224, "int64")``). Flexible
    sizes (``image=1x3x[224,320]x[224,320]``, ``image=(1..8)x3x224x224``) give a one-element tuple
    holding a ``deploykit.core.flexible.FlexibleShape`` (then the dtype, if any).
    """
    from deploykit.core.flexible import parse_dims

    specs: dict[str | None, tuple] = {}
    for raw in values:
        match = _NAME_AND_DTYPE.match(raw.strip())
        if not match:
            raise UsageError(f"bad --input {raw!r}", hint="write NAME=1x3x224x224 (the name may be left out for a single input)")
        dims = parse_dims(raw, match["dims"])
        dtype = match["dtype"]
        if dtype and dtype not in DTYPES:
            raise UsageError(f"bad --input {raw!r}: unknown dtype {dtype!r}", hint=f"one of {', '.join(DTYPES)}")
        name = match["name"]
        if name in specs:
            raise UsageError(f"--input given twice for {name or 'the model input'}")
        specs[name] = (dims if isinstance(dims, tuple) else (dims,)) + ((dtype,) if dtype else ())
    if None in specs and len(specs) > 1:
        raise UsageError("--input without a name is only allowed for a single-input model")
    return specs


def resolve_inputs(declared: list[TensorSpec], given: dict[str | None, tuple], *, framework: str) -> tuple[TensorSpec, ...]:
    """Fill the model's declared inputs with the user's shapes. Static dims must agree with the model."""
    given = dict(given)
    if None in given:
        if len(declared) != 1:
            names = ", ".join(t.name for t in declared)
            raise UsageError(f"the model has {len(declared)} inputs ({names}): name each one, e.g. --input {declared[0].name}=...")
        given = {declared[0].name: given.pop(None)}
    unknown = set(given) - {t.name for t in declared}
    if unknown:
        names = ", ".join(t.name for t in declared)
        raise UsageError(f"--input names {', '.join(sorted(unknown))} are not inputs of the model", hint=f"its inputs are: {names}")
    resolved = []
    for spec in declared:
        value = given.get(spec.name)
        dtype, flexible = spec.dtype, None
        if value is None:
            # A dynamic leading batch dimension defaults to 1: apps run one sample at a time, and every
            # Keras model declares its batch as None. Any other dynamic dimension must be given.
            shape = spec.shape
            if shape and not _is_static(shape[0]) and all(_is_static(d) for d in shape[1:]):
                shape = (1,) + tuple(shape[1:])
        else:
            if isinstance(value[-1], str):
                value, dtype = value[:-1], value[-1]
            flexible = value[0] if len(value) == 1 and isinstance(value[0], FlexibleShape) else None
            shape = flexible.default if flexible else tuple(value)
            if spec.shape and len(spec.shape) != len(shape):
                raise UsageError(
                    f"--input {spec.name}: the model's input has rank {len(spec.shape)} "
                    f"(shape {_fmt(spec.shape)}), got {len(shape)} dimensions"
                )
            for axis, (want, got) in enumerate(zip(spec.shape, shape)):
                if isinstance(want, int) and want > 0 and want != got:
                    raise UsageError(f"--input {spec.name}: the model fixes shape {_fmt(spec.shape)}, got {_fmt(shape)}")
                if flexible and _is_static(want) and flexible.dim_bounds[axis] != (want, want):
                    raise UsageError(f"--input {spec.name}: the model fixes dimension {axis} to {want} "
                                     f"(shape {_fmt(spec.shape)}); only its dynamic dimensions can be flexible",
                                     hint="export the model with that dimension dynamic (torch.export's dynamic_shapes, "
                                          "a Keras Input with None, an ONNX dim_param)")
        if not shape or not all(isinstance(d, int) and d > 0 for d in shape):
            raise UsageError(
                f"input {spec.name!r} has dynamic or unknown shape {_fmt(shape)}",
                hint=f"fix it with --input {spec.name}=" + ("1x3x224x224" if framework != "keras" else "1x224x224x3"),
            )
        resolved.append(TensorSpec(spec.name, shape, dtype, default_layout(shape, framework),
                                   flexible=flexible.to_json() if value is not None and flexible else None))
    return tuple(resolved)


def _is_static(dim) -> bool:
    return isinstance(dim, int) and dim > 0


def default_layout(shape: tuple, framework: str) -> str | None:
    if len(shape) != 4:
        return None
    return "NHWC" if framework == "keras" else "NCHW"


def _fmt(shape: tuple) -> str:
    return "x".join("?" if d is None or (isinstance(d, int) and d < 0) else str(d) for d in shape) or "()"
