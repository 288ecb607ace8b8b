"""Make a converted Core ML package a classifier, as ``ct.convert(classifier_config=...)`` does.

coremltools appends a ``classify`` op to the program and describes its two outputs (``classLabel``, a
string, and ``classLabel_probs``, a dictionary from label to probability) as the model's predicted
feature and probabilities. Done here on the finished package of any conversion path (onnx2coreml has
no classifier option), with a ``softmax`` first when the output is logits. The program is converted
back with an empty pass pipeline so nothing else changes; the description is regenerated, so the
image inputs are declared again afterwards (``image_io.coreml_image``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from deploykit.core.errors import ConversionError
from deploykit.formats import coremltools_facade
from deploykit.labels.spec import PREDICTED_FEATURE, Classifier


def make_classifier(package: Path, classifier: Classifier, images=()) -> None:
    ct = coremltools_facade.package()
    mil_convert = coremltools_facade.mil_convert
    mb = coremltools_facade.mil_builder()
    AbstractGraphPass = coremltools_facade.graph_pass_base()
    _apply_graph_pass = coremltools_facade.apply_graph_pass
    from deploykit.core.names import feature_names

    (name,) = feature_names([classifier.output])

    class Probabilities(AbstractGraphPass):
        def apply(self, prog):
            block = prog.functions["main"]
            found = [var for var in block.outputs if var.name == name]
            if not found:
                raise ConversionError(f"Core ML program has no output {name!r} to make a classifier of")
            if classifier.softmax_added:
                with block:
                    probabilities = mb.softmax(x=found[0], axis=-1, name=f"{name}_probabilities")
                block.set_outputs([probabilities if var is found[0] else var for var in block.outputs])

    staged = package.with_name(f".classifier-{package.name}")  # coremltools saves only to a *.mlpackage path
    try:
        model = ct.models.MLModel(str(package), skip_model_load=True)
        spec = model.get_spec()
        program = _apply_graph_pass(model, Probabilities(), skip_model_load=True, return_pymil_prog=True)
        probabilities = f"{name}_probabilities" if classifier.softmax_added else name
        config = ct.ClassifierConfig(list(classifier.labels), predicted_feature_name=PREDICTED_FEATURE,
                                     predicted_probabilities_output=probabilities)
        made = mil_convert(program, convert_to="mlprogram", convert_from="milinternal",
                           specification_version=spec.specificationVersion, compute_units=model.compute_unit,
                           skip_model_load=True, pass_pipeline=ct.PassPipeline.EMPTY, classifier_config=config)
        made.save(str(staged))
    except ConversionError:
        raise
    except Exception as exc:
        shutil.rmtree(staged, ignore_errors=True)
        raise ConversionError(f"coremltools could not make the Core ML classifier: {str(exc).splitlines()[0][:300]}",
                              hint="rerun with --verbose to see its log") from exc
    if images:
        from deploykit.image_io.coreml_image import declare_image_inputs

        declare_image_inputs(staged, images)
    shutil.rmtree(package)
    staged.rename(package)


def label_metadata(package: Path, classifier: Classifier) -> None:
    """A detector's labels in the package's user-defined metadata (the program is unchanged): the keys the
    bundle writes too (``formats.coreml.metadata``), plus which output and axis the labels name."""
    import json

    from deploykit.core.names import feature_names
    from deploykit.formats.coreml.metadata import read_spec, spec_path

    spec = read_spec(package)
    (name,) = feature_names([classifier.output])
    user = spec.description.metadata.userDefined
    user["com.deploykit.labels"] = json.dumps(list(classifier.labels), ensure_ascii=False)
    user["com.deploykit.labels_output"] = json.dumps({"output": name, "axis": classifier.axis})
    for feature in spec.description.output:
        if feature.name == name:
            feature.shortDescription = (f"class scores along axis {classifier.axis}: {len(classifier.labels)} labels "
                                        "in com.deploykit.labels")
    spec_path(package).write_bytes(spec.SerializeToString(deterministic=True))
