//! Rows by resource tag on CUR 2.0 input (SPEC §5.1, E9): the bundled sample's `resource_tags`
//! is a real `map<string,string>`; a group matching `user_team = research` takes exactly the rows
//! whose map says so, counted here straight from the input files, from whichever group held
//! them by account; every other row stays where it was.

use datafusion::prelude::{ParquetReadOptions, SessionContext};

use crate::support;

#[tokio::test(flavor = "multi_thread")]
async fn a_tag_match_takes_exactly_the_tagged_rows_of_a_cur_2_0_map() {
    let tmp = tempfile::tempdir().unwrap();
    let sample = support::repo().join("sample-data");
    // The sample's acme-labs matches research already: here a group of its own does.
    let text = std::fs::read_to_string(sample.join("billing.toml"))
        .unwrap()
        .replace(
            "match = [{ tag = \"user_team\", value = \"research\" }]",
            "",
        );
    let config = tmp.path().join("billing.toml");
    std::fs::write(
        &config,
        format!(
            "{text}\n[[billing-group]]\nname = \"research\"\n\
             match = [{{ tag = \"user_team\", value = \"research\" }}]\n\
             primary-account-id = \"333333333333\"\npricing-plan = \"on-demand\"\n"
        ),
    )
    .unwrap();
    let out = tmp.path().join("out");
    let before = tmp.path().join("before");
    let input = sample.join("cur");
    let summary = support::run(&config, &input, &out)
        .await
        .unwrap_or_else(|e| panic!("{}", rerate::error_chain(&e)));
    let without = tmp.path().join("without.toml");
    std::fs::write(&without, &text).unwrap();
    support::run(&without, &input, &before).await.unwrap();

    // The tagged rows, counted from the input files themselves.
    let files = SessionContext::new();
    files
        .register_parquet(
            "input",
            input.join("data").to_str().unwrap(),
            ParquetReadOptions::default(),
        )
        .await
        .unwrap();
    let tagged = support::query(
        &files,
        "SELECT COUNT(*) FROM input \
         WHERE array_element(map_extract(resource_tags, 'user_team'), 1) = 'research'",
    )
    .await;
    assert_ne!(tagged[0][0], "0", "the sample has research-tagged rows");

    let ctx = support::outputs(&out).await;
    let by_group = |ctx: &SessionContext| {
        let ctx = ctx.clone();
        async move {
            support::query(
                &ctx,
                "SELECT billing_group, COUNT(*) FROM billable GROUP BY 1 ORDER BY 1",
            )
            .await
        }
    };
    let now = by_group(&ctx).await;
    let was = by_group(&support::outputs(&before).await).await;
    let research = now.iter().find(|r| r[0] == "research").unwrap();
    assert_eq!(research[1], tagged[0][0]);
    // Taken from the groups that held them by account (acme-labs holds 333333333333), nothing
    // else moved, and every row is still accounted for once.
    let count = |rows: &[Vec<String>], g: &str| -> i64 {
        rows.iter()
            .find(|r| r[0] == g)
            .map_or(0, |r| r[1].parse().unwrap())
    };
    let moved: i64 = was
        .iter()
        .map(|r| count(&was, &r[0]) - count(&now, &r[0]))
        .sum();
    assert_eq!(moved, research[1].parse::<i64>().unwrap());
    let period = &summary.periods[0];
    assert_eq!(period.control.billable_rows_written, period.input_rows);
    assert!(
        period
            .invoices
            .iter()
            .any(|i| i.billing_group == "research")
    );
}
