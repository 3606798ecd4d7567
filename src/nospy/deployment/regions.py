"""The table of public cloud regions and the country each stores data in (``data/cloud-regions.json``).

The table carries its sources, licence and compilation date; ``load()`` validates it whole and a
test fails if it cannot be loaded. Region identifiers are compared as the providers' APIs accept
them: AWS and Google Cloud case-insensitively (Cloud Storage writes ``ASIA-SOUTH1``), Azure also
without spaces (``Central India`` is ``centralindia``). A region that is not in the table is not
guessed at: the residency rule reports it as unknown.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from nospy.deployment.interface import Cloud, DeploymentError, Region

__all__ = ["RegionTable", "aws_missing", "load", "normalise_region"]


class RegionTable(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    title: str
    date: str = Field(description="When the table was compiled (ISO 8601 date).")
    licence: str
    sources: dict[Cloud, list[str]]
    notes: str
    regions: list[Region]
    _index: dict[tuple[Cloud, str], Region] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: object, /) -> None:
        index: dict[tuple[Cloud, str], Region] = {}
        for r in self.regions:
            key = (r.cloud, normalise_region(r.cloud, r.id))
            if key in index:
                raise ValueError(f"region {r.cloud}:{r.id} is listed twice")
            index[key] = r
        self._index = index

    def get(self, cloud: Cloud, region: str) -> Region | None:
        return self._index.get((cloud, normalise_region(cloud, region)))

    def within(self, cloud: Cloud, countries: set[str]) -> list[Region]:
        """The regions of ``cloud`` whose data stays in ``countries``: single regions first."""
        found = [r for r in self.regions if r.cloud is cloud and set(r.countries) <= countries]
        return sorted(found, key=lambda r: (r.kind != "region", r.id))

    @property
    def citation(self) -> str:
        return f"nospy cloud region table of {self.date}"


def normalise_region(cloud: Cloud, region: str) -> str:
    text = region.strip().casefold()
    if cloud is Cloud.AZURE:
        text = text.replace(" ", "")
    return text


@functools.cache
def load() -> RegionTable:
    """The bundled region table; `DeploymentError` if it is missing or malformed."""
    try:
        text = resources.files("nospy.deployment").joinpath("data/cloud-regions.json").read_text(encoding="utf-8")
        return RegionTable.model_validate(json.loads(text))
    except (OSError, ValueError, ValidationError) as exc:
        raise DeploymentError(f"the cloud region table (nospy/deployment/data/cloud-regions.json): {exc}") from None


# Partitions of botocore's endpoints.json whose regions are public (the ISO partitions are not).
AWS_PUBLIC_PARTITIONS = frozenset({"aws", "aws-cn", "aws-us-gov", "aws-eusc"})


def aws_missing(endpoints: Any, table: RegionTable) -> list[str]:
    """AWS regions named in botocore's ``botocore/data/endpoints.json`` that the table lacks.

    Maintenance: ``python -m nospy.deployment.region_check PATH/TO/endpoints.json`` lists them (exit 1
    if any), each to be added with its country and source.
    """
    if not isinstance(endpoints, dict) or not isinstance(endpoints.get("partitions"), list):
        raise DeploymentError("not botocore's endpoints.json: no 'partitions' list")
    out = []
    for partition in endpoints["partitions"]:
        if not isinstance(partition, dict) or partition.get("partition") not in AWS_PUBLIC_PARTITIONS:
            continue
        for rid, info in (partition.get("regions") or {}).items():
            if table.get(Cloud.AWS, rid) is None:
                description = info.get("description", "") if isinstance(info, dict) else ""
                out.append(f"{rid} ({description})")
    return sorted(out)
