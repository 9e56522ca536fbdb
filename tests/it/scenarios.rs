//! Scenario tests as data: each `tests/scenarios/<name>/` holds a `billing.toml`, an
//! `input.csv` of CUR rows and an `expected.toml` of SQL checks over the outputs (`billable`,
//! `proforma`, `margin`, `invoice_lines`), JSON-pointer checks over the run summary, and checks
//! over written files (a JSON pointer into an invoice, or text an HTML invoice contains or
//! lacks). A new
//! billing case needs no new Rust. Every scenario also proves its accounting identities and
//! passes the leak audit (`leak::audit`).

use std::path::Path;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::Deserialize;

use crate::support;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    #[serde(default)]
    check: Vec<Check>,
    #[serde(default)]
    summary: Vec<SummaryCheck>,
    #[serde(default)]
    file: Vec<FileCheck>,
    /// The run must fail with this text in its error, and this exit code.
    error: Option<String>,
    exit_code: Option<i32>,
    /// Nothing may have been written for the failed run (no table, invoice or export).
    #[serde(default)]
    no_output: bool,
    /// Run with `--strict`.
    #[serde(default)]
    strict: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Check {
    name: String,
    sql: String,
    rows: Vec<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SummaryCheck {
    pointer: String,
    equals: String,
}

/// A file under the output: `pointer` into it as JSON equals `equals`, or it `contains` a text,
/// or it `lacks` one.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCheck {
    path: String,
    pointer: Option<String>,
    equals: Option<String>,
    contains: Option<String>,
    lacks: Option<String>,
}

#[tokio::test(flavor = "multi_thread")]
async fn every_scenario_reproduces() {
    let root = support::repo().join("tests/scenarios");
    let mut names: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    names.sort();
    assert!(
        names.len() >= 5,
        "expected the SPEC §9 scenarios under {}",
        root.display()
    );
    let mut failures = Vec::new();
    for dir in &names {
        if let Err(msg) = scenario(dir).await {
            failures.push(format!(
                "{}: {msg}",
                dir.file_name().unwrap().to_string_lossy()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} scenario(s) failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

async fn scenario(dir: &Path) -> Result<(), String> {
    let expected: Expected =
        toml::from_str(&std::fs::read_to_string(dir.join("expected.toml")).unwrap())
            .map_err(|e| e.to_string())?;
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("cur");
    support::csv_to_cur_parquet(
        &dir.join("input.csv"),
        &input.join("data/part-00001.parquet"),
    )
    .await;
    let output = tmp.path().join("out");
    let result =
        support::run_with(&dir.join("billing.toml"), &input, &output, expected.strict).await;

    let summary = match (result, &expected.error) {
        (Ok(_), Some(err)) => {
            return Err(format!(
                "expected the run to fail with {err:?}, it succeeded"
            ));
        }
        (Err(e), Some(err)) => {
            let text = rerate::error_chain(&e);
            if !text.contains(err.as_str()) {
                return Err(format!("error {text:?} does not contain {err:?}"));
            }
            if let Some(code) = expected.exit_code
                && e.exit_code() != code
            {
                return Err(format!(
                    "exit code {} instead of {code} for {text}",
                    e.exit_code()
                ));
            }
            for dir in support::TABLES.iter().chain(&["invoices", "exports"]) {
                if expected.no_output && output.join(dir).exists() {
                    return Err(format!("the failed run wrote {dir}/"));
                }
            }
            return Ok(());
        }
        (Err(e), None) => return Err(format!("run failed: {}", rerate::error_chain(&e))),
        (Ok(s), None) => serde_json::to_value(&s).unwrap(),
    };

    let mut problems = Vec::new();
    for s in &expected.summary {
        let found = summary
            .pointer(&s.pointer)
            .map(|v| v.to_string().trim_matches('"').to_string());
        if !found.as_deref().is_some_and(|f| same_value(f, &s.equals)) {
            problems.push(format!(
                "summary {}: expected {}, found {found:?}",
                s.pointer, s.equals
            ));
        }
    }
    for f in &expected.file {
        if let Err(e) = file_check(&output, f) {
            problems.push(format!("file {}: {e}", f.path));
        }
    }
    let ctx = support::outputs(&output).await;
    problems.extend(accounting_identities(&dir.join("input.csv"), &summary, &ctx).await);
    problems.extend(crate::leak::audit(&output, &ctx).await);
    for c in &expected.check {
        let rows = support::query(&ctx, &c.sql).await;
        if rows != c.rows {
            problems.push(format!(
                "check {:?}:\n  expected {:?}\n  found    {:?}",
                c.name, c.rows, rows
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// Every input row went somewhere and nothing was lost, checked against the input file itself:
/// input rows = Σ billable rows = Σ rows per group = Σ rows per reason, input total = Σ billable
/// cost, and the pro forma table holds exactly re-rated + passed + custom.
async fn accounting_identities(
    csv: &Path,
    summary: &serde_json::Value,
    ctx: &datafusion::prelude::SessionContext,
) -> Vec<String> {
    let text = std::fs::read_to_string(csv).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let cost_at = header
        .iter()
        .position(|c| *c == "line_item_unblended_cost")
        .unwrap();
    let (mut input_rows, mut input_total) = (0u64, Decimal::ZERO);
    for line in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        input_rows += 1;
        input_total += Decimal::from_str(line.split(',').nth(cost_at).unwrap()).unwrap();
    }
    let dec = |v: &serde_json::Value| Decimal::from_str(v.as_str().unwrap()).unwrap();
    let one = |sql: &str| {
        let sql = sql.to_string();
        async move { support::query(ctx, &sql).await[0][0].clone() }
    };
    let billable_rows: u64 = one("SELECT COUNT(*) FROM billable").await.parse().unwrap();
    let billable_total =
        Decimal::from_str(&one("SELECT SUM(line_item_unblended_cost) FROM billable").await)
            .unwrap();
    let proforma_total = Decimal::from_str(
        &one("SELECT COALESCE(SUM(line_item_unblended_cost), 0) FROM proforma").await,
    )
    .unwrap();

    let mut problems = Vec::new();
    // Decimals compare by value (1.50 = 1.5); row counts are compared as decimals too.
    let mut check = |what: &str, left: Decimal, right: Decimal| {
        if left != right {
            problems.push(format!("identity {what}: {left} != {right}"));
        }
    };
    let periods = summary["periods"].as_array().unwrap();
    let summed =
        |f: &dyn Fn(&serde_json::Value) -> Decimal| -> Decimal { periods.iter().map(f).sum() };
    let rows = |v: &serde_json::Value| Decimal::from(v.as_u64().unwrap());
    let input_rows = Decimal::from(input_rows);
    check(
        "input rows = summary input rows",
        input_rows,
        summed(&|p| rows(&p["input_rows"])),
    );
    check(
        "input rows = billable rows",
        input_rows,
        billable_rows.into(),
    );
    check("input total = billable total", input_total, billable_total);
    check(
        "input total = summary input cost",
        input_total,
        summed(&|p| dec(&p["input_cost"])),
    );
    let groups = periods.iter().flat_map(|p| p["groups"].as_array().unwrap());
    let (mut group_rows, mut reason_rows, mut reason_total) =
        (Decimal::ZERO, Decimal::ZERO, Decimal::ZERO);
    for g in groups {
        group_rows += rows(&g["rows"]);
        for tally in g["by_reason"].as_object().unwrap().values() {
            reason_rows += rows(&tally["rows"]);
            reason_total += dec(&tally["billable_cost"]);
        }
    }
    check("input rows = Σ group rows", input_rows, group_rows);
    check("input rows = Σ rows per reason", input_rows, reason_rows);
    check(
        "input total = Σ billable per reason",
        input_total,
        reason_total,
    );
    check(
        "pro forma table = re-rated + passed + custom",
        proforma_total,
        summed(&|p| {
            let c = &p["control"];
            dec(&c["rerated_total"]) + dec(&c["passed_total"]) + dec(&c["custom_total"])
        }),
    );
    problems
}

fn file_check(output: &Path, f: &FileCheck) -> Result<(), String> {
    let text = std::fs::read_to_string(output.join(&f.path)).map_err(|e| e.to_string())?;
    if let Some(needle) = &f.contains
        && !text.contains(needle.as_str())
    {
        return Err(format!("does not contain {needle:?}"));
    }
    if let Some(needle) = &f.lacks
        && text.contains(needle.as_str())
    {
        return Err(format!("contains {needle:?}"));
    }
    if let Some(pointer) = &f.pointer {
        let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        let found = json
            .pointer(pointer)
            .map(|v| v.to_string().trim_matches('"').to_string());
        let equals = f.equals.as_deref().ok_or("a pointer needs `equals`")?;
        // Invoice amounts are compared as text: "874.95" is not "874.950".
        if found.as_deref() != Some(equals) {
            return Err(format!("{pointer}: expected {equals}, found {found:?}"));
        }
    }
    Ok(())
}

/// Equal as text, or as exact decimals ("1177.5" == "1177.5000000000").
fn same_value(found: &str, expected: &str) -> bool {
    found == expected
        || matches!((Decimal::from_str(found), Decimal::from_str(expected)), (Ok(a), Ok(b)) if a == b)
}
