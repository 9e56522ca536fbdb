//! The `invoice_lines` table: every line of every document of a period (the drafts of open
//! groups; every invoice, credit note and replacement issued to closed ones), charges then
//! taxes, so that `SUM(amount)` per document is its total and, per group over its issued
//! documents, what the customer owes now.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use rust_decimal::Decimal;

use super::Invoice;
use crate::error::Result;
use crate::money::{money_array, money_type};

/// `kind` of tax lines (charge lines carry their [`super::ChargeKind`]).
pub const TAX_KIND: &str = "tax";

pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("billing_period", DataType::Utf8, false),
        Field::new("billing_group", DataType::Utf8, false),
        Field::new("invoice_number", DataType::Utf8, false),
        // invoice | credit_note
        Field::new("document_kind", DataType::Utf8, false),
        // draft | issued
        Field::new("status", DataType::Utf8, false),
        Field::new("revision", DataType::Int32, false),
        Field::new("line_number", DataType::Int32, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("service", DataType::Utf8, true),
        Field::new("service_name", DataType::Utf8, true),
        Field::new("description", DataType::Utf8, false),
        Field::new("currency", DataType::Utf8, false),
        // What AWS bills the group in; 1 bill_currency = fx_rate currency.
        Field::new("bill_currency", DataType::Utf8, false),
        Field::new("fx_rate", money_type(), false),
        // Charge lines: the exact pro forma amount in bill_currency; tax lines: null.
        Field::new("bill_amount", money_type(), true),
        // Tax lines: the percentage; charge lines: null.
        Field::new("tax_percent", money_type(), true),
        Field::new("amount", money_type(), false),
    ]))
}

/// One flat row per invoice line.
struct Row<'a> {
    invoice: &'a Invoice,
    line_number: i32,
    kind: &'a str,
    service: Option<&'a str>,
    service_name: Option<&'a str>,
    description: &'a str,
    bill_amount: Option<Decimal>,
    tax_percent: Option<Decimal>,
    amount: Decimal,
}

/// The lines of `invoices` (all of one period) as a batch of [`schema`].
pub fn batch<'a>(invoices: impl IntoIterator<Item = &'a Invoice>) -> Result<RecordBatch> {
    let mut rows = Vec::new();
    for inv in invoices {
        let mut n = 0;
        for l in &inv.lines {
            n += 1;
            rows.push(Row {
                invoice: inv,
                line_number: n,
                kind: l.kind.as_str(),
                service: Some(&l.service),
                service_name: Some(&l.service_name),
                description: &l.description,
                bill_amount: Some(l.bill_amount),
                tax_percent: None,
                amount: l.amount,
            });
        }
        for t in &inv.taxes {
            n += 1;
            rows.push(Row {
                invoice: inv,
                line_number: n,
                kind: TAX_KIND,
                service: None,
                service_name: None,
                description: &t.label,
                bill_amount: None,
                tax_percent: Some(t.percent),
                amount: t.amount,
            });
        }
    }
    let text = |f: &dyn Fn(&Row) -> Option<String>| -> ArrayRef {
        Arc::new(rows.iter().map(f).collect::<StringArray>())
    };
    let money = |f: &dyn Fn(&Row) -> Option<Decimal>| -> Result<ArrayRef> {
        Ok(Arc::new(money_array(rows.iter().map(f))?))
    };
    let columns: Vec<ArrayRef> = vec![
        text(&|r| Some(r.invoice.billing_period.to_string())),
        text(&|r| Some(r.invoice.billing_group.clone())),
        text(&|r| Some(r.invoice.number.clone())),
        text(&|r| Some(r.invoice.kind.as_str().to_string())),
        text(&|r| Some(r.invoice.status.as_str().to_string())),
        Arc::new(
            rows.iter()
                .map(|r| i32::try_from(r.invoice.revision).unwrap_or(i32::MAX))
                .collect::<Int32Array>(),
        ),
        Arc::new(rows.iter().map(|r| r.line_number).collect::<Int32Array>()),
        text(&|r| Some(r.kind.to_string())),
        text(&|r| r.service.map(str::to_string)),
        text(&|r| r.service_name.map(str::to_string)),
        text(&|r| Some(r.description.to_string())),
        text(&|r| Some(r.invoice.currency.clone())),
        text(&|r| Some(r.invoice.bill_currency.clone())),
        money(&|r| Some(r.invoice.fx_rate))?,
        money(&|r| r.bill_amount)?,
        money(&|r| r.tax_percent)?,
        money(&|r| Some(r.amount))?,
    ];
    Ok(RecordBatch::try_new(schema(), columns)?)
}
