"""The cloud region table and the data.residency rule."""

from __future__ import annotations

import json
from pathlib import Path

import pycountry
import pytest

from nospy.agreement import load
from nospy.agreement.schema import Agreement
from nospy.deployment import region_check, regions
from nospy.deployment.interface import Cloud, DataStore, RegionSource
from nospy.deployment.residency import check_residency
from nospy.deployment.terraform import read_plan

DATA = Path(__file__).parent / "data" / "deployment"


def test_region_table_loads_with_its_provenance() -> None:
    table = regions.load()  # fails when the bundled table is missing or malformed
    assert table.date and table.licence and table.notes
    assert set(table.sources) == set(Cloud)
    for cloud in Cloud:
        assert sum(1 for r in table.regions if r.cloud is cloud) >= 30, cloud
    for r in table.regions:
        assert r.countries, r.id
        for c in r.countries:
            assert pycountry.countries.get(alpha_2=c) is not None, (r.id, c)


@pytest.mark.parametrize(
    ("cloud", "region", "countries"),
    [
        (Cloud.AWS, "ap-south-1", ["IN"]),
        (Cloud.AWS, "ap-southeast-1", ["SG"]),
        (Cloud.AWS, "eu-west-2", ["GB"]),
        (Cloud.AWS, "us-gov-west-1", ["US"]),
        (Cloud.GCP, "ASIA-SOUTH1", ["IN"]),  # Cloud Storage writes locations in capitals
        (Cloud.GCP, "europe-west10", ["DE"]),
        (Cloud.GCP, "EUR4", ["FI", "NL"]),
        (Cloud.AZURE, "Central India", ["IN"]),  # azurerm accepts display names
        (Cloud.AZURE, "southeastasia", ["SG"]),
        (Cloud.AZURE, "uksouth", ["GB"]),
    ],
)
def test_region_countries(cloud: Cloud, region: str, countries: list[str]) -> None:
    found = regions.load().get(cloud, region)
    assert found is not None and found.countries == countries


def test_aws_regions_missing_from_the_table_are_listed(tmp_path: Path) -> None:
    # botocore's endpoints.json shape: partitions, each with its regions and their descriptions
    endpoints = {
        "partitions": [
            {
                "partition": "aws",
                "regionRegex": "^(us|eu|ap)\\-\\w+\\-\\d+$",
                "regions": {"ap-south-1": {"description": "Asia Pacific (Mumbai)"}, "ap-south-9": {"description": "X"}},
                "services": {},
            },
            {"partition": "aws-iso", "regions": {"us-iso-east-1": {"description": "US ISO East"}}, "services": {}},
        ],
        "version": 3,
    }
    assert regions.aws_missing(endpoints, regions.load()) == ["ap-south-9 (X)"]
    path = tmp_path / "endpoints.json"
    path.write_text(json.dumps(endpoints))
    assert region_check.main([str(path)]) == 1
    assert region_check.main([str(tmp_path / "none.json")]) == 2


def test_within_lists_single_regions_first() -> None:
    inside = regions.load().within(Cloud.GCP, {"IN"})
    assert [r.id for r in inside] == ["asia-south1", "asia-south2"]
    assert regions.load().within(Cloud.AWS, {"NP"}) == []


def _agreement(countries: list[str] | None) -> Agreement:
    data: dict[str, object] = {"nospy": 1, "id": "a", "title": "t", "vendor": "ACME", "customer": "c"}
    if countries is not None:
        data["data"] = {"countries": countries}
    return Agreement.model_validate(data)


def _store(regions_: list[str], cloud: Cloud = Cloud.AWS) -> DataStore:
    return DataStore(
        address="aws_s3_bucket.b",
        type="aws_s3_bucket",
        cloud=cloud,
        kind="object storage",
        regions=regions_,
        region_source=RegionSource.RESOURCE if regions_ else None,
        region_detail="the resource's region" if regions_ else "the aws provider block sets no region",
    )


def test_store_outside_names_address_region_and_where_it_may_go() -> None:
    (f,) = check_residency(_agreement(["IN"]), [_store(["ap-southeast-1"])], regions.load(), "plan.json")
    assert f.rule == "data.residency" and f.severity.value == "high"
    assert f.location == "plan.json!aws_s3_bucket.b"
    assert "ap-southeast-1" in f.message and "ap-south-1" in f.message
    assert f.evidence["countries"] == ["SG"]
    assert [t["region"] for t in f.evidence["may_move_to"]] == ["ap-south-1", "ap-south-2"]


def test_unresolved_and_unlisted_regions_are_residency_unknown() -> None:
    table = regions.load()
    unresolved, unlisted = check_residency(_agreement(["IN"]), [_store([]), _store(["ap-south-9"])], table, "plan.json")
    assert unresolved.message.startswith("residency unknown") and unresolved.evidence["residency"] == "unknown"
    assert "sets no region" in unresolved.message
    assert unlisted.message.startswith("residency unknown") and unlisted.evidence["unknown_regions"] == ["ap-south-9"]


def test_multi_region_passes_only_if_every_country_is_allowed() -> None:
    table = regions.load()
    eu = _store(["EU"], Cloud.GCP)
    (f,) = check_residency(_agreement(["DE"]), [eu], table, "p")
    assert "FR" in f.evidence["countries"]
    everywhere = ["BE", "DE", "ES", "FI", "FR", "IT", "NL", "PL", "SE"]
    assert check_residency(_agreement(everywhere), [eu], table, "p") == []


def test_inside_passes_and_no_data_section_checks_nothing() -> None:
    table = regions.load()
    assert check_residency(_agreement(["IN"]), [_store(["ap-south-1", "ap-south-2"])], table, "p") == []
    assert check_residency(_agreement(None), [_store(["ap-southeast-1"])], table, "p") == []


def test_replica_outside_fails_the_whole_store(examples: Path) -> None:
    agreement = load(examples / "agreement.yaml")
    findings = check_residency(agreement, read_plan(examples / "plan.json").stores(), regions.load(), "plan.json")
    by_address = {f.evidence["address"]: f for f in findings}
    assert sorted(by_address) == [
        "aws_dynamodb_table.sessions",
        "aws_s3_bucket.customer_records",
        "azurerm_mssql_database.billing",
        "azurerm_mssql_server.billing",
        "google_bigquery_dataset.cdr_analytics",
        "module.telemetry.aws_kinesis_stream.events",
    ]
    assert by_address["aws_dynamodb_table.sessions"].evidence["countries"] == ["SG"]
    assert by_address["module.telemetry.aws_kinesis_stream.events"].evidence["residency"] == "unknown"


def test_state_residency() -> None:
    findings = check_residency(
        _agreement(["IN"]), read_plan(DATA / "state.json").stores(), regions.load(), "state.json"
    )
    assert sorted((f.evidence["address"], f.evidence["residency"]) for f in findings) == [
        ("aws_s3_bucket.exports", "outside"),
        ("aws_s3_bucket.future", "unknown"),
        ("google_pubsub_topic.events", "unknown"),
        ("google_storage_bucket.logs", "outside"),
    ]
