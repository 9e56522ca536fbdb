//! `line_item_key(id, usage_start, usage_end)`: a line item's identity (its id and usage
//! interval) as one 64-bit number, the XxHash64 of the id's bytes and the interval's ticks. The
//! check for line items delivered twice (`checks::duplicates`) groups a period's rows by it: a
//! number per row instead of the id's text and two timestamps, a fraction of the memory and
//! the time. Two line items can share a key (for 10M rows, a chance of about 3 in a million);
//! the check settles every shared key on the identity itself.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, UInt64Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use twox_hash::XxHash64;

/// `line_item_key(id, start, end)` as an expression.
pub(crate) fn line_item_key(id: Expr, start: Expr, end: Expr) -> Expr {
    ScalarUDF::from(LineItemKey::default()).call(vec![id, start, end])
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct LineItemKey {
    signature: Signature,
}

impl Default for LineItemKey {
    fn default() -> Self {
        Self {
            signature: Signature::any(3, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for LineItemKey {
    fn name(&self) -> &str {
        "line_item_key"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::UInt64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let [id, start, end] = args.args.as_slice() else {
            return exec_err!("line_item_key takes an id, a start and an end");
        };
        let id = cast(&id.to_array(rows)?, &DataType::Utf8View)?;
        let id = id.as_string_view();
        let ticks = |interval: &ColumnarValue| -> Result<ArrayRef> {
            let array = interval.to_array(rows)?;
            if !matches!(array.data_type(), DataType::Timestamp(..) | DataType::Int64) {
                return exec_err!("line_item_key takes timestamps, got {}", array.data_type());
            }
            Ok(cast(&array, &DataType::Int64)?)
        };
        let (start, end) = (ticks(start)?, ticks(end)?);
        let (start, end) = (
            start.as_primitive::<Int64Type>(),
            end.as_primitive::<Int64Type>(),
        );
        // Each part with a byte saying whether it is there, so that no two identities write
        // the same bytes; the id, of any length, last.
        let mut bytes = Vec::new();
        let keys: UInt64Array = (0..rows)
            .map(|row| {
                bytes.clear();
                for interval in [start, end] {
                    match interval.is_valid(row) {
                        true => {
                            bytes.push(1);
                            bytes.extend_from_slice(&interval.value(row).to_le_bytes());
                        }
                        false => bytes.push(0),
                    }
                }
                match id.is_valid(row) {
                    true => {
                        bytes.push(1);
                        bytes.extend_from_slice(id.value(row).as_bytes());
                    }
                    false => bytes.push(0),
                }
                Some(XxHash64::oneshot(0, &bytes))
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(keys)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{StringArray, TimestampMicrosecondArray};

    use crate::ingest::invoke;

    fn keys(ids: Vec<Option<&str>>, starts: Vec<Option<i64>>, ends: Vec<Option<i64>>) -> Vec<u64> {
        let rows = ids.len();
        let args: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(ids)),
            Arc::new(TimestampMicrosecondArray::from(starts).with_timezone("UTC")),
            Arc::new(TimestampMicrosecondArray::from(ends).with_timezone("UTC")),
        ];
        let args = args.into_iter().map(ColumnarValue::Array).collect();
        let out = invoke(&LineItemKey::default(), args, rows).unwrap();
        out.as_primitive::<arrow::datatypes::UInt64Type>()
            .values()
            .to_vec()
    }

    #[test]
    fn one_identity_one_key_and_any_difference_another() {
        let k = keys(
            vec![
                Some("li-1"),
                Some("li-1"),
                Some("li-2"),
                Some("li-1"),
                Some("li-1"),
                None,
                Some(""),
                Some("li-1"),
            ],
            vec![
                Some(0),
                Some(0),
                Some(0),
                Some(3_600),
                Some(0),
                Some(0),
                Some(0),
                None,
            ],
            vec![
                Some(3_600),
                Some(3_600),
                Some(3_600),
                Some(7_200),
                Some(7_200),
                Some(3_600),
                Some(3_600),
                Some(3_600),
            ],
        );
        assert_eq!(k[0], k[1], "the same line item twice");
        let mut distinct = k[1..].to_vec();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 7, "every other identity its own key: {k:?}");
    }

    #[test]
    fn the_key_is_the_same_in_every_process_and_build() {
        // Executors on other machines compute the keys of their rows: XxHash64 is specified.
        // This key was checked once against its reference implementation (Python's `xxhash`,
        // `xxh64_intdigest` of b"\x01" + 0i64 + b"\x01" + 3600i64 + b"\x01li-1", seed 0).
        assert_eq!(
            keys(vec![Some("li-1")], vec![Some(0)], vec![Some(3_600)]),
            vec![6_951_808_683_725_601_427]
        );
    }
}
