//! Fixed-point money: amounts, rates and costs as `i64` in units of 10⁻¹⁰, their rounding,
//! and their conversion to doubles, text and decimals.

use std::io::Write as _;

use rust_decimal::{Decimal, RoundingStrategy};

/// Amounts, rates and costs are integers in units of 10⁻¹⁰, the precision AWS bills in.
pub(crate) const SCALE: i64 = 10_000_000_000;
/// A null fixed-point value.
pub(crate) const NONE: i64 = i64::MIN;

/// `a × b` in fixed point, rounded half away from zero.
pub(crate) fn fixed_mul(a: i64, b: i64) -> i64 {
    round_div(a as i128 * b as i128, SCALE as i128)
}

/// `value × percent / 100`, rounded half away from zero.
pub(crate) fn percent_of(value: i64, percent: i64) -> i64 {
    round_div(value as i128 * percent as i128, 100)
}

pub(crate) fn round_div(n: i128, d: i128) -> i64 {
    let q = (n.abs() + d / 2) / d;
    (if n < 0 { -q } else { q }) as i64
}

/// The nearest double to a fixed-point value. Below 2⁵³ units (900,719 USD) the integer is exact
/// as a double and IEEE division rounds correctly; above, only decimal parsing rounds once.
pub(crate) fn fixed_f64(value: i64) -> f64 {
    if value.unsigned_abs() < 1 << 53 {
        return value as f64 / SCALE as f64;
    }
    let mut text = Vec::new();
    write_fixed(&mut text, value);
    std::str::from_utf8(&text)
        .expect("ascii")
        .parse()
        .expect("a decimal number")
}

pub(crate) fn fixed_opt(value: i64) -> Option<f64> {
    (value != NONE).then(|| fixed_f64(value))
}

/// Parses a decimal literal of the catalog ("0.096") into fixed point.
pub(crate) fn fixed(text: &str) -> i64 {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    assert!(frac.len() <= 10, "{text}: more than 10 decimals");
    let int: i64 = int.parse().expect("catalog literal");
    let frac: i64 = if frac.is_empty() {
        0
    } else {
        frac.parse::<i64>().expect("catalog literal") * 10_i64.pow(10 - frac.len() as u32)
    };
    int * SCALE + frac
}

/// Writes a fixed-point value with exactly 10 decimals, as AWS writes rates: `0.0960000000`.
pub(crate) fn write_fixed(out: &mut Vec<u8>, value: i64) {
    if value < 0 {
        out.push(b'-');
    }
    let abs = value.unsigned_abs();
    let _ = write!(out, "{}.{:010}", abs / SCALE as u64, abs % SCALE as u64);
}

/// A price as AWS prints it in descriptions: `$0.096`, `$0.0000166667`.
pub(crate) fn price_text(rate: i64) -> String {
    let mut digits = Vec::new();
    write_fixed(&mut digits, rate);
    let text = String::from_utf8(digits).expect("ascii");
    let keep = text
        .trim_end_matches('0')
        .len()
        .max(text.find('.').unwrap_or(0) + 4);
    format!("${}", &text[..keep])
}

/// How a double read from a CUR becomes money: a decimal with 10 decimals, half away from zero.
pub(crate) fn cost_decimal(value: f64) -> Decimal {
    Decimal::from_f64_retain(value)
        .expect("generated costs are finite")
        .round_dp_with_strategy(10, RoundingStrategy::MidpointAwayFromZero)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_point_helpers_round_half_away_from_zero() {
        assert_eq!(fixed("0.096"), 960_000_000);
        assert_eq!(fixed_mul(fixed("100"), fixed("0.096")), fixed("9.6"));
        assert_eq!(round_div(-15, 10), -2);
        assert_eq!(round_div(15, 10), 2);
        let mut text = Vec::new();
        write_fixed(&mut text, -fixed("0.0104"));
        assert_eq!(text, b"-0.0104000000");
        assert_eq!(price_text(fixed("0.096")), "$0.096");
        assert_eq!(price_text(fixed("0.0000166667")), "$0.0000166667");
        assert_eq!(price_text(fixed("0.3")), "$0.300");
        assert_eq!(
            cost_decimal(fixed_f64(1_234_567_890_123)),
            Decimal::new(1_234_567_890_123, 10)
        );
        // Beyond 2^53 units the conversion goes through decimal text and stays correctly rounded.
        assert_eq!(fixed_f64(fixed("3905280")), 3_905_280.0);
        assert_eq!(
            fixed_f64(-123_456_789_012_345_678),
            "-12345678.9012345678".parse::<f64>().unwrap()
        );
    }
}
