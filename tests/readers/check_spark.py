"""Open a run's tables and exports with Spark (pyspark, local mode) and check that Spark sees
what deltalake sees: money as decimals, timestamps as timestamps, the same rows and totals.

usage: python3 tests/readers/check_spark.py OUTPUT_DIR

Spark reads each Delta table's current files (deltalake's file list: the delta-spark jars come
from Maven, which this machine cannot reach), with the table folder as basePath so that the
partition columns come back from the paths, as a Spark job over a Delta table would see them.
"""

import os
import sys
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlparse

from deltalake import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DecimalType, TimestampType

out = Path(sys.argv[1])
failures = []

# Each table: its money columns (decimal in Delta, decimal in Spark) and a timestamp column.
TABLES = {
    "billable": (["line_item_unblended_cost", "pricing_public_on_demand_cost"], "line_item_usage_start_date"),
    "proforma": (["line_item_unblended_cost", "line_item_unblended_rate"], "line_item_usage_start_date"),
    "margin": (["billable_cost", "proforma_cost", "margin"], None),
    "focus": (["BilledCost", "EffectiveCost", "ListCost", "ContractedCost"], "ChargePeriodStart"),
}

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
spark = (
    SparkSession.builder.master("local[2]")
    .appName("rerate-readers")
    .config("spark.driver.bindAddress", "127.0.0.1")
    .config("spark.ui.enabled", "false")
    .config("spark.sql.session.timeZone", "UTC")
    .getOrCreate()
)
spark.sparkContext.setLogLevel("ERROR")


def check(what, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {what}{': ' + detail if detail else ''}")
    if not ok:
        failures.append(what)


def local(uri: str) -> str:
    return urlparse(uri).path if uri.startswith("file:") else uri


for name, (money, timestamp) in TABLES.items():
    table = DeltaTable(str(out / name))
    files = [local(u) for u in table.file_uris()]
    df = spark.read.option("basePath", str(out / name)).parquet(*files)
    types = dict((f.name, f.dataType) for f in df.schema.fields)
    for column in money:
        check(f"spark {name}.{column} is decimal", isinstance(types[column], DecimalType), str(types[column]))
    if timestamp:
        check(f"spark {name}.{timestamp} is a timestamp", isinstance(types[timestamp], TimestampType), str(types[timestamp]))
    check(f"spark {name} has the partition columns", {"billing_period", "billing_group"} <= set(types))
    arrow = table.to_pyarrow_table(columns=money)
    rows = df.count()
    check(f"spark {name} rows = deltalake's", rows == arrow.num_rows, f"{rows} vs {arrow.num_rows}")
    sums = df.agg(*[F.sum(c).alias(c) for c in money]).collect()[0]
    for column in money:
        expected = sum((v for v in arrow.column(column).to_pylist() if v is not None), Decimal(0))
        found = sums[column] if sums[column] is not None else Decimal(0)
        check(f"spark Σ {name}.{column} = deltalake's", Decimal(found) == expected, f"{found} vs {expected}")

# The customer exports: CUR 2.0 (money as doubles, as AWS writes it) and FOCUS (decimal).
for group_dir in sorted((out / "exports").iterdir()):
    cur = spark.read.parquet(str(group_dir / "data"))
    t = dict((f.name, f.dataType) for f in cur.schema.fields)
    check(f"spark export {group_dir.name}: timestamps", isinstance(t["line_item_usage_start_date"], TimestampType))
    check(f"spark export {group_dir.name}: BILLING_PERIOD from the folder", "BILLING_PERIOD" in t)
    focus = spark.read.parquet(str(group_dir / "focus"))
    f = dict((x.name, x.dataType) for x in focus.schema.fields)
    check(f"spark FOCUS export {group_dir.name}: BilledCost decimal", isinstance(f["BilledCost"], DecimalType), str(f["BilledCost"]))
    exported = focus.agg(F.sum("BilledCost")).collect()[0][0] or Decimal(0)
    in_table = (
        spark.read.option("basePath", str(out / "focus"))
        .parquet(*[local(u) for u in DeltaTable(str(out / "focus")).file_uris()])
        .where(F.col("billing_group") == group_dir.name)
        .agg(F.sum("BilledCost")).collect()[0][0] or Decimal(0)
    )
    check(f"spark FOCUS export {group_dir.name}: Σ BilledCost = focus/'s", exported == in_table, f"{exported} vs {in_table}")

spark.stop()
if failures:
    sys.exit(f"{len(failures)} Spark check(s) failed: {failures}")
print("Spark reads every table and export with the same types and totals")
