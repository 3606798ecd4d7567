"""Uploaded files, kept content-addressed: each is stored once, under the SHA-256 of its bytes.

A name from a request never reaches the file system: files are found by digest only, and a digest is
checked to be 64 lowercase hex digits before it becomes a path. Writes go to a temporary file that is
renamed into place, so a crash leaves no half-written blob under a digest name.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import BinaryIO

from nospy.errors import InputError, NospyError

__all__ = ["BlobStore", "UploadTooLargeError"]

_DIGEST = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20


class UploadTooLargeError(NospyError):
    """An upload went past the size limit."""


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "tmp").mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        if not _DIGEST.fullmatch(digest):
            raise InputError("not a SHA-256 digest")
        return self.root / digest[:2] / digest

    def put(self, stream: BinaryIO, limit: int) -> tuple[str, int]:
        """Store ``stream``'s bytes (at most ``limit``); return their SHA-256 and size."""
        h = hashlib.sha256()
        size = 0
        fd, tmp = tempfile.mkstemp(dir=self.root / "tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(_CHUNK):
                    size += len(chunk)
                    if size > limit:
                        raise UploadTooLargeError(f"upload larger than {limit} bytes")
                    h.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            digest = h.hexdigest()
            final = self.path(digest)
            final.parent.mkdir(exist_ok=True)
            Path(tmp).replace(final)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return digest, size

    def verify(self, digest: str) -> Path:
        """The blob's path after re-hashing it: a file changed on disk is refused, not checked."""
        path = self.path(digest)
        h = hashlib.sha256()
        try:
            with path.open("rb") as fh:
                while chunk := fh.read(_CHUNK):
                    h.update(chunk)
        except OSError as exc:
            raise InputError(f"stored file {digest} cannot be read: {exc.strerror}") from None
        if h.hexdigest() != digest:
            raise InputError(f"stored file {digest} has changed on disk")
        return path
