"""Firmware geolocation: the range table and the adapter for the traffic checks' geolocators."""

from __future__ import annotations

import ipaddress

import pytest

from nospy.errors import InputError
from nospy.firmware.geo import RangeTable, as_country_lookup


def test_range_table() -> None:
    table = RangeTable.parse("# plan\n45.83.0.0/16,ru\n2001:db8::/32,DE\n103.21.244.0/22,IN\n", "plan.csv")
    assert table.country(ipaddress.ip_address("45.83.255.255")) == "RU"
    assert table.country(ipaddress.ip_address("45.84.0.0")) is None
    assert table.country(ipaddress.ip_address("103.21.247.1")) == "IN"
    assert table.country(ipaddress.ip_address("2001:db8::1")) == "DE"
    assert as_country_lookup(table) is table
    with pytest.raises(InputError, match=r"plan\.csv:1"):
        RangeTable.parse("not-a-network,IN\n", "plan.csv")
    with pytest.raises(TypeError):
        as_country_lookup(object())


def test_traffic_geolocator_adapts() -> None:
    geo = pytest.importorskip("nospy.traffic.geo", reason="the traffic checks' geolocation lands with its issue")
    lookup = as_country_lookup(geo.TorGeolocator())
    assert "IPFire" in lookup.name
    assert lookup.country(ipaddress.ip_address("10.0.0.1")) is None  # private: no country
