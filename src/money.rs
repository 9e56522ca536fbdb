//! Money, the one place it is defined: the engine's decimal types and their Arrow conversions
//! both ways, the named roundings (storage scale, percent, currency minor unit), and the
//! currencies rerate invoices in. No float ever holds money.

use arrow::array::{Array, Decimal128Array, PrimitiveArray, StringArray, StringBuilder};
use arrow::datatypes::{DataType, Decimal128Type};
use arrow::error::ArrowError;
use rust_decimal::{Decimal, RoundingStrategy};

/// Money in the engine: `Decimal128(38, 10)` from the moment it is read (CUR doubles are
/// converted once, half away from zero at the 10th decimal).
pub(crate) const PRECISION: u8 = 38;
pub(crate) const SCALE: u32 = 10;

/// A rule chain's combined factor, or unit price (`price::rules`): exact within 12 decimals,
/// which the config checks for every plan that stacks rules in order. (Times an amount at the
/// storage scale, 16 integer digits are left: a line up to 10^16.)
pub(crate) const CHAIN_PRECISION: u8 = 22;
pub(crate) const CHAIN_SCALE: u32 = 12;

/// Percentages reported (margin percent): 4 decimals.
pub(crate) const PERCENT_SCALE: u32 = 4;

/// The Arrow type of money and rates.
pub fn money_type() -> DataType {
    DataType::Decimal128(PRECISION, SCALE as i8)
}

/// The Arrow type of a reported percentage.
pub(crate) fn percent_type() -> DataType {
    DataType::Decimal128(PRECISION, PERCENT_SCALE as i8)
}

/// An amount too large to account exactly in `rust_decimal` (its 96 bits, 28 digits).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("amount {0} is too large to account exactly (more than 28 significant digits)")]
pub struct Overflow(pub String);

/// An Arrow decimal as `rust_decimal`, exactly; amounts beyond its 96 bits are an error.
pub(crate) fn decimal_at(
    a: &PrimitiveArray<Decimal128Type>,
    row: usize,
) -> Result<Option<Decimal>, Overflow> {
    if a.is_null(row) {
        return Ok(None);
    }
    Decimal::try_from_i128_with_scale(a.value(row), a.scale() as u32)
        .map(Some)
        .map_err(|_| Overflow(a.value_as_string(row)))
}

/// Decimals as an Arrow column of `Decimal128(precision, scale)`. Every value must already
/// carry at most `scale` decimals (rounded where the spec says): this never rounds.
pub(crate) fn decimal_array(
    values: impl IntoIterator<Item = Option<Decimal>>,
    precision: u8,
    scale: u32,
) -> Result<Decimal128Array, ArrowError> {
    let mantissas = values.into_iter().map(|v| {
        v.map(|d| {
            let mut at_scale = d;
            at_scale.rescale(scale);
            debug_assert_eq!(at_scale, d, "{d} has more than {scale} decimals");
            at_scale.mantissa()
        })
    });
    mantissas
        .collect::<Decimal128Array>()
        .with_precision_and_scale(precision, scale as i8)
}

/// Money as an Arrow column of [`money_type`].
pub(crate) fn money_array(
    values: impl IntoIterator<Item = Option<Decimal>>,
) -> Result<Decimal128Array, ArrowError> {
    decimal_array(values, PRECISION, SCALE)
}

/// Decimals as text, every digit of the scale written (`"0.0100000000"`, `"-2.5000000000"`):
/// the text Arrow's cast makes of them, as CUR writes rates, without its formatting machinery
/// and a string allocated per value (most of the CUR exports' time went there). `None` for a
/// scale of 0 or below, which the cast handles.
pub(crate) fn decimal_text(decimals: &Decimal128Array) -> Option<StringArray> {
    let scale = usize::try_from(decimals.scale()).ok().filter(|&s| s > 0)?;
    let mut out = StringBuilder::with_capacity(decimals.len(), decimals.len() * (scale + 4));
    // A value's digits, least significant first, at least one before the point.
    let mut digits = [b'0'; 40];
    let mut text = String::with_capacity(digits.len() + 2);
    for value in decimals {
        let Some(value) = value else {
            out.append_null();
            continue;
        };
        digits.fill(b'0');
        let mut written = 0;
        let mut rest = value.unsigned_abs();
        while rest > 0 {
            // In 64 bits where it fits (every amount below 10^9 at scale 10): far faster.
            let (next, digit) = match u64::try_from(rest) {
                Ok(small) => ((small / 10) as u128, small % 10),
                Err(_) => (rest / 10, (rest % 10) as u64),
            };
            digits[written] = b'0' + digit as u8;
            written += 1;
            rest = next;
        }
        let whole = written.max(scale + 1);
        text.clear();
        if value < 0 {
            text.push('-');
        }
        text.extend(digits[scale..whole].iter().rev().map(|&d| d as char));
        text.push('.');
        text.extend(digits[..scale].iter().rev().map(|&d| d as char));
        out.append_value(&text);
    }
    Some(out.finish())
}

/// Rounds to the storage scale, half away from zero: what a computed amount (a percentage of a
/// base) is stored at. Invoices round once more, to the currency.
pub(crate) fn round_storage(amount: Decimal) -> Decimal {
    amount.round_dp_with_strategy(SCALE, RoundingStrategy::MidpointAwayFromZero)
}

/// Rounds a reported percentage to [`PERCENT_SCALE`], half away from zero.
pub(crate) fn round_percent(percent: Decimal) -> Decimal {
    percent.round_dp_with_strategy(PERCENT_SCALE, RoundingStrategy::MidpointAwayFromZero)
}

/// ISO 4217 codes rerate can invoice in, with their minor units (decimal places).
const MINOR_UNITS: &[(&str, u32)] = &[
    ("USD", 2),
    ("EUR", 2),
    ("GBP", 2),
    ("CHF", 2),
    ("SEK", 2),
    ("NOK", 2),
    ("DKK", 2),
    ("PLN", 2),
    ("CAD", 2),
    ("AUD", 2),
    ("NZD", 2),
    ("SGD", 2),
    ("HKD", 2),
    ("INR", 2),
    ("CNY", 2),
    ("BRL", 2),
    ("MXN", 2),
    ("ZAR", 2),
    ("JPY", 0),
    ("KRW", 0),
    ("ISK", 0),
    ("CLP", 0),
    ("VND", 0),
    ("BHD", 3),
    ("KWD", 3),
    ("OMR", 3),
    ("JOD", 3),
];

/// Decimal places of `currency`'s minor unit; `None` for a currency rerate does not support.
pub fn minor_units(currency: &str) -> Option<u32> {
    MINOR_UNITS
        .iter()
        .find(|(code, _)| *code == currency)
        .map(|(_, units)| *units)
}

/// Every supported code, for error messages.
pub fn supported_currencies() -> impl Iterator<Item = &'static str> {
    MINOR_UNITS.iter().map(|(code, _)| *code)
}

/// The one rounding of invoice money (README, Invoices): half away from zero to `units` decimal places, and
/// always carrying exactly that scale, so `"874.95"` and `"1235"` print as the currency does.
pub fn round_to_minor(amount: Decimal, units: u32) -> Decimal {
    let mut rounded = amount.round_dp_with_strategy(units, RoundingStrategy::MidpointAwayFromZero);
    rounded.rescale(units);
    rounded
}

/// An already rounded amount as an invoice prints it: thousands separated by commas, a plain
/// minus sign, exactly `units` decimals (`-1,234.50`, `150,000`).
pub fn display(amount: Decimal, units: u32) -> String {
    let mut a = amount;
    a.rescale(units);
    let text = a.abs().to_string();
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    let mut grouped = String::with_capacity(text.len() + int.len() / 3 + 1);
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    if !frac.is_empty() {
        grouped.push('.');
        grouped.push_str(frac);
    }
    if a.is_sign_negative() && !a.is_zero() {
        format!("-{grouped}")
    } else {
        grouped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn decimal_text_is_the_casts_text() {
        use arrow::array::AsArray;
        let edges = [
            0,
            1,
            -1,
            5,
            -5,
            9_999_999_999,
            10_000_000_000,
            -10_000_000_001,
            123_456_789_012_345,
            u64::MAX as i128,
            u64::MAX as i128 + 1,
            -(u64::MAX as i128) - 7,
            10_i128.pow(38) - 1,
            -(10_i128.pow(38) - 1),
        ];
        // And a spread of magnitudes between.
        let spread = (0..2_000)
            .map(|i: i128| (i * 7_919).pow(1 + (i % 4) as u32) * [1, -1][(i % 2) as usize]);
        let values: Vec<Option<i128>> = edges
            .into_iter()
            .chain(spread)
            .map(Some)
            .chain([None])
            .collect();
        for scale in [1, 4, 10, 20, 38] {
            let precision_ok =
                |v: &Option<i128>| v.is_none_or(|v| v.unsigned_abs() < 10_u128.pow(38));
            let decimals = values
                .iter()
                .copied()
                .filter(precision_ok)
                .collect::<Decimal128Array>()
                .with_precision_and_scale(38, scale)
                .unwrap();
            let ours = decimal_text(&decimals).unwrap();
            let cast = arrow::compute::cast(&decimals, &DataType::Utf8).unwrap();
            assert_eq!(&ours, cast.as_string::<i32>(), "scale {scale}");
        }
        let whole = Decimal128Array::from(vec![1_i128])
            .with_precision_and_scale(38, 0)
            .unwrap();
        assert!(decimal_text(&whole).is_none());
    }

    #[test]
    fn arrow_decimals_round_trip_exactly() {
        let factors = [Some(d("0.95")), Some(d("1.0725")), None];
        let a = decimal_array(factors, CHAIN_PRECISION, CHAIN_SCALE).unwrap();
        let factor = DataType::Decimal128(CHAIN_PRECISION, CHAIN_SCALE as i8);
        assert_eq!(a.data_type(), &factor);
        assert_eq!(a.value(0), 950_000_000_000);
        assert_eq!(a.value(1), 1_072_500_000_000);
        for (row, expected) in factors.iter().enumerate() {
            assert_eq!(decimal_at(&a, row).unwrap(), *expected);
        }
        let m = money_array([Some(d("-0.0000000001"))]).unwrap();
        assert_eq!((m.data_type(), m.value(0)), (&money_type(), -1));
    }

    #[test]
    fn named_roundings_are_half_away_from_zero() {
        assert_eq!(round_storage(d("0.00000000005")), d("0.0000000001"));
        assert_eq!(round_storage(d("-0.00000000005")), d("-0.0000000001"));
        assert_eq!(round_percent(d("1.05265")), d("1.0527"));
    }

    #[test]
    fn minor_units_follow_iso_4217() {
        assert_eq!(minor_units("EUR"), Some(2));
        assert_eq!(minor_units("JPY"), Some(0));
        assert_eq!(minor_units("KWD"), Some(3));
        assert_eq!(minor_units("XYZ"), None);
        assert_eq!(minor_units("eur"), None);
    }

    #[test]
    fn rounds_half_away_from_zero_and_keeps_the_currency_scale() {
        assert_eq!(round_to_minor(d("874.9450"), 2).to_string(), "874.95");
        assert_eq!(round_to_minor(d("-874.945"), 2).to_string(), "-874.95");
        assert_eq!(round_to_minor(d("874.9449999"), 2).to_string(), "874.94");
        assert_eq!(round_to_minor(d("1234.5"), 0).to_string(), "1235");
        assert_eq!(round_to_minor(d("7"), 3).to_string(), "7.000");
        assert_eq!(round_to_minor(d("0.004"), 2).to_string(), "0.00");
    }

    #[test]
    fn display_groups_thousands() {
        assert_eq!(display(d("1333.91"), 2), "1,333.91");
        assert_eq!(display(d("-1234567.5"), 2), "-1,234,567.50");
        assert_eq!(display(d("150000"), 0), "150,000");
        assert_eq!(display(d("999"), 0), "999");
        assert_eq!(display(d("0"), 2), "0.00");
        assert_eq!(display(d("-0.00"), 2), "0.00");
        assert_eq!(display(d("12.345"), 3), "12.345");
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        /// Any amount a CUR could hold: up to 10^18 with up to 10 decimals, either sign.
        fn amount() -> impl Strategy<Value = Decimal> {
            (
                -1_000_000_000_000_000_000i128..1_000_000_000_000_000_000i128,
                0u32..=10,
            )
                .prop_map(|(m, scale)| Decimal::from_i128_with_scale(m, scale))
        }

        proptest! {
            #[test]
            fn rounding_is_within_half_a_minor_unit(x in amount(), units in 0u32..=3) {
                let r = round_to_minor(x, units);
                prop_assert_eq!(r.scale(), units);
                prop_assert!((r - x).abs() <= Decimal::new(5, units + 1));
            }

            #[test]
            fn rounding_is_symmetric_and_idempotent(x in amount(), units in 0u32..=3) {
                let r = round_to_minor(x, units);
                prop_assert_eq!(round_to_minor(-x, units), -r);
                prop_assert_eq!(round_to_minor(r, units), r);
            }

            #[test]
            fn display_reads_back_as_the_amount(x in amount(), units in 0u32..=3) {
                let r = round_to_minor(x, units);
                let shown = display(r, units);
                let digits: String = shown.chars().filter(|c| *c != ',').collect();
                prop_assert_eq!(Decimal::from_str_exact(&digits).unwrap(), r);
                let decimals = shown.split_once('.').map_or(0, |(_, f)| f.len());
                prop_assert_eq!(decimals as u32, units);
            }
        }
    }
}
