"""What every Core ML path shares: deployment targets, fp32 precision, meaningful feature names, saving."""

from __future__ import annotations

from pathlib import Path

from deploykit.errors import ConversionError, UnsupportedOperatorError


def deployment_target(name: str):
    import coremltools as ct

    return getattr(ct.target, name)


def tensor_types(inputs):
    import coremltools as ct
    import numpy as np

    from deploykit.names import feature_names

    return [ct.TensorType(name=name, shape=t.shape, dtype=np.dtype(t.dtype).type)
            for name, t in zip(feature_names(t.name for t in inputs), inputs)]


def output_types(outputs, named: bool):
    """Float outputs stay float32 in every variant: with fp16 compute and an iOS16+ target coremltools
    would make them float16, and an app's interface must not change between fp32 and fp16 artifacts.
    The TensorFlow frontend names outputs itself (``named=False``); PyTorch takes the source's names."""
    import coremltools as ct
    import numpy as np

    from deploykit.names import feature_names

    types = []
    for name, spec in zip(feature_names(s.name for s in outputs), outputs):
        dtype = np.float32 if str(spec.dtype).startswith("float") else None
        types.append(ct.TensorType(name=name, dtype=dtype) if named else ct.TensorType(dtype=dtype))
    return types


def run_ct_convert(model, *, label: str, options=None, **kwargs):
    """``coremltools.convert`` for an ML Program (fp32 unless ``options.coreml_precision`` is fp16,
    with ``options.coreml_pipeline`` when deploykit passes run), failures turned into deploykit errors."""
    import coremltools as ct

    precision = ct.precision.FLOAT16 if options is not None and options.coreml_precision == "fp16" else ct.precision.FLOAT32
    if options is not None and options.coreml_pipeline is not None:
        kwargs["pass_pipeline"] = options.coreml_pipeline
    try:
        return ct.convert(model, convert_to="mlprogram", compute_precision=precision, **kwargs)
    except NotImplementedError as exc:
        raise UnsupportedOperatorError(
            f"{label}: coremltools cannot convert an operator: {_first_line(exc)}",
            hint="replace the operator with a supported equivalent, or convert to tflite only",
        ) from exc
    except Exception as exc:
        text = _first_line(exc)
        if "not implemented" in text.lower() or "unsupported" in text.lower():
            raise UnsupportedOperatorError(f"{label}: {text}", hint="convert to tflite only, or replace the operator") from exc
        raise ConversionError(f"{label}: coremltools failed: {text}", hint="rerun with --verbose to see the converter's log") from exc


def rename_and_save(mlmodel, out_path: Path, input_names: list[str], output_names: list[str]) -> None:
    """Give features the source model's names (converters produce names like ``Identity`` or ``var_412``),
    made identifier-safe (``deploykit.names``): Core ML refuses ``sigmoid_0.tmp_0``."""
    import coremltools as ct

    from deploykit.names import feature_names

    input_names, output_names = feature_names(input_names), feature_names(output_names)
    spec = mlmodel.get_spec()
    renames = []
    for feature, wanted in zip(spec.description.input, input_names):
        if feature.name != wanted:
            renames.append((feature.name, wanted, True))
    for feature, wanted in zip(spec.description.output, output_names):
        if feature.name != wanted:
            renames.append((feature.name, wanted, False))
    if renames:
        for old, new, is_input in renames:
            ct.utils.rename_feature(spec, old, new, rename_inputs=is_input, rename_outputs=not is_input)
        mlmodel = ct.models.MLModel(spec, weights_dir=mlmodel.weights_dir, skip_model_load=True)
    mlmodel.save(str(out_path))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:400]
