//! Pro forma never reveals billable-only data: on a generated month where billable and pro
//! forma differ (discounts, credits, commitments, rules), scan the pro forma table for any
//! billable-only column or value. Also: money columns of every table stay decimal.

use std::sync::Arc;

use arrow::datatypes::DataType;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use rerate::sample::{SampleOptions, write_sample};

use crate::support;

async fn sample_run() -> (tempfile::TempDir, datafusion::prelude::SessionContext) {
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
    support::run(
        &support::repo().join("sample-data/billing.toml"),
        &cur,
        &out,
    )
    .await
    .unwrap_or_else(|e| panic!("{}", rerate::error_chain(&e)));
    let ctx = support::outputs(&out).await;
    (tmp, ctx)
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
