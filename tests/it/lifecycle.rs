//! A period's books through the binary (SPEC §6.2), on the sample month: run (drafts) → close
//! one group, then the rest (issued) → run (refused, exit 1) → run --correct after a price
//! change (a credit note and a replacement for the one group whose invoice changes, every
//! issued document byte-identical) → run --correct again (nothing new). The same steps run on
//! the S3 server (`s3.rs`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::str::FromStr;

use rerate::books::ledger::{Ledger, PeriodStatus};
use rerate::storage::Location;
use rust_decimal::Decimal;
use serde_json::Value;

use crate::support;

/// Where the books are kept: how to call the binary there, and where its files are on disk.
pub struct Books<'a> {
    /// Runs `rerate` with these arguments (and whatever the store needs).
    pub rerate: &'a dyn Fn(&[&str]) -> Output,
    /// The `--input` and `--output` URLs.
    pub input: &'a str,
    pub output: &'a str,
    /// The output, for reading its tables.
    pub location: Location,
    /// The output's files on this machine.
    pub files: PathBuf,
}

const PERIOD: &str = "2025-11";
const GROUPS: [&str; 4] = ["acme", "acme-labs", "globex", "initech"];

impl Books<'_> {
    fn run(&self, config: &Path, extra: &[&str]) -> Output {
        let mut args = vec!["run", "--config", config.to_str().unwrap()];
        args.extend(["--input", self.input, "--output", self.output, "--json"]);
        args.extend(extra);
        (self.rerate)(&args)
    }

    fn close(&self, config: &Path, extra: &[&str]) -> Output {
        let mut args = vec!["close", "--config", config.to_str().unwrap()];
        args.extend(["--output", self.output, "--period", PERIOD, "--json"]);
        args.extend(extra);
        (self.rerate)(&args)
    }

    fn documents_dir(&self) -> PathBuf {
        self.files.join(format!("invoices/billing_period={PERIOD}"))
    }

    /// An issued document's JSON.
    fn issued(&self, number: &str) -> Value {
        let path = self.documents_dir().join(format!("{number}.json"));
        serde_json::from_slice(&std::fs::read(&path).unwrap_or_else(|e| panic!("{path:?}: {e}")))
            .unwrap()
    }

    /// Every issued document's bytes, by file name.
    fn issued_files(&self) -> BTreeMap<String, Vec<u8>> {
        std::fs::read_dir(self.documents_dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .map(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read(&p).unwrap())
            })
            .collect()
    }

    fn drafts(&self) -> Vec<String> {
        support::files_under(&self.documents_dir().join("drafts"))
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    async fn ledger(&self) -> Ledger {
        let ctx = rerate::engine::new_context(&Default::default()).unwrap();
        Ledger::read(&ctx, &self.location).await.unwrap()
    }

    /// `SELECT billing_group, document_kind, status, revision, SUM(amount)` of `invoice_lines`.
    async fn invoice_lines(&self) -> Vec<Vec<String>> {
        let ctx = datafusion::prelude::SessionContext::new();
        let mut table =
            rerate::write::delta::open(&self.location.child(&["invoice_lines"])).unwrap();
        table.load().await.unwrap();
        ctx.register_table("lines", table.table_provider().await.unwrap())
            .unwrap();
        support::query(
            &ctx,
            "SELECT billing_group, invoice_number, document_kind, status, revision, \
             CAST(SUM(amount) AS VARCHAR) FROM lines GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 5, 2",
        )
        .await
    }
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: stdout {} stderr {}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

fn ok(o: &Output, what: &str) -> Value {
    assert!(
        o.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    json(o)
}

fn dec(v: &Value) -> Decimal {
    Decimal::from_str(v.as_str().unwrap_or_else(|| panic!("{v} is not a string"))).unwrap()
}

/// (number, kind, status, written) of each document a run summary lists.
fn listed(summary: &Value) -> Vec<(String, String, String, bool)> {
    summary["periods"][0]["invoices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["number"].as_str().unwrap().to_string(),
                d["kind"].as_str().unwrap().to_string(),
                d["status"].as_str().unwrap().to_string(),
                d["written"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// The whole lifecycle; `dir` holds the changed config.
pub async fn lifecycle(books: Books<'_>, dir: &Path) {
    let sample = support::repo().join("sample-data/billing.toml");

    // 1. An open period: a draft per group, under drafts/, marked DRAFT.
    let first = ok(&books.run(&sample, &[]), "first run");
    for (number, kind, status, written) in listed(&first) {
        assert_eq!(
            (kind.as_str(), status.as_str(), written),
            ("invoice", "draft", true),
            "{number}"
        );
    }
    let drafts = books.drafts();
    assert_eq!(drafts.len(), 2 * GROUPS.len(), "{drafts:?}");
    let draft_page =
        std::fs::read_to_string(books.documents_dir().join("drafts/ER-202511-acme.html")).unwrap();
    assert!(draft_page.contains("DRAFT"));
    assert!(
        books.issued_files().is_empty(),
        "nothing is issued while open"
    );
    let ledger = books.ledger().await;
    assert_eq!(ledger.entries.len(), GROUPS.len());
    assert!(
        ledger
            .entries
            .iter()
            .all(|e| e.status == PeriodStatus::Open)
    );

    // 2. Close one group, then the others: each draft becomes an issued invoice, once.
    let one = ok(&books.close(&sample, &["--group", "acme"]), "close acme");
    assert_eq!(one["issued"].as_array().unwrap().len(), 1);
    assert_eq!(one["issued"][0]["number"], "ER-202511-acme");
    assert_eq!(
        one["open"],
        serde_json::json!(["acme-labs", "globex", "initech"])
    );
    let acme = books.issued("ER-202511-acme");
    assert_eq!(
        (&acme["status"], &acme["kind"]),
        (&"issued".into(), &"invoice".into())
    );
    assert!(acme["issued_at"].is_string());
    assert!(
        !books
            .documents_dir()
            .join("drafts/ER-202511-acme.json")
            .exists(),
        "the closed group's draft is deleted"
    );
    assert_eq!(books.drafts().len(), 2 * (GROUPS.len() - 1));
    assert_eq!(acme["total"], first["periods"][0]["invoices"][0]["total"]);
    assert!(
        !std::fs::read_to_string(books.documents_dir().join("ER-202511-acme.html"))
            .unwrap()
            .contains("DRAFT")
    );
    let rest = ok(&books.close(&sample, &[]), "close the rest");
    assert_eq!(rest["issued"].as_array().unwrap().len(), 3);
    assert_eq!(rest["already_closed"], serde_json::json!(["acme"]));
    assert!(
        books.drafts().is_empty(),
        "no draft is left: {:?}",
        books.drafts()
    );
    let again = ok(&books.close(&sample, &[]), "close again");
    assert_eq!(
        again["issued"],
        serde_json::json!([]),
        "closing twice issues nothing"
    );
    let issued = books.issued_files();
    assert_eq!(issued.len(), 2 * GROUPS.len(), "{:?}", issued.keys());
    let ledger = books.ledger().await;
    assert!(
        ledger
            .entries
            .iter()
            .all(|e| e.status == PeriodStatus::Closed)
    );
    let acme_entries = ledger.group(PERIOD.parse().unwrap(), "acme");
    let acme_entry = acme_entries[0];
    assert_eq!(acme_entry.closed_at, acme_entry.issued_at);

    // 3. A closed period is not re-rated by accident.
    let refused = books.run(&sample, &[]);
    assert_eq!(refused.status.code(), Some(1));
    let summary = json(&refused);
    let error = summary["error"].as_str().unwrap();
    assert!(
        error.contains("period 2025-11 is closed for acme, acme-labs, globex, initech")
            && error.contains("--correct"),
        "{error}"
    );
    assert_eq!(
        books.ledger().await.version,
        ledger.version,
        "nothing committed"
    );
    assert_eq!(books.issued_files(), issued);

    // 4. A price change, corrected: Globex's plan marks up 3 % instead of 2.5 %.
    let text = std::fs::read_to_string(&sample).unwrap();
    let changed = dir.join("billing.toml");
    std::fs::write(
        &changed,
        text.replace(
            "type = \"markup\"\npercent = \"2.5\"",
            "type = \"markup\"\npercent = \"3\"",
        ),
    )
    .unwrap();
    let corrected = ok(&books.run(&changed, &["--correct"]), "correction");
    let new: Vec<_> = listed(&corrected)
        .into_iter()
        .filter(|(.., written)| *written)
        .map(|(number, kind, status, _)| (number, kind, status))
        .collect();
    let issued_new = |n: &str, k: &str| (n.to_string(), k.to_string(), "issued".to_string());
    assert_eq!(
        new,
        vec![
            issued_new("ER-202511-globex-CN1", "credit_note"),
            issued_new("ER-202511-globex-R2", "invoice"),
        ]
    );
    let after = books.issued_files();
    for (name, bytes) in &issued {
        assert!(after[name] == *bytes, "{name} changed");
    }
    let (original, note, replacement) = (
        books.issued("ER-202511-globex"),
        books.issued("ER-202511-globex-CN1"),
        books.issued("ER-202511-globex-R2"),
    );
    assert_eq!(note["cancels"], "ER-202511-globex");
    assert_eq!(replacement["replaces"], "ER-202511-globex");
    assert_eq!(
        (&note["revision"], &replacement["revision"]),
        (&1.into(), &2.into())
    );
    let lines = |d: &Value| d["lines"].as_array().unwrap().clone();
    assert_eq!(lines(&note).len(), lines(&original).len());
    for (a, b) in lines(&original).iter().zip(&lines(&note)) {
        assert_eq!(
            (&a["description"], dec(&a["amount"])),
            (&b["description"], -dec(&b["amount"]))
        );
    }
    assert_eq!(dec(&note["total"]), -dec(&original["total"]));
    assert!(
        dec(&replacement["total"]) > dec(&original["total"]),
        "3 % is more than 2.5 %"
    );
    assert!(
        std::fs::read_to_string(books.documents_dir().join("ER-202511-globex-CN1.html"))
            .unwrap()
            .contains("CREDIT NOTE")
    );

    // The tables tell the same story: invoice_lines holds every document issued, per group
    // adding up to what is owed now; periods/ records each file's hash.
    let rows = books.invoice_lines().await;
    let globex: Vec<&Vec<String>> = rows.iter().filter(|r| r[0] == "globex").collect();
    assert_eq!(
        globex
            .iter()
            .map(|r| (r[1].as_str(), r[2].as_str(), r[3].as_str()))
            .collect::<Vec<_>>(),
        vec![
            ("ER-202511-globex", "invoice", "issued"),
            ("ER-202511-globex-CN1", "credit_note", "issued"),
            ("ER-202511-globex-R2", "invoice", "issued"),
        ]
    );
    let owed: Decimal = globex
        .iter()
        .map(|r| Decimal::from_str(&r[5]).unwrap())
        .sum();
    assert_eq!(owed, dec(&replacement["total"]));
    let ledger = books.ledger().await;
    assert_eq!(ledger.entries.len(), GROUPS.len() + 2);
    for e in &ledger.entries {
        let bytes = std::fs::read(books.files.join(&e.json)).unwrap();
        assert_eq!(rerate::sha256_hex(&bytes), e.json_sha256, "{}", e.number);
    }

    // 5. Correcting again with nothing changed issues nothing; a run without --correct is
    // still refused.
    let unchanged = ok(&books.run(&changed, &["--correct"]), "second correction");
    assert!(listed(&unchanged).iter().all(|(.., written)| !written));
    assert_eq!(books.issued_files().len(), after.len());
    assert_eq!(books.run(&changed, &[]).status.code(), Some(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_period_runs_closes_refuses_and_is_corrected_by_credit_notes() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let input = support::repo().join("sample-data/cur");
    let rerate = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_rerate"))
            .args(args)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    };
    let books = Books {
        rerate: &rerate,
        input: input.to_str().unwrap(),
        output: out.to_str().unwrap(),
        location: Location::parse(out.to_str().unwrap(), &Default::default()).unwrap(),
        files: out.clone(),
    };
    lifecycle(books, tmp.path()).await;
}
