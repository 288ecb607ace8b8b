"""Upstream converters print pages of logs and crash in ways deploykit cannot foresee: capture the one, turn
the other into a ``ConversionError`` that says what deploykit was doing (its log kept for ``--verbose``)."""

from __future__ import annotations

from deploykit.core.errors import ConversionError, DeployKitError
from deploykit.core.noise import capture_output


class quiet:  # noqa: N801 - used as a statement: ``with quiet(verbose, "converting"):``
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
        first = str(exc).splitlines()[0][:300] if str(exc) else ""
        error = ConversionError(f"upstream crash while {self.doing}: {type(exc).__name__}: {first}",
                                hint="rerun with --verbose to see the converter's log", log=self.captured.text)
        raise error from exc
