"""A fixed, documented ladder of attempts for one conversion path: the first artifact that converts
and passes parity is kept, and every attempt (its error or its parity) goes into the record.

Every path is a ladder: its routes (``jit.trace``, ``torch.export``, ``onnx`` ...) and, inside a route, the
remedies of its converter. A rung either writes a candidate (``run``) or, when reached, expands into the
rungs of a route that needs work first (``expand``: the ONNX route exports the source to ONNX, then offers
the ONNX path's own ladder, its rungs named ``onnx:<rung>``); an expansion that fails is an attempt that
failed. ``--route NAME`` keeps only the rungs named NAME or ``NAME:...`` (``select``).

``climb`` writes each candidate next to ``out_path`` (``<name>.attempt-N<suffix>``), checks it with
``workspace.check`` (the fp32 parity check the pipeline installs, called as ``check(path, target,
variant)``; None with ``--no-verify``, and then the first candidate that converts is kept), and renames
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
    run: Callable[[Path], None] | None = None  # writes the candidate artifact at the given path
    why: str = ""  # one line: what this remedy changes
    expand: Callable[[], list["Rung"]] | None = None  # a route whose rungs are known once it is reached


def matches(name: str, wanted: str) -> bool:
    """A rung named ``onnx:onnx2coreml`` is on the routes ``onnx`` and ``onnx:onnx2coreml``."""
    return name == wanted or name.startswith(wanted + ":")


def on_route(rung: Rung, wanted: str | None) -> bool:
    """Whether ``rung`` is on route ``wanted``, or expands into rungs that may be."""
    if wanted is None or matches(rung.name, wanted):
        return True
    return rung.expand is not None and wanted.startswith(rung.name + ":")


def select(rungs: list[Rung], wanted: str | None, path_label: str) -> list[Rung]:
    """The rungs on route ``wanted`` (all of them for None); a name no rung has is the user's error."""
    if wanted is None:
        return rungs
    chosen = [r for r in rungs if on_route(r, wanted)]
    if not chosen:
        names = ", ".join(r.name + (":..." if r.expand is not None else "") for r in rungs)
        raise UsageError(f"--route {wanted}: {path_label} has no such route", hint=f"its routes are {names}")
    return chosen


@dataclass(frozen=True)
class Climbed:
    path: Path
    converter: str
    attempts: tuple[Attempt, ...]
    parity: object = None  # the winner's ParityReport, so the pipeline need not run it again


def climb(rungs: list[Rung], out_path: Path, target: str, workspace, progress=None, variant: str = "fp32",
          route: str | None = None, remember=None) -> Climbed:
    """``variant`` names the tolerance profile the candidates are checked with (the Core ML fp16 base
    that the fp16 and compressed variants derive from is checked as fp16). ``route``: keep only that
    route's rungs (``--route``; expanded rungs are filtered when they appear). ``remember``: a workspace
    key under which the winning rung's name is kept; a later climb with the same key takes that rung only,
    so every variant of one artifact comes from one route (an app's interface must not change between them).
    """
    from deploykit.core.progress import NullProgress

    progress = progress or getattr(workspace, "progress", None) or NullProgress()
    check = getattr(workspace, "check", None)
    products = getattr(workspace, "products", {})
    if remember is not None and remember in products:
        route = products[remember]
    attempts: list[Attempt] = []
    fallback: tuple[Path, Rung, object] | None = None
    first_error: DeployKitError | None = None
    queue = [r for r in rungs if on_route(r, route)]
    index = -1
    while queue:
        rung = queue.pop(0)
        index += 1
        started = time.perf_counter()
        if rung.expand is not None:
            try:
                with progress.step(f"preparing route {rung.name}"):
                    expanded = [_prefixed(r, rung) for r in rung.expand()]
            except (UsageError, InputError):
                raise
            except Exception as exc:  # the route cannot start (its export failed): the next route is tried
                exc = _as_conversion_error(exc, rung)
                attempts.append(Attempt(rung.name, rung.converter, _since(started), "failed", error=exc.message))
                first_error = first_error or exc
                continue
            queue = [r for r in expanded if on_route(r, route)] + queue
            continue
        candidate = out_path.with_name(f"{out_path.stem}.attempt-{index}{out_path.suffix}")
        try:
            with progress.step(f"attempt {index + 1}: {rung.name}"):
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
            exc = _as_conversion_error(exc, rung)
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
        _remember(products, remember, rung)
        return Climbed(out_path, rung.converter, tuple(attempts), report)
    if fallback is not None:
        candidate, rung, report = fallback
        _replace(candidate, out_path)
        _remember(products, remember, rung)
        return Climbed(out_path, rung.converter, tuple(attempts), report)
    assert first_error is not None, "climb() needs at least one rung"
    summary = "; ".join(f"{a.name}: {a.error}" for a in attempts[1:])
    if summary:
        first_error.message = f"{first_error.message} (also tried {summary})"
        first_error.args = (first_error.message,)
    first_error.attempts = tuple(attempts)
    raise first_error


def _prefixed(inner: Rung, route: Rung) -> Rung:
    """A rung of an expanded route, named and labelled as that route's (``onnx:onnx2coreml``)."""
    converter = f"{route.converter} + {inner.converter}" if route.converter else inner.converter
    return Rung(f"{route.name}:{inner.name}", converter, inner.run, inner.why, inner.expand)


def _remember(products, key, rung: Rung) -> None:
    if key is not None:
        products[key] = rung.name


def _as_conversion_error(exc: Exception, rung: Rung) -> DeployKitError:
    if isinstance(exc, DeployKitError):
        return exc
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
    return ConversionError(f"{rung.converter or rung.name}: {type(exc).__name__}: {text}",
                           hint="rerun with --verbose to see the converter's log")


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
