//! Pro forma never reveals billable-only data: on a generated month where billable and pro
//! forma differ (discounts, credits, commitments, rules), scan the pro forma table, every
//! invoice (JSON and HTML) and every customer export for any billable-only column or value.
//! Also: money columns of every table stay decimal.

use std::sync::Arc;

use std::str::FromStr;

use arrow::datatypes::DataType;
use datafusion::prelude::ParquetReadOptions;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use rerate::invoice::money;
use rerate::sample::{SampleOptions, write_sample};
use rust_decimal::Decimal;

use crate::support;

async fn sample_run() -> (tempfile::TempDir, datafusion::prelude::SessionContext) {
    let (tmp, ctx, _) = sample_run_with_summary().await;
    (tmp, ctx)
}

async fn sample_run_with_summary() -> (
    tempfile::TempDir,
    datafusion::prelude::SessionContext,
    rerate::run::RunSummary,
) {
    let tmp = tempfile::tempdir().unwrap();
    let cur = tmp.path().join("cur");
    std::fs::create_dir_all(&cur).unwrap();
    let store = Arc::new(LocalFileSystem::new());
    let opts = SampleOptions {
        rows: 20_000,
        seed: 7,
        ..Default::default()
    };
    write_sample(store, &ObjectPath::from_absolute_path(&cur).unwrap(), &opts)
        .await
        .unwrap();
    let out = tmp.path().join("out");
    let summary = support::run(
        &support::repo().join("sample-data/billing.toml"),
        &cur,
        &out,
    )
    .await
    .unwrap_or_else(|e| panic!("{}", rerate::error_chain(&e)));
    let ctx = support::outputs(&out).await;
    (tmp, ctx, summary)
}

async fn count(ctx: &datafusion::prelude::SessionContext, sql: &str) -> i64 {
    support::query(ctx, sql).await[0][0].parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn proforma_holds_no_billable_only_value() {
    let (_tmp, ctx) = sample_run().await;

    // The month really has billable-only data to leak.
    assert!(
        count(
            &ctx,
            "SELECT count(*) FROM billable WHERE bill_invoice_id IS NOT NULL"
        )
        .await
            > 0
    );
    assert!(
        count(
            &ctx,
            "SELECT count(*) FROM billable WHERE line_item_line_item_type = 'EdpDiscount'"
        )
        .await
            > 0
    );
    assert!(count(&ctx, "SELECT count(*) FROM billable WHERE savings_plan_savings_plan_effective_cost IS NOT NULL").await > 0);

    // Billable-only columns are empty in pro forma.
    let leaks = count(
        &ctx,
        "SELECT count(*) FROM proforma WHERE bill_invoice_id IS NOT NULL OR discount IS NOT NULL
           OR discount_total_discount IS NOT NULL OR discount_bundled_discount IS NOT NULL",
    )
    .await;
    assert_eq!(leaks, 0, "bill_invoice_id or discount columns in pro forma");

    // Commitment columns only on commitment lines passed through at their billable value.
    let leaks = count(
        &ctx,
        "SELECT count(*) FROM proforma WHERE pricing_rule IS NOT NULL AND (
             savings_plan_savings_plan_effective_cost IS NOT NULL OR savings_plan_savings_plan_a_r_n IS NOT NULL
             OR reservation_effective_cost IS NOT NULL OR reservation_reservation_a_r_n IS NOT NULL
             OR savings_plan_savings_plan_rate IS NOT NULL)",
    )
    .await;
    assert_eq!(leaks, 0, "re-rated lines carry commitment cost fields");

    // No invoice id appears anywhere in any text column of pro forma.
    let schema = ctx.table("proforma").await.unwrap().schema().clone();
    let text_columns: Vec<String> = schema
        .fields()
        .iter()
        .filter(|f| {
            matches!(
                f.data_type(),
                DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
            )
        })
        .map(|f| format!("p.{}", f.name()))
        .collect();
    let sql = format!(
        "SELECT count(*) FROM proforma p JOIN (SELECT DISTINCT bill_invoice_id AS id FROM billable WHERE bill_invoice_id IS NOT NULL) b
           ON b.id IN ({})",
        text_columns.join(", ")
    );
    assert_eq!(
        count(&ctx, &sql).await,
        0,
        "a billable invoice id in a pro forma text column"
    );

    // Re-rated lines carry their pro forma amount in every cost column, never the billable
    // net (after private discounts) or effective (after commitments) cost.
    let leaks = count(
        &ctx,
        "SELECT count(*) FROM proforma p JOIN billable b USING (identity_line_item_id)
         WHERE p.pricing_rule IS NOT NULL AND (
             p.line_item_net_unblended_cost <> p.line_item_unblended_cost
             OR p.line_item_blended_cost <> p.line_item_unblended_cost
             OR p.line_item_net_unblended_rate <> p.line_item_unblended_rate
             OR (b.line_item_net_unblended_cost <> b.line_item_unblended_cost
                 AND p.line_item_net_unblended_cost = b.line_item_net_unblended_cost))",
    )
    .await;
    assert_eq!(
        leaks, 0,
        "billable net or effective costs on re-rated lines"
    );

    // Dropped lines (acme drops private discounts, credits and AWS tax) are absent.
    let leaks = count(
        &ctx,
        "SELECT count(*) FROM proforma WHERE billing_group = 'acme'
           AND line_item_line_item_type IN ('EdpDiscount', 'PrivateRateDiscount', 'SppDiscount', 'Credit', 'Tax')
           AND line_item_product_code <> 'CustomLineItem'",
    )
    .await;
    assert_eq!(leaks, 0, "dropped lines in pro forma");
    assert_eq!(
        count(
            &ctx,
            "SELECT count(*) FROM proforma WHERE billing_group = '_unassigned'"
        )
        .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn money_columns_never_become_floats() {
    let (_tmp, ctx) = sample_run().await;
    for table in ["billable", "proforma", "margin"] {
        let schema = ctx.table(table).await.unwrap().schema().clone();
        for f in schema.fields() {
            let money = [
                "_cost",
                "_rate",
                "_fee",
                "_discount",
                "margin",
                "_value",
                "_commitment",
            ]
            .iter()
            .any(|s| f.name().ends_with(s))
                || f.name().starts_with("dropped_");
            if money {
                assert!(
                    matches!(f.data_type(), DataType::Decimal128(38, _)),
                    "{table}.{} is {}, not a decimal",
                    f.name(),
                    f.data_type()
                );
            }
        }
    }
}

/// Ways a billable-only amount could be printed: exact, to the cent (with and without
/// thousands separators) in USD and converted to the invoice currency.
fn printed_forms(amount: Decimal, fx_rate: Decimal, units: u32) -> Vec<String> {
    let mut out = vec![amount.normalize().to_string()];
    for (value, dp) in [(amount, 2), (amount * fx_rate, units)] {
        let rounded = money::round_to_minor(value, dp);
        out.push(rounded.to_string());
        out.push(money::display(rounded, dp));
    }
    // Too short to mean anything (e.g. "0.00", "12.5"): a coincidence, not a leak.
    out.retain(|s| s.chars().filter(char::is_ascii_digit).count() >= 5);
    out.sort();
    out.dedup();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn invoices_and_exports_hold_no_billable_only_value() {
    let (tmp, ctx, summary) = sample_run_with_summary().await;
    let out = tmp.path().join("out");
    let config = rerate::load_config(&support::repo().join("sample-data/billing.toml")).unwrap();
    let period = &summary.periods[0];

    let invoice_ids: Vec<String> = support::query(
        &ctx,
        "SELECT DISTINCT bill_invoice_id FROM billable WHERE bill_invoice_id IS NOT NULL",
    )
    .await
    .into_iter()
    .map(|r| r[0].clone())
    .collect();
    assert!(!invoice_ids.is_empty());

    // Billable amounts per group (all of it, before tax, the margin) where they differ from
    // what the customer is charged.
    let billable = support::query(
        &ctx,
        "SELECT billing_group, CAST(SUM(line_item_unblended_cost) AS VARCHAR),
                CAST(SUM(CASE WHEN line_item_line_item_type <> 'Tax' THEN line_item_unblended_cost END) AS VARCHAR)
         FROM billable GROUP BY 1",
    )
    .await;
    let margins = support::query(
        &ctx,
        "SELECT billing_group, CAST(SUM(margin) AS VARCHAR) FROM margin GROUP BY 1",
    )
    .await;
    let mut checked = 0;
    for group in &config.groups {
        let g = group.name.as_str();
        let fx = config.fx_rate(period.period, &group.currency).unwrap();
        let units = money::minor_units(&group.currency).unwrap();
        let proforma = period
            .groups
            .iter()
            .find(|s| s.billing_group == g)
            .unwrap()
            .proforma_cost;
        let row = billable.iter().find(|r| r[0] == g).unwrap();
        let margin = margins.iter().find(|r| r[0] == g).unwrap();
        let mut secrets: Vec<String> = invoice_ids.clone();
        for amount in [&row[1], &row[2], &margin[1]] {
            let amount = Decimal::from_str(amount).unwrap();
            if amount != proforma {
                secrets.extend(printed_forms(amount, fx, units));
            }
        }
        let dir = out.join("invoices/billing_period=2025-11");
        let export_dir = out.join(format!("exports/{g}/metadata/BILLING_PERIOD=2025-11"));
        for file in [
            dir.join(format!("{g}.json")),
            dir.join(format!("{g}.html")),
            export_dir.join(format!("{g}-Manifest.json")),
        ] {
            let text = std::fs::read_to_string(&file).unwrap();
            for secret in &secrets {
                assert!(
                    !text.contains(secret.as_str()),
                    "{} holds the billable-only value {secret}",
                    file.display()
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, config.groups.len() * 3);

    // Every export file, read as a customer's CUR tools would.
    let exports = rerate::engine::new_context().unwrap();
    let files: Vec<String> = period
        .exports
        .iter()
        .flat_map(|e| e.files.clone())
        .collect();
    assert_eq!(files.len(), config.groups.len());
    let df = exports
        .read_parquet(files, ParquetReadOptions::default())
        .await
        .unwrap();
    exports.register_table("export", df.into_view()).unwrap();
    let schema = exports.table("export").await.unwrap().schema().clone();
    for rerate_only in [
        "billing_period",
        "billing_group",
        "pricing_plan",
        "pricing_rule",
    ] {
        assert!(
            schema.field_with_unqualified_name(rerate_only).is_err(),
            "{rerate_only} in an export"
        );
    }
    let leaks = count(
        &exports,
        "SELECT count(*) FROM export WHERE bill_invoice_id IS NOT NULL OR discount IS NOT NULL
           OR discount_total_discount IS NOT NULL OR discount_bundled_discount IS NOT NULL
           OR line_item_net_unblended_cost <> line_item_unblended_cost
           OR line_item_blended_cost <> line_item_unblended_cost",
    )
    .await;
    assert_eq!(leaks, 0, "billable-only columns or costs in an export");
    let text_columns: Vec<String> = schema
        .fields()
        .iter()
        .filter(|f| f.data_type() == &DataType::Utf8)
        .map(|f| format!("coalesce({}, '')", f.name()))
        .collect();
    let ids = invoice_ids
        .iter()
        .map(|id| format!("'{}'", id.replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT count(*) FROM export WHERE {}",
        text_columns
            .iter()
            .map(|c| format!("{c} IN ({ids})"))
            .collect::<Vec<_>>()
            .join(" OR ")
    );
    assert_eq!(
        count(&exports, &sql).await,
        0,
        "a billable invoice id in an export"
    );
    // Per group, an export adds up to the pro forma total, not the billable one.
    let total: f64 = support::query(&exports, "SELECT SUM(line_item_unblended_cost) FROM export")
        .await[0][0]
        .parse()
        .unwrap();
    let proforma: Decimal = period
        .groups
        .iter()
        .filter(|g| g.billing_group != "_unassigned")
        .map(|g| g.proforma_cost)
        .sum();
    assert!(
        (Decimal::try_from(total).unwrap() - proforma).abs() < Decimal::new(1, 6),
        "exports total {total}, pro forma {proforma}"
    );
}
