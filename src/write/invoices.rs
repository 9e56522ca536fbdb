//! Invoice documents: `invoices/billing_period=YYYY-MM/<group>.json` and `<group>.html`. A period
//! re-run overwrites them (numbers are stable) and, once the period has landed, removes
//! documents of groups no longer configured, like the Delta tables lose their partitions. Until
//! then the earlier documents are kept in memory (they are small), so a period that fails later
//! puts them back.

use std::collections::BTreeSet;

use object_store::ObjectStoreExt;
use object_store::path::Path;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::invoice::{Invoice, render};
use crate::period::Period;
use crate::storage::Location;
use crate::write::{Overwrites, exports};

/// Where one invoice went, for the run summary.
#[derive(Debug, Clone, Serialize)]
pub struct InvoiceRef {
    pub number: String,
    pub billing_group: String,
    pub currency: String,
    pub total: Decimal,
    pub lines: usize,
    pub json: String,
    pub html: String,
}

/// What a period's documents replaced: each written path's earlier bytes (`None`: there was
/// none) and the stale documents still to remove. Until [`Published::finish`], [`Published::undo`]
/// puts the folder back as it was.
pub struct Published {
    dir: Location,
    documents: Overwrites,
    stale: Vec<Path>,
}

/// Renders every invoice (all before the first write, so a rendering problem writes nothing),
/// keeps what each document replaces, then writes them. A failed write puts back what was
/// written before it.
pub async fn write_period(
    output: &Location,
    period: Period,
    invoices: &[Invoice],
) -> Result<(Vec<InvoiceRef>, Published)> {
    let dir = output.child(&["invoices", &format!("billing_period={period}")]);
    let mut documents = Vec::with_capacity(invoices.len() * 2);
    let mut refs = Vec::with_capacity(invoices.len());
    for inv in invoices {
        let html = render::html(inv).map_err(|error| Error::InvoiceRender {
            number: inv.number.clone(),
            error: Box::new(error),
        })?;
        let path = |ext: &str| {
            dir.prefix
                .clone()
                .join(format!("{}.{ext}", inv.billing_group))
        };
        refs.push(InvoiceRef {
            number: inv.number.clone(),
            billing_group: inv.billing_group.clone(),
            currency: inv.currency.clone(),
            total: inv.total,
            lines: inv.lines.len(),
            json: output.url_of(&path("json")).to_string(),
            html: output.url_of(&path("html")).to_string(),
        });
        documents.push((path("json"), render::json(inv)));
        documents.push((path("html"), html.into_bytes()));
    }
    let written: BTreeSet<&Path> = documents.iter().map(|(p, _)| p).collect();
    let stale: Vec<Path> = exports::list(&dir)
        .await?
        .into_iter()
        .filter(|p| !written.contains(p))
        .filter(|p| {
            p.extension()
                .is_some_and(|ext| ext == "json" || ext == "html")
        })
        .collect();
    let mut published = Published {
        dir: dir.clone(),
        documents: Overwrites::new(dir),
        stale,
    };
    for (path, body) in documents {
        if let Err(e) = published.documents.put(&path, body.into()).await {
            return Err(published.undone(e).await);
        }
    }
    Ok((refs, published))
}

impl Published {
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

    /// The period landed: removes documents of groups no longer configured. A document left
    /// behind is logged; the next run of the period removes it.
    pub async fn finish(self) {
        for p in &self.stale {
            if let Err(e) = self.dir.store.delete(p).await {
                tracing::warn!(document = %p, error = %e, "stale invoice document left");
            }
        }
    }
}
