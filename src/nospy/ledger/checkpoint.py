"""C2SP tlog-checkpoint (https://c2sp.org/tlog-checkpoint) bodies signed as C2SP signed notes, and
Ed25519 cosignatures of C2SP tlog-cosignature (https://c2sp.org/tlog-cosignature, type 0x04).

A checkpoint body is ``origin\\nsize\\nbase64(root)\\n[extension lines]``. Cosigner keys reuse a
nospy Ed25519 key; only the key ID changes (algorithm byte 0x04 instead of 0x01), so one key file
serves a witness, and its cosigner verifier key is printed as ``name+id+base64(0x04 || public)``.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from nospy import keys
from nospy.errors import InputError, VerificationError
from nospy.ledger import merkle

__all__ = [
    "Checkpoint",
    "CosignerKey",
    "SignedCheckpoint",
    "cosign",
    "open_checkpoint",
    "parse_body",
    "parse_cosigner_key",
    "sign_checkpoint",
]

ALG_COSIGNATURE_V1 = 0x04
MAX_CHECKPOINT_BYTES = 1 << 16
_SIZE_RE = re.compile(r"0|[1-9][0-9]{0,19}")


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def body(self) -> str:
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode(), *self.extensions]
        return "\n".join(lines) + "\n"


def parse_body(text: str) -> Checkpoint:
    """Parse a checkpoint note text (without signatures)."""
    if not text.endswith("\n"):
        raise InputError("checkpoint: text must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise InputError("checkpoint: needs origin, size and root hash lines")
    origin, size_text, root_text, *ext = lines
    if not origin:
        raise InputError("checkpoint: empty origin line")
    if not _SIZE_RE.fullmatch(size_text) or int(size_text) >= 1 << 63:
        raise InputError(f"checkpoint: tree size {size_text[:40]!r} is not a decimal without leading zeros")
    try:
        root = base64.b64decode(root_text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InputError("checkpoint: root hash is not base64") from exc
    if len(root) != merkle.HASH_SIZE:
        raise InputError(f"checkpoint: root hash is {len(root)} bytes, not 32")
    if any(not line for line in ext):
        raise InputError("checkpoint: empty extension line")
    return Checkpoint(origin, int(size_text), root, tuple(ext))


def sign_checkpoint(cp: Checkpoint, key: keys.SigningKey) -> str:
    return keys.sign_note(cp.body(), [key])


@dataclass(frozen=True)
class CosignerKey:
    """An Ed25519 tlog-cosignature/v1 verifier: name, 0x04 key ID, public key."""

    name: str
    key_id: bytes
    public: bytes

    @classmethod
    def from_verifier(cls, vkey: keys.VerifierKey) -> CosignerKey:
        return cls(vkey.name, keys.key_id(vkey.name, ALG_COSIGNATURE_V1, vkey.public), vkey.public)

    def __str__(self) -> str:
        blob = base64.b64encode(bytes([ALG_COSIGNATURE_V1]) + self.public).decode()
        return f"{self.name}+{self.key_id.hex()}+{blob}"

    def verify(self, body: str, raw: bytes) -> int:
        """Check a cosignature (key ID || timestamp || signature) and return its timestamp."""
        if len(raw) != 4 + 8 + 64 or raw[:4] != self.key_id:
            raise VerificationError(f"cosignature by {self.name} is malformed")
        (timestamp,) = struct.unpack(">Q", raw[4:12])
        if timestamp >= 1 << 63:
            raise VerificationError(f"cosignature by {self.name} has an out-of-range timestamp")
        try:
            Ed25519PublicKey.from_public_bytes(self.public).verify(raw[12:], _cosigned_message(body, timestamp))
        except InvalidSignature as exc:
            raise VerificationError(f"cosignature by {self.name} does not verify") from exc
        return int(timestamp)


def parse_cosigner_key(text: str) -> CosignerKey:
    """A cosigner verifier key: ``name+id+base64(0x04 || key)``, or a plain nospy (0x01) verifier key."""
    parts = text.strip().split("+", 2)
    if len(parts) == 3:
        try:
            raw = base64.b64decode(parts[2], validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) == 33 and raw[0] == ALG_COSIGNATURE_V1:
            key = CosignerKey(parts[0], keys.key_id(parts[0], ALG_COSIGNATURE_V1, raw[1:]), raw[1:])
            if key.key_id.hex() != parts[1]:
                raise InputError(f"cosigner key {parts[0]}: hash {parts[1]} does not match the key")
            return key
    return CosignerKey.from_verifier(keys.parse_verifier_key(text))


def _cosigned_message(body: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n{body}".encode()


def cosign(body: str, key: keys.SigningKey, timestamp: int | None = None) -> str:
    """A cosignature line (tlog-cosignature v1, Ed25519) over the checkpoint text ``body``."""
    ts = int(time.time()) if timestamp is None else timestamp
    cosigner = CosignerKey.from_verifier(key.verifier)
    sig = Ed25519PrivateKey.from_private_bytes(key.seed).sign(_cosigned_message(body, ts))
    blob = base64.b64encode(cosigner.key_id + struct.pack(">Q", ts) + sig).decode()
    return f"\u2014 {key.name} {blob}\n"


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint whose log signature verified, with the cosigners whose cosignatures verified."""

    checkpoint: Checkpoint
    note: str
    cosigned_by: tuple[str, ...]


def open_checkpoint(
    note: str | bytes,
    log_keys: Sequence[keys.VerifierKey],
    *,
    origin: str | None = None,
    cosigners: Sequence[CosignerKey] = (),
    quorum: int = 0,
) -> SignedCheckpoint:
    """Verify a checkpoint's log signature (and ``quorum`` cosignatures) and parse it."""
    if isinstance(note, bytes):
        if len(note) > MAX_CHECKPOINT_BYTES:
            raise InputError("checkpoint is too large")
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError("checkpoint is not UTF-8") from exc
    opened = keys.open_note(note, log_keys)
    cp = parse_body(opened.text)
    if origin is not None and cp.origin != origin:
        raise VerificationError(f"checkpoint origin is {cp.origin!r}, expected {origin!r}")
    known = {(c.name, c.key_id): c for c in cosigners}
    cosigned: list[str] = []
    for name, raw in opened.unverified:
        cosigner = known.get((name, raw[:4]))
        if cosigner is not None and name not in cosigned:
            cosigner.verify(opened.text, raw)
            cosigned.append(name)
    if len(cosigned) < quorum:
        raise VerificationError(f"checkpoint has {len(cosigned)} valid cosignatures, {quorum} required")
    return SignedCheckpoint(cp, note, tuple(cosigned))
