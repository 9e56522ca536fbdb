//! Billing periods (`YYYY-MM`): parsing, ordering and calendar dates.

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, NaiveDate, NaiveTime};

fn midnight_micros(day: NaiveDate) -> i64 {
    day.and_time(NaiveTime::MIN).and_utc().timestamp_micros()
}

/// One calendar month of billing, written `YYYY-MM` everywhere (paths, partitions, config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Period {
    year: i32,
    month: u32,
}

/// A string that is not a `YYYY-MM` period.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a billing period: expected YYYY-MM, e.g. 2025-11")]
pub struct BadPeriod(pub String);

impl Period {
    pub fn new(year: i32, month: u32) -> Option<Self> {
        ((1000..=9999).contains(&year) && (1..=12).contains(&month)).then_some(Self { year, month })
    }

    pub fn year(self) -> i32 {
        self.year
    }

    pub fn month(self) -> u32 {
        self.month
    }

    /// The period containing `date`.
    pub fn of(date: NaiveDate) -> Self {
        Self {
            year: date.year(),
            month: date.month(),
        }
    }

    pub fn first_day(self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.year, self.month, 1).expect("validated period")
    }

    pub fn next(self) -> Self {
        if self.month == 12 {
            Self {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Self {
                year: self.year,
                month: self.month + 1,
            }
        }
    }

    /// First day of the following period (the exclusive end of this one).
    pub fn end_exclusive(self) -> NaiveDate {
        self.next().first_day()
    }

    /// The period's first instant, in UTC microseconds (the engine's timestamps).
    pub fn start_micros(self) -> i64 {
        midnight_micros(self.first_day())
    }

    /// The first instant after the period, in UTC microseconds.
    pub fn end_micros(self) -> i64 {
        midnight_micros(self.end_exclusive())
    }

    /// `YYYYMM`, as used in invoice numbers.
    pub fn compact(self) -> String {
        format!("{:04}{:02}", self.year, self.month)
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl FromStr for Period {
    type Err = BadPeriod;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadPeriod(s.to_string());
        let (y, m) = s.split_once('-').ok_or_else(bad)?;
        if y.len() != 4 || m.len() != 2 || !y.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        Period::new(y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?).ok_or_else(bad)
    }
}

impl serde::Serialize for Period {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Period {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_round_trip() {
        let p: Period = "2025-11".parse().unwrap();
        assert_eq!(p.to_string(), "2025-11");
        assert_eq!(p.next().to_string(), "2025-12");
        assert_eq!(
            "2025-12".parse::<Period>().unwrap().next().to_string(),
            "2026-01"
        );
        assert_eq!(p.compact(), "202511");
        assert_eq!(
            p.end_exclusive(),
            NaiveDate::from_ymd_opt(2025, 12, 1).unwrap()
        );
    }

    #[test]
    fn rejects_malformed_periods() {
        for bad in [
            "2025-13",
            "2025-00",
            "25-11",
            "2025-1",
            "2025/11",
            "",
            "2025-11-01",
            "２０２５-11",
        ] {
            assert!(bad.parse::<Period>().is_err(), "{bad} should be rejected");
        }
    }
}
