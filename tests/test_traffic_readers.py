"""Readers against real captures, with tshark and nfdump as the reference on the same input."""

from __future__ import annotations

import gzip
import json
import socket
import struct
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from nospy.traffic.flows import Flows, address
from nospy.traffic.interface import Capture, TrafficError
from nospy.traffic.read import read_bytes, read_capture
from traffic_tools import free_udp_port, need, nfcapd, nfdump_csv, softflowd_export, tcpdump, tshark_flows


def as_counter(flows: Flows) -> Counter[tuple[str, str, int, int, int]]:
    out: Counter[tuple[str, str, int, int, int]] = Counter()
    for i in range(len(flows)):
        r = flows.row(i)
        key = (r["src"], r["dst"], r["sport"], r["dport"], r["proto"])
        out[key] += r["bytes"]
        out[(*key[:4], -r["proto"] - 1)] += r["packets"]
    return out


def names_of(cap: Capture) -> dict[str, set[str]]:
    return {address(*k): set(v) for k, v in cap.names.items()}


def test_zeek_wikipedia_pcap_matches_tshark(shared: Path) -> None:
    path = shared / "traffic" / "zeek_wikipedia.pcap"
    cap = read_capture(path)
    assert cap.format == "pcap"
    assert cap.records == 136
    assert cap.errors == ()
    assert as_counter(cap.flows) == tshark_flows(path)
    # DNS answers in the capture name the Wikimedia servers
    assert names_of(cap)["208.80.152.3"] == {"upload.wikimedia.org", "upload.pmtpa.wikimedia.org"}
    assert "meta.wikimedia.org" in names_of(cap)["208.80.152.2"]


def test_zeek_django_pcapng_matches_tshark(shared: Path) -> None:
    path = shared / "traffic" / "zeek_redis_django-cloud.pcapng"
    cap = read_capture(path)
    assert cap.format == "pcapng"
    assert cap.records == 474
    assert as_counter(cap.flows) == tshark_flows(path)
    row = cap.flows.row(0)
    assert (row["src"], row["dst"], row["dport"], row["packets"], row["bytes"]) == (
        "192.168.1.4",
        "18.234.186.95",
        10625,
        316,
        34538,
    )
    assert row["first_ns"] == 1728488976467415000


def _swap_pcap(data: bytes) -> bytes:
    """The same capture written by a big-endian host: every header field byte-swapped."""
    out = bytearray(struct.pack(">IHHiIII", *struct.unpack("<IHHiIII", data[:24])))
    p = 24
    while p + 16 <= len(data):
        sec, usec, incl, orig = struct.unpack("<IIII", data[p : p + 16])
        out += struct.pack(">IIII", sec, usec, incl, orig) + data[p + 16 : p + 16 + incl]
        p += 16 + incl
    return bytes(out)


def test_pcap_big_endian_and_nanoseconds(shared: Path, tmp_path: Path) -> None:
    need("editcap")
    path = shared / "traffic" / "zeek_wikipedia.pcap"
    reference = read_capture(path)
    big = read_bytes(_swap_pcap(path.read_bytes()))
    assert big.records == 136
    assert as_counter(big.flows) == as_counter(reference.flows)
    assert list(big.flows.first) == list(reference.flows.first)
    nano = tmp_path / "nano.pcap"
    subprocess.run(["editcap", "-F", "nsecpcap", str(path), str(nano)], check=True)
    assert nano.read_bytes()[:4] == b"\x4d\x3c\xb2\xa1"
    ns = read_capture(nano)
    assert list(ns.flows.first) == list(reference.flows.first)
    # and as pcapng, whose interface then says if_tsresol = 9
    ng = tmp_path / "nano.pcapng"
    subprocess.run(["editcap", "-F", "pcapng", str(nano), str(ng)], check=True)
    assert b"\x09\x00\x01\x00\x09" in ng.read_bytes()[:200]
    assert list(read_capture(ng).flows.first) == list(reference.flows.first)


def test_pcap_truncated_keeps_readable_part(shared: Path) -> None:
    data = (shared / "traffic" / "zeek_wikipedia.pcap").read_bytes()
    cap = read_bytes(data[: len(data) // 2])
    assert 0 < cap.records < 136
    assert len(cap.errors) == 1 and "truncated" in cap.errors[0].message


def test_pcapng_truncated_keeps_readable_part(shared: Path) -> None:
    data = (shared / "traffic" / "zeek_redis_django-cloud.pcapng").read_bytes()
    cap = read_bytes(data[: len(data) - 37])
    assert 400 < cap.records < 474
    assert "damaged or truncated" in cap.errors[0].message


def _raw_ip(data: bytes) -> bytes:
    """An Ethernet pcap rewritten as LINKTYPE_RAW (101): the link header of every frame removed."""
    out = bytearray(data[:20] + struct.pack("<I", 101))
    p = 24
    while p + 16 <= len(data):
        sec, usec, incl, orig = struct.unpack("<IIII", data[p : p + 16])
        frame = data[p + 16 : p + 16 + incl]
        if frame[12:14] in (b"\x08\x00", b"\x86\xdd"):
            out += struct.pack("<IIII", sec, usec, incl - 14, orig - 14) + frame[14:]
        p += 16 + incl
    return bytes(out)


def _vlan(data: bytes) -> bytes:
    """An Ethernet pcap with an 802.1Q tag and an 802.1ad outer tag inserted in every frame."""
    out = bytearray(data[:24])
    p = 24
    while p + 16 <= len(data):
        sec, usec, incl, orig = struct.unpack("<IIII", data[p : p + 16])
        frame = data[p + 16 : p + 16 + incl]
        tagged = frame[:12] + b"\x88\xa8\x00\x64\x81\x00\x00\x0a" + frame[12:]
        out += struct.pack("<IIII", sec, usec, incl + 8, orig + 8) + tagged
        p += 16 + incl
    return bytes(out)


def test_raw_ip_and_vlan_link_layers(shared: Path) -> None:
    data = (shared / "traffic" / "zeek_wikipedia.pcap").read_bytes()
    reference = as_counter(read_bytes(data).flows)
    assert as_counter(read_bytes(_raw_ip(data)).flows) == reference
    assert as_counter(read_bytes(_vlan(data)).flows) == reference


@pytest.mark.parametrize("linktype", ["LINUX_SLL", "LINUX_SLL2", "EN10MB"])
def test_live_capture_link_types(tmp_path: Path, linktype: str) -> None:
    """tcpdump on 'any' (Linux cooked v1/v2) and on lo (Ethernet), then pcapng from tshark."""
    port = free_udp_port()
    out = tmp_path / "live.pcap"
    iface = "lo" if linktype == "EN10MB" else "any"
    with (
        tcpdump(out, f"udp port {port}", iface=iface, linktype=linktype),
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s,
    ):
        for i in range(5):
            s.sendto(b"x" * (10 + i), ("127.0.0.1", port))
    cap = read_capture(out)
    assert cap.detail["linktypes"] == [{"LINUX_SLL": 113, "LINUX_SLL2": 276, "EN10MB": 1}[linktype]]
    fl = [cap.flows.row(i) for i in range(len(cap.flows)) if cap.flows.row(i)["dport"] == port]
    assert len(fl) == 1
    assert fl[0]["packets"] >= 3  # the first datagram can race the capture's start
    assert as_counter(cap.flows) == tshark_flows(out)
    # the same packets converted to pcapng by tshark
    need("tshark")
    ng = tmp_path / "live.pcapng"
    subprocess.run(["tshark", "-r", str(out), "-w", str(ng), "-F", "pcapng"], check=True, capture_output=True)
    assert as_counter(read_capture(ng).flows) == as_counter(cap.flows)


def test_pcapng_several_interfaces(shared: Path, tmp_path: Path) -> None:
    need("mergecap")
    merged = tmp_path / "merged.pcapng"
    a = shared / "traffic" / "zeek_wikipedia.pcap"
    b = shared / "traffic" / "zeek_redis_django-cloud.pcapng"
    subprocess.run(["mergecap", "-F", "pcapng", "-w", str(merged), str(a), str(b)], check=True)
    cap = read_capture(merged)
    assert cap.records == 136 + 474
    assert as_counter(cap.flows) == as_counter(read_capture(a).flows) + as_counter(read_capture(b).flows)


@pytest.mark.parametrize("version", [5, 9, 10])
def test_netflow_in_pcap_matches_nfdump(shared: Path, tmp_path: Path, version: int) -> None:
    """softflowd exports the sample's flows; nfcapd collects them while tcpdump records the datagrams."""
    port = free_udp_port()
    export = tmp_path / "export.pcap"
    collected = tmp_path / "nfcapd"
    collected.mkdir()
    with nfcapd(collected, port), tcpdump(export, f"udp port {port}"):
        softflowd_export(shared / "traffic" / "zeek_wikipedia.pcap", port, version)
    cap = read_capture(export)
    assert isinstance(cap.detail["export_packets"], int) and cap.detail["export_packets"] > 0
    # the export datagrams themselves are not flows: only the records inside are
    assert all(cap.flows.row(i)["dport"] != port for i in range(len(cap.flows)))
    by_nfdump = read_bytes(nfdump_csv(collected).encode())
    assert by_nfdump.format == "nfdump-csv"
    assert len(by_nfdump.flows) > 40
    assert as_counter(cap.flows) == as_counter(by_nfdump.flows)
    if version != 5:
        assert any(":" in by_nfdump.flows.row(i)["dst"] for i in range(len(by_nfdump.flows)))  # IPv6 records


def _udp_payloads(capture: Path) -> list[bytes]:
    need("tshark")
    out = subprocess.run(
        ["tshark", "-n", "-r", str(capture), "-d", "udp.port==1-65535,data", "-T", "fields", "-e", "data.data"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [bytes.fromhex(line.replace(":", "")) for line in out.split()]


@pytest.mark.parametrize("version", [5, 9, 10])
def test_export_stream_files_and_late_templates(shared: Path, tmp_path: Path, version: int) -> None:
    port = free_udp_port()
    export = tmp_path / "export.pcap"
    with tcpdump(export, f"udp port {port}"):
        softflowd_export(shared / "traffic" / "zeek_wikipedia.pcap", port, version)
    messages = _udp_payloads(export)
    in_pcap = as_counter(read_capture(export).flows)
    stream = read_bytes(b"".join(messages))
    assert stream.format == {5: "netflow-v5", 9: "netflow-v9", 10: "ipfix"}[version]
    assert stream.errors == ()
    assert as_counter(stream.flows) == in_pcap
    if version != 5:
        # the template message last: data that arrives before its template is still decoded
        late = read_bytes(b"".join(messages[1:] + messages[:1]))
        assert as_counter(late.flows) == in_pcap


def test_zeek_conn_log_tsv(shared: Path) -> None:
    cap = read_capture(shared / "traffic" / "zat_conn.log")
    assert cap.format == "zeek-conn"
    assert cap.errors == ()
    first = cap.flows.row(0)
    assert (first["src"], first["dst"], first["dport"], first["proto"]) == ("192.168.33.10", "54.245.228.191", 80, 6)
    assert (first["bytes"], first["packets"]) == (1489, 22)
    back = cap.flows.row(1)
    assert (back["src"], back["dst"], back["bytes"], back["packets"]) == ("54.245.228.191", "192.168.33.10", 39641, 31)
    assert first["last_ns"] - first["first_ns"] == 447460000


def _zeek_json(tsv: str) -> str:
    names: list[str] = []
    lines = []
    for line in tsv.splitlines():
        if line.startswith("#fields"):
            names = line.split("\t")[1:]
        elif line and not line.startswith("#"):
            rec: dict[str, object] = {}
            for n, v in zip(names, line.split("\t"), strict=True):
                if v == "-":
                    continue
                rec[n] = float(v) if n in ("ts", "duration") else int(v) if n.endswith(("_p", "bytes", "pkts")) else v
            lines.append(json.dumps(rec))
    return "\n".join(lines)


def test_zeek_conn_log_json_equals_tsv(shared: Path) -> None:
    tsv = (shared / "traffic" / "zat_conn.log").read_text()
    a = read_bytes(tsv.encode())
    b = read_bytes(_zeek_json(tsv).encode())
    assert b.format == "zeek-conn-json"
    assert as_counter(a.flows) == as_counter(b.flows)


def test_zeek_newer_schema_by_field_names() -> None:
    log = (
        "#separator \\x09\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration"
        "\torig_bytes\tresp_bytes\tconn_state\tlocal_orig\tlocal_resp\tmissed_bytes\thistory\torig_pkts"
        "\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\ttunnel_parents\tip_proto\n"
        "1700000000.5\tC1\t10.0.0.1\t5000\t2001:db8::1\t443\ttcp\tssl\t1.0\t10\t20\tSF\tT\tF\t0\tShAD\t3\t200\t2\t300\t-\t6\n"
    )
    cap = read_bytes(log.encode())
    assert [cap.flows.row(i)["bytes"] for i in range(2)] == [200, 300]
    assert cap.flows.row(0)["dst"] == "2001:db8::1"


def test_zeek_numbers_that_are_not_finite_are_bad_rows() -> None:
    """A duration, port or time of 1e999 (infinity once read) is a bad row, not a crash."""
    head = "#separator \\x09\n#fields\tts\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tduration\n"
    rows = [
        "1700000000.5\t10.0.0.1\t5000\t10.0.0.2\t443\ttcp\t1.0",
        "1700000000.5\t10.0.0.1\t5000\t10.0.0.2\t443\ttcp\tinf",
        "1700000000.5\t10.0.0.1\t1.5e999\t10.0.0.2\t443\ttcp\t1.0",
    ]
    cap = read_bytes((head + "\n".join(rows) + "\n").encode())
    assert cap.records == 1
    assert [e.location for e in cap.errors if "finite" in e.message] == ["line 4", "line 5"]
    as_json = "\n".join(
        json.dumps({"ts": ts, "id.orig_h": "10.0.0.1", "id.orig_p": 1, "id.resp_h": "10.0.0.2", "id.resp_p": 2})
        for ts in (1700000000.5, 1e300)
    )
    cap = read_bytes(as_json.encode())
    assert cap.records == 1 and [e.location for e in cap.errors] == ["line 2"]


EVE = [
    {"timestamp": "2024-01-01T00:00:00.000000+0000", "event_type": "dns", "src_ip": "10.0.0.53", "dest_ip": "10.0.0.2",
     "dns": {"version": 2, "type": "answer", "rrname": "update.acme.example", "answers": [
         {"rrname": "update.acme.example", "rrtype": "CNAME", "rdata": "edge.cdn.example"},
         {"rrname": "edge.cdn.example", "rrtype": "A", "rdata": "13.232.1.1"}]}},
    {"timestamp": "2024-01-01T00:00:01.000000+0000", "event_type": "flow", "src_ip": "10.0.0.2", "src_port": 40000,
     "dest_ip": "13.232.1.1", "dest_port": 443, "proto": "TCP",
     "flow": {"pkts_toserver": 10, "pkts_toclient": 8, "bytes_toserver": 1000, "bytes_toclient": 5000,
              "start": "2024-01-01T00:00:01.000000+0000", "end": "2024-01-01T00:00:03.500000+0000"}},
    {"timestamp": "2024-01-01T00:00:02.000000+0000", "event_type": "alert", "src_ip": "10.0.0.2", "dest_ip": "1.2.3.4"},
]  # fmt: skip


def test_suricata_eve_flows_and_dns() -> None:
    cap = read_bytes("\n".join(json.dumps(e) for e in EVE).encode())
    assert cap.format == "suricata-eve"
    rows = [cap.flows.row(i) for i in range(len(cap.flows))]
    assert [(r["src"], r["dst"], r["bytes"], r["packets"]) for r in rows] == [
        ("10.0.0.2", "13.232.1.1", 1000, 10),
        ("13.232.1.1", "10.0.0.2", 5000, 8),
    ]
    assert rows[0]["last_ns"] - rows[0]["first_ns"] == 2_500_000_000
    assert names_of(cap)["13.232.1.1"] == {"edge.cdn.example"}


def test_unknown_format_is_an_error(tmp_path: Path) -> None:
    p = tmp_path / "x.pcap"
    p.write_bytes(b"hello, this is not a capture\n")
    with pytest.raises(TrafficError, match="not a format"):
        read_capture(p)


def _nrb(addr: str, name: str) -> bytes:
    """A pcapng Name Resolution Block (section 4.5) with one IPv4 record."""
    value = socket.inet_aton(addr) + name.encode() + b"\0"
    record = struct.pack("<HH", 1, len(value)) + value + b"\0" * (-len(value) % 4)
    body = record + struct.pack("<HH", 0, 0)
    return struct.pack("<II", 4, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))


def test_pcapng_name_resolution_block_names_addresses(shared: Path) -> None:
    data = (shared / "traffic" / "zeek_redis_django-cloud.pcapng").read_bytes()
    shb = struct.unpack("<I", data[4:8])[0]
    idb = struct.unpack("<I", data[shb + 4 : shb + 8])[0]
    at = shb + idb
    cap = read_bytes(data[:at] + _nrb("18.234.186.95", "Redis.Acme.Example") + data[at:])
    assert cap.records == 474 and cap.errors == ()
    assert names_of(cap) == {"18.234.186.95": {"redis.acme.example"}}


def test_gzip_compressed_inputs(shared: Path) -> None:
    log = (shared / "traffic" / "zat_conn.log").read_bytes()
    plain = read_bytes(log)
    packed = read_bytes(gzip.compress(log))
    assert packed.format == "zeek-conn" and packed.errors == ()
    assert as_counter(packed.flows) == as_counter(plain.flows)
    pcap = (shared / "traffic" / "zeek_wikipedia.pcap").read_bytes()
    cut = read_bytes(gzip.compress(pcap)[:-4000])
    assert 0 < cut.records < 136
    assert any("cut off" in e.message for e in cut.errors)


def test_unknown_link_type_is_reported(shared: Path) -> None:
    data = bytearray((shared / "traffic" / "zeek_wikipedia.pcap").read_bytes())
    data[20:24] = struct.pack("<I", 147)  # LINKTYPE_USER0
    cap = read_bytes(bytes(data))
    assert cap.records == 136 and len(cap.flows) == 0
    assert cap.errors[0].location == "link type 147"


def _swap_pcapng(data: bytes) -> bytes:
    """The same pcapng written by a big-endian host: block headers, IDB and EPB fields and options swapped."""
    out = bytearray()
    p = 0
    while p + 12 <= len(data):
        btype, blen = struct.unpack("<II", data[p : p + 8])
        body = bytearray(data[p + 8 : p + blen - 4])
        opts = -1
        if btype == 0x0A0D0D0A:
            body[0:8] = struct.pack(">IHH", *struct.unpack("<IHH", body[0:8]))
            body[8:16] = struct.pack(">q", *struct.unpack("<q", body[8:16]))
            opts = 16
        elif btype == 1:
            body[0:8] = struct.pack(">HHI", *struct.unpack("<HHI", body[0:8]))
            opts = 8
        elif btype == 6:
            iface, hi, lo, cap, orig = struct.unpack("<IIIII", body[0:20])
            body[0:20] = struct.pack(">IIIII", iface, hi, lo, cap, orig)
            opts = 20 + cap + (-cap % 4)
        q = opts
        while q >= 0 and q + 4 <= len(body):
            code, olen = struct.unpack("<HH", body[q : q + 4])
            body[q : q + 4] = struct.pack(">HH", code, olen)
            if code in (14,) and olen == 8:  # if_tsoffset, a 64-bit number
                body[q + 4 : q + 12] = struct.pack(">q", *struct.unpack("<q", body[q + 4 : q + 12]))
            if code == 0:
                break
            q += 4 + olen + (-olen % 4)
        out += struct.pack(">II", btype, blen) + body + struct.pack(">I", blen)
        p += blen
    return bytes(out)


def test_pcapng_big_endian(shared: Path) -> None:
    data = (shared / "traffic" / "zeek_redis_django-cloud.pcapng").read_bytes()
    big = _swap_pcapng(data)
    assert big[8:12] == b"\x1a\x2b\x3c\x4d"
    little = read_bytes(data)
    cap = read_bytes(big)
    assert cap.errors == () and cap.records == 474
    assert as_counter(cap.flows) == as_counter(little.flows)
    assert list(cap.flows.first) == list(little.flows.first)
