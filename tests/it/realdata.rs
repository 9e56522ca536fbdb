//! AWS-written legacy CUR (`wa-labs-workshopcur` of the real data, see `support::realdata`:
//! three months, 334,911 rows, INT64 millisecond timestamps, string rates, `""` blanks, flattened product and tag columns)
//! read end to end: every row accounted for, billable totals equal to the input's.

use std::str::FromStr;

use rust_decimal::Decimal;

use crate::support;

const CONFIG: &str = include_str!("../fixtures/wa-labs-workshop.toml");

#[tokio::test(flavor = "multi_thread")]
async fn legacy_workshop_cur_is_read_end_to_end() {
    let Some(input) = support::realdata("wa-labs-workshopcur") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("billing.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let out = tmp.path().join("out");
    let summary = support::run(&config, &input, &out)
        .await
        .unwrap_or_else(|e| panic!("{}", rerate::error_chain(&e)));

    let per_period: Vec<(String, u64, String)> = summary
        .periods
        .iter()
        .map(|p| {
            (
                p.period.to_string(),
                p.input_rows,
                p.control.billable_total.round_dp(2).to_string(),
            )
        })
        .collect();
    // Row counts and unblended totals as documented in the data's SOURCE.md.
    assert_eq!(
        per_period,
        vec![
            ("2018-10".to_string(), 119_307, "4064.48".to_string()),
            ("2018-11".to_string(), 124_340, "3505.33".to_string()),
            ("2018-12".to_string(), 91_264, "408.38".to_string()),
        ]
    );
    for p in &summary.periods {
        assert_eq!(
            p.control.billable_rows_written, p.input_rows,
            "{}: every row in billable",
            p.period
        );
        assert_eq!(
            p.unassigned.rows, 0,
            "{}: both accounts are grouped",
            p.period
        );
        let grouped: u64 = p.groups.iter().map(|g| g.rows).sum();
        assert_eq!(
            grouped, p.input_rows,
            "{}: every row accounted to a group",
            p.period
        );
    }

    let ctx = support::outputs(&out).await;
    // Legacy blanks are nulls; flattened product and tag columns are maps again.
    let rows = support::query(
        &ctx,
        "SELECT count(*) FILTER (WHERE line_item_resource_id = ''),
                count(*) FILTER (WHERE cardinality(product) > 0),
                count(*) FILTER (WHERE resource_tags['user_name'] IS NOT NULL) > 0,
                arrow_typeof(line_item_usage_start_date)
         FROM billable GROUP BY arrow_typeof(line_item_usage_start_date)",
    )
    .await;
    let expected: Vec<Vec<String>> = vec![vec![
        "0".into(),
        "334911".into(),
        "true".into(),
        "Timestamp(µs, \"UTC\")".into(),
    ]];
    assert_eq!(rows, expected);

    // The RIs are owned inside the organization: the workshop group (`group`) sees its RI lines
    // passed through; the carved-out account (`on-demand`) has its RI-covered usage re-rated
    // from public on-demand, shown as Usage, and no RI fee.
    let rows = support::query(
        &ctx,
        "SELECT billing_group, line_item_line_item_type FROM proforma
         WHERE line_item_line_item_type IN ('RIFee', 'DiscountedUsage')
         GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .await;
    assert_eq!(
        rows,
        [["workshop", "DiscountedUsage"], ["workshop", "RIFee"]]
    );

    // Custom line items from the second month on, in every AWS-written column schema the
    // tables inherited from REQUIRED legacy columns (regression: the first custom row, with a
    // null normalization factor, was refused after billable had committed).
    let custom: Vec<(String, Vec<&str>)> = summary
        .periods
        .iter()
        .map(|p| {
            let names = p
                .custom_line_items
                .iter()
                .map(|c| c.name.as_str())
                .collect();
            (p.period.to_string(), names)
        })
        .collect();
    assert_eq!(
        custom,
        [
            ("2018-10".to_string(), vec![]),
            (
                "2018-11".to_string(),
                vec!["managed-service-fee", "support-5pct", "onboarding-credit"]
            ),
            (
                "2018-12".to_string(),
                vec!["managed-service-fee", "support-5pct"]
            ),
        ]
    );
    let rows = support::query(
        &ctx,
        "SELECT billing_period, billing_group, count(*), sum(line_item_unblended_cost)
         FROM proforma WHERE line_item_product_code = 'CustomLineItem'
         GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .await;
    let custom_total = |period: &str, group: &str| -> Decimal {
        let p = summary
            .periods
            .iter()
            .find(|p| p.period.to_string() == period)
            .unwrap();
        p.custom_line_items
            .iter()
            .filter(|c| c.billing_group == group)
            .map(|c| c.amount)
            .sum()
    };
    for r in &rows {
        assert_eq!(
            Decimal::from_str(&r[3]).unwrap(),
            custom_total(&r[0], &r[1]),
            "{r:?}"
        );
    }
    assert_eq!(rows.len(), 3, "{rows:?}");
    // Every custom row is valid CUR input one level down: the account-list group's credit
    // carries its account's payer, from the bill.
    let rows = support::query(
        &ctx,
        "SELECT billing_group, line_item_usage_account_id, bill_payer_account_id FROM proforma
         WHERE line_item_product_code = 'CustomLineItem' GROUP BY ALL ORDER BY 1",
    )
    .await;
    assert_eq!(
        rows,
        [
            ["carved-out", "011254002932", "836060457634"],
            ["workshop", "836060457634", "836060457634"],
        ]
    );
    for p in &summary.periods {
        // 5 % of the usage and the flat fee: the percentage's base includes the fee.
        if let Some(fee) = p
            .custom_line_items
            .iter()
            .find(|c| c.name == "support-5pct")
        {
            let usage = p
                .groups
                .iter()
                .find(|g| g.billing_group == "workshop")
                .unwrap();
            let base = usage.proforma_cost - custom_total(&p.period.to_string(), "workshop")
                + Decimal::from(250);
            let expected = (base * Decimal::new(5, 2))
                .round_dp_with_strategy(10, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
            assert_eq!(fee.amount, expected, "{}", p.period);
        }
        let control = &p.control;
        assert_eq!(
            control.proforma_total,
            control.rerated_total + control.passed_total + control.custom_total
        );
    }

    // The carved-out account's RI-covered usage (re-rated at on-demand) reads as on-demand
    // usage: term OnDemand, no RI fields, and AWS's own wording of the usage type's on-demand
    // line where the month has one (Linux t2.micro), else "On Demand <usage type>" (Windows
    // t2.micro: this account runs it only under RIs and the free tier).
    let rows = support::query(
        &ctx,
        "SELECT p.line_item_operation, p.line_item_line_item_type, p.pricing_term,
                p.pricing_offering_class, p.line_item_line_item_description
         FROM proforma p JOIN billable b USING (identity_line_item_id, line_item_usage_start_date)
         WHERE b.line_item_line_item_type = 'DiscountedUsage' AND p.billing_group = 'carved-out'
         GROUP BY ALL ORDER BY 1",
    )
    .await;
    assert_eq!(
        rows,
        [
            [
                "RunInstances",
                "Usage",
                "OnDemand",
                "NULL",
                "$0.0116 per On Demand Linux t2.micro Instance Hour"
            ],
            [
                "RunInstances:0002",
                "Usage",
                "OnDemand",
                "NULL",
                "On Demand BoxUsage:t2.micro"
            ],
        ]
    );

    let problems = crate::leak::audit(&out, &ctx).await;
    assert!(problems.is_empty(), "{problems:#?}");
}
