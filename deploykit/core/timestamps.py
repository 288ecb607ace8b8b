"""The one timestamp reproducible archives carry (bundles, a .tflite's associated-files zip)."""

from __future__ import annotations

import os
import time

ZIP_MIN_EPOCH = 315532800  # 1980-01-01T00:00:00Z, the earliest time a zip header can hold
ZIP_MAX_EPOCH = 4354819199  # 2107-12-31T23:59:59Z


def zip_timestamp() -> tuple[int, int, int, int, int, int]:
    """The one timestamp of every entry: SOURCE_DATE_EPOCH clamped into the zip range, else 1980-01-01."""
    raw = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    try:
        epoch = int(raw) if raw else ZIP_MIN_EPOCH
    except ValueError:
        epoch = ZIP_MIN_EPOCH
    epoch = min(max(epoch, ZIP_MIN_EPOCH), ZIP_MAX_EPOCH)
    return time.gmtime(epoch)[:6]
