"""Suricata EVE JSON (eve.json): ``flow`` and ``netflow`` events, and names from ``dns`` answers.

A ``flow`` event is bidirectional (``pkts_toserver``/``bytes_toserver`` and ``..._toclient``) and becomes
up to two flows; a ``netflow`` event is already one direction. DNS answers (EVE version 1 ``answer``
events and version 2/3 ``answers`` lists) name the addresses, as DNS responses in a pcap do. Other event
types (alerts, http, tls) are skipped.
"""

from __future__ import annotations

import ipaddress
import json

from nospy.traffic._text import PROTOCOLS, FlowRows, parse_time
from nospy.traffic.dns import merge_names
from nospy.traffic.flows import address_key
from nospy.traffic.interface import Buffer, Capture, Reader, TrafficError

__all__ = ["SuricataEveReader"]


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return int(value)


def _proto(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        return int(value) if value.isdigit() else PROTOCOLS.get(value.lower(), 0)
    return 0


def _answers(dns: dict[str, object]) -> list[tuple[str, str]]:
    out = []
    if dns.get("type") == "answer" and dns.get("rrtype") in ("A", "AAAA"):
        out.append((str(dns.get("rrname", "")), str(dns.get("rdata", ""))))
    answers = dns.get("answers")
    if isinstance(answers, list):
        for a in answers:
            if isinstance(a, dict) and a.get("rrtype") in ("A", "AAAA"):
                out.append((str(a.get("rrname", "")), str(a.get("rdata", ""))))
    return out


class SuricataEveReader(Reader):
    NAME = "suricata-eve"
    DOC = "Suricata EVE JSON lines: flow and netflow events; dns answers name addresses"

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        first = head.lstrip().split(b"\n", 1)[0]
        return first.startswith(b"{") and b'"event_type"' in first

    def read(self, data: Buffer) -> Capture:
        rows = FlowRows()
        names: dict[tuple[int, int], set[str]] = {}
        seen = 0
        for lineno, line in enumerate(data.tobytes().decode("utf-8", "replace").splitlines(), 1):
            if not line.strip():
                continue
            try:
                ev = json.loads(line)
                if not isinstance(ev, dict) or "event_type" not in ev:
                    raise ValueError("not an EVE event")
                seen += 1
                kind = ev["event_type"]
                if kind == "dns" and isinstance(ev.get("dns"), dict):
                    for name, addr in _answers(ev["dns"]):
                        names.setdefault(address_key(ipaddress.ip_address(addr)), set()).add(name.lower().rstrip("."))
                    continue
                if kind not in ("flow", "netflow"):
                    continue
                src, dst = ev.get("src_ip"), ev.get("dest_ip")
                if not isinstance(src, str) or not isinstance(dst, str):
                    raise ValueError("no src_ip/dest_ip")
                body = ev.get(kind)
                if not isinstance(body, dict):
                    raise ValueError(f"no {kind} object")
                sport, dport, proto = _int(ev.get("src_port")), _int(ev.get("dest_port")), _proto(ev.get("proto"))
                start = parse_time(str(body.get("start", ev.get("timestamp", ""))))
                end = parse_time(str(body["end"])) if "end" in body else start
                if kind == "netflow":
                    rows.add(src, dst, sport, dport, proto, _int(body.get("bytes")), _int(body.get("pkts")), start, end)
                    continue
                rows.add(src, dst, sport, dport, proto, _int(body.get("bytes_toserver")),
                         _int(body.get("pkts_toserver")), start, end)  # fmt: skip
                if _int(body.get("pkts_toclient")):
                    rows.add(dst, src, dport, sport, proto, _int(body.get("bytes_toclient")),
                             _int(body.get("pkts_toclient")), start, end)  # fmt: skip
            except (ValueError, KeyError, RecursionError) as exc:
                rows.bad(f"line {lineno}", str(exc)[:200])
        if not seen:
            raise TrafficError("not a Suricata EVE log: no event")
        flows = rows.flows()
        return Capture(self.NAME, flows, names=merge_names([names]), errors=rows.notes(), records=len(flows))
