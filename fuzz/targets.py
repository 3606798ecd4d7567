"""Fuzz targets: one function per parser of untrusted input.

Each takes raw bytes and must either succeed or raise `nospy.errors.NospyError`; anything else is a
bug. The test suite runs every target under hypothesis (tests/test_fuzz.py); ``fuzz/run.py`` runs one
under atheris for coverage-guided fuzzing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from nospy import dsse, keys
from nospy.agreement import from_payload
from nospy.agreement.load import parse_yaml
from nospy.errors import NospyError
from nospy.firmware.unpack import Limits, open_data
from nospy.firmware.unpack.base import Handler
from nospy.firmware.unpack.handlers import HANDLERS

_VKEY = keys.parse_verifier_key("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def agreement_yaml(data: bytes) -> None:
    parse_yaml(_text(data), "fuzz.yaml")


def agreement_payload(data: bytes) -> None:
    from_payload(data, "fuzz.json")


def dsse_envelope(data: bytes) -> None:
    env = dsse.parse(data, "fuzz.dsse.json")
    dsse.verify(env, [_VKEY], env.payload_type)


def verifier_key(data: bytes) -> None:
    keys.parse_verifier_key(_text(data))


def signing_key(data: bytes) -> None:
    keys.parse_signing_key(_text(data))


def signed_note(data: bytes) -> None:
    keys.open_note(data, [_VKEY])


_UNPACK_LIMITS = Limits(max_bytes=64 << 20, timeout=2)


def _unpack_with(handlers: tuple[Handler, ...]) -> Callable[[bytes], None]:
    """Unpack with only ``handlers`` and read every file: each unreadable part must be a NospyError."""

    def target(data: bytes) -> None:
        tree = open_data(data, "fuzz.bin", _UNPACK_LIMITS, handlers)
        for entry in tree.files():
            with contextlib.suppress(NospyError):
                tree.read(entry.path, 1 << 20)

    return target


TARGETS: dict[str, Callable[[bytes], None]] = {
    "agreement_yaml": agreement_yaml,
    "agreement_payload": agreement_payload,
    "dsse_envelope": dsse_envelope,
    "verifier_key": verifier_key,
    "signing_key": signing_key,
    "signed_note": signed_note,
    # one target per unpack handler, and one with all of them (nested images)
    **{f"unpack_{h.NAME}": _unpack_with((h,)) for h in HANDLERS},
    "unpack_image": _unpack_with(HANDLERS),
}
