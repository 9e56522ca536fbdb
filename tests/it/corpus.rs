//! The bad-input corpus: every case is generated here from the E1 scenario (a config and five
//! CUR rows), changed in one way, and run through the binary as a scheduler would. Each must
//! end with the exit code SPEC §2 gives, a message naming the file, column, key or value to
//! fix, no panic, and nothing written but the failed run's manifest.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, RecordBatch, StringArray};
use arrow::datatypes::{Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::support;

const SCENARIO: &str = "tests/scenarios/e1-rules-do-not-stack";
/// Where AWS Data Exports put November's files.
const FOLDER: &str = "data/BILLING_PERIOD=2025-11";

struct Case {
    name: &'static str,
    config: fn(&str) -> String,
    input: Input,
    exit: i32,
    /// Fragments the error message must contain.
    says: &'static [&'static str],
}

enum Input {
    /// The E1 rows, changed, as `FOLDER/part.parquet`.
    Rows(fn(&str) -> String),
    /// Files made from the E1 Parquet file at `FOLDER/part.parquet` (given the folder).
    Files(fn(&Path)),
}

fn same(text: &str) -> String {
    text.to_string()
}

fn rows_unchanged() -> Input {
    Input::Rows(same)
}

/// Sets `column` of the row with line item id `id`.
fn set(csv: &str, id: &str, column: &str, value: &str) -> String {
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let at = header.iter().position(|c| *c == column).unwrap();
    csv.lines()
        .map(|line| {
            let mut cells: Vec<&str> = line.split(',').collect();
            if cells[0] == id {
                cells[at] = value;
            }
            cells.join(",") + "\n"
        })
        .collect()
}

fn drop_column(csv: &str, column: &str) -> String {
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let at = header.iter().position(|c| *c == column).unwrap();
    csv.lines()
        .map(|line| {
            let mut cells: Vec<&str> = line.split(',').collect();
            cells.remove(at);
            cells.join(",") + "\n"
        })
        .collect()
}

/// A credential some cases put where it does not belong: it must never be printed.
const SECRET: &str = "s3cr3t";

const GROUP: &str = "[[billing-group]]\nname = \"acme\"\n";

fn cases() -> Vec<Case> {
    vec![
        // ---- configuration ----
        Case {
            name: "unknown key",
            config: |c| c.replace(GROUP, &format!("{GROUP}colour = \"red\"\n")),
            input: rows_unchanged(),
            exit: 1,
            says: &["billing.toml", "colour"],
        },
        Case {
            name: "typo in a plan name",
            config: |c| c.replace("pricing-plan = \"e1\"", "pricing-plan = \"e11\""),
            input: rows_unchanged(),
            exit: 1,
            says: &["billing.toml", "\"e11\""],
        },
        Case {
            name: "typo in a rule name",
            config: |c| c.replace("rules = [\"all-5-off\"", "rules = [\"all-5-of\""),
            input: rows_unchanged(),
            exit: 1,
            says: &["\"all-5-of\""],
        },
        Case {
            name: "two rules with one name",
            config: |c| {
                format!(
                    "{c}\n[[pricing-rule]]\nname = \"s3-10-off\"\nscope = \"global\"\n\
                     type = \"markup\"\npercent = 1\n"
                )
            },
            input: rows_unchanged(),
            exit: 1,
            says: &["\"s3-10-off\""],
        },
        Case {
            name: "two rules for one key in a plan",
            config: |c| {
                format!(
                    "{c}\n[[pricing-rule]]\nname = \"s3-20-off\"\nscope = \"service\"\n\
                     service = \"AmazonS3\"\ntype = \"discount\"\npercent = 20\n"
                )
                .replace(
                    "rules = [\"all-5-off\", \"s3-10-off\"]",
                    "rules = [\"all-5-off\", \"s3-10-off\", \"s3-20-off\"]",
                )
            },
            input: rows_unchanged(),
            exit: 1,
            says: &["s3-10-off", "s3-20-off", "AmazonS3"],
        },
        Case {
            name: "an account in two groups",
            config: |c| {
                let c = c.replace(
                    "payer-account-id = \"111111111111\"",
                    "accounts = [\"111111111111\"]",
                );
                format!(
                    "{c}\n[[billing-group]]\nname = \"other\"\naccounts = [\"111111111111\"]\n\
                     pricing-plan = \"e1\"\n"
                )
            },
            input: rows_unchanged(),
            exit: 1,
            says: &["111111111111", "acme", "other"],
        },
        Case {
            name: "two groups for one organization",
            config: |c| {
                format!(
                    "{c}\n[[billing-group]]\nname = \"other\"\npayer-account-id = \"111111111111\"\n\
                     pricing-plan = \"e1\"\n"
                )
            },
            input: rows_unchanged(),
            exit: 1,
            says: &["111111111111", "acme", "other"],
        },
        Case {
            name: "a group name that climbs out of the output",
            config: |c| c.replace("name = \"acme\"", "name = \"../x\""),
            input: rows_unchanged(),
            exit: 1,
            says: &["\"../x\"", "not a safe path segment"],
        },
        Case {
            name: "a group name with a slash",
            config: |c| c.replace("name = \"acme\"", "name = \"a/b\""),
            input: rows_unchanged(),
            exit: 1,
            says: &["\"a/b\""],
        },
        Case {
            name: "an empty group name",
            config: |c| c.replace("name = \"acme\"", "name = \"\""),
            input: rows_unchanged(),
            exit: 1,
            says: &["billing-group"],
        },
        Case {
            name: "a group name with a Cyrillic look-alike letter",
            config: |c| c.replace("name = \"acme\"", "name = \"\u{0430}cme\""),
            input: rows_unchanged(),
            exit: 1,
            says: &["\u{0430}cme"],
        },
        Case {
            name: "a discount above 100 %",
            config: |c| c.replace("percent = 10", "percent = 150"),
            input: rows_unchanged(),
            exit: 1,
            says: &["s3-10-off", "150"],
        },
        Case {
            name: "a negative percentage",
            config: |c| c.replace("percent = 5", "percent = -5"),
            input: rows_unchanged(),
            exit: 1,
            says: &["all-5-off", "-5"],
        },
        Case {
            name: "an invoice currency without an FX rate for the period",
            config: |c| c.replace(GROUP, &format!("{GROUP}currency = \"EUR\"\n")),
            input: rows_unchanged(),
            exit: 1,
            says: &["EUR", "2025-11", "fx"],
        },
        Case {
            name: "credentials in the storage endpoint",
            config: |c| {
                format!(
                    "[storage]\nendpoint = \"http://AKIAEXAMPLE:{SECRET}@127.0.0.1:9000\"\n\n{c}"
                )
            },
            input: rows_unchanged(),
            exit: 1,
            says: &["[storage] endpoint", "credentials"],
        },
        Case {
            name: "a memory limit that is not a size",
            config: |c| format!("[engine]\nmemory-limit = \"lots\"\n\n{c}"),
            input: rows_unchanged(),
            exit: 1,
            says: &["[engine] memory-limit", "\"lots\""],
        },
        // ---- input ----
        Case {
            name: "a missing required column",
            config: same,
            input: Input::Rows(|csv| drop_column(csv, "line_item_operation")),
            exit: 1,
            says: &["part.parquet", "line_item_operation"],
        },
        Case {
            name: "a column of the wrong type",
            config: same,
            input: Input::Files(|dir| {
                let values = BooleanArray::from(vec![true; 5]);
                replace_column(
                    &dir.join("part.parquet"),
                    "line_item_usage_amount",
                    Arc::new(values),
                );
            }),
            exit: 1,
            says: &["part.parquet", "line_item_usage_amount", "Boolean"],
        },
        Case {
            name: "a cost that is not a number",
            config: same,
            input: Input::Files(|dir| {
                // Costs as decimal strings are fine (some tools write them); this one is not.
                let values = StringArray::from(vec!["1000.00", "200 USD", "50.00", "-60.00", "25"]);
                replace_column(
                    &dir.join("part.parquet"),
                    "line_item_unblended_cost",
                    Arc::new(values),
                );
            }),
            exit: 1,
            says: &["part.parquet", "line_item_unblended_cost", "200 USD"],
        },
        Case {
            name: "an unknown line item type",
            config: same,
            input: Input::Rows(|csv| csv.replace(",Tax,", ",SurpriseCharge,")),
            exit: 1,
            says: &["part.parquet", "SurpriseCharge", "1 row"],
        },
        Case {
            // Regression: rows in no group were kept as `_unassigned` whatever their type.
            name: "an unknown line item type on an account in no group",
            config: same,
            input: Input::Rows(|csv| {
                let csv = set(csv, "e1-s3", "line_item_line_item_type", "SurpriseCharge");
                let csv = set(&csv, "e1-s3", "bill_payer_account_id", "999999999999");
                set(&csv, "e1-s3", "line_item_usage_account_id", "999999999999")
            }),
            exit: 1,
            says: &["part.parquet", "SurpriseCharge", "1 row"],
        },
        Case {
            name: "a line item without an id",
            config: same,
            input: Input::Rows(|csv| csv.replace("e1-cw,", ",")),
            exit: 1,
            says: &["part.parquet", "identity_line_item_id", "1 row"],
        },
        Case {
            name: "a line item without a billing period",
            config: same,
            input: Input::Rows(|csv| set(csv, "e1-s3", "bill_billing_period_start_date", "")),
            exit: 1,
            says: &["part.parquet", "bill_billing_period_start_date", "1 row"],
        },
        Case {
            // Regression: a period start outside the years 1000-9999 panicked.
            name: "a billing period start in the year 900",
            config: same,
            input: Input::Rows(|csv| {
                set(
                    csv,
                    "e1-s3",
                    "bill_billing_period_start_date",
                    "0900-11-01T00:00:00Z",
                )
            }),
            exit: 1,
            says: &[
                "part.parquet",
                "bill_billing_period_start_date",
                "1000 to 9999",
                "0900-11",
            ],
        },
        Case {
            name: "a line item without a usage account",
            config: same,
            input: Input::Rows(|csv| set(csv, "e1-s3", "line_item_usage_account_id", "")),
            exit: 1,
            says: &["part.parquet", "line_item_usage_account_id", "1 row"],
        },
        Case {
            name: "a line item without a cost",
            config: same,
            input: Input::Rows(|csv| set(csv, "e1-s3", "line_item_unblended_cost", "")),
            exit: 1,
            says: &["part.parquet", "line_item_unblended_cost", "1 row"],
        },
        Case {
            name: "a line item in another currency than the rest of its payer's bill",
            config: same,
            input: Input::Rows(|csv| set(csv, "e1-s3", "line_item_currency_code", "EUR")),
            exit: 1,
            says: &[
                "part.parquet",
                "several currencies",
                "line_item_currency_code",
                "EUR in 1 row",
            ],
        },
        Case {
            name: "the same line item twice",
            config: same,
            input: Input::Rows(|csv| {
                let dup = csv.lines().find(|l| l.starts_with("e1-ec2,")).unwrap();
                format!("{csv}{dup}\n")
            }),
            exit: 1,
            says: &["e1-ec2", "part.parquet"],
        },
        Case {
            name: "the same export file delivered twice",
            config: same,
            input: Input::Files(|dir| {
                std::fs::copy(dir.join("part.parquet"), dir.join("part-copy.parquet")).unwrap();
            }),
            exit: 1,
            says: &["part.parquet", "part-copy.parquet"],
        },
        Case {
            name: "a row of another period in a period folder",
            config: same,
            input: Input::Rows(|csv| {
                csv.replace(
                    "e1-tax,111111111111,111111111111,2025-11-01T00:00:00Z",
                    "e1-tax,111111111111,111111111111,2025-10-01T00:00:00Z",
                )
            }),
            exit: 1,
            says: &[
                "1 row(s) of billing period 2025-10 are in a 2025-11 folder",
                "part.parquet",
            ],
        },
        Case {
            name: "an empty input folder",
            config: same,
            input: Input::Files(|dir| std::fs::remove_file(dir.join("part.parquet")).unwrap()),
            exit: 1,
            says: &["no CUR Parquet files"],
        },
        Case {
            name: "a truncated Parquet file",
            config: same,
            input: Input::Files(|dir| {
                let file = dir.join("part.parquet");
                let bytes = std::fs::read(&file).unwrap();
                std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
            }),
            exit: 1,
            says: &["part.parquet", "not a readable Parquet file"],
        },
        Case {
            name: "a file that is not Parquet at all",
            config: same,
            input: Input::Files(|dir| {
                std::fs::write(dir.join("notes.parquet"), "id,cost\n1,2\n").unwrap();
            }),
            exit: 1,
            says: &["notes.parquet", "not a readable Parquet file"],
        },
        Case {
            name: "a cost too large for exact decimal money",
            config: same,
            input: Input::Rows(|csv| set(csv, "e1-s3", "line_item_unblended_cost", "1e30")),
            exit: 1,
            says: &["part.parquet", "line_item_unblended_cost"],
        },
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn every_bad_input_is_answered_and_nothing_is_written() {
    let mut failures = Vec::new();
    for case in cases() {
        if let Err(why) = check(&case).await {
            failures.push(format!("{}: {why}", case.name));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

async fn check(case: &Case) -> Result<(), String> {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("billing.toml");
    let base =
        std::fs::read_to_string(support::repo().join(SCENARIO).join("billing.toml")).unwrap();
    std::fs::write(&config, (case.config)(&base)).unwrap();
    let cur = tmp.path().join("cur");
    let folder = cur.join(FOLDER);
    let csv = tmp.path().join("input.csv");
    match &case.input {
        Input::Rows(change) => std::fs::write(&csv, change(&e1_csv())).unwrap(),
        Input::Files(_) => std::fs::write(&csv, e1_csv()).unwrap(),
    }
    support::csv_to_cur_parquet(&csv, &folder.join("part.parquet")).await;
    if let Input::Files(make) = &case.input {
        make(&folder);
    }
    let out = tmp.path().join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_rerate"))
        .args(["run", "--config"])
        .arg(&config)
        .arg("--input")
        .arg(&cur)
        .arg("--output")
        .arg(&out)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    let mut problems = Vec::new();
    if o.status.code() != Some(case.exit) {
        problems.push(format!(
            "exit code {:?}, expected {}",
            o.status.code(),
            case.exit
        ));
    }
    if err.contains("panicked") {
        problems.push("panicked".to_string());
    }
    if err.contains(SECRET) {
        problems.push("printed a credential".to_string());
    }
    for fragment in case.says {
        if !err.contains(fragment) {
            problems.push(format!("the message does not say {fragment:?}"));
        }
    }
    let written = written(&out);
    if !written.is_empty() {
        problems.push(format!("wrote {written:?}"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}\n  stderr: {}", problems.join("; "), err.trim()))
    }
}

fn e1_csv() -> String {
    std::fs::read_to_string(support::repo().join(SCENARIO).join("input.csv")).unwrap()
}

/// Everything under `out` but the failed run's manifest (kept for audit).
fn written(out: &Path) -> Vec<PathBuf> {
    let runs = out.join("runs");
    support::files_under(out)
        .into_iter()
        .filter(|f| !f.starts_with(&runs))
        .collect()
}

/// Rewrites `file` with `column` replaced by `values` (of any type).
fn replace_column(file: &Path, column: &str, values: ArrayRef) {
    rewrite(file, |batch| {
        let at = batch.schema().index_of(column).unwrap();
        let mut fields: Vec<Field> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields[at] = Field::new(column, values.data_type().clone(), true);
        let mut columns = batch.columns().to_vec();
        columns[at] = Arc::clone(&values);
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
    });
}

fn rewrite(file: &Path, change: impl Fn(&RecordBatch) -> RecordBatch) {
    let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(file).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = reader.map(|b| change(&b.unwrap())).collect();
    let mut writer = ArrowWriter::try_new(
        std::fs::File::create(file).unwrap(),
        batches[0].schema(),
        None,
    )
    .unwrap();
    for b in &batches {
        writer.write(b).unwrap();
    }
    writer.close().unwrap();
}
