"""The ledger's small interface: where a tiled log is read from, and what a found release is.

A log is read through a `LogSource` (a directory or an HTTP prefix laid out per C2SP tlog-tiles).
Results are frozen dataclasses; failures are `nospy.errors` (`VerificationError` when the log or a
proof does not hold, `InputError` when something cannot be read).
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from nospy.errors import InputError
from nospy.ledger import tiles
from nospy.ledger.proof import format_proof

__all__ = ["DirSource", "HttpSource", "InclusionEvidence", "LogSource", "open_source"]

MAX_CHECKPOINT = 1 << 16


def _limit(path: str) -> int:
    if path == "checkpoint":
        return MAX_CHECKPOINT
    if path.startswith("tile/entries/"):
        return tiles.MAX_BUNDLE_BYTES
    return tiles.MAX_TILE_BYTES


class LogSource(Protocol):
    """Read-only access to a tiled log's resources by their tlog-tiles path."""

    location: str

    def read(self, path: str) -> bytes:
        """The resource at ``path`` (``checkpoint`` or a tile path); `InputError` if missing."""
        ...


class DirSource:
    """A log on the file system (as `nospy log init` writes it, or any tlog-tiles layout)."""

    def __init__(self, root: Path) -> None:
        if not (root / "checkpoint").is_file():
            raise InputError(f"{root}: not a log directory (no checkpoint file)")
        self.root = root
        self.location = str(root)
        self._prefix = f"{root}{os.sep}"

    def read(self, path: str) -> bytes:
        # os.open/os.read on a str path: three or four system calls, where Path.open's buffered
        # file adds fstat, ioctl and lseek; proofs read a handful of small tiles each
        limit = _limit(path)
        try:
            fd = os.open(self._prefix + path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                # a big limit (entry bundles) is not allocated up front: the file's size is asked first
                want = limit + 1 if limit <= 1 << 16 else min(limit + 1, os.fstat(fd).st_size + 1)
                data = os.read(fd, want)
                while len(data) <= limit and (more := os.read(fd, limit + 1 - len(data))):
                    data += more
            finally:
                os.close(fd)
        except OSError as exc:
            raise InputError(f"{self.root}/{path}: {exc.strerror or exc}") from None
        if len(data) > limit:
            raise InputError(f"{self.root}/{path}: larger than {limit} bytes")
        return data


class HttpSource:
    """A log served over HTTP(S) at a URL prefix."""

    def __init__(self, prefix: str, timeout: float = 30.0) -> None:
        if not prefix.startswith(("http://", "https://")):
            raise InputError(f"{prefix}: not an http(s) URL")
        self.prefix = prefix.rstrip("/")
        self.location = prefix
        self.timeout = timeout

    def read(self, path: str) -> bytes:
        url = f"{self.prefix}/{path}"
        limit = _limit(path)
        req = urllib.request.Request(url, headers={"Accept-Encoding": "gzip, identity"})  # noqa: S310
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 - scheme checked above
                data: bytes = resp.read(limit + 1)
                if resp.headers.get("Content-Encoding", "identity").lower() == "gzip":
                    # tlog-tiles lets logs gzip entry bundles, even unasked; inflate under the same limit
                    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    data = inflater.decompress(data, limit + 1)
                    if not inflater.eof and len(data) <= limit:
                        raise InputError(f"{url}: truncated gzip body")
        except zlib.error as exc:
            raise InputError(f"{url}: bad gzip body: {exc}") from None
        except urllib.error.HTTPError as exc:
            raise InputError(f"{url}: HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise InputError(f"{url}: {exc}") from None
        if len(data) > limit:
            raise InputError(f"{url}: larger than {limit} bytes")
        return data


def open_source(location: str | Path) -> LogSource:
    text = str(location)
    if text.startswith(("http://", "https://")):
        return HttpSource(text)
    return DirSource(Path(text))


@dataclass(frozen=True)
class InclusionEvidence:
    """A release found in a log, with everything needed to re-check it offline."""

    log: str  # where the log was read
    origin: str
    index: int
    tree_size: int
    root: bytes
    leaf_hash: bytes
    proof: tuple[bytes, ...]
    checkpoint: str  # the signed checkpoint note, verbatim
    entry: bytes  # the logged release manifest (a DSSE envelope)
    product: str
    version: str
    signer: str  # keyid of the manifest's first signature (a hint; verify with vendor keys)

    def tlog_proof(self) -> str:
        """This evidence as a C2SP tlog-proof, the entry in ``extra``."""
        return format_proof(self.index, list(self.proof), self.checkpoint, extra=self.entry)
