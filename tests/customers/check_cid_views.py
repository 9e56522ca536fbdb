"""AWS Cloud Intelligence Dashboards' CUR 2.0 views, run in DuckDB over each customer export:
every view must build and run on the export (every CUR 2.0 column it reads exists), and the
views that total the cost must total the export's.

    check_cid_views.py SUMMARY_JSON

The views' Athena SQL is read from the installed `cid-cmd` package (third-party code: never
copied into this repository). Run with the interpreter of a venv that has cid-cmd and duckdb.
The changes DuckDB needs are mechanical, and all here:
- the templates' database, table and tag parameters are filled as cid-cmd fills them without
  tags selected (`'{}'`); the account views the trends read (`aws_accounts` and the views on
  it) read an account list taken from the export itself, as a customer without an AWS
  Organizations export has;
- Presto functions DuckDB lacks are macros (`approx_distinct`, `from_iso8601_timestamp`,
  `date`); Presto's `VALUES ROW (…)` is `VALUES (…)`; `year` and `month` as bare column aliases
  are quoted (keywords in DuckDB);
- `current_timestamp`, `current_date` and `now()` become the first day after the export's
  period, so the views' "last N months" windows hold the period whatever today is.
"""

import json
import re
import sys
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlparse

import cid
import duckdb

QUERIES = Path(cid.__file__).parent / "builtin" / "core" / "data" / "queries"
# Views over CUR 2.0 (those whose template reads ${cur2_table_name}), by folder.
FOLDERS = ["cid", "cudos", "kpi", "trends"]
# Views whose cost column totals the export: the view, its cost column, the export's rows it
# leaves out, and whether it rounds each of its rows to the cent.
TOTALS = {
    "summary_view": ("unblended_cost", "coalesce(line_item_operation, '') IN ('EKSPod-EC2', 'ECSTask-EC2')", False),
    "monthly_bill_by_account": ("unblended_cost", "false", True),
}

MACROS = """
CREATE OR REPLACE MACRO approx_distinct(x) AS approx_count_distinct(x);
CREATE OR REPLACE MACRO from_iso8601_timestamp(s) AS CAST(s AS TIMESTAMPTZ);
CREATE OR REPLACE MACRO "date"(x) AS CAST(x AS DATE);
"""

# The views others read, first: (file, its view name when the template names it).
DEPENDENCIES = [
    ("shared/aws_accounts.sql", None),
    ("shared/payer_account_name_map.sql", None),
    ("shared/aws_regions.sql", None),
    ("shared/aws_service_category_map.sql", None),
    ("kpi/first_kpi_instance_mapping_view.sql", None),
]

PARAMETERS = {
    "cur2_database": "cid", "cur2_table_name": "cur2",
    "cur_database": "cid", "cur_table_name": "cur2",
    "cur_tags_json": "'{}'",
    # The account list aws_accounts joins: the export's own accounts (no e-mail known).
    "metadata_database_name": "cid", "metadata_table_name": "accounts",
    "account_id": "id", "account_name": "name",
}


def views():
    for folder in FOLDERS:
        for sql in sorted((QUERIES / folder).glob("*.sql")):
            text = sql.read_text()
            if "${cur2_table_name}" in text:
                yield f"{folder}/{sql.stem}", text


def for_duckdb(text: str, now: str) -> str:
    for name, value in PARAMETERS.items():
        text = text.replace("${" + name + "}", value)
    if "${" in text:
        raise SystemExit(f"a template parameter is not filled: {text[:200]!r}")
    text = re.sub(r'"?\bnow"?\(\)', f"TIMESTAMP '{now}'", text, flags=re.I)
    text = re.sub(r"\bcurrent_timestamp\b", f"TIMESTAMP '{now}'", text, flags=re.I)
    text = re.sub(r"\bcurrent_date\b", f"DATE '{now}'", text, flags=re.I)
    text = re.sub(r"\bROW\s*\(", "(", text)
    text = re.sub(r"(\)\s+)(year|month)\b(?=\s*(,|\n|FROM))", r'\1"\2"', text, flags=re.I)
    return text


def view_name(sql: str) -> str:
    m = re.search(r'CREATE\s+OR\s+REPLACE\s+VIEW\s+"?([A-Za-z0-9_]+)"?', sql, re.I)
    if not m:
        raise SystemExit(f"no view name in {sql[:80]!r}")
    return m.group(1)


def check_export(data_dir: Path, period: str) -> list:
    year, month = map(int, period.split("-"))
    now = f"{year + month // 12}-{month % 12 + 1:02d}-01"
    con = duckdb.connect()
    # Athena's clock is UTC: date_trunc over timestamps with a zone must not follow the machine's.
    con.execute("SET TimeZone = 'UTC'")
    con.execute(MACROS)
    con.execute("CREATE SCHEMA cid")
    con.execute(
        f"CREATE VIEW cid.cur2 AS SELECT * FROM read_parquet('{data_dir}/**/*.parquet', "
        "hive_partitioning = true)")
    # Athena's table has the BILLING_PERIOD partition as billing_period: DuckDB's names are
    # case-insensitive, so the hive column serves.
    con.execute(
        "CREATE VIEW cid.accounts AS SELECT line_item_usage_account_id id, "
        "max(line_item_usage_account_name) name, CAST(NULL AS VARCHAR) email FROM cid.cur2 GROUP BY 1")
    for file, _ in DEPENDENCIES:
        con.execute(for_duckdb((QUERIES / file).read_text(), now))
    export_total = Decimal(str(con.execute("SELECT sum(line_item_unblended_cost) FROM cid.cur2").fetchone()[0] or 0))
    problems = []
    for name, text in views():
        sql = for_duckdb(text, now)
        try:
            con.execute(sql)
            view = view_name(sql)
            rows = con.execute(f'SELECT count(*) FROM "{view}"').fetchone()[0]
        except duckdb.Error as e:
            problems.append(f"{data_dir}: {name}: {str(e).splitlines()[0]}")
            continue
        line = f"  {name}: {rows} rows"
        if view in TOTALS:
            column, left_out, rounds = TOTALS[view]
            total = Decimal(str(con.execute(f'SELECT sum("{column}") FROM "{view}"').fetchone()[0] or 0))
            expected = Decimal(str(con.execute(
                f"SELECT sum(line_item_unblended_cost) FROM cid.cur2 WHERE NOT ({left_out})").fetchone()[0] or 0))
            # Both sides add the same doubles in different orders: equal to a millionth, or to
            # half a cent per row of a view that rounds its rows.
            tolerance = Decimal("0.005") * rows if rounds else Decimal("0.000001")
            if abs(total - expected) > tolerance:
                problems.append(f"{data_dir}: {name}: Σ {column} {total} != export {expected}")
            line += f", Σ {column} {total:.6f} {'≈' if rounds else '='} export's {expected:.6f} (all rows {export_total:.6f})"
        print(line)
    return problems


def main() -> None:
    summary = json.loads(Path(sys.argv[1]).read_text())
    problems = []
    ran = 0
    for period in summary["periods"]:
        for export in period["exports"]:
            data_dir = Path(urlparse(export["files"][0]).path).parent.parent
            print(f"{period['period']} {export['billing_group']}: {data_dir}")
            problems += check_export(data_dir, period["period"])
            ran += 1
    if problems:
        sys.exit("CID views failed:\n  " + "\n  ".join(problems))
    print(f"every CID CUR 2.0 view ran on {ran} export(s)")


if __name__ == "__main__":
    main()
