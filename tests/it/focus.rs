//! FOCUS 1.2 and the period report over the bundled sample month: the `focus/` table holds every
//! pro forma row once, in the invoice's currency, exactly; Σ BilledCost per group is the invoice
//! subtotal before rounding; custom line items are Adjustments and Credits; each group's FOCUS
//! export holds its rows. (`.ci/run` runs the FinOps Foundation's focus-validator on the exports.)

use std::path::PathBuf;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::Value;

use rerate::invoice::DocumentKind;

use crate::support;

fn url_path(url: &str) -> PathBuf {
    url::Url::parse(url).unwrap().to_file_path().unwrap()
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn focus_rows_carry_the_invoice_amounts_exactly_and_the_report_shows_the_period() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let repo = support::repo();
    let summary = support::run(
        &repo.join("sample-data/billing.toml"),
        &repo.join("sample-data/cur"),
        &out,
    )
    .await
    .unwrap_or_else(|e| panic!("{}", rerate::error_chain(&e)));
    let period = &summary.periods[0];
    let ctx = support::outputs(&out).await;

    // Every pro forma row once, nothing else.
    let counts = support::query(
        &ctx,
        "SELECT (SELECT count(*) FROM proforma) AS p, (SELECT count(*) FROM focus) AS f",
    )
    .await;
    assert_eq!(counts[0][0], counts[0][1]);

    for inv in period
        .invoices
        .iter()
        .filter(|i| i.kind == DocumentKind::Invoice)
    {
        let doc: Value =
            serde_json::from_slice(&std::fs::read(url_path(&inv.json)).unwrap()).unwrap();
        let fx = dec(doc["fx_rate"].as_str().unwrap());
        let before_rounding: Decimal = doc["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| dec(l["bill_amount"].as_str().unwrap()) * fx)
            .sum();
        let group = &inv.billing_group;
        let row = &support::query(
            &ctx,
            &format!(
                "SELECT CAST(sum(\"BilledCost\") AS VARCHAR), count(DISTINCT \"InvoiceId\"), \
                 min(\"InvoiceId\"), min(\"BillingCurrency\"), \
                 CAST(sum(\"PricingCurrencyEffectiveCost\") FILTER (WHERE \"ChargeCategory\" <> 'Purchase') AS VARCHAR) \
                 FROM focus WHERE billing_group = '{group}'"
            ),
        )
        .await[0];
        assert_eq!(dec(&row[0]), before_rounding, "{group}: Σ BilledCost");
        assert_eq!(
            (row[1].as_str(), row[2].as_str(), row[3].as_str()),
            ("1", inv.number.as_str(), inv.currency.as_str()),
            "{group}: one invoice, its currency"
        );
        // The subtotal is the sum of rounded lines: within half a cent per line of the exact sum.
        let lines = doc["lines"].as_array().unwrap().len();
        let subtotal = dec(doc["subtotal"].as_str().unwrap());
        assert!(
            (subtotal - before_rounding).abs() <= Decimal::new(5, 3) * Decimal::from(lines),
            "{group}: {subtotal} vs {before_rounding}"
        );
        // Bill-currency amounts are pro forma's, unconverted.
        let proforma = &support::query(
            &ctx,
            &format!(
                "SELECT CAST(sum(line_item_unblended_cost) AS VARCHAR) FROM proforma \
                 WHERE billing_group = '{group}' AND line_item_line_item_type NOT IN \
                 ('RIFee', 'SavingsPlanRecurringFee', 'SavingsPlanUpfrontFee')"
            ),
        )
        .await[0][0];
        assert_eq!(
            dec(&row[4]),
            dec(proforma),
            "{group}: PricingCurrencyEffectiveCost"
        );

        // The group's FOCUS export: the same rows.
        let export = period
            .focus_exports
            .iter()
            .find(|e| &e.billing_group == group)
            .unwrap();
        let in_table = &support::query(
            &ctx,
            &format!("SELECT count(*) FROM focus WHERE billing_group = '{group}'"),
        )
        .await[0][0];
        assert_eq!(export.rows.to_string(), *in_table, "{group}");
        assert!(export.manifest.is_none());
        assert!(export.files[0].contains(&format!("/exports/{group}/focus/BILLING_PERIOD=")));
    }

    // Custom line items: a fee is an Adjustment, a credit a Credit, the reseller provides them.
    let custom = support::query(
        &ctx,
        "SELECT \"ChargeCategory\", count(*), \
         min(CASE WHEN \"BilledCost\" < 0 THEN -1 ELSE 1 END), \
         max(CASE WHEN \"BilledCost\" < 0 THEN -1 ELSE 1 END), \
         min(\"ProviderName\"), min(\"ServiceCategory\") \
         FROM focus WHERE \"x_ServiceCode\" = 'CustomLineItem' GROUP BY 1 ORDER BY 1",
    )
    .await;
    let shape: Vec<(&str, &str, &str)> = custom
        .iter()
        .map(|r| (r[0].as_str(), r[2].as_str(), r[3].as_str()))
        .collect();
    assert_eq!(shape, [("Adjustment", "1", "1"), ("Credit", "-1", "-1")]);
    assert!(
        custom
            .iter()
            .all(|r| r[4] == "Example Reseller Ltd" && r[5] == "Other")
    );
    // FOCUS columns that must never be empty strings, and tags as JSON objects.
    let empties = support::query(
        &ctx,
        "SELECT count(*) FROM focus WHERE \"ChargeDescription\" = '' OR \"RegionId\" = '' \
         OR \"ResourceId\" = '' OR \"AvailabilityZone\" = '' OR \"PricingUnit\" = '' \
         OR (\"Tags\" IS NOT NULL AND \"Tags\" NOT LIKE '{%}')",
    )
    .await;
    assert_eq!(empties[0][0], "0");

    // The period at a glance: every group, the unassigned account, charts, no network.
    let report = std::fs::read_to_string(url_path(&period.report)).unwrap();
    for shown in [
        "ACME Corp",
        "Globex Corporation",
        "Initech Ltd",
        "888888888888",
        "<svg",
    ] {
        assert!(report.contains(shown), "the report shows {shown}");
    }
    for remote in ["http://", "https://", "<script", "<link"] {
        assert!(!report.contains(remote), "{remote} in the report");
    }
    assert!(!out.join("exports").join("reports").exists());
}
