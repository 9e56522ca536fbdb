//! Rows claimed by a resource tag or a cost category (SPEC §5.1): the one decision made per row,
//! since a tag is a row's own. `match_group` is the group whose `match` holds for the row, or
//! null; the SQL lets it win over the account's and the organization's group. With no `match`
//! in the config it is a null constant, and costs nothing.
//!
//! The expressions are built from the config as expression trees with literal keys and values,
//! never as SQL text.

use datafusion::common::ScalarValue;
use datafusion::functions::expr_fn::{concat_ws, strpos};
use datafusion::logical_expr::when;
use datafusion::prelude::{DataFrame, Expr, col, ident, lit};

use crate::config::{Config, Match};
use crate::error::{Error, Result};
use crate::ingest::map_value::map_value;
use crate::job::Job;
use crate::period::Period;

/// The column `cur` carries for the SQL.
pub const COLUMN: &str = "match_group";

/// Whether `m` holds for a row: its map has `m.value` under `m.key`.
fn holds(m: &Match) -> Expr {
    map_value(col(m.on.column()), &m.key).eq(lit(m.value.clone()))
}

/// Per group with matches, whether any of them holds, in config order.
fn claims(config: &Config) -> Vec<(&str, Expr)> {
    config
        .groups
        .iter()
        .filter_map(|g| {
            let mut any = g.members.matches.iter().map(holds);
            let first = any.next()?;
            Some((g.name.as_str(), any.fold(first, Expr::or)))
        })
        .collect()
}

/// `df` with [`COLUMN`]: the first group (config order) whose match holds, else null.
pub fn with_match_group(config: &Config, df: DataFrame) -> Result<DataFrame> {
    let claims = claims(config);
    let group = match claims.split_first() {
        None => lit(ScalarValue::Utf8(None)),
        Some(((name, cond), rest)) => {
            let mut case = when(cond.clone(), lit(*name));
            for (name, cond) in rest {
                case = case.when(cond.clone(), lit(*name));
            }
            case.otherwise(lit(ScalarValue::Utf8(None)))?
        }
    };
    Ok(df.with_column(COLUMN, group)?)
}

/// A row of `cur` (the period's) that two groups' matches claim: an error naming the line item
/// and the groups (exit 1). Runs on the job's cluster, if it has one.
pub async fn refuse_ambiguous(job: &Job, period: Period, cur: DataFrame) -> Result<()> {
    let claims = claims(&job.config);
    if claims.len() < 2 {
        return Ok(());
    }
    // Every claiming group's name, comma-separated; two or more is ambiguous.
    let names: Vec<Expr> = claims
        .iter()
        .map(|(name, cond)| when(cond.clone(), lit(*name)).end())
        .collect::<std::result::Result<_, _>>()?;
    let claimed = concat_ws(lit(", "), names);
    let found = cur
        .select(vec![
            ident("identity_line_item_id"),
            claimed.alias("claimed_by"),
        ])?
        .filter(strpos(col("claimed_by"), lit(", ")).gt(lit(0)))?
        .limit(0, Some(1))?;
    let found = job.collect(found).await?;
    let Some(batch) = found.first().filter(|b| b.num_rows() > 0) else {
        return Ok(());
    };
    let text = |i: usize| {
        arrow::util::display::array_value_to_string(batch.column(i), 0).unwrap_or_default()
    };
    Err(Error::AmbiguousMatch {
        period,
        line_item: text(0),
        groups: text(1),
    })
}
