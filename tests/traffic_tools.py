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
        time.sleep(0.5)  # on "any" the socket filter is attached per interface after the banner
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
        time.sleep(0.5)
        yield
        time.sleep(0.5)
    finally:
        proc.terminate()  # nfcapd writes its file when it ends
        proc.wait(timeout=10)


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
