//! A Parquet file's statistics as a Delta `add` action carries them (`numRecords`, and per
//! column `nullCount`, `minValues`, `maxValues`), read from the footer the writer just made:
//! readers skip files by them without opening one.
//!
//! As the protocol's default (`delta.dataSkippingNumIndexedCols` = 32), the first 32 columns
//! have column statistics. Bounds are given only where they are exact and lossless in JSON:
//! text (when Parquet did not truncate it), integers and timestamps (to the millisecond, the
//! lower bound rounded down and the upper up). Decimals have none: a JSON number read as a
//! double would not bound them exactly.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Int64Type, TimeUnit, TimestampMicrosecondType};
use chrono::DateTime;
use parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use parquet::arrow::parquet_to_arrow_schema;
use parquet::file::metadata::ParquetMetaData;
use serde_json::{Map, Value};

/// Columns with statistics, as the protocol's default.
const INDEXED_COLUMNS: usize = 32;

/// The `stats` of a file's `add` action.
pub fn json(metadata: &ParquetMetaData) -> Option<String> {
    let file = metadata.file_metadata();
    let schema = parquet_to_arrow_schema(file.schema_descr(), file.key_value_metadata()).ok()?;
    let row_groups = metadata.row_groups();
    let (mut mins, mut maxes, mut nulls) = (Map::new(), Map::new(), Map::new());
    for field in schema.fields().iter().take(INDEXED_COLUMNS) {
        if field.data_type().is_nested() {
            continue;
        }
        let Ok(converter) =
            StatisticsConverter::try_new(field.name(), &schema, file.schema_descr())
        else {
            continue;
        };
        if let Ok(counts) = converter.row_group_null_counts(row_groups)
            && counts.null_count() == 0
        {
            let total: u64 = counts.values().iter().sum();
            nulls.insert(field.name().clone(), Value::from(total));
        }
        let exact = |flags: parquet::errors::Result<arrow::array::BooleanArray>| {
            flags.is_ok_and(|f| f.null_count() == 0 && f.values().count_set_bits() == f.len())
        };
        let (Ok(lows), Ok(highs)) = (
            converter.row_group_mins(row_groups),
            converter.row_group_maxes(row_groups),
        ) else {
            continue;
        };
        if !exact(converter.row_group_is_min_value_exact(row_groups))
            || !exact(converter.row_group_is_max_value_exact(row_groups))
        {
            continue;
        }
        if let Some((low, high)) = bounds(&lows, &highs) {
            mins.insert(field.name().clone(), low);
            maxes.insert(field.name().clone(), high);
        }
    }
    let stats = serde_json::json!({
        "numRecords": file.num_rows(),
        "minValues": mins,
        "maxValues": maxes,
        "nullCount": nulls,
    });
    Some(stats.to_string())
}

/// The file's least and greatest values of a column from its row groups' (`None`: no bound to
/// give, or a row group with values but no statistics).
fn bounds(lows: &ArrayRef, highs: &ArrayRef) -> Option<(Value, Value)> {
    if lows.null_count() > 0 || highs.null_count() > 0 || lows.is_empty() {
        // A row group of nulls only has no bounds: the others' would still hold, but keeping
        // the rule simple costs only skipping.
        return None;
    }
    match lows.data_type() {
        DataType::Utf8 => {
            let low = lows.as_string::<i32>().iter().flatten().min()?;
            let high = highs.as_string::<i32>().iter().flatten().max()?;
            Some((Value::from(low), Value::from(high)))
        }
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
            let as_i64 = |a: &ArrayRef| arrow::compute::cast(a, &DataType::Int64).ok();
            let (lows, highs) = (as_i64(lows)?, as_i64(highs)?);
            let low = arrow::compute::min(lows.as_primitive::<Int64Type>())?;
            let high = arrow::compute::max(highs.as_primitive::<Int64Type>())?;
            Some((Value::from(low), Value::from(high)))
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            let low = arrow::compute::min(lows.as_primitive::<TimestampMicrosecondType>())?;
            let high = arrow::compute::max(highs.as_primitive::<TimestampMicrosecondType>())?;
            let millis = |us: i64, up: bool| {
                let ms = us.div_euclid(1000) + i64::from(up && us.rem_euclid(1000) != 0);
                DateTime::from_timestamp_millis(ms)
                    .map(|t| Value::from(t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()))
            };
            Some((millis(low, false)?, millis(high, true)?))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::TimestampMicrosecondArray;
    use arrow::array::{Decimal128Array, Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{Field, Schema};
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;

    use super::*;

    #[test]
    fn text_integers_and_timestamps_have_bounds_decimals_only_null_counts() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("account", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
            Field::new(
                "start",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new("cost", DataType::Decimal128(38, 10), true),
        ]));
        let batch = |accounts: Vec<Option<&str>>, n: Vec<i64>, start: Vec<i64>| {
            let rows = n.len();
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(StringArray::from(accounts)),
                    Arc::new(Int64Array::from(n)),
                    Arc::new(TimestampMicrosecondArray::from(start).with_timezone("UTC")),
                    Arc::new(
                        Decimal128Array::from(vec![1; rows])
                            .with_precision_and_scale(38, 10)
                            .unwrap(),
                    ),
                ],
            )
            .unwrap()
        };
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(2))
            .build();
        let mut writer = ArrowWriter::try_new(Vec::new(), schema.clone(), Some(props)).unwrap();
        // Two row groups: the bounds are the file's, not the first group's.
        writer
            .write(&batch(
                vec![Some("b"), None],
                vec![5, 7],
                vec![1_500, 2_000_000],
            ))
            .unwrap();
        writer
            .write(&batch(
                vec![Some("a"), Some("c")],
                vec![-3, 4],
                vec![0, 2_000_001],
            ))
            .unwrap();
        let metadata = writer.close().unwrap();
        let stats: Value = serde_json::from_str(&json(&metadata).unwrap()).unwrap();
        assert_eq!(
            stats,
            serde_json::json!({
                "numRecords": 4,
                "minValues": {"account": "a", "n": -3, "start": "1970-01-01T00:00:00.000Z"},
                // 2.000001 s, rounded up: a bound may be loose, never too tight.
                "maxValues": {"account": "c", "n": 7, "start": "1970-01-01T00:00:02.001Z"},
                "nullCount": {"account": 1, "n": 0, "start": 0, "cost": 0},
            })
        );
    }
}
