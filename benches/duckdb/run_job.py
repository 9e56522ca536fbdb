#!/usr/bin/env python3
"""Runs rerate_job.sql (the rerate job written as a DuckDB script) on one CUR 2.0 export.

    run_job.py --input CUR_DIR --output OUT_DIR [--check-against SUMMARY_JSON] [--no-run]

--check-against compares the job's outputs, read back from OUT_DIR, with `rerate run --json`'s
summary of the same input: billable rows and total, pro forma rows and total per group, and
margin per group must be equal exactly (decimal, not to a tolerance). Exits 1 on a difference.
--no-run only checks outputs an earlier run wrote.
"""

import argparse
import json
import sys
import tempfile
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import duckdb

JOB_SQL = Path(__file__).with_name("rerate_job.sql")
# rerate's own table of what each line item type is: the job reads it as rerate does.
LINE_ITEM_TYPES = Path(__file__).resolve().parents[2] / "sql" / "line_item_types.csv"


def run_job(input_dir: Path, output_dir: Path) -> None:
    """Runs the job script in a fresh in-memory DuckDB that spills to a temporary folder."""
    output_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="duckdb-spill-") as spill:
        con = duckdb.connect(config={"temp_directory": spill})
        try:
            con.execute("SET VARIABLE input = ?", [str(input_dir.resolve())])
            con.execute("SET VARIABLE output = ?", [str(output_dir.resolve())])
            con.execute("SET VARIABLE line_item_types = ?", [str(LINE_ITEM_TYPES)])
            con.execute(JOB_SQL.read_text())
        finally:
            con.close()


def job_totals(output_dir: Path) -> dict:
    """The control figures of the job's outputs, read back from its Parquet files."""
    con = duckdb.connect()

    def table(name: str) -> str:
        glob = str(output_dir.resolve() / name / "**" / "*.parquet").replace("'", "''")
        return f"read_parquet('{glob}', hive_partitioning = true)"

    totals = {"billable": {}, "proforma": {}, "margin": {}}
    for period, rows, cost in con.sql(
        f"SELECT billing_period, count(*), sum(line_item_unblended_cost) "
        f"FROM {table('billable')} GROUP BY ALL"
    ).fetchall():
        totals["billable"][period] = (rows, cost)
    for period, group, rows, cost in con.sql(
        f"SELECT billing_period, billing_group, count(*), sum(line_item_unblended_cost) "
        f"FROM {table('proforma')} GROUP BY ALL"
    ).fetchall():
        totals["proforma"][(period, group)] = (rows, cost)
    for period, group, margin in con.sql(
        f"SELECT billing_period, billing_group, sum(margin) FROM {table('margin')} GROUP BY ALL"
    ).fetchall():
        totals["margin"][(period, group)] = margin
    con.close()
    return totals


def rerate_totals(summary: dict) -> dict:
    """The same figures from `rerate run --json`: control totals, and per group the rows
    rerate re-rated or passed plus its custom line items; margin is pro forma minus billable,
    both without AWS tax (the margin report's definition)."""
    totals = {"billable": {}, "proforma": {}, "margin": {}}
    for p in summary["periods"]:
        period = p["period"]
        control = p["control"]
        totals["billable"][period] = (
            control["billable_rows_written"],
            Decimal(control["billable_total"]),
        )
        custom_rows = defaultdict(int)
        for item in p["custom_line_items"]:
            custom_rows[item["billing_group"]] += 1
        for g in p["groups"]:
            reasons = g["by_reason"]
            shown = sum(
                t["rows"]
                for key, t in reasons.items()
                if key.startswith(("rerate:", "pass:"))
            )
            rows = shown + custom_rows[g["billing_group"]]
            if rows:
                totals["proforma"][(period, g["billing_group"])] = (
                    rows,
                    Decimal(g["proforma_cost"]),
                )
            tax = sum(
                (Decimal(t["billable_cost"]) for key, t in reasons.items() if key.endswith(":aws-tax")),
                Decimal(0),
            )
            # Passed tax is in pro forma at its billable value, and on neither side of margin.
            passed_tax = Decimal(reasons.get("pass:aws-tax", {}).get("billable_cost", 0))
            billable_before_tax = Decimal(g["billable_cost"]) - tax
            totals["margin"][(period, g["billing_group"])] = (
                Decimal(g["proforma_cost"]) - passed_tax - billable_before_tax
            )
        derived = sum(rows for (q, _), (rows, _) in totals["proforma"].items() if q == period)
        if derived != control["proforma_rows_written"]:
            raise ValueError(
                f"{period}: pro forma rows per group add up to {derived}, "
                f"rerate wrote {control['proforma_rows_written']}"
            )
    return totals


def differences(ours: dict, theirs: dict) -> list[str]:
    """Every figure that is not exactly equal, as readable lines."""
    lines = []
    for table in ("billable", "proforma", "margin"):
        for key in sorted(set(ours[table]) | set(theirs[table]), key=str):
            a, b = ours[table].get(key), theirs[table].get(key)
            if a != b:
                lines.append(f"{table} {key}: duckdb {a} != rerate {b}")
    return lines


def report(totals: dict) -> None:
    """Prints the job's figures, one line each."""
    for period, (rows, cost) in sorted(totals["billable"].items()):
        print(f"billable {period}: {rows} rows, {cost}")
    for (period, group), (rows, cost) in sorted(totals["proforma"].items()):
        print(f"proforma {period} {group}: {rows} rows, {cost}")
    for (period, group), margin in sorted(totals["margin"].items()):
        print(f"margin   {period} {group}: {margin}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=Path, help="CUR 2.0 export (folder holding data/)")
    parser.add_argument("--output", type=Path, required=True, help="output folder")
    parser.add_argument("--check-against", type=Path, metavar="SUMMARY_JSON",
                        help="`rerate run --json` output on the same input")
    parser.add_argument("--no-run", action="store_true", help="only check existing outputs")
    args = parser.parse_args()
    if not args.no_run:
        if args.input is None:
            parser.error("--input is required unless --no-run")
        run_job(args.input, args.output)
    if args.check_against is None:
        return 0
    ours = job_totals(args.output)
    diff = differences(ours, rerate_totals(json.loads(args.check_against.read_text())))
    if diff:
        print("DuckDB's outputs differ from rerate's:", *diff, sep="\n  ", file=sys.stderr)
        return 1
    report(ours)
    print("equal to rerate's summary, exactly")
    return 0


if __name__ == "__main__":
    sys.exit(main())
