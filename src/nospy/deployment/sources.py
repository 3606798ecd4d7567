"""The deployment evidence sources: `nospy.verify.EvidenceSource` plug-ins for ``nospy check``."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from nospy._fileio import read_limited
from nospy.agreement.schema import Agreement, Clause
from nospy.deployment import regions
from nospy.deployment.interface import DeploymentError
from nospy.deployment.inventory import MAX_INVENTORY_BYTES, merge, parse_inventory
from nospy.deployment.placement import check_placement
from nospy.deployment.residency import check_residency, store_summary
from nospy.deployment.terraform import MAX_PLAN_BYTES, parse_plan
from nospy.deployment.zones import Zones, read_zones
from nospy.errors import NospyError
from nospy.findings import ErrorEntry, Source
from nospy.verify import EvidenceSource, Progress, SourceResult

__all__ = ["InfrastructureSource", "InventorySource", "sources_for"]


class InventorySource:
    """Network inventory files (and an optional zones file) against the ``placement`` clause.

    Several files are read as one network: shares are computed over all of them together.
    """

    def __init__(self, paths: Sequence[Path], zones: Path | None = None) -> None:
        if not paths:
            raise ValueError("an inventory source needs at least one file")
        self.paths = list(paths)
        self.zones_path = zones

    @property
    def label(self) -> str:
        return "inventory:" + "+".join(p.name for p in self.paths)

    def collect(self, agreement: Agreement | None, progress: Progress) -> SourceResult:
        zones = read_zones(self.zones_path) if self.zones_path else Zones()
        errors: list[ErrorEntry] = []
        parts = []
        digests = []
        for path in self.paths:
            progress(f"reading inventory {path}")
            try:
                data = read_limited(path, MAX_INVENTORY_BYTES)
                parts.append(parse_inventory(data, str(path)))
                digests.append(hashlib.sha256(data).hexdigest())
            except NospyError as exc:
                errors.append(ErrorEntry(source=self.label, location=str(path), message=str(exc)))
        inventory = merge(parts)
        errors += [ErrorEntry(source=self.label, location=e.location, message=e.message) for e in inventory.errors]
        source = Source(
            kind="inventory",
            path=", ".join(str(p) for p in self.paths),
            sha256=digests[0] if len(self.paths) == 1 and digests else None,
        )
        checked: set[Clause] = set()
        findings = []
        summary: dict[str, object] = {}
        if agreement is not None:
            result = check_placement(agreement, inventory, zones, ", ".join(str(p) for p in self.paths))
            findings, summary = result.findings, result.summary
            # an inventory with no readable device shows nothing about placement, and one with a whole
            # file missing gives shares of part of the network: neither can pass the clause (its
            # findings still fail it)
            if agreement.placement is not None and inventory.devices and len(parts) == len(self.paths):
                checked.add(Clause.PLACEMENT)
            elif agreement.placement is not None:
                why = "a whole inventory file could not be read" if inventory.devices else "no device could be read"
                errors.append(ErrorEntry(source=self.label, message=f"{why}: placement not checked"))
        return SourceResult(source=source, checked=checked, findings=findings, errors=errors, inventory=summary)


class InfrastructureSource:
    """A Terraform plan or state (``terraform show -json``) against the ``data`` clause."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def label(self) -> str:
        return f"infrastructure:{self.path.name}"

    def collect(self, agreement: Agreement | None, progress: Progress) -> SourceResult:
        data = read_limited(self.path, MAX_PLAN_BYTES)
        plan = parse_plan(data, str(self.path))
        table = regions.load()
        progress(f"reading Terraform {plan.kind} {self.path}")
        stores = plan.stores()
        findings = check_residency(agreement, stores, table, str(self.path)) if agreement else []
        checked = {Clause.DATA} if agreement is not None and agreement.data is not None else set()
        return SourceResult(
            source=Source(kind=f"terraform-{plan.kind}", path=str(self.path), sha256=hashlib.sha256(data).hexdigest()),
            checked=checked,
            findings=findings,
            inventory={
                "terraform": plan.kind,
                "resources": len(plan.resources),
                "data_stores": store_summary(stores, table),
                "region_table": table.citation,
            },
        )


def sources_for(inventory: Sequence[Path], zones: Path | None, infrastructure: Sequence[Path]) -> list[EvidenceSource]:
    """The sources for ``--inventory``, ``--zones`` and ``--infrastructure`` options."""
    if zones is not None and not inventory:
        raise DeploymentError("--zones maps an inventory to zones: give the inventory with --inventory")
    out: list[EvidenceSource] = [InventorySource(inventory, zones)] if inventory else []
    out += [InfrastructureSource(p) for p in infrastructure]
    return out
