//! The margin report: per period, group, service and bill currency, billable against pro
//! forma, and what each policy dropped. Both sides are in the bill currency (what AWS bills the
//! group in), never converted: a group has one, rows in no group one per payer.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use rust_decimal::Decimal;

use crate::error::Result;
use crate::money::{self, money_array, money_type, percent_type};
use crate::period::Period;
use crate::price::custom::{CustomCharge, PRODUCT_CODE};
use crate::price::{AccountRow, ChargeClass, Treatment};

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct MarginLine {
    pub billable_cost: Decimal,
    pub proforma_cost: Decimal,
    pub dropped: BTreeMap<ChargeClass, Decimal>,
}

impl MarginLine {
    pub(crate) fn margin(&self) -> Decimal {
        self.proforma_cost - self.billable_cost
    }

    /// margin / pro forma × 100, to 4 decimals; none without pro forma.
    pub(crate) fn margin_percent(&self) -> Option<Decimal> {
        (!self.proforma_cost.is_zero()).then(|| {
            money::round_percent(self.margin() * Decimal::ONE_HUNDRED / self.proforma_cost)
        })
    }
}

/// (group, service, currency) of a margin line.
pub(crate) type MarginKey = (String, String, String);

/// (group, service, currency) -> line, from the accounting and the custom line items.
pub(crate) fn lines(
    accounting: &[AccountRow],
    custom: &[CustomCharge],
) -> BTreeMap<MarginKey, MarginLine> {
    let mut out: BTreeMap<MarginKey, MarginLine> = BTreeMap::new();
    for r in accounting {
        let service = r
            .product_code
            .clone()
            .unwrap_or_else(|| "(none)".to_string());
        let key = (r.billing_group.clone(), service, r.currency.clone());
        let line = out.entry(key).or_default();
        // Margin is measured before tax: AWS's tax is not the reseller's cost of goods.
        if r.charge_class != Some(ChargeClass::AwsTax) {
            line.billable_cost += r.billable_cost;
        }
        match (r.treatment, r.charge_class) {
            // AWS's tax passed through is not the reseller's revenue either.
            (Treatment::Pass, Some(ChargeClass::AwsTax)) => {}
            (Treatment::Rerate | Treatment::Pass, _) => line.proforma_cost += r.proforma_cost,
            (Treatment::Drop, Some(class)) => {
                *line.dropped.entry(class).or_default() += r.billable_cost
            }
            _ => {}
        }
    }
    for c in custom {
        let key = (
            c.billing_group.clone(),
            PRODUCT_CODE.to_string(),
            c.currency.clone(),
        );
        out.entry(key).or_default().proforma_cost += c.amount;
    }
    out
}

pub(crate) fn schema() -> SchemaRef {
    let mut fields = vec![
        Field::new("billing_period", DataType::Utf8, false),
        Field::new("billing_group", DataType::Utf8, false),
        Field::new("service", DataType::Utf8, false),
        // The bill currency of both amounts.
        Field::new("currency", DataType::Utf8, false),
        Field::new("billable_cost", money_type(), false),
        Field::new("proforma_cost", money_type(), false),
        Field::new("margin", money_type(), false),
        Field::new("margin_percent", percent_type(), true),
    ];
    for class in ChargeClass::WITH_POLICY {
        fields.push(Field::new(
            format!("dropped_{}", class.as_str().replace('-', "_")),
            money_type(),
            false,
        ));
    }
    Arc::new(Schema::new(fields))
}

pub(crate) fn batch(
    period: Period,
    lines: &BTreeMap<MarginKey, MarginLine>,
) -> Result<RecordBatch> {
    let money = |f: &dyn Fn(&MarginLine) -> Decimal| -> Result<ArrayRef> {
        Ok(Arc::new(money_array(lines.values().map(|l| Some(f(l))))?))
    };
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![period.to_string(); lines.len()])),
        Arc::new(
            lines
                .keys()
                .map(|(g, _, _)| Some(g.as_str()))
                .collect::<StringArray>(),
        ),
        Arc::new(
            lines
                .keys()
                .map(|(_, s, _)| Some(s.as_str()))
                .collect::<StringArray>(),
        ),
        Arc::new(
            lines
                .keys()
                .map(|(_, _, c)| Some(c.as_str()))
                .collect::<StringArray>(),
        ),
        money(&|l| l.billable_cost)?,
        money(&|l| l.proforma_cost)?,
        money(&|l| l.margin())?,
        Arc::new(money::decimal_array(
            lines.values().map(MarginLine::margin_percent),
            money::PRECISION,
            money::PERCENT_SCALE,
        )?),
    ];
    for class in ChargeClass::WITH_POLICY {
        columns.push(money(&|l| {
            l.dropped.get(&class).copied().unwrap_or_default()
        })?);
    }
    Ok(RecordBatch::try_new(schema(), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Array;
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
            charge_class: Some(class.parse().unwrap()),
            treatment: treat.parse().unwrap(),
            unassigned_account: None,
            defect: None,
            currency: "USD".into(),
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
            row("h", "Usage", "AmazonS3", "usage", "rerate", "100", "110"),
            row("h", "Tax", "AmazonS3", "aws-tax", "pass", "20", "20"),
        ];
        let lines = lines(&acc, &[]);
        let key = |g: &str, s: &str| (g.to_string(), s.to_string(), "USD".to_string());
        let l = &lines[&key("g", "AmazonEC2")];
        assert_eq!(l.billable_cost, Decimal::from(940));
        assert_eq!(l.margin(), Decimal::from(10));
        assert_eq!(
            l.margin_percent(),
            Some(Decimal::from_str("1.0526").unwrap())
        );
        assert_eq!(
            l.dropped[&ChargeClass::PrivateDiscounts],
            Decimal::from(-60)
        );
        assert_eq!(l.dropped[&ChargeClass::AwsTax], Decimal::from(25));
        // Passed through or not, AWS's tax is on neither side.
        let h = &lines[&key("h", "AmazonS3")];
        assert_eq!(
            (h.billable_cost, h.proforma_cost),
            (Decimal::from(100), Decimal::from(110))
        );
        let b = batch(Period::new(2025, 1).unwrap(), &lines).unwrap();
        assert_eq!(b.num_rows(), 2);
    }

    #[test]
    fn amounts_in_different_bill_currencies_stay_apart() {
        let usd = row(
            "_unassigned",
            "Usage",
            "AmazonEC2",
            "usage",
            "unassigned",
            "10",
            "0",
        );
        let cny = AccountRow {
            currency: "CNY".into(),
            ..row(
                "_unassigned",
                "Usage",
                "AmazonEC2",
                "usage",
                "unassigned",
                "70",
                "0",
            )
        };
        let fee = CustomCharge {
            name: "fee".into(),
            billing_group: "g".into(),
            account_id: "111111111111".into(),
            line_item_type: "Fee",
            description: "Managed services".into(),
            amount: Decimal::from(100),
            currency: "INR".into(),
        };
        let lines = lines(&[usd, cny], &[fee]);
        let keys: Vec<_> = lines.keys().cloned().collect();
        let key = |g: &str, s: &str, c: &str| (g.to_string(), s.to_string(), c.to_string());
        assert_eq!(
            keys,
            [
                key("_unassigned", "AmazonEC2", "CNY"),
                key("_unassigned", "AmazonEC2", "USD"),
                key("g", "CustomLineItem", "INR"),
            ]
        );
        assert_eq!(lines[&keys[0]].billable_cost, Decimal::from(70));
        let b = batch(Period::new(2025, 1).unwrap(), &lines).unwrap();
        let currency = b.column_by_name("currency").unwrap();
        assert_eq!(
            currency
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .value(2),
            "INR"
        );
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
