//! The pipeline's SQL, one statement per file in `sql/` named after its stage, and the tables of
//! our own the statements join (`sql/*.csv`: read by Rust through [`rows`], registered for the
//! SQL by [`register_csv`], from the same compiled-in text).

use std::sync::Arc;

use arrow::compute::concat_batches;
use arrow::csv::ReaderBuilder;
use arrow::csv::reader::Format;
use datafusion::prelude::SessionContext;

use crate::error::Result;

/// The billing group of every (usage account, payer) pair of `cur`.
pub(crate) const ACCOUNT_GROUPS: &str = include_str!("../sql/account_groups.sql");

/// The payer of every usage account of `account_groups`.
pub(crate) const ACCOUNT_PAYERS: &str = include_str!("../sql/account_payers.sql");

/// Every row of `cur` with its billing group: the billable rows.
pub(crate) const ASSIGN: &str = include_str!("../sql/assign.sql");

/// How every distinct combination of the columns a decision depends on is treated and priced.
pub(crate) const DECISIONS: &str = include_str!("../sql/decisions.sql");

/// Every row of `cur` with its decision, priced.
pub(crate) const RATE: &str = include_str!("../sql/rate.sql");

/// Row and amount accounting per group, type, service and treatment over `rated`.
pub(crate) const ACCOUNTING: &str = include_str!("../sql/accounting.sql");

/// The currency of every (period start, payer, billing group) of `cur`, grouped by `account_groups`.
pub(crate) const BILL_CURRENCIES: &str = include_str!("../sql/bill_currencies.sql");

/// What each line item type is (`price::line_items` parses it; the SQL joins it).
pub(crate) const LINE_ITEM_TYPES: &str = include_str!("../sql/line_item_types.csv");

/// Service names and their FOCUS categories (`invoice::services` parses it; the SQL joins it).
pub(crate) const SERVICES: &str = include_str!("../sql/services.csv");

/// The rows of one of our CSV tables, each parsed by `row` from its comma-separated fields: the
/// first line must be `header`, blank lines are skipped, errors name the line.
pub(crate) fn rows<'a, T>(
    text: &'a str,
    header: &str,
    row: impl Fn(Vec<&'a str>) -> std::result::Result<T, String>,
) -> std::result::Result<Vec<T>, String> {
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, first)) if first == header => {}
        _ => return Err(format!("the header must be {header:?}")),
    }
    lines
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| row(line.split(',').collect()).map_err(|e| format!("line {}: {e}", i + 1)))
        .collect()
}

/// Registers one of our CSV tables as `name` for the SQL, read from the same text by Arrow's CSV
/// reader (empty cells are nulls, `true`/`false` booleans).
pub(crate) fn register_csv(ctx: &SessionContext, name: &str, text: &str) -> Result<()> {
    let format = Format::default().with_header(true);
    let (schema, _) = format.infer_schema(text.as_bytes(), None)?;
    let schema = Arc::new(schema);
    let batches = ReaderBuilder::new(schema.clone())
        .with_format(format)
        .build(text.as_bytes())?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    ctx.register_batch(name, concat_batches(&schema, &batches)?)?;
    Ok(())
}
