//! Invoice documents (SPEC §6.2): `invoices/billing_period=YYYY-MM/<number>.json` and `.html`
//! for every document issued, written once and never again (a conditional put that refuses to
//! replace anything); `invoices/billing_period=YYYY-MM/drafts/<number>.json|html` for the
//! drafts of open groups, which every run replaces. Once a period has landed, drafts that are
//! no longer current (a group closed or removed) are deleted. Until then what each write
//! replaced is kept in memory (documents are small), so a period that fails later puts it back.

use std::collections::BTreeSet;

use object_store::ObjectStoreExt;
use object_store::path::Path;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::books::ledger::Entry;
use crate::error::{Error, Result};
use crate::invoice::{DocumentKind, Invoice, Status, render};
use crate::period::Period;
use crate::storage::Location;
use crate::write::{Overwrites, exports};

/// One document of the run summary.
#[derive(Debug, Clone, Serialize)]
pub struct InvoiceRef {
    pub number: String,
    pub billing_group: String,
    pub kind: DocumentKind,
    pub status: Status,
    pub revision: u32,
    pub currency: String,
    pub total: Decimal,
    pub json: String,
    pub html: String,
    pub json_sha256: String,
    /// Whether this run wrote it (issued documents from earlier are listed, never rewritten).
    pub written: bool,
}

impl InvoiceRef {
    pub fn of(output: &Location, entry: &Entry, status: Status, written: bool) -> InvoiceRef {
        let url = |relative: &str| output.url_of(&under(output, relative)).to_string();
        InvoiceRef {
            number: entry.number.clone(),
            billing_group: entry.billing_group.clone(),
            kind: entry.kind,
            status,
            revision: entry.revision,
            currency: entry.currency.clone(),
            total: entry.total,
            json: url(&entry.json),
            html: url(&entry.html),
            json_sha256: entry.json_sha256.clone(),
            written,
        }
    }
}

/// `relative` (a `/`-separated path) under `output`.
pub fn under(output: &Location, relative: &str) -> Path {
    relative
        .split('/')
        .fold(output.prefix.clone(), |path, part| path.join(part))
}

/// A rendered document: its JSON and HTML and where they go, relative to the output.
#[derive(Debug, Clone)]
pub struct Page {
    pub status: Status,
    pub json_path: String,
    pub json: Vec<u8>,
    pub html_path: String,
    pub html: String,
}

impl Page {
    pub fn of(period: Period, invoice: &Invoice) -> Result<Page> {
        let html = render::html(invoice).map_err(|error| Error::InvoiceRender {
            number: invoice.number.clone(),
            error: Box::new(error),
        })?;
        let dir = folder(period, invoice.status);
        Ok(Page {
            status: invoice.status,
            json_path: format!("{dir}/{}.json", invoice.number),
            json: render::json(invoice),
            html_path: format!("{dir}/{}.html", invoice.number),
            html,
        })
    }
}

/// Where documents of `status` go, relative to the output.
fn folder(period: Period, status: Status) -> String {
    match status {
        Status::Issued => format!("invoices/billing_period={period}"),
        Status::Draft => format!("invoices/billing_period={period}/drafts"),
    }
}

/// What a period's documents replaced: each written path's earlier bytes (`None`: there was
/// none) and the drafts no longer current, still to delete. Until [`Published::finish`],
/// [`Published::undo`] puts the folder back as it was.
pub struct Published {
    drafts: Location,
    documents: Overwrites,
    stale: Vec<Path>,
}

/// Writes `pages`: drafts over what was there, issued documents only where nothing is. The
/// drafts under `drafts/` that are neither written nor in `current` (paths relative to the
/// output) are deleted by [`Published::finish`]. A failed write puts back what was written
/// before it.
pub async fn write_period(
    output: &Location,
    period: Period,
    pages: &[Page],
    current: &BTreeSet<&str>,
) -> Result<Published> {
    let drafts = output.child(&["invoices", &format!("billing_period={period}"), "drafts"]);
    let keep: BTreeSet<Path> = pages
        .iter()
        .flat_map(|p| [p.json_path.as_str(), p.html_path.as_str()])
        .chain(current.iter().copied())
        .map(|relative| under(output, relative))
        .collect();
    let stale: Vec<Path> = exports::list(&drafts)
        .await?
        .into_iter()
        .filter(|p| !keep.contains(p))
        .collect();
    let mut published = Published {
        drafts,
        documents: Overwrites::new(output.child(&["invoices"])),
        stale,
    };
    for page in pages {
        let files = [
            (&page.json_path, page.json.clone()),
            (&page.html_path, page.html.clone().into_bytes()),
        ];
        for (relative, body) in files {
            let path = under(output, relative);
            let written = match page.status {
                Status::Draft => published.documents.put(&path, body.into()).await,
                Status::Issued => published.documents.create(&path, body.into()).await,
            };
            if let Err(e) = written {
                return Err(published.undone(e).await);
            }
        }
    }
    Ok(published)
}

impl Published {
    /// Writes the period's report at `relative` (under the output), over the earlier one:
    /// undone with the documents.
    pub async fn put_report(
        &mut self,
        output: &Location,
        relative: &str,
        html: String,
    ) -> Result<()> {
        let path = under(output, relative);
        if let Err(e) = self.documents.put(&path, html.into_bytes().into()).await {
            return Err(self.undone(e).await);
        }
        Ok(())
    }

    /// Puts back every document as it was before this period's write.
    pub async fn undo(&self) -> Result<()> {
        self.documents.undo().await
    }

    /// `error`, after undoing what was written; an undo that fails too is logged, the first
    /// error is the one to report.
    async fn undone(&self, error: Error) -> Error {
        if let Err(undo) = self.undo().await {
            tracing::error!(error = %undo, "could not put the earlier invoice documents back");
        }
        error
    }

    /// The period landed: deletes drafts no longer current. One left behind is logged; the
    /// next run of the period deletes it.
    pub async fn finish(self) {
        for p in &self.stale {
            if let Err(e) = self.drafts.store.delete(p).await {
                tracing::warn!(document = %p, error = %e, "stale draft left");
            }
        }
    }
}
