"""Fuzz targets: one function per parser of untrusted input.

Each takes raw bytes and must either succeed or raise `nospy.errors.NospyError`; anything else is a
bug. The test suite runs every target under hypothesis (tests/test_fuzz.py); ``fuzz/run.py`` runs one
under atheris for coverage-guided fuzzing.
"""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
from collections.abc import Callable
from pathlib import Path

from nospy import dsse, keys
from nospy.agreement import from_payload
from nospy.agreement.load import parse_yaml
from nospy.deployment import parse_inventory, parse_plan, parse_zones, regions
from nospy.deployment.placement import check_placement
from nospy.deployment.residency import check_residency
from nospy.errors import NospyError
from nospy.firmware.unpack import Limits, open_data
from nospy.firmware.unpack.base import Handler
from nospy.firmware.unpack.handlers import HANDLERS
from nospy.fleet import parse_list
from nospy.ledger import checkpoint as ledger_checkpoint
from nospy.ledger import merkle, proof, release, tiles, witness
from nospy.server.app import display_name
from nospy.traffic import read as traffic_read
from nospy.traffic.dns import parse_response
from nospy.traffic.interface import Reader

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


_UNPACK_LIMITS = Limits(max_bytes=64 << 20, timeout=2)


def _unpack_with(handlers: tuple[Handler, ...]) -> Callable[[bytes], None]:
    """Unpack with only ``handlers`` and read every file: each unreadable part must be a NospyError."""

    def target(data: bytes) -> None:
        tree = open_data(data, "fuzz.bin", _UNPACK_LIMITS, handlers)
        for entry in tree.files():
            with contextlib.suppress(NospyError):
                tree.read(entry.path, 1 << 20)

    return target


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


_LIST_TMP = tempfile.TemporaryDirectory(prefix="nospy-fuzz-fleet-")  # removed when the process ends
_LIST_DIR = Path(_LIST_TMP.name)
(_LIST_DIR / "rx200-1.0.bin").write_bytes(b"image")


def fleet_list(data: bytes) -> None:
    # a fleet scan's list of image paths: every path returned names an existing file, each once
    paths = parse_list(data, _LIST_DIR, "fuzz-list.txt")
    assert paths and all(p.is_file() for p in paths) and len(set(paths)) == len(paths)


def log_checkpoint(data: bytes) -> None:
    ledger_checkpoint.open_checkpoint(data, [_VKEY], cosigners=[ledger_checkpoint.CosignerKey.from_verifier(_VKEY)])


def cosigner_key(data: bytes) -> None:
    ledger_checkpoint.parse_cosigner_key(_text(data))


def tile_path(data: bytes) -> None:
    tiles.parse_tile_path(_text(data))


def entry_bundle(data: bytes) -> None:
    tiles.parse_bundle(data)
    tiles.split_tile(data, len(data) // 32)


def tlog_proof(data: bytes) -> None:
    parsed = proof.parse_proof(data)
    cp = ledger_checkpoint.open_checkpoint(parsed.checkpoint, [_VKEY]).checkpoint
    leaf = merkle.leaf_hash(parsed.extra or b"")
    merkle.verify_inclusion(parsed.index, cp.size, leaf, list(parsed.proof), cp.root)


def release_manifest(data: bytes) -> None:
    release.read_release(data, [_VKEY])


_WITNESS_STATE = tempfile.TemporaryDirectory(prefix="nospy-fuzz-witness-")  # removed when the process ends
_WITNESS = witness.Witness(
    keys.parse_signing_key("PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"),
    [_VKEY],
    Path(_WITNESS_STATE.name) / "state.json",
)


def witness_add_checkpoint(data: bytes) -> None:
    assert _WITNESS.add_checkpoint(data).status in {200, 400, 403, 404, 409, 422}


_SIGNER = keys.parse_signing_key("PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")
# the 2-entry log ("d", "e") of tests/test_fuzz.py, as the checkpoint the monitor saw last
_SEEN_ROOT = merkle.root_of_units([merkle.leaf_hash(b"d"), merkle.leaf_hash(b"e")])
_SEEN = ledger_checkpoint.sign_checkpoint(ledger_checkpoint.Checkpoint("PeterNeumann", 2, _SEEN_ROOT), _SIGNER)


class _HostileLog:
    """A log whose every tile and entry bundle is the fuzz input, under a validly signed checkpoint."""

    location = "fuzz-log"

    def __init__(self, data: bytes) -> None:
        self.data = data
        size = 1 + (data[0] if data else 0)
        root = hashlib.sha256(data).digest()
        self.note = ledger_checkpoint.sign_checkpoint(ledger_checkpoint.Checkpoint("PeterNeumann", size, root), _SIGNER)

    def read(self, path: str) -> bytes:
        return self.note.encode() if path == "checkpoint" else self.data


def monitor_log_step(data: bytes) -> None:
    """`nospy monitor` following a hostile log: consistency from the checkpoint seen, then new entries."""
    from nospy.monitor import follow

    source = _HostileLog(data)
    signed = follow.latest(source, _VKEY)
    with contextlib.suppress(NospyError):  # almost always a fork: the root is no real tree's
        follow.step(source, _VKEY, signed, _SEEN)
    # and the entries, read and proved as if the step had passed
    st = follow.Step(signed, 2, tiles.TileReader(source.read, signed.checkpoint.size))
    for index, entry in follow.entries(source, signed.checkpoint.size, 2):
        with contextlib.suppress(NospyError):
            follow.verify_included(st, index, entry)
        with contextlib.suppress(NospyError):
            release.read_release(entry, None)


_IMAGE_STORE = tempfile.TemporaryDirectory(prefix="nospy-fuzz-images-")  # removed when the process ends


def monitor_image_name(data: bytes) -> None:
    """A release's subject name (from the log) may only name a file directly inside the image store."""
    from nospy.monitor.images import candidates

    store = Path(_IMAGE_STORE.name)
    for path in candidates(store, "0" * 64, data.decode("utf-8", "surrogateescape")):
        assert path.parent in (store, store / "00"), path
        assert path.name not in ("", ".", "..")


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
    **TRAFFIC_TARGETS,
    "agreement_yaml": agreement_yaml,
    "agreement_payload": agreement_payload,
    "dsse_envelope": dsse_envelope,
    "verifier_key": verifier_key,
    "signing_key": signing_key,
    "signed_note": signed_note,
    # one target per unpack handler, and one with all of them (nested images)
    **{f"unpack_{h.NAME}": _unpack_with((h,)) for h in HANDLERS},
    "unpack_image": _unpack_with(HANDLERS),
    # the squashfs handler again, seeded with the 2.x and 3.x layouts it reads in process (`squashfs3`)
    "unpack_squashfs3": _unpack_with(tuple(h for h in HANDLERS if h.NAME == "squashfs")),
    "inventory_csv": inventory_csv,
    "inventory_json": inventory_json,
    "inventory_yaml": inventory_yaml,
    "zones_yaml": zones_yaml,
    "terraform_plan": terraform_plan,
    "terraform_state": terraform_plan,  # the same reader, seeded with a state file as Terraform stores it
    "upload_filename": upload_filename,
    "fleet_list": fleet_list,
    "log_checkpoint": log_checkpoint,
    "cosigner_key": cosigner_key,
    "tile_path": tile_path,
    "entry_bundle": entry_bundle,
    "tlog_proof": tlog_proof,
    "release_manifest": release_manifest,
    "witness_add_checkpoint": witness_add_checkpoint,
    "monitor_log_step": monitor_log_step,
    "monitor_image_name": monitor_image_name,
    "firmware_accounts": firmware_accounts,
    "firmware_inittab": firmware_inittab,
    "firmware_init_script": firmware_init_script,
    "firmware_service_configs": firmware_service_configs,
    "firmware_keys": firmware_keys,
    "firmware_elf": firmware_elf,
    "firmware_strings": firmware_strings,
}
