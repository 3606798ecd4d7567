"""Deployment evidence: the types every reader and rule of this package shares.

Two kinds of deployment evidence exist. A network inventory (NetBox export, plain CSV or YAML) says
which device of which manufacturer sits in which role, site and zone; the placement rules test it
against the agreement's ``placement`` section. An infrastructure plan or state (``terraform show
-json``) says where the operator's data stores are; the residency rule tests their regions against
``data.countries``.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from nospy.errors import InputError

__all__ = [
    "Cloud",
    "DataStore",
    "DeploymentError",
    "Device",
    "Inventory",
    "Region",
    "RegionSource",
    "RowError",
]


class DeploymentError(InputError):
    """A deployment input (inventory, zones file, plan) that cannot be read or does not follow its format."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Device(_Frozen):
    """One network element from an inventory."""

    name: str = Field(description="The device's name as the inventory gives it.")
    manufacturer: str = Field(description="Manufacturer (NetBox: device_type.manufacturer).")
    role: str | None = Field(None, description="Device role (name or slug).")
    site: str | None = Field(None, description="Site (name or slug).")
    tags: tuple[str, ...] = Field((), description="Tags, in inventory order.")
    status: str | None = Field(None, description="Lifecycle status, lower case (NetBox: active, planned, ...).")
    zone: str | None = Field(None, description="Zone given by the inventory itself, if any.")
    device_type: str | None = Field(None, description="Model (NetBox: device_type.model).")
    role_slug: str | None = Field(None, description="The role's slug, where the source gives one (NetBox).")
    site_slug: str | None = Field(None, description="The site's slug, where the source gives one (NetBox).")
    tag_slugs: tuple[str, ...] = Field((), description="The tags' slugs, where the source gives them (NetBox).")
    location: str = Field(description="Where the row is: file:line for CSV/YAML, file#results[i] for JSON.")
    line: int | None = None


class RowError(_Frozen):
    """A row that could not be read; the other rows were still checked."""

    location: str
    message: str


class Inventory(_Frozen):
    """The devices read from one or more inventory files, and the rows that could not be read."""

    devices: list[Device] = Field(default_factory=list)
    errors: list[RowError] = Field(default_factory=list)
    formats: dict[str, str] = Field(default_factory=dict, description="File -> the format it was read as.")


class Cloud(StrEnum):
    AWS = "aws"
    GCP = "gcp"
    AZURE = "azure"


class Region(_Frozen):
    """A public cloud region (or multi-region) and the countries its data is stored in."""

    cloud: Cloud
    id: str = Field(description="The provider's identifier, lower case (ap-south-1, asia-south1, centralindia).")
    name: str
    countries: list[str] = Field(description="ISO 3166-1 alpha-2 codes; more than one for multi- and dual-regions.")
    kind: str = Field("region", description="region, multi-region or dual-region.")


class RegionSource(StrEnum):
    """Where a data store's region was read from, most direct first."""

    RESOURCE = "resource"  # an attribute of the resource itself (region, location, zone, ARN ...)
    CONFIGURATION = "configuration"  # the resource's configuration expression (constant or variable)
    REFERENCE = "reference"  # another resource it refers to (an Azure database's server)
    PROVIDER = "provider"  # the provider block that manages the resource
    DEFAULT = "default"  # the provider's documented default for this resource type


class DataStore(_Frozen):
    """A resource that stores data, and where it stores it."""

    address: str = Field(description="Terraform resource address, e.g. module.logs.aws_s3_bucket.this[0].")
    type: str = Field(description="Terraform resource type, e.g. aws_s3_bucket.")
    cloud: Cloud
    kind: str = Field(description="object storage, database, block volume, data warehouse, queue ...")
    regions: list[str] = Field(
        default_factory=list, description="Every region the data is stored in (replicas too); empty: unresolved."
    )
    region_source: RegionSource | None = None
    region_detail: str = Field("", description="How the region was found, or why it could not be.")
    provider_key: str | None = Field(None, description="The provider configuration key the resource uses.")
