//! FOCUS 1.2 (SPEC §6.4): the `focus/` table and each group's `exports/<group>/focus/`, the
//! period's pro forma rows as FOCUS rows (`sql/focus.sql`), read back from the pro forma version
//! the run committed. Money stays decimal: `BilledCost` is the pro forma amount times the
//! invoice's FX rate, exactly, so Σ `BilledCost` per group and period is the invoice subtotal
//! before rounding; `PricingCurrency…` columns hold the bill currency amounts.
//!
//! The per-group facts the rows carry (the invoice in force, its currency and rate, the billing
//! account, the issuer, the period's bounds) are a small table, `focus_invoices`, joined by
//! group. `Tags` is FOCUS's JSON object of the row's resource tags: the one function the SQL
//! needs that DataFusion does not have ([`focus_tags`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Decimal128Array, MapArray, RecordBatch, StringArray, StringBuilder,
    TimestampMicrosecondArray,
};
use arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::{DataFrame, SessionContext, col, lit};

use crate::books::Document;
use crate::config::Config;
use crate::error::Result;
use crate::invoice::{DocumentKind, Invoice};
use crate::money;
use crate::period::Period;
use crate::storage::Location;
use crate::write::delta::{self, TableCommit};

/// The Delta table under the output.
pub(crate) const TABLE: &str = "focus";

const SQL: &str = include_str!("../sql/focus.sql");

/// The period's FOCUS rows, from the pro forma version `proforma` committed, each group's rows
/// carrying its invoice in force among `documents`.
pub(crate) async fn rows(
    ctx: &SessionContext,
    output: &Location,
    proforma: &TableCommit,
    config: &Config,
    period: Period,
    documents: &[Document],
) -> Result<DataFrame> {
    let source = delta::read_commit(ctx, output, proforma)
        .await?
        .filter(col("billing_period").eq(lit(period.to_string())))?;
    ctx.deregister_table("focus_source")?;
    ctx.register_table("focus_source", source.into_view())?;
    ctx.deregister_table("focus_invoices")?;
    ctx.register_batch("focus_invoices", invoices(config, period, documents)?)?;
    ctx.register_udf(ScalarUDF::new_from_impl(FocusTags::new()));
    Ok(ctx.sql(SQL).await?)
}

/// Per group: the invoice in force (the last invoice, not credit note, of its documents), its
/// currency and FX rate, the billing account (the group's primary account, named as the
/// group), the issuer and the period's bounds.
fn invoices(config: &Config, period: Period, documents: &[Document]) -> Result<RecordBatch> {
    let mut in_force: BTreeMap<&str, &Invoice> = BTreeMap::new();
    for invoice in documents.iter().map(Document::invoice) {
        if invoice.kind == DocumentKind::Invoice {
            in_force.insert(&invoice.billing_group, invoice);
        }
    }
    let issuer = config
        .invoice
        .issuer
        .as_ref()
        .map(|p| p.name.clone())
        .or_else(|| config.transfer.as_ref().and_then(|t| t.name.clone()))
        .unwrap_or_else(|| "Unknown".to_string());
    let invoices: Vec<&Invoice> = in_force.into_values().collect();
    let group = |g: &str| config.group(g);
    let text = |f: &dyn Fn(&Invoice) -> Option<String>| -> ArrayRef {
        Arc::new(invoices.iter().map(|i| f(i)).collect::<StringArray>())
    };
    let at = |micros: i64| -> ArrayRef {
        Arc::new(TimestampMicrosecondArray::from(vec![micros; invoices.len()]).with_timezone("UTC"))
    };
    let rates: Decimal128Array = money::money_array(
        invoices
            .iter()
            .map(|i| Some(money::round_storage(i.fx_rate))),
    )?;
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("billing_group", text(&|i| Some(i.billing_group.clone()))),
        ("invoice_id", text(&|i| Some(i.number.clone()))),
        (
            "billing_account_id",
            text(&|i| group(&i.billing_group).map(|g| g.primary_account_id.clone())),
        ),
        (
            "billing_account_name",
            text(&|i| Some(i.display_name.clone())),
        ),
        ("billing_currency", text(&|i| Some(i.currency.clone()))),
        ("fx_rate", Arc::new(rates)),
        ("invoice_issuer", text(&|_| Some(issuer.clone()))),
        ("billing_period_start", at(period.start_micros())),
        ("billing_period_end", at(period.end_micros())),
    ];
    Ok(RecordBatch::try_from_iter(columns)?)
}

/// `focus_tags(map<string, string>) -> string`: the map as the JSON object FOCUS's `Tags` is
/// (KeyValueFormat), user tags without CUR's `user_` prefix (FOCUS: a provider with one user
/// tag scheme does not prefix it), other keys as CUR names them; null for no tags.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct FocusTags {
    signature: Signature,
}

impl FocusTags {
    pub(crate) fn new() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl Default for FocusTags {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for FocusTags {
    fn name(&self) -> &str {
        "focus_tags"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        let [tags] = &args.args[..] else {
            return exec_err!("focus_tags takes one argument");
        };
        let tags = tags.to_array(args.number_rows)?;
        Ok(ColumnarValue::Array(Arc::new(json_objects(&tags)?)))
    }
}

/// Each map of `tags` (a map of strings, or a null column) as a JSON object.
fn json_objects(tags: &ArrayRef) -> datafusion::common::Result<StringArray> {
    let mut out = StringBuilder::with_capacity(tags.len(), tags.len() * 16);
    if tags.data_type() == &DataType::Null {
        (0..tags.len()).for_each(|_| out.append_null());
        return Ok(out.finish());
    }
    let Some(maps) = tags.as_any().downcast_ref::<MapArray>() else {
        return Err(DataFusionError::Execution(format!(
            "focus_tags takes a map, not {}",
            tags.data_type()
        )));
    };
    let keys = string_values(maps.keys())?;
    let values = string_values(maps.values())?;
    let offsets = maps.value_offsets();
    // A row's entries, and its object written out: reused from row to row.
    let mut entries: Vec<(&str, Option<&str>)> = Vec::new();
    let mut json: Vec<u8> = Vec::new();
    let escaped = |json: &mut Vec<u8>, text: &str| {
        serde_json::to_writer(json, text).map_err(|e| DataFusionError::External(Box::new(e)))
    };
    for row in 0..maps.len() {
        let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
        if maps.is_null(row) || start == end {
            out.append_null();
            continue;
        }
        entries.clear();
        entries.extend((start..end).map(|i| {
            let key = keys.value(i);
            let key = key.strip_prefix("user_").unwrap_or(key);
            (key, values.is_valid(i).then(|| values.value(i)))
        }));
        // Keys in order, once each: of a key given twice (`user_x` and `x`), the later value,
        // as a JSON object built entry by entry keeps.
        entries.sort_by(|a, b| a.0.cmp(b.0));
        json.clear();
        json.push(b'{');
        for (n, &(key, value)) in entries.iter().enumerate() {
            if entries.get(n + 1).is_some_and(|next| next.0 == key) {
                continue;
            }
            if json.len() > 1 {
                json.push(b',');
            }
            escaped(&mut json, key)?;
            json.push(b':');
            match value {
                Some(value) => escaped(&mut json, value)?,
                None => json.extend_from_slice(b"null"),
            }
        }
        json.push(b'}');
        let text =
            std::str::from_utf8(&json).map_err(|e| DataFusionError::External(Box::new(e)))?;
        out.append_value(text);
    }
    Ok(out.finish())
}

fn string_values(a: &ArrayRef) -> datafusion::common::Result<StringArray> {
    let strings = arrow::compute::cast(a, &DataType::Utf8)?;
    Ok(strings.as_string::<i32>().clone())
}

#[cfg(test)]
mod tests {
    use arrow::array::{MapBuilder, StringBuilder};

    use super::*;

    #[test]
    fn tags_become_json_objects_without_the_user_prefix() {
        let mut b = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
        b.keys().append_value("user_team");
        b.values().append_value("research \"R&D\"");
        b.keys().append_value("aws_created_by");
        b.values().append_null();
        b.append(true).unwrap();
        b.keys().append_value("user_env");
        b.values().append_value("prod");
        b.keys().append_value("env");
        b.values().append_value("test\n");
        b.keys().append_value("cost_center");
        b.values().append_value("7");
        b.append(true).unwrap();
        b.append(true).unwrap(); // empty map
        b.append(false).unwrap(); // null
        let tags: ArrayRef = Arc::new(b.finish());
        let json = json_objects(&tags).unwrap();
        assert_eq!(
            json.value(0),
            r#"{"aws_created_by":null,"team":"research \"R&D\""}"#
        );
        // Keys once each, in order; of `user_env` and `env`, the later.
        assert_eq!(json.value(1), r#"{"cost_center":"7","env":"test\n"}"#);
        assert!(json.is_null(2) && json.is_null(3));
        let nothing: ArrayRef = Arc::new(arrow::array::NullArray::new(2));
        assert_eq!(json_objects(&nothing).unwrap().null_count(), 2);
    }
}
