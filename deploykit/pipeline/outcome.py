"""How a convert job ends when something failed: the record's ``failures`` entries, the error raised once the
artifacts that did convert are written, and the parity error that names every drifting output."""

from __future__ import annotations

from pathlib import Path

from deploykit.core.errors import ParityError, describe
from deploykit.core.types import REPORT_FILENAME


def failure(target: str, scheme: str, exc) -> dict:
    """What the record says about an artifact that could not be made."""
    code, heading, message, hint = describe(exc)
    entry = {"target": target, "variant": scheme, "error": heading, "message": message, "exit_code": code}
    if hint:
        entry["hint"] = hint
    attempts = getattr(exc, "attempts", ())
    if attempts:
        entry["attempts"] = [a.to_json() for a in attempts]
    return entry


def after_partial(exc, failures, out_dir: Path):
    """The first conversion failure, once the artifacts that did convert are written."""
    failed = ", ".join(f"{f['target']} {f['variant']}" for f in failures)
    written = f"the other artifacts and {REPORT_FILENAME} were written to {out_dir}"
    exc.hint = f"{exc.hint}; {written}" if exc.hint else written
    if len(failures) > 1:
        exc.message = f"{exc.message} (failed: {failed})"
        exc.args = (exc.message,)
    return exc


def unchecked_flex(artifact) -> dict:
    """The parity entry of a TFLite artifact kept with --allow-flex: no stock runtime here can run it."""
    ops = ", ".join(artifact.select_tf_ops)
    return {"passed": None, "skipped": f"needs Select-TF ops ({ops}); stock LiteRT cannot run it, so it was not "
                                      "compared with the source (--allow-flex)"}


def raise_on_parity_failure(parity_reports, record=None, strict: bool = False) -> None:
    """ParityError naming every drifting output of every failed report; it carries the written ``record``.

    An inconclusive report (``ParityReport.status``: no output failed, and some had only inputs where the
    source's own noise swamps the comparison) is not a failure, except with ``strict`` (--strict-parity)."""
    failed = [r for r in parity_reports if r.status == "failed"]
    inconclusive = [r for r in parity_reports if r.status == "inconclusive"]
    if not failed and not (strict and inconclusive):
        return
    from deploykit.pipeline.verify_sizes import at_size

    lines = []
    for r in failed + (inconclusive if strict else []):
        detail = r.problem or "; ".join(_describe_failure(o) for o in r.failures)
        lines.append(f"{Path(r.artifact).name}{at_size(r)} ({r.profile}): {detail}")
    if not failed:
        raise ParityError("parity is inconclusive (--strict-parity): " + " | ".join(lines), hint=INCONCLUSIVE_HINT,
                          record=record)
    raise ParityError("the artifact drifts from the source: " + " | ".join(lines),
                      hint="the artifacts, deploykit-report.json and report.html were written for inspection; "
                           "rerun `deploykit verify SOURCE ARTIFACT --localize` to find the first diverging layer",
                      record=record)


INCONCLUSIVE_HINT = ("on every one of these inputs the source model's own output moves by more than 1e-3 of its scale "
                     "when its input moves by 1e-7: pass --data with real inputs so the check can reach a verdict")


def _describe_failure(output) -> str:
    if output.problem:
        return f"{output.name}: {output.problem}"
    checks = ", ".join(f"{c.metric} {c.value:.3g} ({c.bound} {_limit(c)})" for c in output.failed_checks)
    return f"{output.name}: {checks}" + (" (inconclusive)" if output.status == "inconclusive" else "")


def _limit(check) -> str:
    """The limit that decided, and the profile's when the source's own noise widened it."""
    if check.effective_limit is None:
        return f"{check.limit:.3g}"
    from deploykit.parity.conditioning import MULTIPLE

    return f"{check.effective_limit:.3g}: {MULTIPLE:g} x the source's own noise, profile {check.limit:.3g}"
