//! Pro forma never reveals billable-only data: on a generated month where billable and pro
//! forma differ (discounts, credits, commitments, rules), scan the pro forma table, every
//! invoice (JSON and HTML) and every customer export for any billable-only column or value.
//! Also: money columns of every table stay decimal.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use arrow::datatypes::DataType;
use cur_sample::{SampleOptions, write_sample};
use datafusion::common::DFSchema;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use rerate::money;
use rust_decimal::Decimal;

use crate::support;

async fn sample_run() -> (tempfile::TempDir, datafusion::prelude::SessionContext) {
    let (tmp, ctx, _) = sample_run_with_summary().await;
    (tmp, ctx)
}

async fn sample_run_with_summary() -> (
    tempfile::TempDir,
    datafusion::prelude::SessionContext,
    rerate::write::manifest::RunManifest,
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
    let (tmp, ctx) = sample_run().await;
    let out = tmp.path().join("out");

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

    let problems = audit(&out, &ctx).await;
    assert!(problems.is_empty(), "{}", problems.join("\n"));

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
/// thousands separators) in the bill currency and converted to the invoice currency.
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
        let summary = period.groups.iter().find(|s| s.billing_group == g).unwrap();
        let bill = summary.bill_currency.as_deref().unwrap();
        let currency = group.invoice_currency(bill);
        let fx = config.fx_rate(period.period, bill, currency).unwrap();
        let units = money::minor_units(currency).unwrap();
        let proforma = summary.proforma_cost;
        let row = billable.iter().find(|r| r[0] == g).unwrap();
        let margin = margins.iter().find(|r| r[0] == g).unwrap();
        let mut secrets: Vec<String> = invoice_ids.clone();
        for amount in [&row[1], &row[2], &margin[1]] {
            let amount = Decimal::from_str(amount).unwrap();
            if amount != proforma {
                secrets.extend(printed_forms(amount, fx, units));
            }
        }
        let dir = out.join("invoices/billing_period=2025-11/drafts");
        let export_dir = out.join(format!("exports/{g}/metadata/BILLING_PERIOD=2025-11"));
        for file in [
            dir.join(format!("ER-202511-{g}.json")),
            dir.join(format!("ER-202511-{g}.html")),
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
    let exports = rerate::engine::new_context(&Default::default()).unwrap();
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

/// Every customer-facing artifact of the run under `out` (pro forma and FOCUS tables, invoices,
/// CUR and FOCUS exports) holds no billable-only value and nothing of another group: the
/// problems found.
pub async fn audit(out: &Path, ctx: &SessionContext) -> Vec<String> {
    let mut problems = Vec::new();
    let invoice_ids: Vec<String> = support::query(
        ctx,
        "SELECT DISTINCT bill_invoice_id FROM billable WHERE bill_invoice_id IS NOT NULL",
    )
    .await
    .into_iter()
    .map(|r| r[0].clone())
    .collect();
    // A line re-rated from a commitment looks like on-demand usage: no word, term, id or
    // pricing field of a commitment (lines passed through keep theirs).
    let disclosed = count(
        ctx,
        "SELECT count(*) FROM proforma WHERE line_item_line_item_type = 'Usage' AND (
             lower(line_item_line_item_description) LIKE '%reserved instance%'
             OR lower(line_item_line_item_description) LIKE '%savings plan%'
             OR lower(line_item_line_item_description) LIKE '%hourly fee per%'
             OR pricing_term = 'Reserved' OR pricing_offering_class IS NOT NULL
             OR pricing_purchase_option IS NOT NULL OR pricing_lease_contract_length IS NOT NULL
             OR reservation_reservation_a_r_n IS NOT NULL
             OR savings_plan_savings_plan_a_r_n IS NOT NULL)",
    )
    .await;
    if disclosed > 0 {
        problems.push(format!(
            "{disclosed} usage row(s) in pro forma tell that a commitment covered them"
        ));
    }
    let leaks = count(
        ctx,
        "SELECT count(*) FROM proforma WHERE bill_invoice_id IS NOT NULL OR discount IS NOT NULL
           OR discount_total_discount IS NOT NULL OR discount_bundled_discount IS NOT NULL",
    )
    .await;
    if leaks > 0 {
        problems.push(format!(
            "{leaks} pro forma row(s) with an invoice id or discount"
        ));
    }
    let in_text = |table: &str, schema: &DFSchema| {
        let ids = invoice_ids
            .iter()
            .map(|id| format!("'{}'", id.replace('\'', "''")))
            .collect::<Vec<_>>()
            .join(", ");
        let any = schema
            .fields()
            .iter()
            .filter(|f| {
                matches!(
                    f.data_type(),
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                )
            })
            .map(|f| format!("\"{}\" IN ({ids})", f.name()))
            .collect::<Vec<_>>()
            .join(" OR ");
        format!("SELECT count(*) FROM {table} WHERE {any}")
    };
    if !invoice_ids.is_empty() {
        for table in ["proforma", "focus"] {
            let schema = ctx.table(table).await.unwrap().schema().clone();
            let n = count(ctx, &in_text(table, &schema)).await;
            if n > 0 {
                problems.push(format!("{n} {table} row(s) hold a billable invoice id"));
            }
        }
    }

    // A group's own accounts include its payer (groups may split one organization).
    let mut usage: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut own_ids: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in support::query(
        ctx,
        "SELECT DISTINCT billing_group, line_item_usage_account_id, bill_payer_account_id
         FROM billable",
    )
    .await
    {
        usage.entry(r[0].clone()).or_default().insert(r[1].clone());
        let own = own_ids.entry(r[0].clone()).or_default();
        own.insert(r[1].clone());
        own.insert(r[2].clone());
    }
    for (group, own) in &own_ids {
        let others: BTreeSet<&String> = usage
            .iter()
            .filter(|(g, _)| *g != group)
            .flat_map(|(_, a)| a)
            .filter(|a| !own.contains(*a))
            .collect();
        for file in files_of(out, group) {
            let name = file.display().to_string();
            if name.ends_with(".parquet") {
                let export = SessionContext::new();
                let df = export
                    .read_parquet(name.as_str(), ParquetReadOptions::default())
                    .await
                    .unwrap();
                let schema = df.schema().clone();
                export.register_table("export", df.into_view()).unwrap();
                let own_list = own
                    .iter()
                    .map(|a| format!("'{a}'"))
                    .collect::<Vec<_>>()
                    .join(", ");
                // CUR names the usage account line_item_usage_account_id, FOCUS SubAccountId.
                let account = if schema.has_column_with_unqualified_name("SubAccountId") {
                    "\"SubAccountId\""
                } else {
                    "line_item_usage_account_id"
                };
                let foreign = count(
                    &export,
                    &format!("SELECT count(*) FROM export WHERE {account} NOT IN ({own_list})"),
                )
                .await;
                if foreign > 0 {
                    problems.push(format!(
                        "{name}: {foreign} row(s) of another group's accounts"
                    ));
                }
                if !invoice_ids.is_empty() && count(&export, &in_text("export", &schema)).await > 0
                {
                    problems.push(format!("{name}: a billable invoice id"));
                }
                continue;
            }
            let text = std::fs::read_to_string(&file).unwrap();
            for secret in invoice_ids.iter().chain(others.iter().copied()) {
                if contains_token(&text, secret) {
                    problems.push(format!("{name} holds {secret:?}"));
                }
            }
        }
    }
    problems
}

/// Whether `token` occurs in `text` as a whole value, not inside a longer one (an AWS invoice id
/// "INV-2" is not a leak inside our invoice number "INV-202511-acme").
fn contains_token(text: &str, token: &str) -> bool {
    let part_of_value = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-');
    text.match_indices(token).any(|(at, _)| {
        !part_of_value(text[..at].chars().next_back())
            && !part_of_value(text[at + token.len()..].chars().next())
    })
}

/// A group's invoices (every period) and export files.
fn files_of(out: &Path, group: &str) -> Vec<PathBuf> {
    let mut found = support::files_under(&out.join("exports").join(group));
    // Documents are named by number: the JSON says whose they are, the HTML sits beside it.
    for json in support::files_under(&out.join("invoices"))
        .into_iter()
        .filter(|f| f.extension().is_some_and(|e| e == "json"))
    {
        let doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        if doc["billing_group"] == group {
            found.push(json.with_extension("html"));
            found.push(json);
        }
    }
    found
}
