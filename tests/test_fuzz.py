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
}


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
