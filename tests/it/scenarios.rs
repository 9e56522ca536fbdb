//! Scenario tests as data: each `tests/scenarios/<name>/` holds a `billing.toml`, an
//! `input.csv` of CUR rows and an `expected.toml` of SQL checks over the outputs (`billable`,
//! `proforma`, `margin`) and JSON-pointer checks over the run summary. A new billing case needs
//! no new Rust.

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
    /// The run must fail with this text in its error, and this exit code.
    error: Option<String>,
    exit_code: Option<i32>,
    /// Nothing may have been written for the failed run (no table under the output).
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
            for table in ["billable", "proforma", "margin"] {
                if expected.no_output && output.join(table).exists() {
                    return Err(format!("the failed run wrote {table}/"));
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
    let ctx = support::outputs(&output).await;
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

/// Equal as text, or as exact decimals ("1177.5" == "1177.5000000000").
fn same_value(found: &str, expected: &str) -> bool {
    found == expected
        || matches!((Decimal::from_str(found), Decimal::from_str(expected)), (Ok(a), Ok(b)) if a == b)
}
