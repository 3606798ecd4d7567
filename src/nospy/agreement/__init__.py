"""Agreements: the schema, loading with line-numbered errors, canonical JSON and DSSE signatures.

Public surface: `Agreement` (and its section models in `nospy.agreement.schema`), `load`,
`canonical_json`, `sign`, `verify`, `read_envelope`, `template`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import rfc8785

from nospy import dsse
from nospy._fileio import read_limited
from nospy.agreement.load import MAX_AGREEMENT_BYTES, parse_yaml, validate
from nospy.agreement.schema import Agreement, Clause
from nospy.errors import InputError
from nospy.keys import SigningKey, VerifierKey

__all__ = [
    "PAYLOAD_TYPE",
    "Agreement",
    "Clause",
    "canonical_json",
    "from_payload",
    "load",
    "read_envelope",
    "sign",
    "template",
    "verify",
]

PAYLOAD_TYPE = "application/vnd.nospy.agreement+json"


def canonical_json(agreement: Agreement) -> bytes:
    """The agreement as RFC 8785 canonical JSON: the exact bytes that parties sign.

    Sections that are absent stay absent (they are not part of the agreement); defaults inside a
    section are written out, so the signed text says everything the checks will assume.
    """
    return rfc8785.dumps(agreement.model_dump(mode="json", exclude_none=True))


def from_payload(payload: bytes, source: str) -> Agreement:
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError) as exc:
        raise InputError(f"{source}: signed payload is not JSON: {exc}") from None
    return validate(data, f"{source} (payload)")


def _is_envelope(data: bytes) -> bool:
    return data.lstrip()[:1] == b"{" and b'"payloadType"' in data


def read_envelope(path: Path) -> dsse.Envelope:
    """A signed agreement (DSSE envelope) from ``path``; its signatures are not checked here."""
    data = read_limited(path, dsse.MAX_ENVELOPE_BYTES)
    env = dsse.parse(data, str(path))
    if env.payload_type != PAYLOAD_TYPE:
        raise InputError(f"{path}: payload type is {env.payload_type!r}, not a nospy agreement")
    return env


def load(path: Path) -> Agreement:
    """An agreement from YAML, JSON or a DSSE envelope (signatures NOT checked: use `verify`)."""
    data = read_limited(path, max(MAX_AGREEMENT_BYTES, dsse.MAX_ENVELOPE_BYTES))
    if _is_envelope(data):
        return from_payload(read_envelope(path).payload_bytes, str(path))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None
    # YAML is a superset of JSON, so one parser serves both with line numbers
    return parse_yaml(text, str(path))


def sign(path: Path, key: SigningKey) -> dsse.Envelope:
    """Sign the agreement at ``path``.

    A YAML or JSON agreement gives a new envelope over its canonical JSON. An envelope gets one more
    signature over the same payload, after checking the payload is a valid, canonical agreement.
    """
    data = read_limited(path, max(MAX_AGREEMENT_BYTES, dsse.MAX_ENVELOPE_BYTES))
    if _is_envelope(data):
        env = read_envelope(path)
        agreement = from_payload(env.payload_bytes, str(path))
        if canonical_json(agreement) != env.payload_bytes:
            raise InputError(f"{path}: payload is not the canonical JSON of the agreement; refusing to sign")
        return dsse.add_signature(env, key)
    return dsse.sign(PAYLOAD_TYPE, canonical_json(load(path)), key)


def verify(env: dsse.Envelope, keys: Sequence[VerifierKey], source: str = "envelope") -> Agreement:
    """The agreement in ``env`` if every one of ``keys`` signed it; `VerificationError` otherwise."""
    payload = dsse.verify(env, keys, PAYLOAD_TYPE)
    return from_payload(payload, source)


def template() -> str:
    """A commented agreement covering every section, to start from."""
    return resources.files("nospy.agreement").joinpath("template.yaml").read_text(encoding="utf-8")
