//! The binary as a scheduler sees it: exit codes, messages that say what and where, nothing
//! written for a failed period, `--json`, re-runs, `explain` and `validate`. Bad inputs one by
//! one: `corpus.rs`.

use std::path::Path;
use std::process::{Command, Output};

use crate::support;

fn rerate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rerate"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("rerate runs")
}

/// `rerate VERB --config … --input …` plus `extra` flags.
fn on_input(verb: &str, config: &Path, input: &str, extra: &[&str]) -> Output {
    let mut args = vec![verb, "--config", config.to_str().unwrap(), "--input", input];
    args.extend(extra);
    rerate(&args)
}

/// `rerate run --config … --input … --output …` plus `extra` flags.
fn run(config: &Path, input: &str, output: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["--output", output.to_str().unwrap()];
    args.extend(extra);
    on_input("run", config, input, &args)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The E1 scenario's input as CUR Parquet under `dir/cur`, and its config path.
async fn e1_input(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let scenario = support::repo().join("tests/scenarios/e1-rules-do-not-stack");
    let cur = dir.join("cur");
    support::csv_to_cur_parquet(
        &scenario.join("input.csv"),
        &cur.join("data/BILLING_PERIOD=2025-11/e1.parquet"),
    )
    .await;
    (scenario.join("billing.toml"), cur)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_prints_its_summary_and_a_rerun_replaces_the_period() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, cur) = e1_input(tmp.path()).await;
    let out = tmp.path().join("out");
    let first = run(&config, cur.to_str().unwrap(), &out, &["--json"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let summary: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(summary["status"], "succeeded");
    assert_eq!(summary["periods"][0]["input_rows"], 5);
    assert_eq!(summary["periods"][0]["control"]["billable_rows_written"], 5);
    let manifest = out
        .join("runs")
        .join(format!("{}.json", summary["run_id"].as_str().unwrap()));
    assert!(
        manifest.exists(),
        "run manifest {} missing",
        manifest.display()
    );

    let second = run(&config, cur.to_str().unwrap(), &out, &["--json"]);
    assert!(second.status.success(), "{}", stderr(&second));
    let ctx = support::outputs(&out).await;
    // The period was replaced, not appended to.
    let rows = support::query(
        &ctx,
        "SELECT count(*), CAST(sum(line_item_unblended_cost) AS DECIMAL(18,2)) FROM billable",
    )
    .await;
    assert_eq!(rows, vec![vec!["5".to_string(), "1215.00".to_string()]]);
    let again: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    let versions =
        |s: &serde_json::Value| s["periods"][0]["tables"][0]["version"].as_i64().unwrap();
    assert_eq!(versions(&again), versions(&summary) + 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_config_lists_every_problem_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, cur) = e1_input(tmp.path()).await;
    let config = tmp.path().join("bad.toml");
    std::fs::write(&config, include_str!("../fixtures/four-problems.toml")).unwrap();
    let out = tmp.path().join("out");
    let o = run(&config, cur.to_str().unwrap(), &out, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("bad.toml"), "names the file: {err}");
    assert!(err.contains("colour"), "names the unknown key: {err}");
    assert!(!out.exists(), "nothing may be written for a bad config");
}

/// A scheduler reading `--json` learns how a failed run ended: from its manifest once it has
/// one (an input that cannot be billed), or status and error alone (a bad config).
#[tokio::test(flavor = "multi_thread")]
async fn json_summarizes_a_failed_run_too() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, cur) = e1_input(tmp.path()).await;
    let out = tmp.path().join("out");
    let o = run(
        &config,
        cur.to_str().unwrap(),
        &out,
        &["--json", "--period", "2024-01"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["status"], "failed");
    assert!(
        v["error"].as_str().unwrap().contains("2024-01 not found"),
        "{v}"
    );
    assert_eq!(v["input"]["files"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["periods"].as_array().unwrap().len(), 0, "{v}");

    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, include_str!("../fixtures/four-problems.toml")).unwrap();
    let o = run(&bad, cur.to_str().unwrap(), &out, &["--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["status"], "failed");
    assert!(v["error"].as_str().unwrap().contains("colour"), "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn explain_names_the_rule_that_applied_and_the_ones_it_beat() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, cur) = e1_input(tmp.path()).await;
    let explain = |id: &str| {
        on_input(
            "explain",
            &config,
            cur.to_str().unwrap(),
            &["--line-item-id", id],
        )
    };
    let o = explain("e1-s3");
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("group:     acme (matched by organization)"),
        "{text}"
    );
    assert!(
        text.contains(
            "  rules:     the most specific applies\n             \
             #  rule       does           value after\n             \
             1  s3-10-off  discount 10 %          180\n"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "not applied: all-5-off (less specific: one rule applies, the most specific)"
        ),
        "{text}"
    );
    assert!(text.contains("pro forma: 180.0000000000"), "{text}");

    let missing = explain("nope");
    assert_eq!(missing.status.code(), Some(1));
}

/// SPEC E8 through `rerate explain`: an ordered chain, each rule with the value after it, and
/// the rule a final one kept from applying.
#[tokio::test(flavor = "multi_thread")]
async fn explain_shows_an_ordered_chain_step_by_step() {
    let tmp = tempfile::tempdir().unwrap();
    let scenario = support::repo().join("tests/scenarios/e8-ordered-rules-stop-at-a-final-one");
    let cur = tmp.path().join("cur");
    support::csv_to_cur_parquet(
        &scenario.join("input.csv"),
        &cur.join("data/BILLING_PERIOD=2025-11/e8.parquet"),
    )
    .await;
    let config = scenario.join("billing.toml");
    let o = on_input(
        "explain",
        &config,
        cur.to_str().unwrap(),
        &["--line-item-id", "e8-s3"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    let expected = "  rules:     applied in order\n             \
                    #  rule       does           value after\n             \
                    1  all-10-up  markup 10 %            110\n             \
                    2  s3-20-off  discount 20 %           88\n  \
                    not applied: all-5-off (after a final rule)\n";
    assert!(text.contains(expected), "{text}");
    assert!(text.contains("pro forma: 88.0000000000"), "{text}");
    let json = on_input(
        "explain",
        &config,
        cur.to_str().unwrap(),
        &["--line-item-id", "e8-ec2", "--json"],
    );
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let steps: Vec<(&str, &str)> = v[0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["rule"].as_str().unwrap(), s["value"].as_str().unwrap()))
        .collect();
    assert_eq!(steps, [("all-10-up", "110"), ("all-5-off", "104.5")]);
}

#[tokio::test(flavor = "multi_thread")]
async fn validate_reports_periods_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, cur) = e1_input(tmp.path()).await;
    let before: Vec<_> = support::paths_under(tmp.path());
    let o = on_input("validate", &config, cur.to_str().unwrap(), &["--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["periods"]["2025-11"], 5);
    assert_eq!(support::paths_under(tmp.path()), before);
}

/// `validate` checks bill currencies and the FX rates they need as `run` does: a CNY group
/// invoiced in EUR validates with its [fx."P".CNY] rate, and without it names the key to add;
/// a group over a USD and a CNY payer is refused.
#[tokio::test(flavor = "multi_thread")]
async fn validate_checks_bill_currencies_and_their_fx_rates() {
    let tmp = tempfile::tempdir().unwrap();
    let scenarios = support::repo().join("tests/scenarios");
    let input = |name: &str| {
        let cur = tmp.path().join(name);
        let csv = scenarios.join(name).join("input.csv");
        async move {
            support::csv_to_cur_parquet(&csv, &cur.join("data/part.parquet")).await;
            cur
        }
    };
    let cny = input("bill-currency-cny-invoiced-in-eur").await;
    let config = scenarios.join("bill-currency-cny-invoiced-in-eur/billing.toml");
    let ok = on_input("validate", &config, cny.to_str().unwrap(), &["--json"]);
    assert!(ok.status.success(), "{}", stderr(&ok));

    let without = tmp.path().join("without-cny-rate.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &without,
        text.replace("[fx.\"2025-11\".CNY]", "[fx.\"2025-10\".CNY]"),
    )
    .unwrap();
    let missing = on_input("validate", &without, cny.to_str().unwrap(), &[]);
    assert_eq!(missing.status.code(), Some(1), "{}", stderr(&missing));
    assert!(
        stderr(&missing).contains("no FX rate from CNY to EUR for billing period 2025-11"),
        "{}",
        stderr(&missing)
    );
    assert!(stderr(&missing).contains("under [fx.\"2025-11\".CNY]"));

    let name = "bill-currency-group-spanning-two-currencies-fails";
    let both = input(name).await;
    let config = scenarios.join(name).join("billing.toml");
    let refused = on_input("validate", &config, both.to_str().unwrap(), &[]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(
        stderr(&refused)
            .contains("billing group \"acme\" spans payers billed in different currencies"),
        "{}",
        stderr(&refused)
    );
}

#[test]
fn a_period_missing_from_the_input_is_a_user_error() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (config, cur) = rt.block_on(e1_input(tmp.path()));
    let o = run(
        &config,
        cur.to_str().unwrap(),
        &tmp.path().join("o"),
        &["--period", "2024-01"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("2024-01 not found in the input; periods found: 2025-11"),
        "{}",
        stderr(&o)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_memory_limit_is_taken_from_the_flag_and_a_bad_flag_is_a_user_error() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, cur) = e1_input(tmp.path()).await;
    let with_limit = |limit: &str, out: &str| {
        let extra = ["--memory-limit", limit, "--json"];
        run(
            &config,
            cur.to_str().unwrap(),
            &tmp.path().join(out),
            &extra,
        )
    };
    let bounded = with_limit("64MiB", "bounded");
    assert!(bounded.status.success(), "{}", stderr(&bounded));
    let summary: serde_json::Value = serde_json::from_slice(&bounded.stdout).unwrap();
    let total: rust_decimal::Decimal = summary["periods"][0]["control"]["proforma_total"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(total, rust_decimal::Decimal::new(11775, 1), "SPEC §9 E1");
    let bad = with_limit("lots", "bad");
    assert_eq!(bad.status.code(), Some(1), "{}", stderr(&bad));
    assert!(
        stderr(&bad).contains("\"lots\" is not a size"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn credentials_in_a_location_are_refused_and_never_printed() {
    let tmp = tempfile::tempdir().unwrap();
    let config = support::repo().join("tests/scenarios/e1-rules-do-not-stack/billing.toml");
    let out = tmp.path().join("out");
    let o = run(
        &config,
        "s3://AKIAEXAMPLE:s3cr3t@cur-exports/acme",
        &out,
        &[],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("credentials in a location are refused"),
        "{err}"
    );
    assert!(!err.contains("s3cr3t"), "{err}");
    assert!(!out.exists(), "nothing may be written");
}
