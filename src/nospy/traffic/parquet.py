"""Normalised flows as Parquet, and the one aggregation query that DuckDB and Spark both run.

The Parquet file has one row per flow: ``src``/``dst`` (text), ``sport``/``dport``/``proto``,
``bytes``/``packets``, ``first``/``last`` (timestamps in microseconds, which Spark reads; ``first_ns``/
``last_ns`` exact), ``dst_country`` and ``dst_status`` (as the geolocation database placed the
destination when the file was written), ``egress`` (see `aggregate`) and ``capture``. The database's
name and date are in the file's key-value metadata (``nospy.geolocation``), so the numbers always say
where their countries came from. Addresses become text through a dictionary of the distinct addresses,
so writing stays vectorised.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from nospy.errors import InputError
from nospy.traffic.flows import Flows, address, group_by_address
from nospy.traffic.geo import Geolocator, code_text, status_of

__all__ = ["AGGREGATE_SQL", "flows_table", "query_duckdb", "query_spark", "write_parquet"]

# One query, plain SQL that DuckDB and Spark SQL both accept; ``flows`` is the Parquet file as a view.
AGGREGATE_SQL = """
SELECT dst_country AS country,
       dst_status AS status,
       dst AS destination,
       SUM(bytes) AS bytes,
       SUM(packets) AS packets,
       COUNT(*) AS flows
FROM flows
WHERE egress
GROUP BY dst_country, dst_status, dst
ORDER BY bytes DESC, destination
""".strip()


def _text_column(hi: npt.NDArray[np.uint64], lo: npt.NDArray[np.uint64]) -> pa.DictionaryArray:
    group, first = group_by_address(hi, lo)
    words = pa.array([address(int(hi[i]), int(lo[i])) for i in first], type=pa.string())
    return pa.DictionaryArray.from_arrays(pa.array(group.astype(np.int32)), words)


def flows_table(flows: Flows, geo: Geolocator, egress: npt.NDArray[np.bool_], capture: str) -> pa.Table:
    group, first = group_by_address(flows.dst_hi, flows.dst_lo)
    codes = geo.codes(flows.dst_hi[first], flows.dst_lo[first])
    country = pa.array([code_text(int(c)) for c in codes], type=pa.string())
    status = pa.array([status_of(int(c)).value for c in codes], type=pa.string())
    idx = pa.array(group.astype(np.int32))
    table = pa.table(
        {
            "src": _text_column(flows.src_hi, flows.src_lo),
            "dst": _text_column(flows.dst_hi, flows.dst_lo),
            "sport": pa.array(flows.sport.astype(np.int32)),
            "dport": pa.array(flows.dport.astype(np.int32)),
            "proto": pa.array(flows.proto.astype(np.int16)),
            "bytes": pa.array(flows.bytes.astype(np.int64)),
            "packets": pa.array(flows.packets.astype(np.int64)),
            # Spark reads no nanosecond timestamps: microsecond timestamps, and the exact ns as integers
            "first": pa.array(flows.first // 1000, type=pa.timestamp("us", tz="UTC")),
            "last": pa.array(flows.last // 1000, type=pa.timestamp("us", tz="UTC")),
            "first_ns": pa.array(flows.first),
            "last_ns": pa.array(flows.last),
            "dst_country": pa.DictionaryArray.from_arrays(idx, country),
            "dst_status": pa.DictionaryArray.from_arrays(idx, status),
            "egress": pa.array(egress),
            "capture": pa.DictionaryArray.from_arrays(
                pa.array(np.zeros(len(flows), dtype=np.int32)), pa.array([capture], type=pa.string())
            ),
        }
    )
    meta = {b"nospy.geolocation": json.dumps(geo.describe().model_dump(mode="json")).encode()}
    return table.replace_schema_metadata(meta)


def write_parquet(tables: list[pa.Table], path: Path) -> None:
    if not tables:
        raise InputError("no flows to write")
    try:
        table = pa.concat_tables(tables, promote_options="permissive")
        table = table.replace_schema_metadata(tables[0].schema.metadata)
        pq.write_table(table, str(path), compression="zstd")
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"{path}: cannot write Parquet ({exc})") from None


def query_duckdb(path: Path) -> list[dict[str, Any]]:
    """`AGGREGATE_SQL` over a Parquet file (or glob) with DuckDB, in this process."""
    import duckdb  # noqa: PLC0415 - loaded only when a query runs

    con = duckdb.connect()
    try:
        # a path is not a bind parameter in DDL; it is quoted as an SQL string literal
        con.execute(f"CREATE VIEW flows AS SELECT * FROM read_parquet('{_quoted(path)}')")  # noqa: S608
        cur = con.execute(AGGREGATE_SQL)
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]
    finally:
        con.close()


def query_spark(path: Path, master: str = "local[1]") -> list[dict[str, Any]]:
    """`AGGREGATE_SQL` over Parquet with Spark (``local[N]`` here; a cluster's master URL scales it out)."""
    from pyspark.sql import SparkSession  # noqa: PLC0415 - an optional (dev) dependency, loaded on use

    spark = (
        SparkSession.builder.master(master)
        .appName("nospy-traffic")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .getOrCreate()
    )
    try:
        spark.read.parquet(str(path)).createOrReplaceTempView("flows")
        return [row.asDict() for row in spark.sql(AGGREGATE_SQL).collect()]
    finally:
        spark.stop()


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")
