//! What stops a period before anything is written: rows no plan can bill (an unknown line item
//! type, a key column without a value) and line items delivered twice.
//! Each refusal names the input file the rows are in, found by reading the files one by one:
//! only the error path pays for that.

use arrow::array::AsArray;
use arrow::datatypes::{DataType, Int64Type};
use datafusion::logical_expr::cast;
use datafusion::prelude::{Expr, SessionContext, col, lit};

use super::Input;
use crate::error::{Error, Result};
use crate::job::Job;
use crate::period::Period;

/// Why rows cannot be billed whatever the plan (column `missing_column` of
/// `sql/accounting.sql`). Currencies are checked before, by `price::currency`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Defect {
    /// A key column without a value.
    Missing { column: String },
}

/// Rows of a period that stop it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unbillable {
    /// A line item type rerate does not know (`None`: no type at all).
    UnknownType(Option<String>),
    Defect(Defect),
}

/// The error for `rows` rows of `period` that are `what`, naming the first file holding them.
pub async fn refuse(
    ctx: &SessionContext,
    input: &Input,
    period: Period,
    what: Unbillable,
    rows: u64,
) -> Error {
    let matches = match &what {
        Unbillable::UnknownType(None) => col("line_item_line_item_type").is_null(),
        Unbillable::UnknownType(Some(kind)) => col("line_item_line_item_type").eq(lit(kind)),
        Unbillable::Defect(Defect::Missing { column }) => col(column.as_str()).is_null(),
    };
    let (file, rows) = match locate(ctx, input, period, matches, rows).await {
        Ok(found) => found,
        Err(e) => return e,
    };
    match what {
        Unbillable::UnknownType(kind) => Error::UnknownLineItemType {
            kind: kind.unwrap_or_else(|| "(null)".to_string()),
            file,
            rows,
        },
        Unbillable::Defect(Defect::Missing { column }) => {
            Error::MissingValue { file, column, rows }
        }
    }
}

/// Refuses a period holding one line item (id and usage interval) twice, naming every file that
/// holds it: a re-delivered export would otherwise be billed twice. Reads the `cur` view (on the
/// job's cluster, if it has one).
pub async fn duplicates(job: &Job, input: &Input, period: Period) -> Result<()> {
    let ctx = &job.ctx;
    let batches = job.collect(ctx.sql(crate::sql::DUPLICATES).await?).await?;
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
