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

SEEDS = {
    "agreement_yaml": template().encode(),
    "agreement_payload": b'{"nospy":1,"id":"a","title":"t","vendor":"v","customer":"c","services":[{"name":"s","port":22}]}',
    "dsse_envelope": b'{"payload":"e30=","payloadType":"t","signatures":[{"keyid":"k","sig":"AAAA"}]}',
    "verifier_key": b"PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    "signing_key": b"PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
    "signed_note": "text\n\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n".encode(),
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
