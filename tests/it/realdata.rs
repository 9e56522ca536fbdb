//! AWS-written legacy CUR (`wa-labs-workshopcur` of the real data, see `support::realdata`:
//! three months, 334,911 rows, INT64 millisecond timestamps, string rates, `""` blanks, flattened product and tag columns)
//! read end to end: every row accounted for, billable totals equal to the input's.

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

    // The RIs are owned inside the organization: the workshop group sees them passed through,
    // the carved-out account gets its RI-covered usage re-rated from public on-demand.
    let rows = support::query(
        &ctx,
        "SELECT billing_group, line_item_line_item_type, count(*) > 0 FROM proforma
         WHERE line_item_line_item_type IN ('RIFee', 'DiscountedUsage') GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .await;
    assert!(
        !rows.is_empty(),
        "commitment lines reach pro forma under `group`"
    );
}
