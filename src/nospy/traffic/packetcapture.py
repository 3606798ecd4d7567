"""From a packet capture's flows to a `Capture`: DNS names and the flow exports inside.

DNS responses (UDP or TCP from port 53, mDNS from 5353) name addresses. UDP payloads that are whole
NetFlow v5/v9 or IPFIX messages are decoded into the flow records they carry, and the export packets
themselves are taken back out of the flows: they are the collector's feed, not the equipment's traffic.
"""

from __future__ import annotations

import numpy as np

from nospy.traffic.dns import merge_names, parse_response
from nospy.traffic.export import decode_exports
from nospy.traffic.flows import Flows
from nospy.traffic.interface import Buffer, Capture, DamageNote
from nospy.traffic.packets import LINKTYPES, PacketFlows

__all__ = ["capture_from_packets"]


def capture_from_packets(
    fmt: str, buf: Buffer, pf: PacketFlows, errors: tuple[DamageNote, ...], detail: dict[str, object]
) -> Capture:
    it = pf.interesting
    flows = pf.flows
    names = []
    udp = it.flow >= 0
    for i in np.flatnonzero((it.sport == 53) | (it.sport == 5353)):
        msg = buf[it.payload[i] : it.payload[i] + it.payload_len[i]].tobytes()
        if udp[i]:
            names.append(parse_response(msg))
        elif int.from_bytes(msg[:2], "big") == len(msg) - 2:
            # over TCP a 2-byte length comes first; only whole messages in one segment are read
            names.append(parse_response(msg[2:]))

    notes = list(errors)
    linktypes = detail.get("linktypes", [])
    for lt in linktypes if isinstance(linktypes, list) else []:
        if lt not in LINKTYPES:
            notes.append(DamageNote(f"link type {lt}", "not decoded: its packets count as non-IP"))
    cand = np.flatnonzero(udp & (it.payload_len >= 20))
    if cand.size:
        cand = cand[(buf[it.payload[cand]] == 0) & np.isin(buf[it.payload[cand] + 1], (5, 9, 10))]
    if cand.size:
        inner, export_notes, is_export = decode_exports(buf, it.payload[cand], it.payload_len[cand])
        notes.extend(export_notes)
        if is_export.any():
            exp = cand[is_export]
            packets = flows.packets.copy()
            nbytes = flows.bytes.copy()
            np.subtract.at(packets, it.flow[exp], np.uint64(1))
            np.subtract.at(nbytes, it.flow[exp], it.size[exp].astype(np.uint64))
            keep = packets > 0
            flows = Flows(**{**flows.__dict__, "packets": packets, "bytes": nbytes}).take(keep)
            flows = Flows.concat([flows, inner])
            detail = {**detail, "export_packets": int(exp.size), "exported_flows": len(inner)}
    return Capture(
        fmt,
        flows,
        names=merge_names(names),
        errors=tuple(notes),
        records=pf.packets,
        detail={**detail, "packets": pf.packets, "non_ip_packets": pf.non_ip},
    )
