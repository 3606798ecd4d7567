"""Fuzz targets: one function per parser of untrusted input.

Each takes raw bytes and must either succeed or raise `nospy.errors.NospyError`; anything else is a
bug. The test suite runs every target under hypothesis (tests/test_fuzz.py); ``fuzz/run.py`` runs one
under atheris for coverage-guided fuzzing.
"""

from __future__ import annotations

from collections.abc import Callable

from nospy import dsse, keys
from nospy.agreement import from_payload
from nospy.agreement.load import parse_yaml
from nospy.traffic import read as traffic_read
from nospy.traffic.dns import parse_response
from nospy.traffic.interface import Reader

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


def _traffic(reader: type[Reader]) -> Callable[[bytes], None]:
    def target(data: bytes) -> None:
        import numpy as np

        reader().read(np.frombuffer(data, dtype=np.uint8))

    return target


def traffic_dns_response(data: bytes) -> None:
    parse_response(data)


def traffic_any(data: bytes) -> None:
    """Detection by content, with gzip-compressed input first decompressed."""
    traffic_read.read_bytes(data)


TRAFFIC_TARGETS = {f"traffic_{r.NAME.replace('-', '_')}": _traffic(r) for r in traffic_read.READERS}
TRAFFIC_TARGETS["traffic_any"] = traffic_any
TRAFFIC_TARGETS["traffic_dns_response"] = traffic_dns_response


TARGETS: dict[str, Callable[[bytes], None]] = {
    **TRAFFIC_TARGETS,
    "agreement_yaml": agreement_yaml,
    "agreement_payload": agreement_payload,
    "dsse_envelope": dsse_envelope,
    "verifier_key": verifier_key,
    "signing_key": signing_key,
    "signed_note": signed_note,
}
