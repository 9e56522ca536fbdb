//! Bill currencies: AWS bills each payer in one currency (`line_item_currency_code`: USD; CNY
//! for AWS China, INR for AWS India), and a billing group is billed in its payers' currency.
//! Read from the selected periods' data before anything is written (one narrow scan, counted
//! per account, payer and currency before the few results are assigned to groups), so a payer
//! or a group whose rows mix currencies stops the run with nothing written.

use std::collections::{BTreeMap, BTreeSet};

use arrow::array::AsArray;
use arrow::datatypes::{Int64Type, TimestampMicrosecondType};
use chrono::{DateTime, Datelike};
use datafusion::prelude::{DataFrame, SessionContext, col, lit};

use crate::config::{BillingGroup, Config, UNASSIGNED, USD};
use crate::error::{Error, Result};
use crate::ingest::Input;
use crate::period::Period;
use crate::{money, sql};

/// The bill currency of every payer and configured group with rows in the selected periods.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BillCurrencies {
    payers: BTreeMap<(Period, String), String>,
    groups: BTreeMap<(Period, String), String>,
}

impl BillCurrencies {
    /// The currency AWS bills `group` in for `period`: its rows' currency; for a period in
    /// which it has no rows, its first organization's with rows, else USD, in which
    /// AWS bills everywhere but China and India.
    pub fn of(&self, period: Period, group: &BillingGroup) -> &str {
        if let Some(c) = self.groups.get(&(period, group.name.clone())) {
            return c;
        }
        let payer = group
            .members
            .payers
            .iter()
            .find_map(|p| self.payers.get(&(period, p.clone())));
        // A currency rerate cannot invoice from only matters for a group with rows (refused).
        payer
            .filter(|c| money::minor_units(c).is_some())
            .map_or(USD, String::as_str)
    }

    /// From the rows of `sql/bill_currencies.sql`, checking that every payer, and every
    /// configured group, has one currency.
    fn check(rows: &[CurrencyRow], config: &Config) -> std::result::Result<Self, Mixed> {
        let mut payers: BTreeMap<(Period, &str), BTreeMap<&str, u64>> = BTreeMap::new();
        let mut groups: BTreeMap<(Period, &str), BTreeMap<&str, BTreeSet<&str>>> = BTreeMap::new();
        for r in rows {
            *payers
                .entry((r.period, r.payer.as_str()))
                .or_default()
                .entry(r.currency.as_str())
                .or_default() += r.rows;
            if r.billing_group != UNASSIGNED {
                groups
                    .entry((r.period, r.billing_group.as_str()))
                    .or_default()
                    .entry(r.currency.as_str())
                    .or_default()
                    .insert(r.payer.as_str());
            }
        }
        let mut out = BillCurrencies::default();
        for ((period, payer), currencies) in &payers {
            if currencies.len() > 1 {
                // The rows to point at: the currency with the fewest rows, the odd ones out.
                let (odd, _) = currencies
                    .iter()
                    .min_by_key(|(c, n)| (**n, std::cmp::Reverse(**c)))
                    .expect("two currencies");
                return Err(Mixed::Payer {
                    period: *period,
                    payer: payer.to_string(),
                    currency: odd.to_string(),
                    currencies: currencies
                        .iter()
                        .map(|(c, n)| format!("{c} in {n} row{}", if *n == 1 { "" } else { "s" }))
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            let (currency, _) = currencies.first_key_value().expect("one currency");
            out.payers
                .insert((*period, payer.to_string()), currency.to_string());
        }
        for ((period, group), currencies) in &groups {
            if currencies.len() > 1 {
                return Err(Mixed::Group {
                    period: *period,
                    group: group.to_string(),
                    currencies: currencies
                        .iter()
                        .map(|(c, payers)| {
                            let payers: Vec<&str> = payers.iter().copied().collect();
                            format!("{c} (payer {})", payers.join(", "))
                        })
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            let (currency, payers) = currencies.first_key_value().expect("one currency");
            if money::minor_units(currency).is_none() && config.group(group).is_some() {
                return Err(Mixed::Unsupported {
                    period: *period,
                    group: group.to_string(),
                    payer: payers.first().expect("a payer").to_string(),
                    currency: currency.to_string(),
                });
            }
            out.groups
                .insert((*period, group.to_string()), currency.to_string());
        }
        Ok(out)
    }
}

/// One row of `sql/bill_currencies.sql`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CurrencyRow {
    period: Period,
    payer: String,
    billing_group: String,
    currency: String,
    rows: u64,
}

/// What [`BillCurrencies::check`] refuses, before the input file is looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Mixed {
    Payer {
        period: Period,
        payer: String,
        currency: String,
        currencies: String,
    },
    Group {
        period: Period,
        group: String,
        currencies: String,
    },
    Unsupported {
        period: Period,
        group: String,
        payer: String,
        currency: String,
    },
}

/// The bill currencies of `periods` of `input`, checked. Registers the views `cur` and
/// `account_groups` over those periods (each period's run registers its own).
pub async fn find(
    ctx: &SessionContext,
    input: &Input,
    periods: &[Period],
    config: &Config,
) -> Result<BillCurrencies> {
    // The selected periods' rows only: files in other periods' folders are not even opened.
    let mut cur = None;
    for &p in periods {
        // Only what the check reads: periods may differ in their other columns.
        let rows = super::matches::with_match_group(config, input.period_table(ctx, p)?)?
            .select_columns(&[
                "bill_billing_period_start_date",
                "line_item_usage_account_id",
                "bill_payer_account_id",
                "line_item_currency_code",
                super::matches::COLUMN,
            ])?;
        cur = Some(match cur {
            None => rows,
            Some(all) => DataFrame::union(all, rows)?,
        });
    }
    let Some(cur) = cur else {
        return Ok(BillCurrencies::default());
    };
    super::replace_view(ctx, "cur", cur)?;
    super::replace_view(ctx, "account_groups", ctx.sql(sql::ACCOUNT_GROUPS).await?)?;
    let rows = match read(ctx).await {
        Ok(rows) => rows,
        Err(e) => return Err(input.blame(ctx, None, e).await),
    };
    match BillCurrencies::check(&rows, config) {
        Ok(found) => Ok(found),
        Err(mixed) => Err(refuse(ctx, input, mixed).await),
    }
}

async fn read(ctx: &SessionContext) -> Result<Vec<CurrencyRow>> {
    let batches = ctx.sql(sql::BILL_CURRENCIES).await?.collect().await?;
    let mut out = Vec::new();
    for b in &batches {
        let text = |i: usize| b.column(i).as_string::<i32>();
        let starts = b.column(0).as_primitive::<TimestampMicrosecondType>();
        let (payers, groups, currencies) = (text(1), text(2), text(3));
        let counts = b.column(4).as_primitive::<Int64Type>();
        for r in 0..b.num_rows() {
            // Every start is a readable period: `Input::periods` checked them all.
            let micros = starts.value(r);
            let period = DateTime::from_timestamp_micros(micros)
                .and_then(|t| Period::new(t.year(), t.month()))
                .ok_or_else(|| Error::Internal {
                    what: format!("sql/bill_currencies.sql gave period start {micros} µs"),
                })?;
            out.push(CurrencyRow {
                period,
                payer: payers.value(r).to_string(),
                billing_group: groups.value(r).to_string(),
                currency: currencies.value(r).to_string(),
                rows: counts.value(r) as u64,
            });
        }
    }
    Ok(out)
}

/// The error for `mixed`, naming the first input file holding the rows it is about.
async fn refuse(ctx: &SessionContext, input: &Input, mixed: Mixed) -> Error {
    match mixed {
        Mixed::Group {
            period,
            group,
            currencies,
        } => Error::GroupCurrencies {
            period,
            group,
            currencies,
        },
        Mixed::Payer {
            period,
            payer,
            currency,
            currencies,
        } => match file_of(ctx, input, period, &payer, &currency).await {
            Ok((file, rows)) => Error::PayerCurrencies {
                file,
                rows,
                period,
                payer,
                currency,
                currencies,
            },
            Err(e) => e,
        },
        Mixed::Unsupported {
            period,
            group,
            payer,
            currency,
        } => match file_of(ctx, input, period, &payer, &currency).await {
            Ok((file, _)) => Error::UnsupportedBillCurrency {
                file,
                period,
                group,
                currency,
                supported: money::supported_currencies().collect::<Vec<_>>().join(", "),
            },
            Err(e) => e,
        },
    }
}

/// The first file holding `payer`'s rows in `currency` in `period`, and how many it holds.
async fn file_of(
    ctx: &SessionContext,
    input: &Input,
    period: Period,
    payer: &str,
    currency: &str,
) -> Result<(String, u64)> {
    let matches = col("bill_payer_account_id")
        .eq(lit(payer))
        .and(col("line_item_currency_code").eq(lit(currency)));
    Ok(input
        .locate(ctx, Some(period), matches)
        .await?
        .unwrap_or_else(|| (input.location.to_string(), 0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::{valid, with};

    fn row(period: &str, payer: &str, group: &str, currency: &str, rows: u64) -> CurrencyRow {
        CurrencyRow {
            period: period.parse().unwrap(),
            payer: payer.into(),
            billing_group: group.into(),
            currency: currency.into(),
            rows,
        }
    }

    fn config() -> Config {
        valid(&with(
            "[[billing-group]]\nname = \"globex\"\naccounts = [\"333333333333\"]\npricing-plan = \"standard\"\n",
        ))
    }

    #[test]
    fn a_group_is_billed_in_its_rows_currency_else_its_payers_else_usd() {
        let c = config();
        let p: Period = "2025-11".parse().unwrap();
        let found = BillCurrencies::check(
            &[
                row("2025-11", "111111111111", "acme", "CNY", 3),
                row("2025-11", "222222222222", "globex", "INR", 1),
                // acme's payer has no rows in acme in 2025-12, but its carved-out account has.
                row("2025-12", "111111111111", "_unassigned", "CNY", 1),
            ],
            &c,
        )
        .unwrap();
        let (acme, globex) = (c.group("acme").unwrap(), c.group("globex").unwrap());
        assert_eq!(found.of(p, acme), "CNY");
        assert_eq!(found.of(p, globex), "INR");
        let dec: Period = "2025-12".parse().unwrap();
        assert_eq!(found.of(dec, acme), "CNY");
        assert_eq!(found.of(dec, globex), USD);
        assert_eq!(BillCurrencies::default().of(p, acme), USD);
    }

    #[test]
    fn a_payer_in_two_currencies_points_at_its_fewest_rows() {
        let err = BillCurrencies::check(
            &[
                row("2025-11", "111111111111", "acme", "USD", 40),
                row("2025-11", "111111111111", "_unassigned", "CNY", 2),
            ],
            &config(),
        )
        .unwrap_err();
        assert_eq!(
            err,
            Mixed::Payer {
                period: "2025-11".parse().unwrap(),
                payer: "111111111111".into(),
                currency: "CNY".into(),
                currencies: "CNY in 2 rows, USD in 40 rows".into(),
            }
        );
    }

    #[test]
    fn a_group_over_payers_in_two_currencies_names_them() {
        let err = BillCurrencies::check(
            &[
                row("2025-11", "111111111111", "globex", "USD", 4),
                row("2025-11", "444444444444", "globex", "CNY", 2),
                row("2025-11", "555555555555", "globex", "CNY", 2),
            ],
            &config(),
        )
        .unwrap_err();
        assert_eq!(
            err,
            Mixed::Group {
                period: "2025-11".parse().unwrap(),
                group: "globex".into(),
                currencies: "CNY (payer 444444444444, 555555555555), USD (payer 111111111111)"
                    .into(),
            }
        );
        // Rows in no group may be in any currency, payer by payer.
        let ok = BillCurrencies::check(
            &[
                row("2025-11", "111111111111", "_unassigned", "USD", 4),
                row("2025-11", "444444444444", "_unassigned", "CNY", 2),
            ],
            &config(),
        );
        assert!(ok.is_ok(), "{ok:?}");
    }

    #[test]
    fn a_group_billed_in_a_currency_without_a_known_minor_unit_is_refused() {
        let err = BillCurrencies::check(
            &[row("2025-11", "111111111111", "acme", "XYZ", 1)],
            &config(),
        )
        .unwrap_err();
        assert!(
            matches!(err, Mixed::Unsupported { ref currency, .. } if currency == "XYZ"),
            "{err:?}"
        );
        // Rows in no group are billable only: nothing is invoiced from them.
        assert!(
            BillCurrencies::check(&[row("2025-11", "9", "_unassigned", "XYZ", 1)], &config())
                .is_ok()
        );
    }
}
