//! Customer deliverables of a whole run over the bundled sample month: a JSON and an HTML
//! invoice and a pro forma CUR export for every group; a re-run keeps invoice numbers and
//! leaves no stale file; an export is valid rerate input (multi-level billing).

use std::path::PathBuf;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::Value;

use crate::support;

fn sample_config() -> PathBuf {
    support::repo().join("sample-data/billing.toml")
}

fn sample_input() -> PathBuf {
    support::repo().join("sample-data/cur")
}

fn dec(v: &Value) -> Decimal {
    Decimal::from_str(v.as_str().unwrap_or_else(|| panic!("{v} is not a string"))).unwrap()
}

fn url_path(url: &str) -> PathBuf {
    url::Url::parse(url).unwrap().to_file_path().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn sample_run_writes_an_invoice_and_an_export_per_group_and_reruns_without_stale_files() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let config = rerate::load_config(&sample_config()).unwrap();
    let first = support::run(&sample_config(), &sample_input(), &out)
        .await
        .unwrap_or_else(|e| panic!("{}", rerate::error_chain(&e)));
    let period = &first.periods[0];
    let groups: Vec<&str> = config.groups.iter().map(|g| g.name.as_str()).collect();
    let invoiced: Vec<&str> = period.invoices.iter().map(|i| &*i.billing_group).collect();
    let exported: Vec<&str> = period.exports.iter().map(|e| &*e.billing_group).collect();
    assert_eq!((invoiced, exported), (groups.clone(), groups));

    let ctx = support::outputs(&out).await;
    let line_totals = support::query(
        &ctx,
        "SELECT billing_group, CAST(SUM(amount) AS VARCHAR) FROM invoice_lines GROUP BY 1 ORDER BY 1",
    )
    .await;
    let proforma_rows = support::query(
        &ctx,
        "SELECT billing_group, COUNT(*) FROM proforma GROUP BY 1 ORDER BY 1",
    )
    .await;
    for (inv, export) in period.invoices.iter().zip(&period.exports) {
        let g = inv.billing_group.as_str();
        // An open period's invoices are drafts, named by their number.
        let dir = out.join("invoices/billing_period=2025-11/drafts");
        assert_eq!(url_path(&inv.json), dir.join(format!("ER-202511-{g}.json")));
        let json: Value =
            serde_json::from_slice(&std::fs::read(url_path(&inv.json)).unwrap()).unwrap();
        assert_eq!(json["number"], format!("ER-202511-{g}"));
        assert_eq!(
            (&json["status"], &json["kind"]),
            (&"draft".into(), &"invoice".into())
        );
        assert_eq!(dec(&json["total"]), inv.total);
        let lines: Decimal = json["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| dec(&l["amount"]))
            .sum();
        assert_eq!(
            lines,
            dec(&json["subtotal"]),
            "{g}: lines add up to the subtotal"
        );
        let html = std::fs::read_to_string(url_path(&inv.html)).unwrap();
        assert!(html.contains(&format!("ER-202511-{g}")));
        // invoice_lines holds the same lines: per invoice they sum to the total.
        let in_table = line_totals.iter().find(|r| r[0] == g).unwrap();
        assert_eq!(Decimal::from_str(&in_table[1]).unwrap(), inv.total, "{g}");

        // The export: the group's pro forma rows, and a manifest that lists its files.
        let rows = proforma_rows.iter().find(|r| r[0] == g).unwrap();
        assert_eq!(export.rows.to_string(), rows[1], "{g}");
        let manifest: Value = serde_json::from_slice(
            &std::fs::read(url_path(export.manifest.as_ref().unwrap())).unwrap(),
        )
        .unwrap();
        assert_eq!(manifest["rowCount"], export.rows);
        assert_eq!(
            manifest["billingPeriod"]["start"],
            "2025-11-01T00:00:00.000Z"
        );
        assert_eq!(
            manifest["dataFiles"].as_array().unwrap().len(),
            export.files.len()
        );
        for f in &export.files {
            assert!(url_path(f).exists(), "{f}");
            assert!(f.contains(&format!("/exports/{g}/data/BILLING_PERIOD=2025-11/")));
        }
    }

    // Leftovers of an earlier run (an export file under an older run's name, the draft of a
    // group since removed from the config) must be gone after a re-run.
    let data = out.join("exports/acme/data/BILLING_PERIOD=2025-11");
    let old_export = data.join("acme-20250101T000000Z-00000000-00001.snappy.parquet");
    std::fs::copy(url_path(&period.exports[0].files[0]), &old_export).unwrap();
    let old_invoice = out.join("invoices/billing_period=2025-11/drafts/ER-202511-removed.json");
    std::fs::write(&old_invoice, "{}").unwrap();

    let second = support::run(&sample_config(), &sample_input(), &out)
        .await
        .unwrap();
    let again = &second.periods[0];
    assert!(
        !old_export.exists(),
        "a stale export file survived the re-run"
    );
    assert!(!old_invoice.exists(), "a stale invoice survived the re-run");
    for (a, b) in period.invoices.iter().zip(&again.invoices) {
        assert_eq!((&a.number, a.total), (&b.number, b.total));
    }
    for export in &again.exports {
        let dir = out.join(format!(
            "exports/{}/data/BILLING_PERIOD=2025-11",
            export.billing_group
        ));
        let listed: Vec<PathBuf> = export.files.iter().map(|f| url_path(f)).collect();
        assert_eq!(
            support::files_under(&dir),
            listed,
            "exactly this run's files"
        );
    }
}

/// Multi-level billing: a customer's export is the next level's billable input, unchanged.
#[tokio::test(flavor = "multi_thread")]
async fn an_export_reads_back_as_rerate_input() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let first = support::run(&sample_config(), &sample_input(), &out)
        .await
        .unwrap();
    let acme = first.periods[0]
        .groups
        .iter()
        .find(|g| g.billing_group == "acme")
        .unwrap();
    let export = first.periods[0]
        .exports
        .iter()
        .find(|e| e.billing_group == "acme")
        .unwrap();

    let config = tmp.path().join("next-level.toml");
    std::fs::write(&config, include_str!("../fixtures/next-level.toml")).unwrap();
    let level2 = support::run(&config, &out.join("exports/acme"), &tmp.path().join("out2"))
        .await
        .unwrap_or_else(|e| panic!("{}", rerate::error_chain(&e)));
    let p = &level2.periods[0];
    assert_eq!(p.period.to_string(), "2025-11");
    assert_eq!(p.input_rows, export.rows);
    assert_eq!(p.unassigned.rows, 0);
    // What acme was charged is what the next level owes: the same amount, through CUR doubles.
    let diff = (p.control.billable_total - acme.proforma_cost).abs();
    assert!(
        diff < Decimal::new(1, 6),
        "billable {} at the next level, pro forma {} at this one",
        p.control.billable_total,
        acme.proforma_cost
    );
}
