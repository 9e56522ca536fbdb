//! The books of a period (SPEC §6.2): drafts while a group's period is open, issued documents
//! once it is closed, credit notes and replacements when a closed period is corrected. Issued
//! documents are never changed or deleted: each is written once, at a path named by its number,
//! and `periods/` ([`ledger`]) records its number, total and SHA-256.
//!
//! Both `rerate run` and `rerate close` end the same way: the period's [`Document`]s, decided
//! in memory, are [`render`]ed (entries for `periods/`, lines for `invoice_lines/`, pages to
//! write), and land with the tables (`run`) or on their own (`close`).

pub mod close;
pub mod ledger;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use datafusion::prelude::SessionContext;
use object_store::ObjectStoreExt;

use crate::error::{Error, Result};
use crate::invoice::{DocumentKind, Invoice, Status};
use crate::period::Period;
use crate::storage::Location;
use crate::write::delta::{self, TableCommit};
use crate::write::invoices::{InvoiceRef, Page, under};
use ledger::{Entry, Ledger, PeriodStatus};

/// One document of a period after a run or a close.
#[derive(Debug, Clone)]
pub enum Document {
    /// The draft of an open group's period, written under `drafts/`: every run replaces it.
    Draft(Invoice),
    /// Issued now (by `close`, or by a correction): written once, never replaced.
    New(Invoice),
    /// Already in `periods/` (an issued document, or a draft `close` leaves open): as it is.
    Kept(Box<Stored>),
}

/// A document `periods/` records, read back from its file.
#[derive(Debug, Clone)]
pub struct Stored {
    pub entry: Entry,
    pub invoice: Invoice,
}

impl Document {
    pub fn invoice(&self) -> &Invoice {
        match self {
            Document::Draft(invoice) | Document::New(invoice) => invoice,
            Document::Kept(stored) => &stored.invoice,
        }
    }
}

/// Reads every document `periods/` records for `period` and `groups` (all when `None`), each
/// checked against its recorded SHA-256: per group, oldest first.
pub async fn stored(
    output: &Location,
    ledger: &Ledger,
    period: Period,
    groups: Option<&[&str]>,
) -> Result<BTreeMap<String, Vec<Stored>>> {
    let mut out: BTreeMap<String, Vec<Stored>> = BTreeMap::new();
    for entry in ledger.of(period) {
        if groups.is_some_and(|g| !g.contains(&entry.billing_group.as_str())) {
            continue;
        }
        let json = read_checked(output, &entry.json, &entry.json_sha256).await?;
        read_checked(output, &entry.html, &entry.html_sha256).await?;
        let invoice = serde_json::from_slice(&json).map_err(|e| Error::BadLedger {
            table: output.child(&[ledger::TABLE]).to_string(),
            what: format!("{} does not read as a document: {e}", entry.json),
        })?;
        out.entry(entry.billing_group.clone())
            .or_default()
            .push(Stored {
                entry: entry.clone(),
                invoice,
            });
    }
    Ok(out)
}

/// The bytes at `relative` under `output`, which must hash to `sha256`.
async fn read_checked(output: &Location, relative: &str, sha256: &str) -> Result<Vec<u8>> {
    let path = under(output, relative);
    let url = output.url_of(&path).to_string();
    let bytes = match output.store.get(&path).await {
        Ok(got) => got.bytes().await.map_err(|e| output.storage_error(e))?,
        Err(e) => return Err(output.storage_error(e)),
    };
    let found = crate::sha256_hex(&bytes);
    if found != sha256 {
        return Err(Error::DocumentChanged {
            document: url,
            expected: sha256.to_string(),
            found,
        });
    }
    Ok(bytes.to_vec())
}

/// The documents of a period after a run that drafted `drafts` (one per configured group),
/// given what closed groups were issued (`stored`, per group, oldest first). An open group
/// gets its draft. A closed group keeps every document it was issued; if the draft charges
/// other than its current invoice, a credit note cancelling that invoice and a replacement are
/// issued at `at`. A closed group no longer configured keeps its documents as they are.
pub fn after_run(
    drafts: Vec<Invoice>,
    mut stored: BTreeMap<String, Vec<Stored>>,
    at: DateTime<Utc>,
) -> Vec<Document> {
    let mut out = Vec::with_capacity(drafts.len());
    for draft in drafts {
        let issued = stored
            .remove(&draft.billing_group)
            .unwrap_or_default()
            .into_iter()
            .filter(|s| s.entry.is_closed())
            .collect::<Vec<_>>();
        let Some(current) = current_invoice(&issued) else {
            out.push(Document::Draft(draft));
            continue;
        };
        let corrected = (!draft.charges_the_same(current)).then(|| {
            let base = &issued[0].invoice.number;
            let k = issued
                .iter()
                .filter(|s| s.invoice.kind == DocumentKind::CreditNote)
                .count()
                + 1;
            let note = current.credit_note(format!("{base}-CN{k}"), at);
            let replacement = draft.replacement(format!("{base}-R{}", k + 1), current, at);
            [Document::New(note), Document::New(replacement)]
        });
        out.extend(issued.into_iter().map(|s| Document::Kept(Box::new(s))));
        out.extend(corrected.into_iter().flatten());
    }
    for (group, documents) in stored {
        if documents.iter().any(|s| s.entry.is_closed()) {
            tracing::warn!(
                group,
                "closed group no longer configured: its issued documents stand as they are"
            );
            out.extend(documents.into_iter().map(|s| Document::Kept(Box::new(s))));
        }
    }
    out
}

/// The invoice in force: the highest revision issued (documents are oldest first).
fn current_invoice(issued: &[Stored]) -> Option<&Invoice> {
    issued
        .iter()
        .rev()
        .map(|s| &s.invoice)
        .find(|i| i.kind == DocumentKind::Invoice)
}

/// What a period's documents become: the rows of `periods/`, the pages to write (new drafts
/// and newly issued documents; kept documents are not written again) and what the run
/// summary lists.
pub struct Rendered {
    pub entries: Vec<Entry>,
    pub pages: Vec<Page>,
    pub refs: Vec<InvoiceRef>,
}

impl Rendered {
    /// The drafts of the groups left open (paths relative to the output): every other file
    /// under `drafts/` is stale once the period has landed.
    pub fn current_drafts(&self) -> BTreeSet<&str> {
        self.entries
            .iter()
            .filter(|e| !e.is_closed())
            .flat_map(|e| [e.json.as_str(), e.html.as_str()])
            .collect()
    }
}

/// Commits `entries` as `period`'s rows of `periods/`, unless the table is no longer at
/// `expected` (the version read, or the caller's own last commit): someone else wrote it since
/// (a close and a run of the same output at once), so nothing is committed, and the caller
/// undoes what it did.
pub async fn commit_entries(
    ctx: &SessionContext,
    output: &Location,
    period: Period,
    expected: Option<u64>,
    entries: &[Entry],
) -> Result<TableCommit> {
    let location = output.child(&[ledger::TABLE]);
    let now = delta::load(&location).await?.and_then(|t| t.version());
    if now != expected {
        return Err(Error::ConcurrentChange {
            table: location.to_string(),
            read: expected,
            found: now,
        });
    }
    let rows = ctx.read_batch(ledger::batch(entries)?)?;
    delta::replace_period(ctx, output, ledger::TABLE, rows, period).await
}

/// Renders every document to write (all before the first write, so that a rendering problem
/// writes nothing) and records each in a `periods/` entry written by `run_id`.
pub fn render(
    output: &Location,
    period: Period,
    documents: &[Document],
    run_id: &str,
) -> Result<Rendered> {
    // A closed group's period was closed when its first document was issued.
    let mut closed_at: BTreeMap<&str, DateTime<Utc>> = BTreeMap::new();
    for d in documents {
        let (group, at) = match d {
            Document::Kept(s) => (&s.entry.billing_group, s.entry.closed_at),
            Document::New(i) => (&i.billing_group, i.issued_at),
            Document::Draft(_) => continue,
        };
        if let Some(at) = at {
            closed_at
                .entry(group.as_str())
                .and_modify(|t| *t = (*t).min(at))
                .or_insert(at);
        }
    }
    let mut rendered = Rendered {
        entries: Vec::with_capacity(documents.len()),
        pages: Vec::new(),
        refs: Vec::with_capacity(documents.len()),
    };
    for d in documents {
        let invoice = match d {
            Document::Kept(s) => {
                rendered
                    .refs
                    .push(InvoiceRef::of(output, &s.entry, s.invoice.status, false));
                rendered.entries.push(s.entry.clone());
                continue;
            }
            Document::Draft(invoice) | Document::New(invoice) => invoice,
        };
        let page = Page::of(period, invoice)?;
        let closed_at = closed_at.get(invoice.billing_group.as_str()).copied();
        let entry = Entry {
            billing_period: period,
            billing_group: invoice.billing_group.clone(),
            status: match invoice.status {
                Status::Draft => PeriodStatus::Open,
                Status::Issued => PeriodStatus::Closed,
            },
            closed_at: closed_at.filter(|_| invoice.status == Status::Issued),
            run_id: run_id.to_string(),
            number: invoice.number.clone(),
            kind: invoice.kind,
            revision: invoice.revision,
            replaces: invoice.replaces.clone(),
            cancels: invoice.cancels.clone(),
            issued_at: invoice.issued_at,
            currency: invoice.currency.clone(),
            total: invoice.total,
            json: page.json_path.clone(),
            json_sha256: crate::sha256_hex(&page.json),
            html: page.html_path.clone(),
            html_sha256: crate::sha256_hex(page.html.as_bytes()),
        };
        rendered
            .refs
            .push(InvoiceRef::of(output, &entry, invoice.status, true));
        rendered.entries.push(entry);
        rendered.pages.push(page);
    }
    Ok(rendered)
}

#[cfg(test)]
mod tests {
    use rust_decimal::Decimal;

    use super::*;
    use crate::invoice::{ChargeKind, InvoiceLine, TaxLine};

    fn at(day: u32) -> DateTime<Utc> {
        chrono::NaiveDate::from_ymd_opt(2025, 12, day)
            .unwrap()
            .and_hms_opt(9, 0, 0)
            .unwrap()
            .and_utc()
    }

    fn draft(group: &str, usage: i64) -> Invoice {
        let period: Period = "2025-11".parse().unwrap();
        let amount = Decimal::from(usage);
        let tax = amount * Decimal::from(23) / Decimal::ONE_HUNDRED;
        Invoice {
            number: format!("ER-202511-{group}"),
            kind: DocumentKind::Invoice,
            status: Status::Draft,
            revision: 1,
            replaces: None,
            cancels: None,
            issued_at: None,
            billing_group: group.into(),
            display_name: group.into(),
            billing_period: period,
            period_start: period.first_day(),
            period_end: period.end_exclusive().pred_opt().unwrap(),
            issue_date: period.end_exclusive(),
            due_date: period.end_exclusive() + chrono::Days::new(30),
            payment_terms_days: 30,
            currency: "EUR".into(),
            bill_currency: "USD".into(),
            fx_rate: "0.9".parse().unwrap(),
            issuer: None,
            bill_to: crate::config::Party {
                name: group.into(),
                address: vec![],
                tax_id: None,
            },
            lines: vec![InvoiceLine {
                description: "Amazon EC2".into(),
                service: "AmazonEC2".into(),
                service_name: "Amazon EC2".into(),
                kind: ChargeKind::Usage,
                bill_amount: amount / Decimal::from_str_exact("0.9").unwrap(),
                amount,
            }],
            subtotal: amount,
            taxes: vec![TaxLine {
                label: "VAT".into(),
                percent: Decimal::from(23),
                reverse_charge: false,
                note: None,
                amount: tax,
            }],
            total: amount + tax,
        }
    }

    /// What `periods/` would hold after `documents` landed, read back as stored documents.
    fn landed(documents: Vec<Document>) -> BTreeMap<String, Vec<Stored>> {
        let output = Location::parse("/tmp/out", &Default::default()).unwrap();
        let period = "2025-11".parse().unwrap();
        let rendered = render(&output, period, &documents, "run-1").unwrap();
        let mut out: BTreeMap<String, Vec<Stored>> = BTreeMap::new();
        for (entry, d) in rendered.entries.into_iter().zip(&documents) {
            out.entry(entry.billing_group.clone())
                .or_default()
                .push(Stored {
                    entry,
                    invoice: d.invoice().clone(),
                });
        }
        out
    }

    fn numbers(documents: &[Document]) -> Vec<(&'static str, String)> {
        documents
            .iter()
            .map(|d| {
                let kind = match d {
                    Document::Draft(_) => "draft",
                    Document::New(_) => "new",
                    Document::Kept(_) => "kept",
                };
                (kind, d.invoice().number.clone())
            })
            .collect()
    }

    #[test]
    fn open_groups_get_drafts_and_unchanged_closed_groups_keep_their_invoice() {
        let closed = landed(vec![Document::New(draft("acme", 100).issued(at(3)))]);
        let docs = after_run(vec![draft("acme", 100), draft("globex", 50)], closed, at(9));
        assert_eq!(
            numbers(&docs),
            vec![
                ("kept", "ER-202511-acme".into()),
                ("draft", "ER-202511-globex".into())
            ]
        );
    }

    #[test]
    fn a_changed_closed_invoice_gets_a_credit_note_and_a_replacement_each_time() {
        let issued = draft("acme", 100).issued(at(3));
        let stored = landed(vec![Document::New(issued.clone())]);
        let first = after_run(vec![draft("acme", 120)], stored, at(9));
        assert_eq!(
            numbers(&first),
            vec![
                ("kept", "ER-202511-acme".into()),
                ("new", "ER-202511-acme-CN1".into()),
                ("new", "ER-202511-acme-R2".into()),
            ]
        );
        let (note, replacement) = (first[1].invoice(), first[2].invoice());
        assert_eq!(note.kind, DocumentKind::CreditNote);
        assert_eq!(note.cancels.as_deref(), Some("ER-202511-acme"));
        assert_eq!((note.revision, replacement.revision), (1, 2));
        assert_eq!(replacement.replaces.as_deref(), Some("ER-202511-acme"));
        // Line by line, the credit note takes back exactly what was issued.
        for (a, b) in issued.lines.iter().zip(&note.lines) {
            assert_eq!(
                (a.amount + b.amount, a.bill_amount + b.bill_amount),
                (0.into(), 0.into())
            );
        }
        assert_eq!(issued.total + note.total, Decimal::ZERO);
        assert_eq!(replacement.total, draft("acme", 120).total);
        // Corrections are dated when issued; the first issue date stays the period's.
        assert_eq!(note.issue_date, at(9).date_naive());
        assert_eq!(note.status, Status::Issued);

        // A second correction cancels the replacement, not the first invoice.
        let second = after_run(vec![draft("acme", 90)], landed(first), at(20));
        let numbers = numbers(&second);
        assert_eq!(
            numbers[3..],
            [
                ("new", "ER-202511-acme-CN2".into()),
                ("new", "ER-202511-acme-R3".into())
            ]
        );
        assert_eq!(
            second[3].invoice().cancels.as_deref(),
            Some("ER-202511-acme-R2")
        );
        assert_eq!(second[4].invoice().revision, 3);
        // Every document ever issued, summed, is what is owed now.
        let owed: Decimal = second.iter().map(|d| d.invoice().total).sum();
        assert_eq!(owed, draft("acme", 90).total);
        // And a run that changes nothing more adds nothing.
        let again = after_run(vec![draft("acme", 90)], landed(second), at(21));
        assert!(again.iter().all(|d| matches!(d, Document::Kept(_))));
    }

    #[test]
    fn entries_record_status_closing_time_and_hashes() {
        let documents = vec![
            Document::New(draft("acme", 100).issued(at(3))),
            Document::Draft(draft("globex", 50)),
        ];
        let output = Location::parse("/tmp/out", &Default::default()).unwrap();
        let r = render(&output, "2025-11".parse().unwrap(), &documents, "run-1").unwrap();
        let (acme, globex) = (&r.entries[0], &r.entries[1]);
        assert_eq!(
            (acme.status, acme.closed_at),
            (PeriodStatus::Closed, Some(at(3)))
        );
        assert_eq!(
            acme.json,
            "invoices/billing_period=2025-11/ER-202511-acme.json"
        );
        assert_eq!(acme.json_sha256, crate::sha256_hex(&r.pages[0].json));
        assert_eq!(
            (globex.status, globex.closed_at),
            (PeriodStatus::Open, None)
        );
        assert_eq!(
            globex.html,
            "invoices/billing_period=2025-11/drafts/ER-202511-globex.html"
        );
    }
}
