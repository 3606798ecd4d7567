"""From located packets (pcap, pcapng) to a `Capture`: flows, DNS names and flow exports inside.

DNS responses (UDP or TCP from port 53, mDNS from 5353) name addresses. UDP payloads that are whole
NetFlow v5/v9 or IPFIX messages are decoded into the flow records they carry, and the export packets
themselves are left out of the flows: they are the collector's feed, not the equipment's traffic.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from nospy.traffic.dns import merge_names, parse_response
from nospy.traffic.export import decode_exports
from nospy.traffic.flows import Flows
from nospy.traffic.interface import Buffer, Capture, DamageNote
from nospy.traffic.packets import decode, to_flows

__all__ = ["capture_from_packets"]

I64 = npt.NDArray[np.int64]


def capture_from_packets(  # noqa: PLR0917 - the located packets, as each reader finds them
    fmt: str,
    buf: Buffer,
    off: I64,
    caplen: I64,
    ts: I64,
    link: npt.NDArray[np.int32],
    errors: tuple[DamageNote, ...],
    detail: dict[str, object],
) -> Capture:
    d = decode(buf, off, caplen, link)
    udp = (d.proto == 17) & d.ok
    tcp = (d.proto == 6) & d.ok

    # DNS responses; over TCP a 2-byte length comes first, and only whole messages in one segment count
    names = []
    dns_udp = np.flatnonzero(udp & ((d.sport == 53) | (d.sport == 5353)) & (d.payload_len >= 12))
    dns_tcp = np.flatnonzero(tcp & (d.sport == 53) & (d.payload_len >= 14))
    for i in dns_udp:
        names.append(parse_response(buf[d.payload[i] : d.payload[i] + d.payload_len[i]].tobytes()))
    for i in dns_tcp:
        msg = buf[d.payload[i] : d.payload[i] + d.payload_len[i]].tobytes()
        if int.from_bytes(msg[:2], "big") == len(msg) - 2:
            names.append(parse_response(msg[2:]))

    # export messages: UDP payloads that start with version 5, 9 or 10
    cand = np.flatnonzero(udp & (d.payload_len >= 20))
    cand = cand[(buf[d.payload[cand]] == 0) & np.isin(buf[d.payload[cand] + 1], (5, 9, 10))]
    inner = Flows.empty()
    keep = None
    notes = list(errors)
    if cand.size:
        inner, export_notes, is_export = decode_exports(buf, d.payload[cand], d.payload_len[cand])
        notes.extend(export_notes)
        if is_export.any():
            keep = np.ones(off.size, dtype=np.bool_)
            keep[cand[is_export]] = False
            detail = {**detail, "export_packets": int(is_export.sum()), "exported_flows": len(inner)}
    flows = Flows.concat([to_flows(d, ts, keep), inner]) if len(inner) else to_flows(d, ts, keep)
    skipped = int(off.size - d.ok.sum())
    return Capture(
        fmt,
        flows,
        names=merge_names(names),
        errors=tuple(notes),
        records=int(off.size),
        detail={**detail, "packets": int(off.size), "non_ip_packets": skipped},
    )
