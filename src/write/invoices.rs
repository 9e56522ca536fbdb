//! Invoice documents: `invoices/billing_period=YYYY-MM/<group>.json` and `<group>.html`. A period
//! re-run overwrites them (numbers are stable) and removes documents of groups no longer
//! configured, like the Delta tables lose their partitions.

use std::collections::BTreeSet;

use object_store::ObjectStoreExt;
use object_store::path::Path;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::invoice::{Invoice, render};
use crate::period::Period;
use crate::storage::Location;
use crate::write::exports;

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

/// Renders every invoice (all before the first write, so a rendering problem writes nothing),
/// then writes them and removes stale documents of the period.
pub async fn write_period(
    output: &Location,
    period: Period,
    invoices: &[Invoice],
) -> Result<Vec<InvoiceRef>> {
    let dir = output.child(&["invoices", &format!("billing_period={period}")]);
    let mut documents = Vec::with_capacity(invoices.len());
    for inv in invoices {
        let html = render::html(inv).map_err(|error| Error::InvoiceRender {
            number: inv.number.clone(),
            error: Box::new(error),
        })?;
        documents.push((inv, render::json(inv), html.into_bytes()));
    }
    let mut refs = Vec::with_capacity(invoices.len());
    let mut written = BTreeSet::new();
    for (inv, json, html) in documents {
        let json_path = dir
            .prefix
            .clone()
            .join(format!("{}.json", inv.billing_group));
        let html_path = dir
            .prefix
            .clone()
            .join(format!("{}.html", inv.billing_group));
        for (path, body) in [(&json_path, json), (&html_path, html)] {
            output
                .store
                .put(path, body.into())
                .await
                .map_err(|e| dir.storage_error(e))?;
        }
        refs.push(InvoiceRef {
            number: inv.number.clone(),
            billing_group: inv.billing_group.clone(),
            currency: inv.currency.clone(),
            total: inv.total,
            lines: inv.lines.len(),
            json: output.url_of(&json_path).to_string(),
            html: output.url_of(&html_path).to_string(),
        });
        written.insert(json_path);
        written.insert(html_path);
    }
    let stale: Vec<Path> = exports::list(&dir)
        .await?
        .into_iter()
        .filter(|p| !written.contains(p))
        .filter(|p| {
            p.extension()
                .is_some_and(|ext| ext == "json" || ext == "html")
        })
        .collect();
    for p in stale {
        output
            .store
            .delete(&p)
            .await
            .map_err(|e| dir.storage_error(e))?;
    }
    Ok(refs)
}
