"""A C2SP tlog-witness (https://c2sp.org/tlog-witness): ``add-checkpoint`` with its status codes,
answering with tlog-cosignature/v1 (Ed25519) cosignatures.

Request body: ``old <size>\\n``, up to 63 base64 consistency-proof lines, an empty line, then the
checkpoint. 404 unknown origin, 403 no trusted log signature, 400 malformed or old size above the
checkpoint's, 409 old size not the latest cosigned size (body: that size, ``text/x.tlog.size``) or
same size with another root, 422 consistency proof fails, 200 cosignature lines. Checking the old
size and persisting the new checkpoint happen under one lock, so two requests cannot roll it back.
"""

from __future__ import annotations

import base64
import binascii
import re
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nospy import keys
from nospy._fileio import read_limited, write_atomic
from nospy.errors import InputError, VerificationError
from nospy.ledger import merkle
from nospy.ledger.checkpoint import Checkpoint, CosignerKey, cosign, open_checkpoint
from nospy.ledger.tiles import TileReader

__all__ = ["MAX_REQUEST", "Response", "Witness", "WitnessClient", "parse_add_checkpoint"]

MAX_REQUEST = 1 << 17
MAX_PROOF_LINES = 63
_OLD_RE = re.compile(r"old (0|[1-9][0-9]{0,19})")


@dataclass(frozen=True)
class Response:
    status: int
    content_type: str
    body: bytes


def _text(status: int, message: str) -> Response:
    return Response(status, "text/plain; charset=utf-8", (message + "\n").encode())


class _Seen(BaseModel):
    model_config = ConfigDict(extra="forbid")
    size: int = Field(ge=0, description="Size of the latest cosigned checkpoint.")
    root: str = Field(description="Its root hash, base64.")


class _State(BaseModel):
    model_config = ConfigDict(extra="forbid")
    logs: dict[str, _Seen] = Field(default_factory=dict, description="Latest cosigned checkpoint per origin.")


def parse_add_checkpoint(body: bytes) -> tuple[int, list[bytes], str]:
    """Split an add-checkpoint body into (old size, consistency proof, checkpoint note)."""
    if len(body) > MAX_REQUEST:
        raise InputError("request too large")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError("request is not UTF-8") from exc
    head, sep, note = text.partition("\n\n")
    if not sep:
        raise InputError("no empty line before the checkpoint")
    lines = head.split("\n")
    m = _OLD_RE.fullmatch(lines[0])
    if m is None:
        raise InputError("first line must be 'old <size>'")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise InputError("more than 63 consistency proof lines")
    proof = []
    for line in lines[1:]:
        try:
            h = base64.b64decode(line, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InputError("consistency proof line is not base64") from exc
        proof.append(h)
    return int(m.group(1)), proof, note


class Witness:
    """Witness state for a set of logs, each known by its key's name as the checkpoint origin."""

    def __init__(self, key: keys.SigningKey, logs: Sequence[keys.VerifierKey], state: Path) -> None:
        if not logs:
            raise InputError("a witness needs at least one log key")
        self.key = key
        self.logs: dict[str, list[keys.VerifierKey]] = {}
        for log in logs:
            self.logs.setdefault(log.name, []).append(log)
        self.state_path = state
        self._lock = threading.Lock()
        if state.exists():
            try:
                self._state = _State.model_validate_json(read_limited(state, 1 << 24))
            except ValidationError as exc:
                msg = exc.errors(include_url=False)[0]["msg"]
                raise InputError(f"{state}: not a witness state file: {msg}") from None
        else:
            self._state = _State()

    def add_checkpoint(self, body: bytes) -> Response:
        try:
            old, proof, note = parse_add_checkpoint(body)
        except InputError as exc:
            return _text(400, str(exc))
        origin = note.split("\n", 1)[0]
        log_keys = self.logs.get(origin)
        if log_keys is None:
            return _text(404, f"unknown log origin {origin[:100]!r}")
        try:
            cp = open_checkpoint(note, log_keys, origin=origin).checkpoint
        except VerificationError as exc:
            return _text(403, str(exc))
        except InputError as exc:
            return _text(400, str(exc))
        if old > cp.size:
            return _text(400, f"old size {old} is above the checkpoint size {cp.size}")
        with self._lock:
            seen = self._state.logs.get(origin)
            seen_size = seen.size if seen else 0
            seen_root = base64.b64decode(seen.root) if seen else merkle.EMPTY_ROOT
            if old != seen_size:
                return Response(409, "text/x.tlog.size", f"{seen_size}\n".encode())
            if old == cp.size and cp.root != seen_root:
                return _text(409, "same size as the latest cosigned checkpoint, different root hash")
            try:
                merkle.verify_consistency(old, cp.size, proof, seen_root, cp.root)
            except VerificationError as exc:
                return _text(422, str(exc))
            self._state.logs[origin] = _Seen(size=cp.size, root=base64.b64encode(cp.root).decode())
            write_atomic(self.state_path, self._state.model_dump_json(indent=2).encode())
        return Response(200, "text/plain; charset=utf-8", cosign(cp.body(), self.key).encode())


class WitnessClient:
    """The log's side of tlog-witness: submit a checkpoint with a consistency proof from the
    witness's last cosigned size, learning that size from a 409 answer when it is not known."""

    def __init__(self, url: str, key: CosignerKey, timeout: float = 10.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise InputError(f"witness URL {url!r} is not http(s)")
        self.url = url.rstrip("/") + "/add-checkpoint"
        self.key = key
        self.timeout = timeout
        self.size = 0  # the size we believe the witness last cosigned

    def _post(self, body: bytes) -> tuple[int, bytes]:
        req = urllib.request.Request(self.url, data=body, method="POST")  # noqa: S310 - scheme checked
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 - scheme checked
                return resp.status, resp.read(MAX_REQUEST)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(MAX_REQUEST)

    def cosign(self, note: str, cp: Checkpoint, reader: TileReader, log_key: keys.VerifierKey) -> str | None:
        """The witness's verified cosignature line for ``note``, or None (reported on stderr)."""
        try:
            for _ in range(2):
                old = min(self.size, cp.size)
                proof = reader.consistency_proof(old, cp.size) if old else []
                lines = [f"old {old}", *(base64.b64encode(h).decode() for h in proof)]
                status, body = self._post(("\n".join(lines) + "\n\n" + note).encode())
                if status == 409 and body.strip().isdigit():
                    self.size = int(body.strip())
                    continue
                if status != 200:
                    raise InputError(f"HTTP {status}: {body[:200].decode('utf-8', 'replace').strip()}")
                open_checkpoint(note + body.decode("utf-8"), [log_key], cosigners=[self.key], quorum=1)
                self.size = cp.size
                return next(
                    line + "\n" for line in body.decode().splitlines() if line.split(" ")[1:2] == [self.key.name]
                )
            raise InputError("the witness keeps answering 409")
        except (InputError, VerificationError, OSError, UnicodeDecodeError, StopIteration) as exc:
            sys.stderr.write(f"nospy: witness {self.url}: no cosignature: {exc}\n")
            return None
