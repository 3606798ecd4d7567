"""Geolocation: the tor-geoipdb data set loads, places cloud regions right and fails closed."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import numpy as np
import pytest

from nospy.errors import InputError
from nospy.traffic.flows import address_key
from nospy.traffic.geo import GeoStatus, TorGeolocator, open_geolocator, tor_package_version
from traffic_tools import write_mmdb


@pytest.fixture(scope="module")
def geo() -> TorGeolocator:
    return TorGeolocator()


def test_tor_geoipdb_loads_with_source_licence_and_date(geo: TorGeolocator) -> None:
    """The default data set: fails when Debian's tor-geoipdb is missing or its header changes."""
    d = geo.describe()
    assert d.name == "IPFire Location (Debian tor-geoipdb)"
    assert d.licence == "CC BY-SA 4.0"  # read from the file's header, not assumed
    assert d.date is not None and d.date >= "2020-01-01"
    assert geo.v4_start.size > 100_000 and geo.v6_shi.size > 100_000
    assert tor_package_version() is not None


@pytest.mark.parametrize(
    ("ip", "country"),
    [
        ("13.232.0.1", "IN"),  # AWS ap-south-1 (Mumbai): registry data says US
        ("13.235.255.254", "IN"),
        ("18.234.186.95", "US"),  # AWS us-east-1, the pcapng sample's server
        ("208.80.152.3", "US"),
        ("2406:da1a::1", "IN"),  # AWS ap-south-1 IPv6
    ],
)
def test_countries(geo: TorGeolocator, ip: str, country: str) -> None:
    r = geo.country(ip)
    assert (r.status, r.country) == (GeoStatus.COUNTRY, country)
    assert r.allowed(["IN"]) is (country == "IN")


@pytest.mark.parametrize(
    ("ip", "status"),
    [
        ("10.1.2.3", GeoStatus.PRIVATE),
        ("192.168.1.4", GeoStatus.PRIVATE),
        ("100.64.0.1", GeoStatus.PRIVATE),
        ("fd00::1", GeoStatus.PRIVATE),
        ("224.0.0.251", GeoStatus.PRIVATE),
        ("2001:db8::1", GeoStatus.PRIVATE),
    ],
)
def test_not_routable_fails_closed(geo: TorGeolocator, ip: str, status: GeoStatus) -> None:
    r = geo.country(ip)
    assert r.status is status
    assert not r.allowed(["IN", "US", "DE"])


def test_region_and_unknown_fail_closed(geo: TorGeolocator) -> None:
    # a range the database places only in "EU" and one it marks "??"
    eu = geo.v4_start[geo.v4_code == (ord("E") << 8 | ord("U"))][0]
    unknowns = geo.v4_start[geo.v4_code == (ord("?") << 8 | ord("?"))]
    unknown = next(x for x in unknowns if ipaddress.IPv4Address(int(x)).is_global)
    r = geo.country(str(ipaddress.IPv4Address(int(eu))))
    assert (r.status, r.database_code) == (GeoStatus.REGION, "EU")
    assert not r.allowed(["DE", "FR", "IE"])
    u = geo.country(str(ipaddress.IPv4Address(int(unknown))))
    assert u.status is GeoStatus.UNKNOWN and not u.allowed(["US"])


def test_vectorised_lookup_equals_single(geo: TorGeolocator) -> None:
    rng = np.random.default_rng(1)
    ips = [str(ipaddress.IPv4Address(int(x))) for x in rng.integers(1 << 24, 0xDFFFFFFF, 300)]
    keys = [address_key(ipaddress.ip_address(i)) for i in ips]
    hi = np.array([k[0] for k in keys], dtype=np.uint64)
    lo = np.array([k[1] for k in keys], dtype=np.uint64)
    codes = geo.codes(hi, lo)
    for ip, code in zip(ips, codes, strict=True):
        r = geo.country(ip)
        assert (r.country or r.database_code or r.status.value) in (
            chr(code >> 8) + chr(code & 0xFF),
            "private",
            "unknown",
        )


def test_missing_database_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="tor-geoipdb"):
        TorGeolocator(Path("/nonexistent"))
    with pytest.raises(InputError, match="MaxMind DB"):
        open_geolocator(Path("/etc/hostname"))


def test_mmdb_file_with_fail_closed_rules(tmp_path: Path) -> None:
    db = tmp_path / "country.mmdb"
    write_mmdb(
        db,
        [
            ("13.232.0.0/14", {"country": {"iso_code": "IN"}}),
            ("1.1.1.0/24", {"country": {"iso_code": "AU"}, "traits": {"is_anycast": True}}),
            ("10.0.0.0/8", {"country": {"iso_code": "IN"}}),  # a database that leaks a private range
            ("93.184.216.0/24", {"country": "US"}),  # the flat layout of IPinfo files
            ("81.2.69.0/24", {"continent": {"code": "EU"}}),  # no country
        ],
    )
    geo = open_geolocator(db)
    assert geo.describe().name == "nospy-test-country (test database written by the nospy tests)"
    assert geo.describe().date == "2025-06-15"
    assert geo.country("13.233.1.1").allowed(["IN"])
    assert geo.country("93.184.216.34").country == "US"
    assert geo.country("1.1.1.1").status is GeoStatus.ANYCAST
    assert geo.country("10.1.1.1").status is GeoStatus.PRIVATE
    assert geo.country("81.2.69.1").status is GeoStatus.UNKNOWN
    assert geo.country("5.5.5.5").status is GeoStatus.UNKNOWN  # not in the file
    assert not geo.country("2406:da1a::1").allowed(["IN"])  # an IPv4-only file knows no IPv6


@pytest.mark.parametrize("ip", ["1.1.1.1", "8.8.8.8", "2001:4860:4860::8888", "9.9.9.9"])
def test_public_resolver_anycast_fails_closed(geo: TorGeolocator, ip: str) -> None:
    r = geo.country(ip)
    assert r.status is GeoStatus.ANYCAST
    assert not r.allowed(["US", "AU", "CH"])
