"""Private keys and authorized_keys shipped in an image.

Recognised private key formats: PEM (PKCS#1 RSA, SEC1 EC, DSA, PKCS#8 plain and encrypted, RFC 7468),
OpenSSH's own (``openssh-key-v1``, PROTOCOL.key), PuTTY ``.ppk`` (v2 and v3), Dropbear's binary
host keys (a length-prefixed key type then the private fields, as ``dropbearkey`` writes them),
DER PKCS#8 and PKCS#12 bundles. Certificates, CA bundles and public keys carry no private material
and are not reported. Each key is parsed with ``cryptography`` where it can be, so the finding says
its type and size; a block that does not parse is still reported (a damaged key is still shipped).
"""

from __future__ import annotations

import base64
import hashlib
import posixpath
import re
import struct
from dataclasses import dataclass
from functools import partial

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from nospy.findings import Finding
from nospy.firmware.context import Context, Detector, finding

__all__ = ["KEYS", "FoundKey", "find_private_keys", "parse_authorized_keys"]

_PEM = re.compile(
    rb"-----BEGIN ((?:RSA |EC |DSA |ENCRYPTED |OPENSSH )?PRIVATE KEY)-----\r?\n"
    rb"((?:[A-Za-z0-9+/=]{1,128}\r?\n|[A-Za-z-]{1,32}: [^\n]{0,200}\n|\r?\n){1,800})-----END \1-----",
)
_PPK = re.compile(rb"PuTTY-User-Key-File-([23]): ([\w@.-]+)\r?\n")
_DROPBEAR_TYPES = (b"ssh-rsa", b"ssh-dss", b"ssh-ed25519", b"ecdsa-sha2-nistp256", b"ecdsa-sha2-nistp384",
                   b"ecdsa-sha2-nistp521")  # fmt: skip
_PKCS12_DATA_OID = bytes.fromhex("06092a864886f70d010701")  # 1.2.840.113549.1.7.1 (pkcs7-data)


@dataclass(frozen=True, slots=True)
class FoundKey:
    format: str
    algorithm: str
    bits: int | None
    offset: int
    encrypted: bool
    fingerprint: str | None  # SHA-256 of the public key (DER SubjectPublicKeyInfo or SSH blob)


def _describe(key: object) -> tuple[str, int | None]:
    if isinstance(key, rsa.RSAPrivateKey):
        return "rsa", key.key_size
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return f"ecdsa-{key.curve.name}", key.key_size
    if isinstance(key, dsa.DSAPrivateKey):
        return "dsa", key.key_size
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519", 256
    if isinstance(key, ed448.Ed448PrivateKey):
        return "ed448", 456
    return type(key).__name__, None


def _fingerprint(key: object) -> str | None:
    public = getattr(key, "public_key", None)
    if public is None:
        return None
    der = public().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode().rstrip("=")


def _load(loader: object, data: bytes) -> tuple[str, int | None, str | None, bool]:
    """(algorithm, bits, fingerprint, encrypted) of one key blob."""
    try:
        key = loader(data, None)  # type: ignore[operator]
    except TypeError:  # "Password was not given but private key is encrypted"
        return "unknown", None, None, True
    except (ValueError, IndexError, struct.error, NotImplementedError, UnsupportedAlgorithm):
        return "unknown", None, None, False  # still private key material: reported without details
    algorithm, bits = _describe(key)
    return algorithm, bits, _fingerprint(key), False


def _dropbear(data: bytes) -> FoundKey | None:
    """A Dropbear private key file: uint32 length, key type name, then the private fields."""
    if len(data) < 16 or len(data) > 16384:
        return None
    (n,) = struct.unpack(">I", data[:4])
    kind = data[4 : 4 + n]
    if kind not in _DROPBEAR_TYPES:
        return None
    bits = {b"ssh-ed25519": 256, b"ecdsa-sha2-nistp256": 256, b"ecdsa-sha2-nistp384": 384,
            b"ecdsa-sha2-nistp521": 521}.get(kind)  # fmt: skip
    if kind in (b"ssh-rsa", b"ssh-dss") and len(data) > 8 + n:
        (elen,) = struct.unpack(">I", data[4 + n : 8 + n])
        off = 8 + n + elen
        if off + 4 <= len(data):
            (mlen,) = struct.unpack(">I", data[off : off + 4])
            bits = max(0, mlen - 1) * 8  # the modulus is a positive mpint: one leading zero byte
    return FoundKey("dropbear", kind.decode(), bits, 0, False, None)


def find_private_keys(data: bytes, name: str) -> list[FoundKey]:
    """Every private key in one file's bytes."""
    out: list[FoundKey] = []
    for m in _PEM.finditer(data):
        label = m.group(1).decode()
        block = m.group(0)
        if label == "OPENSSH PRIVATE KEY":
            algorithm, bits, fp, enc = _load(serialization.load_ssh_private_key, block)
            enc = enc or b"bcrypt" in base64.b64decode(b"".join(m.group(2).split())[:200] + b"===", validate=False)
            out.append(FoundKey("openssh", algorithm, bits, m.start(), enc, fp))
        else:
            algorithm, bits, fp, enc = _load(serialization.load_pem_private_key, block)
            encrypted = enc or label == "ENCRYPTED PRIVATE KEY" or b"Proc-Type: 4,ENCRYPTED" in block
            out.append(FoundKey(f"pem ({label})", algorithm, bits, m.start(), encrypted, fp))
    for m in _PPK.finditer(data):
        tail = data[m.end() : m.end() + 64]
        encrypted = not tail.startswith(b"Encryption: none")
        out.append(FoundKey(f"putty v{m.group(1).decode()}", m.group(2).decode(), None, m.start(), encrypted, None))
    if out:
        return out
    if (dropbear := _dropbear(data)) is not None:
        return [dropbear]
    if data[:1] == b"\x30" and len(data) < 65536:
        lower = name.lower()
        if lower.endswith((".p12", ".pfx")) or _PKCS12_DATA_OID in data[:64]:
            try:
                key, _, _ = pkcs12.load_key_and_certificates(data, None)
            except (ValueError, UnsupportedAlgorithm):
                # a PFX that needs a password (or none at all): PFX version 3 then pkcs7-data
                if _PKCS12_DATA_OID in data[:64] and b"\x02\x01\x03" in data[:16]:
                    return [FoundKey("pkcs12", "unknown", None, 0, True, None)]
                return []
            if key is not None:
                algorithm, bits = _describe(key)
                return [FoundKey("pkcs12", algorithm, bits, 0, False, _fingerprint(key))]
            return []
        if lower.endswith((".key", ".der", ".pk8", ".pkcs8")):
            algorithm, bits, fp, enc = _load(serialization.load_der_private_key, data)
            if algorithm != "unknown" or enc:
                return [FoundKey("der pkcs8", algorithm, bits, 0, enc, fp)]
    return []


_KEY_TYPES = re.compile(
    r"(?:^|\s)((?:ssh-(?:rsa|dss|ed25519|ed448)|ecdsa-sha2-nistp\d+|sk-[\w@.-]+)(?:-cert-v01@openssh\.com)?)\s+([A-Za-z0-9+/=]{16,})"
)


def parse_authorized_keys(text: str) -> list[tuple[int, str, str, str]]:
    """(line, key type, SHA256 fingerprint, comment) of each key in an authorized_keys file."""
    out = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _KEY_TYPES.search(line)
        if not m:
            continue
        try:
            blob = base64.b64decode(m.group(2), validate=True)
        except ValueError:
            continue
        fp = "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
        out.append((n, m.group(1), fp, line[m.end() :].strip()))
    return out


def _candidate(size: int, path: str) -> bool:
    return 0 < size <= 4 << 20 and not path.startswith(("/proc/", "/sys/"))


_SUFFIXES = (".p12", ".pfx", ".key", ".der", ".pk8", ".pkcs8")
ANALYSERS = tuple(f"keys{s}" for s in ("", *_SUFFIXES))  # the content cache's names of this detector's results


def _suffix(path: str) -> str:
    lower = path.lower()
    return next((s for s in _SUFFIXES if lower.endswith(s)), "")


def _in_file(data: bytes, suffix: str) -> list[tuple[list[object], int | None]]:
    """The private keys in one file's bytes, each with its line (cached by content and name suffix)."""
    out: list[tuple[list[object], int | None]] = []
    if b"PRIVATE KEY" not in data and b"PuTTY-User-Key-File" not in data and data[:1] not in (b"\x00", b"\x30"):
        return out  # no PEM or PuTTY marker, and not DER (a SEQUENCE) or a binary store
    for key in find_private_keys(data, "file" + suffix):
        line = data.count(b"\n", 0, key.offset) + 1 if key.offset or data[:1] == b"-" else None
        out.append(([key.format, key.algorithm, key.bits, key.offset, key.encrypted, key.fingerprint], line))
    return out


def _run(ctx: Context) -> list[Finding]:
    allowed_private: set[str] = set()
    allowed_authorized: set[str] = set()
    if ctx.agreement is not None and ctx.agreement.keys is not None:
        allowed_private = set(ctx.agreement.keys.private)
        allowed_authorized = set(ctx.agreement.keys.authorized)
    findings: list[Finding] = []
    keys: list[dict[str, object]] = []
    for entry in ctx.files():
        if not _candidate(entry.size, entry.path):
            continue
        base = posixpath.basename(entry.path)
        if base.startswith("authorized_keys"):
            data = ctx.read(entry.path)
            for n, kind, fp, comment in parse_authorized_keys((data or b"").decode("latin-1")):
                ev = ctx.evidence(entry.path, n)
                keys.append({"path": entry.path, "kind": "authorized", "type": kind, "fingerprint": fp})
                if entry.path not in allowed_authorized:
                    findings.append(
                        finding(
                            "key.authorized",
                            f"authorized key {kind} {fp} ({comment or 'no comment'}) lets its holder log in",
                            ev,
                            type=kind,
                            fingerprint=fp,
                            comment=comment,
                        )
                    )
            continue
        # the name matters only through its suffix (.p12, .key ...): that suffix is part of the cache key
        suffix = _suffix(entry.path)
        for fields, line in ctx.analyse(f"keys{suffix}", entry, partial(_in_file, suffix=suffix)) or []:
            key = FoundKey(*fields)
            ev = ctx.evidence(entry.path, line, key.offset)
            size = f" {key.bits}-bit" if key.bits else ""
            keys.append({"path": entry.path, "kind": "private", "format": key.format, "algorithm": key.algorithm})
            if entry.path in allowed_private:
                continue
            findings.append(
                finding(
                    "key.private",
                    f"{key.algorithm}{size} private key ({key.format}{', encrypted' if key.encrypted else ''})",
                    ev,
                    format=key.format,
                    algorithm=key.algorithm,
                    bits=key.bits,
                    encrypted=key.encrypted,
                    fingerprint=key.fingerprint,
                )
            )
    ctx.facts["keys"] = keys
    return findings


KEYS = Detector(
    name="keys",
    rules=("key.private", "key.authorized"),
    rationale="A private key in every unit lets whoever extracts it impersonate or decrypt all of them; "
    "a shipped authorized_keys entry is a login for the key's holder.",
    references=(
        "https://www.rfc-editor.org/rfc/rfc7468",
        "https://github.com/openssh/openssh-portable/blob/master/PROTOCOL.key",
        "PuTTY user manual, appendix C: PPK file format",
        "https://www.rfc-editor.org/rfc/rfc7292",
    ),
    run=_run,
)
