"""Inventory readers (NetBox CSV export and import, NetBox API JSON, plain YAML) and the zones file."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nospy.deployment.interface import DeploymentError, Device
from nospy.deployment.inventory import parse_inventory, read_inventory
from nospy.deployment.zones import assign_zone, parse_zones, read_zones, site_kinds

DATA = Path(__file__).parent / "data" / "deployment"


def test_netbox_export_csv_with_its_column_names(examples: Path) -> None:
    inv = read_inventory(examples / "devices.csv")
    assert inv.errors == []
    assert len(inv.devices) == 20
    first, nuclear = inv.devices[0], inv.devices[14]
    src = str(examples / "devices.csv")
    assert first == Device(
        name="core-mum-01",
        manufacturer="Nokia",
        role="Core Router",
        site="mum-dc1",
        status="active",
        device_type="7750 SR-12",
        location=f"{src}:2",
        line=2,
    )
    assert nuclear.name == "acc-tn-0001"
    assert nuclear.tags == ("plant-network", "critical")  # one quoted cell, comma-separated, as NetBox writes it
    assert "manufacturer='Manufacturer'" in inv.formats[src] and "role='Role'" in inv.formats[src]


def test_netbox_import_csv_bad_rows_are_errors_and_the_rest_is_read() -> None:
    inv = read_inventory(DATA / "netbox-import.csv")
    src = str(DATA / "netbox-import.csv")
    assert [d.name for d in inv.devices] == [
        "core-del-01",
        "acc-del-0001",
        "acc-del-0002",
        "acc-del-0005",
        "acc-del-0006",
    ]
    assert [(e.location, e.message) for e in inv.errors] == [
        (f"{src}:5", "row without a name"),
        (f"{src}:6", "row without a manufacturer"),
    ]
    core = inv.devices[0]
    assert (core.role, core.device_type, core.tags) == ("core-router", "NE40E-X16A", ("core", "critical"))
    # a quoted cell spanning two lines: the row is named by the line it starts on, the next row follows it
    assert inv.devices[3].line == 7 and inv.devices[3].device_type == "C9300-48P\n(stack of 2)"
    assert inv.devices[4].line == 9 and inv.devices[4].status == "offline"


def test_netbox_api_json_page() -> None:
    inv = read_inventory(DATA / "netbox-devices.json")
    src = str(DATA / "netbox-devices.json")
    assert inv.formats[src] == "netbox-api-json"
    by_name = {d.name: d for d in inv.devices}
    assert list(by_name) == [
        "core-mum-01",
        "core-mum-02",
        "acc-mum-0001",
        "acc-tar-0001",
        "Huawei Technologies Co., Ltd. MA5800-X7 (5)",  # an unnamed device: NetBox's display name
        "acc-spare-07",
    ]
    huawei = by_name["core-mum-02"]
    assert huawei == Device(
        name="core-mum-02",
        manufacturer="Huawei Technologies Co., Ltd.",
        role="Core Router",
        role_slug="core-router",
        site="Mumbai DC1",
        site_slug="mum-dc1",
        tags=("Core",),
        tag_slugs=("core",),
        status="active",
        device_type="NE40E-X8A",
        location=f"{src}#results[1]",
    )
    assert (
        by_name["Huawei Technologies Co., Ltd. MA5800-X7 (5)"].zone == "access"
        and by_name["Huawei Technologies Co., Ltd. MA5800-X7 (5)"].status == "planned"
    )
    assert [(e.location, e.message) for e in inv.errors] == [
        (f"{src}#results[6]", "device 'broken-01' has no device_type.manufacturer")
    ]


def test_plain_yaml_with_lines() -> None:
    text = b"""devices:
  - {name: r1, vendor: ACME, role: core, site: s1, tags: [a, b]}
  - name: r2
    manufacturer: Nokia
    zone: access
  - {name: r3}
  - just a string
"""
    inv = parse_inventory(text, "inv.yaml")
    assert [(d.name, d.manufacturer, d.location) for d in inv.devices] == [
        ("r1", "ACME", "inv.yaml:2"),
        ("r2", "Nokia", "inv.yaml:3"),
    ]
    assert inv.devices[0].tags == ("a", "b") and inv.devices[1].zone == "access"
    assert [(e.location, e.message) for e in inv.errors] == [
        ("inv.yaml:6", "device without a manufacturer"),
        ("inv.yaml:7", "a device is a mapping, not str"),
    ]


@pytest.mark.parametrize(
    ("data", "name", "message"),
    [
        (b"Hostname,Site\nr1,s1\n", "x.csv", "no manufacturer column"),
        (b"", "x.csv", "empty file"),
        (b"\xff\xfe", "x.csv", "not UTF-8"),
        (b'{"count": 1}', "x.json", "expected a NetBox API page"),
        (b"{", "x.json", "not JSON"),
        (b"devices: 3", "x.yaml", "not a list"),
        (b"a: &x 1\nb: *x\n", "x.yaml", "anchors and aliases"),
        (b"- [unclosed", "x.yaml", r"x\.yaml:\d+"),
    ],
)
def test_unreadable_inventories(data: bytes, name: str, message: str) -> None:
    with pytest.raises(DeploymentError, match=message):
        parse_inventory(data, name)


def test_a_row_the_csv_reader_refuses_is_an_error_and_reading_goes_on() -> None:
    data = b"Name,Manufacturer\nr1,ACME\nr2," + b"x" * 200_000 + b"\nr3,Nokia\n"
    inv = parse_inventory(data, "x.csv")
    assert [d.name for d in inv.devices] == ["r1", "r3"]
    assert [e.location for e in inv.errors] == ["x.csv:3"] and "field limit" in inv.errors[0].message


def test_byte_order_mark_and_sniffing() -> None:
    inv = parse_inventory("\ufeffName,Manufacturer\nr1,ACME\n".encode(), "export")
    assert inv.devices[0].name == "r1"
    assert parse_inventory(b'[{"name": "r2", "manufacturer": "ACME"}]', "export").devices[0].name == "r2"


def _dev(**kw: object) -> Device:
    fields: dict[str, object] = {"name": "d", "manufacturer": "ACME", "location": "x:1", **kw}
    return Device.model_validate(fields)


def test_zone_assignment_order_and_ambiguity(examples: Path) -> None:
    zones = read_zones(examples / "zones.yaml")
    assert assign_zone(_dev(role="Core Router"), zones).zone == "core"
    assert assign_zone(_dev(role="Access Switch", zone="core"), zones).zone == "core"  # the inventory's own wins
    assert assign_zone(_dev(role="x", role_slug="olt"), zones).zone == "access"  # the slug counts
    assert assign_zone(_dev(role="aggregation"), zones).how.startswith("role 'aggregation' is named like zone")
    unknown = assign_zone(_dev(role="Metro Edge"), zones)
    assert unknown.zone is None and unknown.how.startswith("no zone")
    two = parse_zones(b"zones:\n  core: {tags: [big]}\n  access: {tags: [small]}\n", "z.yaml")
    ambiguous = assign_zone(_dev(tags=("big", "small"), role="core"), two)
    assert ambiguous.zone is None and "ambiguous" in ambiguous.how


def test_site_kinds(examples: Path) -> None:
    zones = read_zones(examples / "zones.yaml")
    excluded = ["nuclear", "military"]
    assert site_kinds(_dev(site="tarapur-aps"), zones, excluded)[0][0] == "nuclear"  # pattern with '*'
    assert site_kinds(_dev(site="x", tags=("Defence Network",)), zones, excluded)[0][0] == "military"
    assert site_kinds(_dev(site="Nuclear"), zones, excluded)[0][1] == "site 'Nuclear' is named 'nuclear'"
    assert site_kinds(_dev(site="mum-dc1"), zones, excluded) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"zones:\n  core:\n    role: [x]\n", r"z\.yaml:3: zones\.core\.role: Extra inputs"),
        (b"zones: [core]\n", r"z\.yaml:1: zones"),
        (b"- a\n", "a zones file is a mapping"),
        (b"zones:\n  core: {roles: [1]}\n", r"z\.yaml:2: zones\.core\.roles\.0"),
    ],
)
def test_bad_zones_files_name_the_line(text: bytes, message: str) -> None:
    with pytest.raises(DeploymentError, match=message):
        parse_zones(text, "z.yaml")


def test_empty_zones_file_is_no_mapping() -> None:
    assert parse_zones(b"# nothing yet\n", "z.yaml").zones == {}


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_any_value_anywhere_in_a_netbox_page_is_read_or_refused(data: st.DataObject) -> None:
    """Structure-aware fuzzing: a real NetBox API page with one value replaced by any JSON value."""
    doc = json.loads((DATA / "netbox-devices.json").read_text())
    path = data.draw(st.sampled_from(_paths(doc)[1:]))
    node = doc
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = data.draw(_JSON)
    try:
        inv = parse_inventory(json.dumps(doc).encode(), "netbox.json")
    except DeploymentError:
        return
    # every item is either a device or an error entry, never silently dropped
    assert len(inv.devices) + len(inv.errors) == len(doc["results"])
    for d in inv.devices:
        assert d.name and d.manufacturer


@pytest.mark.parametrize(
    "header",
    [
        "Name,Status,Site,Role,Manufacturer,Type,Tags",  # NetBox's device list export (verbose names)
        "ID,Name,Status,Tenant,Site,Device Role,Manufacturer,Device Type,Tags",  # older verbose names
        "name,status,site,role,manufacturer,device_type,tags",  # NetBox's import format
        "name,status,site,device_role,manufacturer,device_type,tags",  # its name before NetBox 3.6
        "Hostname,Status,Site,Role,Vendor,Model,Tags",  # a plain export
    ],
)
def test_header_spellings(header: str) -> None:
    columns = header.split(",")
    values = {"id": "7", "tenant": "Bharat", "name": "r1", "hostname": "r1", "status": "Active", "site": "s1"}
    row = [values.get(c.casefold(), "") for c in columns]
    for i, c in enumerate(columns):
        folded = c.casefold().replace("_", " ")
        if folded in ("role", "device role"):
            row[i] = "core-router"
        elif folded in ("manufacturer", "vendor"):
            row[i] = "ACME"
        elif folded in ("type", "device type", "model"):
            row[i] = "CR-9000"
        elif folded == "tags":
            row[i] = "core,critical"
    (dev,) = parse_inventory(f'{header}\n{",".join(row[:-1])},"{row[-1]}"\n'.encode(), "x.csv").devices
    assert (dev.name, dev.manufacturer, dev.role, dev.site, dev.status, dev.device_type, dev.tags) == (
        "r1",
        "ACME",
        "core-router",
        "s1",
        "active",
        "CR-9000",
        ("core", "critical"),
    )


_CELL = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_CELL, _CELL, _CELL), max_size=12))
def test_csv_rows_are_devices_or_errors_never_dropped(rows: list[tuple[str, str, str]]) -> None:
    buf = io.StringIO(newline="")
    writer = csv.writer(buf)  # \r\n line ends, as spreadsheet tools write: cells with \r or \n are quoted
    writer.writerow(["Name", "Manufacturer", "Role"])
    writer.writerows(rows)
    inv = parse_inventory(buf.getvalue().encode(), "x.csv")
    written = [r for r in rows if any(c.strip() for c in r)]  # blank rows are not devices
    assert len(inv.devices) + len(inv.errors) == len(written)
    complete = [r for r in written if r[0].strip() and r[1].strip()]
    assert [(d.name, d.manufacturer) for d in inv.devices] == [(r[0].strip(), r[1].strip()) for r in complete]
