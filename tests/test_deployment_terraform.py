"""Terraform plan/state reading: data stores and where their regions come from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nospy.deployment.interface import DeploymentError
from nospy.deployment.terraform import STORE_TYPES, parse_plan, read_plan

DATA = Path(__file__).parent / "data" / "deployment"
AWS = "registry.terraform.io/hashicorp/aws"
GOOGLE = "registry.terraform.io/hashicorp/google"


def _regions(plan_path: Path) -> dict[str, tuple[list[str], str | None]]:
    return {
        s.address: (s.regions, s.region_source.value if s.region_source else None)
        for s in read_plan(plan_path).stores()
    }


def test_example_plan_every_way_of_finding_a_region(examples: Path) -> None:
    assert _regions(examples / "plan.json") == {
        "aws_db_instance.subscribers": (["ap-south-1"], "provider"),  # provider region from var.region
        "aws_dynamodb_table.sessions": (["ap-south-1", "ap-southeast-1"], "resource"),  # ARN + replica
        "aws_ebs_volume.cdr_spool": (["ap-south-1"], "resource"),  # availability_zone
        "aws_s3_bucket.customer_records": (["ap-southeast-1"], "provider"),  # aliased provider aws.sg
        "azurerm_mssql_database.billing": (["southeastasia"], "reference"),  # its server's location
        "azurerm_mssql_server.billing": (["southeastasia"], "resource"),
        "azurerm_storage_account.li_archive": (["centralindia"], "resource"),
        "google_bigquery_dataset.cdr_analytics": (["US"], "default"),  # documented default location
        "google_storage_bucket.config_backups": (["ASIA-SOUTH1"], "resource"),
        "module.telemetry.aws_kinesis_stream.events": ([], None),  # provider region from a local: unknown
    }
    stores = {s.address: s for s in read_plan(examples / "plan.json").stores()}
    assert stores["aws_s3_bucket.customer_records"].provider_key == "aws.sg"
    assert "local.region" in stores["module.telemetry.aws_kinesis_stream.events"].region_detail
    # resources that only configure a store are not stores
    assert "aws_s3_bucket_versioning.customer_records" not in stores
    assert "azurerm_resource_group.billing" not in stores


def test_state_as_terraform_show_writes_it() -> None:
    plan = read_plan(DATA / "state.json")
    assert plan.kind == "state"
    assert _regions(DATA / "state.json") == {
        "aws_db_instance.hlr": (["ap-south-1"], "resource"),
        "aws_ebs_volume.spool": (["ap-south-1"], "resource"),
        "aws_s3_bucket.exports": (["ap-southeast-1"], "resource"),
        "aws_s3_bucket.future": (["ap-south-9"], "resource"),
        "aws_sqs_queue.cdr": (["ap-south-1"], "resource"),
        "azurerm_cosmosdb_account.profiles": (["centralindia", "southindia"], "resource"),
        "azurerm_managed_disk.oss": (["Central India"], "resource"),
        "google_compute_disk.mediation": (["asia-south1"], "resource"),
        "google_pubsub_topic.events": ([], None),
        "google_storage_bucket.logs": (["EU"], "resource"),
        "module.dr.aws_s3_bucket.replica[0]": (["ap-south-2"], "resource"),
        "module.dr.aws_s3_bucket.replica[1]": (["ap-south-1"], "resource"),
        'module.dr.module.vault["primary"].aws_backup_vault.this': (["ap-south-1"], "resource"),
    }


def _res(address: str, rtype: str, values: dict[str, Any], provider: str = AWS) -> dict[str, Any]:
    name = address.rsplit(".", 1)[-1].split("[", 1)[0]
    return {
        "address": address,
        "mode": "managed",
        "type": rtype,
        "name": name,
        "provider_name": provider,
        "schema_version": 0,
        "values": values,
        "sensitive_values": {},
    }


def _plan(
    resources: list[dict[str, Any]],
    provider_config: dict[str, Any],
    config_resources: list[dict[str, Any]],
    *,
    child: dict[str, Any] | None = None,
    module_calls: dict[str, Any] | None = None,
    variables: dict[str, Any] | None = None,
    changes: list[dict[str, Any]] | None = None,
    prior: list[dict[str, Any]] | None = None,
) -> bytes:
    """A plan as `terraform show -json` writes it (one line, the keys Terraform 1.9 writes)."""
    root: dict[str, Any] = {"resources": resources}
    if child:
        root["child_modules"] = [child]
    doc: dict[str, Any] = {
        "format_version": "1.2",
        "terraform_version": "1.9.5",
        "variables": variables or {},
        "planned_values": {"root_module": root},
        "resource_changes": changes
        or [
            {
                "address": r["address"],
                "mode": "managed",
                "type": r["type"],
                "name": r["name"],
                "provider_name": r["provider_name"],
                "change": {"actions": ["create"], "before": None, "after": r["values"], "after_unknown": {"id": True}},
            }
            for r in resources + (child or {}).get("resources", [])
        ],
        "configuration": {
            "provider_config": provider_config,
            "root_module": {"resources": config_resources, "module_calls": module_calls or {}},
        },
        "timestamp": "2026-11-20T09:12:44Z",
        "applyable": True,
        "complete": True,
        "errored": False,
    }
    if prior is not None:
        doc["prior_state"] = {"format_version": "1.0", "values": {"root_module": {"resources": prior}}}
    return json.dumps(doc, separators=(",", ":")).encode()


def _conf(address: str, key: str, expressions: dict[str, Any] | None = None) -> dict[str, Any]:
    rtype, name = address.split(".")
    return {
        "address": address,
        "mode": "managed",
        "type": rtype,
        "name": name,
        "provider_config_key": key,
        "expressions": expressions or {},
        "schema_version": 0,
    }


def _aws(region: Any = None, alias: str | None = None, module: str | None = None) -> dict[str, Any]:
    pc: dict[str, Any] = {"name": "aws", "full_name": AWS}
    if alias:
        pc["alias"] = alias
    if module:
        pc["module_address"] = module
    if region is not None:
        pc["expressions"] = {"region": region}
    return pc


def test_module_provider_region_through_a_variable_of_the_module_call() -> None:
    data = _plan(
        [],
        {"module.store:aws": _aws({"references": ["var.region"]}, module="module.store")},
        [],
        child={
            "address": "module.store",
            "resources": [_res("module.store.aws_s3_bucket.b", "aws_s3_bucket", {"bucket": "b"})],
        },
        module_calls={
            "store": {
                "source": "./store",
                "expressions": {"region": {"references": ["var.home_region"]}},
                "module": {
                    "resources": [_conf("aws_s3_bucket.b", "module.store:aws")],
                    "variables": {"region": {}},
                },
            }
        },
        variables={"home_region": {"value": "ap-south-2"}},
    )
    (store,) = parse_plan(data, "plan.json").stores()
    assert store.regions == ["ap-south-2"]
    assert store.region_source is not None and store.region_source.value == "provider"
    assert "var.home_region" in store.region_detail


def test_unnormalised_module_key_inherits_the_only_parent_provider() -> None:
    # Terraform leaves a module resource's key as "module.m:aws" when the module uses its parent's
    # provider without a block of its own; the parent has exactly one aws configuration
    data = _plan(
        [],
        {"aws": _aws({"constant_value": "ap-south-1"})},
        [],
        child={"address": "module.m", "resources": [_res("module.m.aws_sqs_queue.q", "aws_sqs_queue", {"name": "q"})]},
        module_calls={"m": {"source": "./m", "module": {"resources": [_conf("aws_sqs_queue.q", "module.m:aws")]}}},
    )
    (store,) = parse_plan(data, "plan.json").stores()
    assert store.regions == ["ap-south-1"]
    assert "inherited" in store.region_detail


def test_unnormalised_module_key_with_aliases_in_the_parent_stays_unknown() -> None:
    # an alias could have been passed down instead of the default: guessing would be a silent pass
    data = _plan(
        [],
        {"aws": _aws({"constant_value": "ap-south-1"}), "aws.sg": _aws({"constant_value": "ap-southeast-1"}, "sg")},
        [],
        child={"address": "module.m", "resources": [_res("module.m.aws_sqs_queue.q", "aws_sqs_queue", {"name": "q"})]},
        module_calls={"m": {"source": "./m", "module": {"resources": [_conf("aws_sqs_queue.q", "module.m:aws")]}}},
    )
    (store,) = parse_plan(data, "plan.json").stores()
    assert store.regions == []
    assert "aws.sg" in store.region_detail


def test_provider_without_region_is_unknown_not_a_guess() -> None:
    data = _plan(
        [_res("aws_s3_bucket.b", "aws_s3_bucket", {"bucket": "b"})], {"aws": _aws()}, [_conf("aws_s3_bucket.b", "aws")]
    )
    (store,) = parse_plan(data, "plan.json").stores()
    assert store.regions == []
    assert "environment" in store.region_detail


def test_provider_region_from_a_template_is_not_evaluated() -> None:
    data = _plan(
        [_res("aws_s3_bucket.b", "aws_s3_bucket", {"bucket": "b"})],
        {"aws": _aws({"references": ["var.a", "var.b"]})},
        [_conf("aws_s3_bucket.b", "aws")],
        variables={"a": {"value": "ap"}, "b": {"value": "south-1"}},
    )
    (store,) = parse_plan(data, "plan.json").stores()
    assert store.regions == []
    assert "combining" in store.region_detail


def test_resource_region_argument_beats_the_provider() -> None:
    # AWS provider 6 gives every resource a region argument
    data = _plan(
        [_res("aws_s3_bucket.b", "aws_s3_bucket", {"bucket": "b", "region": "ap-south-1"})],
        {"aws": _aws({"constant_value": "ap-southeast-1"})},
        [_conf("aws_s3_bucket.b", "aws", {"region": {"constant_value": "ap-south-1"}})],
    )
    (store,) = parse_plan(data, "plan.json").stores()
    assert (store.regions, store.region_source and store.region_source.value) == (["ap-south-1"], "resource")


def test_own_region_unknown_until_apply_is_not_replaced_by_the_provider_region() -> None:
    data = _plan(
        [_res("aws_s3_bucket.b", "aws_s3_bucket", {"bucket": "b"})],
        {"aws": _aws({"constant_value": "ap-south-1"})},
        [
            _conf(
                "aws_s3_bucket.b",
                "aws",
                {"region": {"references": ["aws_s3_bucket.other.region", "aws_s3_bucket.other"]}},
            )
        ],
    )
    (store,) = parse_plan(data, "plan.json").stores()
    assert store.regions == []
    assert store.region_detail == "region is set to aws_s3_bucket.other.region (not known until apply)"


def test_a_store_being_destroyed_is_not_a_store_after_the_plan() -> None:
    prior = [_res("aws_s3_bucket.old", "aws_s3_bucket", {"bucket": "old", "region": "ap-southeast-1"})]
    changes = [
        {
            "address": "aws_s3_bucket.old",
            "mode": "managed",
            "type": "aws_s3_bucket",
            "name": "old",
            "provider_name": AWS,
            "change": {"actions": ["delete"], "before": prior[0]["values"], "after": None},
        }
    ]
    data = _plan([], {"aws": _aws({"constant_value": "ap-south-1"})}, [], changes=changes, prior=prior)
    assert parse_plan(data, "plan.json").stores() == []


def test_replaced_resource_does_not_keep_its_old_region() -> None:
    prior = [_res("aws_ebs_volume.v", "aws_ebs_volume", {"availability_zone": "ap-southeast-1a", "size": 1})]
    planned = [_res("aws_ebs_volume.v", "aws_ebs_volume", {"size": 1})]
    changes = [
        {
            "address": "aws_ebs_volume.v",
            "mode": "managed",
            "type": "aws_ebs_volume",
            "name": "v",
            "provider_name": AWS,
            "change": {"actions": ["delete", "create"], "before": prior[0]["values"], "after": {"size": 1}},
        }
    ]
    data = _plan(
        planned,
        {"aws": _aws({"constant_value": "ap-south-1"})},
        [_conf("aws_ebs_volume.v", "aws")],
        changes=changes,
        prior=prior,
    )
    (store,) = parse_plan(data, "plan.json").stores()
    assert store.regions == ["ap-south-1"]  # the provider's, not the replaced volume's


def test_unchanged_resource_takes_its_region_from_the_current_state() -> None:
    prior = [_res("aws_sqs_queue.q", "aws_sqs_queue", {"arn": "arn:aws:sqs:ap-south-2:1:q", "name": "q"})]
    changes = [
        {
            "address": "aws_sqs_queue.q",
            "mode": "managed",
            "type": "aws_sqs_queue",
            "name": "q",
            "provider_name": AWS,
            "change": {"actions": ["update"], "before": prior[0]["values"], "after": {"name": "q"}},
        }
    ]
    data = _plan(
        [_res("aws_sqs_queue.q", "aws_sqs_queue", {"name": "q"})],
        {"aws": _aws()},
        [_conf("aws_sqs_queue.q", "aws")],
        changes=changes,
        prior=prior,
    )
    (store,) = parse_plan(data, "plan.json").stores()
    assert store.regions == ["ap-south-2"]
    assert "current state" in store.region_detail


def test_google_placement_zone_and_provider_region() -> None:
    resources = [
        _res(
            "google_storage_bucket.dual",
            "google_storage_bucket",
            {"location": "ASIA", "custom_placement_config": [{"data_locations": ["ASIA-SOUTH1", "ASIA-SOUTH2"]}]},
            GOOGLE,
        ),
        _res("google_compute_disk.d", "google_compute_disk", {"name": "d", "zone": "asia-south2-c"}, GOOGLE),
        _res("google_sql_database_instance.s", "google_sql_database_instance", {"name": "s"}, GOOGLE),
    ]
    data = _plan(
        resources,
        {
            "google": {
                "name": "google",
                "full_name": GOOGLE,
                "expressions": {"region": {"constant_value": "asia-south1"}},
            }
        },
        [
            _conf("google_storage_bucket.dual", "google"),
            _conf("google_compute_disk.d", "google"),
            _conf("google_sql_database_instance.s", "google"),
        ],
    )
    got = {s.address: s.regions for s in parse_plan(data, "plan.json").stores()}
    assert got == {
        "google_storage_bucket.dual": ["ASIA-SOUTH1", "ASIA-SOUTH2"],
        "google_compute_disk.d": ["asia-south2"],
        "google_sql_database_instance.s": ["asia-south1"],
    }


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not json", "not JSON"),
        (b"[]", "expected an object"),
        (b'{"planned_values": {}}', "no format_version"),
        (b'{"format_version": "2.0", "values": {}}', "not supported"),
        (b'{"format_version": "1.0", "values": []}', "values: Input should be a valid dictionary"),
        (b'{"format_version": "x", "values": {}}', "not a version"),
    ],
)
def test_bad_input_is_an_input_error(data: bytes, message: str) -> None:
    with pytest.raises(DeploymentError, match=message):
        parse_plan(data, "plan.json")


def test_empty_state_has_no_stores() -> None:
    # `terraform show -json` of an empty state writes only the version
    assert parse_plan(b'{"format_version":"1.0"}', "state.json").stores() == []


def test_every_store_type_belongs_to_a_provider_it_names() -> None:
    prefixes = {"aws": "aws_", "gcp": "google_", "azure": "azurerm_"}
    for rtype, store_type in STORE_TYPES.items():
        assert rtype.startswith(prefixes[store_type.cloud.value]), rtype


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def _at(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        doc = doc[part]
    return doc


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_value_anywhere_in_a_real_plan_is_read_or_refused(data: st.DataObject) -> None:
    """Structure-aware fuzzing: a real plan with one value replaced by any JSON value."""
    doc = json.loads((Path(__file__).resolve().parents[1] / "examples" / "plan.json").read_text())
    paths = _paths(doc)[1:]
    # containers more often: replacing one with another value is what confuses a reader of nested documents
    containers = [p for p in paths if isinstance(_at(doc, p), (dict, list))]
    path = data.draw(st.sampled_from(containers) | st.sampled_from(paths))
    node = doc
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = data.draw(_JSON)
    try:
        stores = parse_plan(json.dumps(doc).encode(), "plan.json").stores()
    except DeploymentError:
        return
    for s in stores:
        assert all(isinstance(r, str) and r for r in s.regions)


def test_state_file_as_terraform_stores_it_reads_like_show_json() -> None:
    raw = read_plan(DATA / "terraform.tfstate")
    assert raw.kind == "state"
    assert _regions(DATA / "terraform.tfstate") == _regions(DATA / "state.json")
    with pytest.raises(DeploymentError, match="state file version 3"):
        parse_plan(b'{"version": 3, "lineage": "x", "modules": []}', "old.tfstate")
