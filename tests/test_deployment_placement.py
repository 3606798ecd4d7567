"""Vendor matching and the placement rules (placement.zone, placement.share, placement.site)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nospy.agreement import load
from nospy.agreement.schema import Agreement
from nospy.deployment.interface import Device, Inventory
from nospy.deployment.inventory import read_inventory
from nospy.deployment.placement import check_placement, must_replace
from nospy.deployment.vendor import VendorMatcher, normalise
from nospy.deployment.zones import Zones, parse_zones, read_zones

DATA = Path(__file__).parent / "data" / "deployment"


@pytest.mark.parametrize(
    ("name", "core"),
    [
        ("ACME Networks", "acme"),
        ("Acme Networks, Inc.", "acme"),
        ("acme-networks", "acme"),  # a NetBox slug
        ("Huawei Technologies Co., Ltd.", "huawei"),
        ("Société Générale Télécom SA", "societe generale"),
        ("Networks Inc", "networks inc"),  # nothing but generic words: kept whole
    ],
)
def test_normalise(name: str, core: str) -> None:
    assert normalise(name) == core


def test_vendor_matching_says_how() -> None:
    acme = VendorMatcher("ACME Networks")
    exact, norm = acme.match("acme networks"), acme.match("ACME")
    assert exact is not None and exact.method == "exact"
    assert norm is not None and norm.method == "normalised" and "'acme'" in norm.detail
    assert acme.match("ACME Packet") is None  # shares a word, but is another company
    assert acme.similar("ACME Packet") and acme.similar("Acmee Networks") and not acme.similar("Nokia")
    assert not acme.similar("ACME")  # matched names are not "similar"
    assert acme.match("Nokia") is None and acme.match("") is None
    huawei = VendorMatcher("Huawei")
    for spelling in ("HUAWEI", "Huawei Technologies Co., Ltd.", "华为"):
        assert huawei.match(spelling) is not None, spelling
    alias = VendorMatcher("Nokia").match("Alcatel-Lucent")
    assert alias is not None and alias.method == "alias" and "known alias of nokia" in alias.detail
    own = VendorMatcher("ACME Networks", ["Roadrunner Gear"]).match("RoadRunner Gear Ltd")
    assert own is not None and "zones file" in own.detail


@pytest.mark.parametrize(
    ("vendor", "total", "cap", "replace"),
    [(4, 10, 35, 1), (35, 100, 35, 0), (36, 100, 35, 1), (1, 3, 33.3, 1), (10, 10, 0, 10), (3, 9, 33.34, 0)],
)
def test_must_replace(vendor: int, total: int, cap: float, replace: int) -> None:
    assert must_replace(vendor, total, cap) == replace


@given(st.integers(0, 500), st.integers(1, 500), st.floats(0, 100, allow_nan=False))
def test_must_replace_is_the_fewest_that_meets_the_cap(vendor: int, extra: int, cap: float) -> None:
    total = vendor + extra
    k = must_replace(vendor, total, cap)
    limit = Fraction(str(cap))
    assert Fraction((vendor - k) * 100, total) <= limit
    if k > 0:
        assert Fraction((vendor - k + 1) * 100, total) > limit


def test_example_inventory_findings(examples: Path) -> None:
    agreement = load(examples / "agreement.yaml")
    inv = read_inventory(examples / "devices.csv")
    result = check_placement(agreement, inv, read_zones(examples / "zones.yaml"), "devices.csv")
    by_rule: dict[str, list[dict[str, Any]]] = {}
    for f in result.findings:
        by_rule.setdefault(f.rule, []).append(f.evidence)
    src = str(examples / "devices.csv")

    zone, unknown = by_rule["placement.zone"]
    assert zone["zone"] == "core" and zone["allowed_zones"] == ["access", "aggregation"]
    (core_device,) = zone["devices"]
    assert core_device == {
        "name": "core-del-01",
        "manufacturer": "ACME Networks",
        "role": "Core Router",
        "site": "del-dc1",
        "status": "active",
        "zone": "core",
        "zone_from": "role 'Core Router' is in zone 'core' (zones file)",
        "location": f"{src}:4",
        "vendor_match": {
            "manufacturer": "ACME Networks",
            "method": "exact",
            "detail": "'ACME Networks' is the agreement's vendor",
        },
    }
    assert unknown["zone"] is None
    assert [d["name"] for d in unknown["devices"]] == ["edge-pun-01"]

    (share,) = by_rule["placement.share"]
    assert {k: share[k] for k in ("zone", "vendor_devices", "zone_devices", "share_percent", "must_replace")} == {
        "zone": "access",
        "vendor_devices": 4,
        "zone_devices": 10,
        "share_percent": 40.0,
        "must_replace": 1,
    }
    (site,) = by_rule["placement.site"]
    assert site["site_kind"] == "nuclear" and site["site"] == "kudankulam-npp"

    # the spare in the warehouse (status inventory) is not in the network
    assert result.summary["not_in_network"] == 1
    assert result.summary["zones"]["aggregation"] == {
        "devices": 3,
        "vendor_devices": 1,
        "vendor_share_percent": 33.33,
    }
    assert share["devices_of_unknown_zone"] == 1  # edge-pun-01
    assert result.summary["manufacturers_similar_not_matched"] == []
    assert result.summary["manufacturers_matched"] == [
        "ACME",
        "ACME Networks",
        "Acme Networks Ltd.",
        "Acme Networks, Inc.",
    ]


def _agreement(placement: dict[str, object] | None, vendor: str = "Huawei") -> Agreement:
    data: dict[str, object] = {"nospy": 1, "id": "a", "title": "t", "vendor": vendor, "customer": "c"}
    if placement is not None:
        data["placement"] = placement
    return Agreement.model_validate(data)


def test_netbox_json_with_slugs_and_custom_field_zone() -> None:
    inv = read_inventory(DATA / "netbox-devices.json")
    zones = parse_zones(
        b"zones:\n  core: {roles: [core-router]}\n  access: {roles: [access-switch]}\n"
        b"site_kinds:\n  nuclear: {sites: [tarapur-*]}\n",
        "z.yaml",
    )
    agreement = _agreement({"zones": ["access"], "max_share_percent": 50, "excluded_sites": ["nuclear"]})
    findings = check_placement(agreement, inv, zones, "netbox.json").findings
    got = {(f.rule, tuple(d["name"] for d in f.evidence["devices"])) for f in findings}
    assert got == {
        ("placement.zone", ("core-mum-02",)),
        # access: acc-mum-0001 (ACME), acc-tar-0001 and the unnamed OLT (zone from custom_fields) are Huawei
        ("placement.share", ("acc-tar-0001", "Huawei Technologies Co., Ltd. MA5800-X7 (5)")),
        ("placement.site", ("acc-tar-0001",)),
    }
    share = next(f for f in findings if f.rule == "placement.share")
    assert "2 of the 3 devices in zone 'access' (66.7%)" in share.message


def test_no_placement_section_gives_no_findings_and_an_empty_zone_list_allows_nothing() -> None:
    dev = Device(name="r1", manufacturer="Huawei", role="access", location="x:2")
    inv = Inventory(devices=[dev])
    assert check_placement(_agreement(None), inv, Zones(), "x").findings == []
    (f,) = check_placement(_agreement({"zones": []}), inv, Zones(), "x").findings
    assert f.rule == "placement.zone" and "allows none" in f.message


def test_other_vendors_are_never_findings() -> None:
    devices = [
        Device(name=f"r{i}", manufacturer="Nokia", role="core", site="nuclear", location=f"x:{i}") for i in range(3)
    ]
    agreement = _agreement({"zones": ["access"], "max_share_percent": 0, "excluded_sites": ["nuclear"]})
    assert check_placement(agreement, Inventory(devices=devices), Zones(), "x").findings == []
