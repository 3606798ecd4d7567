"""Every fuzz target in fuzz/targets.py, under hypothesis: only NospyError may escape."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nospy.agreement import template
from nospy.errors import NospyError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fuzz"))
import contextlib

import targets

_EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
_DEPLOYMENT = Path(__file__).resolve().parent / "data" / "deployment"
# a checkpoint of a 2-entry log ("d", "e") signed with the signed-note vector key above
_CHECKPOINT = "PeterNeumann\n2\noC0T2p7jrhuFplnk3f2HWD47MBbx2LewPQf6gaa5qEc=\n\n\u2014 PeterNeumann x08go1PXJAkKd/de4PCXNyZQIejNGLM1/9K5i6vPiL1YTLMJ5iU/Wr8vK7AYgU32sAFbhSqLsqX7Osxbkax0QMVQuQA=\n"

SEEDS = {
    "agreement_yaml": template().encode(),
    "agreement_payload": b'{"nospy":1,"id":"a","title":"t","vendor":"v","customer":"c","services":[{"name":"s","port":22}]}',
    "dsse_envelope": b'{"payload":"e30=","payloadType":"t","signatures":[{"keyid":"k","sig":"AAAA"}]}',
    "verifier_key": b"PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    "signing_key": b"PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
    "inventory_csv": (_EXAMPLES / "devices.csv").read_bytes(),
    "inventory_json": (_DEPLOYMENT / "netbox-devices.json").read_bytes(),
    "inventory_yaml": b"devices:\n  - {name: r1, manufacturer: ACME, role: core, site: s1, tags: [a]}\n",
    "zones_yaml": (_EXAMPLES / "zones.yaml").read_bytes(),
    "terraform_plan": (_EXAMPLES / "plan.json").read_bytes(),
    "terraform_state": (_DEPLOYMENT / "terraform.tfstate").read_bytes(),
    "upload_filename": b"../../etc/passwd\\..\\x\x00\x1b[31m.yaml",
    "signed_note": "text\n\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n".encode(),
    "log_checkpoint": _CHECKPOINT.encode(),
    "cosigner_key": b"PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    "tile_path": b"tile/entries/x001/x234/067.p/8",
    "entry_bundle": b"\x00\x3e" + bytes(62),  # one 62-byte entry, and also two 32-byte hashes
    "tlog_proof": (
        "c2sp.org/tlog-proof@v1\nextra ZQ==\nindex 1\n0HDcW42prqfcD1rUwp2JllIABZyaDOyjq9XaJJLctx0=\n\n" + _CHECKPOINT
    ).encode(),
    "release_manifest": (  # nospy release of a 2-byte image, signed with the vector key
        b'{"payload":"eyJfdHlwZSI6Imh0dHBzOi8vaW4tdG90by5pby9TdGF0ZW1lbnQvdjEiLCJwcmVkaWNhdGUiOnsicHJvZHVjdCI6ImFjbWUt'
        b"cngyMDAiLCJ2ZXJzaW9uIjoiMS4wIn0sInByZWRpY2F0ZVR5cGUiOiJodHRwczovL25vc3B5LmRldi9yZWxlYXNlL3YxIiwic3ViamVjdCI6"
        b"W3siZGlnZXN0Ijp7InNoYTI1NiI6IjA3ZjdhYjQ3NmJjM2E4M2ZhZDYzOWQzNGEwMTJjYjRhNWY4NTk0NDFmMGQyNGMxMTYyN2NhOTY2OTY4"
        b'MzkwMTIifSwibmFtZSI6ImZ3LmJpbiJ9XX0=","payloadType":"application/vnd.in-toto+json","signatures":[{"keyid":'
        b'"PeterNeumann+c74f20a3","sig":"ZZMOo6Lk8FEdCmdZ1trlqb91OzwxNGLTrqpK44kYnoFXiILQ/6OePt8gheo6SiMqEhtoz3vXTlGasEbBt'
        b'vAnAw=="}]}'
    ),
    "witness_add_checkpoint": ("old 1\nKCSnzNosqnIMhcn7oei1tzXuz9sDh45Pjf5sNiUDC8Q=\n\n" + _CHECKPOINT).encode(),
}
# the unpacker's handlers: one tiny image per format, built by tests/data/fuzz/make.sh
_UNPACK_SEEDS = Path(__file__).parent / "data" / "fuzz"
SEEDS |= {f"unpack_{p.stem}": p.read_bytes() for p in _UNPACK_SEEDS.glob("*.bin") if p.stem != "jffs2-be"}
SEEDS["unpack_image"] = (_UNPACK_SEEDS / "tplink.bin").read_bytes() + (_UNPACK_SEEDS / "jffs2-be.bin").read_bytes()


def _mutations(seed: bytes) -> st.SearchStrategy[bytes]:
    """Random bytes, and the seed with bytes flipped, cut or spliced: most of the format survives."""

    def mutate(data: tuple[list[tuple[int, int]], int]) -> bytes:
        flips, cut = data
        out = bytearray(seed)
        for pos, val in flips:
            if out:
                out[pos % len(out)] = val
        return bytes(out[: max(0, len(out) - cut)])

    flips = st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), max_size=8)
    return st.one_of(st.binary(max_size=4096), st.tuples(flips, st.integers(0, len(seed))).map(mutate))


@pytest.mark.parametrize("name", sorted(targets.TARGETS))
def test_fuzz_target(name: str) -> None:
    assert name in SEEDS, f"fuzz target {name} has no seed"
    target: Callable[[bytes], None] = targets.TARGETS[name]

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(_mutations(SEEDS[name]))
    def check(data: bytes) -> None:
        with contextlib.suppress(NospyError):
            target(data)

    check()
