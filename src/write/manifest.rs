//! The run manifest, `runs/<run-id>.json` (also what `rerate run --json` prints): what a run
//! read, how it was configured, where every row went, the control totals and what each stage
//! wrote, for audit. Built from the stages' own results.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use object_store::ObjectStoreExt;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::config::UNASSIGNED;
use crate::error::Result;
use crate::ingest::delivery::IgnoredFile;
use crate::ingest::{InputFile, PeriodInput};
use crate::period::Period;
use crate::price::custom::CustomCharge;
use crate::price::{AccountRow, Treatment};
use crate::storage::Location;
use crate::write::delta::{Restored, TableCommit};
use crate::write::exports::GroupExport;
use crate::write::invoices::InvoiceRef;

/// The run manifest.
#[derive(Debug, Clone, Serialize)]
pub struct RunManifest {
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
    /// The periods that landed.
    pub periods: Vec<PeriodSummary>,
    /// What a failed run's restore did.
    #[serde(flatten)]
    pub undone: Undone,
}

/// A failed run's table commits, undone (its documents and exports were left as they were).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Undone {
    /// Each table put back as it was before the run.
    pub restored: Vec<Restored>,
    /// Commits that could not be undone (the store failed again, or another writer committed
    /// since): these tables hold the failed period; re-run it.
    pub not_restored: Vec<TableCommit>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConfigRef {
    pub path: String,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct InputRef {
    pub url: String,
    /// The files read, with the rows their footers count.
    pub files: Vec<InputFile>,
    /// Σ rows of the files' footers; the periods' `input_rows` add up to it.
    pub rows: u64,
    /// The AWS manifests that chose them (none for a plain folder of files).
    pub manifests: Vec<String>,
    /// Parquet files of the input the manifests leave out, and why (SPEC §3 "Which files").
    pub ignored: Vec<IgnoredFile>,
}

/// One period: where every input row went, control totals, and what was written.
#[derive(Debug, Clone, Serialize)]
pub struct PeriodSummary {
    pub period: Period,
    /// Rows of the input in the period, counted from the files (not from any output).
    pub input_rows: u64,
    /// Σ line_item_unblended_cost of the input's rows in the period, aggregated from the files
    /// (not from any output; billable reconciles to it), as written: in the bill currency when
    /// the period's payers are all billed in one (`input_cost_by_currency` has them apart). The
    /// control totals add up the same way.
    pub input_cost: Decimal,
    /// Σ line_item_unblended_cost per bill currency (`line_item_currency_code`).
    pub input_cost_by_currency: BTreeMap<String, Decimal>,
    pub groups: Vec<GroupSummary>,
    pub unassigned: Unassigned,
    pub custom_line_items: Vec<CustomCharge>,
    pub control: ControlTotals,
    pub tables: Vec<TableCommit>,
    /// The period's documents: a draft per open group; every document issued to a closed one,
    /// with the credit notes and replacements this run issued (`written`).
    pub invoices: Vec<InvoiceRef>,
    /// One pro forma CUR export per configured group (`exports/<group>/`).
    pub exports: Vec<GroupExport>,
    /// The same as FOCUS 1.2, per group (`exports/<group>/focus/`).
    pub focus_exports: Vec<GroupExport>,
    /// The period at a glance, for the reseller (SPEC §6.5).
    pub report: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct GroupSummary {
    pub billing_group: String,
    /// What AWS bills the group in: the currency of its amounts here. For `_unassigned` rows of
    /// payers billed in different currencies, none (their amounts add up as written).
    pub bill_currency: Option<String>,
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

impl Unassigned {
    /// The rows of the accounting that belong to no group, and their accounts.
    pub fn of(accounting: &[AccountRow]) -> Unassigned {
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

/// What one period's stages wrote.
pub struct Written {
    pub billable: TableCommit,
    pub proforma: TableCommit,
    pub focus: TableCommit,
    pub margin: TableCommit,
    pub invoice_lines: TableCommit,
    pub periods: TableCommit,
    pub invoices: Vec<InvoiceRef>,
    pub exports: Vec<GroupExport>,
    pub focus_exports: Vec<GroupExport>,
    /// The period's report (`reports/billing_period=P/index.html`).
    pub report: String,
}

impl PeriodSummary {
    /// The period's summary from its accounting (and its unassigned rows), custom line items
    /// and what was written.
    pub fn new(
        period: Period,
        input: PeriodInput,
        accounting: &[AccountRow],
        unassigned: Unassigned,
        custom_line_items: Vec<CustomCharge>,
        written: Written,
    ) -> PeriodSummary {
        let mut groups: BTreeMap<&str, GroupSummary> = BTreeMap::new();
        let mut currencies: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        let mut by_currency: BTreeMap<String, Decimal> = BTreeMap::new();
        let mut control = ControlTotals::default();
        for r in accounting {
            currencies
                .entry(&r.billing_group)
                .or_default()
                .insert(&r.currency);
            *by_currency.entry(r.currency.clone()).or_default() += r.billable_cost;
            let g = groups
                .entry(&r.billing_group)
                .or_insert_with(|| GroupSummary {
                    billing_group: r.billing_group.clone(),
                    ..Default::default()
                });
            g.rows += r.rows;
            g.billable_cost += r.billable_cost;
            g.proforma_cost += r.proforma_cost;
            let class = r.charge_class.map_or("unknown", |c| c.as_str());
            let tally = g
                .by_reason
                .entry(format!("{}:{class}", r.treatment.as_str()))
                .or_default();
            tally.rows += r.rows;
            tally.billable_cost += r.billable_cost;
            control.billable_total += r.billable_cost;
            match r.treatment {
                Treatment::Rerate => control.rerated_total += r.proforma_cost,
                Treatment::Pass => control.passed_total += r.proforma_cost,
                Treatment::Drop => control.dropped_total += r.billable_cost,
                Treatment::Unassigned | Treatment::Unknown => {}
            }
        }
        for c in &custom_line_items {
            control.custom_total += c.amount;
            if let Some(g) = groups.get_mut(c.billing_group.as_str()) {
                g.proforma_cost += c.amount;
            }
        }
        for (group, currencies) in currencies {
            if let (Some(g), [one]) = (
                groups.get_mut(group),
                currencies.into_iter().collect::<Vec<_>>().as_slice(),
            ) {
                g.bill_currency = Some(one.to_string());
            }
        }
        control.proforma_total =
            control.rerated_total + control.passed_total + control.custom_total;
        control.billable_rows_written = written.billable.rows;
        control.proforma_rows_written = written.proforma.rows;
        PeriodSummary {
            period,
            input_rows: input.rows,
            input_cost: input.cost,
            input_cost_by_currency: by_currency,
            groups: groups.into_values().collect(),
            unassigned,
            custom_line_items,
            control,
            tables: vec![
                written.billable,
                written.proforma,
                written.focus,
                written.margin,
                written.invoice_lines,
                written.periods,
            ],
            invoices: written.invoices,
            exports: written.exports,
            focus_exports: written.focus_exports,
            report: written.report,
        }
    }
}

/// Writes `runs/<run-id>.json` under `output`.
pub async fn write(output: &Location, manifest: &RunManifest) -> Result<()> {
    let runs = output.child(&["runs"]);
    let path = runs
        .prefix
        .clone()
        .join(format!("{}.json", manifest.run_id));
    let body = serde_json::to_vec_pretty(manifest).expect("the manifest serializes");
    output
        .store
        .put(&path, body.into())
        .await
        .map_err(|e| runs.storage_error(e))?;
    Ok(())
}
