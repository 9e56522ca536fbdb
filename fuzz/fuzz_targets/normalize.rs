//! Any Parquet schema a file could have (CUR 2.0 and legacy column names, and others, of any
//! type): the normalizer either refuses it with an error naming the file, or plans a read that
//! runs on a row of nulls and yields exactly the CUR 2.0 schema, then the file's other columns.
//! It never panics.

#![no_main]

use std::sync::Arc;

use arrow::array::{RecordBatch, new_null_array};
use arrow::datatypes::{DataType, Field, Fields, Schema, TimeUnit};
use datafusion::prelude::SessionContext;
use libfuzzer_sys::fuzz_target;
use rerate::ingest::columns::{CUR2_COLUMNS, cur_schema};

/// Names a real file might hold beyond the catalog: legacy flattened maps and strangers.
const OTHER_NAMES: &[&str] = &[
    "product_instance_type",
    "product_product_name",
    "resource_tags_user_team",
    "cost_category_env",
    "bill_billing_period_start_date ",
    "Line_Item_Usage_Amount",
    "",
    "x",
];

fn data_type(b: u8) -> DataType {
    let entries = |key: DataType, value: DataType| {
        DataType::Map(
            Arc::new(Field::new(
                "entries",
                DataType::Struct(Fields::from(vec![
                    Field::new("key", key, false),
                    Field::new("value", value, true),
                ])),
                false,
            )),
            false,
        )
    };
    match b % 24 {
        0 => DataType::Utf8,
        1 => DataType::LargeUtf8,
        2 => DataType::Utf8View,
        3 => DataType::Float64,
        4 => DataType::Float32,
        5 => DataType::Int64,
        6 => DataType::Int32,
        7 => DataType::UInt64,
        8 => DataType::Boolean,
        9 => DataType::Decimal128(38, 10),
        10 => DataType::Decimal128(10, 2),
        11 => DataType::Timestamp(TimeUnit::Nanosecond, None),
        12 => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
        13 => DataType::Timestamp(TimeUnit::Second, Some("+05:30".into())),
        14 => DataType::Date32,
        15 => DataType::Date64,
        16 => DataType::Binary,
        17 => entries(DataType::Utf8, DataType::Utf8),
        18 => entries(DataType::Utf8, DataType::Float64),
        19 => entries(DataType::Int32, DataType::Utf8),
        20 => DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
        21 => DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
        22 => DataType::Null,
        _ => DataType::Decimal256(76, 20),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut fields: Vec<Field> = Vec::new();
    for pair in data.chunks_exact(2) {
        let at = pair[0] as usize % (CUR2_COLUMNS.len() + OTHER_NAMES.len());
        let name = CUR2_COLUMNS
            .get(at)
            .map(|(n, _)| *n)
            .unwrap_or_else(|| OTHER_NAMES[at - CUR2_COLUMNS.len()]);
        if fields.iter().all(|f| f.name() != name) {
            fields.push(Field::new(name, data_type(pair[1]), true));
        }
    }
    let schema = Arc::new(Schema::new(fields));
    let Ok(exprs) = rerate::ingest::read_plan("fuzz.parquet", &schema) else {
        return;
    };
    let columns = schema
        .fields()
        .iter()
        .map(|f| new_null_array(f.data_type(), 1))
        .collect();
    let batch =
        RecordBatch::try_new(schema.clone(), columns).expect("null arrays fit their schema");
    let ctx = SessionContext::new();
    let planned = ctx.read_batch(batch).and_then(|df| df.select(exprs));
    let df = planned.expect("a schema that passed the checks plans");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let batches = runtime
        .block_on(df.collect())
        .expect("a row of nulls normalizes");
    // The catalog first, in its types; then the file's own other columns, by name.
    let expected = cur_schema();
    for b in &batches {
        let fields = b.schema().fields().clone();
        let (catalog, extras) = fields.split_at(CUR2_COLUMNS.len());
        for (got, want) in catalog.iter().zip(expected.fields()) {
            assert_eq!(got.name(), want.name());
            assert_eq!(got.data_type(), want.data_type(), "{}", got.name());
        }
        for extra in extras {
            assert!(
                schema.field_with_name(extra.name()).is_ok()
                    && CUR2_COLUMNS.iter().all(|(n, _)| n != extra.name()),
                "{} is a column of the file beyond the catalog",
                extra.name()
            );
        }
    }
});
