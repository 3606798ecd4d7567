"""Default-password cracking: every entry of the curated default list against every password hash.

Hashes are computed by the system's libxcrypt (the library behind Debian's own ``crypt(3)``: DES,
md5crypt ``$1$``, sha256/512-crypt ``$5$``/``$6$``, bcrypt ``$2*$``, yescrypt ``$y$``) through
``crypt_rn``, which is re-entrant and runs without the GIL, so candidates are spread over threads.
Apache's ``$apr1$`` is md5crypt with another magic (not in libxcrypt) and is implemented here after
the reference algorithm; ``{SHA}`` is base64 SHA-1 (htpasswd -s); plain passwords are compared.

The list (``data/default_credentials.json``) carries its sources, licence and date; a match records
which entry and source cracked the hash.
"""

from __future__ import annotations

import base64
import ctypes
import ctypes.util
import hashlib
import hmac
import json
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from importlib import resources

from pydantic import BaseModel, ConfigDict

from nospy.errors import InputError

__all__ = [
    "Cracked",
    "DefaultCredentials",
    "HashKind",
    "crack",
    "crypt_hash",
    "default_credentials",
    "hash_kind",
    "md5crypt",
    "sha512_crypt",
]


class HashKind(StrEnum):
    DES = "des"
    MD5 = "md5crypt"
    APR1 = "apr1"
    SHA256 = "sha256crypt"
    SHA512 = "sha512crypt"
    BCRYPT = "bcrypt"
    YESCRYPT = "yescrypt"
    SHA1 = "sha1"  # htpasswd -s
    PLAIN = "plain"


_DES_CHARS = frozenset("./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def hash_kind(field: str) -> HashKind | None:
    """The kind of a stored password hash, or ``None`` for locked or unusable fields."""
    if field.startswith("$1$"):
        return HashKind.MD5
    if field.startswith("$apr1$"):
        return HashKind.APR1
    if field.startswith("$5$"):
        return HashKind.SHA256
    if field.startswith("$6$"):
        return HashKind.SHA512
    if field[:4] in ("$2a$", "$2b$", "$2y$"):
        return HashKind.BCRYPT
    if field.startswith("$y$"):
        return HashKind.YESCRYPT
    if field.startswith("{SHA}"):
        return HashKind.SHA1
    if len(field) == 13 and set(field) <= _DES_CHARS:
        return HashKind.DES
    return None


# Slow hashes get the most likely candidates only: bcrypt cost 10 is ~70 ms a try, so the whole
# list would take minutes per hash. The cut is reported in the evidence.
SLOW_LIMIT = {HashKind.BCRYPT: 200, HashKind.YESCRYPT: 200}


class CredentialSource(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str
    name: str
    url: str
    licence: str


class CredentialEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    source: str
    product: str
    user: str
    password: str


class DefaultCredentials(BaseModel):
    """The curated default-credentials list: versioned, every entry with its source."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    version: str
    date: str
    sources: list[CredentialSource]
    entries: list[CredentialEntry]

    def candidates(self, user: str) -> list[CredentialEntry]:
        """Unique passwords, those listed for ``user`` first (most hashes fall to those)."""
        seen: set[str] = set()
        out: list[CredentialEntry] = []
        for wanted in (True, False):
            for e in self.entries:
                if (e.user == user) == wanted and e.password not in seen:
                    seen.add(e.password)
                    out.append(e)
        return out


@cache
def default_credentials() -> DefaultCredentials:
    try:
        raw = resources.files("nospy.firmware.data").joinpath("default_credentials.json").read_text()
        return DefaultCredentials.model_validate(json.loads(raw))
    except (OSError, ValueError) as exc:
        raise InputError(f"the default-credentials list cannot be loaded: {exc}") from None


# --- libxcrypt -------------------------------------------------------------------------------------

_CRYPT_DATA_SIZE = 32768  # sizeof(struct crypt_data) in libxcrypt


@cache
def _libcrypt() -> ctypes.CDLL:
    name = ctypes.util.find_library("crypt")
    if name is None:
        raise InputError("libcrypt (libxcrypt) is not installed; it computes password hashes")
    lib = ctypes.CDLL(name)
    lib.crypt_rn.restype = ctypes.c_char_p
    lib.crypt_rn.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int]
    return lib


def _crypt(password: str, setting: str, buf: ctypes.Array[ctypes.c_char]) -> str | None:
    out = _libcrypt().crypt_rn(password.encode("utf-8", "replace"), setting.encode(), buf, _CRYPT_DATA_SIZE)
    return out.decode("ascii", "replace") if out else None


# --- md5crypt / apr1 (FreeBSD md5crypt; Apache uses it with the magic "$apr1$") ---------------------

_B64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _to64(value: int, n: int) -> str:
    out = []
    for _ in range(n):
        out.append(_B64[value & 0x3F])
        value >>= 6
    return "".join(out)


def md5crypt(password: bytes, salt: bytes, magic: bytes = b"$1$") -> str:
    """md5crypt as in FreeBSD's crypt-md5.c (the reference Apache's apr1 follows)."""
    salt = salt[:8]
    alt = hashlib.md5(password + salt + password).digest()  # noqa: S324 - the format is MD5 by definition
    ctx = hashlib.md5(password + magic + salt)  # noqa: S324
    for i in range(len(password), 0, -16):
        ctx.update(alt[: min(16, i)])
    i = len(password)
    while i:
        ctx.update(b"\x00" if i & 1 else password[:1])
        i >>= 1
    final = ctx.digest()
    for i in range(1000):
        c = hashlib.md5()  # noqa: S324
        c.update(password if i & 1 else final)
        if i % 3:
            c.update(salt)
        if i % 7:
            c.update(password)
        c.update(final if i & 1 else password)
        final = c.digest()
    f = final
    encoded = "".join(
        _to64((f[a] << 16) | (f[b] << 8) | f[c], 4)
        for a, b, c in ((0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5))
    ) + _to64(f[11], 2)
    return f"{magic.decode()}{salt.decode('latin-1')}${encoded}"


def _apr1(password: str, stored: str) -> bool:
    salt = stored[len("$apr1$") :].split("$", 1)[0].encode("latin-1")
    return hmac.compare_digest(md5crypt(password.encode("utf-8", "replace"), salt, b"$apr1$"), stored)


def _sha1(password: str, stored: str) -> bool:
    digest = base64.b64encode(hashlib.sha1(password.encode("utf-8", "replace")).digest()).decode()  # noqa: S324
    return hmac.compare_digest("{SHA}" + digest, stored)


@dataclass(frozen=True, slots=True)
class Cracked:
    password: str
    entry: CredentialEntry
    tried: int
    limited_to: int | None  # slow hashes: only this many candidates were tried


def _try(kind: HashKind, stored: str, candidates: list[CredentialEntry]) -> CredentialEntry | None:
    if kind is HashKind.PLAIN:
        return next((c for c in candidates if hmac.compare_digest(c.password, stored)), None)
    if kind is HashKind.APR1:
        return next((c for c in candidates if _apr1(c.password, stored)), None)
    if kind is HashKind.SHA1:
        return next((c for c in candidates if _sha1(c.password, stored)), None)
    buf = ctypes.create_string_buffer(_CRYPT_DATA_SIZE)
    for c in candidates:
        out = _crypt(c.password, stored, buf)
        if out is not None and hmac.compare_digest(out, stored):
            return c
    return None


THREADS = 2


def crypt_hash(password: str, setting: str) -> str:
    """``crypt(3)`` of ``password`` with ``setting`` (``$6$salt$``, ``$2b$05$...``, 2-char DES salt)."""
    out = _crypt(password, setting, ctypes.create_string_buffer(_CRYPT_DATA_SIZE))
    if out is None or out.startswith("*"):
        raise InputError(f"libcrypt cannot hash with the setting {setting!r}")
    return out


def sha512_crypt(password: str, salt: str) -> str:
    """``$6$`` hash of ``password`` (libxcrypt), for building test and example images."""
    return crypt_hash(password, f"$6${salt}$")


def crack(kind: HashKind, stored: str, user: str, creds: DefaultCredentials | None = None) -> Cracked | None:
    """The default password behind ``stored``, if the list has it."""
    creds = creds or default_credentials()
    candidates = creds.candidates(user)
    limit = SLOW_LIMIT.get(kind)
    if limit is not None:
        candidates = candidates[:limit]
    if kind in (HashKind.PLAIN, HashKind.SHA1, HashKind.APR1) or len(candidates) < 64:
        hit = _try(kind, stored, candidates)
    else:
        # libxcrypt releases the GIL: one slice of the list per thread
        slices = [candidates[i::THREADS] for i in range(THREADS)]
        with ThreadPoolExecutor(THREADS) as pool:
            hits: Iterable[CredentialEntry | None] = pool.map(lambda s: _try(kind, stored, s), slices)
            found = [h for h in hits if h is not None]
        hit = found[0] if found else None
    if hit is None:
        return None
    return Cracked(hit.password, hit, len(candidates), limit)
