//! What stops a period before anything is written: rows no plan can bill (an unknown line item
//! type, a key column without a value) and line items delivered twice.
//! Each refusal names the input file the rows are in, found by reading the files one by one:
//! only the error path pays for that.

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{DataType, Int64Type, UInt64Type};
use datafusion::functions_aggregate::expr_fn::count;
use datafusion::logical_expr::cast;
use datafusion::prelude::{Expr, SessionContext, col, in_list, lit};

use super::Input;
use super::line_item_key::line_item_key;
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
/// job's cluster, if it has one): rows are grouped by [`line_item_key`] first, and only keys two
/// rows share are looked at by their identity.
pub async fn duplicates(job: &Job, input: &Input, period: Period) -> Result<()> {
    let ctx = &job.ctx;
    let [id, start, end] = IDENTITY.map(col);
    let key = line_item_key(id.clone(), start.clone(), end.clone());
    let copies = || count(lit(1)).alias("copies");
    let shared = ctx
        .table("cur")
        .await?
        .aggregate(vec![key.clone().alias("key")], vec![copies()])?
        .filter(col("copies").gt(lit(1)))?
        .select(vec![col("key")])?;
    let shared: Vec<u64> = job
        .collect(shared)
        .await?
        .iter()
        .flat_map(|b| b.column(0).as_primitive::<UInt64Type>().values().to_vec())
        .collect();
    // A shared key is one line item twice, or (rarely) two that share a key: their identities
    // tell. A whole export delivered twice shares every key, and the first few say so.
    for keys in shared.chunks(SHARED_KEYS_AT_ONCE) {
        let keys = keys.iter().map(|k| lit(*k)).collect();
        let twice = ctx
            .table("cur")
            .await?
            .filter(in_list(key.clone(), keys, false))?
            .aggregate(vec![id.clone(), start.clone(), end.clone()], vec![copies()])?
            .filter(col("copies").gt(lit(1)))?
            .select(vec![
                cast(id.clone(), DataType::Utf8),
                cast(start.clone(), DataType::Utf8),
                cast(end.clone(), DataType::Utf8),
                col("copies"),
            ])?
            .limit(0, Some(1))?;
        let batches = job.collect(twice).await?;
        if let Some(b) = batches.iter().find(|b| b.num_rows() > 0) {
            return Err(duplicate(ctx, input, period, b).await);
        }
    }
    Ok(())
}

/// The columns that identify a line item: a row per line item and usage interval.
const IDENTITY: [&str; 3] = [
    "identity_line_item_id",
    "line_item_usage_start_date",
    "line_item_usage_end_date",
];

/// How many shared keys one look at the rows settles.
const SHARED_KEYS_AT_ONCE: usize = 1024;

/// The error for the line item of `b`'s first row (id, start, end, copies), naming every file
/// holding it.
async fn duplicate(ctx: &SessionContext, input: &Input, period: Period, b: &RecordBatch) -> Error {
    let text = |i: usize| b.column(i).as_string::<i32>().value(0).to_string();
    let (id, start, end) = (text(0), text(1), text(2));
    let count = b.column(3).as_primitive::<Int64Type>().value(0) as u64;
    let matches = col(IDENTITY[0])
        .eq(lit(id.clone()))
        .and(cast(col(IDENTITY[1]), DataType::Utf8).eq(lit(start.clone())))
        .and(cast(col(IDENTITY[2]), DataType::Utf8).eq(lit(end.clone())));
    let mut files = Vec::new();
    for (i, file) in input.files.iter().enumerate() {
        match input
            .count_in_file(ctx, i, Some(period), matches.clone())
            .await
        {
            Ok(0) => {}
            Ok(_) => files.push(file.url.as_str()),
            Err(e) => return e,
        }
    }
    Error::DuplicateLineItem {
        id,
        start,
        end,
        count,
        files: files.join(", "),
    }
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
