//! `rerate close`: issues the drafts of a period's last run, for every open group or the ones
//! named. Each becomes an issued invoice (`status = "issued"`, `issued_at`), written once under
//! its number; `invoice_lines/` and `periods/` commit the change, and only then are the drafts
//! deleted. A failure before that restores both tables and removes what it wrote, so a close
//! lands whole or not at all, and closing again is safe.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tracing::info;

use super::ledger::Ledger;
use super::{Document, render, stored};
use crate::error::{Error, Result};
use crate::period::Period;
use crate::storage::Location;
use crate::write::delta::{self, TableCommit};
use crate::write::invoices::{self, InvoiceRef};
use crate::{engine, invoice};

/// What `rerate close` was asked to do (its flags: the doc comments are the help).
#[derive(Debug, Clone, clap::Args)]
pub struct CloseOptions {
    /// The billing configuration (billing.toml).
    #[arg(long, short)]
    pub config: PathBuf,
    /// Output location (default: [io] output).
    #[arg(long)]
    pub output: Option<String>,
    /// The billing period to close (YYYY-MM).
    #[arg(long)]
    pub period: Period,
    /// Close only this group (repeatable). Default: every open group of the period.
    #[arg(long = "group")]
    pub groups: Vec<String>,
}

/// What a close did.
#[derive(Debug, Clone, Serialize)]
pub struct CloseSummary {
    pub close_id: String,
    pub period: Period,
    pub output: String,
    pub closed_at: DateTime<Utc>,
    /// The invoices this close issued.
    pub issued: Vec<InvoiceRef>,
    /// Groups asked for that were closed already (nothing changes for them).
    pub already_closed: Vec<String>,
    /// Groups of the period still open.
    pub open: Vec<String>,
    pub tables: Vec<TableCommit>,
}

/// Closes `opts.period`: see the module's doc.
pub async fn close(opts: &CloseOptions) -> Result<CloseSummary> {
    let config = crate::load_config(&opts.config)?;
    let url = opts
        .output
        .as_deref()
        .or(config.io.output.as_deref())
        .ok_or(Error::NoOutput)?;
    let output = Location::parse(url, &config.storage)?;
    let ctx = engine::new_context(&config.engine)?;
    engine::register(&ctx, &output);
    let (period, at) = (opts.period, Utc::now());
    if at.date_naive() < period.end_exclusive() {
        return Err(Error::PeriodNotEnded {
            period,
            ends: period.end_exclusive(),
        });
    }

    let ledger = Ledger::read(&ctx, &output).await?;
    let mut groups: Vec<&str> = ledger
        .of(period)
        .map(|e| e.billing_group.as_str())
        .collect();
    groups.dedup();
    if groups.is_empty() {
        return Err(Error::PeriodNotRun {
            period,
            output: output.to_string(),
        });
    }
    for g in &opts.groups {
        if !groups.contains(&g.as_str()) {
            return Err(Error::GroupNotInPeriod {
                period,
                group: g.clone(),
                groups: groups.join(", "),
            });
        }
    }
    let closed = ledger.closed_groups(period);
    let asked: Vec<&str> = if opts.groups.is_empty() {
        groups.clone()
    } else {
        groups
            .iter()
            .copied()
            .filter(|g| opts.groups.iter().any(|a| a == g))
            .collect()
    };
    let (already_closed, to_close): (Vec<&str>, Vec<&str>) =
        asked.into_iter().partition(|g| closed.contains(g));
    let close_id = format!("close-{}", at.format("%Y%m%dT%H%M%SZ"));
    let mut summary = CloseSummary {
        close_id: close_id.clone(),
        period,
        output: output.to_string(),
        closed_at: at,
        issued: Vec::new(),
        already_closed: already_closed.iter().map(|g| g.to_string()).collect(),
        open: groups
            .iter()
            .filter(|g| !closed.contains(g) && !to_close.contains(g))
            .map(|g| g.to_string())
            .collect(),
        tables: Vec::new(),
    };
    if to_close.is_empty() {
        info!(%period, "nothing to close: every group asked for is closed already");
        return Ok(summary);
    }

    // Every document of the period, each checked against what periods/ recorded.
    let documents: Vec<Document> = stored(&output, &ledger, period, None)
        .await?
        .into_iter()
        .flat_map(|(group, documents)| {
            let issue = to_close.contains(&group.as_str());
            documents.into_iter().map(move |s| {
                if issue {
                    Document::New(s.invoice.issued(at))
                } else {
                    Document::Kept(Box::new(s))
                }
            })
        })
        .collect();
    let rendered = render(&output, period, &documents, &close_id)?;
    let lines = ctx.read_batch(invoice::table::batch(
        documents.iter().map(Document::invoice),
    )?)?;

    let mut commits: Vec<TableCommit> = Vec::with_capacity(2);
    let landed = async {
        commits.push(delta::replace_period(&ctx, &output, "invoice_lines", lines, period).await?);
        commits.push(
            super::commit_entries(&ctx, &output, period, ledger.version, &rendered.entries).await?,
        );
        let published =
            invoices::write_period(&output, period, &rendered.pages, &rendered.current_drafts())
                .await?;
        published.finish().await;
        Ok::<_, Error>(())
    }
    .await;
    if let Err(e) = landed {
        crate::run::restore(&output, &commits).await;
        return Err(e);
    }
    summary.issued = rendered.refs.into_iter().filter(|r| r.written).collect();
    summary.tables = commits;
    info!(%period, issued = summary.issued.len(), "closed");
    Ok(summary)
}
