//! The line item type table, `sql/line_item_types.csv`: every CUR line item type rerate bills,
//! and what each one is. It is the one place a type name is spelled: the SQL joins it as the
//! table `line_item_types`, the Rust code reads it here, the DuckDB peer reads the same file. A
//! type that is not in it stops the period (`rerate` never guesses what a new AWS type means).
//!
//! Columns:
//! - `charge_class`: what the plan's policies decide on ([`ChargeClass`]);
//! - `invoice_kind`: the invoice section its pro forma amount is listed in ([`ChargeKind`]);
//! - `commitment`: `savings-plan` or `reservation` for commitment lines: whose ARN names the
//!   commitment's owner;
//! - `unowned`: what a commitment line becomes when its commitment is not the group's: `rerate`
//!   (covered usage, charged at on-demand) or `drop` (fees and negations);
//! - `shown_as`: the type a re-rated line shows in pro forma (covered usage becomes `Usage`);
//! - `negation`: it offsets covered usage (`exclude-savings-plan-negation` leaves it out of a
//!   percentage's base);
//! - `focus_charge_category`, `focus_charge_frequency`: its FOCUS `ChargeCategory` and
//!   `ChargeFrequency` (`sql/focus.sql`; custom line items are `Adjustment` or `Credit` there).

use std::str::FromStr;
use std::sync::LazyLock;

use datafusion::prelude::SessionContext;
use serde::{Deserialize, Serialize};

use super::Treatment;
use crate::error::Result;
use crate::sql::LINE_ITEM_TYPES as TABLE;

/// What a line is for the plan's policies (column `charge_class` of `sql/rate.sql`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, strum::EnumString, strum::IntoStaticStr,
)]
#[strum(serialize_all = "kebab-case")]
pub enum ChargeClass {
    /// Re-rated by the plan's rules.
    Usage,
    /// Re-rated by the plan's rules, from the unblended amount.
    Fee,
    /// Usage and fees of AWS Support products (`sql/rate.sql` names them): the `support` policy.
    Support,
    /// Savings Plan and Reserved Instance lines: the `commitments` policy.
    Commitments,
    Credits,
    Refunds,
    AwsTax,
    PrivateDiscounts,
    /// Always passed: AWS gives it to every customer.
    BundledDiscount,
}

impl ChargeClass {
    /// The classes a plan sets a policy for, in the order the margin report lists what each
    /// dropped (`dropped_<class>` columns).
    pub const WITH_POLICY: [ChargeClass; 6] = [
        ChargeClass::Credits,
        ChargeClass::Refunds,
        ChargeClass::PrivateDiscounts,
        ChargeClass::AwsTax,
        ChargeClass::Support,
        ChargeClass::Commitments,
    ];

    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// What an invoice line charges for, in the order the invoice lists them. The kind of each
/// line item type is the `invoice_kind` of `sql/line_item_types.csv`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    strum::EnumString,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ChargeKind {
    /// Usage, and commitment usage re-rated or passed (covered usage, negations).
    Usage,
    /// Fees, Savings Plan and Reserved Instance fees.
    Fees,
    /// Passed discounts (bundled, and private discounts where the plan passes them).
    Discounts,
    Credits,
    Refunds,
    /// The reseller's own fees and credits (`[[custom-line-item]]`).
    CustomLineItems,
    /// AWS's tax passed through (`aws-tax = "pass"`); customer tax comes from the tax profile.
    AwsTax,
}

impl ChargeKind {
    /// `snake_case`, as in the JSON and the `invoice_lines` table.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Which kind of commitment a line belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::EnumString, strum::IntoStaticStr)]
#[strum(serialize_all = "kebab-case")]
pub enum Commitment {
    SavingsPlan,
    Reservation,
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineItemType {
    pub name: String,
    pub charge_class: ChargeClass,
    pub invoice_kind: ChargeKind,
    pub commitment: Option<Commitment>,
    pub unowned: Option<Treatment>,
    pub shown_as: Option<String>,
    pub negation: bool,
    pub focus_charge_category: FocusChargeCategory,
    pub focus_charge_frequency: FocusChargeFrequency,
}

/// FOCUS 1.2 `ChargeCategory` (its allowed values, spelled as FOCUS spells them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::EnumString, strum::IntoStaticStr)]
pub enum FocusChargeCategory {
    Usage,
    Purchase,
    Tax,
    Credit,
    Adjustment,
}

/// FOCUS 1.2 `ChargeFrequency`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::EnumString, strum::IntoStaticStr)]
pub enum FocusChargeFrequency {
    #[strum(serialize = "One-Time")]
    OneTime,
    Recurring,
    #[strum(serialize = "Usage-Based")]
    UsageBased,
}

const HEADER: &str = "line_item_type,charge_class,invoice_kind,commitment,unowned,shown_as,negation,\
                      focus_charge_category,focus_charge_frequency";

static TYPES: LazyLock<Vec<LineItemType>> = LazyLock::new(|| {
    // The table is ours, compiled in and checked by a unit test: not input.
    parse(TABLE).unwrap_or_else(|e| panic!("sql/line_item_types.csv: {e}"))
});

/// Every known line item type, in the table's order.
pub fn all() -> &'static [LineItemType] {
    &TYPES
}

/// The type named `name`, if rerate knows it.
pub fn get(name: &str) -> Option<&'static LineItemType> {
    all().iter().find(|t| t.name == name)
}

/// The one type of a charge class that is not a commitment: what a custom line item of that
/// class is written as (`Fee`, `Credit`).
pub fn plain_type_of(class: ChargeClass) -> &'static str {
    let mut plain = all()
        .iter()
        .filter(|t| t.charge_class == class && t.commitment.is_none());
    match (plain.next(), plain.next()) {
        (Some(t), None) => &t.name,
        _ => panic!("sql/line_item_types.csv has no single plain type of class {class:?}"),
    }
}

/// Registers the table as `line_item_types` for the SQL.
pub fn register(ctx: &SessionContext) -> Result<()> {
    crate::sql::register_csv(ctx, "line_item_types", TABLE)
}

fn parse(text: &str) -> std::result::Result<Vec<LineItemType>, String> {
    crate::sql::rows(text, HEADER, row)
}

fn row(fields: Vec<&str>) -> std::result::Result<LineItemType, String> {
    let [
        name,
        class,
        kind,
        commitment,
        unowned,
        shown_as,
        negation,
        focus_category,
        focus_frequency,
    ] = fields[..]
    else {
        return Err(format!("expected 9 fields, found {}", fields.len()));
    };
    fn value<T: FromStr>(column: &str, v: &str) -> std::result::Result<T, String> {
        v.parse()
            .map_err(|_| format!("{column} {v:?} is not known"))
    }
    fn optional<T: FromStr>(column: &str, v: &str) -> std::result::Result<Option<T>, String> {
        (!v.is_empty()).then(|| value(column, v)).transpose()
    }
    let t = LineItemType {
        name: name.to_string(),
        charge_class: value("charge_class", class)?,
        invoice_kind: value("invoice_kind", kind)?,
        commitment: optional("commitment", commitment)?,
        unowned: optional("unowned", unowned)?,
        shown_as: (!shown_as.is_empty()).then(|| shown_as.to_string()),
        negation: value("negation", negation)?,
        focus_charge_category: value("focus_charge_category", focus_category)?,
        focus_charge_frequency: value("focus_charge_frequency", focus_frequency)?,
    };
    // FOCUS: a purchase is never usage-based.
    if t.focus_charge_category == FocusChargeCategory::Purchase
        && t.focus_charge_frequency == FocusChargeFrequency::UsageBased
    {
        return Err(format!("{name}: a FOCUS Purchase is not Usage-Based"));
    }
    if t.commitment.is_some() != t.unowned.is_some() {
        return Err(format!(
            "{name}: commitment lines, and only they, say what `unowned` does"
        ));
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use arrow::array::AsArray;
    use arrow::datatypes::Int64Type;

    use super::*;

    #[test]
    fn the_table_parses_and_names_each_type_once() {
        let types = parse(TABLE).unwrap();
        let mut names: Vec<&str> = types.iter().map(|t| t.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), types.len());
        for t in &types {
            if let Some(shown) = &t.shown_as {
                assert!(
                    get(shown).is_some(),
                    "{} is shown as unknown {shown}",
                    t.name
                );
            }
        }
        assert_eq!(plain_type_of(ChargeClass::Fee), "Fee");
        assert_eq!(plain_type_of(ChargeClass::Credits), "Credit");
    }

    #[tokio::test]
    async fn the_sql_reads_the_same_table() {
        let ctx = SessionContext::new();
        register(&ctx).unwrap();
        let batches = ctx
            .sql(
                "SELECT count(*), count(commitment), count(*) FILTER (WHERE negation), \
                 arrow_typeof(negation) FROM line_item_types GROUP BY 4",
            )
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let b = &batches[0];
        let count = |i: usize| b.column(i).as_primitive::<Int64Type>().value(0) as usize;
        let commitments = all().iter().filter(|t| t.commitment.is_some()).count();
        let negations = all().iter().filter(|t| t.negation).count();
        assert_eq!(
            (count(0), count(1), count(2)),
            (all().len(), commitments, negations)
        );
        assert_eq!(b.column(3).as_string::<i32>().value(0), "Boolean");
    }

    #[test]
    fn a_bad_table_is_refused_with_its_line() {
        let bad = format!(
            "{HEADER}\nUsage,usage,usage,,,,false,Usage,Usage-Based\n\
             X,no-such-class,usage,,,,false,Usage,Usage-Based\n"
        );
        assert_eq!(
            parse(&bad).unwrap_err(),
            "line 3: charge_class \"no-such-class\" is not known"
        );
        let unowned =
            format!("{HEADER}\nX,commitments,usage,reservation,,,false,Usage,Usage-Based\n");
        assert!(parse(&unowned).unwrap_err().contains("unowned"));
        let purchase = format!("{HEADER}\nX,fee,fees,,,,false,Purchase,Usage-Based\n");
        assert!(parse(&purchase).unwrap_err().contains("Purchase"));
        let focus = format!("{HEADER}\nX,fee,fees,,,,false,Fee,One-Time\n");
        assert!(parse(&focus).unwrap_err().contains("focus_charge_category"));
    }
}
