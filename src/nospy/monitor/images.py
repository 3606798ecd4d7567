"""Finding a release's image in the image store, by content: a folder, or a web server (an http(s) URL).

Where it may be, in order: ``STORE/<sha256>``, ``STORE/<sha256[:2]>/<sha256>`` (the web service's
blob layout), then ``STORE/<name>`` with the manifest's subject name when that is a plain file name
(no folder part, no ``..``: the name comes from the log and is not trusted to pick a path). Whatever
file is found is hashed, and used only when its SHA-256 is the one the signed release names.

An image fetched over HTTP is streamed to a private folder (``downloads``) while it is hashed, under a
size limit, and kept there under its SHA-256 once it matches: the next round (and the next release's
diff against it) reads it from there. What does not match is deleted, and so is an image no release
needs any more (`HttpStore.prune`, which the monitor calls after each round).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import re
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

from nospy.errors import InputError
from nospy.ledger.release import sha256_file

__all__ = ["MAX_IMAGE_BYTES", "FolderStore", "HttpStore", "ImageStore", "Lookup", "find_image", "open_store"]

MAX_IMAGE_BYTES = 4 << 30  # the largest image fetched over HTTP
_CHUNK = 1 << 20

_SHA256 = re.compile(r"[0-9a-f]{64}")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+@-]{0,254}")


@dataclass(frozen=True)
class Lookup:
    """The image found (``path``), or why none was (``problem``)."""

    path: Path | None
    problem: str | None = None


def _names(sha256: str, name: str) -> list[str]:
    """Where in a store the image may be, relative to it (see the module docstring)."""
    if not _SHA256.fullmatch(sha256):
        raise InputError(f"not a SHA-256 digest: {sha256[:80]!r}")
    out = [sha256, f"{sha256[:2]}/{sha256}"]
    if _PLAIN_NAME.fullmatch(name) and ".." not in name:
        out.append(name)
    return out


def candidates(store: Path, sha256: str, name: str) -> list[Path]:
    return [store / rel for rel in _names(sha256, name)]


class ImageStore(Protocol):
    location: str

    def find(self, sha256: str, name: str) -> Lookup:
        """The image whose SHA-256 is ``sha256``, as a local file, or why there is none."""
        ...


class FolderStore:
    def __init__(self, folder: Path) -> None:
        if not folder.is_dir():
            raise InputError(f"{folder}: the image store must be a folder or an http(s) URL")
        self.folder, self.location = folder, str(folder)

    def find(self, sha256: str, name: str) -> Lookup:
        return find_image(self.folder, sha256, name)


class _AbsentError(Exception):
    """The server has no file there (404, 410)."""


class _Redirects(urllib.request.HTTPRedirectHandler):
    """Redirects only to http(s), and never from https down to http (urllib would follow one to ftp)."""

    def redirect_request(  # noqa: PLR0917 - urllib's signature
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        scheme, old = urlsplit(newurl).scheme.lower(), urlsplit(req.full_url).scheme.lower()
        if scheme not in {"http", "https"} or (old == "https" and scheme != "https"):
            raise InputError(f"{req.full_url}: redirect to {newurl[:200]} refused (http(s) only, never https to http)")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_Redirects)
_STALE_PART = 600.0  # seconds since its last write after which a partial download is a dead monitor's


class HttpStore:
    """Images on a web server at a URL prefix, fetched into ``downloads`` (see the module docstring).

    Each download is bounded: ``max_bytes``, ``timeout`` seconds without data, ``max_seconds`` in all.
    ``progress`` is called as data arrives (the monitor renews its round's sign of life). Partial
    downloads left by a monitor that was killed are deleted by the next store opened on the folder.
    """

    def __init__(
        self,
        prefix: str,
        downloads: Path,
        *,
        max_bytes: int = MAX_IMAGE_BYTES,
        timeout: float = 60.0,
        max_seconds: float = 3600.0,
        progress: Callable[[], None] = lambda: None,
    ) -> None:
        if not prefix.startswith(("http://", "https://")):
            raise InputError(f"{prefix}: not an http(s) URL")
        self.prefix, self.location = prefix.rstrip("/"), prefix
        self.downloads, self.max_bytes, self.timeout = downloads, max_bytes, timeout
        self.max_seconds, self.progress = max_seconds, progress
        try:
            downloads.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"{downloads}: cannot keep fetched images there: {exc.strerror or exc}") from None
        for part in downloads.glob(".part-*"):
            with contextlib.suppress(OSError):
                if time.time() - part.stat().st_mtime > _STALE_PART:
                    part.unlink()

    def find(self, sha256: str, name: str) -> Lookup:
        names = _names(sha256, name)
        kept = self.downloads / sha256
        with contextlib.suppress(InputError, OSError):
            if kept.is_file() and sha256_file(kept) == sha256:
                os.utime(kept)  # in use: not pruned for a while (see `prune`)
                return Lookup(kept)
        problems: list[str] = []
        urls = [f"{self.prefix}/{quote(rel)}" for rel in names]
        for url in urls:
            try:
                digest, part = self._fetch(url)
            except _AbsentError:
                continue
            except InputError as exc:
                problems.append(str(exc))
                continue
            try:
                if digest == sha256:
                    part.replace(kept)
                    return Lookup(kept)
                problems.append(f"{url} has sha256 {digest}")
            except OSError as exc:
                problems.append(f"{kept}: {exc.strerror or exc}")
            finally:
                part.unlink(missing_ok=True)
        problem = f"image sha256 {sha256} is not in the image store (looked for {' or '.join(urls)})"
        if problems:
            problem += "; " + "; ".join(problems)
        return Lookup(None, problem)

    def prune(self, keep: set[str], *, grace: float = _STALE_PART) -> list[str]:
        """Delete the fetched images whose SHA-256 is not in ``keep``; the digests deleted.

        Only files named by a SHA-256 are touched (a download in progress is a ``.part-*`` file), and
        only those not fetched or found (`find`) within ``grace`` seconds: another monitor sharing the
        folder may have just recorded a release of that image, after ``keep`` was read. The web
        server stays the images' source, so an image needed again is fetched again.
        """
        gone = []
        for path in self.downloads.iterdir():
            if _SHA256.fullmatch(path.name) and path.name not in keep:
                with contextlib.suppress(FileNotFoundError):  # another monitor pruned it first
                    if time.time() - path.stat().st_mtime <= grace:
                        continue
                    path.unlink()
                    gone.append(path.name)
        return gone

    def _fetch(self, url: str) -> tuple[str, Path]:
        """The SHA-256 of what ``url`` serves and the file it was streamed to (``downloads/.part-*``)."""
        try:
            self.downloads.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=".part-", dir=self.downloads)
        except OSError as exc:
            raise InputError(f"{self.downloads}: {exc.strerror or exc}") from None
        part = Path(name)
        try:
            return self._stream(url, fd), part
        except BaseException:
            part.unlink(missing_ok=True)
            raise

    def _stream(self, url: str, fd: int) -> str:
        req = urllib.request.Request(url, headers={"Accept-Encoding": "identity"})  # noqa: S310 - scheme checked
        deadline = time.monotonic() + self.max_seconds
        try:
            with os.fdopen(fd, "wb") as out, _OPENER.open(req, timeout=self.timeout) as resp:
                declared = resp.headers.get("Content-Length")
                if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
                    raise InputError(f"{url}: larger than {self.max_bytes} bytes ({declared})")
                h, size = hashlib.sha256(), 0
                # read1: what one read of the socket brings, so the deadline is checked however slow the server
                while piece := resp.read1(_CHUNK):
                    size += len(piece)
                    if size > self.max_bytes:
                        raise InputError(f"{url}: larger than {self.max_bytes} bytes")
                    if time.monotonic() > deadline:
                        raise InputError(f"{url}: not fetched within {self.max_seconds:g} s")
                    h.update(piece)
                    out.write(piece)
                    self.progress()
                return h.hexdigest()
        except urllib.error.HTTPError as exc:
            if exc.code in {404, 410}:
                raise _AbsentError from None
            raise InputError(f"{url}: HTTP {exc.code}") from None
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
            raise InputError(f"{url}: {exc}") from None


def open_store(location: str | Path, downloads: Path | None, progress: Callable[[], None] = lambda: None) -> ImageStore:
    """A store at a folder or an http(s) URL; ``downloads``: where images fetched over HTTP are kept."""
    text = str(location)
    if text.startswith(("http://", "https://")):
        if downloads is None:
            raise InputError(f"{text}: an image store on the web needs a folder to keep the images it fetches")
        return HttpStore(text, downloads, progress=progress)
    return FolderStore(Path(text))


def find_image(store: Path, sha256: str, name: str) -> Lookup:
    """The file in ``store`` whose SHA-256 is ``sha256`` (see the module docstring for where it looks)."""
    mismatched: list[str] = []
    for path in candidates(store, sha256, name):
        if not path.is_file():
            continue
        try:
            digest = sha256_file(path)
        except InputError as exc:
            mismatched.append(str(exc))
            continue
        if digest == sha256:
            return Lookup(path)
        mismatched.append(f"{path.name} has sha256 {digest}")
    where = f"{store}/{sha256}" + (f" or {store}/{name}" if _PLAIN_NAME.fullmatch(name) and ".." not in name else "")
    problem = f"image sha256 {sha256} is not in the image store (looked for {where})"
    if mismatched:
        problem += "; found but not this image: " + "; ".join(mismatched)
    return Lookup(None, problem)
