//! `decimal_text(text)`: an amount or rate written as text, read as money exactly. CUR writes
//! rates as plain decimals (`"0.0100000000"`); some exporters write small ones with an exponent
//! (`"1.66667e-05"`), which is just as exact, and which the engine's own cast refuses. Either
//! way the value is rounded half away from zero to the 10th decimal, as every amount read is.
//! Text that is not a number is an error naming the value (and, from there, the file).

use std::sync::Arc;

use arrow::array::{Array, AsArray, Decimal128Array};
use arrow::compute::{CastOptions, cast, cast_with_options};
use arrow::datatypes::{DataType, Decimal128Type};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use rust_decimal::Decimal;

use crate::money::{self, money_type};

#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct DecimalText {
    signature: Signature,
}

impl Default for DecimalText {
    fn default() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for DecimalText {
    fn name(&self) -> &str {
        "decimal_text"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(money_type())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [arg] = args.args.as_slice() else {
            return exec_err!("decimal_text takes one argument");
        };
        let text = cast(&arg.to_array(args.number_rows)?, &DataType::Utf8)?;
        // The engine's cast reads plain decimals fast; what it cannot read becomes null here.
        let lenient = CastOptions {
            safe: true,
            ..Default::default()
        };
        let plain = cast_with_options(&text, &money_type(), &lenient)?;
        if plain.null_count() == text.null_count() {
            return Ok(ColumnarValue::Array(plain));
        }
        let (text, plain) = (
            text.as_string::<i32>(),
            plain.as_primitive::<Decimal128Type>(),
        );
        let values = (0..text.len())
            .map(|row| {
                if text.is_null(row) || plain.is_valid(row) {
                    return Ok(plain.is_valid(row).then(|| plain.value(row)));
                }
                match scientific(text.value(row)) {
                    Some(d) => Ok(Some(d)),
                    None => exec_err!("{:?} is not a decimal number", text.value(row)),
                }
            })
            .collect::<Result<Vec<Option<i128>>>>()?;
        let array = Decimal128Array::from(values)
            .with_precision_and_scale(money::PRECISION, money::SCALE as i8)?;
        Ok(ColumnarValue::Array(Arc::new(array)))
    }
}

/// `mantissa` `e`|`E` `exponent` as the mantissa of a money decimal (at the storage scale,
/// rounded half away from zero), in integer arithmetic; `None` for text that is not such a
/// number or does not fit.
fn scientific(text: &str) -> Option<i128> {
    let (mantissa, exponent) = text.trim().split_once(['e', 'E'])?;
    let mantissa = Decimal::from_str_exact(mantissa.strip_prefix('+').unwrap_or(mantissa)).ok()?;
    let exponent: i64 = exponent.parse().ok()?;
    // mantissa × 10^exponent = m × 10^(exponent - scale); at the storage scale, m × 10^k.
    let (m, k) = (
        mantissa.mantissa(),
        exponent - i64::from(mantissa.scale()) + i64::from(money::SCALE),
    );
    let value = if k >= 0 {
        m.checked_mul(10i128.checked_pow(u32::try_from(k).ok()?)?)?
    } else if k < -38 {
        0 // |m| < 10^29: far below the storage scale's last digit
    } else {
        let d = 10i128.pow(u32::try_from(-k).ok()?);
        let (q, r) = (m / d, m % d);
        if r.abs() * 2 >= d { q + m.signum() } else { q }
    };
    (value.abs() < 10i128.pow(u32::from(money::PRECISION))).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::StringArray;

    use crate::ingest::invoke;

    fn read(values: Vec<Option<&str>>) -> Result<Vec<Option<String>>> {
        let rows = values.len();
        let values = ColumnarValue::Array(Arc::new(StringArray::from(values)));
        let out = invoke(&DecimalText::default(), vec![values], rows)?;
        let out = out.as_primitive::<Decimal128Type>();
        Ok((0..rows)
            .map(|i| out.is_valid(i).then(|| out.value_as_string(i)))
            .collect())
    }

    #[test]
    fn plain_and_exponent_notation_read_exactly() {
        let got = read(vec![
            Some("0.0100000000"),
            Some("1.66667e-05"),
            Some("1.66667E-05"),
            Some("+2.5e3"),
            Some("-7e-11"),
            Some("-5e-11"),
            None,
        ])
        .unwrap();
        let want = [
            "0.0100000000",
            "0.0000166667",
            "0.0000166667",
            "2500.0000000000",
            "-0.0000000001",
            "-0.0000000001",
        ];
        let want: Vec<Option<String>> = want
            .iter()
            .map(|s| Some(s.to_string()))
            .chain([None])
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn text_that_is_not_a_number_is_an_error_naming_it() {
        let e = read(vec![Some("0.5"), Some("200 USD")]).unwrap_err();
        assert!(
            e.to_string()
                .contains("\"200 USD\" is not a decimal number"),
            "{e}"
        );
        assert!(read(vec![Some("1e")]).is_err());
        assert!(read(vec![Some("e5")]).is_err());
    }
}
