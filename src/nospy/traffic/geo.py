"""Offline IP geolocation: the country an address is in, and which database said so.

Default: the IPFire Location database as Debian's ``tor-geoipdb`` ships it (``/usr/share/tor/geoip`` and
``geoip6``: ``start,end,CC`` lines, IPv4 as integers, IPv6 as text; CC BY-SA 4.0). Unlike registry
allocation data it places cloud regions where they are (AWS ap-south-1, 13.232.0.0/14, is India).
``--geoip FILE.mmdb`` reads a MaxMind DB file (MaxMind GeoLite2/GeoIP2, DB-IP, IPinfo layouts).

Results fail closed: an address that is not globally routable (RFC 6890 special-purpose ranges:
private, shared, loopback, link-local, multicast, documentation), one the database does not know, and
one it places only in a region ("EU", "AP") or flags as anycast or anonymous proxy, has no country, so
it is never inside an agreement's ``data.countries``. Lookups over many addresses are vectorised: IPv4
through ``np.searchsorted`` over the sorted range starts, IPv6 through a compiled 128-bit binary search.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import re
import socket
import subprocess
from abc import ABC, abstractmethod
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import maxminddb
import numpy as np
import numpy.typing as npt
import pycountry
from maxminddb.errors import InvalidDatabaseError
from pydantic import BaseModel, ConfigDict, Field

from nospy.errors import InputError
from nospy.traffic._jit import jit
from nospy.traffic.flows import address, address_key, in_networks

__all__ = [
    "TOR_GEOIP",
    "TOR_GEOIP_DIR",
    "GeoDatabase",
    "GeoResult",
    "GeoStatus",
    "Geolocator",
    "MmdbGeolocator",
    "TorGeolocator",
    "code_text",
    "not_global",
    "open_geolocator",
]

U64 = npt.NDArray[np.uint64]
Codes = npt.NDArray[np.uint16]

TOR_GEOIP_DIR = Path("/usr/share/tor")

# country codes as uint16 (first letter << 8 | second); two values that no letter pair takes
UNKNOWN = 0
PRIVATE = 1


def _pack(cc: str) -> int:
    return (ord(cc[0]) << 8) | ord(cc[1]) if len(cc) == 2 and cc.isascii() else UNKNOWN


def code_text(code: int) -> str:
    """The text of a packed code: a country, "EU"/"AP"/"A1".., "private" or "unknown"."""
    if code == UNKNOWN:
        return "unknown"
    if code == PRIVATE:
        return "private"
    return chr(code >> 8) + chr(code & 0xFF)


class GeoStatus(StrEnum):
    COUNTRY = "country"
    UNKNOWN = "unknown"  # the database does not place the address
    PRIVATE = "private"  # not globally routable (RFC 6890)
    REGION = "region"  # only a region: "EU", "AP"
    ANYCAST = "anycast"  # anycast, anonymous proxy or satellite: no single country


_ISO = frozenset(c.alpha_2 for c in pycountry.countries)
_REGIONS = frozenset({"EU", "AP"})
_NOT_A_PLACE = frozenset({"A1", "A2", "A3", "O1"})  # anonymous proxy, satellite, anycast, other


def status_of(code: int) -> GeoStatus:
    if code == PRIVATE:
        return GeoStatus.PRIVATE
    text = code_text(code)
    if text in _ISO:
        return GeoStatus.COUNTRY
    if text in _REGIONS:
        return GeoStatus.REGION
    if text in _NOT_A_PLACE:
        return GeoStatus.ANYCAST
    return GeoStatus.UNKNOWN


@dataclass(frozen=True)
class GeoResult:
    """Where one address is, by one database. ``country`` is set only for a single known country."""

    ip: str
    status: GeoStatus
    country: str | None
    database_code: str | None  # what the database said, for evidence ("EU", "??", "IN")

    def allowed(self, countries: list[str] | frozenset[str]) -> bool:
        """Fail closed: only a known single country that is listed."""
        return self.status is GeoStatus.COUNTRY and self.country in countries


class GeoDatabase(BaseModel):
    """A geolocation data set, as every piece of evidence names it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(description="What the database is, e.g. 'IPFire Location (Debian tor-geoipdb)'.")
    date: str | None = Field(description="When the data was generated (ISO 8601 date), as the file says.")
    source: str = Field(description="Where the data comes from.")
    licence: str = Field(description="Licence of the data.")
    path: str = Field(description="The file(s) read.")


TOR_GEOIP = {
    "name": "IPFire Location (Debian tor-geoipdb)",
    "source": "https://location.ipfire.org/ via Tor's geoip-db-tool, packaged by Debian as tor-geoipdb",
    "licence": "CC BY-SA 4.0",
}


def _special_v4() -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint32]]:
    """Starts and ends of the IPv4 ranges that are not globally routable (RFC 6890 and successors)."""
    nets = [
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
        "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15",
        "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
    ]  # fmt: skip
    ranges = sorted((int(n.network_address), int(n.broadcast_address)) for n in map(ipaddress.IPv4Network, nets))
    return np.array([s for s, _ in ranges], dtype=np.uint32), np.array([e for _, e in ranges], dtype=np.uint32)


_SPECIAL_START, _SPECIAL_END = _special_v4()

# Anycast prefixes of the big public resolvers, as their operators publish them: one address, many
# countries. Databases place them in one country (1.1.1.1 in AU); an answer like that is not a place.
ANYCAST = [
    ipaddress.ip_network(n)
    for n in (
        "1.1.1.0/24", "1.0.0.0/24", "2606:4700:4700::/48",  # Cloudflare 1.1.1.1
        "8.8.8.0/24", "8.8.4.0/24", "2001:4860:4860::/48",  # Google Public DNS
        "9.9.9.0/24", "149.112.112.0/24", "2620:fe::/48",  # Quad9
        "208.67.222.0/24", "208.67.220.0/24", "2620:119:35::/48",  # OpenDNS
    )
]  # fmt: skip
_MAPPED = np.uint64(0xFFFF_0000_0000)


def _in_ranges(ip: npt.NDArray[np.uint32], starts: npt.NDArray[np.uint32], ends: npt.NDArray[np.uint32]) -> Any:
    i = np.searchsorted(starts, ip, side="right") - 1
    ok = i >= 0
    ok[ok] = ip[ok] <= ends[i[ok]]
    return ok, i


def not_global(hi: U64, lo: U64) -> npt.NDArray[np.bool_]:
    """Which addresses are not globally routable."""
    v4 = (hi == 0) & ((lo >> np.uint64(32)) == np.uint64(0xFFFF))
    out = np.zeros(hi.size, dtype=np.bool_)
    ip4 = (lo[v4] & np.uint64(0xFFFF_FFFF)).astype(np.uint32)
    out[v4] = _in_ranges(ip4, _SPECIAL_START, _SPECIAL_END)[0]
    for i in np.flatnonzero(~v4):
        # IPv6 addresses are few among destinations; ipaddress knows the IANA special-purpose registry
        out[i] = not ipaddress.IPv6Address(int(hi[i]) << 64 | int(lo[i])).is_global
    return out


class Geolocator(ABC):
    """A geolocation database: the interface traffic and firmware checks share."""

    @abstractmethod
    def describe(self) -> GeoDatabase:
        """The database's name, date, source and licence, for evidence."""

    @abstractmethod
    def _codes(self, hi: U64, lo: U64) -> Codes:
        """Packed country codes of globally routable addresses (UNKNOWN where not found)."""

    def codes(self, hi: U64, lo: U64) -> Codes:
        """Packed codes for many addresses at once (flow columns); PRIVATE for special-purpose ranges."""
        hi = np.ascontiguousarray(hi, dtype=np.uint64)
        lo = np.ascontiguousarray(lo, dtype=np.uint64)
        special = not_global(hi, lo)
        out = np.full(hi.size, PRIVATE, dtype=np.uint16)
        glob = ~special
        out[glob] = self._codes(hi[glob], lo[glob])
        out[in_networks(hi, lo, ANYCAST)] = _pack("A3")
        return out

    def country(self, ip: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> GeoResult:
        """Where one address is (for hard-coded endpoints and evidence)."""
        try:
            parsed = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
        except ValueError:
            raise InputError(f"{ip!r} is not an IP address") from None
        if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped:
            parsed = parsed.ipv4_mapped
        hi, lo = address_key(parsed)
        code = int(self.codes(np.array([hi], dtype=np.uint64), np.array([lo], dtype=np.uint64))[0])
        return result_of(str(parsed), code)


def result_of(ip: str, code: int) -> GeoResult:
    status = status_of(code)
    return GeoResult(
        ip=ip,
        status=status,
        country=code_text(code) if status is GeoStatus.COUNTRY else None,
        database_code=None if code in (UNKNOWN, PRIVATE) else code_text(code),
    )


@jit
def _search128(  # noqa: PLR0917 - compiled kernels take their columns positionally
    s_hi: U64, s_lo: U64, e_hi: U64, e_lo: U64, codes: Codes, hi: U64, lo: U64
) -> Codes:
    out = np.zeros(hi.size, dtype=np.uint16)
    n = s_hi.size
    for i in range(hi.size):
        # the last range whose start is <= the address
        a, b = 0, n
        while a < b:
            m = (a + b) // 2
            if s_hi[m] < hi[i] or (s_hi[m] == hi[i] and s_lo[m] <= lo[i]):
                a = m + 1
            else:
                b = m
        k = a - 1
        if k >= 0 and (hi[i] < e_hi[k] or (hi[i] == e_hi[k] and lo[i] <= e_lo[k])):
            out[i] = codes[k]
    return out


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "nospy"


_DATE = re.compile(r"^#\s*Generated:\s*(.+?)\s*$", re.MULTILINE)
_LICENCE = re.compile(r"^#\s*License:\s*(.+?)\s*$", re.MULTILINE)


class TorGeolocator(Geolocator):
    """The range files of Debian's tor-geoipdb (IPFire Location data)."""

    def __init__(self, directory: Path = TOR_GEOIP_DIR) -> None:
        self.v4_path = directory / "geoip"
        self.v6_path = directory / "geoip6"
        try:
            head = self.v4_path.open("rb").read(4096).decode("utf-8", "replace")
            stat4, stat6 = self.v4_path.stat(), self.v6_path.stat()
        except OSError as exc:
            raise InputError(
                f"geolocation database {directory} cannot be read ({exc.strerror or exc}); "
                "install Debian's tor-geoipdb or give an MMDB file with --geoip"
            ) from None
        m = _DATE.search(head)
        self.date = _iso_date(m.group(1)) if m else None
        lic = _LICENCE.search(head)
        self.licence = lic.group(1) if lic else TOR_GEOIP["licence"]
        key = hashlib.sha256(
            f"{self.v4_path}:{stat4.st_size}:{stat4.st_mtime_ns}:{stat6.st_size}:{stat6.st_mtime_ns}".encode()
        ).hexdigest()[:24]
        tables = self._load_cached(key)
        self.v4_start, self.v4_end, self.v4_code = tables[0], tables[1], tables[2]
        self.v6_shi, self.v6_slo, self.v6_ehi, self.v6_elo, self.v6_code = tables[3:]

    def _load_cached(self, key: str) -> list[npt.NDArray[Any]]:
        cache = _cache_dir() / f"tor-geoip-{key}.npz"
        try:
            with np.load(cache) as z:
                return [z[f"arr_{i}"] for i in range(8)]
        except (OSError, KeyError, ValueError):
            pass
        tables = self._parse()
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(f".{os.getpid()}.tmp.npz")
            np.savez(tmp, *tables)
            tmp.replace(cache)
        except OSError:
            pass  # a read-only home only costs the parse on every run
        return tables

    def _parse(self) -> list[npt.NDArray[Any]]:
        s4, e4, c4 = [], [], []
        for line in self.v4_path.read_text("ascii", "replace").splitlines():
            if line and line[0] != "#":
                a, b, cc = line.split(",")
                s4.append(int(a))
                e4.append(int(b))
                c4.append(_pack(cc))
        shi, slo, ehi, elo, c6 = [], [], [], [], []
        for line in self.v6_path.read_text("ascii", "replace").splitlines():
            if line and line[0] != "#":
                a, b, cc = line.split(",")
                sa = int.from_bytes(socket.inet_pton(socket.AF_INET6, a), "big")
                sb = int.from_bytes(socket.inet_pton(socket.AF_INET6, b), "big")
                shi.append(sa >> 64)
                slo.append(sa & 0xFFFF_FFFF_FFFF_FFFF)
                ehi.append(sb >> 64)
                elo.append(sb & 0xFFFF_FFFF_FFFF_FFFF)
                c6.append(_pack(cc))
        o4 = np.argsort(np.array(s4, dtype=np.uint32), kind="stable")
        v6 = [np.array(x, dtype=np.uint64) for x in (shi, slo, ehi, elo)]
        o6 = np.lexsort((v6[1], v6[0]))
        return [
            np.array(s4, dtype=np.uint32)[o4],
            np.array(e4, dtype=np.uint32)[o4],
            np.array(c4, dtype=np.uint16)[o4],
            *(x[o6] for x in v6),
            np.array(c6, dtype=np.uint16)[o6],
        ]

    def describe(self) -> GeoDatabase:
        return GeoDatabase(
            name=TOR_GEOIP["name"],
            date=self.date,
            source=TOR_GEOIP["source"],
            licence=self.licence,
            path=f"{self.v4_path}, {self.v6_path}",
        )

    def _codes(self, hi: U64, lo: U64) -> Codes:
        out = np.zeros(hi.size, dtype=np.uint16)
        v4 = (hi == 0) & ((lo >> np.uint64(32)) == np.uint64(0xFFFF))
        ip4 = (lo[v4] & np.uint64(0xFFFF_FFFF)).astype(np.uint32)
        found, i = _in_ranges(ip4, self.v4_start, self.v4_end)
        codes4 = np.zeros(ip4.size, dtype=np.uint16)
        codes4[found] = self.v4_code[i[found]]
        out[v4] = codes4
        if not v4.all():
            v6 = ~v4
            out[v6] = _search128(self.v6_shi, self.v6_slo, self.v6_ehi, self.v6_elo, self.v6_code, hi[v6], lo[v6])
        return out


def _iso_date(text: str) -> str | None:
    try:
        return parsedate_to_datetime(text).date().isoformat()
    except (TypeError, ValueError):
        return None


class MmdbGeolocator(Geolocator):
    """A MaxMind DB file: GeoLite2/GeoIP2 and DB-IP (``country.iso_code``), IPinfo (``country``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._reader = maxminddb.open_database(str(path))
        except (OSError, InvalidDatabaseError, ValueError) as exc:
            raise InputError(f"{path}: not a readable MaxMind DB file ({exc})") from None
        meta = self._reader.metadata()
        self._meta = meta
        self.ip_version = int(meta.ip_version)

    def describe(self) -> GeoDatabase:
        meta = self._meta
        date = datetime.datetime.fromtimestamp(int(meta.build_epoch), tz=datetime.UTC).date().isoformat()
        desc = meta.description.get("en") if isinstance(meta.description, dict) else None
        return GeoDatabase(
            name=f"{meta.database_type}" + (f" ({desc})" if desc else ""),
            date=date,
            source=f"MaxMind DB file {self.path.name}",
            licence="as the database's vendor licenses it (see the file's provider)",
            path=str(self.path),
        )

    def _one(self, ip: str) -> int:
        try:
            rec = self._reader.get(ip)
        except (InvalidDatabaseError, ValueError):
            return UNKNOWN
        if not isinstance(rec, dict):
            return UNKNOWN
        traits = rec.get("traits")
        if isinstance(traits, dict) and (traits.get("is_anycast") or traits.get("is_anonymous_proxy")):
            return _pack("A3")
        country = rec.get("country")
        if isinstance(country, dict):
            cc = country.get("iso_code")
        elif isinstance(country, str):
            cc = country  # IPinfo's flat layout
        else:
            cc = None
        if isinstance(cc, str) and len(cc) == 2:
            return _pack(cc.upper())
        return UNKNOWN

    def _codes(self, hi: U64, lo: U64) -> Codes:
        # maxminddb answers one address at a time; the callers pass unique destinations only
        return np.array([self._one(address(int(h), int(low))) for h, low in zip(hi, lo, strict=True)], dtype=np.uint16)


def open_geolocator(mmdb: Path | None = None, tor_dir: Path = TOR_GEOIP_DIR) -> Geolocator:
    """The MMDB file given, or the tor-geoipdb default."""
    return MmdbGeolocator(mmdb) if mmdb is not None else TorGeolocator(tor_dir)


def tor_package_version() -> str | None:
    """The installed tor-geoipdb package version (for the data set record), if dpkg knows it."""
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", "tor-geoipdb"], capture_output=True, text=True, check=False
        )
    except OSError:
        return None
    return out.stdout.strip() or None
