"""Helpers for the bundle tests: building real bundles, zip surgery, tree snapshots, a loopback server."""

from __future__ import annotations

import contextlib
import http.server
import os
import shutil
import threading
import zipfile
from functools import partial
from pathlib import Path

NAME = "com.example.classifier"
LABELS = [f"class_{i}" for i in range(10)]


def make_bundles(converted: Path, out: Path, sign_keys, labels: Path | None, version="1.2.0", sequence=None):
    from deploykit.bundle.builder import BundleOptions, bundle

    options = BundleOptions(name=NAME, version=version, sequence=sequence, out=out, labels=labels, mean=(127.5,),
                            std=(127.5,), sign_keys=tuple(sign_keys), author="Example Inc.", license="Apache-2.0",
                            description="A tiny test classifier")
    built = bundle([converted / "mobilenet.fp32.tflite", converted / "mobilenet.fp32.mlpackage"], options)
    return {b.manifest["platform"]: b.path for b in built}


def rewrite_zip(src: Path, dst: Path, *, drop=(), replace=None, add=(), order=None, raw_infos=()):
    """Copy a bundle entry by entry, dropping, replacing or adding entries: an attacker's zip surgery.

    ``add`` holds (name, bytes) pairs or (ZipInfo, bytes) pairs; ``raw_infos`` likewise but written
    after everything else. Entries are stored; the result is a perfectly valid zip file.
    """
    replace = replace or {}
    with zipfile.ZipFile(src) as zin:
        entries = [(info.filename, zin.read(info)) for info in zin.infolist()]
    entries = [(n, replace.get(n, d)) for n, d in entries if n not in drop]
    if order:
        entries = order(entries)
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for name, data in list(entries) + list(add) + list(raw_infos):
            info = name if isinstance(name, zipfile.ZipInfo) else zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            if not isinstance(name, zipfile.ZipInfo):
                info.create_system, info.external_attr = 3, 0o100644 << 16
            zout.writestr(info, data)
    return dst


def tree_snapshot(root: Path) -> dict[str, int]:
    """Every path under ``root`` (links not followed) with its size, to prove nothing was written."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            out[str(path.relative_to(root))] = path.lstat().st_size if not path.is_dir() else -1
    return out


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


@contextlib.contextmanager
def serve(directory: Path, handler_class=None):
    """A ThreadingHTTPServer on 127.0.0.1 (loopback only, ephemeral port) serving ``directory``."""
    handler = handler_class or partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def copy(path: Path, dst: Path) -> Path:
    shutil.copyfile(path, dst)
    return dst

