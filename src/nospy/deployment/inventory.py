"""Network inventory readers: NetBox device exports (CSV and REST API JSON), plain CSV and YAML.

Formats read:

- NetBox CSV, as the device list's "Export" writes it: one column per table column, headed by the
  column's verbose name (``Name``, ``Status``, ``Tenant``, ``Site``, ``Location``, ``Rack``,
  ``Role``, ``Manufacturer``, ``Type``, ``Platform``, ``Tags`` ..., netbox/dcim/tables/devices.py),
  tags comma-separated in one cell; and NetBox's bulk-import CSV (``name``, ``role`` or the older
  ``device_role``, ``manufacturer``, ``device_type``, ``site``, ``status``, ``tags``).
- NetBox REST API JSON: a page of ``GET /api/dcim/devices/`` (``{"count", "next", "previous",
  "results": [...]}``) or a list of device objects, each with ``name``, ``device_type.manufacturer``,
  ``role`` (``device_role`` before NetBox 3.6), ``site``, ``tags`` and ``status`` ({value, label}),
  and an optional ``custom_fields.zone``.
- Plain CSV with the same column names in any case, plus ``vendor`` for the manufacturer and an
  optional ``zone`` column; plain YAML: ``devices:`` (or a top-level list) of mappings with those keys.

A row that cannot be read (no name, no manufacturer, wrong type) becomes an error entry naming the
file and line; the other rows are still read and checked.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from nospy._fileio import read_limited
from nospy.deployment import _yaml
from nospy.deployment.interface import DeploymentError, Device, Inventory, RowError

__all__ = ["MAX_INVENTORY_BYTES", "parse_inventory", "read_inventory"]

MAX_INVENTORY_BYTES = 64 << 20

# Header spellings, compared after folding case and turning '_' and '-' into spaces. NetBox's export
# uses the verbose names (Role, Type), its import format the field names (device_role, device_type).
_COLUMNS: dict[str, tuple[str, ...]] = {
    "name": ("name", "device", "device name", "hostname"),
    "manufacturer": ("manufacturer", "vendor", "device type manufacturer", "make"),
    "role": ("role", "device role"),
    "site": ("site",),
    "tags": ("tags",),
    "status": ("status",),
    "zone": ("zone", "network zone", "cf zone"),
    "device_type": ("type", "device type", "model"),
}


def _fold(header: str) -> str:
    return " ".join(header.replace("_", " ").replace("-", " ").casefold().split())


def _split_tags(cell: str) -> tuple[str, ...]:
    # NetBox's export joins tag names with commas; some tools use semicolons
    return tuple(t.strip() for t in cell.replace(";", ",").split(",") if t.strip())


def read_inventory(path: Path) -> Inventory:
    """Read one inventory file; the format comes from the extension, or from the content."""
    return parse_inventory(read_limited(path, MAX_INVENTORY_BYTES), str(path))


def parse_inventory(data: bytes, source: str) -> Inventory:
    try:
        text = data.decode("utf-8-sig")  # NetBox's CSV export may start with a byte order mark
    except UnicodeDecodeError as exc:
        raise DeploymentError(f"{source}: not UTF-8 text (byte {exc.start})") from None
    lower = source.casefold()
    head = text.lstrip()[:1]
    if lower.endswith(".json") or (not lower.endswith((".csv", ".yaml", ".yml")) and head in ("{", "[")):
        return _from_json(text, source)
    if lower.endswith((".yaml", ".yml")):
        return _from_yaml(text, source)
    return _from_csv(text, source)


def merge(inventories: Iterable[Inventory]) -> Inventory:
    devices: list[Device] = []
    errors: list[RowError] = []
    formats: dict[str, str] = {}
    for inv in inventories:
        devices += inv.devices
        errors += inv.errors
        formats.update(inv.formats)
    return Inventory(devices=devices, errors=errors, formats=formats)


# --- CSV ---------------------------------------------------------------------------------------------


def _from_csv(text: str, source: str) -> Inventory:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise DeploymentError(f"{source}:1: {exc}") from None
    if header is None:
        raise DeploymentError(f"{source}: empty file (expected a header row)")
    folded = [_fold(h) for h in header]
    index: dict[str, int] = {}
    for field, names in _COLUMNS.items():
        for i, h in enumerate(folded):
            if h in names:
                index[field] = i
                break
    missing = [f for f in ("name", "manufacturer") if f not in index]
    if missing:
        raise DeploymentError(
            f"{source}:1: no {' or '.join(missing)} column (header: {', '.join(header)}); "
            "expected NetBox's export columns (Name, Manufacturer, Role, Site, Tags, Status) or plain ones"
        )
    devices: list[Device] = []
    errors: list[RowError] = []
    line = reader.line_num
    while True:
        start = line + 1  # a quoted cell may span lines: a row is named by the line it starts on
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            errors.append(RowError(location=f"{source}:{start}", message=str(exc)))
            if reader.line_num < start:
                break  # nothing was consumed: the reader cannot go on
            line = reader.line_num  # the bad row is skipped; the reader goes on with the next one
            continue
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue

        def cell(field: str, row: Sequence[str] = row) -> str | None:
            i = index.get(field)
            value = row[i].strip() if i is not None and i < len(row) else ""
            return value or None

        where = f"{source}:{start}"
        name, manufacturer = cell("name"), cell("manufacturer")
        if name is None or manufacturer is None:
            errors.append(
                RowError(location=where, message=f"row without {'a name' if name is None else 'a manufacturer'}")
            )
            continue
        status = cell("status")
        devices.append(
            Device(
                name=name,
                manufacturer=manufacturer,
                role=cell("role"),
                site=cell("site"),
                tags=_split_tags(cell("tags") or ""),
                status=status.casefold() if status else None,
                zone=cell("zone"),
                device_type=cell("device_type"),
                location=where,
                line=start,
            )
        )
    columns = ", ".join(f"{f}={header[i]!r}" for f, i in index.items())
    return Inventory(devices=devices, errors=errors, formats={source: f"csv ({columns})"})


# --- JSON (NetBox REST API) ---------------------------------------------------------------------------


def _from_json(text: str, source: str) -> Inventory:
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise DeploymentError(f"{source}: not JSON: {exc}") from None
    if isinstance(doc, dict) and isinstance(doc.get("results"), list):
        items, prefix, fmt = doc["results"], "results", "netbox-api-json"
        if doc.get("next"):
            fmt += f" (one page of {doc.get('count', '?')}: the 'next' pages were not given)"
    elif isinstance(doc, dict) and isinstance(doc.get("devices"), list):
        items, prefix, fmt = doc["devices"], "devices", "json"
    elif isinstance(doc, list):
        items, prefix, fmt = doc, "", "netbox-api-json (list)"
    else:
        raise DeploymentError(
            f"{source}: expected a NetBox API page ({{'results': [...]}}), a list of devices or {{'devices': [...]}}"
        )
    devices: list[Device] = []
    errors: list[RowError] = []
    for i, item in enumerate(items):
        where = f"{source}#{prefix}[{i}]"
        try:
            devices.append(_json_device(item, where))
        except _RowError as exc:
            errors.append(RowError(location=where, message=str(exc)))
    return Inventory(devices=devices, errors=errors, formats={source: fmt})


class _RowError(Exception):
    pass


def _text(value: Any, what: str) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return str(value).strip() or None
    raise _RowError(f"{what} is a {type(value).__name__}, not text")


def _named(value: Any, what: str) -> tuple[str | None, str | None]:
    """(name, slug) of a NetBox nested object ({id, name, slug, display ...}) or a plain string."""
    if isinstance(value, dict):
        name = _text(value.get("name"), f"{what}.name") or _text(value.get("display"), f"{what}.display")
        return name, _text(value.get("slug"), f"{what}.slug")
    return _text(value, what), None


def _json_device(item: Any, where: str) -> Device:
    if not isinstance(item, dict):
        raise _RowError(f"a device is an object, not {type(item).__name__}")
    name = _text(item.get("name"), "name") or _text(item.get("display"), "display")
    if name is None and item.get("id") is not None:
        name = f"device #{_text(item.get('id'), 'id')}"  # NetBox allows unnamed devices
    if name is None:
        raise _RowError("device without a name")
    dtype = item.get("device_type")
    manufacturer: str | None = None
    model: str | None = None
    if isinstance(dtype, dict):
        manufacturer, _ = _named(dtype.get("manufacturer"), "device_type.manufacturer")
        model = _text(dtype.get("model"), "device_type.model") or _text(dtype.get("display"), "device_type.display")
    elif dtype is not None:
        model = _text(dtype, "device_type")
    if manufacturer is None:
        manufacturer, _ = _named(item.get("manufacturer") or item.get("vendor"), "manufacturer")
    if manufacturer is None:
        raise _RowError(f"device {name!r} has no device_type.manufacturer")
    role, role_slug = _named(item.get("role") if "role" in item else item.get("device_role"), "role")
    site, site_slug = _named(item.get("site"), "site")
    raw_status = item.get("status")
    status = (
        _text(raw_status.get("value"), "status.value") if isinstance(raw_status, dict) else _text(raw_status, "status")
    )
    tags, tag_slugs = _json_tags(item.get("tags"))
    zone = None
    custom = item.get("custom_fields")
    if isinstance(custom, dict):
        zone = _text(custom.get("zone"), "custom_fields.zone") or _text(
            custom.get("network_zone"), "custom_fields.network_zone"
        )
    zone = zone or _text(item.get("zone"), "zone")
    return Device(
        name=name,
        manufacturer=manufacturer,
        role=role,
        role_slug=role_slug,
        site=site,
        site_slug=site_slug,
        tags=tags,
        tag_slugs=tag_slugs,
        status=status.casefold() if status else None,
        zone=zone,
        device_type=model,
        location=where,
    )


def _json_tags(value: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if value is None:
        return (), ()
    if isinstance(value, str):
        return _split_tags(value), ()
    if not isinstance(value, list):
        raise _RowError(f"tags is a {type(value).__name__}, not a list")
    names: list[str] = []
    slugs: list[str] = []
    for t in value:
        name, slug = _named(t, "tags[]")
        if name:
            names.append(name)
        if slug:
            slugs.append(slug)
    return tuple(names), tuple(slugs)


# --- YAML ---------------------------------------------------------------------------------------------


def _from_yaml(text: str, source: str) -> Inventory:
    doc = _yaml.load(text, source)
    if isinstance(doc, dict) and "devices" in doc:
        items = doc["devices"]
    elif isinstance(doc, list):
        items = doc
    else:
        raise DeploymentError(f"{source}:1: expected 'devices:' followed by a list of devices")
    if not isinstance(items, list):
        raise DeploymentError(f"{source}: 'devices' is not a list")
    devices: list[Device] = []
    errors: list[RowError] = []
    for i, item in enumerate(items):
        line = _yaml.item_line(items, i)
        where = f"{source}:{line}" if line else f"{source}#devices[{i}]"
        try:
            if not isinstance(item, dict):
                raise _RowError(f"a device is a mapping, not {type(item).__name__}")
            plain = {str(k).casefold(): v for k, v in item.items()}
            name = _text(plain.get("name"), "name")
            manufacturer = _text(plain.get("manufacturer") or plain.get("vendor"), "manufacturer")
            if name is None or manufacturer is None:
                raise _RowError(f"device without {'a name' if name is None else 'a manufacturer'}")
            tags, _ = _json_tags(plain.get("tags"))
            status = _text(plain.get("status"), "status")
            devices.append(
                Device(
                    name=name,
                    manufacturer=manufacturer,
                    role=_text(plain.get("role"), "role"),
                    site=_text(plain.get("site"), "site"),
                    tags=tags,
                    status=status.casefold() if status else None,
                    zone=_text(plain.get("zone"), "zone"),
                    device_type=_text(plain.get("device_type") or plain.get("type") or plain.get("model"), "type"),
                    location=where,
                    line=line,
                )
            )
        except _RowError as exc:
            errors.append(RowError(location=where, message=str(exc)))
    return Inventory(devices=devices, errors=errors, formats={source: "yaml"})
