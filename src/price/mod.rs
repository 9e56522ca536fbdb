//! Re-rating: config tables, the pro forma SQL (`sql/decisions.sql`, `sql/rate.sql`), the
//! period's accounting, and custom line items.

pub mod currency;
pub mod custom;
pub mod line_items;
pub mod matches;
pub mod rules;
pub mod tables;

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Decimal128Type, Int64Type};
use datafusion::catalog::TableProvider;
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::datasource::MemTable;
use datafusion::logical_expr::when;
use datafusion::prelude::{DataFrame, Expr, SessionContext, col, ident, lit};
use rust_decimal::Decimal;

pub use self::line_items::{ChargeClass, LineItemType};
use crate::config::Config;
use crate::error::{Error, Result};
pub use crate::ingest::checks::Defect;
use crate::ingest::checks::Unbillable;
use crate::ingest::columns::{self, CUR2_COLUMNS, Kind};
use crate::period::Period;
use crate::{engine, money, sql};

/// Every row of `cur` (rows of `period`) assigned, classified and priced by the rules in force
/// in `period`. Registers the views `cur`, `account_groups` (`sql/account_groups.sql`),
/// `assigned` (`sql/assign.sql`) and `rated` (`sql/rate.sql`), the period's rule tables
/// ([`rules::register`]), and `decisions` (`sql/decisions.sql`): decided here, once, on
/// `cluster` if there is one, and kept in memory, so that every pass over the rows (the
/// accounting, the tables) joins them instead of reading the period once more to decide again.
pub async fn rated(
    ctx: &SessionContext,
    cluster: Option<&SessionContext>,
    config: &Config,
    period: Period,
    cur: DataFrame,
) -> Result<DataFrame> {
    rules::register(ctx, config, period)?;
    replace_view(ctx, "cur", matches::with_match_group(config, cur)?)?;
    replace_view(ctx, "account_groups", ctx.sql(sql::ACCOUNT_GROUPS).await?)?;
    replace_view(ctx, "assigned", ctx.sql(sql::ASSIGN).await?)?;
    let decisions = ctx.sql(sql::DECISIONS).await?;
    let planned = Arc::new(decisions.schema().as_arrow().clone());
    let batches = engine::collect(cluster, decisions).await?;
    let schema = batches.first().map_or(planned, |b| b.schema());
    replace(
        ctx,
        "decisions",
        Arc::new(MemTable::try_new(schema, vec![batches])?),
    )?;
    let rated = ctx.sql(sql::RATE).await?;
    replace_view(ctx, "rated", rated.clone())?;
    Ok(rated)
}

fn replace_view(ctx: &SessionContext, name: &str, df: DataFrame) -> Result<()> {
    replace(ctx, name, df.into_view())
}

fn replace(ctx: &SessionContext, name: &str, table: Arc<dyn TableProvider>) -> Result<()> {
    ctx.deregister_table(name)?;
    ctx.register_table(name, table)?;
    Ok(())
}

/// How a row is treated in pro forma (column `treatment` of `sql/decisions.sql`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::EnumString, strum::IntoStaticStr)]
#[strum(serialize_all = "lowercase")]
pub enum Treatment {
    /// Priced by the plan's rules.
    Rerate,
    /// At its billable value.
    Pass,
    /// Billable only.
    Drop,
    /// In no billing group: billable only, as `_unassigned`.
    Unassigned,
    /// A line item type rerate does not know: the period stops.
    Unknown,
}

impl Treatment {
    /// The treatments whose rows are in pro forma (and so on invoices and exports).
    pub const IN_PROFORMA: [Treatment; 2] = [Treatment::Rerate, Treatment::Pass];

    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Whether the row is in pro forma.
    pub fn in_proforma(self) -> bool {
        Self::IN_PROFORMA.contains(&self)
    }
}

/// One line of the period's accounting (see `sql/accounting.sql`).
#[derive(Debug, Clone, PartialEq)]
pub struct AccountRow {
    pub billing_group: String,
    pub line_item_type: String,
    pub product_code: Option<String>,
    /// None for a line item type rerate does not know (then `treatment` is `Unknown`).
    pub charge_class: Option<ChargeClass>,
    pub treatment: Treatment,
    pub unassigned_account: Option<String>,
    pub defect: Option<Defect>,
    /// The rows' `line_item_currency_code`: the currency of both amounts.
    pub currency: String,
    pub rows: u64,
    pub billable_cost: Decimal,
    pub proforma_cost: Decimal,
    /// `product['product_name']` of the rows, if any (readable names on invoices).
    pub product_name: Option<String>,
}

impl AccountRow {
    /// The row's type in the line item type table (known for every row in pro forma).
    pub fn line_item_type(&self) -> Option<&'static LineItemType> {
        line_items::get(&self.line_item_type)
    }
}

/// The payer of every usage account of the period (`sql/account_payers.sql`).
pub async fn account_payers(ctx: &SessionContext) -> Result<BTreeMap<String, String>> {
    let batches = ctx.sql(sql::ACCOUNT_PAYERS).await?.collect().await?;
    let mut out = BTreeMap::new();
    for b in &batches {
        let (accounts, payers) = (
            b.column(0).as_string::<i32>(),
            b.column(1).as_string::<i32>(),
        );
        for row in 0..b.num_rows() {
            out.insert(
                accounts.value(row).to_string(),
                payers.value(row).to_string(),
            );
        }
    }
    Ok(out)
}

/// The first rows of the accounting no plan can bill, and how many rows are like them: an
/// unknown line item type first, then a defect.
pub fn unbillable(accounting: &[AccountRow]) -> Option<(Unbillable, u64)> {
    if let Some(r) = accounting
        .iter()
        .find(|r| r.treatment == Treatment::Unknown)
    {
        let kind = (!r.line_item_type.is_empty()).then(|| r.line_item_type.clone());
        return Some((Unbillable::UnknownType(kind), r.rows));
    }
    let defect = accounting.iter().find_map(|r| r.defect.as_ref())?;
    let rows = accounting
        .iter()
        .filter(|r| r.defect.as_ref() == Some(defect))
        .map(|r| r.rows)
        .sum();
    Some((Unbillable::Defect(defect.clone()), rows))
}

/// `sql/accounting.sql` over `rated`: where every row went, with amounts (to run, then read by
/// [`accounting`]).
pub async fn accounting_plan(ctx: &SessionContext) -> Result<DataFrame> {
    Ok(ctx.sql(sql::ACCOUNTING).await?)
}

/// The rows of [`accounting_plan`].
pub fn accounting(batches: &[RecordBatch]) -> Result<Vec<AccountRow>> {
    let mut rows = Vec::new();
    for b in batches {
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
        Ok(
            money::decimal_at(column(name).as_primitive::<Decimal128Type>(), row)?
                .unwrap_or_default(),
        )
    };
    // What crosses from SQL to Rust as text becomes an enum here, once; a value the SQL
    // produces that Rust does not know is a bug to report, never a default.
    fn parse<T: FromStr>(column: &str, value: Option<String>) -> Result<Option<T>> {
        value
            .map(|v| {
                v.parse().map_err(|_| Error::Internal {
                    what: format!("sql/accounting.sql gave {column} {v:?}"),
                })
            })
            .transpose()
    }
    let counts = column("row_count").as_primitive::<Int64Type>();
    (0..b.num_rows())
        .map(|r| {
            let defect = text("missing_column", r).map(|column| Defect::Missing { column });
            Ok(AccountRow {
                billing_group: text("billing_group", r).unwrap_or_default(),
                line_item_type: text("line_item_type", r).unwrap_or_default(),
                product_code: text("product_code", r),
                charge_class: parse("charge_class", text("charge_class", r))?,
                treatment: parse("treatment", text("treatment", r))?.ok_or_else(|| {
                    Error::Internal {
                        what: "sql/accounting.sql gave a row without a treatment".into(),
                    }
                })?,
                unassigned_account: text("unassigned_account", r),
                defect,
                currency: text("currency", r).unwrap_or_default(),
                rows: counts.value(r) as u64,
                billable_cost: money("billable_cost", r)?,
                proforma_cost: money("proforma_cost", r)?,
                product_name: text("product_name", r),
            })
        })
        .collect()
}

/// The billable table's columns: every input row's CUR 2.0 columns as read, the input's other
/// columns, its period and billing group. Of the assigned rows, or the rated ones (which are the
/// assigned rows with their pricing): billing needs the group, not the pricing.
pub fn billable_columns(rows: &DFSchema) -> Vec<Expr> {
    let mut exprs: Vec<Expr> = CUR2_COLUMNS.iter().map(|(n, _)| col(*n)).collect();
    // Every other input column too, unchanged: billable is the bill (SPEC §3).
    exprs.extend(columns::extras(rows.as_arrow()).map(|f| ident(f.name())));
    exprs.extend([col("billing_period"), col("billing_group")]);
    exprs
}

/// The pro forma table: re-rated and passed rows, with every cost and rate column carrying the
/// pro forma value and every column that could reveal billable prices or discounts emptied.
pub fn proforma(rated: DataFrame) -> Result<DataFrame> {
    let columns = proforma_columns(rated.schema())?;
    Ok(rated.filter(proforma_rows())?.select(columns)?)
}

/// Which rated rows pro forma holds: those of a treatment it shows.
pub fn proforma_rows() -> Expr {
    col("treatment").in_list(
        Treatment::IN_PROFORMA
            .iter()
            .map(|t| lit(t.as_str()))
            .collect(),
        false,
    )
}

/// The pro forma table's columns, of the rated rows ([`proforma`]).
pub fn proforma_columns(rated: &DFSchema) -> Result<Vec<Expr>> {
    let passed = || col("treatment").eq(lit(Treatment::Pass.as_str()));
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
            // Re-rated commitment usage is billed like on-demand usage, without a word, id or
            // term of its commitment.
            "line_item_line_item_type" => col("proforma_line_item_type"),
            "line_item_line_item_description" => col("proforma_line_item_description"),
            "pricing_term" => {
                when(col("rerated_commitment"), lit("OnDemand")).otherwise(col(name))?
            }
            "pricing_rate_code"
            | "pricing_rate_id"
            | "pricing_offering_class"
            | "pricing_purchase_option"
            | "pricing_lease_contract_length" => {
                when(col("rerated_commitment"), null).otherwise(col(name))?
            }
            _ if name.starts_with("reservation_") || name.starts_with("savings_plan_") => {
                when(passed(), col(name)).otherwise(null)?
            }
            _ if name.starts_with("split_line_item_") && kind == Kind::Money => null,
            _ => col(name),
        };
        exprs.push(expr.alias(name));
    }
    // The input's other columns: as they are, unless an amount, a rate or a commitment's.
    for f in columns::extras(rated.as_arrow()) {
        let expr = if columns::hidden_in_proforma(f.name()) {
            crate::ingest::null_of(f.data_type())
        } else {
            ident(f.name())
        };
        exprs.push(expr.alias(f.name()));
    }
    exprs.extend([
        col("billing_period"),
        col("billing_group"),
        col("pricing_plan"),
        col("pricing_rule"),
    ]);
    Ok(exprs)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::datatypes::Schema;

    use super::*;
    use crate::ingest::columns::RESERVED;

    /// An input column by the name of a column the SQL adds would be ambiguous; `RESERVED`
    /// is how ingest refuses such names, so it must name exactly what the SQL adds.
    #[tokio::test]
    async fn reserved_names_are_exactly_the_columns_the_sql_adds() {
        let config = crate::config::parse(
            "[[billing-group]]\nname = \"a\"\npayer-account-id = \"111111111111\"\n\
             pricing-plan = \"p\"\n[[pricing-plan]]\nname = \"p\"\nrules = []\n",
            "test.toml",
        )
        .unwrap();
        let ctx = crate::engine::new_context(&config.engine).unwrap();
        tables::register(&ctx, &config).unwrap();
        let mut fields: Vec<_> = CUR2_COLUMNS
            .iter()
            .map(|(n, k)| arrow::datatypes::Field::new(*n, k.data_type(), true))
            .collect();
        for own in ["billing_period", "folder_period"] {
            fields.push(arrow::datatypes::Field::new(
                own,
                arrow::datatypes::DataType::Utf8,
                true,
            ));
        }
        let cur = ctx
            .read_batch(RecordBatch::new_empty(Arc::new(Schema::new(fields))))
            .unwrap();
        let rated = rated(&ctx, None, &config, "2025-11".parse().unwrap(), cur)
            .await
            .unwrap();
        let mut added: Vec<&str> = rated
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .filter(|n| columns::kind_of(n).is_none())
            .collect();
        added.sort_unstable();
        let mut reserved = RESERVED.to_vec();
        reserved.sort_unstable();
        assert_eq!(added, reserved);
    }
}
