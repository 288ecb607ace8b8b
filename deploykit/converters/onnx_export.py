"""The ONNX route of the PyTorch and Keras paths: the source exported to ONNX, then the ONNX path's own ladder.

When a PyTorch or Keras converter lacks an op, the same model exported to ONNX meets other lowerings
(onnx2coreml, onnx2tf) with their own remedies. The route is one rung that, when the ladder reaches
it, exports the (pass-rewritten) source once per workspace and expands into the ONNX path's rungs,
named ``onnx:<rung>`` (``onnx:onnx2coreml``, ``onnx:onnx2tf:layout-fix`` ...). Every candidate is
checked against the original source, not the ONNX file.

Exporters: torch's dynamo exporter (``torch.onnx.export(dynamo=True)``, which needs ``onnxscript``)
for modules and programs, its TorchScript exporter for TorchScript sources; tf2onnx for Keras models
(``converters.keras_onnx``). The ONNX graph's inputs and outputs are renamed to the source's names,
so the artifact has the interface the other routes give.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from deploykit.converters.ladder import Rung
from deploykit.core.errors import ConversionError

WHY = {
    "torch": "torch.onnx's dynamo exporter (TorchScript exporter for TorchScript), then the ONNX ladder",
    "keras": "tf2onnx on the frozen graph, then the ONNX ladder",
}


def onnx_route(source, target: str, options, workspace) -> Rung:
    """The rung that exports ``source`` to ONNX when reached and expands into the ONNX -> ``target`` rungs."""

    def expand() -> list[Rung]:
        from deploykit.converters import PATHS

        exported = exported_source(source, workspace)
        # A Keras export is channels-last already: onnx2tf keeps its inputs as they are.
        hints = {"keep_input_shapes": True} if source.framework == "keras" and target == "tflite" else {}
        return importlib.import_module(PATHS[("onnx", target)]).rungs(exported, options, workspace, **hints)

    return Rung("onnx", exporter_label(source), why=WHY[source.framework], expand=expand)


def exporter_label(source) -> str:
    if source.framework == "keras":
        return "keras->onnx (tf2onnx)"
    if source.handle.get("torchscript"):
        return "torchscript->onnx (torch.onnx TorchScript exporter)"
    return "torch->onnx (torch.onnx dynamo exporter)"


EXPORTER_PACKAGES = {
    "keras->onnx": ("tf2onnx", "onnx"),
    "torch->onnx": ("onnxscript", "onnx"),
    "torchscript->onnx": ("onnx",),
}


def route_packages(converter: str, target: str) -> tuple[str, ...]:
    """The distributions an artifact made by the ONNX route adds to its path's: the exporter's and the ONNX path's."""
    from deploykit.converters import PATH_PACKAGES

    for prefix, packages in EXPORTER_PACKAGES.items():
        if converter.startswith(prefix):
            return packages + PATH_PACKAGES.get(("onnx", target), ())
    return ()


def exported_source(source, workspace):
    """``source`` exported to ONNX and loaded as an ONNX SourceModel, once per workspace (both targets share it)."""
    key = ("onnx-export", source.path, id(source.handle))
    if key not in workspace.products:
        from deploykit.loaders import onnx_loader

        path = workspace.root / f"{Path(source.path).stem or 'model'}.exported.onnx"
        try:
            if source.framework == "keras":
                from deploykit.converters.keras_onnx import export_keras

                export_keras(source, path)
            else:
                _export_torch(source, path)
            _rename_interface(path, source)
        except ConversionError:
            raise
        except Exception as exc:
            text = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise ConversionError(f"{exporter_label(source)}: export failed: {type(exc).__name__}: {text}",
                                  hint="rerun with --verbose to see the exporter's log") from exc
        given = {t.name: t.shape for t in source.inputs}
        workspace.products[key] = onnx_loader.load(str(path), given)
    return workspace.products[key]


def _export_torch(source, path: Path) -> None:
    import torch

    from deploykit.loaders.torch_loader import example_tensors

    module, examples = source.handle["module"], example_tensors(source.inputs)
    names = dict(input_names=[t.name for t in source.inputs], output_names=[t.name for t in source.outputs])
    if source.handle["torchscript"]:
        torch.onnx.export(module, examples, str(path), dynamo=False, opset_version=17, **names)
        return
    # opset 18 is the dynamo exporter's own default; onnx_prepare upgrades older graphs to 13+ anyway.
    program = torch.onnx.export(module, examples, dynamo=True, opset_version=18, optimize=True, **names)
    program.save(str(path))


def _rename_interface(path: Path, source) -> None:
    """Give the graph's inputs and outputs the source's names, in order (exporters name outputs after nodes)."""
    import onnx

    from deploykit.converters.onnx_names import renamed

    model = onnx.load(str(path))
    weights = {t.name for t in model.graph.initializer}
    inputs = [v.name for v in model.graph.input if v.name not in weights]
    outputs = [v.name for v in model.graph.output]
    if len(inputs) != len(source.inputs) or len(outputs) != len(source.outputs):
        raise ConversionError(f"{exporter_label(source)}: the ONNX graph has {len(inputs)} inputs and {len(outputs)} "
                              f"outputs, the source {len(source.inputs)} and {len(source.outputs)}")
    wanted = [t.name for t in source.inputs] + [t.name for t in source.outputs]
    mapping = {old: new for old, new in zip(inputs + outputs, wanted) if old != new}
    if mapping:
        onnx.save(renamed(model, mapping), str(path))
