//! `rerate run`: every selected period, one after the other, from input to committed tables
//! and a run manifest. A failing period leaves earlier periods' outputs committed and its own
//! untouched.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use arrow::array::AsArray;
use arrow::datatypes::{DataType, Int64Type};
use chrono::{DateTime, Utc};
use datafusion::logical_expr::cast;
use datafusion::prelude::{Expr, SessionContext, col, lit};
use rust_decimal::Decimal;
use serde::Serialize;
use tracing::{Instrument, info, info_span, warn};

use crate::config::{Config, UNASSIGNED};
use crate::error::{Error, Result};
use crate::ingest::{Input, InputFile};
use crate::invoice;
use crate::period::Period;
use crate::price::custom::{self, CustomCharge};
use crate::price::{self, AccountRow, treatment};
use crate::progress::Progress;
use crate::storage::Location;
use crate::write::delta::{self, TableCommit};
use crate::write::exports::{self, GroupExport};
use crate::write::invoices::{self, InvoiceRef};
use crate::write::manifest;
use crate::{engine, margin};

/// What `rerate run` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub config: PathBuf,
    pub input: Option<String>,
    pub output: Option<String>,
    pub periods: Vec<Period>,
    pub strict: bool,
    /// Overrides `[engine] memory-limit` (bytes).
    pub memory_limit: Option<u64>,
}

/// The run summary: printed by `--json` and written as `runs/<run-id>.json`.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub run_id: String,
    pub version: &'static str,
    pub status: &'static str,
    pub error: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub duration_ms: u128,
    pub config: ConfigRef,
    pub input: InputRef,
    pub output: String,
    pub periods: Vec<PeriodSummary>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConfigRef {
    pub path: String,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct InputRef {
    pub url: String,
    pub files: Vec<InputFile>,
}

/// One period: where every input row went, control totals, and the commits.
#[derive(Debug, Clone, Serialize)]
pub struct PeriodSummary {
    pub period: Period,
    pub input_rows: u64,
    /// Σ line_item_unblended_cost of the input (USD).
    pub input_cost: Decimal,
    pub groups: Vec<GroupSummary>,
    pub unassigned: Unassigned,
    pub custom_line_items: Vec<CustomCharge>,
    pub control: ControlTotals,
    pub tables: Vec<TableCommit>,
    /// One invoice per configured group (`invoices/billing_period=YYYY-MM/`).
    pub invoices: Vec<InvoiceRef>,
    /// One pro forma CUR export per configured group (`exports/<group>/`).
    pub exports: Vec<GroupExport>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct GroupSummary {
    pub billing_group: String,
    pub rows: u64,
    pub billable_cost: Decimal,
    pub proforma_cost: Decimal,
    /// rows and billable amount per treatment and charge class, e.g. `drop:credits`.
    pub by_reason: BTreeMap<String, Tally>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Tally {
    pub rows: u64,
    pub billable_cost: Decimal,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Unassigned {
    pub rows: u64,
    pub billable_cost: Decimal,
    pub accounts: Vec<String>,
}

/// The identities a finance team checks: nothing lost, nothing unexplained.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ControlTotals {
    pub billable_rows_written: u64,
    pub billable_total: Decimal,
    pub proforma_rows_written: u64,
    pub rerated_total: Decimal,
    pub passed_total: Decimal,
    pub custom_total: Decimal,
    /// rerated + passed + custom.
    pub proforma_total: Decimal,
    pub dropped_total: Decimal,
}

/// Runs the job; the manifest is written whether it succeeds or fails.
pub async fn run(opts: &RunOptions) -> Result<RunSummary> {
    let started_at = Utc::now();
    let clock = Instant::now();
    let config = crate::load_config(&opts.config)?;
    let input = Location::parse(
        opts.input
            .as_deref()
            .or(config.io.input.as_deref())
            .ok_or(Error::NoInput)?,
        &config.storage,
    )?;
    let output = Location::parse(
        opts.output
            .as_deref()
            .or(config.io.output.as_deref())
            .ok_or(Error::NoOutput)?,
        &config.storage,
    )?;
    let run_id = format!(
        "{}-{}",
        started_at.format("%Y%m%dT%H%M%SZ"),
        &config.hash[..8]
    );
    let mut summary = RunSummary {
        run_id,
        version: env!("CARGO_PKG_VERSION"),
        status: "failed",
        error: None,
        started_at,
        finished_at: started_at,
        duration_ms: 0,
        config: ConfigRef {
            path: opts.config.display().to_string(),
            sha256: config.hash.clone(),
        },
        input: InputRef {
            url: input.to_string(),
            files: Vec::new(),
        },
        output: output.to_string(),
        periods: Vec::new(),
    };
    let result = run_periods(opts, &config, &input, &output, &mut summary).await;
    summary.finished_at = Utc::now();
    summary.duration_ms = clock.elapsed().as_millis();
    match &result {
        Ok(()) => summary.status = "succeeded",
        Err(e) => summary.error = Some(crate::error_chain(e)),
    }
    // A run that failed before touching the input (bad config, no files) leaves no manifest.
    if (result.is_ok() || !summary.input.files.is_empty())
        && let Err(e) = manifest::write(&output, &summary).await
    {
        return Err(result.err().unwrap_or(e));
    }
    result.map(|()| summary)
}

async fn run_periods(
    opts: &RunOptions,
    config: &Config,
    input: &Location,
    output: &Location,
    summary: &mut RunSummary,
) -> Result<()> {
    let mut engine_settings = config.engine.clone();
    if opts.memory_limit.is_some() {
        engine_settings.memory_limit = opts.memory_limit;
    }
    let ctx = engine::new_context(&engine_settings)?;
    engine::register(&ctx, input);
    engine::register(&ctx, output);
    price::tables::register(&ctx, config)?;

    let progress = Progress::new();
    let step = progress.step("reading input");
    let discovered = Input::discover(&ctx, input)
        .instrument(info_span!("ingest"))
        .await?;
    summary.input.files = discovered.files.clone();
    let found = match discovered.periods(&ctx).await {
        Ok(found) => found,
        Err(e) => return Err(blame(&ctx, &discovered, None, e).await),
    };
    step.finish();
    let periods = select_periods(&found, &opts.periods)?;
    config.check_fx(&periods)?;
    info!(periods = ?periods.iter().map(|p| p.to_string()).collect::<Vec<_>>(), "processing");

    for period in periods {
        let span = info_span!("period", %period);
        let s = run_period(
            &ctx,
            config,
            &discovered,
            period,
            output,
            opts.strict,
            &progress,
            &summary.run_id,
        )
        .instrument(span)
        .await?;
        summary.periods.push(s);
    }
    Ok(())
}

/// Every requested period must be in the input; none requested means all found.
fn select_periods(found: &BTreeMap<Period, u64>, requested: &[Period]) -> Result<Vec<Period>> {
    if requested.is_empty() {
        return Ok(found.keys().copied().collect());
    }
    let mut out = Vec::new();
    for p in requested {
        if !found.contains_key(p) {
            let found = found
                .keys()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            return Err(Error::PeriodNotInInput { period: *p, found });
        }
        if !out.contains(p) {
            out.push(*p);
        }
    }
    out.sort();
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
async fn run_period(
    ctx: &SessionContext,
    config: &Config,
    input: &Input,
    period: Period,
    output: &Location,
    strict: bool,
    progress: &Progress,
    run_id: &str,
) -> Result<PeriodSummary> {
    let step = progress.step(&format!("{period}: re-rating"));
    let rated = price::rated(ctx, input.period_table(ctx, period)?).await?;
    let accounting = match price::accounting(ctx).await {
        Ok(accounting) => accounting,
        Err(e) => return Err(blame(ctx, input, Some(period), e).await),
    };
    check_rows(ctx, input, period, &accounting).await?;
    let unassigned = unassigned(&accounting);
    if unassigned.rows > 0 {
        if strict {
            return Err(Error::Unassigned {
                period,
                rows: unassigned.rows,
                accounts: unassigned.accounts.join(", "),
            });
        }
        warn!(rows = unassigned.rows, accounts = ?unassigned.accounts, "rows in no billing group kept in billable as _unassigned");
    }
    let charges = custom::charges(config, period, &accounting);
    let margin_lines = margin::lines(&accounting, &charges);
    // Built before anything is written: a problem here leaves the period untouched.
    let invoices = invoice::build_all(config, period, &accounting, &charges)?;
    step.finish();

    let step = progress.step(&format!("{period}: writing billable"));
    let billable =
        match delta::replace_period(ctx, output, "billable", price::billable(ctx).await?, period)
            .await
        {
            Ok(commit) => commit,
            Err(e) => return Err(blame(ctx, input, Some(period), e).await),
        };
    step.finish();
    let input_rows: u64 = accounting.iter().map(|r| r.rows).sum();
    if billable.rows != input_rows {
        return Err(Error::AccountingMismatch {
            period,
            input: input_rows,
            written: billable.rows,
        });
    }

    let step = progress.step(&format!("{period}: writing pro forma"));
    let proforma = price::proforma(rated)?;
    let custom_rows = custom::rows(config, period, &charges, &proforma.schema().inner().clone())?;
    let proforma = proforma.union(ctx.read_batch(custom_rows)?)?;
    let proforma = delta::replace_period(ctx, output, "proforma", proforma, period).await?;
    let margin = ctx.read_batch(margin::batch(period, &margin_lines)?)?;
    let margin = delta::replace_period(ctx, output, "margin", margin, period).await?;
    step.finish();

    let step = progress.step(&format!("{period}: writing invoices"));
    let clock = Instant::now();
    let lines = ctx.read_batch(invoice::table::batch(&invoices)?)?;
    let invoice_lines = delta::replace_period(ctx, output, "invoice_lines", lines, period).await?;
    let invoice_refs = invoices::write_period(output, period, &invoices)
        .instrument(info_span!("invoices"))
        .await?;
    info!(
        invoices = invoice_refs.len(),
        ms = clock.elapsed().as_millis(),
        "invoices written"
    );
    step.finish();

    let step = progress.step(&format!("{period}: writing customer exports"));
    let clock = Instant::now();
    let groups: Vec<&str> = config.groups.iter().map(|g| g.name.as_str()).collect();
    let exports = exports::write_period(ctx, output, &proforma, period, &groups, run_id)
        .instrument(info_span!("exports"))
        .await?;
    info!(
        groups = exports.len(),
        rows = exports.iter().map(|e| e.rows).sum::<u64>(),
        bytes = exports.iter().map(|e| e.bytes).sum::<u64>(),
        ms = clock.elapsed().as_millis(),
        "customer exports written"
    );
    step.finish();

    let mut summary = summarize(
        period,
        &accounting,
        unassigned,
        charges,
        vec![billable, proforma, margin, invoice_lines],
    );
    summary.invoices = invoice_refs;
    summary.exports = exports;
    info!(
        rows = summary.input_rows,
        billable = %summary.control.billable_total,
        proforma = %summary.control.proforma_total,
        "period committed"
    );
    Ok(summary)
}

/// A query over the input failed: when one file's values cannot be read, that file (and column)
/// is the problem to report, not the query.
async fn blame(ctx: &SessionContext, input: &Input, period: Option<Period>, e: Error) -> Error {
    if !matches!(e, Error::Engine(_) | Error::Delta { .. }) {
        return e;
    }
    input.find_bad_value(ctx, period).await.unwrap_or(e)
}

/// Refuses a period holding rows no plan can bill: an unknown line item type, a key column
/// without a value, an amount not in USD, or one line item twice. The error names the file.
async fn check_rows(
    ctx: &SessionContext,
    input: &Input,
    period: Period,
    accounting: &[AccountRow],
) -> Result<()> {
    if let Some(bad) = accounting
        .iter()
        .find(|r| r.treatment == treatment::UNKNOWN)
    {
        let (matches, kind) = if bad.line_item_type.is_empty() {
            (
                col("line_item_line_item_type").is_null(),
                "(null)".to_string(),
            )
        } else {
            let kind = bad.line_item_type.clone();
            (col("line_item_line_item_type").eq(lit(kind.clone())), kind)
        };
        let (file, rows) = locate(ctx, input, period, matches, bad.rows).await?;
        return Err(Error::UnknownLineItemType { kind, file, rows });
    }
    if let Some(defect) = accounting.iter().find_map(|r| r.defect.as_deref()) {
        let rows = accounting
            .iter()
            .filter(|r| r.defect.as_deref() == Some(defect))
            .map(|r| r.rows)
            .sum();
        return Err(match defect.split_once(':') {
            Some(("currency", code)) => {
                let matches = col("line_item_currency_code").eq(lit(code));
                let (file, rows) = locate(ctx, input, period, matches, rows).await?;
                Error::NotUsd {
                    file,
                    currency: code.to_string(),
                    rows,
                }
            }
            _ => {
                let column = defect.trim_start_matches("null:").to_string();
                let matches = col(column.as_str()).is_null();
                let (file, rows) = locate(ctx, input, period, matches, rows).await?;
                Error::MissingValue { file, column, rows }
            }
        });
    }
    check_duplicates(ctx, input, period).await
}

async fn check_duplicates(ctx: &SessionContext, input: &Input, period: Period) -> Result<()> {
    let batches = ctx.sql(crate::sql::DUPLICATES).await?.collect().await?;
    let Some(b) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Ok(());
    };
    let text = |i: usize| b.column(i).as_string::<i32>().value(0).to_string();
    let (id, start, end) = (text(0), text(1), text(2));
    let count = b.column(3).as_primitive::<Int64Type>().value(0) as u64;
    let matches = col("identity_line_item_id")
        .eq(lit(id.clone()))
        .and(cast(col("line_item_usage_start_date"), DataType::Utf8).eq(lit(start.clone())))
        .and(cast(col("line_item_usage_end_date"), DataType::Utf8).eq(lit(end.clone())));
    let mut files = Vec::new();
    for (i, file) in input.files.iter().enumerate() {
        if input
            .count_in_file(ctx, i, Some(period), matches.clone())
            .await?
            > 0
        {
            files.push(file.url.as_str());
        }
    }
    Err(Error::DuplicateLineItem {
        id,
        start,
        end,
        count,
        files: files.join(", "),
    })
}

/// The first input file holding rows of `period` that match, and how many; if the input changed
/// under us between the two reads, still the input and the count first seen.
async fn locate(
    ctx: &SessionContext,
    input: &Input,
    period: Period,
    matches: Expr,
    rows: u64,
) -> Result<(String, u64)> {
    Ok(input
        .locate(ctx, Some(period), matches)
        .await?
        .unwrap_or_else(|| (input.location.to_string(), rows)))
}

fn unassigned(accounting: &[AccountRow]) -> Unassigned {
    let mut u = Unassigned::default();
    for r in accounting.iter().filter(|r| r.billing_group == UNASSIGNED) {
        u.rows += r.rows;
        u.billable_cost += r.billable_cost;
        if let Some(a) = &r.unassigned_account
            && !u.accounts.contains(a)
        {
            u.accounts.push(a.clone());
        }
    }
    u.accounts.sort();
    u
}

fn summarize(
    period: Period,
    accounting: &[AccountRow],
    unassigned: Unassigned,
    custom_line_items: Vec<CustomCharge>,
    tables: Vec<TableCommit>,
) -> PeriodSummary {
    let mut groups: BTreeMap<&str, GroupSummary> = BTreeMap::new();
    let mut control = ControlTotals::default();
    for r in accounting {
        let g = groups
            .entry(&r.billing_group)
            .or_insert_with(|| GroupSummary {
                billing_group: r.billing_group.clone(),
                ..Default::default()
            });
        g.rows += r.rows;
        g.billable_cost += r.billable_cost;
        g.proforma_cost += r.proforma_cost;
        let tally = g
            .by_reason
            .entry(format!("{}:{}", r.treatment, r.charge_class))
            .or_default();
        tally.rows += r.rows;
        tally.billable_cost += r.billable_cost;
        control.billable_total += r.billable_cost;
        match r.treatment.as_str() {
            treatment::RERATE => control.rerated_total += r.proforma_cost,
            treatment::PASS => control.passed_total += r.proforma_cost,
            treatment::DROP => control.dropped_total += r.billable_cost,
            _ => {}
        }
    }
    for c in &custom_line_items {
        control.custom_total += c.amount;
        if let Some(g) = groups.get_mut(c.billing_group.as_str()) {
            g.proforma_cost += c.amount;
        }
    }
    control.proforma_total = control.rerated_total + control.passed_total + control.custom_total;
    control.billable_rows_written = tables
        .iter()
        .find(|t| t.table == "billable")
        .map_or(0, |t| t.rows);
    control.proforma_rows_written = tables
        .iter()
        .find(|t| t.table == "proforma")
        .map_or(0, |t| t.rows);
    PeriodSummary {
        period,
        input_rows: accounting.iter().map(|r| r.rows).sum(),
        input_cost: control.billable_total,
        groups: groups.into_values().collect(),
        unassigned,
        custom_line_items,
        control,
        tables,
        invoices: Vec::new(),
        exports: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Period {
        s.parse().unwrap()
    }

    #[test]
    fn all_periods_by_default_and_only_existing_ones_on_request() {
        let found: BTreeMap<Period, u64> = [(p("2025-10"), 3), (p("2025-11"), 5)].into();
        assert_eq!(
            select_periods(&found, &[]).unwrap(),
            vec![p("2025-10"), p("2025-11")]
        );
        let picked = select_periods(&found, &[p("2025-11"), p("2025-10"), p("2025-11")]).unwrap();
        assert_eq!(picked, vec![p("2025-10"), p("2025-11")]);
        let err = select_periods(&found, &[p("2024-01")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("2024-01 not found in the input; periods found: 2025-10, 2025-11"),
            "{err}"
        );
    }
}
