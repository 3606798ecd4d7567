"""Template-based flow export: NetFlow v9 (RFC 3954) and IPFIX (RFC 7011), decoded together.

Both formats send templates (field type and length lists) and data records laid out by them, keyed by
(observation domain / source id, template id). Here the messages are first walked by a compiled loop
into a table of sets; template and options-template sets are parsed (few), then every data set is
matched to its template and decoded by a compiled loop, one template layout per record, straight into
flow columns. A data set is matched to the latest definition of its template before it, or, when the
data arrived first (a collector that joined late, UDP reordering), to the first definition after it.

Supported: IPFIX enterprise-specific fields (skipped by length), variable-length fields (RFC 7011
section 7, decoded record by record), reduced-size encoding of counters (RFC 7011 section 6.2), IPv6
addresses, options templates (their records carry no flows; ``systemInitTimeMilliseconds`` in them
gives IPFIX's sysUpTime base). Template withdrawals are accepted and ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from nospy.traffic._jit import jit
from nospy.traffic.flows import Flows
from nospy.traffic.interface import DamageNote

__all__ = ["IPFIX", "NETFLOW9", "decode_messages", "message_length", "valid_message"]

I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]

NETFLOW9 = 9
IPFIX = 10
VARLEN = 0xFFFF

# target columns, in the order of the decoder's ``where``/``width`` tables
_T_SRC4, _T_DST4, _T_SRC6, _T_DST6, _T_SPORT, _T_DPORT, _T_PROTO = range(7)
_T_BYTES, _T_PACKETS, _T_FIRST_UP, _T_LAST_UP, _T_FIRST_S, _T_LAST_S, _T_FIRST_MS, _T_LAST_MS = range(7, 15)
_T_FIRST_US, _T_LAST_US, _T_FIRST_NS, _T_LAST_NS = range(15, 19)
NTARGETS = 19

# information element -> target (RFC 3954 section 8 and the IANA IPFIX registry share these numbers)
_ELEMENTS = {
    8: _T_SRC4,
    12: _T_DST4,
    27: _T_SRC6,
    28: _T_DST6,
    7: _T_SPORT,
    11: _T_DPORT,
    4: _T_PROTO,
    1: _T_BYTES,  # octetDeltaCount / IN_BYTES
    2: _T_PACKETS,  # packetDeltaCount / IN_PKTS
    85: _T_BYTES,  # octetTotalCount
    86: _T_PACKETS,  # packetTotalCount
    22: _T_FIRST_UP,  # flowStartSysUpTime / FIRST_SWITCHED (ms)
    21: _T_LAST_UP,  # flowEndSysUpTime / LAST_SWITCHED (ms)
    150: _T_FIRST_S,
    151: _T_LAST_S,
    152: _T_FIRST_MS,
    153: _T_LAST_MS,
    154: _T_FIRST_US,  # NTP timestamp format (RFC 7011 section 6.1.9)
    155: _T_LAST_US,
    156: _T_FIRST_NS,
    157: _T_LAST_NS,
}
_SYSTEM_INIT_MS = 160  # systemInitTimeMilliseconds, sent in options records
_NTP_TO_UNIX = 2_208_988_800


@dataclass(frozen=True)
class Template:
    """A (options) template: its fields as (element id, enterprise number, length)."""

    tid: int
    fields: tuple[tuple[int, int, int], ...]
    options: bool

    @property
    def fixed_length(self) -> int | None:
        if any(length == VARLEN for _, _, length in self.fields):
            return None
        return sum(length for _, _, length in self.fields)

    def layout(self) -> tuple[list[int], list[int]]:
        """Offset and width of each target column in a record (fixed-length templates); -1 if absent."""
        where = [-1] * NTARGETS
        width = [0] * NTARGETS
        pos = 0
        for element, enterprise, length in self.fields:
            target = _ELEMENTS.get(element) if enterprise == 0 else None
            if target is not None and where[target] < 0 and _width_ok(target, length):
                where[target] = pos
                width[target] = length
            pos += length
        return where, width


def _width_ok(target: int, length: int) -> bool:
    if target in (_T_SRC6, _T_DST6):
        return length == 16
    if target in (_T_SRC4, _T_DST4):
        return length == 4
    if target in (_T_FIRST_US, _T_LAST_US, _T_FIRST_NS, _T_LAST_NS):
        return length == 8
    return 1 <= length <= 8


def message_length(version: int, msg: bytes) -> int | None:
    """The length an IPFIX message declares (None for NetFlow v9, whose header has none)."""
    if version == IPFIX and len(msg) >= 4:
        return int.from_bytes(msg[2:4], "big")
    return None


def valid_message(msg: bytes) -> bool:
    """True if ``msg`` is a plausible single v9 or IPFIX message (header and set lengths consistent)."""
    if len(msg) < 20 or msg[0] != 0 or msg[1] not in (NETFLOW9, IPFIX):
        return False
    version = msg[1]
    if version == IPFIX and int.from_bytes(msg[2:4], "big") != len(msg):
        return False
    p = 20 if version == NETFLOW9 else 16
    while p + 4 <= len(msg):
        length = int.from_bytes(msg[p + 2 : p + 4], "big")
        if length < 4 or p + length > len(msg):
            return False
        p += length
    # NetFlow v9 may pad the datagram after the last flowset
    return p == len(msg) or (version == NETFLOW9 and len(msg) - p < 4)


@jit
def _be(buf: U8, p: int, w: int) -> np.uint64:
    """A big-endian unsigned field of ``w`` bytes (reduced-size encoding allows any width up to 8)."""
    if w == 4:
        return np.uint64(
            (np.uint32(buf[p]) << 24) | (np.uint32(buf[p + 1]) << 16) | (np.uint32(buf[p + 2]) << 8) | buf[p + 3]
        )
    if w == 2:
        return np.uint64((np.uint32(buf[p]) << 8) | buf[p + 1])
    if w == 1:
        return np.uint64(buf[p])
    v = np.uint64(0)
    for k in range(w):
        v = (v << np.uint64(8)) | np.uint64(buf[p + k])
    return v


@jit
def _walk_sets(buf: U8, msg_off: I64, msg_len: I64, header: int) -> tuple[I64, I64, I64, I64, int]:
    """Every set: its message, set id, body offset and body length; and the count of damaged messages."""
    cap = 16
    for m in range(msg_len.size):
        cap += msg_len[m] // 4
    s_msg = np.empty(cap, dtype=np.int64)
    s_id = np.empty(cap, dtype=np.int64)
    s_off = np.empty(cap, dtype=np.int64)
    s_len = np.empty(cap, dtype=np.int64)
    k = 0
    damaged = 0
    for m in range(msg_off.size):
        p = msg_off[m] + header
        end = msg_off[m] + msg_len[m]
        while p + 4 <= end:
            sid = (np.int64(buf[p]) << 8) | buf[p + 1]
            length = (np.int64(buf[p + 2]) << 8) | buf[p + 3]
            if length < 4 or p + length > end:
                damaged += 1
                break
            s_msg[k] = m
            s_id[k] = sid
            s_off[k] = p + 4
            s_len[k] = length - 4
            k += 1
            p += length
    return s_msg[:k], s_id[:k], s_off[:k], s_len[:k], damaged


@jit
def _time_kind(  # noqa: PLR0917 - compiled helper
    where: Any, t: int, ns: int, us: int, ms: int, sec: int, up: int
) -> tuple[int, int, int]:
    """Which timestamp field a layout has for one end of the flow: (kind, offset, width)."""
    if where[t, ns] >= 0:
        return 1, where[t, ns], 8
    if where[t, us] >= 0:
        return 1, where[t, us], 8
    if where[t, ms] >= 0:
        return 3, where[t, ms], 0
    if where[t, sec] >= 0:
        return 4, where[t, sec], 0
    if where[t, up] >= 0:
        return 5, where[t, up], 0
    return 0, 0, 0


@jit
def _stamp(  # noqa: PLR0917 - compiled helper
    buf: U8, r: int, kind: int, at: int, width: int, boot: int, export: int
) -> Any:
    """A timestamp in ns since the epoch, by the field kind `_time_kind` found."""
    if kind == 1:  # NTP format (RFC 7011 section 6.1.9): seconds since 1900 and a binary fraction
        v = _be(buf, r + at, 8)
        secs = np.int64(v >> np.uint64(32)) - 2_208_988_800
        return secs * 1_000_000_000 + np.int64((v & np.uint64(0xFFFFFFFF)) * np.uint64(1_000_000_000) >> np.uint64(32))
    if kind == 3:
        return np.int64(_be(buf, r + at, width)) * 1_000_000
    if kind == 4:
        return np.int64(_be(buf, r + at, width)) * 1_000_000_000
    if kind == 5 and boot > 0:
        return (boot + np.int64(_be(buf, r + at, width))) * 1_000_000
    return export * 1_000_000_000


@jit
def _decode_fixed(  # noqa: PLR0917 - compiled kernels take their columns positionally
    buf: U8,
    set_off: I64,
    set_nrec: I64,
    set_reclen: I64,
    set_layout: I64,
    set_boot_ms: I64,
    set_export_s: I64,
    where: I64,
    width: I64,
) -> tuple[Any, ...]:
    """Flow columns from the records of data sets (body offset, record count and length, layout row of
    ``where``/``width``, the message's boot and export time).

    A layout's field positions are loaded into locals once per set, not once per record.
    """
    n = 0
    for k in range(set_nrec.size):
        n += set_nrec[k]
    src_hi = np.zeros(n, dtype=np.uint64)
    src_lo = np.zeros(n, dtype=np.uint64)
    dst_hi = np.zeros(n, dtype=np.uint64)
    dst_lo = np.zeros(n, dtype=np.uint64)
    sport = np.zeros(n, dtype=np.uint16)
    dport = np.zeros(n, dtype=np.uint16)
    proto = np.zeros(n, dtype=np.uint8)
    nbytes = np.zeros(n, dtype=np.uint64)
    npackets = np.zeros(n, dtype=np.uint64)
    first = np.zeros(n, dtype=np.int64)
    last = np.zeros(n, dtype=np.int64)
    mapped = np.uint64(0xFFFF00000000)
    cur = -1
    s6 = d6 = s4 = d4 = sp = dp = pr = by = pk = 0
    wsp = wdp = wpr = wby = wpk = 0
    fk = fa = fw = lk = la = lw = 0
    i = -1
    for k in range(set_off.size):
        t = set_layout[k]
        boot = set_boot_ms[k]
        export = set_export_s[k]
        if t != cur:
            cur = t
            s6, d6, s4, d4 = where[t, _T_SRC6], where[t, _T_DST6], where[t, _T_SRC4], where[t, _T_DST4]
            sp, dp, pr = where[t, _T_SPORT], where[t, _T_DPORT], where[t, _T_PROTO]
            by, pk = where[t, _T_BYTES], where[t, _T_PACKETS]
            wsp, wdp, wpr = width[t, _T_SPORT], width[t, _T_DPORT], width[t, _T_PROTO]
            wby, wpk = width[t, _T_BYTES], width[t, _T_PACKETS]
            fk, fa, fw = _time_kind(where, t, _T_FIRST_NS, _T_FIRST_US, _T_FIRST_MS, _T_FIRST_S, _T_FIRST_UP)
            lk, la, lw = _time_kind(where, t, _T_LAST_NS, _T_LAST_US, _T_LAST_MS, _T_LAST_S, _T_LAST_UP)
            if fk > 1:
                fw = width[t, _T_FIRST_MS] if fk == 3 else width[t, _T_FIRST_S] if fk == 4 else width[t, _T_FIRST_UP]
            if lk > 1:
                lw = width[t, _T_LAST_MS] if lk == 3 else width[t, _T_LAST_S] if lk == 4 else width[t, _T_LAST_UP]
        for m in range(set_nrec[k]):
            r = set_off[k] + m * set_reclen[k]
            i += 1
            if s6 >= 0:
                src_hi[i] = _be(buf, r + s6, 8)
                src_lo[i] = _be(buf, r + s6 + 8, 8)
            elif s4 >= 0:
                src_lo[i] = mapped | _be(buf, r + s4, 4)
            if d6 >= 0:
                dst_hi[i] = _be(buf, r + d6, 8)
                dst_lo[i] = _be(buf, r + d6 + 8, 8)
            elif d4 >= 0:
                dst_lo[i] = mapped | _be(buf, r + d4, 4)
            if sp >= 0:
                sport[i] = np.uint16(_be(buf, r + sp, wsp) & np.uint64(0xFFFF))
            if dp >= 0:
                dport[i] = np.uint16(_be(buf, r + dp, wdp) & np.uint64(0xFFFF))
            if pr >= 0:
                proto[i] = np.uint8(_be(buf, r + pr, wpr) & np.uint64(0xFF))
            if by >= 0:
                nbytes[i] = _be(buf, r + by, wby)
            if pk >= 0:
                npackets[i] = _be(buf, r + pk, wpk)
            f = _stamp(buf, r, fk, fa, fw, boot, export)
            e = _stamp(buf, r, lk, la, lw, boot, export) if lk else max(f, export * 1_000_000_000)
            first[i] = f
            last[i] = e
    return src_hi, src_lo, dst_hi, dst_lo, sport, dport, proto, nbytes, npackets, first, last


def _parse_templates(body: bytes, sid: int, version: int) -> tuple[list[Template], str | None]:
    """The templates of one template or options-template set, and a damage message if it is malformed."""
    options = sid in (1, 3)
    out: list[Template] = []
    p = 0
    while len(body) - p >= 4:
        tid = int.from_bytes(body[p : p + 2], "big")
        if version == NETFLOW9 and options:
            # RFC 3954 section 6.1: scope and option lengths are in bytes, 4 per field
            if len(body) - p < 6:
                break
            nfields = (int.from_bytes(body[p + 2 : p + 4], "big") + int.from_bytes(body[p + 4 : p + 6], "big")) // 4
            p += 6
        else:
            nfields = int.from_bytes(body[p + 2 : p + 4], "big")
            p += 4
            if options:
                p += 2  # IPFIX scope field count (RFC 7011 section 3.4.2.2)
        if tid < 256:
            if tid == 0 and nfields == 0:
                break  # padding
            return out, f"template id {tid} is reserved"
        fields = []
        for _ in range(nfields):
            if len(body) - p < 4:
                return out, f"template {tid} is cut off"
            element = int.from_bytes(body[p : p + 2], "big")
            length = int.from_bytes(body[p + 2 : p + 4], "big")
            p += 4
            enterprise = 0
            if version == IPFIX and element & 0x8000:
                if len(body) - p < 4:
                    return out, f"template {tid} is cut off"
                enterprise = int.from_bytes(body[p : p + 4], "big")
                element &= 0x7FFF
                p += 4
            if version == NETFLOW9 and length == VARLEN:
                return out, f"template {tid}: variable-length field in NetFlow v9"
            fields.append((element, enterprise, length))
        if nfields == 0:
            continue  # a withdrawal (RFC 7011 section 8.1)
        if sum(length for _, _, length in fields if length != VARLEN) == 0 and all(
            length != VARLEN for _, _, length in fields
        ):
            return out, f"template {tid} has only zero-length fields"
        out.append(Template(tid, tuple(fields), options))
    return out, None


def _variable_records(body: bytes, template: Template) -> list[tuple[int, bytes]]:
    """Records of a set under a template with variable-length fields, each re-laid as fixed fields.

    Every variable-length field is read (RFC 7011 section 7) and the record is rebuilt with the fields the
    flow columns use at fixed positions, so the compiled decoder handles it like any other record.
    """
    out: list[tuple[int, bytes]] = []
    p = 0
    while p < len(body):
        start = p
        parts = []
        for _, _, length in template.fields:
            size = length
            if length == VARLEN:
                if p >= len(body):
                    return out
                size = body[p]
                p += 1
                if size == 255:
                    if p + 2 > len(body):
                        return out
                    size = int.from_bytes(body[p : p + 2], "big")
                    p += 2
            if p + size > len(body):
                return out
            parts.append(b"" if length == VARLEN else body[p : p + size])
            p += size
        if p == start:
            break
        out.append((start, b"".join(parts)))
    return out


def decode_messages(buf: U8, msg_off: I64, msg_len: I64, version: int) -> tuple[Flows, list[DamageNote], int]:
    """Flows in the NetFlow v9 or IPFIX messages at ``msg_off``/``msg_len`` (in order of arrival).

    Returns the flows, damage notes and the number of data records that had no template at all.
    """
    header = 20 if version == NETFLOW9 else 16
    msg_off = np.ascontiguousarray(msg_off, dtype=np.int64)
    msg_len = np.ascontiguousarray(msg_len, dtype=np.int64)
    errors: list[DamageNote] = []
    if msg_off.size == 0:
        return Flows.empty(), errors, 0
    s_msg, s_id, s_off, s_len, damaged = _walk_sets(buf, msg_off, msg_len, header)
    if damaged:
        errors.append(DamageNote("sets", f"{damaged} messages with a set that overruns the message"))

    def be32(at: I64) -> I64:
        return (
            (buf[at].astype(np.int64) << 24)
            | (buf[at + 1].astype(np.int64) << 16)
            | (buf[at + 2].astype(np.int64) << 8)
            | buf[at + 3].astype(np.int64)
        )

    if version == NETFLOW9:
        uptime_ms = be32(msg_off + 4)
        export_s = be32(msg_off + 8)
        domain = be32(msg_off + 16)
        boot_ms = export_s * 1000 - uptime_ms
    else:
        export_s = be32(msg_off + 4)
        domain = be32(msg_off + 12)
        boot_ms = np.zeros(msg_off.size, dtype=np.int64)

    tset = 0 if version == NETFLOW9 else 2
    # definitions of each (domain, template id), by the index of the set that carried them
    defs: dict[tuple[int, int], list[tuple[int, Template]]] = {}
    init_ms: dict[int, int] = {}
    for i in np.flatnonzero(s_id < 256):
        sid = int(s_id[i])
        if sid not in (tset, tset + 1):
            continue
        body = buf[s_off[i] : s_off[i] + s_len[i]].tobytes()
        templates, problem = _parse_templates(body, sid, version)
        if problem:
            errors.append(DamageNote(f"offset {int(s_off[i]) - 4}", problem))
        dom = int(domain[s_msg[i]])
        for t in templates:
            defs.setdefault((dom, t.tid), []).append((int(i), t))

    data = np.flatnonzero(s_id >= 256)
    layouts: list[Template] = []
    layout_of: dict[int, int] = {}  # id(template) -> layout number
    set_layout = np.full(data.size, -1, dtype=np.int64)
    keys = (domain[s_msg[data]] << 16) | s_id[data]
    uniq, inverse = np.unique(keys, return_inverse=True)
    for u, key in enumerate(uniq):
        versions = defs.get((int(key) >> 16, int(key) & 0xFFFF))
        if not versions:
            continue
        mine = np.flatnonzero(inverse == u)
        for t in (t for _, t in versions):
            if id(t) not in layout_of:
                layout_of[id(t)] = len(layouts)
                layouts.append(t)
        numbers = np.array([layout_of[id(t)] for _, t in versions], dtype=np.int64)
        at = np.array([a for a, _ in versions], dtype=np.int64)
        # the latest definition before each data set; the first one when the data came before any
        k = np.searchsorted(at, data[mine], side="left") - 1
        set_layout[mine] = numbers[np.maximum(k, 0)]
    missing_sets = data[set_layout < 0]
    no_template = int(missing_sets.size)
    if no_template:
        errors.append(DamageNote("data sets", f"{no_template} data sets whose template never arrived"))

    # options records: look for systemInitTimeMilliseconds, the IPFIX sysUpTime base of its domain
    for n, t in enumerate(layouts):
        if not t.options or t.fixed_length is None:
            continue
        pos = 0
        for element, enterprise, length in t.fields:
            if element == _SYSTEM_INIT_MS and enterprise == 0 and length == 8:
                for j in np.flatnonzero(set_layout == n):
                    si = data[j]
                    if s_len[si] >= pos + 8:
                        init_at = int(s_off[si]) + pos
                        init_ms[int(domain[s_msg[si]])] = int.from_bytes(buf[init_at : init_at + 8].tobytes(), "big")
            pos += length
    if version == IPFIX and init_ms:
        boot_ms = np.array([init_ms.get(int(d), 0) for d in domain], dtype=np.int64)

    where = np.full((max(1, len(layouts)), NTARGETS), -1, dtype=np.int64)
    width = np.zeros((max(1, len(layouts)), NTARGETS), dtype=np.int64)
    for n, t in enumerate(layouts):
        if t.fixed_length is not None and not t.options:
            w, wd = t.layout()
            where[n] = w
            width[n] = wd

    # fixed-length data sets: every record start, computed without a Python loop
    fixed_len = np.array([0 if t.options else (t.fixed_length or 0) for t in layouts] or [0], dtype=np.int64)
    sl = set_layout
    use = sl >= 0
    use[use] = fixed_len[sl[use]] > 0
    sets = data[use]
    lay = sl[use]
    reclen = fixed_len[lay]
    nrec = s_len[sets] // reclen
    msg = s_msg[sets]
    parts = [Flows(*_decode_fixed(buf, s_off[sets], nrec, reclen, lay, boot_ms[msg], export_s[msg], where, width))]

    # variable-length data sets: rebuilt record by record (rare: strings such as application names)
    for n, t in enumerate(layouts):
        if t.fixed_length is not None or t.options:
            continue
        flat = Template(t.tid, tuple((e, ent, 0 if ln == VARLEN else ln) for e, ent, ln in t.fields), False)
        w, wd = flat.layout()
        recs: list[bytes] = []
        rmsg: list[int] = []
        for j in np.flatnonzero(set_layout == n):
            i = data[j]
            body = buf[s_off[i] : s_off[i] + s_len[i]].tobytes()
            for _, rec in _variable_records(body, t):
                recs.append(rec)
                rmsg.append(int(s_msg[i]))
        if not recs:
            continue
        # the rebuilt records drop variable fields, which the flow columns never use
        lengths = [len(r) for r in recs]
        flat_buf = np.frombuffer(b"".join(recs), dtype=np.uint8)
        vstarts = np.cumsum([0, *lengths[:-1]]).astype(np.int64)
        vmsg = np.array(rmsg, dtype=np.int64)
        parts.append(
            Flows(
                *_decode_fixed(
                    flat_buf,
                    vstarts,
                    np.ones(len(recs), dtype=np.int64),
                    np.array(lengths, dtype=np.int64),
                    np.zeros(len(recs), dtype=np.int64),
                    boot_ms[vmsg],
                    export_s[vmsg],
                    np.array([w], dtype=np.int64),
                    np.array([wd], dtype=np.int64),
                )
            )
        )
    return Flows.concat(parts), errors, no_template
