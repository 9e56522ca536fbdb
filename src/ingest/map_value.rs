//! `map_value(map, 'key')`: a text map's value under a key, or null: what
//! `map_extract(map, key)[1]` gives, without building a list per row (rows claimed by a tag
//! look it up in every row of the period, twice).

use std::sync::Arc;

use arrow::array::{Array, AsArray, StringBuilder};
use arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::lit;

/// `map_value(map, key)` as an expression.
pub(crate) fn map_value(map: Expr, key: &str) -> Expr {
    ScalarUDF::from(MapValue::default()).call(vec![map, lit(key)])
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct MapValue {
    signature: Signature,
}

impl Default for MapValue {
    fn default() -> Self {
        Self {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for MapValue {
    fn name(&self) -> &str {
        "map_value"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let [map, ColumnarValue::Scalar(ScalarValue::Utf8(Some(key)))] = args.args.as_slice()
        else {
            return exec_err!("map_value takes a map and a key");
        };
        let map = map.to_array(rows)?;
        let DataType::Map(..) = map.data_type() else {
            return exec_err!("map_value takes a map, not {}", map.data_type());
        };
        let map = map.as_map();
        let (DataType::Utf8, DataType::Utf8) = (map.keys().data_type(), map.values().data_type())
        else {
            return exec_err!("map_value takes a map of text, not {}", map.data_type());
        };
        let (keys, values) = (
            map.keys().as_string::<i32>(),
            map.values().as_string::<i32>(),
        );
        let offsets = map.value_offsets();
        let mut found = StringBuilder::with_capacity(rows, 0);
        for row in 0..rows {
            let entries = offsets[row] as usize..offsets[row + 1] as usize;
            let at = map
                .is_valid(row)
                .then(|| entries.into_iter().find(|&j| keys.value(j) == key))
                .flatten();
            found.append_option(at.filter(|&j| values.is_valid(j)).map(|j| values.value(j)));
        }
        Ok(ColumnarValue::Array(Arc::new(found.finish())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, MapBuilder, MapFieldNames};

    use crate::ingest::invoke;

    #[test]
    fn a_value_under_its_key_else_null() {
        let names = MapFieldNames {
            entry: "key_value".into(),
            key: "key".into(),
            value: "value".into(),
        };
        let mut maps = MapBuilder::new(Some(names), StringBuilder::new(), StringBuilder::new());
        for row in [
            vec![("team", Some("data")), ("env", Some("prod"))],
            vec![("env", Some("dev"))],
            vec![("team", None)],
            vec![],
        ] {
            for (k, v) in row {
                maps.keys().append_value(k);
                maps.values().append_option(v);
            }
            maps.append(true).unwrap();
        }
        maps.append(false).unwrap();
        let map: ArrayRef = Arc::new(maps.finish());
        let found = |map: ArrayRef, key: &str| -> Vec<Option<String>> {
            let rows = map.len();
            let key = ColumnarValue::Scalar(ScalarValue::Utf8(Some(key.to_string())));
            let args = vec![ColumnarValue::Array(map), key];
            let out = invoke(&MapValue::default(), args, rows).unwrap();
            out.as_string::<i32>()
                .iter()
                .map(|v| v.map(str::to_string))
                .collect()
        };
        let some = |s: &str| Some(s.to_string());
        assert_eq!(
            found(map.clone(), "env"),
            vec![some("prod"), some("dev"), None, None, None]
        );
        assert_eq!(
            found(map.clone(), "team"),
            vec![some("data"), None, None, None, None]
        );
        assert_eq!(found(map.slice(1, 2), "env"), vec![some("dev"), None]);
    }
}
