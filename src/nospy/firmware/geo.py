"""The one question firmware checks ask of geolocation: which country is this address in?

The traffic checks own the real offline geolocation (``nospy.traffic.geo``); firmware accepts any
implementation of `CountryLookup`, so joining the two is one line. `RangeTable` is a small real
implementation over a user's CSV of ``network,country`` rows (an operator's own address plan, or an
export of a geolocation database), useful on its own and in tests.
"""

from __future__ import annotations

import bisect
import csv
import io
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from nospy.errors import InputError

__all__ = ["CountryLookup", "RangeTable", "as_country_lookup"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class CountryLookup(Protocol):
    """Country of an IP address, offline."""

    @property
    def name(self) -> str:
        """The database's name and date, recorded in every piece of evidence that used it."""
        ...

    def country(self, address: IPAddress) -> str | None:
        """ISO 3166-1 alpha-2 code, or ``None`` when the database does not place the address."""
        ...


@dataclass(frozen=True)
class _Adapted:
    """A geolocator whose ``country()`` returns a result object (``.country``) and ``describe()`` its database."""

    geo: Any

    @property
    def name(self) -> str:
        db = self.geo.describe()
        return f"{db.name} ({db.date})" if getattr(db, "date", None) else str(db.name)

    def country(self, address: IPAddress) -> str | None:
        result = self.geo.country(address)
        country = result if result is None or isinstance(result, str) else getattr(result, "country", None)
        return country if isinstance(country, str) else None


def as_country_lookup(geo: object) -> CountryLookup:
    """``geo`` as a `CountryLookup`: as it is, or adapted from the traffic checks' geolocators
    (``nospy.traffic.geo.Geolocator``: ``country(ip)`` gives a result with ``.country``, ``describe()``
    names the database), so joining them is ``FirmwareSource(path, geo=as_country_lookup(locator))``.
    """
    if isinstance(geo, RangeTable):
        return geo
    if callable(getattr(geo, "describe", None)) and callable(getattr(geo, "country", None)):
        return _Adapted(geo)
    if isinstance(getattr(geo, "name", None), str) and callable(getattr(geo, "country", None)):
        return geo  # type: ignore[return-value]  # it already has the protocol's shape
    raise TypeError(f"{type(geo).__name__} is not a geolocator (needs country() and name or describe())")


@dataclass(frozen=True)
class RangeTable:
    """Non-overlapping networks with a country each, searched by binary search."""

    name: str
    starts: tuple[int, ...]
    ends: tuple[int, ...]
    countries: tuple[str, ...]

    @classmethod
    def parse(cls, text: str, name: str) -> RangeTable:
        rows: list[tuple[int, int, str]] = []
        for n, row in enumerate(csv.reader(io.StringIO(text)), 1):
            if not row or row[0].startswith("#"):
                continue
            if len(row) != 2:
                raise InputError(f"{name}:{n}: expected network,country")
            try:
                net = ipaddress.ip_network(row[0].strip(), strict=False)
            except ValueError as exc:
                raise InputError(f"{name}:{n}: {exc}") from None
            # IPv6 networks live above the IPv4 space so both fit one sorted list
            base = 0 if net.version == 4 else 1 << 32
            rows.append((base + int(net.network_address), base + int(net.broadcast_address), row[1].strip().upper()))
        rows.sort()
        return cls(name, tuple(r[0] for r in rows), tuple(r[1] for r in rows), tuple(r[2] for r in rows))

    @classmethod
    def load(cls, path: Path) -> RangeTable:
        try:
            return cls.parse(path.read_text(), path.name)
        except OSError as exc:
            raise InputError(f"{path}: {exc.strerror or exc}") from None

    def country(self, address: IPAddress) -> str | None:
        key = int(address) + (0 if address.version == 4 else 1 << 32)
        i = bisect.bisect_right(self.starts, key) - 1
        if i >= 0 and key <= self.ends[i]:
            return self.countries[i]
        return None
