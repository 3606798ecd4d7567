"""Zeek conn.log, in its TSV form (columns named by the ``#fields`` header line) and as JSON lines.

Columns are found by name, so any Zeek version's schema works (older logs lack ``local_resp`` and
``ip_proto``, newer ones add columns). A Zeek connection is bidirectional; it becomes up to two flows:
originator to responder with ``orig_ip_bytes``/``orig_pkts`` and back with ``resp_ip_bytes``/
``resp_pkts`` (payload ``orig_bytes``/``resp_bytes`` when the IP-level counts are absent). A log that
was concatenated from several files (repeated headers) is read across the headers.
"""

from __future__ import annotations

import json
import math

from nospy.traffic._text import PROTOCOLS, FlowRows, parse_time
from nospy.traffic.interface import Buffer, Capture, Reader, TrafficError

__all__ = ["ZeekConnReader", "ZeekJsonReader"]


def _int(value: float) -> int:
    """``value`` as an integer; ValueError for infinity and NaN (a log may say ``1e999``)."""
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {value!r}")
    return int(value)


def _num(value: object) -> int:
    if value is None or value in ("-", "(empty)", ""):
        return 0
    if isinstance(value, bool):
        raise ValueError("a boolean is not a count")
    if isinstance(value, int | float):
        return _int(value)
    if isinstance(value, str):
        return _int(float(value)) if "." in value else int(value)
    raise ValueError(f"not a number: {value!r}")


def _time(value: object) -> int:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _int(value * 1_000_000_000)
    if isinstance(value, str):
        return parse_time(value)
    raise ValueError(f"not a time: {value!r}")


def _add_conn(rows: FlowRows, rec: dict[str, object]) -> None:
    orig, resp = rec.get("id.orig_h"), rec.get("id.resp_h")
    if not isinstance(orig, str) or not isinstance(resp, str):
        raise ValueError("no id.orig_h/id.resp_h")
    sport, dport = _num(rec.get("id.orig_p")), _num(rec.get("id.resp_p"))
    proto_text = str(rec.get("proto", "")).lower()
    proto = PROTOCOLS.get(proto_text, 0)
    if "ip_proto" in rec and rec["ip_proto"] not in (None, "-"):
        proto = _num(rec["ip_proto"])
    start = _time(rec.get("ts"))
    dur = rec.get("duration")
    end = start + (_int(float(dur) * 1_000_000_000) if isinstance(dur, int | float | str) and dur != "-" else 0)
    for a, b, pa, pb, side in ((orig, resp, sport, dport, "orig"), (resp, orig, dport, sport, "resp")):
        packets = _num(rec.get(f"{side}_pkts"))
        nbytes = _num(rec.get(f"{side}_ip_bytes")) if f"{side}_ip_bytes" in rec else _num(rec.get(f"{side}_bytes"))
        if side == "orig" or packets or nbytes:
            rows.add(a, b, pa, pb, proto, nbytes, packets, start, end)


def _separator(text: str) -> str:
    """The ``#separator`` value: Zeek writes it as a hex escape such as ``\\x09``."""
    if len(text) == 4 and text.startswith("\\x"):
        try:
            return chr(int(text[2:], 16))
        except ValueError:
            pass
    return text or "\t"


class ZeekConnReader(Reader):
    NAME = "zeek-conn"
    DOC = "Zeek conn.log, tab-separated with #fields header (any schema version)"

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        return head.startswith(b"#separator") and b"#fields" in head and b"id.resp_h" in head

    def read(self, data: Buffer) -> Capture:
        text = data.tobytes().decode("utf-8", "replace")
        rows = FlowRows()
        sep = "\t"
        names: list[str] | None = None
        unset = "-"
        for lineno, line in enumerate(text.splitlines(), 1):
            if line.startswith("#"):
                key, _, value = line.partition(" " if line.startswith("#separator") else sep)
                if key == "#separator":
                    sep = _separator(value)
                elif key == "#fields":
                    names = value.split(sep)
                elif key == "#unset_field":
                    unset = value
                continue
            if not line.strip():
                continue
            if names is None:
                raise TrafficError("Zeek log without a #fields line before its first row")
            values = line.split(sep)
            if len(values) != len(names):
                rows.bad(f"line {lineno}", f"{len(values)} columns where #fields names {len(names)}")
                continue
            rec: dict[str, object] = {n: (None if v == unset else v) for n, v in zip(names, values, strict=True)}
            try:
                _add_conn(rows, rec)
            except ValueError as exc:
                rows.bad(f"line {lineno}", str(exc))
        if names is None:
            raise TrafficError("not a Zeek log: no #fields line")
        flows = rows.flows()
        return Capture(self.NAME, flows, errors=rows.notes(), records=len(flows))


class ZeekJsonReader(Reader):
    NAME = "zeek-conn-json"
    DOC = "Zeek conn.log as JSON lines (LogAscii::use_json), epoch or ISO 8601 timestamps"

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        first = head.lstrip().split(b"\n", 1)[0]
        return first.startswith(b"{") and b'"id.orig_h"' in first and b'"event_type"' not in first

    def read(self, data: Buffer) -> Capture:
        rows = FlowRows()
        seen = 0
        for lineno, line in enumerate(data.tobytes().decode("utf-8", "replace").splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                if not isinstance(rec, dict):
                    raise ValueError("not a JSON object")
                if "id.orig_h" not in rec:
                    continue  # another Zeek log's record (dns.log, http.log) in the same stream
                seen += 1
                _add_conn(rows, rec)
            except (ValueError, RecursionError) as exc:
                rows.bad(f"line {lineno}", str(exc)[:200])
        if not seen and rows.bad_rows:
            raise TrafficError("not a Zeek JSON conn.log: no readable record")
        flows = rows.flows()
        return Capture(self.NAME, flows, errors=rows.notes(), records=len(flows))
