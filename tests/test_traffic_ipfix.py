"""IPFIX and NetFlow v9 cases softflowd does not produce: options templates, variable-length fields,
enterprise fields, reduced-size counters, IPv6, data before its template, damage."""

from __future__ import annotations

import socket
import struct

from nospy.traffic.read import read_bytes
from traffic_tools import ipfix_message, template, v5_datagram, v9_packet

V6 = socket.inet_pton(socket.AF_INET6, "2406:da1a::1")
V6_SRC = socket.inet_pton(socket.AF_INET6, "fd00::2")


def test_ipfix_ipv6_varlen_enterprise_and_options() -> None:
    # template 256: src6, dst6, sport, dport, proto, a variable-length string (96, applicationName),
    # an enterprise-specific field, octets in 4 bytes (reduced-size encoding)
    fields = [(27, 16), (28, 16), (7, 2), (11, 2), (4, 1), (96, 0xFFFF)]
    t = struct.pack(">HH", 256, 8) + b"".join(struct.pack(">HH", e, n) for e, n in fields)
    t += struct.pack(">HHI", 0x8000 | 1, 4, 9999) + struct.pack(">HH", 1, 4)
    # options template 257 with systemInitTimeMilliseconds (160) as its one field, scope: observation domain
    opts = struct.pack(">HHH", 257, 2, 1) + struct.pack(">HHHH", 149, 4, 160, 8)
    rec = V6_SRC + V6 + struct.pack(">HHB", 5000, 443, 6) + b"\x03abc" + b"XXXX" + struct.pack(">I", 1234)
    rec2 = V6_SRC + V6 + struct.pack(">HHB", 5001, 443, 6) + b"\xff\x00\x02hi" + b"YYYY" + struct.pack(">I", 99)
    stream = ipfix_message([(2, t), (3, opts)])
    stream += ipfix_message([(257, struct.pack(">IQ", 7, 1_699_999_000_000))])
    stream += ipfix_message([(256, rec + rec2)])
    cap = read_bytes(stream)
    assert cap.format == "ipfix" and cap.errors == ()
    rows = [cap.flows.row(i) for i in range(len(cap.flows))]
    assert [(r["src"], r["dst"], r["sport"], r["dport"], r["proto"], r["bytes"]) for r in rows] == [
        ("fd00::2", "2406:da1a::1", 5000, 443, 6, 1234),
        ("fd00::2", "2406:da1a::1", 5001, 443, 6, 99),
    ]


def test_ipfix_data_before_template_and_uptime_times() -> None:
    t = template(300, [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (2, 8), (1, 8), (152, 8), (153, 8)])
    rec = (
        socket.inet_aton("10.0.0.1")
        + socket.inet_aton("13.232.0.9")
        + struct.pack(">HHBQQQQ", 1, 2, 17, 3, 300, 1_700_000_000_000, 1_700_000_001_500)
    )
    cap = read_bytes(ipfix_message([(300, rec * 2)]) + ipfix_message([(2, t)]))
    assert len(cap.flows) == 2
    r = cap.flows.row(0)
    assert (r["dst"], r["packets"], r["bytes"]) == ("13.232.0.9", 3, 300)
    assert (r["first_ns"], r["last_ns"]) == (1_700_000_000_000_000_000, 1_700_000_001_500_000_000)


def test_ipfix_missing_template_is_reported() -> None:
    cap = read_bytes(ipfix_message([(2, template(256, [(8, 4)]))]) + ipfix_message([(999, b"\0" * 8)]))
    assert len(cap.flows) == 0
    assert any("template never arrived" in e.message for e in cap.errors)


def test_netflow_v9_options_template_and_sysuptime() -> None:
    t = template(256, [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (1, 4), (2, 4), (22, 4), (21, 4)])
    # an options template (RFC 3954 section 6.1): scope system (1, 4 bytes), option SAMPLING_INTERVAL (34, 4)
    opts = struct.pack(">HHH", 257, 4, 4) + struct.pack(">HHHH", 1, 4, 34, 4)
    rec = (
        socket.inet_aton("192.168.1.4")
        + socket.inet_aton("18.234.186.95")
        + struct.pack(">HHBIIII", 50044, 10625, 6, 500, 5, 10_000, 20_000)
    )
    packet = v9_packet([(0, t), (1, opts), (257, struct.pack(">II", 0, 100)), (256, rec + b"\0\0\0")])
    cap = read_bytes(packet)
    assert cap.format == "netflow-v9"
    assert len(cap.flows) == 1  # the padding after the record is not a record
    r = cap.flows.row(0)
    # boot = export time - uptime (60 s); first/last are boot + 10 s and + 20 s
    assert r["first_ns"] == (1_700_000_000 - 60 + 10) * 1_000_000_000
    assert r["last_ns"] == (1_700_000_000 - 60 + 20) * 1_000_000_000
    assert (r["bytes"], r["packets"]) == (500, 5)


def test_netflow_v5_records_and_truncation() -> None:
    d = v5_datagram([("10.0.0.1", "13.232.0.1", 1000, 443, 6, 7, 700), ("10.0.0.1", "8.8.8.8", 1001, 53, 17, 1, 60)])
    cap = read_bytes(d + d + d[:30])
    assert cap.format == "netflow-v5"
    assert len(cap.flows) == 4
    r = cap.flows.row(0)
    assert (r["dst"], r["dport"], r["packets"], r["bytes"]) == ("13.232.0.1", 443, 7, 700)
    assert r["first_ns"] == (1_700_000_000 - 60 + 1) * 1_000_000_000
    assert len(cap.errors) == 1
