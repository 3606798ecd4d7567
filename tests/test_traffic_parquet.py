"""Normalised flows in Parquet; the one aggregation query on DuckDB and on Spark (local mode)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from nospy.cli import run
from nospy.traffic.parquet import query_duckdb, query_spark


@pytest.fixture
def flows_parquet(shared: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, dict[str, object]]:
    out = tmp_path / "flows.parquet"
    captures = [str(shared / "traffic" / n) for n in ("zeek_wikipedia.pcap", "zat_conn.log")]
    assert run(["traffic", *captures, "--format", "json", "--parquet", str(out), "--local", "141.142.0.0/16"]) == 0
    return out, json.loads(capsys.readouterr().out)


def test_parquet_rows_and_geolocation_metadata(flows_parquet: tuple[Path, dict[str, object]]) -> None:
    path, out = flows_parquet
    table = pq.read_table(path)
    summary = out["summary"]
    assert isinstance(summary, dict)
    assert table.num_rows == summary["flows"]
    assert set(table.column("capture").to_pylist()) == {c["path"] for c in out["captures"]}  # type: ignore[attr-defined]
    meta = json.loads(table.schema.metadata[b"nospy.geolocation"])
    assert meta == summary["geolocation"]


def test_duckdb_query_equals_the_summary(flows_parquet: tuple[Path, dict[str, object]]) -> None:
    path, out = flows_parquet
    rows = query_duckdb(path)
    summary = out["summary"]
    assert isinstance(summary, dict)
    expected = {(d["address"], d["country"], d["bytes"], d["packets"], d["flows"]) for d in summary["by_destination"]}
    got = {(r["destination"], r["country"], int(r["bytes"]), int(r["packets"]), int(r["flows"])) for r in rows}
    assert got == expected


def _norm(rows: list[dict[str, object]]) -> list[tuple[object, ...]]:
    return sorted((r["country"], r["destination"], r["bytes"], r["flows"]) for r in rows)


@pytest.mark.slow
def test_spark_runs_the_same_query(flows_parquet: tuple[Path, dict[str, object]]) -> None:
    if shutil.which("java") is None:
        pytest.fail("pyspark needs Java: install default-jre-headless (debian-packages.txt)")
    path, _ = flows_parquet
    spark = query_spark(path)
    duck = query_duckdb(path)
    assert _norm(spark) == _norm(duck)
    assert len(spark) > 100
