"""Property tests: flows written in each export format by an independent encoder come back unchanged."""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from nospy.traffic.dns import parse_response
from nospy.traffic.read import read_bytes
from traffic_tools import ipfix_message, v5_datagram, v9_packet

ipv4 = st.integers(0x01000000, 0xDFFFFFFF).map(lambda v: socket.inet_ntoa(struct.pack(">I", v)))
flow = st.tuples(ipv4, ipv4, st.integers(0, 65535), st.integers(0, 65535), st.sampled_from([1, 6, 17]),
                 st.integers(1, 2**32 - 1), st.integers(1, 2**32 - 1))  # fmt: skip


@settings(max_examples=50, deadline=None)
@given(st.lists(flow, min_size=1, max_size=30))
def test_netflow_v5_round_trip(flows: list[tuple[str, str, int, int, int, int, int]]) -> None:
    cap = read_bytes(v5_datagram(flows))
    got = [cap.flows.row(i) for i in range(len(cap.flows))]
    assert [(r["src"], r["dst"], r["sport"], r["dport"], r["proto"], r["packets"], r["bytes"]) for r in got] == flows


# (element id, encoder) for the fields a template may carry, in any order and reduced sizes
Flow = tuple[str, str, int, int, int, int, int]
_FIELDS: dict[int, Callable[[Flow, int], bytes]] = {
    8: lambda f, w: socket.inet_aton(f[0]),
    12: lambda f, w: socket.inet_aton(f[1]),
    7: lambda f, w: f[2].to_bytes(2, "big"),
    11: lambda f, w: f[3].to_bytes(2, "big"),
    4: lambda f, w: f[4].to_bytes(1, "big"),
    2: lambda f, w: f[5].to_bytes(w, "big"),
    1: lambda f, w: f[6].to_bytes(w, "big"),
}


def _encode(element: int, f: tuple[str, str, int, int, int, int, int], width: int) -> bytes:
    return _FIELDS[element](f, width)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(flow, min_size=1, max_size=20),
    st.permutations(sorted(_FIELDS)),
    st.sampled_from([4, 8]),
    st.booleans(),
    st.integers(256, 65535),
)
def test_template_round_trip(
    flows: list[tuple[str, str, int, int, int, int, int]], order: list[int], width: int, v9: bool, tid: int
) -> None:
    sizes = {8: 4, 12: 4, 7: 2, 11: 2, 4: 1, 2: width, 1: width}
    template = struct.pack(">HH", tid, len(order)) + b"".join(struct.pack(">HH", e, sizes[e]) for e in order)
    records = b"".join(b"".join(_encode(e, f, sizes[e]) for e in order) for f in flows)
    if v9:
        data = v9_packet([(0, template), (tid, records)])
    else:
        # data first, template after: the decoder must still find it
        data = ipfix_message([(tid, records)]) + ipfix_message([(2, template)])
    cap = read_bytes(data)
    got = [cap.flows.row(i) for i in range(len(cap.flows))]
    assert [(r["src"], r["dst"], r["sport"], r["dport"], r["proto"], r["packets"], r["bytes"]) for r in got] == flows


def test_dns_compression_loop_ends() -> None:
    # a response whose answer name points at itself: read, found nothing, returned
    header = bytes.fromhex("123481800001000100000000")
    question = b"\x01a\x00\x00\x01\x00\x01"  # ends at offset 19, where the answer's name points
    msg = header + question + b"\xc0\x13\x00\x01\x00\x01\x00\x00\x00\x00\x00\x04\x01\x02\x03\x04"
    assert parse_response(msg) == {}
    header = bytes.fromhex("abcd81800001000100000000")
    question = b"\x03www\x07example\x00\x00\x01\x00\x01"
    answer = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x0d\xe8\x00\x01"
    assert list(parse_response(header + question + answer).values()) == [{"www.example"}]
