"""Helpers for the traffic tests: real captures made with Debian's tools, and tshark as the reference."""

from __future__ import annotations

import contextlib
import shutil
import socket
import struct
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest


def need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.fail(f"Debian tools missing (see debian-packages.txt): {missing}")


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def tcpdump(out: Path, bpf: str, iface: str = "lo", linktype: str | None = None) -> Iterator[None]:
    """Capture on ``iface`` while the block runs (tcpdump -U writes each packet as it comes)."""
    need("tcpdump")
    args = ["tcpdump", "-i", iface, "-U", "--immediate-mode", "-n", "-Z", "root", "-w", str(out)]
    if linktype:
        args += ["-y", linktype]
    proc = subprocess.Popen([*args, bpf], stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        seen = []
        for _ in range(5):  # "listening on lo ..." once the filter is installed
            seen.append(proc.stderr.readline())
            if "listening" in seen[-1] or not seen[-1]:
                break
        if "listening" not in seen[-1]:
            pytest.fail(f"tcpdump did not start: {seen}")
        time.sleep(1.0)  # on "any" the socket filter is attached per interface after the banner
        yield
        time.sleep(0.3)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextlib.contextmanager
def nfcapd(directory: Path, port: int) -> Iterator[None]:
    need("nfcapd")
    proc = subprocess.Popen(
        ["nfcapd", "-w", str(directory), "-b", "127.0.0.1", "-p", str(port), "-t", "3600"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_udp_bound(port, proc)
        yield
        time.sleep(0.5)
    finally:
        proc.terminate()  # nfcapd writes its file when it ends
        proc.wait(timeout=10)


def _wait_udp_bound(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """Wait until some socket listens on 127.0.0.1:port (read from /proc, so as not to race for it)."""
    want = f"0100007F:{port:04X}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"nfcapd ended with {proc.returncode}")
        if any(line.split()[1] == want for line in Path("/proc/net/udp").read_text().splitlines()[1:]):
            return
        time.sleep(0.05)
    pytest.fail(f"nfcapd did not bind 127.0.0.1:{port}")


def softflowd_export(pcap: Path, port: int, version: int) -> None:
    """Replay ``pcap`` through softflowd, exporting every flow to 127.0.0.1:port."""
    need("softflowd")
    subprocess.run(
        ["softflowd", "-r", str(pcap), "-n", f"127.0.0.1:{port}", "-v", str(version)],
        check=True,
        capture_output=True,
        timeout=60,
    )


def nfdump_csv(directory: Path) -> str:
    need("nfdump")
    files = sorted(p for p in directory.iterdir() if p.name.startswith("nfcapd.") and not p.name.endswith("current"))
    out = subprocess.run(
        ["nfdump", "-r", str(files[-1]), "-o", "csv"],
        check=True,
        capture_output=True,
        text=True,
        env={"TZ": "UTC", "PATH": "/usr/bin:/bin"},
    )
    return out.stdout


def tshark_flows(capture: Path) -> Counter[tuple[str, str, int, int, int]]:
    """Packets per 5-tuple and bytes, as tshark dissects them: the reference the readers are held to."""
    need("tshark")
    fields = ["ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "ip.proto", "ipv6.nxt", "tcp.srcport", "tcp.dstport"]
    fields += ["udp.srcport", "udp.dstport", "ip.len", "ipv6.plen"]
    args = ["tshark", "-n", "-r", str(capture), "-T", "fields", "-E", "separator=|", "-E", "occurrence=f"]
    for f in fields:
        args += ["-e", f]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    flows: Counter[tuple[str, str, int, int, int]] = Counter()
    for line in out.splitlines():
        v = line.split("|")
        src, dst = v[0] or v[2], v[1] or v[3]
        if not src:
            continue
        proto = int(v[4] or v[5] or 0)
        sport = int(v[6] or v[8] or 0)
        dport = int(v[7] or v[9] or 0)
        size = int(v[10]) if v[10] else int(v[11] or 0) + 40
        flows[(src, dst, sport, dport, proto)] += size
        flows[(src, dst, sport, dport, -proto - 1)] += 1  # packet count under a negative key
    return flows


def ipfix_message(sets: list[tuple[int, bytes]], export_time: int = 1_700_000_000, domain: int = 7) -> bytes:
    """An IPFIX message (RFC 7011 section 3.1) holding the given (set id, body) sets."""
    body = b"".join(struct.pack(">HH", sid, len(b) + 4) + b for sid, b in sets)
    return struct.pack(">HHIII", 10, 16 + len(body), export_time, 1, domain) + body


def v9_packet(flowsets: list[tuple[int, bytes]], uptime_ms: int = 60_000, secs: int = 1_700_000_000) -> bytes:
    """A NetFlow v9 export packet (RFC 3954 section 5.1)."""
    body = b"".join(struct.pack(">HH", sid, len(b) + 4) + b for sid, b in flowsets)
    return struct.pack(">HHIIII", 9, len(flowsets), uptime_ms, secs, 1, 3) + body


def template(tid: int, fields: list[tuple[int, int]]) -> bytes:
    return struct.pack(">HH", tid, len(fields)) + b"".join(struct.pack(">HH", e, n) for e, n in fields)


def v5_datagram(records: list[tuple[str, str, int, int, int, int, int]], uptime_ms: int = 60_000) -> bytes:
    """NetFlow v5: (src, dst, sport, dport, proto, packets, bytes) records, first/last at uptime 1 s and 2 s."""
    out = struct.pack(">HHIIIIBBH", 5, len(records), uptime_ms, 1_700_000_000, 0, 1, 0, 0, 0)
    for src, dst, sport, dport, proto, packets, nbytes in records:
        out += socket.inet_aton(src) + socket.inet_aton(dst) + b"\0" * 4
        out += struct.pack(
            ">HHIIIIHHBBBBHHBBH", 1, 2, packets, nbytes, 1000, 2000, sport, dport, 0, 0, proto, 0, 0, 0, 24, 24, 0
        )
    return out


def _mmdb_value(v: object) -> bytes:
    """One value in the MaxMind DB data section encoding (MaxMind DB File Format Specification 2.0)."""

    def ctrl(kind: int, size: int) -> bytes:
        assert size < 285
        code, extra = (size, b"") if size < 29 else (29, bytes([size - 29]))
        head = bytes([kind << 5 | code]) if kind < 8 else bytes([code, kind - 7])
        return head + extra

    if isinstance(v, bool):
        return ctrl(14, int(v))
    if isinstance(v, str):
        b = v.encode()
        return ctrl(2, len(b)) + b
    if isinstance(v, tuple):  # (type number, int): libmaxminddb wants exact types in the metadata
        kind, n = int(v[0]), int(v[1])
        b = n.to_bytes((n.bit_length() + 7) // 8, "big")
        return ctrl(kind, len(b)) + b
    if isinstance(v, int):
        b = v.to_bytes((v.bit_length() + 7) // 8, "big")
        return ctrl(9 if v >= 1 << 32 else 6, len(b)) + b
    if isinstance(v, list):
        return ctrl(11, len(v)) + b"".join(_mmdb_value(x) for x in v)
    if isinstance(v, dict):
        return ctrl(7, len(v)) + b"".join(_mmdb_value(k) + _mmdb_value(x) for k, x in v.items())
    raise TypeError(v)


def write_mmdb(path: Path, entries: list[tuple[str, dict[str, object]]], build_epoch: int = 1_750_000_000) -> None:
    """A small IPv4 MaxMind DB (24-bit records) mapping each network to its record."""
    import ipaddress

    data = b""
    offsets = []
    for _, rec in entries:
        offsets.append(len(data))
        data += _mmdb_value(rec)
    nodes: list[list[object]] = [[None, None]]
    for (net_text, _), off in zip(entries, offsets, strict=True):
        net = ipaddress.IPv4Network(net_text)
        bits = int(net.network_address)
        node = 0
        for depth in range(net.prefixlen):
            bit = (bits >> (31 - depth)) & 1
            if depth == net.prefixlen - 1:
                nodes[node][bit] = ("data", off)
            else:
                if nodes[node][bit] is None:
                    nodes.append([None, None])
                    nodes[node][bit] = ("node", len(nodes) - 1)
                child = nodes[node][bit]
                assert isinstance(child, tuple) and child[0] == "node"
                node = int(child[1])
    count = len(nodes)

    def record(r: object) -> int:
        if r is None:
            return count
        assert isinstance(r, tuple)
        return int(r[1]) if r[0] == "node" else count + 16 + int(r[1])

    tree = b"".join(record(a).to_bytes(3, "big") + record(b).to_bytes(3, "big") for a, b in nodes)
    meta = {
        "node_count": (6, count),  # uint32
        "record_size": (5, 24),  # uint16
        "ip_version": (5, 4),
        "database_type": "nospy-test-country",
        "languages": ["en"],
        "binary_format_major_version": (5, 2),
        "binary_format_minor_version": (5, 0),
        "build_epoch": (9, build_epoch),  # uint64
        "description": {"en": "test database written by the nospy tests"},
    }
    path.write_bytes(tree + b"\0" * 16 + data + b"\xab\xcd\xefMaxMind.com" + _mmdb_value(meta))
