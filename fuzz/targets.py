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


def firmware_accounts(data: bytes) -> None:
    from nospy.firmware import accounts

    text = _text(data)
    accounts.parse_passwd(text)
    accounts.parse_shadow(text)
    accounts.parse_htpasswd(text)


def firmware_inittab(data: bytes) -> None:
    from nospy.firmware import boot

    boot.parse_inittab(_text(data))


def firmware_init_script(data: bytes) -> None:
    from nospy.firmware import boot

    boot.parse_script(_text(data))


def firmware_service_configs(data: bytes) -> None:
    from nospy.firmware import boot

    text = _text(data)
    boot.parse_inetd(text)
    boot.parse_xinetd(text)
    boot.parse_systemd_unit(text)
    boot.parse_crontab(text, with_user=True)


def firmware_keys(data: bytes) -> None:
    from nospy.firmware import keys

    keys.find_private_keys(data, "fuzz.p12")
    keys.parse_authorized_keys(_text(data))


def firmware_elf(data: bytes) -> None:
    from nospy.firmware import listeners

    listeners.read_elf(data, "fuzz.elf")


def firmware_strings(data: bytes) -> None:
    from nospy.firmware import credentials, endpoints

    text = _text(data)
    credentials.find_credentials(text, binary=False)
    endpoints.find_endpoints(text)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "agreement_yaml": agreement_yaml,
    "agreement_payload": agreement_payload,
    "dsse_envelope": dsse_envelope,
    "verifier_key": verifier_key,
    "signing_key": signing_key,
    "signed_note": signed_note,
    "firmware_accounts": firmware_accounts,
    "firmware_inittab": firmware_inittab,
    "firmware_init_script": firmware_init_script,
    "firmware_service_configs": firmware_service_configs,
    "firmware_keys": firmware_keys,
    "firmware_elf": firmware_elf,
    "firmware_strings": firmware_strings,
}
