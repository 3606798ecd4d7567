"""DSSE envelopes (https://github.com/secure-systems-lab/dsse, protocol v1.0) signed with nospy keys.

The signature covers PAE(payloadType, payload), never the JSON around it. ``keyid`` is the signer's
signed-note ``name+hash`` label, a hint only: verification checks the signature itself.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nospy.errors import InputError, VerificationError
from nospy.keys import SigningKey, VerifierKey

__all__ = ["Envelope", "Signature", "pae", "parse", "sign", "verify"]

MAX_ENVELOPE_BYTES = 16 << 20


class Signature(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    keyid: str = ""
    sig: str


class Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    payload: str
    payload_type: str = Field(alias="payloadType")
    signatures: tuple[Signature, ...]

    @property
    def payload_bytes(self) -> bytes:
        return _b64(self.payload, "payload")

    def to_json(self) -> str:
        return json.dumps(self.model_dump(by_alias=True), indent=2) + "\n"


def pae(payload_type: str, payload: bytes) -> bytes:
    """Pre-Authentication Encoding: ``DSSEv1 SP LEN(type) SP type SP LEN(body) SP body``."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def _b64(text: str, what: str) -> bytes:
    # DSSE allows standard or URL-safe base64, padded or not
    try:
        padded = text + "=" * (-len(text) % 4)
        if "-" in text or "_" in text:
            return base64.urlsafe_b64decode(padded.encode())
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InputError(f"DSSE {what} is not valid base64") from exc


def parse(data: bytes | str, source: str = "envelope") -> Envelope:
    """Parse a DSSE envelope from JSON."""
    if len(data) > MAX_ENVELOPE_BYTES:
        raise InputError(f"{source}: larger than {MAX_ENVELOPE_BYTES} bytes")
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise InputError(f"{source}: not JSON: {exc}") from None
    try:
        env = Envelope.model_validate(obj)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "(document)"
        raise InputError(f"{source}: not a DSSE envelope: {where}: {first['msg']}") from None
    env.payload_bytes  # noqa: B018 - reject a payload that is not base64 when reading, not later
    return env


def sign(payload_type: str, payload: bytes, key: SigningKey) -> Envelope:
    """A new envelope with one signature."""
    sig = key.sign(pae(payload_type, payload))
    return Envelope(
        payload=base64.b64encode(payload).decode(),
        payload_type=payload_type,
        signatures=(Signature(keyid=key.verifier.label, sig=base64.b64encode(sig).decode()),),
    )


def add_signature(env: Envelope, key: SigningKey) -> Envelope:
    """``env`` with ``key``'s signature added; signing twice with one key is an error."""
    label = key.verifier.label
    if any(s.keyid == label for s in env.signatures):
        raise InputError(f"already signed by {label}")
    sig = key.sign(pae(env.payload_type, env.payload_bytes))
    new = Signature(keyid=label, sig=base64.b64encode(sig).decode())
    return env.model_copy(update={"signatures": (*env.signatures, new)})


def verify(env: Envelope, keys: Sequence[VerifierKey], payload_type: str) -> bytes:
    """Return the payload if every key in ``keys`` signed it; raise `VerificationError` otherwise.

    An empty ``keys`` is an error: a check that trusts nobody must not pass.
    """
    if not keys:
        raise VerificationError("no verifier key given: name every key that must have signed")
    if env.payload_type != payload_type:
        raise VerificationError(f"payload type is {env.payload_type!r}, expected {payload_type!r}")
    message = pae(env.payload_type, env.payload_bytes)
    problems = []
    for key in keys:
        candidates = [s for s in env.signatures if s.keyid in ("", key.label)]
        if not candidates:
            problems.append(f"{key.label} did not sign")
            continue
        reasons = []
        for cand in candidates:
            try:
                raw = _b64(cand.sig, f"signature by {cand.keyid or '(no keyid)'}")
            except InputError as exc:
                reasons.append(f"malformed signature: {exc}")
                continue
            if len(raw) != 64:
                reasons.append(f"malformed signature: {len(raw)} bytes, Ed25519 signatures are 64")
                continue
            try:
                key.verify(message, raw)
                break
            except VerificationError:
                reasons.append("signature does not match the payload (was it changed after signing?)")
        else:
            problems.append(f"{key.label}: {'; '.join(dict.fromkeys(reasons))}")
    if problems:
        raise VerificationError("; ".join(problems))
    return env.payload_bytes
