"""Data stores and their regions from Terraform's JSON plan and state representation.

Reads the output of ``terraform show -json PLANFILE`` and ``terraform show -json`` (state), as
described in Terraform's "JSON Output Format" (internals/json-format): ``format_version`` (major
version 1 or the pre-1.0 ``0.x``; any other major is refused, as the format asks),
``planned_values`` / ``values`` with ``root_module`` and nested ``child_modules``,
``resource_changes`` (``change.after_unknown`` marks values known only after apply),
``prior_state``, ``variables`` and ``configuration`` (``provider_config`` keyed ``aws``,
``aws.ALIAS``, ``module.NAME:aws``; resources' ``provider_config_key``; expressions as
``{"constant_value": ...}`` or ``{"references": [...]}``; ``module_calls``).

A state file as Terraform stores it (``terraform.tfstate``, version 4: ``resources`` with
``module``, ``instances[].index_key`` and ``attributes``) is read as the same document.

For every managed resource of a data-storing type of AWS, Google Cloud or Azure (object storage,
managed databases, block volumes and file systems, data warehouses, queues and streams that persist
messages, backup vaults, log stores), the region is taken, in order, from:

1. the resource's own values: ``region``/``location``/``zone``/``availability_zone``, the region
   field of its ARN, an SQS URL, replica and placement blocks (every replica region counts);
   for a resource that exists and is not being replaced, from ``prior_state`` too;
2. its configuration expression: a constant, or a reference to a variable (followed through module
   calls to the value given to the plan) or to another resource's attribute;
3. a resource it belongs to (an Azure SQL database lives where its server is);
4. its provider block's ``region`` (or ``zone``), found through ``provider_config_key``, including
   aliased providers, providers of child modules and providers passed down to modules;
5. the provider's documented default for the resource type (BigQuery datasets: ``US``).

When none of them gives a region, the store is returned with no region and a detail saying why: the
residency rule reports it as unknown, never as a pass.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from nospy._fileio import read_limited
from nospy.deployment.interface import Cloud, DataStore, DeploymentError, RegionSource

__all__ = ["MAX_PLAN_BYTES", "STORE_TYPES", "Plan", "PlanDocument", "StoreType", "parse_plan", "read_plan"]

MAX_PLAN_BYTES = 256 << 20

OBJECT, DATABASE, BLOCK, WAREHOUSE, QUEUE, BACKUP, LOGS = (
    "object storage",
    "managed database",
    "block volume or file system",
    "data warehouse",
    "queue or stream",
    "backup vault",
    "log store",
)


@dataclass(frozen=True)
class StoreType:
    cloud: Cloud
    kind: str
    provider_attr: str | None = None  # the provider argument that supplies the region when the resource has none
    default: str | None = None  # the provider's documented default location for this type
    parent: str | None = None  # the argument naming the resource whose location this one shares
    unset: str = "the resource names no region, location or zone"  # why no region, when none is set


def _aws(kind: str) -> StoreType:
    return StoreType(Cloud.AWS, kind, provider_attr="region")


def _gcp(kind: str, provider_attr: str | None = None, default: str | None = None) -> StoreType:
    return StoreType(Cloud.GCP, kind, provider_attr=provider_attr, default=default)


def _az(kind: str, parent: str | None = None) -> StoreType:
    return StoreType(Cloud.AZURE, kind, parent=parent)


# Resource types that store data, by provider documentation (registry.terraform.io/providers/hashicorp/
# aws, google, azurerm). Types that only configure a store (bucket policies, ACLs, database users)
# are left out: they hold no data of their own.
STORE_TYPES: dict[str, StoreType] = {
    # AWS
    "aws_s3_bucket": _aws(OBJECT),
    "aws_s3_directory_bucket": _aws(OBJECT),
    "aws_glacier_vault": _aws(OBJECT),
    "aws_db_instance": _aws(DATABASE),
    "aws_rds_cluster": _aws(DATABASE),
    "aws_docdb_cluster": _aws(DATABASE),
    "aws_neptune_cluster": _aws(DATABASE),
    "aws_dynamodb_table": _aws(DATABASE),
    "aws_dynamodb_global_table": _aws(DATABASE),
    "aws_elasticache_cluster": _aws(DATABASE),
    "aws_elasticache_replication_group": _aws(DATABASE),
    "aws_elasticache_serverless_cache": _aws(DATABASE),
    "aws_memorydb_cluster": _aws(DATABASE),
    "aws_opensearch_domain": _aws(DATABASE),
    "aws_elasticsearch_domain": _aws(DATABASE),
    "aws_keyspaces_table": _aws(DATABASE),
    "aws_timestreamwrite_database": _aws(DATABASE),
    "aws_qldb_ledger": _aws(DATABASE),
    "aws_ebs_volume": _aws(BLOCK),
    "aws_ebs_snapshot": _aws(BLOCK),
    "aws_efs_file_system": _aws(BLOCK),
    "aws_fsx_lustre_file_system": _aws(BLOCK),
    "aws_fsx_windows_file_system": _aws(BLOCK),
    "aws_fsx_ontap_file_system": _aws(BLOCK),
    "aws_fsx_openzfs_file_system": _aws(BLOCK),
    "aws_redshift_cluster": _aws(WAREHOUSE),
    "aws_redshiftserverless_namespace": _aws(WAREHOUSE),
    "aws_sqs_queue": _aws(QUEUE),
    "aws_kinesis_stream": _aws(QUEUE),
    "aws_msk_cluster": _aws(QUEUE),
    "aws_msk_serverless_cluster": _aws(QUEUE),
    "aws_mq_broker": _aws(QUEUE),
    "aws_backup_vault": _aws(BACKUP),
    "aws_cloudwatch_log_group": _aws(LOGS),
    # Google Cloud
    "google_storage_bucket": _gcp(OBJECT),
    "google_sql_database_instance": _gcp(DATABASE, "region"),
    "google_alloydb_cluster": _gcp(DATABASE),
    "google_spanner_instance": _gcp(DATABASE),
    "google_bigtable_instance": _gcp(DATABASE, "zone"),
    "google_firestore_database": _gcp(DATABASE),
    "google_redis_instance": _gcp(DATABASE, "region"),
    "google_memcache_instance": _gcp(DATABASE, "region"),
    "google_compute_disk": _gcp(BLOCK, "zone"),
    "google_compute_region_disk": _gcp(BLOCK, "region"),
    "google_compute_snapshot": _gcp(BLOCK),
    "google_filestore_instance": _gcp(BLOCK),
    "google_bigquery_dataset": _gcp(WAREHOUSE, default="US"),
    "google_pubsub_topic": StoreType(
        Cloud.GCP,
        QUEUE,
        unset="no message_storage_policy: Pub/Sub stores messages in the region nearest each publisher",
    ),
    "google_logging_project_bucket_config": _gcp(LOGS),
    # Azure
    "azurerm_storage_account": _az(OBJECT),
    "azurerm_mssql_server": _az(DATABASE),
    "azurerm_mssql_database": _az(DATABASE, parent="server_id"),
    "azurerm_mssql_managed_instance": _az(DATABASE),
    "azurerm_postgresql_server": _az(DATABASE),
    "azurerm_postgresql_flexible_server": _az(DATABASE),
    "azurerm_mysql_server": _az(DATABASE),
    "azurerm_mysql_flexible_server": _az(DATABASE),
    "azurerm_mariadb_server": _az(DATABASE),
    "azurerm_cosmosdb_account": _az(DATABASE),
    "azurerm_redis_cache": _az(DATABASE),
    "azurerm_kusto_cluster": _az(WAREHOUSE),
    "azurerm_synapse_workspace": _az(WAREHOUSE),
    "azurerm_managed_disk": _az(BLOCK),
    "azurerm_snapshot": _az(BLOCK),
    "azurerm_servicebus_namespace": _az(QUEUE),
    "azurerm_eventhub_namespace": _az(QUEUE),
    "azurerm_recovery_services_vault": _az(BACKUP),
    "azurerm_data_protection_backup_vault": _az(BACKUP),
    "azurerm_log_analytics_workspace": _az(LOGS),
}

_AWS_ZONE = re.compile(r"^((?:[a-z]{2}|eusc-[a-z]{2})(?:-gov|-iso[a-z]?)?-[a-z]+-\d+)[a-z]?(?:-.*)?$")
_GCP_ZONE = re.compile(r"^([a-z]+-[a-z]+\d+)-[a-z]$")
_SQS_URL = re.compile(r"^https://sqs\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/")


def _str(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _strings(value: Any) -> list[str]:
    """A list-of-strings attribute (a lone string is not a list of its characters)."""
    return [v.strip() for v in value if isinstance(v, str) and v.strip()] if isinstance(value, list) else []


def _blocks(value: Any) -> list[dict[str, Any]]:
    """A nested block as Terraform writes it: a list of objects (or one object, for single blocks)."""
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, dict)]
    return []


def _values_regions(cloud: Cloud, values: dict[str, Any]) -> tuple[list[str], str]:
    """Regions named by a resource's values, and which attributes named them."""
    if cloud is Cloud.AWS:
        return _aws_values(values)
    if cloud is Cloud.GCP:
        return _gcp_values(values)
    return _azure_values(values)


def _aws_values(values: dict[str, Any]) -> tuple[list[str], str]:
    found: list[str] = []
    how = ""
    if region := _str(values.get("region")):
        found, how = [region], "region"
    elif (arn := _str(values.get("arn"))) and arn.count(":") >= 5 and arn.split(":")[3]:
        found, how = [arn.split(":")[3]], "ARN (its region field)"
    elif (az := _str(values.get("availability_zone"))) and (m := _AWS_ZONE.match(az)):
        found, how = [m.group(1)], f"availability_zone {az}"
    elif (url := _str(values.get("url"))) and (m := _SQS_URL.match(url)):
        found, how = [m.group(1)], "queue URL"
    replicas = [r for b in _blocks(values.get("replica")) if (r := _str(b.get("region_name")))]
    if found and replicas:
        how += " and replica.region_name"
    return found + [r for r in replicas if r not in found], how


def _gcp_region(location: str) -> str:
    m = _GCP_ZONE.match(location.casefold())
    return m.group(1) if m else location


def _gcp_values(values: dict[str, Any]) -> tuple[list[str], str]:
    placement = [
        _gcp_region(loc)
        for b in _blocks(values.get("custom_placement_config"))
        for loc in _strings(b.get("data_locations"))
    ]
    if placement:
        return placement, "custom_placement_config.data_locations"
    persistence = [
        r for b in _blocks(values.get("message_storage_policy")) for r in _strings(b.get("allowed_persistence_regions"))
    ]
    if persistence:
        return persistence, "message_storage_policy.allowed_persistence_regions"
    clusters = [_gcp_region(z) for b in _blocks(values.get("cluster")) if (z := _str(b.get("zone")))]
    if clusters:
        return sorted(set(clusters)), "cluster.zone"
    if storage := _strings(values.get("storage_locations")):
        return storage, "storage_locations"
    if (config := _str(values.get("config"))) and config.startswith("regional-"):
        return [config.removeprefix("regional-")], f"config {config}"
    for attr in ("location", "location_id", "region", "zone", "config"):
        if value := _str(values.get(attr)):
            return [_gcp_region(value)], attr
    return [], ""


def _azure_values(values: dict[str, Any]) -> tuple[list[str], str]:
    geo = [loc for b in _blocks(values.get("geo_location")) if (loc := _str(b.get("location")))]
    if geo:
        return geo, "geo_location.location"
    if location := _str(values.get("location")):
        return [location], "location"
    return [], ""


# --- addresses ---------------------------------------------------------------------------------------


def _split_address(address: str) -> list[str]:
    """Address parts split on '.', keeping instance keys (``["a.b"]``) whole."""
    parts, cur, depth, quote = [], "", 0, False
    i = 0
    while i < len(address):
        c = address[i]
        if quote:
            cur += c
            if c == "\\" and i + 1 < len(address):
                cur += address[i + 1]
                i += 1
            elif c == '"':
                quote = False
        elif c == '"':
            quote, cur = True, cur + c
        elif c == "[":
            depth, cur = depth + 1, cur + c
        elif c == "]":
            depth, cur = max(0, depth - 1), cur + c
        elif c == "." and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += c
        i += 1
    parts.append(cur)
    return parts


def _bare(part: str) -> str:
    return part.split("[", 1)[0]


def _module_path(module_address: str | None) -> tuple[str, ...]:
    """``module.a["x"].module.b`` -> ("a", "b"): module call names, instance keys dropped."""
    if not module_address:
        return ()
    parts = _split_address(module_address)
    return tuple(_bare(parts[i + 1]) for i in range(0, len(parts) - 1, 2) if parts[i] == "module")


def _module_key(path: tuple[str, ...]) -> str:
    return ".".join(f"module.{p}" for p in path)


# --- the document --------------------------------------------------------------------------------
# The parts of the JSON output format this reader uses. Unknown keys are ignored, as the format asks
# of readers of a 1.x document; a known key of the wrong type is an error naming where it is.


class _Doc(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class StateResource(_Doc):
    address: str
    mode: str = "managed"
    type: str
    name: str = ""
    provider_name: str | None = None
    values: dict[str, Any] | None = None


class StateModule(_Doc):
    address: str | None = None
    resources: list[StateResource] | None = None
    child_modules: list[StateModule] | None = None


class StateValues(_Doc):
    root_module: StateModule | None = None


class PriorState(_Doc):
    values: StateValues | None = None


class Change(_Doc):
    actions: list[str] | None = None


class ResourceChange(_Doc):
    address: str
    change: Change | None = None


class PlanVariable(_Doc):
    value: Any = None


class ConfigVariable(_Doc):
    default: Any = None


class ConfigResource(_Doc):
    address: str
    mode: str = "managed"
    provider_config_key: str | None = None
    expressions: dict[str, Any] | None = None


class ModuleCall(_Doc):
    expressions: dict[str, Any] | None = None
    module: ConfigModule | None = None


class ConfigModule(_Doc):
    resources: list[ConfigResource] | None = None
    module_calls: dict[str, ModuleCall] | None = None
    variables: dict[str, ConfigVariable | None] | None = None


class ProviderConfig(_Doc):
    name: str | None = None
    alias: str | None = None
    module_address: str | None = None
    expressions: dict[str, Any] | None = None


class Configuration(_Doc):
    provider_config: dict[str, ProviderConfig] | None = None
    root_module: ConfigModule | None = None


class PlanDocument(_Doc):
    """``terraform show -json`` output: a plan (``planned_values``) or a state (``values``)."""

    format_version: str
    terraform_version: str | None = None
    variables: dict[str, PlanVariable | None] | None = None
    planned_values: StateValues | None = None
    values: StateValues | None = None
    resource_changes: list[ResourceChange] | None = None
    prior_state: PriorState | None = None
    configuration: Configuration | None = None


# --- the plan ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Resource:
    address: str
    module: tuple[str, ...]
    mode: str
    type: str
    name: str
    values: dict[str, Any]


def _walk(module: StateModule | None) -> Iterator[_Resource]:
    if module is None:
        return
    path = _module_path(module.address)
    for r in module.resources or []:
        yield _Resource(r.address, path, r.mode, r.type, r.name, r.values or {})
    for child in module.child_modules or []:
        yield from _walk(child)


class Plan:
    """One ``terraform show -json`` document: a plan or a state."""

    def __init__(self, doc: PlanDocument, source: str) -> None:
        self.source = source
        version = doc.format_version
        if not re.fullmatch(r"\d+\.\d+", version):
            raise DeploymentError(f"{source}: format_version {version!r} is not a version")
        if version.split(".")[0] not in ("0", "1"):
            raise DeploymentError(f"{source}: format_version {version} is not supported (this nospy reads 1.x)")
        self.is_plan = doc.planned_values is not None or doc.resource_changes is not None
        current = doc.planned_values if self.is_plan else doc.values
        self.resources = list(_walk(current.root_module if current else None))
        prior = doc.prior_state.values if doc.prior_state else None
        self.prior = {r.address: r for r in _walk(prior.root_module if prior else None)}
        self.by_address = {r.address: r for r in self.resources}
        self.actions = {rc.address: (rc.change.actions or []) if rc.change else [] for rc in doc.resource_changes or []}
        config = doc.configuration or Configuration()
        self.root_config = config.root_module
        self.provider_configs = config.provider_config or {}
        self.variables = doc.variables or {}
        self._config_index: dict[tuple[str, ...], dict[str, ConfigResource]] = {}

    @property
    def kind(self) -> str:
        return "plan" if self.is_plan else "state"

    # configuration lookups

    def _config_module(self, path: tuple[str, ...]) -> ConfigModule | None:
        module = self.root_config
        for name in path:
            call = ((module.module_calls or {}) if module else {}).get(name)
            module = call.module if call else None
        return module

    def _config_resource(self, r: _Resource) -> ConfigResource | None:
        index = self._config_index.get(r.module)
        if index is None:
            module = self._config_module(r.module)
            index = self._config_index[r.module] = {c.address: c for c in (module.resources or [])} if module else {}
        return index.get(f"{r.type}.{r.name}" if r.mode == "managed" else f"data.{r.type}.{r.name}")

    def _resolve(self, expr: Any, path: tuple[str, ...], depth: int = 0) -> tuple[Any, str]:
        """The value of a configuration expression, and how it was found (value None: unresolved)."""
        if depth > 16 or not isinstance(expr, dict):
            return None, "no expression"
        if "constant_value" in expr:
            return expr["constant_value"], "a constant"
        raw = expr.get("references")
        refs = [r for r in raw if isinstance(r, str) and r] if isinstance(raw, list) else []
        if not refs:
            return None, "an expression Terraform could not record"
        ref = refs[0]
        # Terraform lists a reference and its prefixes ("a.b.c", "a.b"); anything else means the value
        # is computed from several things (a template, a function), which this reader does not evaluate
        if any(not ref.startswith(other) for other in refs[1:]):
            return None, f"an expression combining {', '.join(refs)}"
        parts = _split_address(ref)
        if parts[0] == "var" and len(parts) >= 2:
            return self._variable(_bare(parts[1]), path, depth)
        if parts[0] in ("local", "each", "count", "path", "terraform", "self"):
            return None, f"{ref} (its value is not in the plan JSON)"
        target, attr = (".".join(parts[:3]), parts[3:]) if parts[0] == "data" else (".".join(parts[:2]), parts[2:])
        if not attr:
            return None, f"{ref} (a whole resource, not a value)"
        prefix = f"{_module_key(path)}." if path else ""
        for table in (self.by_address, self.prior):
            res = table.get(prefix + target) or table.get(prefix + target + "[0]")
            if res is not None:
                value = res.values.get(_bare(attr[0]))
                if value is not None:
                    return value, f"{ref} = {value!r}"
        return None, f"{ref} (not known until apply)"

    def _variable(self, name: str, path: tuple[str, ...], depth: int) -> tuple[Any, str]:
        if not path:
            var = self.variables.get(name)
            if var is not None and var.value is not None:
                return var.value, f"var.{name} = {var.value!r}"
            return None, f"var.{name} (no value in the plan)"
        parent = self._config_module(path[:-1])
        call = ((parent.module_calls or {}) if parent else {}).get(path[-1])
        expr = (call.expressions or {}).get(name) if call else None
        if expr is not None:
            value, how = self._resolve(expr, path[:-1], depth + 1)
            return value, f"var.{name} of module.{path[-1]} from {how}"
        module = self._config_module(path)
        declared = ((module.variables or {}) if module else {}).get(name)
        if declared is not None and declared.default is not None:
            return declared.default, f"var.{name} of module.{path[-1]} defaults to {declared.default!r}"
        return None, f"var.{name} of module.{path[-1]} (no value given)"

    def _provider(self, r: _Resource) -> tuple[str | None, ProviderConfig | None, str]:
        """The provider configuration a resource uses: (key, config, how it was found)."""
        conf = self._config_resource(r)
        key = conf.provider_config_key if conf else None
        if not key:
            return None, None, "the plan has no configuration for it"
        pc = self.provider_configs.get(key)
        if pc is not None:
            return key, pc, f"provider {key}"
        # A key Terraform did not normalise: a module using its parent's provider. Follow it up only
        # when the parent module has exactly one configuration of that provider (so no alias could
        # have been passed down instead).
        name = key.rsplit(":", 1)[-1].split(".", 1)[0]
        for up in range(len(r.module) - 1, -1, -1):
            scope = _module_key(r.module[:up])
            found = [
                (k, v) for k, v in self.provider_configs.items() if v.name == name and (v.module_address or "") == scope
            ]
            if len(found) == 1:
                return found[0][0], found[0][1], f"provider {found[0][0]} (inherited by {key})"
            if found:
                return key, None, f"{key} could be any of {', '.join(k for k, _ in found)}"
        return key, None, f"{key} is not in the plan's provider_config"

    # data stores

    def stores(self) -> list[DataStore]:
        out = []
        for r in self.resources:
            st = STORE_TYPES.get(r.type)
            if st is None or r.mode != "managed":
                continue
            out.append(self._store(r, st))
        return out

    def _store(self, r: _Resource, st: StoreType) -> DataStore:
        def made(regions: list[str], source: RegionSource | None, detail: str, key: str | None = None) -> DataStore:
            return DataStore(
                address=r.address,
                type=r.type,
                cloud=st.cloud,
                kind=st.kind,
                regions=regions,
                region_source=source,
                region_detail=detail,
                provider_key=key,
            )

        regions, how = _values_regions(st.cloud, r.values)
        if regions:
            return made(regions, RegionSource.RESOURCE, f"the resource's {how}")
        prior = self.prior.get(r.address)
        if prior is not None and "create" not in self.actions.get(r.address, []):
            regions, how = _values_regions(st.cloud, prior.values)
            if regions:
                return made(regions, RegionSource.RESOURCE, f"the resource's {how}, in the current state")
        tried: list[str] = []
        conf = self._config_resource(r)
        expressions = (conf.expressions if conf else None) or {}
        for attr in ("region", "location", "zone", "availability_zone", "location_id"):
            if attr in expressions:
                value, how = self._resolve(expressions[attr], r.module)
                if region := _str(value):
                    if st.cloud is Cloud.GCP:
                        region = _gcp_region(region)
                    elif st.cloud is Cloud.AWS and attr == "availability_zone" and (m := _AWS_ZONE.match(region)):
                        region = m.group(1)
                    return made([region], RegionSource.CONFIGURATION, f"{attr} from {how}")
                if attr != "availability_zone":
                    # the resource sets its own location, so the provider's does not apply: unknown
                    return made([], None, f"{attr} is set to {how}")
                tried.append(f"{attr}: {how}")
        if st.parent and st.parent in expressions:
            found, how = self._parent_location(expressions[st.parent], r)
            if found:
                return made([found], RegionSource.REFERENCE, how)
            tried.append(f"{st.parent}: {how}")
        if st.provider_attr:
            key, pc, how = self._provider(r)
            if pc is not None:
                expr = (pc.expressions or {}).get(st.provider_attr)
                if expr is None:
                    tried.append(
                        f"{how} sets no {st.provider_attr}: it comes from the environment or shared "
                        "configuration when Terraform runs"
                    )
                else:
                    value, vhow = self._resolve(expr, _module_path(pc.module_address))
                    if region := _str(value):
                        region = _gcp_region(region) if st.cloud is Cloud.GCP else region
                        return made([region], RegionSource.PROVIDER, f"{st.provider_attr} of {how} from {vhow}", key)
                    tried.append(f"{st.provider_attr} of {how}: {vhow}")
            else:
                tried.append(how)
        if st.default:
            return made([st.default], RegionSource.DEFAULT, f"no location set: {r.type} defaults to {st.default}")
        if not tried:
            tried.append(st.unset)
        return made([], None, "; ".join(tried))

    def _parent_location(self, expr: Any, r: _Resource) -> tuple[str | None, str]:
        raw = expr.get("references") if isinstance(expr, dict) else None
        refs = [x for x in raw if isinstance(x, str) and x] if isinstance(raw, list) else []
        if not refs:
            return None, "no reference to the resource it belongs to"
        target = ".".join(_split_address(refs[0])[:2])
        prefix = f"{_module_key(r.module)}." if r.module else ""
        for table in (self.by_address, self.prior):
            res = table.get(prefix + target) or table.get(prefix + target + "[0]")
            if res is not None:
                regions, how = _azure_values(res.values)
                if regions:
                    return regions[0], f"{how} of {res.address}, which it belongs to"
        return None, f"{target} has no known location"


class RawInstance(_Doc):
    index_key: int | str | None = None
    attributes: dict[str, Any] | None = None


class RawResource(_Doc):
    module: str | None = None
    mode: str = "managed"
    type: str
    name: str
    instances: list[RawInstance] | None = None


class RawState(_Doc):
    """A state file as Terraform stores it (``terraform.tfstate``, ``terraform state pull``): version 4."""

    version: int
    terraform_version: str | None = None
    resources: list[RawResource] | None = None


def _raw_state(state: RawState, source: str) -> PlanDocument:
    """A version 4 state file as the same document `terraform show -json` would make of it."""
    if state.version != 4:
        raise DeploymentError(f"{source}: state file version {state.version} is not supported (this nospy reads 4)")
    modules: dict[str, list[StateResource]] = {}
    for r in state.resources or []:
        base = f"{r.type}.{r.name}" if r.mode == "managed" else f"data.{r.type}.{r.name}"
        for inst in r.instances or []:
            key = inst.index_key
            index = "" if key is None else f"[{key}]" if isinstance(key, int) else f"[{json.dumps(key)}]"
            address = f"{r.module}.{base}{index}" if r.module else f"{base}{index}"
            modules.setdefault(r.module or "", []).append(
                StateResource(address=address, mode=r.mode, type=r.type, name=r.name, values=inst.attributes)
            )
    root = StateModule(
        resources=modules.pop("", []),
        # modules flat under the root: a resource's module path is read from its module's address
        child_modules=[StateModule(address=m, resources=rs) for m, rs in modules.items()],
    )
    return PlanDocument(
        format_version="1.0", terraform_version=state.terraform_version, values=StateValues(root_module=root)
    )


def _invalid(source: str, exc: ValidationError) -> DeploymentError:
    problems = [
        f"{'.'.join(str(p) for p in e['loc']) or '(document)'}: {e['msg']}" for e in exc.errors(include_url=False)
    ]
    more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
    return DeploymentError(f"{source}: not a Terraform JSON plan or state: {'; '.join(problems[:3])}{more}")


def parse_plan(data: bytes, source: str) -> Plan:
    """A plan or state: `terraform show -json` output, or a state file (version 4) as Terraform stores it."""
    try:
        raw = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise DeploymentError(f"{source}: not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise DeploymentError(f"{source}: not a Terraform JSON plan or state (expected an object)")
    try:
        if "format_version" in raw:
            doc = PlanDocument.model_validate(raw)
        elif "version" in raw and "lineage" in raw:
            doc = _raw_state(RawState.model_validate(raw), source)
        else:
            raise DeploymentError(
                f"{source}: no format_version: neither `terraform show -json` output nor a Terraform state file"
            )
    except ValidationError as exc:
        raise _invalid(source, exc) from None
    except RecursionError:
        raise DeploymentError(f"{source}: modules nested too deeply") from None
    return Plan(doc, source)


def read_plan(path: Path) -> Plan:
    return parse_plan(read_limited(path, MAX_PLAN_BYTES), str(path))
