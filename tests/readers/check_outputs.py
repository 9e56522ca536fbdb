"""Open a run's outputs with the readers data engineers use (deltalake, DuckDB, Polars, PyArrow,
pandas) and check that every one of them sees the totals the run summary reports.

usage: python3 tests/readers/check_outputs.py OUTPUT_DIR SUMMARY_JSON
"""

import hashlib
import json
import sys
from decimal import Decimal
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet
from deltalake import DeltaTable

out, summary_path = Path(sys.argv[1]), Path(sys.argv[2])
summary = json.loads(summary_path.read_text())
failures = []


def expect(what, found, wanted):
    ok = Decimal(str(found)) == Decimal(str(wanted))
    print(f"{'ok  ' if ok else 'FAIL'} {what}: {found} (expected {wanted})")
    if not ok:
        failures.append(what)


def expect_close(what, found, wanted, tolerance=Decimal("0.000001")):
    """Money read back as CUR doubles: equal to the decimal within a millionth."""
    ok = abs(Decimal(str(found)) - Decimal(str(wanted))) < tolerance
    print(f"{'ok  ' if ok else 'FAIL'} {what}: {found} (expected {wanted})")
    if not ok:
        failures.append(what)


billable_rows = sum(p["control"]["billable_rows_written"] for p in summary["periods"])
input_rows = sum(p["input_rows"] for p in summary["periods"])
billable_total = sum(Decimal(p["control"]["billable_total"]) for p in summary["periods"])
proforma_rows = sum(p["control"]["proforma_rows_written"] for p in summary["periods"])
proforma_total = sum(Decimal(p["control"]["proforma_total"]) for p in summary["periods"])
expect("summary: billable rows = input rows", billable_rows, input_rows)

tables = {name: DeltaTable(str(out / name)) for name in ("billable", "proforma", "margin")}

# deltalake + PyArrow: the schema notebooks will see.
billable = tables["billable"].to_pyarrow_table()
schema = billable.schema
for name in ("line_item_unblended_cost", "pricing_public_on_demand_cost", "line_item_unblended_rate"):
    t = schema.field(name).type
    if not pa.types.is_decimal(t):
        failures.append(f"{name} is {t}, not decimal")
for name in ("line_item_usage_start_date", "bill_billing_period_start_date"):
    t = schema.field(name).type
    if not (pa.types.is_timestamp(t) and t.unit == "us" and t.tz == "UTC"):
        failures.append(f"{name} is {t}, not timestamp[us, tz=UTC]")
for name in ("line_item_usage_account_id", "line_item_line_item_type"):
    t = schema.field(name).type
    if t != pa.string():
        failures.append(f"{name} is {t}, not a plain string")
if not pa.types.is_map(schema.field("product").type):
    failures.append(f"product is {schema.field('product').type}, not a map")
expect("pyarrow: billable rows", billable.num_rows, input_rows)
expect("pyarrow: billable total", pa.compute.sum(billable["line_item_unblended_cost"]).as_py(), billable_total)

# pandas
proforma_pd = tables["proforma"].to_pandas()
expect("pandas: pro forma rows", len(proforma_pd), proforma_rows)
expect("pandas: pro forma total", sum(proforma_pd["line_item_unblended_cost"].dropna()), proforma_total)

# Polars
proforma_pl = pl.read_delta(str(out / "proforma"))
expect("polars: pro forma total", proforma_pl["line_item_unblended_cost"].sum(), proforma_total)
margin_pl = pl.read_delta(str(out / "margin"))
expect("polars: margin = pro forma - billable",
       margin_pl["margin"].sum(), margin_pl["proforma_cost"].sum() - margin_pl["billable_cost"].sum())

# DuckDB over the files of the current Delta version (no extension download needed).
con = duckdb.connect()
for name, table in tables.items():
    files = table.file_uris()
    con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet({files!r}, hive_partitioning = true)")
rows, total = con.execute("SELECT count(*), sum(line_item_unblended_cost) FROM billable").fetchone()
expect("duckdb: billable rows", rows, input_rows)
expect("duckdb: billable total", total, billable_total)
(total,) = con.execute("SELECT sum(line_item_unblended_cost) FROM proforma").fetchone()
expect("duckdb: pro forma total", total, proforma_total)
(leaks,) = con.execute(
    "SELECT count(*) FROM proforma WHERE bill_invoice_id IS NOT NULL OR discount IS NOT NULL"
).fetchone()
expect("duckdb: pro forma rows with billable-only columns", leaks, 0)

# pyarrow.dataset straight on the partitioned files, as Spark would read them.
dataset = ds.dataset(tables["margin"].file_uris(), format="parquet", partitioning="hive")
expect("pyarrow.dataset: margin rows", dataset.count_rows(), len(margin_pl))

# invoice_lines: per invoice, the lines (tax lines included) add up to the invoice's total.
lines_pl = pl.read_delta(str(out / "invoice_lines"))
for p in summary["periods"]:
    for inv in p["invoices"]:
        rows = lines_pl.filter(pl.col("invoice_number") == inv["number"])
        expect(f"polars: invoice_lines of {inv['number']} add up to its total", rows["amount"].sum(), inv["total"])

# periods: what the finance team audits. Each document the run lists has a row whose SHA-256
# is that of the file on disk (pandas over deltalake, DuckDB over the Delta file list).
periods = DeltaTable(str(out / "periods"))
periods_pd = periods.to_pandas()
con.execute(f"CREATE VIEW periods AS SELECT * FROM read_parquet({periods.file_uris()!r}, hive_partitioning = true)")
for p in summary["periods"]:
    for inv in p["invoices"]:
        row = periods_pd[periods_pd["number"] == inv["number"]]
        on_disk = hashlib.sha256(Path(inv["json"].removeprefix("file://")).read_bytes()).hexdigest()
        if len(row) != 1 or row.iloc[0]["json_sha256"] != on_disk:
            failures.append(f"periods: {inv['number']} does not record its document's SHA-256")
        expect(f"pandas: periods total of {inv['number']}", row.iloc[0]["total"], inv["total"])
    (open_groups,) = con.execute(
        "SELECT count(DISTINCT billing_group) FROM periods WHERE billing_period = ? AND status = 'open'",
        [p["period"]]).fetchone()
    expect(f"duckdb: open groups of {p['period']}", open_groups, len(p["invoices"]))

# Customer exports: CUR 2.0 types (costs double, rates string, maps), readable as they are.
for p in summary["periods"]:
    for export in p["exports"]:
        group = export["billing_group"]
        files = [f.removeprefix("file://") for f in export["files"]]
        proforma = next(g["proforma_cost"] for g in p["groups"] if g["billing_group"] == group)
        table = pa.concat_tables([pa.parquet.read_table(f) for f in files])
        for name, check in (("line_item_unblended_cost", pa.types.is_float64),
                            ("line_item_unblended_rate", pa.types.is_string),
                            ("line_item_usage_start_date", pa.types.is_timestamp),
                            ("product", pa.types.is_map), ("discount", pa.types.is_map)):
            if not check(table.schema.field(name).type):
                failures.append(f"export {group}: {name} is {table.schema.field(name).type}")
        for name in ("billing_period", "billing_group", "pricing_plan", "pricing_rule"):
            if name in table.schema.names:
                failures.append(f"export {group}: rerate's own column {name}")
        (rows, total) = con.execute(
            f"SELECT count(*), sum(line_item_unblended_cost) FROM read_parquet({files!r})").fetchone()
        expect(f"duckdb: export {group} rows", rows, export["rows"])
        expect_close(f"duckdb: export {group} total", total, proforma)
        total = pl.read_parquet(files)["line_item_unblended_cost"].sum()
        expect_close(f"polars: export {group} total", total, proforma)

# FOCUS: decimal money in the invoice currency, the same in every reader; one FOCUS row per pro
# forma row.
focus = DeltaTable(str(out / "focus"))
focus_pa = focus.to_pyarrow_table(columns=["BilledCost", "BillingCurrency", "ChargePeriodStart"])
if not pa.types.is_decimal(focus_pa.schema.field("BilledCost").type):
    failures.append(f"focus BilledCost is {focus_pa.schema.field('BilledCost').type}, not decimal")
if not pa.types.is_timestamp(focus_pa.schema.field("ChargePeriodStart").type):
    failures.append("focus ChargePeriodStart is not a timestamp")
expect("pyarrow: FOCUS rows = pro forma rows", focus_pa.num_rows, proforma_rows)
billed = pa.compute.sum(focus_pa["BilledCost"]).as_py()
con.execute(f"CREATE VIEW focus AS SELECT * FROM read_parquet({focus.file_uris()!r}, hive_partitioning = true)")
(total,) = con.execute('SELECT sum("BilledCost") FROM focus').fetchone()
expect("duckdb: Σ BilledCost = pyarrow's", total, billed)
expect("polars: Σ BilledCost = pyarrow's", pl.read_delta(str(out / "focus"))["BilledCost"].sum(), billed)
expect("pandas: Σ BilledCost = pyarrow's", sum(focus.to_pandas(columns=["BilledCost"])["BilledCost"]), billed)

# DuckDB's threads must stop before the interpreter does: an open connection at exit has aborted
# the process after every check passed ("terminate called without an active exception").
con.close()

if failures:
    print(f"\n{len(failures)} reader check(s) failed: {failures}")
    sys.exit(1)
print("\nall reader checks passed")
