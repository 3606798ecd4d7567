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
from nospy.deployment import parse_inventory, parse_plan, parse_zones, regions
from nospy.deployment.placement import check_placement
from nospy.deployment.residency import check_residency
from nospy.server.app import display_name

_VKEY = keys.parse_verifier_key("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


_PLACED = parse_yaml(
    "nospy: 1\nid: f\ntitle: t\nvendor: ACME Networks\ncustomer: c\ndata: {countries: [IN]}\n"
    "placement: {zones: [access], max_share_percent: 35, excluded_sites: [nuclear]}\n",
    "fuzz-agreement.yaml",
)


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


def _inventory(data: bytes, name: str) -> None:
    check_placement(_PLACED, parse_inventory(data, name), parse_zones(b"", "z.yaml"), name)


def inventory_csv(data: bytes) -> None:
    _inventory(data, "fuzz.csv")


def inventory_json(data: bytes) -> None:
    _inventory(data, "fuzz.json")


def inventory_yaml(data: bytes) -> None:
    _inventory(data, "fuzz.yaml")


def zones_yaml(data: bytes) -> None:
    parse_zones(data, "fuzz-zones.yaml")


def terraform_plan(data: bytes) -> None:
    check_residency(_PLACED, parse_plan(data, "fuzz-plan.json").stores(), regions.load(), "fuzz-plan.json")


def upload_filename(data: bytes) -> None:
    # a multipart filename from a request: what is kept must be a bare, printable display name
    name = display_name(data.decode("utf-8", "surrogateescape"))
    assert name not in ("", ".", "..") and len(name) <= 200 and name.isprintable()
    assert "/" not in name and "\\" not in name


TARGETS: dict[str, Callable[[bytes], None]] = {
    "agreement_yaml": agreement_yaml,
    "agreement_payload": agreement_payload,
    "dsse_envelope": dsse_envelope,
    "verifier_key": verifier_key,
    "signing_key": signing_key,
    "signed_note": signed_note,
    "inventory_csv": inventory_csv,
    "inventory_json": inventory_json,
    "inventory_yaml": inventory_yaml,
    "zones_yaml": zones_yaml,
    "terraform_plan": terraform_plan,
    "terraform_state": terraform_plan,  # the same reader, seeded with a state file as Terraform stores it
    "upload_filename": upload_filename,
}
