"""PyTorch sources: ``.pt2`` (torch.export), TorchScript, and Python entry points with optional weights.

Security: ``torch.export.load`` itself unpickles some payloads with ``weights_only=False`` and
``pickle.loads``; ``_check_pt2_payloads`` refuses a ``.pt2`` whose pickled payloads are not plain
tensors before torch touches it, and loading runs with ``torch.load`` forced to ``weights_only=True``.
State dicts are always read with ``weights_only=True``. An entry point runs the user's own code:
that is the user's explicit choice of what to trust.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import io
import json
import sys
import zipfile
from pathlib import Path

from deploykit.core.errors import InputError, UnsafeInputError, UsageError
from deploykit.core.hashing import sha256_file
from deploykit.core.types import SourceModel, TensorSpec
from deploykit.loaders.detect import split_entrypoint
from deploykit.loaders.shapes import resolve_inputs


def load(source: str, fmt: str, given: dict, *, weights=None) -> SourceModel:
    import torch

    if fmt == "pt2":
        module, declared = _load_pt2(source)
        digest, name = sha256_file(source), Path(source).stem
    elif fmt == "torchscript":
        module, declared = _load_torchscript(source)
        digest, name = sha256_file(source), Path(source).name.split(".")[0]
    else:
        module, declared, digest, name = _load_entrypoint(source, weights)
    inputs = resolve_inputs(declared, given, framework="torch")
    outputs = _trace_outputs(module, inputs, source)
    handle = {"module": module, "torchscript": isinstance(module, torch.jit.ScriptModule)}
    return SourceModel("torch", fmt, source, digest, name, inputs, outputs, handle=handle)


def example_tensors(inputs: tuple[TensorSpec, ...], seed: int = 0) -> tuple:
    import torch

    gen = torch.Generator().manual_seed(seed)
    tensors = []
    for spec in inputs:
        dtype = getattr(torch, spec.dtype)
        if dtype.is_floating_point:
            tensors.append(torch.rand(spec.shape, generator=gen, dtype=torch.float32).to(dtype))
        else:
            tensors.append(torch.zeros(spec.shape, dtype=dtype))
    return tuple(tensors)


def _trace_outputs(module, inputs, source: str) -> tuple[TensorSpec, ...]:
    """Run the model once to learn its outputs: PyTorch modules do not declare them."""
    import torch

    try:
        with torch.no_grad():
            result = module(*example_tensors(inputs))
    except Exception as exc:
        shapes = ", ".join(f"{t.name}={'x'.join(map(str, t.shape))}" for t in inputs)
        raise InputError(f"{source} failed on inputs of shape {shapes}: {str(exc).splitlines()[0][:300]}",
                         hint="check --input matches what the model expects") from exc
    flat = _flatten_outputs(result)
    names = ["output"] if len(flat) == 1 else [f"output_{i}" for i in range(len(flat))]
    return tuple(
        TensorSpec(n, tuple(t.shape), str(t.dtype).removeprefix("torch."), "NCHW" if t.dim() == 4 else None)
        for n, t in zip(names, flat)
    )


def _flatten_outputs(result) -> list:
    import torch

    if isinstance(result, torch.Tensor):
        return [result]
    if isinstance(result, (list, tuple)) and all(isinstance(t, torch.Tensor) for t in result):
        return list(result)
    raise InputError(f"the model returns {type(result).__name__}; deploykit converts models that return a tensor or a tuple of tensors")


def _load_pt2(path: str):
    import torch

    _check_pt2_payloads(path)
    try:
        with _weights_only_torch_load():
            program = torch.export.load(path)
    except UnsafeInputError:
        raise
    except Exception as exc:
        raise InputError(f"cannot load {path} as a torch.export program: {str(exc).splitlines()[0][:300]}") from exc
    declared = []
    user_inputs = list(program.graph_signature.user_inputs)
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in user_inputs:
            val = node.meta.get("val")
            shape = tuple(int(d) if isinstance(d, int) else None for d in val.shape) if val is not None else ()
            dtype = str(val.dtype).removeprefix("torch.") if val is not None else "float32"
            declared.append(TensorSpec(node.name, shape, dtype))
    return program.module(), declared


def _check_pt2_payloads(path: str) -> None:
    """Refuse a .pt2 whose pickled payloads are anything but tensors, before torch.export.load unpickles them."""
    import torch

    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        for config_name in [n for n in names if n.endswith("_config.json") and "/data/" in n]:
            config = _json_object(archive, config_name, path).get("config", {})
            folder = config_name.rsplit("/", 1)[0]
            if not isinstance(config, dict) or not all(isinstance(m, dict) for m in config.values()):
                raise InputError(f"{path} is not a valid torch.export archive: {config_name} is not a table of payloads")
            for fqn, meta in config.items():
                path_name = str(meta.get("path_name", ""))
                if path_name.startswith(("custom_obj", "opaque_obj")):
                    raise UnsafeInputError(f"{path} holds a pickled Python object ({fqn}); deploykit never unpickles those")
                if meta.get("use_pickle"):
                    _require_tensor_pickle(archive, f"{folder}/{path_name}", path)
        for name in names:
            if name.endswith(".pt") or name.endswith(".pkl"):
                _require_tensor_pickle(archive, name, path)
    del torch


def _json_object(archive: zipfile.ZipFile, member: str, path: str) -> dict:
    try:
        value = json.loads(archive.read(member))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not a valid torch.export archive: {member} is not JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise InputError(f"{path} is not a valid torch.export archive: {member} is not a JSON object")
    return value


def _require_tensor_pickle(archive: zipfile.ZipFile, member: str, path: str) -> None:
    import pickle

    import torch

    try:
        torch.load(io.BytesIO(archive.read(member)), weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError, KeyError) as exc:
        raise UnsafeInputError(
            f"{path} contains a pickle ({member}) that is not plain tensors; deploykit never unpickles arbitrary objects",
            hint="re-export the model with torch.export.save from a trusted environment",
        ) from exc
    except Exception as exc:  # EOFError, ValueError, ...: not a pickle at all, refused just the same
        raise InputError(f"{path} is not a valid torch.export archive: {member} cannot be read "
                         f"({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})") from exc


@contextlib.contextmanager
def _weights_only_torch_load():
    """Belt and braces: any torch.load during loading is forced to weights_only=True."""
    import torch

    original = torch.load

    def safe_load(*args, **kwargs):
        kwargs["weights_only"] = True
        return original(*args, **kwargs)

    torch.load = safe_load
    try:
        yield
    finally:
        torch.load = original


def _load_torchscript(path: str):
    """TorchScript archives hold TorchScript code run by the TorchScript interpreter, not Python pickles."""
    import torch

    try:
        module = torch.jit.load(path, map_location="cpu").eval()
    except Exception as exc:
        raise InputError(f"cannot load TorchScript {path}: {str(exc).splitlines()[0][:300]}") from exc
    args = [a for a in module.forward.schema.arguments if a.name != "self"]
    return module, [TensorSpec(a.name, (), "float32") for a in args]


def _load_entrypoint(source: str, weights):
    import torch

    target, factory_name = split_entrypoint(source)
    module_obj = _import_target(target)
    factory = getattr(module_obj, factory_name, None)
    if factory is None or not callable(factory):
        raise InputError(f"{target} has no callable {factory_name!r}")
    try:
        model = factory()
    except Exception as exc:
        raise InputError(f"{source}() raised {type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}") from exc
    if not isinstance(model, torch.nn.Module):
        raise InputError(f"{source}() returned {type(model).__name__}, not a torch.nn.Module")
    digest = sha256_file(target) if target.endswith(".py") else ""
    if weights is not None:
        _load_weights(model, Path(weights))
        digest = sha256_file(weights)
    model.eval()
    params = [p for p in inspect.signature(model.forward).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    declared = [TensorSpec(p.name, (), "float32") for p in params]
    name = Path(target).stem if target.endswith(".py") else target.rsplit(".", 1)[-1]
    return model, declared, digest, name


def _import_target(target: str):
    try:
        if target.endswith(".py"):
            path = Path(target).resolve()
            spec = importlib.util.spec_from_file_location(f"deploykit_entry_{path.stem}", path)
            module = importlib.util.module_from_spec(spec)
            sys.path.insert(0, str(path.parent))
            try:
                spec.loader.exec_module(module)
            finally:
                sys.path.remove(str(path.parent))
            return module
        return importlib.import_module(target)
    except ImportError as exc:
        raise InputError(f"cannot import {target}: {exc}") from exc
    except Exception as exc:
        raise InputError(f"importing {target} raised {type(exc).__name__}: {exc}") from exc


def _load_weights(model, path: Path) -> None:
    import pickle

    import torch

    if not path.is_file():
        raise InputError(f"weights file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UnsafeInputError(
            f"{path} is not a plain state dict (it pickles Python objects); deploykit loads weights with weights_only=True",
            hint="save only the weights: torch.save(model.state_dict(), 'weights.pth')",
        ) from exc
    except Exception as exc:
        raise InputError(f"cannot read weights {path}: {str(exc).splitlines()[0][:300]}") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise InputError(f"{path} holds a {type(state).__name__}, not a state dict")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise UsageError(f"weights {path.name} do not fit the model: {str(exc).splitlines()[0][:300]}",
                         hint="check the entry point builds the same architecture the weights came from") from exc


def traced_module(model, label: str, hint: str):
    """A loaded PyTorch source as TorchScript: ``torch.jit.trace`` on its example inputs (a TorchScript source as it
    is). What the jit.trace routes of the Core ML and NCNN paths convert; a failing trace is that route's
    ConversionError (``hint``: the route to try instead)."""
    import warnings

    import torch

    from deploykit.core.errors import ConversionError

    module = model.handle["module"]
    if model.handle["torchscript"]:
        return module
    examples = example_tensors(model.inputs)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            return torch.jit.trace(module, examples if len(examples) > 1 else examples[0])
    except Exception as exc:
        raise ConversionError(f"{label}: torch.jit.trace failed: {str(exc).splitlines()[0][:300]}", hint=hint) from exc
