//! `string_map('k1', v1, 'k2', v2, …)`: folds legacy CUR's flattened `product_*`,
//! `resource_tags_*` and `cost_category_*` columns back into one CUR 2.0 `map<string,string>`,
//! leaving out blank entries the way CUR 2.0 maps do (built-in `map()` would keep them as nulls).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, MapBuilder, MapFieldNames, StringBuilder};
use arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::columns::map_type;

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct StringMap {
    signature: Signature,
}

impl Default for StringMap {
    fn default() -> Self {
        Self {
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for StringMap {
    fn name(&self) -> &str {
        "string_map"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(map_type(DataType::Utf8))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if !args.args.len().is_multiple_of(2) {
            return exec_err!(
                "string_map takes key/value pairs, got {} arguments",
                args.args.len()
            );
        }
        let rows = args.number_rows;
        let mut keys = Vec::with_capacity(args.args.len() / 2);
        let mut values: Vec<ArrayRef> = Vec::with_capacity(args.args.len() / 2);
        for pair in args.args.chunks(2) {
            match &pair[0] {
                ColumnarValue::Scalar(ScalarValue::Utf8(Some(k))) => keys.push(k.clone()),
                other => {
                    return exec_err!("string_map keys must be string literals, got {other:?}");
                }
            }
            let array = pair[1].to_array(rows)?;
            if array.data_type() != &DataType::Utf8 {
                return exec_err!("string_map values must be Utf8, got {}", array.data_type());
            }
            values.push(array);
        }
        let names = MapFieldNames {
            entry: "key_value".into(),
            key: "key".into(),
            value: "value".into(),
        };
        let mut builder = MapBuilder::new(Some(names), StringBuilder::new(), StringBuilder::new());
        let values: Vec<_> = values.iter().map(|a| a.as_string::<i32>()).collect();
        for row in 0..rows {
            for (key, column) in keys.iter().zip(&values) {
                if column.is_valid(row) && !column.value(row).is_empty() {
                    builder.keys().append_value(key);
                    builder.values().append_value(column.value(row));
                }
            }
            builder.append(true)?;
        }
        Ok(ColumnarValue::Array(Arc::new(builder.finish())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::StringArray;

    use crate::ingest::invoke;

    #[test]
    fn folds_columns_into_a_map_without_blank_entries() {
        let team = Arc::new(StringArray::from(vec![Some("web"), Some(""), None])) as ArrayRef;
        let env = Arc::new(StringArray::from(vec![Some("prod"), Some("dev"), None])) as ArrayRef;
        let args = vec![
            ColumnarValue::Scalar(ScalarValue::Utf8(Some("user_team".into()))),
            ColumnarValue::Array(team),
            ColumnarValue::Scalar(ScalarValue::Utf8(Some("user_env".into()))),
            ColumnarValue::Array(env),
        ];
        let out = invoke(&StringMap::default(), args, 3).unwrap();
        assert_eq!(out.data_type(), &map_type(DataType::Utf8));
        let map = out.as_map();
        let strings = |a: &arrow::array::ArrayRef| {
            a.as_string::<i32>()
                .iter()
                .map(|s| s.unwrap().to_string())
                .collect::<Vec<_>>()
        };
        let entries = |row: usize| {
            let m = map.value(row);
            let (k, v) = (strings(m.column(0)), strings(m.column(1)));
            k.into_iter().zip(v).collect::<Vec<_>>()
        };
        assert_eq!(
            entries(0),
            vec![
                ("user_team".into(), "web".into()),
                ("user_env".into(), "prod".into())
            ]
        );
        assert_eq!(
            entries(1),
            vec![("user_env".to_string(), "dev".to_string())]
        );
        assert!(entries(2).is_empty());
    }
}
