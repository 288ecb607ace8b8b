"""Progress as a tiny protocol, so the library stays free of terminal code; the CLI shows it with rich."""

from __future__ import annotations

import contextlib
from typing import Iterator, Protocol


class Progress(Protocol):
    def step(self, description: str) -> contextlib.AbstractContextManager: ...


class NullProgress:
    @contextlib.contextmanager
    def step(self, description: str) -> Iterator[None]:
        yield
