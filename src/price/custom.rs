//! Custom line items: flat and percentage fees and credits per group and period,
//! computed from the period's pro forma accounting and appended to pro forma as CUR rows.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray, new_null_array,
};
use arrow::datatypes::SchemaRef;
use rust_decimal::Decimal;
use serde::Serialize;

use super::AccountRow;
use super::currency::BillCurrencies;
use super::line_items::{self, ChargeClass};
use crate::config::{Config, CustomAmount, CustomKind, CustomLineItem, USD};
use crate::error::{Error, Result};
use crate::money::{self, Overflow};
use crate::period::Period;

/// Product code of custom line item rows in pro forma.
pub const PRODUCT_CODE: &str = "CustomLineItem";

/// One custom line item's amount for one period (negative for credits), in the group's bill
/// currency: a flat amount as written, a percentage of the group's own amounts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CustomCharge {
    pub name: String,
    pub billing_group: String,
    pub account_id: String,
    pub line_item_type: &'static str,
    pub description: String,
    pub amount: Decimal,
    /// The group's bill currency.
    pub currency: String,
}

/// The charges of every item active in `period`, in config order.
pub fn charges(
    config: &Config,
    period: Period,
    accounting: &[AccountRow],
    currencies: &BillCurrencies,
) -> Result<Vec<CustomCharge>> {
    let active: Vec<&CustomLineItem> = config
        .custom_line_items
        .iter()
        .filter(|i| i.active_in(period))
        .collect();
    let flat: HashMap<(&str, &str), Decimal> = active
        .iter()
        .filter_map(|i| match i.amount {
            CustomAmount::Flat(a) => Some((
                (i.billing_group.as_str(), i.name.as_str()),
                i.kind.sign() * a,
            )),
            CustomAmount::Percent { .. } => None,
        })
        .collect();
    active
        .iter()
        .map(|item| {
            let amount = match &item.amount {
                CustomAmount::Flat(_) => flat[&(item.billing_group.as_str(), item.name.as_str())],
                CustomAmount::Percent {
                    percent,
                    base_includes,
                    service,
                    exclude_savings_plan_negation,
                } => {
                    let usage = accounting
                        .iter()
                        .filter(|r| r.billing_group == item.billing_group)
                        .filter(|r| r.treatment.in_proforma())
                        .filter(|r| {
                            service
                                .as_ref()
                                .is_none_or(|s| s.matches(r.product_code.as_deref().unwrap_or("")))
                        })
                        .filter(|r| {
                            !(*exclude_savings_plan_negation
                                && r.line_item_type().is_some_and(|t| t.negation))
                        })
                        .map(|r| r.proforma_cost);
                    // A named flat item that is not active this period adds nothing.
                    let included = base_includes
                        .iter()
                        .filter_map(|n| flat.get(&(item.billing_group.as_str(), n.as_str())))
                        .copied();
                    let overflow =
                        || Error::AmountOverflow(Overflow(format!("{} base", item.name)));
                    let base = usage
                        .chain(included)
                        .try_fold(Decimal::ZERO, |sum, x| sum.checked_add(x))
                        .ok_or_else(overflow)?;
                    let raw =
                        base.checked_mul(*percent).ok_or_else(overflow)? / Decimal::ONE_HUNDRED;
                    // Stored at the money scale; invoices round once more, to the currency.
                    item.kind.sign() * money::round_storage(raw)
                }
            };
            let currency = config
                .group(&item.billing_group)
                .map_or(USD, |g| currencies.of(period, g));
            Ok(CustomCharge {
                name: item.name.clone(),
                billing_group: item.billing_group.clone(),
                account_id: item.account_id.clone(),
                line_item_type: line_item_type(item.kind),
                description: item.description.clone(),
                amount,
                currency: currency.to_string(),
            })
        })
        .collect()
}

/// The CUR line item type a custom line item is written as: a fee as a `Fee`, a credit as a
/// `Credit`, as the line item type table names them.
fn line_item_type(kind: CustomKind) -> &'static str {
    line_items::plain_type_of(match kind {
        CustomKind::Fee => ChargeClass::Fee,
        CustomKind::Credit => ChargeClass::Credits,
    })
}

/// The charges as pro forma rows (`schema` is the pro forma table's).
pub fn rows(
    config: &Config,
    period: Period,
    charges: &[CustomCharge],
    payers: &BTreeMap<String, String>,
    schema: &SchemaRef,
) -> Result<RecordBatch> {
    let n = charges.len();
    let text = |f: &dyn Fn(&CustomCharge) -> Option<String>| -> ArrayRef {
        Arc::new(charges.iter().map(f).collect::<StringArray>())
    };
    let (start, end) = (period.start_micros(), period.end_micros());
    let at = |t: i64| -> ArrayRef {
        Arc::new(TimestampMicrosecondArray::from(vec![t; n]).with_timezone("UTC"))
    };
    let money: ArrayRef = Arc::new(money::money_array(charges.iter().map(|c| Some(c.amount)))?);
    // An item takes its account's payer (`payers`, from the period's rows), else the group's
    // first organization, else the payer of the group's first account that has one.
    let payer = |c: &CustomCharge| {
        let g = config.group(&c.billing_group)?;
        payers
            .get(&c.account_id)
            .or(g.members.payers.first())
            .or_else(|| g.members.accounts.iter().find_map(|a| payers.get(a)))
            .cloned()
    };
    let plan = |c: &CustomCharge| {
        config
            .group(&c.billing_group)
            .map(|g| g.pricing_plan.clone())
    };
    let columns = schema
        .fields()
        .iter()
        .map(|field| -> ArrayRef {
            match field.name().as_str() {
                "identity_line_item_id" => {
                    text(&|c| Some(format!("custom:{period}:{}:{}", c.billing_group, c.name)))
                }
                "identity_time_interval" => text(&|_| {
                    Some(format!(
                        "{}T00:00:00Z/{}T00:00:00Z",
                        period.first_day(),
                        period.end_exclusive()
                    ))
                }),
                "bill_billing_period_start_date" | "line_item_usage_start_date" => at(start),
                "bill_billing_period_end_date" | "line_item_usage_end_date" => at(end),
                "bill_payer_account_id" => text(&payer),
                "line_item_usage_account_id" => text(&|c| Some(c.account_id.clone())),
                "line_item_line_item_type" => text(&|c| Some(c.line_item_type.to_string())),
                "line_item_product_code" => text(&|_| Some(PRODUCT_CODE.to_string())),
                "line_item_line_item_description" => text(&|c| Some(c.description.clone())),
                "line_item_currency_code" | "pricing_currency" => {
                    text(&|c| Some(c.currency.clone()))
                }
                "line_item_usage_type" | "line_item_operation" => text(&|c| Some(c.name.clone())),
                "line_item_usage_amount" => Arc::new(Float64Array::from(vec![1.0; n])),
                "line_item_unblended_cost"
                | "line_item_net_unblended_cost"
                | "line_item_blended_cost" => money.clone(),
                "billing_period" => text(&|_| Some(period.to_string())),
                "billing_group" => text(&|c| Some(c.billing_group.clone())),
                "pricing_plan" => text(&plan),
                _ => new_null_array(field.data_type(), n),
            }
        })
        .collect();
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}
