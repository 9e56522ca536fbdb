//! `rerate run`: every selected period, one after the other, from input to committed tables,
//! documents, exports and a run manifest. A run lands whole or not at all (SPEC §6.1): until
//! its manifest is written, a failure anywhere takes back every period it ran (tables restored,
//! documents and exports as they were); only then are stale drafts and export files deleted.
//!
//! Before the first period: every selected period's bill currencies (`price::currency`: one per
//! payer and per group) and the FX rates they need, so a bill that cannot be invoiced stops the
//! run with nothing written.
//!
//! What happens to a period, in order (`PeriodRun::period`):
//! 1. read and rate: the period's rows assigned, classified and priced (`sql/rate.sql`), and
//!    its accounting (`sql/accounting.sql`), small, which everything after it is computed from;
//! 2. check: rows no plan can bill, line items delivered twice, a row two groups' matches claim,
//!    and an accounting that does not hold every input row and cent once stop the period;
//! 3. price the documents in memory: custom line items, margin lines, invoices, and what they
//!    become in the period's books (`books::after_run`: drafts while open; on a closed
//!    period, run with `--correct`, credit notes and replacements where an invoice changes);
//! 4. write the tables (billable and pro forma in one pass over the rated rows, FOCUS from the
//!    pro forma just committed, margin, invoice lines, periods), one commit each;
//! 5. write the customer exports' files (not yet current), 6. the invoice documents and the
//!    period's report (`reports/`), then the exports' manifests;
//! 7. the period's summary, from what each stage returned, goes into the run manifest, written
//!    once every period has landed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use chrono::{DateTime, Utc};
use datafusion::prelude::Expr;
use tracing::{Instrument, info, info_span, warn};

use crate::books::ledger::Ledger;
use crate::books::{self, Document};
use crate::error::{Error, Result};
use crate::ingest::{Input, PeriodInput, checks};
use crate::job::Job;
use crate::period::Period;
use crate::price::currency::BillCurrencies;
use crate::price::{self, custom};
use crate::progress::Progress;
use crate::storage::Location;
use crate::write::delta::{Replacement, TableCommit};
use crate::write::exports::Format;
use crate::write::files::{self, WrittenFile};
use crate::write::manifest::{
    self, ConfigRef, InputRef, PeriodSummary, RunManifest, Unassigned, Undone, Written,
};
use crate::write::{delta, exports, invoices};
use crate::{focus, invoice, margin, report};

/// What `rerate run` was asked to do (its flags: the doc comments are the help).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RunOptions {
    /// The billing configuration (billing.toml).
    #[arg(long, short)]
    pub config: PathBuf,
    /// CUR location: s3://bucket/prefix, file:///abs/path or a local path (default: [io] input).
    #[arg(long)]
    pub input: Option<String>,
    /// Output location (default: [io] output).
    #[arg(long)]
    pub output: Option<String>,
    /// Billing period to process (YYYY-MM); repeatable. Default: every period in the input.
    #[arg(long = "period")]
    pub periods: Vec<Period>,
    /// Fail when a row belongs to no billing group instead of keeping it as _unassigned.
    #[arg(long)]
    pub strict: bool,
    /// Memory for joins, aggregations and sorts before they spill to disk, e.g. 4GiB
    /// (default: [engine] memory-limit, else unbounded).
    #[arg(long, value_parser = crate::config::parse_memory_limit)]
    pub memory_limit: Option<u64>,
    /// Re-rate closed periods too: each closed group whose invoice changes is issued a credit
    /// note and a replacement invoice; issued documents stay as they are.
    #[arg(long)]
    pub correct: bool,
    /// Run the job's plans on a Ballista cluster, df://host:port (default: [engine] cluster,
    /// else in this process).
    #[arg(long, value_parser = parse_cluster)]
    pub cluster: Option<String>,
}

fn parse_cluster(text: &str) -> std::result::Result<String, String> {
    crate::config::parse_cluster_url(text).map(|_| text.to_string())
}

/// Runs the job; the manifest is written whether it succeeds or fails.
pub async fn run(opts: &RunOptions) -> Result<RunManifest> {
    let (manifest, result) = execute(opts).await;
    match (manifest, result) {
        (Some(manifest), Ok(())) => Ok(manifest),
        (_, Err(e)) => Err(e),
        (None, Ok(())) => Err(Error::Internal {
            what: "a run succeeded without a manifest".to_string(),
        }),
    }
}

/// Runs the job and says how it went: the run manifest (there is one from the moment the
/// config and both locations are read, failed runs included: what `--json` prints) and the
/// outcome.
pub async fn execute(opts: &RunOptions) -> (Option<RunManifest>, Result<()>) {
    let started_at = Utc::now();
    let clock = Instant::now();
    let opened = open(opts).map(|(job, output)| {
        let manifest = new_manifest(&job, &opts.config, &output, started_at);
        (job, output, manifest)
    });
    let (job, output, mut manifest) = match opened {
        Ok(opened) => opened,
        Err(e) => return (None, Err(e)),
    };
    // What the run has done and can take back until it ends: every table commit, and each
    // landed period's documents and exports (SPEC §6.1: a run lands whole or not at all).
    let mut commits: Vec<TableCommit> = Vec::new();
    let mut landed: Vec<Landed> = Vec::new();
    let mut result = run_periods(
        &job,
        &output,
        opts,
        &mut manifest,
        &mut commits,
        &mut landed,
    )
    .await;
    manifest.finished_at = Utc::now();
    manifest.duration_ms = clock.elapsed().as_millis();
    if result.is_ok() {
        // The manifest is the last write of a run that lands.
        manifest.status = "succeeded";
        result = manifest::write(&output, &manifest).await;
    }
    match &result {
        Ok(()) => {
            // Landed. What is left only removes what no current file names.
            for period in landed {
                period.finish().await;
            }
        }
        Err(e) => {
            manifest.status = "failed";
            manifest.error = Some(crate::error_chain(e));
            for period in landed.into_iter().rev() {
                period.take_back().await;
            }
            manifest.undone = restore(&output, &commits).await;
            // A run that failed before touching the input (no files) leaves no manifest file;
            // one whose manifest could not be written may not get this one written either.
            if !manifest.input.files.is_empty()
                && let Err(e) = manifest::write(&output, &manifest).await
            {
                warn!(error = %e, "the failed run's manifest could not be written");
            }
        }
    }
    (Some(manifest), result)
}

/// A period that has landed, which the run can still take back until it ends: its documents
/// and exports (its table commits are the run's).
struct Landed {
    documents: invoices::Published,
    exports: exports::Staged,
}

impl Landed {
    /// Puts the period's documents and exports back as they were before the run.
    async fn take_back(self) {
        if let Err(e) = self.documents.undo().await {
            tracing::error!(error = %e, "could not put the earlier invoice documents back");
        }
        self.exports.discard().await;
    }

    /// The run landed: deletes the drafts and export files no current document or manifest
    /// names.
    async fn finish(self) {
        self.documents.finish().await;
        self.exports.finish().await;
    }
}

/// The config (with the command line's overrides), the job and the output location.
fn open(opts: &RunOptions) -> Result<(Job, Location)> {
    let mut config = crate::load_config(&opts.config)?;
    if opts.memory_limit.is_some() {
        config.engine.memory_limit = opts.memory_limit;
    }
    if opts.cluster.is_some() {
        config.engine.cluster = opts.cluster.clone();
    }
    let job = Job::open(config, opts.input.as_deref())?;
    let output = job.output(opts.output.as_deref())?;
    Ok((job, output))
}

/// The manifest of a run starting now: failed until it succeeds.
fn new_manifest(
    job: &Job,
    config: &std::path::Path,
    output: &Location,
    started_at: DateTime<Utc>,
) -> RunManifest {
    RunManifest {
        run_id: format!(
            "{}-{}",
            started_at.format("%Y%m%dT%H%M%SZ"),
            &job.config.hash[..8]
        ),
        version: env!("CARGO_PKG_VERSION"),
        status: "failed",
        error: None,
        started_at,
        finished_at: started_at,
        duration_ms: 0,
        config: ConfigRef {
            path: config.display().to_string(),
            sha256: job.config.hash.clone(),
        },
        input: InputRef {
            url: job.input.to_string(),
            files: Vec::new(),
            rows: 0,
            manifests: Vec::new(),
            ignored: Vec::new(),
        },
        output: output.to_string(),
        periods: Vec::new(),
        undone: Undone::default(),
    }
}

/// Every selected period, one after the other: each commit goes into `commits` as it is made
/// and each landed period into `landed`, for the caller to finish or take back.
async fn run_periods(
    job: &Job,
    output: &Location,
    opts: &RunOptions,
    manifest: &mut RunManifest,
    commits: &mut Vec<TableCommit>,
    landed: &mut Vec<Landed>,
) -> Result<()> {
    let progress = Progress::new();
    let input = progress.stage("reading input", job.discover()).await?;
    manifest.input.files = input.files.clone();
    manifest.input.rows = input.files.iter().map(|f| f.rows).sum();
    manifest.input.manifests = input.manifests.clone();
    manifest.input.ignored = input.ignored.clone();
    let found = match progress
        .stage("finding periods", input.periods(&job.ctx))
        .await
    {
        Ok(found) => found,
        Err(e) => return Err(input.blame(&job.ctx, None, e).await),
    };
    let periods = select_periods(&found, &opts.periods)?;
    let currencies = progress
        .stage(
            "reading bill currencies",
            price::currency::find(&job.ctx, &input, &periods, &job.config),
        )
        .await?;
    job.config
        .check_fx(&periods, |p, g| currencies.of(p, g).to_string())?;
    // Closed periods change only when asked to, and then only by new documents.
    let ledger = Ledger::read(&job.ctx, output).await?;
    if !opts.correct
        && let Some((period, groups)) = periods
            .iter()
            .map(|p| (*p, ledger.closed_groups(*p)))
            .find(|(_, groups)| !groups.is_empty())
    {
        return Err(Error::PeriodClosed {
            period,
            groups: groups.join(", "),
        });
    }
    info!(periods = ?periods.iter().map(|p| p.to_string()).collect::<Vec<_>>(), "processing");
    let run_id = manifest.run_id.clone();
    let run = PeriodRun {
        job,
        input: &input,
        currencies: &currencies,
        output,
        strict: opts.strict,
        progress: &progress,
        run_id: &run_id,
        ledger: &ledger,
    };
    for period in periods {
        let (summary, period) = run
            .period(period, found[&period], commits)
            .instrument(info_span!("period", %period))
            .await?;
        manifest.periods.push(summary);
        landed.push(period);
    }
    Ok(())
}

/// What every period of a run shares.
struct PeriodRun<'a> {
    job: &'a Job,
    input: &'a Input,
    currencies: &'a BillCurrencies,
    output: &'a Location,
    strict: bool,
    progress: &'a Progress,
    run_id: &'a str,
    /// `periods/` as it was when the run started.
    ledger: &'a Ledger,
}

/// Every requested period must be in the input; none requested means all found.
fn select_periods<T>(found: &BTreeMap<Period, T>, requested: &[Period]) -> Result<Vec<Period>> {
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

impl PeriodRun<'_> {
    /// One period, top to bottom (the module's doc says why in this order). Each table commit
    /// goes into `commits` as it is made; a failure after the first leaves the period's
    /// documents and exports as they were, and the caller restores the tables.
    async fn period(
        &self,
        period: Period,
        counted: PeriodInput,
        commits: &mut Vec<TableCommit>,
    ) -> Result<(PeriodSummary, Landed)> {
        let PeriodRun {
            job,
            input,
            currencies,
            output,
            strict,
            progress,
            run_id,
            ledger,
        } = *self;
        let (ctx, config) = (&job.ctx, &job.config);
        let blame = |e| input.blame(ctx, Some(period), e);

        // 1. read and rate
        // (The rate decisions are made here, reading the period: a bad row is blamed on its file.)
        let cur = input.period_table(ctx, period)?;
        let rated = match price::rated(ctx, job.cluster.as_ref(), config, period, cur).await {
            Ok(rated) => rated,
            Err(e) => return Err(blame(e).await),
        };
        let bytes = input.period_bytes(period);
        let accounting = match progress
            .stage_reading(
                &format!("{period}: re-rating"),
                bytes,
                &job.read,
                job.accounting(),
            )
            .await
        {
            Ok(accounting) => accounting,
            Err(e) => return Err(blame(e).await),
        };

        // 2. check
        if let Some((what, rows)) = price::unbillable(&accounting) {
            return Err(checks::refuse(ctx, input, period, what, rows).await);
        }
        checks::duplicates(job, input, period).await?;
        price::matches::refuse_ambiguous(job, period, input.period_table(ctx, period)?).await?;
        reconcile(period, counted, &accounting)?;
        let unassigned = Unassigned::of(&accounting);
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

        // 3. price the documents: a problem here leaves the period untouched.
        let charges = custom::charges(config, period, &accounting, currencies)?;
        let margin_lines = margin::lines(&accounting, &charges);
        let drafts = invoice::build_all(config, period, currencies, &accounting, &charges)?;
        let closed = ledger.closed_groups(period);
        let issued = books::stored(output, ledger, period, Some(closed.as_slice())).await?;
        let documents = books::after_run(drafts, issued, Utc::now());
        let rendered = books::render(output, period, &documents, run_id)?;
        let report = report::html(&report::Facts {
            period,
            run_id,
            config,
            margin: &margin_lines,
            unassigned: &unassigned,
            documents: documents.iter().map(Document::invoice).collect(),
        })?;

        // What the period writes, built in memory first: a problem here writes nothing.
        let proforma_columns = price::proforma_columns(rated.schema())?;
        let proforma_schema = rated
            .clone()
            .select(proforma_columns.clone())?
            .schema()
            .clone();
        let payers = price::account_payers(ctx).await?;
        let custom_rows = custom::rows(config, period, &charges, &payers, proforma_schema.inner())?;
        let custom_rows = ctx.read_batch(custom_rows)?;
        let margin = ctx.read_batch(margin::batch(period, &margin_lines)?)?;
        let lines = ctx.read_batch(invoice::table::batch(
            documents.iter().map(Document::invoice),
        )?)?;

        // 4–6. Tables, documents and exports land together or not at all (SPEC §6.1): a
        // failure after a first commit leaves the documents and exports as they were, and the
        // run restores every table committed to.
        let written = async {
            // 4. the tables: billable and pro forma in one pass over the rated rows
            let billable_columns = price::billable_columns(rated.schema());
            let billable_schema = rated
                .clone()
                .select(billable_columns.clone())?
                .schema()
                .clone();
            let billable = Replacement::start(output, "billable", &billable_schema, period).await?;
            let proforma = Replacement::start(output, "proforma", &proforma_schema, period).await?;
            let custom_columns = custom_rows.schema().columns().into_iter().map(Expr::Column);
            let custom_rows = custom_rows
                .clone()
                .select(proforma.cast(custom_columns.collect(), custom_rows.schema())?)?;
            // The custom line items are a few rows in memory: written here, as files of their
            // own, wherever the pass runs (a cluster runs a plan's parts as many tasks, and
            // rows inside the plan would be written by each). None: no write, no listing.
            let custom_files = match charges.is_empty() {
                true => Vec::new(),
                false => files::write_period(ctx, custom_rows, proforma.location(), period).await?,
            };
            let sinks = vec![
                billable.sink(None, billable_columns, &billable_schema)?,
                proforma.sink(
                    Some(price::proforma_rows()),
                    proforma_columns,
                    &proforma_schema,
                )?,
            ];
            let files = progress
                .stage_writing(
                    &format!("{period}: writing billable and pro forma"),
                    &job.written,
                    job.write_tables(rated.clone(), sinks, period),
                )
                .await;
            let [billable_files, mut proforma_files]: [Vec<WrittenFile>; 2] = match files {
                Ok(files) => files.try_into().expect("two sinks, two lists of files"),
                Err(e) => {
                    proforma.discard(&custom_files).await;
                    return Err(blame(e).await);
                }
            };
            proforma_files.extend(custom_files);
            let billable = match billable.commit(billable_files).await {
                Ok(commit) => commit,
                Err(e) => {
                    proforma.discard(&proforma_files).await;
                    return Err(e);
                }
            };
            commits.push(billable.clone());
            if billable.rows != counted.rows {
                proforma.discard(&proforma_files).await;
                return Err(Error::AccountingMismatch {
                    period,
                    input: counted.rows,
                    written: billable.rows,
                });
            }
            let proforma = proforma.commit(proforma_files).await?;
            commits.push(proforma.clone());
            let focus_rows =
                focus::rows(ctx, output, &proforma, config, period, &documents).await?;
            let focus = progress
                .stage_writing(
                    &format!("{period}: writing FOCUS"),
                    &job.written,
                    delta::replace_period(ctx, output, focus::TABLE, focus_rows, period),
                )
                .await?;
            commits.push(focus.clone());
            // Every pro forma row is a FOCUS row (each group has its invoice to carry).
            if focus.rows != proforma.rows {
                return Err(Error::Unreconciled {
                    scope: format!("period {period}"),
                    what: "FOCUS rows",
                    expected: format!("{} as in pro forma", proforma.rows),
                    found: format!("{} in focus/", focus.rows),
                });
            }
            let margin = delta::replace_period(ctx, output, "margin", margin, period).await?;
            commits.push(margin.clone());
            let invoice_lines =
                delta::replace_period(ctx, output, "invoice_lines", lines, period).await?;
            commits.push(invoice_lines.clone());
            // periods/ as this run left it (an earlier period's commit), else as it was read.
            let expected = match commits.iter().rfind(|c| c.table == books::ledger::TABLE) {
                Some(ours) => Some(ours.version),
                None => ledger.version,
            };
            let periods =
                books::commit_entries(ctx, output, period, expected, &rendered.entries).await?;
            commits.push(periods.clone());

            // 5. the customer exports, written beside the current delivery, not yet current
            let groups: Vec<&str> = config.groups.iter().map(|g| g.name.as_str()).collect();
            let mut exports = progress
                .stage_writing(
                    &format!("{period}: writing customer exports"),
                    &job.written,
                    exports::write_period(
                        ctx,
                        output,
                        &[(&proforma, Format::Cur), (&focus, Format::Focus)],
                        period,
                        &groups,
                        run_id,
                    ),
                )
                .await?;

            // 6. the documents, then the exports' manifests: the period is current
            let documents = progress
                .stage(
                    &format!("{period}: writing invoices"),
                    invoices::write_period(
                        output,
                        period,
                        &rendered.pages,
                        &rendered.current_drafts(),
                    ),
                )
                .await;
            let documents = match documents {
                Ok(mut written) => written
                    .put_report(output, &report::path(period), report)
                    .await
                    .map(|()| written),
                Err(e) => Err(e),
            };
            let documents = match documents {
                Ok(written) => written,
                Err(e) => {
                    exports.discard().await;
                    return Err(e);
                }
            };
            if let Err(e) = exports.publish().await {
                if let Err(undo) = documents.undo().await {
                    warn!(error = %undo, "could not put the earlier invoice documents back");
                }
                return Err(e);
            }
            let written = Written {
                billable,
                proforma,
                focus,
                margin,
                invoice_lines,
                periods,
                invoices: rendered.refs.clone(),
                exports: exports.exports(Format::Cur),
                focus_exports: exports.exports(Format::Focus),
                report: output
                    .url_of(&invoices::under(output, &report::path(period)))
                    .to_string(),
            };
            Ok((written, Landed { documents, exports }))
        }
        .await;
        let (written, landed) = written?;

        // 7. the summary
        let summary =
            PeriodSummary::new(period, counted, &accounting, unassigned, charges, written);
        info!(
            rows = summary.input_rows,
            billable = %summary.control.billable_total,
            proforma = %summary.control.proforma_total,
            invoices = summary.invoices.len(),
            exported_rows = summary.exports.iter().map(|e| e.rows).sum::<u64>(),
            "period committed"
        );
        Ok((summary, landed))
    }
}

/// Undoes a failed run's table commits: each table the run committed to, back to its version
/// before the run's first commit to it, the last committed first. What was put back, and what
/// could not be.
pub(crate) async fn restore(output: &Location, commits: &[TableCommit]) -> Undone {
    let mut undone = Undone::default();
    for commit in delta::per_table(commits).iter().rev() {
        match delta::restore(output, commit).await {
            Ok(restored) => {
                warn!(table = %restored.table, from = restored.from_version, to = ?restored.to_version, "restored");
                undone.restored.push(restored);
            }
            Err(e) => {
                tracing::error!(table = %commit.table, error = %crate::error_chain(&e), "could not restore");
                undone.not_restored.push(commit.clone());
            }
        }
    }
    undone
}

/// The period's accounting against its input, counted straight from the files: every row and
/// every cent of the input accounted for once, before anything is written.
pub fn reconcile(
    period: Period,
    counted: PeriodInput,
    accounting: &[price::AccountRow],
) -> Result<()> {
    let rows: u64 = accounting.iter().map(|r| r.rows).sum();
    let cost: rust_decimal::Decimal = accounting.iter().map(|r| r.billable_cost).sum();
    let scope = format!("period {period}");
    if rows != counted.rows {
        return Err(Error::Unreconciled {
            scope,
            what: "rows",
            expected: format!("{} in the input", counted.rows),
            found: format!("{rows} accounted"),
        });
    }
    if cost != counted.cost {
        return Err(Error::Unreconciled {
            scope,
            what: "unblended costs",
            expected: format!("{} in the input", counted.cost),
            found: format!("{cost} accounted"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Period {
        s.parse().unwrap()
    }

    #[test]
    fn the_accounting_must_hold_every_input_row_and_cent_once() {
        let row = |rows: u64, cost: &str| price::AccountRow {
            billing_group: "acme".into(),
            line_item_type: "Usage".into(),
            product_code: None,
            charge_class: None,
            treatment: price::Treatment::Rerate,
            unassigned_account: None,
            defect: None,
            currency: "USD".into(),
            rows,
            billable_cost: cost.parse().unwrap(),
            proforma_cost: cost.parse().unwrap(),
            product_name: None,
        };
        let counted = PeriodInput {
            rows: 3,
            cost: "4.50".parse().unwrap(),
        };
        let period = p("2025-11");
        assert!(reconcile(period, counted, &[row(1, "1.25"), row(2, "3.25")]).is_ok());
        // A row counted twice by a join, or lost by one.
        let err = reconcile(period, counted, &[row(2, "1.25"), row(2, "3.25")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "period 2025-11: rows do not reconcile: expected 3 in the input, found 4 accounted; \
             nothing written"
        );
        let err = reconcile(period, counted, &[row(1, "1.25"), row(2, "3.24")]).unwrap_err();
        assert!(
            err.to_string()
                .contains("expected 4.50 in the input, found 4.49"),
            "{err}"
        );
        assert_eq!(err.exit_code(), 1);
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
