//! The margin report (SPEC §6): per period, group and service, billable against pro forma, and
//! what each policy dropped.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, Decimal128Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Serialize;

use crate::error::Result;
use crate::ingest::columns::{MONEY_PRECISION, MONEY_SCALE, money_type};
use crate::period::Period;
use crate::price::custom::{CustomCharge, PRODUCT_CODE};
use crate::price::{AccountRow, treatment};

/// The policies whose dropped amounts get a column each, as `sql/rate.sql` names them.
pub const DROP_REASONS: &[&str] = &[
    "credits",
    "refunds",
    "private-discounts",
    "aws-tax",
    "support",
    "commitments",
];

pub const PERCENT_SCALE: u32 = 4;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MarginLine {
    pub billable_cost: Decimal,
    pub proforma_cost: Decimal,
    pub dropped: BTreeMap<String, Decimal>,
}

impl MarginLine {
    pub fn margin(&self) -> Decimal {
        self.proforma_cost - self.billable_cost
    }

    /// margin / pro forma × 100, to 4 decimals; none without pro forma.
    pub fn margin_percent(&self) -> Option<Decimal> {
        (!self.proforma_cost.is_zero()).then(|| {
            (self.margin() * Decimal::ONE_HUNDRED / self.proforma_cost)
                .round_dp_with_strategy(PERCENT_SCALE, RoundingStrategy::MidpointAwayFromZero)
        })
    }
}

/// (group, service) -> line, from the accounting and the custom line items.
pub fn lines(
    accounting: &[AccountRow],
    custom: &[CustomCharge],
) -> BTreeMap<(String, String), MarginLine> {
    let mut out: BTreeMap<(String, String), MarginLine> = BTreeMap::new();
    for r in accounting {
        let service = r
            .product_code
            .clone()
            .unwrap_or_else(|| "(none)".to_string());
        let line = out.entry((r.billing_group.clone(), service)).or_default();
        // Margin is measured before tax: AWS's tax is not the reseller's cost of goods.
        if r.line_item_type != "Tax" {
            line.billable_cost += r.billable_cost;
        }
        match r.treatment.as_str() {
            treatment::RERATE | treatment::PASS => line.proforma_cost += r.proforma_cost,
            treatment::DROP => {
                *line.dropped.entry(r.charge_class.clone()).or_default() += r.billable_cost
            }
            _ => {}
        }
    }
    for c in custom {
        out.entry((c.billing_group.clone(), PRODUCT_CODE.to_string()))
            .or_default()
            .proforma_cost += c.amount;
    }
    out
}

pub fn schema() -> SchemaRef {
    let mut fields = vec![
        Field::new("billing_period", DataType::Utf8, false),
        Field::new("billing_group", DataType::Utf8, false),
        Field::new("service", DataType::Utf8, false),
        Field::new("billable_cost", money_type(), false),
        Field::new("proforma_cost", money_type(), false),
        Field::new("margin", money_type(), false),
        Field::new(
            "margin_percent",
            DataType::Decimal128(MONEY_PRECISION, PERCENT_SCALE as i8),
            true,
        ),
    ];
    for reason in DROP_REASONS {
        fields.push(Field::new(
            format!("dropped_{}", reason.replace('-', "_")),
            money_type(),
            false,
        ));
    }
    Arc::new(Schema::new(fields))
}

pub fn batch(
    period: Period,
    lines: &BTreeMap<(String, String), MarginLine>,
) -> Result<RecordBatch> {
    let money = |f: &dyn Fn(&MarginLine) -> Decimal| -> Result<ArrayRef> {
        Ok(Arc::new(
            lines
                .values()
                .map(|l| Some(mantissa(f(l), MONEY_SCALE as u32)))
                .collect::<Decimal128Array>()
                .with_precision_and_scale(MONEY_PRECISION, MONEY_SCALE)?,
        ))
    };
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![period.to_string(); lines.len()])),
        Arc::new(
            lines
                .keys()
                .map(|(g, _)| Some(g.as_str()))
                .collect::<StringArray>(),
        ),
        Arc::new(
            lines
                .keys()
                .map(|(_, s)| Some(s.as_str()))
                .collect::<StringArray>(),
        ),
        money(&|l| l.billable_cost)?,
        money(&|l| l.proforma_cost)?,
        money(&|l| l.margin())?,
        Arc::new(
            lines
                .values()
                .map(|l| l.margin_percent().map(|p| mantissa(p, PERCENT_SCALE)))
                .collect::<Decimal128Array>()
                .with_precision_and_scale(MONEY_PRECISION, PERCENT_SCALE as i8)?,
        ),
    ];
    for reason in DROP_REASONS {
        columns.push(money(&|l| {
            l.dropped.get(*reason).copied().unwrap_or_default()
        })?);
    }
    Ok(RecordBatch::try_new(schema(), columns)?)
}

/// The integer mantissa of `d` at `scale` (amounts here already have at most that scale).
pub fn mantissa(d: Decimal, scale: u32) -> i128 {
    let mut d = d;
    d.rescale(scale);
    d.mantissa()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn row(
        group: &str,
        ty: &str,
        code: &str,
        class: &str,
        treat: &str,
        billable: &str,
        proforma: &str,
    ) -> AccountRow {
        AccountRow {
            billing_group: group.into(),
            line_item_type: ty.into(),
            product_code: Some(code.into()),
            charge_class: class.into(),
            treatment: treat.into(),
            unassigned_account: None,
            defect: None,
            rows: 1,
            billable_cost: Decimal::from_str(billable).unwrap(),
            proforma_cost: Decimal::from_str(proforma).unwrap(),
            product_name: None,
        }
    }

    #[test]
    fn margin_is_before_tax_and_counts_drops_per_reason() {
        let acc = vec![
            row("g", "Usage", "AmazonEC2", "usage", "rerate", "1000", "950"),
            row(
                "g",
                "EdpDiscount",
                "AmazonEC2",
                "private-discounts",
                "drop",
                "-60",
                "0",
            ),
            row("g", "Tax", "AmazonEC2", "aws-tax", "drop", "25", "0"),
        ];
        let lines = lines(&acc, &[]);
        let l = &lines[&("g".to_string(), "AmazonEC2".to_string())];
        assert_eq!(l.billable_cost, Decimal::from(940));
        assert_eq!(l.margin(), Decimal::from(10));
        assert_eq!(
            l.margin_percent(),
            Some(Decimal::from_str("1.0526").unwrap())
        );
        assert_eq!(l.dropped["private-discounts"], Decimal::from(-60));
        assert_eq!(l.dropped["aws-tax"], Decimal::from(25));
        let b = batch(Period::new(2025, 1).unwrap(), &lines).unwrap();
        assert_eq!(b.num_rows(), 1);
    }

    #[test]
    fn no_percent_without_proforma() {
        let l = MarginLine {
            billable_cost: Decimal::from(5),
            ..Default::default()
        };
        assert_eq!(l.margin_percent(), None);
    }
}
