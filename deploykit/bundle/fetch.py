"""Reading repository files over HTTP(S) or from a directory, never more bytes than allowed.

Every read has a cap: the length the signed metadata declares, or a fixed ceiling for the channel
index. A ``Content-Length`` over the cap is refused before reading; a body that keeps coming is cut
at cap + 1 bytes and refused, so a hostile or broken server can't fill the disk or memory. Paths come
from signed metadata and are matched against strict patterns before use.
"""

from __future__ import annotations

import hashlib
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import BinaryIO, Iterator

from deploykit.core.errors import InputError, IntegrityError

_CHUNK = 1 << 16
_SAFE_PATH = re.compile(r"^(channels/[a-z0-9][a-z0-9_-]{0,63}\.json|releases/[0-9a-f]{64}\.json|bundles/[0-9a-f]{64}\.zip"
                        r"|manifests/[0-9a-f]{64}\.json|chunks/[0-9a-f]{2}/[0-9a-f]{64})$")
TIMEOUT_SECONDS = 30


class NotInRepository(InputError):
    """The server (HTTP 404 or 410) or the directory has no such file."""


class Source:
    """A repository root: ``http(s)://...`` or a local directory (``file://`` or a plain path)."""

    def __init__(self, location: str | Path):
        self.received = 0  # body bytes read so far, over every request (``pull`` reports them)
        text = str(location)
        if text.startswith(("http://", "https://")):
            self.url = text.rstrip("/") + "/"
            self.root = None
        else:
            if text.startswith("file://"):
                text = urllib.parse.unquote(urllib.parse.urlparse(text).path)
            self.url, self.root = None, Path(text)
            if not self.root.is_dir():
                raise InputError(f"repository {self.root} is not a directory")

    def __str__(self) -> str:
        return self.url or str(self.root)

    def chunks(self, relative: str, cap: int) -> Iterator[bytes]:
        """The file's bytes in chunks; IntegrityError as soon as more than ``cap`` bytes arrive."""
        if not _SAFE_PATH.match(relative):
            raise IntegrityError(f"refusing repository path {relative!r}")
        with self._open(relative, cap) as handle:
            read = 0
            while True:
                chunk = handle.read(min(_CHUNK, cap + 1 - read))
                if not chunk:
                    return
                read += len(chunk)
                self.received += len(chunk)
                if read > cap:
                    raise IntegrityError(f"{relative}: body longer than its declared {cap} bytes; stopped reading")
                yield chunk

    def _open(self, relative: str, cap: int) -> BinaryIO:
        if self.root is not None:
            path = self.root / relative
            if not path.is_file():
                raise NotInRepository(f"{path} not found in the repository")
            return open(path, "rb")
        url = urllib.parse.urljoin(self.url, relative)
        request = urllib.request.Request(url, headers={"Accept-Encoding": "identity", "User-Agent": "deploykit-pull"})
        try:
            response = urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS)  # noqa: S310 - http(s) only, checked above
        except urllib.error.HTTPError as exc:
            raise (NotInRepository if exc.code in (404, 410) else InputError)(f"{url}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise InputError(f"{url}: {getattr(exc, 'reason', exc)}") from None
        declared = response.headers.get("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > cap:
            response.close()
            raise IntegrityError(f"{relative}: server announces {declared} bytes, more than the declared {cap}")
        return response

    def read(self, relative: str, cap: int) -> bytes:
        return b"".join(self.chunks(relative, cap))

    def read_pinned(self, relative: str, length: int, sha256: str) -> bytes:
        data = self.read(relative, length)
        _check(relative, len(data), length, hashlib.sha256(data).hexdigest(), sha256)
        return data

    def download_pinned(self, relative: str, length: int, sha256: str, target: Path) -> None:
        """Stream to ``target`` (a new file), hashing as it goes; remove it unless length and hash match."""
        digest, size = hashlib.sha256(), 0
        try:
            with open(target, "xb") as handle:
                for chunk in self.chunks(relative, length):
                    digest.update(chunk)
                    size += len(chunk)
                    handle.write(chunk)
            _check(relative, size, length, digest.hexdigest(), sha256)
        except BaseException:
            target.unlink(missing_ok=True)
            raise


def _check(relative: str, size: int, length: int, actual: str, expected: str) -> None:
    if size != length:
        raise IntegrityError(f"{relative}: {size} bytes, the signed metadata says {length}")
    if actual != expected:
        raise IntegrityError(f"{relative}: sha256 {actual[:16]}... differs from the {expected[:16]}... the signed "
                             "metadata pins (mix-and-match or tampering)")
