"""The whole ``convert`` job, top to bottom: load, convert per target, inspect, publish atomically, report."""

from __future__ import annotations

import json
import time
from pathlib import Path

from deploykit import __version__
from deploykit.converters import SUFFIX, ConvertOptions, Workspace, check_coreml_target, parse_targets, path_for
from deploykit.errors import DeployKitError, ConversionError
from deploykit.fsutil import move_into_place, staging_directory, write_text_atomic
from deploykit.hashing import sha256_path, size_path
from deploykit.layouts import annotate
from deploykit.noise import capture_output
from deploykit.progress import NullProgress
from deploykit.tools import tool_versions
from deploykit.types import REPORT_FILENAME, Artifact, ConversionReport, SourceModel


def convert(
    source: str | Path,
    *,
    to: str | tuple[str, ...] = ("tflite", "coreml"),
    out: str | Path = "dist",
    inputs=None,
    weights: str | Path | None = None,
    allow_h5: bool = False,
    coreml_target: str = "iOS16",
    name: str | None = None,
    verbose: bool = False,
    progress=None,
) -> ConversionReport:
    """Convert ``source`` to every target in ``to`` and write the artifacts and ``deploykit-report.json`` to ``out``.

    Returns the same record as the JSON file. Nothing appears in ``out`` unless every target converted.
    """
    from deploykit.loaders import load_source

    started = time.perf_counter()
    targets = parse_targets(to)
    options = ConvertOptions(coreml_target=check_coreml_target(coreml_target))
    progress = progress or NullProgress()
    out_dir = Path(out)
    if out_dir.exists() and not out_dir.is_dir():
        from deploykit.errors import UsageError

        raise UsageError(f"--out {out_dir} exists and is not a directory")

    with progress.step(f"Loading {source}"), _quiet(verbose, "loading the model"):
        model = load_source(source, inputs=inputs, weights=weights, allow_h5=allow_h5)
    stem = _safe_stem(name or model.name)

    artifacts = []
    with staging_directory(out_dir) as staging:
        workspace = Workspace(root=staging / "work")
        workspace.root.mkdir()
        for target in targets:
            filename = f"{stem}.fp32{SUFFIX[target]}"
            with progress.step(f"Converting to {target}"):
                artifacts.append(_convert_one(model, target, staging / filename, options, workspace, verbose))
        with progress.step("Writing outputs"):
            for artifact in artifacts:
                move_into_place(staging / artifact.path, out_dir / artifact.path)
            report = ConversionReport(
                source=model.to_json(),
                artifacts=tuple(artifacts),
                tool_versions=tool_versions(model.framework, targets),
                deploykit_version=__version__,
                total_seconds=round(time.perf_counter() - started, 3),
            )
            write_text_atomic(out_dir / REPORT_FILENAME, json.dumps(report.to_json(), indent=2, sort_keys=True) + "\n")
    return report


def _convert_one(model: SourceModel, target: str, path: Path, options, workspace, verbose: bool) -> Artifact:
    convert_fn = path_for(model.framework, target)
    started = time.perf_counter()
    with _quiet(verbose, f"converting to {target}"):
        converted = convert_fn(model, path, options, workspace)
    seconds = time.perf_counter() - started
    inputs, outputs, ops = inspect_artifact(target, converted.path)
    inputs, input_notes = annotate(model.inputs, inputs)
    outputs, output_notes = annotate(model.outputs, outputs)
    return Artifact(
        target=target,
        variant="fp32",
        path=converted.path.name,
        size_bytes=size_path(converted.path),
        sha256=sha256_path(converted.path),
        inputs=inputs,
        outputs=outputs,
        converter=converted.converter,
        conversion_seconds=round(seconds, 3),
        op_histogram=ops,
        layout_changes=input_notes + output_notes,
        deployment_target=options.coreml_target if target == "coreml" else None,
    )


def inspect_artifact(target: str, path: Path):
    """(inputs, outputs, op histogram) of a written artifact, read back from the file itself."""
    if target == "tflite":
        from deploykit.converters import tflite_inspect

        interpreter = tflite_inspect.open_interpreter(str(path))
        ins, outs = tflite_inspect.signature(interpreter)
        return ins, outs, tflite_inspect.op_histogram(interpreter)
    from deploykit.converters import coreml_inspect

    spec = coreml_inspect.load_spec(path)
    ins, outs = coreml_inspect.signature(spec)
    return ins, outs, coreml_inspect.op_histogram(spec)


class _quiet:
    """Capture upstream noise; attach it to a deploykit error, or wrap any other crash as a ConversionError."""

    def __init__(self, verbose: bool, doing: str):
        self.verbose, self.doing = verbose, doing

    def __enter__(self):
        self._ctx = capture_output(enabled=not self.verbose)
        self.captured = self._ctx.__enter__()
        return self

    def __exit__(self, exc_type, exc, tb):
        self._ctx.__exit__(exc_type, exc, tb)
        if exc is None or isinstance(exc, KeyboardInterrupt):
            return False
        if isinstance(exc, DeployKitError):
            if isinstance(exc, ConversionError) and not exc.log:
                exc.log = self.captured.text
            return False
        error = ConversionError(f"upstream crash while {self.doing}: {type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}",
                                hint="rerun with --verbose to see the converter's log", log=self.captured.text)
        raise error from exc


def _safe_stem(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_" else "-" for c in name).strip("-.")
    return cleaned or "model"
