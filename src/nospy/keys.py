"""Ed25519 keys and signed notes in C2SP signed-note form (https://c2sp.org/signed-note).

A verifier key is ``name+hash+base64(0x01 || public key)``, a signing key is
``PRIVATE+KEY+name+hash+base64(0x01 || seed)``, where ``hash`` is the hex of the first four bytes of
SHA-256(name || "\\n" || 0x01 || public key). The same keys sign agreements (DSSE) and, later, log
checkpoints, so a party has one identity everywhere.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from nospy.errors import InputError, VerificationError

__all__ = [
    "Note",
    "SigningKey",
    "VerifierKey",
    "generate",
    "open_note",
    "parse_signing_key",
    "parse_verifier_key",
    "read_signing_key",
    "read_verifier_key",
    "sign_note",
]

ALG_ED25519 = 0x01
_PRIVATE_PREFIX = "PRIVATE+KEY+"
_SIG_PREFIX = "\u2014 "  # em dash and a space open every signature line
_MAX_SIGNATURES = 100  # a note with more signature lines than this is rejected, not scanned
_MAX_KEY_FILE = 4096


def _check_name(name: str) -> None:
    if not name:
        raise InputError("key name must not be empty")
    if "+" in name:
        raise InputError(f"key name {name!r} must not contain '+'")
    if any(ch.isspace() or unicodedata.category(ch) in {"Zs", "Cc"} for ch in name):
        raise InputError(f"key name {name!r} must not contain spaces or control characters")


def key_id(name: str, alg: int, public: bytes) -> bytes:
    """The four-byte key ID: SHA-256(name || 0x0A || alg || public)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([alg]) + public).digest()[:4]


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InputError(f"{what}: not valid base64") from exc


@dataclass(frozen=True)
class VerifierKey:
    """A public key with the name it signs under."""

    name: str
    key_id: bytes
    public: bytes

    def __str__(self) -> str:
        blob = base64.b64encode(bytes([ALG_ED25519]) + self.public).decode()
        return f"{self.name}+{self.key_id.hex()}+{blob}"

    @property
    def label(self) -> str:
        """``name+hash``: how signatures name this key (DSSE keyid)."""
        return f"{self.name}+{self.key_id.hex()}"

    def verify(self, message: bytes, signature: bytes) -> None:
        """Return if ``signature`` is this key's Ed25519 signature of ``message``; raise otherwise."""
        try:
            Ed25519PublicKey.from_public_bytes(self.public).verify(signature, message)
        except InvalidSignature as exc:
            raise VerificationError(f"signature by {self.label} does not verify") from exc


@dataclass(frozen=True)
class SigningKey:
    """A private key with the name it signs under. ``str()`` gives the secret key text."""

    name: str
    key_id: bytes
    seed: bytes

    def __str__(self) -> str:
        blob = base64.b64encode(bytes([ALG_ED25519]) + self.seed).decode()
        return f"{_PRIVATE_PREFIX}{self.name}+{self.key_id.hex()}+{blob}"

    def __repr__(self) -> str:
        return f"SigningKey(name={self.name!r}, key_id={self.key_id.hex()!r})"

    @property
    def verifier(self) -> VerifierKey:
        return VerifierKey(self.name, self.key_id, _public_of(self.seed))

    def sign(self, message: bytes) -> bytes:
        return Ed25519PrivateKey.from_private_bytes(self.seed).sign(message)


def _public_of(seed: bytes) -> bytes:
    return (
        Ed25519PrivateKey.from_private_bytes(seed)
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )


def generate(name: str) -> SigningKey:
    """A new Ed25519 signing key named ``name``."""
    _check_name(name)
    seed = os.urandom(32)
    return SigningKey(name, key_id(name, ALG_ED25519, _public_of(seed)), seed)


def _split_key(text: str, what: str) -> tuple[str, bytes, bytes]:
    parts = text.strip().split("+", 2)
    if len(parts) != 3:
        raise InputError(f"{what}: expected name+hash+key")
    name, hex_id, blob = parts
    _check_name(name)
    if len(hex_id) != 8:
        raise InputError(f"{what}: key hash must be 8 hex digits")
    try:
        kid = bytes.fromhex(hex_id)
    except ValueError as exc:
        raise InputError(f"{what}: key hash must be 8 hex digits") from exc
    raw = _b64decode(blob, what)
    if len(raw) != 33 or raw[0] != ALG_ED25519:
        raise InputError(f"{what}: not an Ed25519 key (expected algorithm byte 0x01 and 32 bytes)")
    return name, kid, raw[1:]


def parse_verifier_key(text: str) -> VerifierKey:
    """Parse ``name+hash+base64``; the hash must match the key."""
    name, kid, public = _split_key(text, "verifier key")
    if key_id(name, ALG_ED25519, public) != kid:
        raise InputError(f"verifier key {name}: hash {kid.hex()} does not match the key")
    return VerifierKey(name, kid, public)


def parse_signing_key(text: str) -> SigningKey:
    """Parse ``PRIVATE+KEY+name+hash+base64``; the hash must match the key."""
    text = text.strip()
    if not text.startswith(_PRIVATE_PREFIX):
        raise InputError("signing key: expected PRIVATE+KEY+name+hash+key")
    name, kid, seed = _split_key(text[len(_PRIVATE_PREFIX) :], "signing key")
    if key_id(name, ALG_ED25519, _public_of(seed)) != kid:
        raise InputError(f"signing key {name}: hash {kid.hex()} does not match the key")
    return SigningKey(name, kid, seed)


def _read_small(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            data = fh.read(_MAX_KEY_FILE + 1)
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror or exc}") from exc
    if len(data) > _MAX_KEY_FILE:
        raise InputError(f"{path}: too large for a key file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text") from exc


def read_signing_key(path: Path) -> SigningKey:
    try:
        return parse_signing_key(_read_small(path))
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from exc


def read_verifier_key(path: Path) -> VerifierKey:
    try:
        return parse_verifier_key(_read_small(path))
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from exc


@dataclass(frozen=True)
class Note:
    """A note whose signatures were checked: its text and the keys that verified it."""

    text: str
    verified_by: tuple[VerifierKey, ...]
    unverified: tuple[tuple[str, bytes], ...]  # (name, key ID + signature) of keys not known


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise InputError("note text must end with a newline")
    if any(ch != "\n" and unicodedata.category(ch) == "Cc" for ch in text):
        raise InputError("note text must not contain control characters other than newline")


def sign_note(text: str, keys: Iterable[SigningKey]) -> str:
    """Sign ``text`` with every key and return the signed note."""
    _check_text(text)
    lines = []
    for key in keys:
        sig = key.sign(text.encode())
        lines.append(f"{_SIG_PREFIX}{key.name} {base64.b64encode(key.key_id + sig).decode()}\n")
    if not lines:
        raise InputError("a note needs at least one signing key")
    return text + "\n" + "".join(lines)


def open_note(note: str | bytes, verifiers: Sequence[VerifierKey]) -> Note:
    """Verify a signed note against ``verifiers`` and return it.

    At least one of ``verifiers`` must have signed it. A signature line naming a known key whose
    signature does not verify is an error; lines of unknown keys are kept in ``Note.unverified``.
    """
    if not verifiers:
        raise VerificationError("no verifier key given: nothing can be trusted")
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError("note is not UTF-8") from exc
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise InputError("malformed note: no signature block")
    text, block = note[: split + 1], note[split + 2 :]
    _check_text(text)
    sig_lines = block.splitlines()
    if not sig_lines or len(sig_lines) > _MAX_SIGNATURES:
        raise InputError("malformed note: no signature lines, or too many")
    known = {(v.name, v.key_id): v for v in verifiers}
    verified: list[VerifierKey] = []
    unverified: list[tuple[str, bytes]] = []
    for line in sig_lines:
        if not line.startswith(_SIG_PREFIX):
            raise InputError(f"malformed signature line: {line[:80]!r}")
        name, _, blob = line[len(_SIG_PREFIX) :].partition(" ")
        _check_name(name)
        raw = _b64decode(blob, f"signature of {name}")
        if len(raw) < 5:
            raise InputError(f"signature of {name} is too short")
        verifier = known.get((name, raw[:4]))
        if verifier is None:
            unverified.append((name, raw))
            continue
        if len(raw) != 4 + 64:
            raise VerificationError(f"signature by {verifier.label} has the wrong length")
        verifier.verify(text.encode(), raw[4:])
        if verifier not in verified:
            verified.append(verifier)
    if not verified:
        raise VerificationError("note is not signed by any of the given keys")
    return Note(text, tuple(verified), tuple(unverified))
