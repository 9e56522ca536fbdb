//! Re-rating: config tables, the pro forma SQL (`sql/rate.sql`), the period's accounting, and
//! custom line items.

pub mod custom;
pub mod tables;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Decimal128Type, Int64Type};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::when;
use datafusion::prelude::{DataFrame, Expr, SessionContext, col, lit};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::ingest::columns::{CUR2_COLUMNS, Kind};
use crate::sql;

/// Every row of `cur` assigned, classified and priced. Registers the views `cur`,
/// `account_groups` (`sql/account_groups.sql`), `assigned` (`sql/assign.sql`) and `rated`
/// (`sql/rate.sql`).
pub async fn rated(ctx: &SessionContext, cur: DataFrame) -> Result<DataFrame> {
    replace_view(ctx, "cur", cur)?;
    replace_view(ctx, "account_groups", ctx.sql(sql::ACCOUNT_GROUPS).await?)?;
    replace_view(ctx, "assigned", ctx.sql(sql::ASSIGN).await?)?;
    let rated = ctx.sql(sql::RATE).await?;
    replace_view(ctx, "rated", rated.clone())?;
    Ok(rated)
}

fn replace_view(ctx: &SessionContext, name: &str, df: DataFrame) -> Result<()> {
    ctx.deregister_table(name)?;
    ctx.register_table(name, df.into_view())?;
    Ok(())
}

/// How a row is treated in pro forma (column `treatment` of `sql/rate.sql`).
pub mod treatment {
    pub const RERATE: &str = "rerate";
    pub const PASS: &str = "pass";
    pub const DROP: &str = "drop";
    pub const UNASSIGNED: &str = "unassigned";
    pub const UNKNOWN: &str = "unknown";
}

/// One line of the period's accounting (see `sql/accounting.sql`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccountRow {
    pub billing_group: String,
    pub line_item_type: String,
    pub product_code: Option<String>,
    pub charge_class: String,
    pub treatment: String,
    pub unassigned_account: Option<String>,
    /// Why these rows cannot be billed at all (`null:<column>`, `currency:<code>`), if so.
    pub defect: Option<String>,
    pub rows: u64,
    pub billable_cost: Decimal,
    pub proforma_cost: Decimal,
    /// `product['product_name']` of the rows, if any (readable names on invoices).
    pub product_name: Option<String>,
}

/// Runs `sql/accounting.sql` over `rated`: where every row went, with amounts.
pub async fn accounting(ctx: &SessionContext) -> Result<Vec<AccountRow>> {
    let batches = ctx.sql(sql::ACCOUNTING).await?.collect().await?;
    let mut rows = Vec::new();
    for b in &batches {
        rows.extend(account_rows(b)?);
    }
    Ok(rows)
}

fn account_rows(b: &RecordBatch) -> Result<Vec<AccountRow>> {
    let column = |name: &str| {
        b.column_by_name(name)
            .unwrap_or_else(|| panic!("sql/accounting.sql selects {name}"))
    };
    let text = |name: &str, row: usize| {
        let a = column(name).as_string::<i32>();
        a.is_valid(row).then(|| a.value(row).to_string())
    };
    let money = |name: &str, row: usize| -> Result<Decimal> {
        Ok(decimal_at(column(name).as_primitive::<Decimal128Type>(), row)?.unwrap_or_default())
    };
    let counts = column("row_count").as_primitive::<Int64Type>();
    (0..b.num_rows())
        .map(|r| {
            Ok(AccountRow {
                billing_group: text("billing_group", r).unwrap_or_default(),
                line_item_type: text("line_item_type", r).unwrap_or_default(),
                product_code: text("product_code", r),
                charge_class: text("charge_class", r).unwrap_or_default(),
                treatment: text("treatment", r).unwrap_or_default(),
                unassigned_account: text("unassigned_account", r),
                defect: text("defect", r),
                rows: counts.value(r) as u64,
                billable_cost: money("billable_cost", r)?,
                proforma_cost: money("proforma_cost", r)?,
                product_name: text("product_name", r),
            })
        })
        .collect()
}

/// An Arrow decimal as `rust_decimal`, exactly; amounts beyond its 96 bits are an error.
pub fn decimal_at(
    a: &arrow::array::PrimitiveArray<Decimal128Type>,
    row: usize,
) -> Result<Option<Decimal>> {
    if a.is_null(row) {
        return Ok(None);
    }
    Decimal::try_from_i128_with_scale(a.value(row), a.scale() as u32)
        .map(Some)
        .map_err(|_| Error::AmountOverflow {
            value: a.value_as_string(row),
        })
}

/// The billable table: every input row, CUR 2.0 columns as read, plus its billing group. Reads
/// the `assigned` view [`rated`] registers: billing needs the group, not the pricing.
pub async fn billable(ctx: &SessionContext) -> Result<DataFrame> {
    let mut exprs: Vec<Expr> = CUR2_COLUMNS.iter().map(|(n, _)| col(*n)).collect();
    exprs.extend([col("billing_period"), col("billing_group")]);
    Ok(ctx.table("assigned").await?.select(exprs)?)
}

/// The pro forma table: re-rated and passed rows, with every cost and rate column carrying the
/// pro forma value and every column that could reveal billable prices or discounts emptied.
pub fn proforma(rated: DataFrame) -> Result<DataFrame> {
    let passed = || col("treatment").eq(lit(treatment::PASS));
    let mut exprs = Vec::with_capacity(CUR2_COLUMNS.len() + 4);
    for &(name, kind) in CUR2_COLUMNS {
        let null = Expr::Literal(ScalarValue::try_from(&kind.data_type())?, None);
        let expr = match name {
            "line_item_unblended_cost"
            | "line_item_net_unblended_cost"
            | "line_item_blended_cost" => col("proforma_cost"),
            "line_item_unblended_rate"
            | "line_item_net_unblended_rate"
            | "line_item_blended_rate" => col("proforma_rate"),
            "bill_invoice_id"
            | "discount"
            | "discount_bundled_discount"
            | "discount_total_discount" => null,
            // Re-rated commitment usage is billed like on-demand usage, without its commitment.
            "line_item_line_item_type" => when(
                col("charge_class")
                    .eq(lit("commitments"))
                    .and(col("treatment").eq(lit(treatment::RERATE))),
                lit("Usage"),
            )
            .otherwise(col(name))?,
            _ if name.starts_with("reservation_") || name.starts_with("savings_plan_") => {
                when(passed(), col(name)).otherwise(null)?
            }
            _ if name.starts_with("split_line_item_") && kind == Kind::Money => null,
            _ => col(name),
        };
        exprs.push(expr.alias(name));
    }
    exprs.extend([
        col("billing_period"),
        col("billing_group"),
        col("pricing_plan"),
        col("pricing_rule"),
    ]);
    let shown = col("treatment").in_list(vec![lit(treatment::RERATE), lit(treatment::PASS)], false);
    Ok(rated.filter(shown)?.select(exprs)?)
}
