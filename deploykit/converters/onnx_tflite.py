"""ONNX -> TFLite with onnx2tf (onnx-tf no longer imports with current onnx), as a ladder of attempts.

``rungs`` gives plain onnx2tf on the prepared graph (``onnx_prepare``: input shapes fixed, opset
>= 13, onnxsim), then one rung per applicable remedy of ``onnx2tf_remedies`` (pseudo-ops and 3-D
pools split into 2-D ones for Flex ops, Tile as Concat, the layout fix for shape mismatches, the
constant-operand rewrite, keeping odd-rank input shapes, ...), each keeping the remedies below it.
``deploykit.converters.ladder.climb`` keeps the first candidate that passes parity. docs/conversion.md,
"ONNX -> TFLite: the remedy ladder", explains each rung and the measurements behind the order.

Every candidate is checked for Select-TF (Flex) ops: one that needs them fails its rung with
UnsupportedOperatorError unless ``options.allow_flex`` (--allow-flex). onnx2tf turns NCHW inputs
into NHWC: the artifact's layout is recorded and the parity checks transpose.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import replace
from pathlib import Path

from deploykit.converters import Converted, route_for
from deploykit.converters.ladder import Rung, climb, select
from deploykit.converters.onnx2tf_facade import named_tflite, run_onnx2tf_isolated
from deploykit.core.errors import ConversionError, DeployKitError
from deploykit.core.flexible import has_flexible, refuse
from deploykit.formats.tflite.flex import flex_ops, refuse_flex

LABEL = "onnx->tflite (onnx2tf)"
RUN_TIMEOUT = 900.0  # seconds per onnx2tf run; a child process is stopped after that
RUNG_BUDGET = 1800.0  # seconds per rung, across the layout fix's re-runs


def convert(source, out_path: Path, options, workspace) -> Converted:
    """Climb the ladder; the pipeline installs ``workspace.check`` (fp32 parity) and ``progress``."""
    if has_flexible(source.inputs):
        raise refuse(source, "onnx->tflite (onnx2tf)", "onnx2tf's layout rewrites need every dimension known")
    return climb_tflite(rungs(source, options, workspace), out_path, options, workspace, "ONNX -> TFLite")


def climb_tflite(ladder: list[Rung], out_path: Path, options, workspace, path_label: str) -> Converted:
    """The TFLite climb every path shares: ``--route``, Flex candidates left unchecked when allowed (FlexAware),
    and the kept artifact's Flex ops in its notes."""
    route = route_for(options, "tflite")
    climbed = climb(select(ladder, route, path_label), out_path, "tflite", FlexAware(workspace, options.allow_flex),
                    route=route)
    return Converted(climbed.path, climbed.converter, notes=flex_notes(climbed.path),
                     attempts=climbed.attempts, parity=climbed.parity)


class FlexAware:
    """The workspace as climb sees it: its parity check leaves allowed Flex candidates unchecked
    (stock LiteRT, which runs the check, cannot load them)."""

    def __init__(self, workspace, allow_flex: bool):
        self._workspace = workspace
        self.check = flex_aware_check(getattr(workspace, "check", None), allow_flex)

    def __getattr__(self, name):
        return getattr(self._workspace, name)


def flex_notes(path: Path) -> tuple[str, ...]:
    ops = flex_ops(path)
    if not ops:
        return ()
    return (f"needs Select-TF ops {', '.join(ops)} (kept with --allow-flex); stock LiteRT cannot run it, "
            "so its parity was not checked",)


def rungs(source, options, workspace, keep_input_shapes: bool = False) -> list[Rung]:
    """``keep_input_shapes``: the graph's inputs are already in the layout the artifact should take (an ONNX
    export of a channels-last Keras model), so onnx2tf keeps every input shape instead of guessing NCHW."""
    from deploykit.converters.onnx2tf_remedies import GraphFacts, Settings, ladder
    from deploykit.converters.onnx_prepare import prepared

    ready = prepared(source, workspace)
    facts = GraphFacts.of(ready.model)
    base = Settings(params={"keep_shape_absolutely_input_names": [t.name for t in source.inputs]}) \
        if keep_input_shapes else Settings()
    plan = ladder(facts, base)
    tried = _flex_remedy_text(plan)
    result = []
    for index, (name, why, settings) in enumerate(plan):
        adds_layout_fix = settings.layout_fix and not (index and plan[index - 1][2].layout_fix)
        folder = workspace.root / f"onnx2tf-ladder-{ready.path.parent.name}-{index}"
        run = _runner(source, ready.path, settings, adds_layout_fix, name, folder, options, workspace, tried)
        result.append(Rung(name, _label([n for n, _, _ in plan[1:index + 1]]), run, why))
    return result


def _label(remedies: list[str]) -> str:
    """The converter label of a rung: ``onnx->tflite (onnx2tf, layout-fix, constant-lhs)``."""
    return LABEL if not remedies else f"onnx->tflite (onnx2tf, {', '.join(r.split(':', 1)[1] for r in remedies)})"


def _runner(source, prepared_path: Path, settings, adds_layout_fix: bool, name: str, folder: Path, options, workspace,
            tried: str):
    def run(candidate: Path) -> None:
        shutil.rmtree(folder, ignore_errors=True)
        out = _convert(source, prepared_path, settings, folder, workspace, adds_layout_fix)
        workspace.products[("onnx2tf-ladder", source.path, name)] = out  # the SavedModel, for the Core ML path
        candidate.write_bytes(named_tflite(out, source))
        refuse_flex(candidate, options.allow_flex, LABEL, tried)

    return run


def _convert(source, prepared_path: Path, settings, folder: Path, workspace, adds_layout_fix: bool = False) -> Path:
    """onnx2tf on a private copy of the prepared model with ``settings``; its output folder.

    ``adds_layout_fix``: this rung is the one that adds the layout fix, so a graph that converts
    without a shape mismatch gives it nothing to do (the rung below made that very candidate)."""
    import onnx

    from deploykit.converters.onnx2tf_remedies import MAX_LAYOUT_FIXES, layout_fixes, write_replacements
    from deploykit.passes.onnx_rewrites import apply_rewrites

    started = time.perf_counter()
    copy = folder / "model" / "model.onnx"
    copy.parent.mkdir(parents=True)
    _copy_model(prepared_path, copy)
    apply_rewrites(copy, settings.rewrites)
    plain = replace(settings, layout_fix=False)
    key = f"{prepared_path}|{plain.key()}"
    if not settings.layout_fix:
        return _run_cached(copy, source, folder / "run", plain.params, key, workspace)
    # The layout fix: the rung below ran these settings without it (the run is reused); each stop on
    # a shape mismatch adds the transposes read from the error to a replacement JSON, and reruns.
    model = onnx.load(str(copy), load_external_data=False)
    operations: list[dict] = []
    for attempt in range(MAX_LAYOUT_FIXES + 1):
        params = dict(plain.params)
        if operations:
            params["param_replacement_file"] = str(write_replacements(folder / f"layout-fix-{attempt}.json", operations))
        try:
            out = _run_cached(copy, source, folder / f"run-{attempt}", params,
                              f"{key}|{operations!r}" if operations else key, workspace)
        except DeployKitError as exc:
            fixes = [f for f in layout_fixes(exc, model) if f not in operations]
            if not fixes:
                if operations:
                    raise _annotated(exc, f"after the layout fix transposed {_listed(operations)}")
                if adds_layout_fix:
                    raise _annotated(exc, "the layout fix found no input to transpose in this error")
                raise
            if attempt == MAX_LAYOUT_FIXES or time.perf_counter() - started > RUNG_BUDGET:
                raise _annotated(exc, f"the layout fix stopped after {len(operations)} transposes") from None
            operations += fixes
            continue
        if not operations and adds_layout_fix:
            raise ConversionError("onnx2tf converted this graph without a shape mismatch: the layout fix has "
                                  "nothing to transpose")
        return out
    raise AssertionError("unreachable")


def _annotated(error: DeployKitError, note: str) -> DeployKitError:
    error.message = f"{error.message} ({note})"
    error.args = (error.message,)
    return error


def _listed(operations: list[dict]) -> str:
    return ", ".join(f"{o['param_name']} of {o['op_name']} by {o['pre_process_transpose_perm']}" for o in operations)


def _run_cached(copy: Path, source, folder: Path, params: dict, key: str, workspace) -> Path:
    """One onnx2tf run per (prepared graph, settings) in a workspace: the layout fix's first run is the
    run the rung below it made, and its outcome is reused."""
    cache = workspace.products.setdefault("onnx2tf-runs", {})
    outcome = cache.get(key)
    if isinstance(outcome, DeployKitError):
        raise _copy_error(outcome)
    if outcome is not None and (outcome / "saved_model.pb").is_file():
        return outcome
    try:
        out = run_onnx2tf_isolated(copy, source.inputs, folder, params, timeout=RUN_TIMEOUT)
    except DeployKitError as exc:
        cache[key] = exc
        raise
    cache[key] = out
    return out


def _copy_error(error: DeployKitError) -> DeployKitError:
    copy = type(error)(error.message, hint=error.hint)
    copy.detail, copy.onnx_op_name = getattr(error, "detail", ""), getattr(error, "onnx_op_name", None)
    return copy


def _copy_model(prepared_path: Path, copy: Path) -> None:
    shutil.copyfile(prepared_path, copy)
    data = prepared_path.with_name("model.onnx.data")
    if data.is_file():
        shutil.copyfile(data, copy.with_name("model.onnx.data"))


def _flex_remedy_text(plan) -> str:
    """What the ladder tries against Flex ops, for the refusal's message: the first rung adding each remedy."""
    tried = {}
    for name, _, settings in plan:
        ops = settings.params.get("replace_to_pseudo_operators")
        if ops and "pseudo" not in tried:
            tried["pseudo"] = f"onnx2tf's pseudo-op formulas for {', '.join(ops)} (rung {name})"
        if "max_pool3d_as_2d" in settings.rewrites and "pool3d" not in tried:
            tried["pool3d"] = f"3-D pools split into 2-D ones (rung {name})"
    return " and ".join(tried.values())


def flex_aware_check(check, allow: bool):
    """Wrap a ladder's parity check (``Workspace.check``): with ``allow`` (--allow-flex), a candidate
    that needs Flex ops is kept unchecked (the check returns None), since stock LiteRT, which runs
    the parity check, cannot load it. Without ``allow`` such a candidate never reaches the check:
    :func:`refuse_flex` fails its rung first."""
    if check is None or not allow:
        return check

    def checked(path, target, *args, **kwargs):
        if flex_ops(path):  # every candidate of this path is a .tflite
            return None
        return check(path, target, *args, **kwargs)

    return checked
