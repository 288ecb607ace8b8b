"""A fixed, documented ladder of attempts for one conversion path: the first artifact that converts
and passes parity is kept, and every attempt (its error or its parity) goes into the record.

A path module that has remedies defines ``rungs(source, options, workspace) -> list[Rung]``; a path
without it is one rung (its ``convert``). ``climb`` writes each candidate next to ``out_path``
(``<name>.attempt-N<suffix>``), checks it with ``workspace.check`` (the fp32 parity check the pipeline
installs, called as ``check(path, target, variant)``; None with ``--no-verify``, and then the first candidate that converts is kept), and renames
the winner to ``out_path``.

When no rung passes parity, the first candidate that converted is kept (the pipeline then reports
the parity failure, exit 1, with the artifact written for inspection). When no rung converts, the
first rung's error is raised (it is the default route, so its message is the one users can search
for) with a summary of every attempt appended, and ``attempts`` attached to the exception.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from deploykit.core.errors import ConversionError, DeployKitError, InputError, UsageError
from deploykit.core.types import Attempt


@dataclass(frozen=True)
class Rung:
    name: str  # e.g. "onnx2tf", "onnx2tf:auto-json"; stable, documented in docs/conversion.md
    converter: str  # the label recorded as the artifact's converter when this rung wins
    run: Callable[[Path], None]  # writes the candidate artifact at the given path
    why: str = ""  # one line: what this remedy changes


@dataclass(frozen=True)
class Climbed:
    path: Path
    converter: str
    attempts: tuple[Attempt, ...]
    parity: object = None  # the winner's ParityReport, so the pipeline need not run it again


def climb(rungs: list[Rung], out_path: Path, target: str, workspace, progress=None, variant: str = "fp32") -> Climbed:
    """``variant`` names the tolerance profile the candidates are checked with (the Core ML fp16 base
    that the fp16 and compressed variants derive from is checked as fp16)."""
    from deploykit.core.progress import NullProgress

    progress = progress or getattr(workspace, "progress", None) or NullProgress()
    check = getattr(workspace, "check", None)
    attempts: list[Attempt] = []
    fallback: tuple[Path, Rung, object] | None = None
    first_error: DeployKitError | None = None
    for index, rung in enumerate(rungs):
        candidate = out_path.with_name(f"{out_path.stem}.attempt-{index}{out_path.suffix}")
        started = time.perf_counter()
        try:
            with progress.step(f"attempt {index + 1}/{len(rungs)}: {rung.name}"):
                rung.run(candidate)
                report = check(candidate, target, variant) if check is not None else None
                if report is not None and not report:
                    raise _ParityFailed(report)
        except (UsageError, InputError):
            _remove(candidate)
            raise  # the user's input is at fault (e.g. --data that does not fit): no other rung can fix it
        except _ParityFailed as failed:
            attempts.append(Attempt(rung.name, rung.converter, _since(started), "parity-failed",
                                    parity=failed.report.to_summary()))
            if fallback is None:
                fallback = (candidate, rung, failed.report)
            else:
                _remove(candidate)
            continue
        except Exception as exc:  # an upstream crash in one rung must not stop the ladder
            if not isinstance(exc, DeployKitError):
                text = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
                exc = ConversionError(f"{rung.converter}: {type(exc).__name__}: {text}",
                                      hint="rerun with --verbose to see the converter's log")
            _remove(candidate)
            attempts.append(Attempt(rung.name, rung.converter, _since(started), "failed", error=exc.message))
            first_error = first_error or exc
            continue
        outcome = "kept" if report is not None else "converted"
        attempts.append(Attempt(rung.name, rung.converter, _since(started), outcome,
                                parity=report.to_summary() if report is not None else None))
        if fallback is not None:
            _remove(fallback[0])
        _replace(candidate, out_path)
        return Climbed(out_path, rung.converter, tuple(attempts), report)
    if fallback is not None:
        candidate, rung, report = fallback
        _replace(candidate, out_path)
        return Climbed(out_path, rung.converter, tuple(attempts), report)
    assert first_error is not None, "climb() needs at least one rung"
    summary = "; ".join(f"{a.name}: {a.error}" for a in attempts[1:])
    if summary:
        first_error.message = f"{first_error.message} (also tried {summary})"
        first_error.args = (first_error.message,)
    first_error.attempts = tuple(attempts)
    raise first_error


class _ParityFailed(Exception):
    def __init__(self, report):
        super().__init__("parity failed")
        self.report = report


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _replace(candidate: Path, out_path: Path) -> None:
    _remove(out_path)
    candidate.rename(out_path)


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 3)
