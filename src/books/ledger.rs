//! The `periods/` table: one row per document of a group's period, with the period's status
//! for that group. An open group has one row, its current draft; a closed group has a row per
//! document ever issued to it (the invoice, each credit note and replacement), with the number,
//! total and SHA-256 of each file. It is small (a few rows per group and month), read whole.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Int32Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{
    DataType, Decimal128Type, Field, Int32Type, Schema, SchemaRef, TimestampMicrosecondType,
};
use chrono::{DateTime, Utc};
use datafusion::prelude::SessionContext;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::ingest::columns::timestamp_type;
use crate::invoice::DocumentKind;
use crate::money::{decimal_at, money_array, money_type};
use crate::period::Period;
use crate::storage::Location;
use crate::write::delta;

/// The table's name under the output.
pub const TABLE: &str = "periods";

/// Whether a group's period still changes with every run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, strum::EnumString, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum PeriodStatus {
    /// Runs replace its outputs; its invoice is a draft.
    Open,
    /// Its documents are issued; only `rerate run --correct` adds to them.
    Closed,
}

/// One row of `periods/`: a document of a group's period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    pub billing_period: Period,
    pub billing_group: String,
    pub status: PeriodStatus,
    /// When the group's period was closed (`None` while open).
    pub closed_at: Option<DateTime<Utc>>,
    /// The run (or close) that wrote the document.
    pub run_id: String,
    pub number: String,
    pub kind: DocumentKind,
    pub revision: u32,
    pub replaces: Option<String>,
    pub cancels: Option<String>,
    pub issued_at: Option<DateTime<Utc>>,
    pub currency: String,
    pub total: Decimal,
    /// The documents' paths under the output, and the SHA-256 (hex) of their bytes.
    pub json: String,
    pub json_sha256: String,
    pub html: String,
    pub html_sha256: String,
}

impl Entry {
    pub fn is_closed(&self) -> bool {
        self.status == PeriodStatus::Closed
    }
}

/// Every row of `periods/` at one version.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    /// The version read (`None`: there is no table yet).
    pub version: Option<u64>,
    pub entries: Vec<Entry>,
}

impl Ledger {
    /// `periods/` under `output` as it is now (empty when there is none).
    pub async fn read(ctx: &SessionContext, output: &Location) -> Result<Ledger> {
        let location = output.child(&[TABLE]);
        let Some(table) = delta::load(&location).await? else {
            return Ok(Ledger::default());
        };
        let version = table.version();
        let provider = table.table_provider().await?;
        let batches = ctx.read_table(provider)?.collect().await?;
        let mut entries = Vec::new();
        for batch in &batches {
            entries.extend(entries_of(batch).map_err(|what| Error::BadLedger {
                table: location.to_string(),
                what,
            })?);
        }
        entries.sort_by(|a, b| {
            (a.billing_period, &a.billing_group, a.revision, a.kind as u8).cmp(&(
                b.billing_period,
                &b.billing_group,
                b.revision,
                b.kind as u8,
            ))
        });
        Ok(Ledger { version, entries })
    }

    /// The rows of `period`.
    pub fn of(&self, period: Period) -> impl Iterator<Item = &Entry> {
        self.entries
            .iter()
            .filter(move |e| e.billing_period == period)
    }

    /// The rows of `group`'s `period`, oldest document first.
    pub fn group(&self, period: Period, group: &str) -> Vec<&Entry> {
        self.of(period)
            .filter(|e| e.billing_group == group)
            .collect()
    }

    /// The groups whose `period` is closed, in name order.
    pub fn closed_groups(&self, period: Period) -> Vec<&str> {
        let mut groups: Vec<&str> = self
            .of(period)
            .filter(|e| e.is_closed())
            .map(|e| e.billing_group.as_str())
            .collect();
        groups.dedup();
        groups
    }
}

pub fn schema() -> SchemaRef {
    let text = |name: &str, nullable| Field::new(name, DataType::Utf8, nullable);
    Arc::new(Schema::new(vec![
        text("billing_period", false),
        text("billing_group", false),
        text("status", false),
        Field::new("closed_at", timestamp_type(), true),
        text("run_id", false),
        text("number", false),
        text("kind", false),
        Field::new("revision", DataType::Int32, false),
        text("replaces", true),
        text("cancels", true),
        Field::new("issued_at", timestamp_type(), true),
        text("currency", false),
        Field::new("total", money_type(), false),
        text("json", false),
        text("json_sha256", false),
        text("html", false),
        text("html_sha256", false),
    ]))
}

/// `entries` as a batch of [`schema`].
pub fn batch(entries: &[Entry]) -> Result<RecordBatch> {
    let text = |f: &dyn Fn(&Entry) -> Option<&str>| -> ArrayRef {
        Arc::new(entries.iter().map(f).collect::<StringArray>())
    };
    let time = |f: &dyn Fn(&Entry) -> Option<DateTime<Utc>>| -> ArrayRef {
        Arc::new(
            entries
                .iter()
                .map(|e| f(e).map(|t| t.timestamp_micros()))
                .collect::<TimestampMicrosecondArray>()
                .with_timezone("UTC"),
        )
    };
    let periods: Vec<String> = entries
        .iter()
        .map(|e| e.billing_period.to_string())
        .collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(&periods)),
        text(&|e| Some(e.billing_group.as_str())),
        text(&|e| Some(e.status.into())),
        time(&|e| e.closed_at),
        text(&|e| Some(e.run_id.as_str())),
        text(&|e| Some(e.number.as_str())),
        text(&|e| Some(e.kind.as_str())),
        Arc::new(
            entries
                .iter()
                .map(|e| i32::try_from(e.revision).unwrap_or(i32::MAX))
                .collect::<Int32Array>(),
        ),
        text(&|e| e.replaces.as_deref()),
        text(&|e| e.cancels.as_deref()),
        time(&|e| e.issued_at),
        text(&|e| Some(e.currency.as_str())),
        Arc::new(money_array(entries.iter().map(|e| Some(e.total)))?),
        text(&|e| Some(e.json.as_str())),
        text(&|e| Some(e.json_sha256.as_str())),
        text(&|e| Some(e.html.as_str())),
        text(&|e| Some(e.html_sha256.as_str())),
    ];
    Ok(RecordBatch::try_new(schema(), columns)?)
}

/// The rows of one batch read back; what does not fit [`schema`] is described.
fn entries_of(batch: &RecordBatch) -> std::result::Result<Vec<Entry>, String> {
    let column = |name: &str| {
        batch
            .column_by_name(name)
            .ok_or_else(|| format!("no column {name}"))
    };
    let text = |name: &str| -> std::result::Result<Vec<Option<String>>, String> {
        let c = column(name)?;
        // Delta readers may hand back dictionary or view strings: read them as plain text.
        let c = arrow::compute::cast(c, &DataType::Utf8).map_err(|e| format!("{name}: {e}"))?;
        Ok(c.as_string::<i32>()
            .iter()
            .map(|v| v.map(str::to_string))
            .collect())
    };
    let required = |name: &str| -> std::result::Result<Vec<String>, String> {
        text(name)?
            .into_iter()
            .map(|v| v.ok_or_else(|| format!("{name} is null")))
            .collect()
    };
    let time = |name: &str| -> std::result::Result<Vec<Option<DateTime<Utc>>>, String> {
        let c = column(name)?;
        let c = c
            .as_primitive_opt::<TimestampMicrosecondType>()
            .ok_or_else(|| format!("{name} is not a timestamp"))?;
        Ok((0..c.len())
            .map(|i| (!c.is_null(i)).then(|| DateTime::from_timestamp_micros(c.value(i))))
            .map(Option::flatten)
            .collect())
    };
    let parse = |name: &str, v: &str| format!("{name} {v:?} is not valid");
    let periods = required("billing_period")?;
    let groups = required("billing_group")?;
    let status = required("status")?;
    let closed_at = time("closed_at")?;
    let run_ids = required("run_id")?;
    let numbers = required("number")?;
    let kinds = required("kind")?;
    let revisions = column("revision")?
        .as_primitive_opt::<Int32Type>()
        .ok_or("revision is not an Int32")?
        .clone();
    let replaces = text("replaces")?;
    let cancels = text("cancels")?;
    let issued_at = time("issued_at")?;
    let currencies = required("currency")?;
    let totals = column("total")?
        .as_primitive_opt::<Decimal128Type>()
        .ok_or("total is not a decimal")?
        .clone();
    let json = required("json")?;
    let json_sha256 = required("json_sha256")?;
    let html = required("html")?;
    let html_sha256 = required("html_sha256")?;
    (0..batch.num_rows())
        .map(|i| {
            Ok(Entry {
                billing_period: periods[i]
                    .parse()
                    .map_err(|_| parse("billing_period", &periods[i]))?,
                billing_group: groups[i].clone(),
                status: status[i].parse().map_err(|_| parse("status", &status[i]))?,
                closed_at: closed_at[i],
                run_id: run_ids[i].clone(),
                number: numbers[i].clone(),
                kind: kinds[i].parse().map_err(|_| parse("kind", &kinds[i]))?,
                revision: u32::try_from(revisions.value(i))
                    .map_err(|_| parse("revision", &revisions.value(i).to_string()))?,
                replaces: replaces[i].clone(),
                cancels: cancels[i].clone(),
                issued_at: issued_at[i],
                currency: currencies[i].clone(),
                total: decimal_at(&totals, i)
                    .map_err(|e| e.to_string())?
                    .ok_or("total is null")?,
                json: json[i].clone(),
                json_sha256: json_sha256[i].clone(),
                html: html[i].clone(),
                html_sha256: html_sha256[i].clone(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_read_back_as_written() {
        let at = DateTime::from_timestamp_micros(1_764_547_200_123_456).unwrap();
        let entry = Entry {
            billing_period: "2025-11".parse().unwrap(),
            billing_group: "acme".into(),
            status: PeriodStatus::Closed,
            closed_at: Some(at),
            run_id: "close-20251203T000000Z".into(),
            number: "ER-202511-acme-CN1".into(),
            kind: DocumentKind::CreditNote,
            revision: 1,
            replaces: None,
            cancels: Some("ER-202511-acme".into()),
            issued_at: Some(at),
            currency: "EUR".into(),
            total: "-1234.56".parse().unwrap(),
            json: "invoices/billing_period=2025-11/ER-202511-acme-CN1.json".into(),
            json_sha256: "ab".repeat(32),
            html: "invoices/billing_period=2025-11/ER-202511-acme-CN1.html".into(),
            html_sha256: "cd".repeat(32),
        };
        let open = Entry {
            status: PeriodStatus::Open,
            closed_at: None,
            issued_at: None,
            cancels: None,
            kind: DocumentKind::Invoice,
            ..entry.clone()
        };
        let batch = batch(&[entry.clone(), open.clone()]).unwrap();
        assert_eq!(entries_of(&batch).unwrap(), vec![entry, open]);
    }
}
