"""Content hashes for single files and for directory artifacts (.mlpackage trees)."""

from __future__ import annotations

import hashlib
from pathlib import Path

_CHUNK = 1 << 20


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def tree_files(root: str | Path) -> list[Path]:
    """Regular files under ``root``, sorted by POSIX relative path. Symlinks are not followed."""
    root = Path(root)
    return sorted((p for p in root.rglob("*") if p.is_file() and not p.is_symlink()),
                  key=lambda p: p.relative_to(root).as_posix())


def sha256_tree(root: str | Path) -> str:
    """Hash of a directory: sha256 over lines ``<sha256 of file>  <relative posix path>\\n``, sorted by path.

    The same construction as ``sha256sum`` output, so a user can reproduce it with
    ``(cd pkg && find . -type f | sort | sed 's|^./||' | xargs sha256sum) | sha256sum``.
    """
    root = Path(root)
    lines = "".join(f"{sha256_file(p)}  {p.relative_to(root).as_posix()}\n" for p in tree_files(root))
    return hashlib.sha256(lines.encode()).hexdigest()


def sha256_path(path: str | Path) -> str:
    path = Path(path)
    return sha256_tree(path) if path.is_dir() else sha256_file(path)


def size_path(path: str | Path) -> int:
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in tree_files(path))
    return path.stat().st_size
