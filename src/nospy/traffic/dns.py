"""DNS answers (RFC 1035 section 4, AAAA from RFC 3596): which names resolved to which addresses.

Only responses are read. Each A/AAAA answer names its address with the record's owner name, every
name that reaches it through CNAME records in the same message, and the question's name; so a flow to
an address can be matched against a declared ``host:`` even when a CDN sits in between. Compression
pointers are followed with a hop limit; a malformed message contributes what was read before the damage.
"""

from __future__ import annotations

import ipaddress

from nospy.traffic.flows import address_key
from nospy.traffic.interface import Names

__all__ = ["merge_names", "parse_response"]

_A, _CNAME, _AAAA = 1, 5, 28
_MAX_HOPS = 32


class _MalformedError(Exception):
    pass


def _name(msg: bytes, p: int) -> tuple[str, int]:
    """The name at ``p`` and the offset after it (in the message, not after a pointer's target)."""
    labels: list[str] = []
    end = -1
    hops = 0
    while True:
        if p >= len(msg):
            raise _MalformedError
        n = msg[p]
        if n & 0xC0 == 0xC0:
            if p + 1 >= len(msg) or hops >= _MAX_HOPS:
                raise _MalformedError
            if end < 0:
                end = p + 2
            p = ((n & 0x3F) << 8) | msg[p + 1]
            hops += 1
            continue
        if n & 0xC0:
            raise _MalformedError
        p += 1
        if n == 0:
            break
        if p + n > len(msg):
            raise _MalformedError
        labels.append(msg[p : p + n].decode("ascii", "replace").lower())
        p += n
    return ".".join(labels), (end if end >= 0 else p)


def parse_response(msg: bytes) -> dict[tuple[int, int], set[str]]:
    """Address -> names from one DNS response (an empty mapping for queries and damaged headers)."""
    if len(msg) < 12 or not msg[2] & 0x80:
        return {}
    qd = int.from_bytes(msg[4:6], "big")
    an = int.from_bytes(msg[6:8], "big")
    p = 12
    questions: list[str] = []
    cname: dict[str, str] = {}  # target -> alias
    found: list[tuple[tuple[int, int], str]] = []
    try:
        for _ in range(qd):
            name, p = _name(msg, p)
            p += 4
            questions.append(name)
        for _ in range(an):
            owner, p = _name(msg, p)
            if p + 10 > len(msg):
                break
            rtype = int.from_bytes(msg[p : p + 2], "big")
            rdlen = int.from_bytes(msg[p + 8 : p + 10], "big")
            p += 10
            if p + rdlen > len(msg):
                break
            rdata = msg[p : p + rdlen]
            if rtype == _A and rdlen == 4:
                found.append((address_key(ipaddress.IPv4Address(rdata)), owner))
            elif rtype == _AAAA and rdlen == 16:
                found.append((address_key(ipaddress.IPv6Address(rdata)), owner))
            elif rtype == _CNAME:
                target, _ = _name(msg, p)
                cname[target] = owner
            p += rdlen
    except _MalformedError:
        pass
    out: dict[tuple[int, int], set[str]] = {}
    for key, owner in found:
        names = out.setdefault(key, set())
        name = owner
        for _ in range(_MAX_HOPS):
            if not name or name in names:
                break
            names.add(name)
            name = cname.get(name, "")
        names.update(q for q in questions if q)
    return out


def merge_names(parts: list[dict[tuple[int, int], set[str]]]) -> Names:
    merged: dict[tuple[int, int], set[str]] = {}
    for part in parts:
        for key, names in part.items():
            merged.setdefault(key, set()).update(names)
    return {key: frozenset(names) for key, names in merged.items()}
