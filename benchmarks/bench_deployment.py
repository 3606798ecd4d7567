"""Deployment evidence at operator scale: a 200,000-device NetBox export and a 5,000-store plan.

``python benchmarks/bench_deployment.py`` prints how long reading and checking take. Not a test.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

from nospy.agreement import load
from nospy.deployment import parse_inventory, parse_plan, parse_zones, regions
from nospy.deployment.placement import check_placement
from nospy.deployment.residency import check_residency

ROOT = Path(__file__).resolve().parents[1]
ROLES = ["Core Router", "Aggregation Router", "Access Switch", "OLT", "eNodeB", "DWDM Terminal", "Lab"]
MAKERS = ["ACME Networks", "Nokia", "Ericsson", "Cisco", "Acme Networks, Inc.", "Juniper Networks"]


def _inventory(n: int) -> bytes:
    out = io.StringIO()
    out.write("ID,Name,Status,Tenant,Site,Location,Rack,Role,Manufacturer,Type,Tags\n")
    for i in range(n):
        role = ROLES[i % len(ROLES)]
        maker = MAKERS[(i * 7) % len(MAKERS)]
        out.write(f'{i},dev-{i:06d},Active,Bharat,site-{i % 3000},,R1,{role},"{maker}",X-1,"t{i % 11},critical"\n')
    return out.getvalue().encode()


def _plan(n: int) -> bytes:
    resources = [
        {
            "address": f"aws_s3_bucket.b{i}",
            "mode": "managed",
            "type": "aws_s3_bucket",
            "name": f"b{i}",
            "provider_name": "registry.terraform.io/hashicorp/aws",
            "values": {"bucket": f"b{i}"},
        }
        for i in range(n)
    ]
    config = [
        {
            "address": f"aws_s3_bucket.b{i}",
            "mode": "managed",
            "type": "aws_s3_bucket",
            "name": f"b{i}",
            "provider_config_key": "aws.sg" if i % 2 else "aws",
            "expressions": {},
        }
        for i in range(n)
    ]
    doc = {
        "format_version": "1.2",
        "planned_values": {"root_module": {"resources": resources}},
        "configuration": {
            "provider_config": {
                "aws": {"name": "aws", "expressions": {"region": {"constant_value": "ap-south-1"}}},
                "aws.sg": {
                    "name": "aws",
                    "alias": "sg",
                    "expressions": {"region": {"constant_value": "ap-southeast-1"}},
                },
            },
            "root_module": {"resources": config},
        },
    }
    return json.dumps(doc).encode()


def main() -> None:
    agreement = load(ROOT / "examples" / "agreement.yaml")
    zones = parse_zones((ROOT / "examples" / "zones.yaml").read_bytes(), "zones.yaml")
    data = _inventory(200_000)
    t0 = time.perf_counter()
    inv = parse_inventory(data, "devices.csv")
    t1 = time.perf_counter()
    result = check_placement(agreement, inv, zones, "devices.csv")
    t2 = time.perf_counter()
    print(
        f"inventory: {len(inv.devices)} devices read in {t1 - t0:.2f}s, placement checked in {t2 - t1:.2f}s "
        f"({len(result.findings)} findings)"
    )
    plan_data = _plan(5_000)
    t0 = time.perf_counter()
    plan = parse_plan(plan_data, "plan.json")
    stores = plan.stores()
    findings = check_residency(agreement, stores, regions.load(), "plan.json")
    t1 = time.perf_counter()
    print(f"plan: {len(stores)} data stores read and checked in {t1 - t0:.2f}s ({len(findings)} findings)")


if __name__ == "__main__":
    main()
