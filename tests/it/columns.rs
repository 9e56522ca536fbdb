//! Every input column is kept (SPEC §3): columns beyond the catalog reach billable by name and
//! type; pro forma and the customer exports carry them too, emptied where they are an amount, a
//! rate or a commitment's (§6.3) — null, never absent. Periods of one table may differ in their
//! columns.

use std::path::Path;

use datafusion::prelude::{ParquetReadOptions, SessionContext};

use crate::delivery::HEADER;
use crate::support;

const CONFIG: &str = r#"
[[billing-group]]
name = "acme"
payer-account-id = "111111111111"
pricing-plan = "list"

[[pricing-plan]]
name = "list"
rules = ["ten-off"]

[[pricing-rule]]
name = "ten-off"
scope = "global"
type = "discount"
percent = 10
"#;

/// The columns of `delivery::HEADER` and three beyond the catalog.
const EXTRAS: &str = "line_item_iam_principal,capacity_reservation_capacity_reservation_arn,line_item_net_amortized_cost";

async fn month(dir: &Path, period: &str, extra_header: &str, extra: &str) {
    let csv = format!(
        "{HEADER},{EXTRAS}{extra_header}\n\
         {period}-a,111111111111,222222222222,{period}-01T00:00:00Z,{period}-02T00:00:00Z,\
         {period}-02T01:00:00Z,Usage,AmazonEC2,USE1-BoxUsage:m5.large,RunInstances,1,0.096,0.096,\
         USD,arn:aws:iam::222222222222:role/batch,\
         arn:aws:ec2:us-east-1:999999999999:capacity-reservation/cr-0abc,0.071{extra}\n"
    );
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("rows.csv"), csv).unwrap();
    support::csv_to_cur_parquet(
        &tmp.path().join("rows.csv"),
        &dir.join(format!("BILLING_PERIOD={period}/part.parquet")),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn columns_beyond_the_catalog_reach_billable_and_safe_ones_the_customer() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("billing.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let input = tmp.path().join("in");
    // October has one column more than November: a column AWS added, then dropped.
    month(&input, "2025-10", ",line_item_resource_count", ",7").await;
    month(&input, "2025-11", "", "").await;
    let out = tmp.path().join("out");
    support::run(&config, &input, &out)
        .await
        .unwrap_or_else(|e| panic!("{}", rerate::error_chain(&e)));

    let ctx = support::outputs(&out).await;
    let billable = support::query(
        &ctx,
        "SELECT billing_period, line_item_iam_principal, capacity_reservation_capacity_reservation_arn, \
         CAST(line_item_net_amortized_cost AS VARCHAR), arrow_typeof(line_item_net_amortized_cost), \
         CAST(line_item_resource_count AS VARCHAR), arrow_typeof(line_item_resource_count) \
         FROM billable ORDER BY 1",
    )
    .await;
    assert_eq!(
        billable,
        [
            [
                "2025-10",
                "arn:aws:iam::222222222222:role/batch",
                "arn:aws:ec2:us-east-1:999999999999:capacity-reservation/cr-0abc",
                "0.071",
                "Float64",
                "7",
                "Int64"
            ],
            [
                "2025-11",
                "arn:aws:iam::222222222222:role/batch",
                "arn:aws:ec2:us-east-1:999999999999:capacity-reservation/cr-0abc",
                "0.071",
                "Float64",
                "NULL",
                "Int64"
            ],
        ]
    );
    // Pro forma: who used it stays; the reservation and the billable amount do not.
    let proforma = support::query(
        &ctx,
        "SELECT billing_period, line_item_iam_principal, capacity_reservation_capacity_reservation_arn, \
         line_item_net_amortized_cost, CAST(line_item_resource_count AS VARCHAR) \
         FROM proforma ORDER BY 1",
    )
    .await;
    assert_eq!(
        proforma,
        [
            [
                "2025-10",
                "arn:aws:iam::222222222222:role/batch",
                "NULL",
                "NULL",
                "7"
            ],
            [
                "2025-11",
                "arn:aws:iam::222222222222:role/batch",
                "NULL",
                "NULL",
                "NULL"
            ],
        ]
    );

    // The customer's export has the columns too, and its manifest lists them.
    let export = out.join("exports/acme");
    let files = support::files_under(&export.join("data/BILLING_PERIOD=2025-10"));
    assert_eq!(files.len(), 1, "{files:?}");
    let read = SessionContext::new();
    let df = read
        .read_parquet(files[0].to_str().unwrap(), ParquetReadOptions::default())
        .await
        .unwrap();
    let schema = df.schema().as_arrow().clone();
    for name in [
        "line_item_iam_principal",
        "capacity_reservation_capacity_reservation_arn",
        "line_item_net_amortized_cost",
        "line_item_resource_count",
    ] {
        assert!(schema.field_with_name(name).is_ok(), "{name} in the export");
    }
    let rows = support::rows(
        &df.select_columns(&["line_item_iam_principal", "line_item_net_amortized_cost"])
            .unwrap()
            .collect()
            .await
            .unwrap(),
    );
    assert_eq!(rows, [["arn:aws:iam::222222222222:role/batch", "NULL"]]);
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(export.join("metadata/BILLING_PERIOD=2025-10/acme-Manifest.json")).unwrap(),
    )
    .unwrap();
    let listed: Vec<(&str, &str)> = manifest["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["type"].as_str().unwrap()))
        .collect();
    assert!(
        listed.contains(&("line_item_resource_count", "bigint")),
        "{listed:?}"
    );
    assert!(
        listed.contains(&("line_item_iam_principal", "string")),
        "{listed:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_column_typed_differently_in_two_files_or_named_like_ours_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("billing.toml");
    std::fs::write(&config, CONFIG).unwrap();

    let input = tmp.path().join("in");
    month(&input, "2025-10", ",line_item_resource_count", ",7").await;
    // November writes the count as text.
    month(&input, "2025-11", ",line_item_resource_label", ",x").await;
    std::fs::rename(
        input.join("BILLING_PERIOD=2025-11/part.parquet"),
        tmp.path().join("nov.parquet"),
    )
    .unwrap();
    rewrite_column_name(
        &tmp.path().join("nov.parquet"),
        "line_item_resource_label",
        "line_item_resource_count",
        &input.join("BILLING_PERIOD=2025-11/part.parquet"),
    )
    .await;
    let err = support::run(&config, &input, &tmp.path().join("out"))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert_eq!(err.exit_code(), 1, "{msg}");
    assert!(
        msg.contains("line_item_resource_count")
            && msg.contains("BILLING_PERIOD=2025-10")
            && msg.contains("BILLING_PERIOD=2025-11"),
        "names the column and both files: {msg}"
    );

    let input = tmp.path().join("in-reserved");
    month(&input, "2025-10", ",billing_group", ",acme").await;
    let err = support::run(&config, &input, &tmp.path().join("out"))
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), 1);
    assert!(err.to_string().contains("\"billing_group\""), "{err}");
}

/// Copies a Parquet file with one column renamed.
async fn rewrite_column_name(from: &Path, old: &str, new: &str, to: &Path) {
    use datafusion::dataframe::DataFrameWriteOptions;
    use datafusion::prelude::ident;
    let ctx = SessionContext::new();
    let df = ctx
        .read_parquet(from.to_str().unwrap(), ParquetReadOptions::default())
        .await
        .unwrap();
    let exprs: Vec<_> = df
        .schema()
        .fields()
        .iter()
        .map(|f| {
            if f.name() == old {
                ident(old).alias(new)
            } else {
                ident(f.name())
            }
        })
        .collect();
    df.select(exprs)
        .unwrap()
        .write_parquet(
            to.to_str().unwrap(),
            DataFrameWriteOptions::new().with_single_file_output(true),
            None,
        )
        .await
        .unwrap();
}
