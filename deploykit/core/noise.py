"""Capture what upstream libraries print (TensorFlow's C++ logs, coremltools' progress bars).

TensorFlow writes from C++ straight to file descriptors 1 and 2, so Python-level redirection is not
enough: the descriptors themselves are pointed at a temporary file for the duration of a step.
The captured text is attached to errors and shown with ``--verbose``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import warnings

# Set before TensorFlow is first imported anywhere in the process.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")


class Captured:
    """The text captured by :func:`capture_output` (filled in when the block ends)."""

    def __init__(self) -> None:
        self.text = ""


@contextlib.contextmanager
def capture_output(enabled: bool = True):
    """Send fds 1 and 2 (and Python warnings and logging) to a buffer for the duration of the block."""
    captured = Captured()
    if not enabled:
        yield captured
        return
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile(mode="w+b") as sink, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        root = logging.getLogger()
        old_handlers, old_level = root.handlers[:], root.level
        handler = logging.StreamHandler(sys.stderr)
        root.handlers = [handler]
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            yield captured
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            root.handlers, root.level = old_handlers, old_level
            sink.seek(0)
            captured.text = sink.read().decode("utf-8", "replace")
