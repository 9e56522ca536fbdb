//! Which files a run reads (SPEC §3 "Which files"): the newest AWS manifest of each export and
//! period names the delivery; files it leaves out are ignored and named in the run summary;
//! without a manifest every Parquet file is read. Layouts are built as AWS writes them: Data
//! Exports with "overwrite" and with "create new export version", and legacy CUR with its
//! `assemblyId` (on the AWS-written workshop files).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::support;

const CONFIG: &str = r#"
[[billing-group]]
name = "acme"
payer-account-id = "111111111111"
pricing-plan = "list"

[[pricing-plan]]
name = "list"
rules = []
"#;

/// The usage columns every test file here has.
pub const HEADER: &str = "identity_line_item_id,bill_payer_account_id,line_item_usage_account_id,\
bill_billing_period_start_date,line_item_usage_start_date,line_item_usage_end_date,\
line_item_line_item_type,line_item_product_code,line_item_usage_type,line_item_operation,\
line_item_usage_amount,line_item_unblended_rate,line_item_unblended_cost,line_item_currency_code";

/// A Parquet file of usage rows `(line item id, cost)` in November 2025.
async fn cur_file(path: &Path, rows: &[(&str, &str)]) {
    cur_file_of("2025-11", path, rows).await
}

/// A Parquet file of usage rows `(line item id, cost)` of one account in `period`.
pub async fn cur_file_of(period: &str, path: &Path, rows: &[(&str, &str)]) {
    let mut csv = format!("{HEADER}\n");
    for (id, cost) in rows {
        csv.push_str(&format!(
            "{id},111111111111,222222222222,{period}-01T00:00:00Z,{period}-02T00:00:00Z,\
             {period}-02T01:00:00Z,Usage,AmazonEC2,USE1-BoxUsage:t3.micro,RunInstances,1,\
             {cost},{cost},USD\n"
        ));
    }
    let tmp = tempfile::tempdir().unwrap();
    let csv_path = tmp.path().join("rows.csv");
    std::fs::write(&csv_path, csv).unwrap();
    support::csv_to_cur_parquet(&csv_path, path).await;
}

/// A Data Exports manifest for November 2025, as AWS writes it: full `s3://` URIs of the
/// export's own bucket (not where the files are read from), written `age` ago.
fn data_exports_manifest(path: &Path, export: &str, execution: &str, keys: &[&str], age: u64) {
    let files: Vec<String> = keys
        .iter()
        .map(|k| format!("s3://cur-bucket/exports/{k}"))
        .collect();
    let body = serde_json::json!({
        "version": "1.0",
        "exportArn": format!("arn:aws:bcm-data-exports:us-east-1:111111111111:export/{export}-5e1c"),
        "exportName": export,
        "executionId": execution,
        "billingPeriod": {"start": "2025-11-01T00:00:00.000Z", "end": "2025-12-01T00:00:00.000Z"},
        "dataFiles": files,
        "columns": [{"name": "identity_line_item_id", "type": "string"}],
    });
    write_aged(path, &serde_json::to_vec_pretty(&body).unwrap(), age);
}

fn write_aged(path: &Path, body: &[u8], age_secs: u64) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, body).unwrap();
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::now() - Duration::from_secs(age_secs))
        .unwrap();
}

pub fn config(dir: &Path) -> PathBuf {
    let path = dir.join("billing.toml");
    std::fs::write(&path, CONFIG).unwrap();
    path
}

async fn billed(config: &Path, input: &Path, out: &Path) -> (u64, String, Vec<(String, String)>) {
    let summary = support::run(config, input, out)
        .await
        .unwrap_or_else(|e| panic!("{}", rerate::error_chain(&e)));
    let p = &summary.periods[0];
    let ignored = summary
        .input
        .ignored
        .iter()
        .map(|f| (f.url.clone(), f.reason.clone()))
        .collect();
    (p.input_rows, p.control.billable_total.to_string(), ignored)
}

/// An "overwrite" Data Exports delivery of November 2025 under `input`: the manifest lists
/// `acme-cur-00001` (two rows, 3.75 USD); `acme-cur-00002`, left from an earlier and larger
/// delivery, holds another line item (100 USD) that would be billed on top without it.
pub async fn overwrite_layout(input: &Path) {
    let data = input.join("acme-cur/data/BILLING_PERIOD=2025-11");
    cur_file(
        &data.join("acme-cur-00001.snappy.parquet"),
        &[("a", "1.25"), ("b", "2.5")],
    )
    .await;
    cur_file(
        &data.join("acme-cur-00002.snappy.parquet"),
        &[("old", "100")],
    )
    .await;
    data_exports_manifest(
        &input.join("acme-cur/metadata/BILLING_PERIOD=2025-11/acme-cur-Manifest.json"),
        "acme-cur",
        "exec-1",
        &["acme-cur/data/BILLING_PERIOD=2025-11/acme-cur-00001.snappy.parquet"],
        0,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn overwrite_delivery_reads_what_the_manifest_lists_and_names_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let config = config(tmp.path());
    let input = tmp.path().join("in");
    overwrite_layout(&input).await;
    let data = input.join("acme-cur/data/BILLING_PERIOD=2025-11");
    let (rows, total, ignored) = billed(&config, &input, &tmp.path().join("out")).await;
    assert_eq!((rows, total.as_str()), (2, "3.7500000000"));
    assert_eq!(ignored.len(), 1, "{ignored:?}");
    assert!(
        ignored[0].0.ends_with("acme-cur-00002.snappy.parquet"),
        "{ignored:?}"
    );
    assert!(
        ignored[0].1.contains("acme-cur-Manifest.json") && ignored[0].1.contains("2025-11"),
        "the reason names the manifest: {ignored:?}"
    );

    // The same files without the stale one and without a manifest: the same bill.
    let plain = tmp.path().join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    std::fs::copy(
        data.join("acme-cur-00001.snappy.parquet"),
        plain.join("part.parquet"),
    )
    .unwrap();
    let (rows_plain, total_plain, ignored_plain) =
        billed(&config, &plain, &tmp.path().join("out-plain")).await;
    assert_eq!((rows_plain, total_plain), (rows, total));
    assert!(ignored_plain.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn create_new_version_delivery_reads_only_the_newest_execution() {
    let tmp = tempfile::tempdir().unwrap();
    let config = config(tmp.path());
    let input = tmp.path().join("in");
    let root = input.join("acme-cur");
    let period = "BILLING_PERIOD=2025-11";
    // Two executions restate the same line items; the later one is the bill. Its execution id
    // sorts first, so only the manifests' write times can tell them apart.
    let (older, newer) = ("f41c", "0b7a");
    cur_file(
        &root.join(format!(
            "data/{period}/{older}/acme-cur-00001.snappy.parquet"
        )),
        &[("a", "1"), ("b", "1")],
    )
    .await;
    cur_file(
        &root.join(format!(
            "data/{period}/{newer}/acme-cur-00001.snappy.parquet"
        )),
        &[("a", "2"), ("b", "3")],
    )
    .await;
    for (execution, age) in [(older, 3600), (newer, 60)] {
        data_exports_manifest(
            &root.join(format!(
                "metadata/{period}/{execution}/acme-cur-Manifest.json"
            )),
            "acme-cur",
            execution,
            &[&format!(
                "acme-cur/data/{period}/{execution}/acme-cur-00001.snappy.parquet"
            )],
            age,
        );
    }
    let (rows, total, ignored) = billed(&config, &input, &tmp.path().join("out")).await;
    assert_eq!((rows, total.as_str()), (2, "5.0000000000"));
    assert_eq!(ignored.len(), 1, "{ignored:?}");
    assert!(ignored[0].0.contains(&format!("/{older}/")), "{ignored:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_manifest_that_lists_a_missing_file_stops_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let config = config(tmp.path());
    let input = tmp.path().join("in");
    let data = input.join("acme-cur/data/BILLING_PERIOD=2025-11");
    cur_file(&data.join("acme-cur-00001.snappy.parquet"), &[("a", "1")]).await;
    data_exports_manifest(
        &input.join("acme-cur/metadata/BILLING_PERIOD=2025-11/acme-cur-Manifest.json"),
        "acme-cur",
        "exec-1",
        &[
            "acme-cur/data/BILLING_PERIOD=2025-11/acme-cur-00001.snappy.parquet",
            "acme-cur/data/BILLING_PERIOD=2025-11/acme-cur-00002.snappy.parquet",
        ],
        0,
    );
    let err = support::run(&config, &input, &tmp.path().join("out"))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert_eq!(err.exit_code(), 1, "{msg}");
    assert!(
        msg.contains("acme-cur-Manifest.json") && msg.contains("acme-cur-00002.snappy.parquet"),
        "{msg}"
    );
    assert!(!tmp.path().join("out/billable").exists(), "nothing written");
}

/// The AWS-written October 2018 workshop file, delivered as legacy CUR with Athena integration
/// delivers Parquet: `<report>/<report>/year=/month=/` data and the period's manifest under
/// `<report>/yyyymmdd-yyyymmdd/`, whose `reportKeys` are the current assembly's files. A copy
/// of the file under another name (an earlier assembly's) holds the same line items: read, it
/// would stop the run as delivered twice.
#[tokio::test(flavor = "multi_thread")]
async fn legacy_manifest_reads_the_current_assembly_of_real_aws_data() {
    let Some(realdata) = support::realdata("wa-labs-workshopcur") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("billing.toml");
    std::fs::write(&config, include_str!("../fixtures/wa-labs-workshop.toml")).unwrap();
    let input = tmp.path().join("in");
    let month = input.join("WorkshopCUR/WorkshopCUR/year=2018/month=10");
    std::fs::create_dir_all(&month).unwrap();
    let october = realdata.join("Oct2018-WorkshopCUR-00001.snappy.parquet");
    std::fs::copy(&october, month.join("WorkshopCUR-00001.snappy.parquet")).unwrap();
    std::fs::copy(&october, month.join("WorkshopCUR-00002.snappy.parquet")).unwrap();
    let manifest = serde_json::json!({
        "assemblyId": "4b5c2e7a-0d8e-4f2b-9c51-6f0a8f8f1c33",
        "account": "111111111111",
        "reportName": "WorkshopCUR",
        "bucket": "cur-bucket",
        "billingPeriod": {"start": "20181001T000000.000Z", "end": "20181101T000000.000Z"},
        "contentType": "Parquet",
        "reportKeys": ["cur/WorkshopCUR/WorkshopCUR/year=2018/month=10/WorkshopCUR-00001.snappy.parquet"],
    });
    write_aged(
        &input.join("WorkshopCUR/20181001-20181101/WorkshopCUR-Manifest.json"),
        &serde_json::to_vec_pretty(&manifest).unwrap(),
        0,
    );
    let summary = support::run(&config, &input, &tmp.path().join("out"))
        .await
        .unwrap_or_else(|e| panic!("{}", rerate::error_chain(&e)));
    let p = &summary.periods[0];
    // SOURCE.md's October: 119,307 rows, 4,064.48 USD unblended.
    assert_eq!(p.input_rows, 119_307);
    assert_eq!(p.control.billable_total.round_dp(2).to_string(), "4064.48");
    assert_eq!(summary.input.ignored.len(), 1);
    assert!(
        summary.input.ignored[0]
            .url
            .ends_with("WorkshopCUR-00002.snappy.parquet")
    );
    assert_eq!(summary.input.manifests.len(), 1);

    // Without the manifest both copies are read, and the run refuses them.
    std::fs::remove_dir_all(input.join("WorkshopCUR/20181001-20181101")).unwrap();
    let err = support::run(&config, &input, &tmp.path().join("out2"))
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), 1);
    assert!(err.to_string().contains("WorkshopCUR-0000"), "{err}");
}
