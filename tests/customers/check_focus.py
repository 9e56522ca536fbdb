"""Every FOCUS export of a run, checked by the FinOps Foundation's focus-validator (FOCUS 1.2),
and its money against the invoice: Σ BilledCost per group equals the invoice subtotal before
rounding (Σ of the lines' bill-currency amounts × the FX rate), exactly; the focus/ table holds
the same rows as the exports.

    check_focus.py OUTPUT SUMMARY_JSON VALIDATOR_PYTHON

VALIDATOR_PYTHON is the interpreter of a venv with focus-validator (it needs Python >= 3.12 and
pyarrow 19.0.1, so it cannot share the readers' venv). The validator opens its currency table
relative to the working directory, so it runs from its own site-packages folder.

A failed rule fails the check, except one leg of an OR whose OR passed: the validator reports
both legs of "InvoiceId MUST be null when …, MUST NOT be null when …" and one of them always
fails. Every excused rule is printed with the OR that holds.

Two things the validator passes without checking are checked here on every row: each value of a
column with allowed values is one of them (the validator is satisfied by one allowed value in
the column), and ListUnitPrice × PricingQuantity = ListCost (its rule applies only when
ChargeClass is not null). ContractedUnitPrice is pro forma's 10-decimal rate, which for tiny
re-rated per-request prices misses ContractedCost by up to 1e-4 of it: not checked (README).
"""

import json
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlparse

import pyarrow.parquet as pq
from deltalake import DeltaTable

# What rerate's FOCUS data supports (focus-validator --show-applicability-criteria). Not:
# capacity reservations and commitment discounts (pro forma never describes the reseller's
# commitments), virtual currencies, several sub account or billing account types.
CRITERIA = ",".join([
    "ACCOUNT_NAMING_SUPPORTED",
    "AVAILABILITY_ZONE_SUPPORTED",
    "MULTIPLE_PRICING_CATEGORIES_SUPPORTED",
    "NEGOTIATED_PRICING_SUPPORTED",
    "PUBLIC_PRICE_LIST_SUPPORTED",
    "USAGE_MEASUREMENT_SUPPORTED",
    "UNIT_PRICING_SUPPORTED",
    "SUB_ACCOUNT_SUPPORTED",
    "BILLING_BASED_ON_PROVISIONED_RESOURCES_SUPPORTED",
    "RESOURCE_TYPE_ASSIGNMENT_SUPPORTED",
    "PRICING_BILLING_CURRENCY_DIFFERENCES_SUPPORTED",
    "REGION_SUPPORTED",
    "TAGGING_SUPPORTED",
])


def local(url: str) -> Path:
    return Path(urlparse(url).path)


def validator_home(python: str) -> Path:
    out = subprocess.run(
        [python, "-c", "import focus_validator, os; print(os.path.dirname(focus_validator.__file__))"],
        check=True, capture_output=True, text=True,
    )
    return Path(out.stdout.strip())


def or_parents(model: dict) -> dict:
    """rule -> the OR rules it is a leg of."""
    parents: dict = {}
    for rule_id, rule in model["ModelRules"].items():
        req = rule.get("ValidationCriteria", {}).get("Requirement", {})
        if req.get("CheckFunction") == "OR":
            for item in req.get("Items", []):
                if item.get("CheckFunction") == "CheckModelRule":
                    parents.setdefault(item["ModelRuleId"], []).append(rule_id)
    return parents


def validate(python: str, home: Path, parquet: Path, parents: dict) -> list:
    """The failed rules of one file that no passing OR excuses."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.xml"
        run = subprocess.run(
            [python, "-m", "focus_validator.main", "--data-file", str(parquet),
             "--validate-version", "1.2", "--block-download",
             "--applicability-criteria", CRITERIA,
             "--output-type", "unittest", "--output-destination", str(report)],
            cwd=home.parent, capture_output=True, text=True, timeout=600,
        )
        if run.returncode != 0 or not report.exists():
            sys.exit(f"focus-validator did not run on {parquet}:\n{run.stdout}\n{run.stderr}")
        root = ET.parse(report).getroot()
    total = int(root.get("tests"))
    failed = {
        case.get("name").split(" ::")[0]
        for case in root.iter("testcase")
        if case.find("failure") is not None or case.find("error") is not None
    }
    unexcused = []
    for rule in sorted(failed):
        holding = [p for p in parents.get(rule, []) if p not in failed]
        if holding:
            print(f"  {rule}: one leg of {', '.join(holding)}, which passes")
        else:
            unexcused.append(rule)
    print(f"  {parquet.name}: {total} rules, {len(failed)} failed, {len(unexcused)} not excused")
    return unexcused


def allowed_values(model: dict) -> dict:
    """column -> the values its "one of the allowed values" rule lists."""
    out: dict = {}
    for rule in model["ModelRules"].values():
        req = rule.get("ValidationCriteria", {}).get("Requirement", {})
        items = req.get("Items", [])
        if req.get("CheckFunction") == "OR" and items and all(
                i.get("CheckFunction") == "CheckValue" for i in items):
            out.setdefault(items[0]["ColumnName"], set()).update(i["Value"] for i in items)
    return out


def row_checks(path: Path, allowed: dict) -> list:
    """What the validator lets through, row by row."""
    table = pq.read_table(path)
    problems = []
    for column, values in allowed.items():
        if column in table.column_names:
            found = {v for v in table.column(column).to_pylist() if v is not None}
            if found - values:
                problems.append(f"{column}: {sorted(found - values)} not allowed")
    tolerance = Decimal("1e-9")
    rows = table.select(["ChargeCategory", "PricingQuantity", "ContractedUnitPrice",
                         "ContractedCost", "ListUnitPrice", "ListCost"]).to_pylist()
    for price, cost in (("ListUnitPrice", "ListCost"),):
        off = [r for r in rows if r[price] is not None and r["PricingQuantity"] is not None
               and abs(r[price] * r["PricingQuantity"] - r[cost]) > tolerance * max(abs(r[cost]), 1)]
        if off:
            problems.append(f"{len(off)} row(s) where {price} × PricingQuantity != {cost}, e.g. {off[0]}")
    negative = [r for r in rows if (r["ContractedUnitPrice"] or 0) < 0 or (r["ListUnitPrice"] or 0) < 0]
    if negative:
        problems.append(f"{len(negative)} row(s) with a negative unit price")
    return problems


def in_force(invoices: list) -> dict:
    """group -> the invoice (JSON) that charges the period now: the last one not a credit note."""
    out = {}
    for ref in invoices:
        if ref["kind"] == "invoice":
            out[ref["billing_group"]] = json.loads(local(ref["json"]).read_text())
    return out


def billed(paths: list) -> tuple:
    rows, total = 0, Decimal(0)
    for p in paths:
        t = pq.read_table(p, columns=["BilledCost"])
        rows += t.num_rows
        total += sum((v for v in t.column("BilledCost").to_pylist() if v is not None), Decimal(0))
    return rows, total


def main() -> None:
    output, summary_path, python = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    summary = json.loads(summary_path.read_text())
    home = validator_home(python)
    model = json.loads((home / "rules" / "model-1.2.0.1.json").read_text())
    parents = or_parents(model)
    allowed = allowed_values(model)
    focus = DeltaTable(str(output / "focus"))
    problems = []
    for period in summary["periods"]:
        p = period["period"]
        invoices = in_force(period["invoices"])
        for export in period["focus_exports"]:
            group = export["billing_group"]
            files = [local(f) for f in export["files"]]
            print(f"{p} {group}: {export['rows']} FOCUS rows")
            for f in files:
                if export["rows"] == 0:
                    # The validator fails an empty dataset on every allowed-values rule.
                    print(f"  {f.name}: no rows, nothing to validate")
                    continue
                problems += [f"{p} {group} {f.name}: {r}" for r in validate(python, home, f, parents)]
                problems += [f"{p} {group} {f.name}: {r}" for r in row_checks(f, allowed)]
            rows, total = billed(files)
            inv = invoices.get(group)
            if inv is None:
                if rows:
                    problems.append(f"{p} {group}: {rows} FOCUS rows but no invoice")
                continue
            fx = Decimal(inv["fx_rate"])
            expected = sum((Decimal(l["bill_amount"]) * fx for l in inv["lines"]), Decimal(0))
            if total != expected:
                problems.append(f"{p} {group}: Σ BilledCost {total} != invoice {inv['number']} "
                                f"subtotal before rounding {expected}")
            else:
                print(f"  Σ BilledCost = {total} {inv['currency']} = {inv['number']}'s subtotal "
                      f"before rounding (printed {inv['subtotal']})")
            partition = f"billing_period={p}/billing_group={group}/"
            table_files = [
                local(u) if u.startswith("file:") else Path(u)
                for u in focus.file_uris() if partition in u
            ]
            if billed(table_files) != (rows, total):
                problems.append(f"{p} {group}: focus/ does not hold the export's rows")
    if problems:
        sys.exit("FOCUS check failed:\n  " + "\n  ".join(problems))
    print("FOCUS exports valid; BilledCost matches every invoice")


if __name__ == "__main__":
    main()
