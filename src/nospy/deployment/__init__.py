"""Deployment evidence: where the vendor's equipment sits, and where the operator's data is stored.

Public surface: the evidence sources `InventorySource` (network inventory against ``placement``)
and `InfrastructureSource` (Terraform plan/state against ``data``), the readers `read_inventory`,
`read_zones`, `read_plan`, the region table `regions.load`, and `plan_moves` for the deployment
report. Types are in `nospy.deployment.interface`.
"""

from __future__ import annotations

from nospy.deployment.interface import DataStore, DeploymentError, Device, Inventory
from nospy.deployment.inventory import parse_inventory, read_inventory
from nospy.deployment.moves import MovePlan, plan_moves
from nospy.deployment.sources import InfrastructureSource, InventorySource
from nospy.deployment.terraform import parse_plan, read_plan
from nospy.deployment.zones import parse_zones, read_zones

__all__ = [
    "DataStore",
    "DeploymentError",
    "Device",
    "InfrastructureSource",
    "Inventory",
    "InventorySource",
    "MovePlan",
    "parse_inventory",
    "parse_plan",
    "parse_zones",
    "plan_moves",
    "read_inventory",
    "read_plan",
    "read_zones",
]
