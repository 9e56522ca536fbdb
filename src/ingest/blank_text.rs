//! `blank_to_null(text)`: the text with every blank (`""`) a null. Legacy CUR writes a missing
//! value as `""`, CUR 2.0 as null; every text column read goes through this, so it is one pass
//! over the offsets, sharing the values: the engine's `nullif(text, '')` compared the bytes of
//! every row (a few percent of a run's time).

use std::sync::Arc;

use arrow::array::{Array, AsArray, StringArray};
use arrow::buffer::{BooleanBuffer, NullBuffer};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// `blank_to_null(text)` as an expression: `text` read as `Utf8`, blanks null.
pub(crate) fn blank_to_null(text: Expr) -> Expr {
    ScalarUDF::from(BlankToNull::default()).call(vec![text])
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct BlankToNull {
    signature: Signature,
}

impl Default for BlankToNull {
    fn default() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for BlankToNull {
    fn name(&self) -> &str {
        "blank_to_null"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [text] = args.args.as_slice() else {
            return exec_err!("blank_to_null takes one argument");
        };
        let text = text.to_array(args.number_rows)?;
        let text = match text.data_type() {
            DataType::Utf8 => text,
            _ => cast(&text, &DataType::Utf8)?,
        };
        let (offsets, values, nulls) = text.as_string::<i32>().clone().into_parts();
        let filled =
            BooleanBuffer::collect_bool(offsets.len() - 1, |i| offsets[i + 1] > offsets[i]);
        let nulls = NullBuffer::union(nulls.as_ref(), Some(&NullBuffer::new(filled)));
        Ok(ColumnarValue::Array(Arc::new(StringArray::new(
            offsets, values, nulls,
        ))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, LargeStringArray};

    use crate::ingest::invoke;

    fn run(text: ArrayRef) -> Vec<Option<String>> {
        let rows = text.len();
        let out = invoke(
            &BlankToNull::default(),
            vec![ColumnarValue::Array(text)],
            rows,
        )
        .unwrap();
        out.as_string::<i32>()
            .iter()
            .map(|v| v.map(str::to_string))
            .collect()
    }

    #[test]
    fn blanks_become_nulls_and_the_rest_is_kept() {
        let text: ArrayRef = Arc::new(StringArray::from(vec![
            Some("a"),
            Some(""),
            None,
            Some(" "),
            Some("bc"),
            Some(""),
        ]));
        let expected = vec![
            Some("a".to_string()),
            None,
            None,
            Some(" ".to_string()),
            Some("bc".to_string()),
            None,
        ];
        assert_eq!(run(text.clone()), expected);
        // A slice keeps its own rows.
        assert_eq!(run(text.slice(1, 4)), expected[1..5].to_vec());
        // Other string types are read as text first.
        let large: ArrayRef = Arc::new(LargeStringArray::from(vec![Some(""), Some("x")]));
        assert_eq!(run(large), vec![None, Some("x".to_string())]);
    }
}
