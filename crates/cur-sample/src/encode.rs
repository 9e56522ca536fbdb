//! The Parquet encoder: the schema, writer properties and column buffers, written with the
//! low-level `SerializedFileWriter` because `ArrowWriter` cannot write INT96.

use std::sync::Arc;

use parquet::basic::Compression;
use parquet::data_type::{ByteArray, ByteArrayType, DataType, DoubleType, Int96, Int96Type};
use parquet::errors::ParquetError;
use parquet::file::properties::{WriterProperties, WriterPropertiesPtr};
use parquet::file::writer::{SerializedFileWriter, SerializedRowGroupWriter};
use parquet::schema::parser::parse_message_type;
use parquet::schema::types::ColumnPath;

use crate::fixed::{NONE, write_fixed};
use crate::rows::{Ctx, Row};

type StrFn = fn(&Row, &Ctx<'_>, &mut StrOut);
type F64Fn = fn(&Row, &Ctx<'_>) -> Option<f64>;
type TsFn = fn(&Row, &Ctx<'_>) -> Option<i64>;
type StrMapFn = fn(&Row, &Ctx<'_>, &mut MapOut<StrBuf>);
type F64MapFn = fn(&Row, &Ctx<'_>, &mut MapOut<Vec<f64>>);

/// How a column's values come from a row, one physical shape per variant.
#[derive(Clone, Copy)]
pub(crate) enum Render {
    Str(StrFn),
    F64(F64Fn),
    /// Nanoseconds since the epoch, UTC, written as INT96.
    Ts(TsFn),
    StrMap(StrMapFn),
    F64Map(F64MapFn),
}

impl Render {
    /// The type AWS names in manifests for values of this shape.
    pub(crate) fn manifest_type(&self) -> &'static str {
        match self {
            Render::Str(_) => "string",
            Render::F64(_) => "double",
            Render::Ts(_) => "timestamp",
            Render::StrMap(_) => "map<string,string>",
            Render::F64Map(_) => "map<string,double>",
        }
    }
}

/// One column of the file: its name and how its values render.
pub(crate) struct Column {
    pub(crate) name: &'static str,
    pub(crate) render: Render,
}

pub(crate) fn writer_properties() -> WriterPropertiesPtr {
    // Dictionaries pay off for repetitive strings, not for near-unique ids and amounts, where
    // they would only be built to be abandoned.
    let unique = [
        "identity_line_item_id",
        "line_item_usage_amount",
        "line_item_normalized_usage_amount",
        "line_item_unblended_cost",
        "line_item_blended_cost",
        "line_item_net_unblended_cost",
        "pricing_public_on_demand_cost",
    ];
    let mut builder = WriterProperties::builder().set_compression(Compression::SNAPPY);
    for name in unique {
        builder = builder.set_column_dictionary_enabled(ColumnPath::from(name), false);
    }
    Arc::new(builder.build())
}

pub(crate) fn parquet_schema(
    columns: &[Column],
) -> Result<parquet::schema::types::Type, ParquetError> {
    let mut text = String::from("message schema {\n");
    for column in columns {
        let name = column.name;
        let line = match column.render {
            Render::Str(_) => format!("  optional binary {name} (STRING);\n"),
            Render::F64(_) => format!("  optional double {name};\n"),
            Render::Ts(_) => format!("  optional int96 {name};\n"),
            Render::StrMap(_) => format!(
                "  optional group {name} (MAP) {{ repeated group key_value {{ required binary key (STRING); optional binary value (STRING); }} }}\n"
            ),
            Render::F64Map(_) => format!(
                "  optional group {name} (MAP) {{ repeated group key_value {{ required binary key (STRING); optional double value; }} }}\n"
            ),
        };
        text.push_str(&line);
    }
    text.push('}');
    parse_message_type(&text)
}

/// Strings of one column chunk, back to back, so a row group costs one allocation per column
/// rather than one per value.
#[derive(Default)]
pub(crate) struct StrBuf {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl StrBuf {
    fn push(&mut self, s: &str) {
        self.bytes.extend_from_slice(s.as_bytes());
        self.ends.push(self.bytes.len());
    }

    /// Hands the values to Parquet as slices of one shared buffer.
    fn drain_into(&mut self, out: &mut Vec<ByteArray>) {
        out.clear();
        let all = ByteArray::from(std::mem::take(&mut self.bytes));
        let mut start = 0;
        for &end in &self.ends {
            out.push(all.slice(start, end - start));
            start = end;
        }
        self.ends.clear();
    }
}

/// One optional string column being rendered: one definition level per row.
#[derive(Default)]
pub(crate) struct StrOut {
    values: StrBuf,
    def: Vec<i16>,
}

impl StrOut {
    pub(crate) fn str(&mut self, s: &str) {
        self.values.push(s);
        self.def.push(1);
    }

    pub(crate) fn null(&mut self) {
        self.def.push(0);
    }

    pub(crate) fn opt(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.str(s),
            None => self.null(),
        }
    }

    /// A fixed-point value as a 10-decimal string, or null.
    pub(crate) fn fixed(&mut self, value: i64) {
        if value == NONE {
            return self.null();
        }
        self.with(|b| write_fixed(b, value));
    }

    /// A value written straight into the column buffer, without a `String` per row.
    pub(crate) fn with(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        write(&mut self.values.bytes);
        self.values.ends.push(self.values.bytes.len());
        self.def.push(1);
    }
}

/// One optional `map<string, V>` column being rendered: keys and values are two leaf columns
/// sharing repetition levels (0 starts a row, 1 continues its map).
#[derive(Default)]
pub(crate) struct MapOut<V> {
    keys: StrBuf,
    values: V,
    key_def: Vec<i16>,
    value_def: Vec<i16>,
    rep: Vec<i16>,
    row_start: usize,
}

impl<V> MapOut<V> {
    pub(crate) fn null(&mut self) {
        self.key_def.push(0);
        self.value_def.push(0);
        self.rep.push(0);
    }

    /// A present map; `fill` adds its entries, none at all makes it an empty map.
    pub(crate) fn entries(&mut self, fill: impl FnOnce(&mut Self)) {
        self.row_start = self.rep.len();
        fill(self);
        if self.rep.len() == self.row_start {
            self.key_def.push(1);
            self.value_def.push(1);
            self.rep.push(0);
        }
    }

    fn level(&mut self) {
        self.rep.push(if self.rep.len() == self.row_start {
            0
        } else {
            1
        });
        self.key_def.push(2);
        self.value_def.push(3);
    }

    fn clear(&mut self) {
        self.key_def.clear();
        self.value_def.clear();
        self.rep.clear();
    }
}

impl MapOut<StrBuf> {
    pub(crate) fn put(&mut self, key: &str, value: &str) {
        self.level();
        self.keys.push(key);
        self.values.push(value);
    }
}

impl MapOut<Vec<f64>> {
    pub(crate) fn put(&mut self, key: &str, value: f64) {
        self.level();
        self.keys.push(key);
        self.values.push(value);
    }
}

/// Buffers reused across columns and row groups.
#[derive(Default)]
pub(crate) struct Scratch {
    strs: StrOut,
    doubles: Vec<f64>,
    timestamps: Vec<Int96>,
    def: Vec<i16>,
    str_map: MapOut<StrBuf>,
    f64_map: MapOut<Vec<f64>>,
    arrays: Vec<ByteArray>,
}

pub(crate) fn write_row_group(
    writer: &mut SerializedFileWriter<Vec<u8>>,
    columns: &[Column],
    rows: &[Row],
    ctx: &Ctx<'_>,
    s: &mut Scratch,
) -> Result<(), ParquetError> {
    let mut group = writer.next_row_group()?;
    for column in columns {
        write_column(&mut group, column.render, rows, ctx, s)?;
    }
    group.close()?;
    Ok(())
}

fn write_column(
    group: &mut SerializedRowGroupWriter<'_, Vec<u8>>,
    render: Render,
    rows: &[Row],
    ctx: &Ctx<'_>,
    s: &mut Scratch,
) -> Result<(), ParquetError> {
    match render {
        Render::Str(f) => {
            s.strs.def.clear();
            for r in rows {
                f(r, ctx, &mut s.strs);
            }
            s.strs.values.drain_into(&mut s.arrays);
            write_leaf::<ByteArrayType>(group, &s.arrays, &s.strs.def, None)?;
        }
        Render::F64(f) => {
            optional(rows, |r| f(r, ctx), &mut s.doubles, &mut s.def);
            write_leaf::<DoubleType>(group, &s.doubles, &s.def, None)?;
        }
        Render::Ts(f) => {
            optional(
                rows,
                |r| f(r, ctx).map(int96),
                &mut s.timestamps,
                &mut s.def,
            );
            write_leaf::<Int96Type>(group, &s.timestamps, &s.def, None)?;
        }
        Render::StrMap(f) => {
            let m = &mut s.str_map;
            m.clear();
            for r in rows {
                f(r, ctx, m);
            }
            m.keys.drain_into(&mut s.arrays);
            write_leaf::<ByteArrayType>(group, &s.arrays, &m.key_def, Some(&m.rep))?;
            m.values.drain_into(&mut s.arrays);
            write_leaf::<ByteArrayType>(group, &s.arrays, &m.value_def, Some(&m.rep))?;
        }
        Render::F64Map(f) => {
            let m = &mut s.f64_map;
            m.clear();
            m.values.clear();
            for r in rows {
                f(r, ctx, m);
            }
            m.keys.drain_into(&mut s.arrays);
            write_leaf::<ByteArrayType>(group, &s.arrays, &m.key_def, Some(&m.rep))?;
            write_leaf::<DoubleType>(group, &m.values, &m.value_def, Some(&m.rep))?;
        }
    }
    // Release the shared string buffer now rather than at the next column.
    s.arrays.clear();
    Ok(())
}

/// One optional primitive column's values (present ones only) and definition levels.
fn optional<T>(
    rows: &[Row],
    value: impl Fn(&Row) -> Option<T>,
    values: &mut Vec<T>,
    def: &mut Vec<i16>,
) {
    values.clear();
    def.clear();
    for r in rows {
        match value(r) {
            Some(v) => {
                values.push(v);
                def.push(1);
            }
            None => def.push(0),
        }
    }
}

fn write_leaf<T: DataType>(
    group: &mut SerializedRowGroupWriter<'_, Vec<u8>>,
    values: &[T::T],
    def: &[i16],
    rep: Option<&[i16]>,
) -> Result<(), ParquetError> {
    let mut column = group.next_column()?.ok_or_else(|| {
        ParquetError::General("rendered more columns than the schema has".to_string())
    })?;
    column.typed::<T>().write_batch(values, Some(def), rep)?;
    column.close()
}

/// INT96 as Impala and Spark (and so AWS) write it: nanoseconds of the day in the first eight
/// bytes, little-endian, then the Julian day number.
fn int96(nanos: i64) -> Int96 {
    const NANOS_PER_DAY: i64 = 86_400_000_000_000;
    const JULIAN_DAY_OF_EPOCH: i64 = 2_440_588;
    let day = nanos.div_euclid(NANOS_PER_DAY) + JULIAN_DAY_OF_EPOCH;
    let nanos_of_day = nanos.rem_euclid(NANOS_PER_DAY) as u64;
    let mut value = Int96::new();
    value.set_data(nanos_of_day as u32, (nanos_of_day >> 32) as u32, day as u32);
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int96_round_trips_nanoseconds() {
        for nanos in [
            0,
            1_761_955_200_000_000_000,
            1_761_955_200_123_456_789,
            -86_400_000_000_001,
        ] {
            assert_eq!(int96(nanos).to_nanos(), nanos);
        }
    }
}
