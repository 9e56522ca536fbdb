//! Invoices: one per billing group and period, built from the period's pro forma
//! accounting and custom line items (already in memory, no extra scan), converted from the
//! group's bill currency (what AWS bills its payers in: USD, CNY, INR) to its invoice currency
//! and rounded once per line.
//!
//! Lines are per charge kind and service. Each line is `round(bill currency amount × FX rate)`
//! to the invoice currency's minor unit; the subtotal is the sum of the rounded lines, each tax is the rounded
//! percentage of the subtotal, and the total is subtotal plus taxes, so the printed numbers
//! always add up.

pub mod render;
pub mod services;
pub mod table;

use std::collections::BTreeMap;

use chrono::{DateTime, Days, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize, Serializer};

use crate::config::{BillingGroup, Config, Party, TaxProfile};
use crate::error::{Error, Result};
use crate::money;
use crate::period::Period;
use crate::price::AccountRow;
use crate::price::currency::BillCurrencies;
use crate::price::custom::{self, CustomCharge};
pub use crate::price::line_items::ChargeKind;

impl ChargeKind {
    /// The section heading on the printed invoice.
    pub fn label(self) -> &'static str {
        match self {
            ChargeKind::Usage => "Usage",
            ChargeKind::Fees => "Fees",
            ChargeKind::Discounts => "Discounts",
            ChargeKind::Credits => "Credits",
            ChargeKind::Refunds => "Refunds",
            ChargeKind::CustomLineItems => "Services",
            ChargeKind::AwsTax => "AWS tax",
        }
    }
}

/// One charge before conversion: what it is and its pro forma amount in the bill currency.
#[derive(Debug, Clone, PartialEq)]
pub struct Charge {
    pub kind: ChargeKind,
    /// The product code (`CustomLineItem` for custom line items).
    pub service: String,
    pub service_name: String,
    pub description: String,
    pub amount: Decimal,
}

/// One invoice line, in the invoice currency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvoiceLine {
    pub description: String,
    /// The AWS product code; `CustomLineItem` for custom line items.
    pub service: String,
    pub service_name: String,
    pub kind: ChargeKind,
    /// The pro forma amount in the invoice's `bill_currency`, exact.
    #[serde(serialize_with = "normalized")]
    pub bill_amount: Decimal,
    /// `round(bill_amount × fx_rate)` to the invoice currency's minor unit.
    pub amount: Decimal,
}

/// One tax of the group's tax profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaxLine {
    pub label: String,
    #[serde(serialize_with = "normalized")]
    pub percent: Decimal,
    pub reverse_charge: bool,
    /// The legal note printed with a reverse-charge line.
    pub note: Option<String>,
    pub amount: Decimal,
}

/// Lines, subtotal, taxes and total in the invoice currency: what [`price`] computes.
#[derive(Debug, Clone, PartialEq)]
pub struct Amounts {
    pub lines: Vec<InvoiceLine>,
    pub subtotal: Decimal,
    pub taxes: Vec<TaxLine>,
    pub total: Decimal,
}

/// An invoice or a credit note.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::EnumString,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum DocumentKind {
    Invoice,
    /// Cancels an issued invoice, line by line (SPEC §6.2).
    CreditNote,
}

/// A draft may still change (its period is open); an issued document never does.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::EnumString,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Status {
    Draft,
    Issued,
}

impl DocumentKind {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl Status {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A customer document (the JSON written to `invoices/`): an invoice, a replacement invoice or
/// a credit note.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invoice {
    /// `<prefix>-<YYYYMM>-<group>` for the first issue, the same on every re-run of the period;
    /// `…-CN<k>` for the k-th credit note, `…-R<k+1>` for the replacement issued with it.
    pub number: String,
    pub kind: DocumentKind,
    pub status: Status,
    /// 1 for the first invoice, k + 1 for the replacement issued with the k-th credit note; a
    /// credit note has the revision of the invoice it cancels.
    pub revision: u32,
    /// A replacement invoice: the number of the invoice it replaces.
    pub replaces: Option<String>,
    /// A credit note: the number of the invoice it cancels.
    pub cancels: Option<String>,
    /// When it was issued (`None` while a draft).
    pub issued_at: Option<DateTime<Utc>>,
    pub billing_group: String,
    pub display_name: String,
    pub billing_period: Period,
    #[serde(serialize_with = "iso_date")]
    pub period_start: NaiveDate,
    /// The last day of the period (inclusive).
    #[serde(serialize_with = "iso_date")]
    pub period_end: NaiveDate,
    /// The first day after the period.
    #[serde(serialize_with = "iso_date")]
    pub issue_date: NaiveDate,
    #[serde(serialize_with = "iso_date")]
    pub due_date: NaiveDate,
    pub payment_terms_days: u32,
    /// The invoice currency: every amount but the lines' `bill_amount`.
    pub currency: String,
    /// What AWS bills the group's payers in (their `line_item_currency_code`): the currency
    /// of pro forma and of the lines' `bill_amount`.
    pub bill_currency: String,
    /// 1 `bill_currency` = `fx_rate` `currency` for the period (1 when they are the same).
    pub fx_rate: Decimal,
    pub issuer: Option<Party>,
    pub bill_to: Party,
    pub lines: Vec<InvoiceLine>,
    pub subtotal: Decimal,
    pub taxes: Vec<TaxLine>,
    pub total: Decimal,
}

impl Invoice {
    /// Decimal places of the invoice currency.
    pub fn minor_units(&self) -> u32 {
        // Built only in a currency whose minor unit is known (`build`).
        money::minor_units(&self.currency).unwrap_or(2)
    }

    /// This draft, issued at `at`: final from then on.
    pub fn issued(mut self, at: DateTime<Utc>) -> Invoice {
        self.status = Status::Issued;
        self.issued_at = Some(at);
        self
    }

    /// Whether `other` charges the same as this invoice: the same lines, taxes and totals in
    /// the same currency and rate, to the same party from the same issuer. Numbers, dates,
    /// revisions and status are not charges.
    pub fn charges_the_same(&self, other: &Invoice) -> bool {
        fn charges(i: &Invoice) -> impl PartialEq + '_ {
            (
                (&i.billing_group, &i.display_name, i.billing_period),
                (&i.currency, &i.bill_currency, i.fx_rate),
                (&i.issuer, &i.bill_to, i.payment_terms_days),
                (&i.lines, i.subtotal, &i.taxes, i.total),
            )
        }
        charges(self) == charges(other)
    }

    /// The credit note `number` that cancels this issued invoice, issued at `at`: every line
    /// and tax negated, so that the two add up to zero line by line.
    pub fn credit_note(&self, number: String, at: DateTime<Utc>) -> Invoice {
        let mut note = self.clone().reissued(number, at);
        note.kind = DocumentKind::CreditNote;
        note.revision = self.revision;
        note.replaces = None;
        note.cancels = Some(self.number.clone());
        for line in &mut note.lines {
            line.bill_amount = -line.bill_amount;
            line.amount = -line.amount;
        }
        for tax in &mut note.taxes {
            tax.amount = -tax.amount;
        }
        note.subtotal = -note.subtotal;
        note.total = -note.total;
        note
    }

    /// This draft as the invoice `number` that replaces the issued invoice `replaced`, issued
    /// at `at` with the next revision.
    pub fn replacement(self, number: String, replaced: &Invoice, at: DateTime<Utc>) -> Invoice {
        let mut invoice = self.reissued(number, at);
        invoice.revision = replaced.revision + 1;
        invoice.replaces = Some(replaced.number.clone());
        invoice
    }

    /// Issued at `at` under `number`, dated the day it is issued (a correction comes after
    /// the first issue date, which stays the earliest one).
    fn reissued(mut self, number: String, at: DateTime<Utc>) -> Invoice {
        self.number = number;
        self.status = Status::Issued;
        self.issued_at = Some(at);
        self.issue_date = self.issue_date.max(at.date_naive());
        self.due_date = self
            .issue_date
            .checked_add_days(Days::new(self.payment_terms_days.into()))
            .expect("payment terms are at most a year");
        self
    }
}

/// The note printed with a reverse-charge tax line.
pub fn reverse_charge_note(label: &str) -> String {
    format!(
        "Reverse charge: no {label} is charged on this invoice; the customer accounts for {label} \
         under the reverse-charge mechanism."
    )
}

/// The invoice of every configured group for `period`, in config order: a group without
/// charges gets an invoice of zero.
pub fn build_all(
    config: &Config,
    period: Period,
    currencies: &BillCurrencies,
    accounting: &[AccountRow],
    charges: &[CustomCharge],
) -> Result<Vec<Invoice>> {
    config
        .groups
        .iter()
        .map(|g| {
            build(
                config,
                period,
                currencies.of(period, g),
                g,
                accounting,
                charges,
            )
        })
        .collect()
}

/// The invoice of `group` for `period`, billed in `bill_currency`.
pub fn build(
    config: &Config,
    period: Period,
    bill_currency: &str,
    group: &BillingGroup,
    accounting: &[AccountRow],
    charges: &[CustomCharge],
) -> Result<Invoice> {
    let currency = group.invoice_currency(bill_currency);
    let Some(fx_rate) = config.fx_rate(period, bill_currency, currency) else {
        // `run` checks FX coverage before writing anything; this is the same message.
        return Err(config
            .check_fx(&[period], |_, _| bill_currency.to_string())
            .expect_err("a missing FX rate is a configuration problem")
            .into());
    };
    let tax = group
        .tax_profile
        .as_deref()
        .and_then(|t| config.tax_profile(t));
    let amounts = price(
        &group_charges(group, accounting, charges)?,
        fx_rate,
        currency_units(currency)?,
        tax,
    )?;
    let issue_date = period.end_exclusive();
    let terms = config.invoice.payment_terms_days;
    Ok(Invoice {
        number: format!(
            "{}-{}-{}",
            config.invoice.number_prefix,
            period.compact(),
            group.name
        ),
        kind: DocumentKind::Invoice,
        status: Status::Draft,
        revision: 1,
        replaces: None,
        cancels: None,
        issued_at: None,
        billing_group: group.name.clone(),
        display_name: group.display_name.clone(),
        billing_period: period,
        period_start: period.first_day(),
        period_end: issue_date.pred_opt().expect("a date after a period's end"),
        issue_date,
        due_date: issue_date
            .checked_add_days(Days::new(terms.into()))
            .expect("payment terms are at most a year"),
        payment_terms_days: terms,
        currency: currency.to_string(),
        bill_currency: bill_currency.to_string(),
        fx_rate,
        issuer: config.invoice.issuer.clone().or_else(|| {
            config.transfer.as_ref().and_then(|t| {
                t.name.as_ref().map(|name| Party {
                    name: name.clone(),
                    address: Vec::new(),
                    tax_id: None,
                })
            })
        }),
        bill_to: group.bill_to.clone().unwrap_or_else(|| Party {
            name: group.display_name.clone(),
            address: Vec::new(),
            tax_id: None,
        }),
        lines: amounts.lines,
        subtotal: amounts.subtotal,
        taxes: amounts.taxes,
        total: amounts.total,
    })
}

/// The group's charges in its bill currency: pro forma accounting rows (re-rated or passed) per kind and
/// service, then one charge per custom line item. Amounts of exactly zero are left out.
pub fn group_charges(
    group: &BillingGroup,
    accounting: &[AccountRow],
    charges: &[CustomCharge],
) -> Result<Vec<Charge>> {
    let mut per_service: BTreeMap<(ChargeKind, String), Decimal> = BTreeMap::new();
    let mut product_names: BTreeMap<&str, &str> = BTreeMap::new();
    for r in accounting
        .iter()
        .filter(|r| r.billing_group == group.name && r.treatment.in_proforma())
    {
        // The SQL puts only known types in pro forma.
        let kind = r
            .line_item_type()
            .ok_or_else(|| Error::Internal {
                what: format!("line item type {:?} in pro forma", r.line_item_type),
            })?
            .invoice_kind;
        let service = r.product_code.clone().unwrap_or_default();
        if let (Some(code), Some(name)) = (&r.product_code, &r.product_name) {
            product_names.entry(code).or_insert(name);
        }
        *per_service.entry((kind, service)).or_default() += r.proforma_cost;
    }
    let mut out: Vec<Charge> = per_service
        .into_iter()
        .filter(|(_, amount)| !amount.is_zero())
        .map(|((kind, service), amount)| {
            let name = service_name(&service, product_names.get(service.as_str()).copied());
            let description = match kind {
                ChargeKind::Usage => name.to_string(),
                ChargeKind::AwsTax => format!("{name} – AWS tax"),
                _ => format!("{name} – {}", kind.label().to_lowercase()),
            };
            Charge {
                kind,
                service_name: name,
                service,
                description,
                amount,
            }
        })
        .collect();
    // Readable order within a kind: by service name, not by product code.
    out.sort_by_cached_key(|c| (c.kind, c.service_name.to_lowercase()));
    let custom_at = out
        .iter()
        .position(|c| c.kind > ChargeKind::CustomLineItems)
        .unwrap_or(out.len());
    let custom_lines = charges
        .iter()
        .filter(|c| c.billing_group == group.name && !c.amount.is_zero())
        .map(|c| Charge {
            kind: ChargeKind::CustomLineItems,
            service: custom::PRODUCT_CODE.to_string(),
            service_name: services::name(custom::PRODUCT_CODE).to_string(),
            description: c.description.clone(),
            amount: c.amount,
        });
    out.splice(custom_at..custom_at, custom_lines);
    Ok(out)
}

/// Converts and rounds: each line once, the subtotal as their sum, each tax once on the
/// subtotal, the total as subtotal plus taxes.
pub fn price(
    charges: &[Charge],
    fx_rate: Decimal,
    units: u32,
    tax: Option<&TaxProfile>,
) -> Result<Amounts> {
    let overflow = |what: Decimal| Error::AmountOverflow(money::Overflow(what.to_string()));
    let mut lines = Vec::with_capacity(charges.len());
    let mut subtotal = money::round_to_minor(Decimal::ZERO, units);
    for c in charges {
        let converted = c
            .amount
            .checked_mul(fx_rate)
            .ok_or_else(|| overflow(c.amount))?;
        let amount = money::round_to_minor(converted, units);
        subtotal = subtotal
            .checked_add(amount)
            .ok_or_else(|| overflow(amount))?;
        lines.push(InvoiceLine {
            description: c.description.clone(),
            service: c.service.clone(),
            service_name: c.service_name.clone(),
            kind: c.kind,
            bill_amount: c.amount,
            amount,
        });
    }
    let taxes: Vec<TaxLine> = tax
        .map(|t| {
            let (percent, note) = if t.reverse_charge {
                (Decimal::ZERO, Some(reverse_charge_note(&t.label)))
            } else {
                (t.percent, None)
            };
            let raw = subtotal
                .checked_mul(percent)
                .ok_or_else(|| overflow(subtotal))?
                / Decimal::ONE_HUNDRED;
            Ok::<_, Error>(TaxLine {
                label: t.label.clone(),
                percent,
                reverse_charge: t.reverse_charge,
                note,
                amount: money::round_to_minor(raw, units),
            })
        })
        .transpose()?
        .into_iter()
        .collect();
    let mut total = subtotal;
    for t in &taxes {
        total = total
            .checked_add(t.amount)
            .ok_or_else(|| overflow(t.amount))?;
    }
    Ok(Amounts {
        lines,
        subtotal,
        taxes,
        total,
    })
}

/// Decimal places of an invoice currency: validated in the config, or a bill currency checked
/// by `price::currency`.
fn currency_units(currency: &str) -> Result<u32> {
    money::minor_units(currency).ok_or_else(|| Error::Internal {
        what: format!("invoicing in {currency:?}, whose minor unit is unknown"),
    })
}

/// Our readable name of an AWS code, else the product name in the data (Marketplace), else
/// the code.
fn service_name(code: &str, product_name: Option<&str>) -> String {
    if code.is_empty() {
        return "Other charges".to_string();
    }
    match (services::name(code), product_name) {
        (known, _) if known != code => known.to_string(),
        (_, Some(name)) if !name.trim().is_empty() => name.to_string(),
        _ => code.to_string(),
    }
}

fn iso_date<S: Serializer>(d: &NaiveDate, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.collect_str(&d.format("%Y-%m-%d"))
}

/// A decimal without trailing zeros (`23`, `0.921`), as a string.
fn normalized<S: Serializer>(d: &Decimal, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.collect_str(&d.normalize())
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn usage(service: &str, usd: &str) -> Charge {
        Charge {
            kind: ChargeKind::Usage,
            service: service.into(),
            service_name: service.into(),
            description: service.into(),
            amount: d(usd),
        }
    }

    fn vat(percent: &str) -> TaxProfile {
        TaxProfile {
            name: "vat".into(),
            label: "VAT".into(),
            percent: d(percent),
            reverse_charge: false,
        }
    }

    /// Worked example E6, to the cent.
    #[test]
    fn e6_eur_at_0_9210_with_23_percent_vat() {
        let charges = [
            usage("AmazonEC2", "950.00"),
            usage("AmazonS3", "180.00"),
            usage("AmazonCloudWatch", "47.50"),
        ];
        let a = price(&charges, d("0.9210"), 2, Some(&vat("23"))).unwrap();
        let lines: Vec<String> = a.lines.iter().map(|l| l.amount.to_string()).collect();
        assert_eq!(lines, ["874.95", "165.78", "43.75"]);
        assert_eq!(a.subtotal.to_string(), "1084.48");
        assert_eq!(a.taxes.len(), 1);
        assert_eq!(a.taxes[0].amount.to_string(), "249.43");
        assert_eq!(a.total.to_string(), "1333.91");
    }

    #[test]
    fn jpy_has_no_decimals() {
        let charges = [usage("AmazonEC2", "10.004"), usage("AmazonS3", "0.01")];
        let a = price(&charges, d("150.25"), 0, Some(&vat("10"))).unwrap();
        assert_eq!(a.lines[0].amount.to_string(), "1503"); // 1503.101
        assert_eq!(a.lines[1].amount.to_string(), "2"); // 1.5025
        assert_eq!(a.subtotal.to_string(), "1505");
        assert_eq!(a.taxes[0].amount.to_string(), "151"); // 150.5
        assert_eq!(a.total.to_string(), "1656");
    }

    #[test]
    fn reverse_charge_is_zero_percent_with_the_legal_note() {
        let profile = TaxProfile {
            name: "rc".into(),
            label: "VAT".into(),
            percent: Decimal::ZERO,
            reverse_charge: true,
        };
        let a = price(&[usage("AmazonEC2", "100")], d("0.789"), 2, Some(&profile)).unwrap();
        assert_eq!(a.taxes[0].amount.to_string(), "0.00");
        assert_eq!(a.taxes[0].percent, Decimal::ZERO);
        assert!(
            a.taxes[0]
                .note
                .as_deref()
                .unwrap()
                .contains("reverse-charge")
        );
        assert_eq!(a.total.to_string(), "78.90");
    }

    #[test]
    fn no_tax_profile_means_no_tax_lines() {
        let a = price(&[usage("AmazonEC2", "1.005")], Decimal::ONE, 2, None).unwrap();
        assert!(a.taxes.is_empty());
        assert_eq!(a.total.to_string(), "1.01");
        let empty = price(&[], Decimal::ONE, 2, Some(&vat("20"))).unwrap();
        assert_eq!(empty.total.to_string(), "0.00");
    }

    /// A small deterministic PRNG (SplitMix64): the property test needs no extra crate.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Over many generated invoices (any supported currency, FX rates with up to 6 decimals,
    /// amounts with up to 10 decimals and either sign, tax from 0 to 100 % or reverse charge):
    /// every line is its USD amount converted and rounded once, the lines add up to the
    /// subtotal, subtotal and taxes to the total, and every amount has exactly the currency's
    /// minor-unit scale.
    #[test]
    fn lines_always_add_up_to_the_total_property() {
        let currencies: Vec<&str> = money::supported_currencies().collect();
        let mut rng = Rng(0x5eed);
        for case in 0..20_000 {
            let currency = currencies[rng.below(currencies.len() as u64) as usize];
            let units = money::minor_units(currency).unwrap();
            let fx_rate = if currency == "USD" {
                Decimal::ONE
            } else {
                Decimal::new(rng.below(200_000_000) as i64 + 1, rng.below(7) as u32)
            };
            let charges: Vec<Charge> = (0..rng.below(25))
                .map(|i| {
                    let magnitude =
                        [100, 10_000, 1_000_000_000, 100_000_000_000_000][(i % 4) as usize];
                    let mut usd = Decimal::new(rng.below(magnitude) as i64, rng.below(11) as u32);
                    if rng.below(5) == 0 {
                        usd.set_sign_negative(true);
                    }
                    usage("AmazonEC2", &usd.to_string())
                })
                .collect();
            let tax = match rng.below(4) {
                0 => None,
                1 => Some(TaxProfile {
                    name: "rc".into(),
                    label: "VAT".into(),
                    percent: Decimal::ZERO,
                    reverse_charge: true,
                }),
                _ => Some(vat(&Decimal::new(rng.below(100_001) as i64, 3).to_string())),
            };
            let a = price(&charges, fx_rate, units, tax.as_ref()).unwrap();
            let ctx = || format!("case {case}: {currency} at {fx_rate}, {charges:?}, {tax:?}");
            assert_eq!(a.lines.len(), charges.len(), "{}", ctx());
            for (line, c) in a.lines.iter().zip(&charges) {
                let exact = c.amount * fx_rate;
                assert_eq!(line.amount.scale(), units, "{}", ctx());
                // Rounded once, half away from zero: within half a minor unit of the exact
                // amount, and on the far side of a tie.
                let diff = (line.amount - exact).abs();
                let half = Decimal::new(5, units + 1);
                assert!(diff <= half, "{}: line {line:?}", ctx());
                if diff == half {
                    assert!(line.amount.abs() > exact.abs(), "{}", ctx());
                }
            }
            let sum: Decimal = a.lines.iter().map(|l| l.amount).sum();
            assert_eq!(sum, a.subtotal, "{}", ctx());
            assert_eq!(a.subtotal.scale(), units, "{}", ctx());
            let taxes: Decimal = a.taxes.iter().map(|t| t.amount).sum();
            assert_eq!(a.subtotal + taxes, a.total, "{}", ctx());
            assert_eq!(a.total.scale(), units, "{}", ctx());
            for t in &a.taxes {
                assert_eq!(t.amount.scale(), units, "{}", ctx());
                let exact = a.subtotal * t.percent / Decimal::ONE_HUNDRED;
                assert!(
                    (t.amount - exact).abs() <= Decimal::new(5, units + 1),
                    "{}",
                    ctx()
                );
            }
        }
    }

    fn row(group: &str, ty: &str, code: &str, treat: &str, proforma: &str) -> AccountRow {
        AccountRow {
            billing_group: group.into(),
            line_item_type: ty.into(),
            product_code: Some(code.into()),
            charge_class: crate::price::line_items::get(ty).map(|t| t.charge_class),
            treatment: treat.parse().unwrap(),
            unassigned_account: None,
            defect: None,
            currency: "USD".into(),
            rows: 1,
            billable_cost: d("999.99"),
            proforma_cost: d(proforma),
            product_name: None,
        }
    }

    #[test]
    fn charges_per_kind_and_service_with_custom_items_and_no_dropped_lines() {
        let config = crate::config::testing::valid(crate::config::testing::BASE);
        let group = &config.groups[0];
        let accounting = vec![
            row("acme", "Usage", "AmazonS3", "rerate", "10"),
            row("acme", "Usage", "AmazonEC2", "rerate", "100"),
            row("acme", "SavingsPlanCoveredUsage", "AmazonEC2", "pass", "5"),
            row("acme", "SavingsPlanNegation", "AmazonEC2", "pass", "-5"),
            row(
                "acme",
                "SavingsPlanRecurringFee",
                "ComputeSavingsPlans",
                "pass",
                "7",
            ),
            row("acme", "Credit", "AWSLambda", "pass", "-3"),
            row("acme", "Refund", "AWSLambda", "pass", "-1"),
            row("acme", "BundledDiscount", "AWSDataTransfer", "pass", "-2"),
            row("acme", "Tax", "AmazonS3", "pass", "4"),
            row("acme", "EdpDiscount", "AmazonEC2", "drop", "0"),
            row("acme", "Usage", "AmazonRDS", "rerate", "0"),
            row("other", "Usage", "AmazonEC2", "rerate", "1000"),
            AccountRow {
                product_name: Some("Datadog Pro".into()),
                ..row("acme", "Fee", "9s2k4hd7rw3qz0mxv5b8ny1tj", "rerate", "20")
            },
        ];
        let custom = vec![CustomCharge {
            name: "fee".into(),
            billing_group: "acme".into(),
            account_id: "111111111111".into(),
            line_item_type: "Fee",
            description: "Managed services".into(),
            amount: d("500"),
            currency: "USD".into(),
        }];
        let charges = group_charges(group, &accounting, &custom).unwrap();
        let got: Vec<(&str, &str, String)> = charges
            .iter()
            .map(|c| {
                (
                    c.kind.as_str(),
                    c.description.as_str(),
                    c.amount.to_string(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "usage",
                    "Amazon Elastic Compute Cloud (EC2)",
                    "100".to_string()
                ),
                ("usage", "Amazon Simple Storage Service (S3)", "10".into()),
                ("fees", "Compute Savings Plans – fees", "7".into()),
                ("fees", "Datadog Pro – fees", "20".into()),
                ("discounts", "AWS Data Transfer – discounts", "-2".into()),
                ("credits", "AWS Lambda – credits", "-3".into()),
                ("refunds", "AWS Lambda – refunds", "-1".into()),
                ("custom_line_items", "Managed services", "500".into()),
                (
                    "aws_tax",
                    "Amazon Simple Storage Service (S3) – AWS tax",
                    "4".into()
                ),
            ]
        );
        let invoice = build(
            &config,
            "2025-11".parse().unwrap(),
            "USD",
            group,
            &accounting,
            &custom,
        )
        .unwrap();
        assert_eq!(invoice.number, "INV-202511-acme");
        assert_eq!(invoice.issue_date.to_string(), "2025-12-01");
        assert_eq!(invoice.due_date.to_string(), "2025-12-31");
        assert_eq!(invoice.period_end.to_string(), "2025-11-30");
        assert_eq!(invoice.total.to_string(), "635.00");
        assert_eq!(invoice.bill_to.name, "acme");
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        fn charge(amount: Decimal) -> Charge {
            Charge {
                kind: ChargeKind::Usage,
                service: "AmazonEC2".into(),
                service_name: "Amazon EC2".into(),
                description: "usage".into(),
                amount,
            }
        }

        fn amounts() -> impl Strategy<Value = Vec<Decimal>> {
            prop::collection::vec(
                (
                    -10_000_000_000_000_000i128..10_000_000_000_000_000i128,
                    0u32..=10,
                )
                    .prop_map(|(m, s)| Decimal::from_i128_with_scale(m, s)),
                0..40,
            )
        }

        proptest! {
            /// Lines always add up: subtotal = Σ rounded lines, tax = round(subtotal × p %),
            /// total = subtotal + taxes, every amount carrying the currency's decimals.
            #[test]
            fn invoice_lines_add_up_to_the_total(
                usd in amounts(),
                fx_millionths in 1i64..100_000_000,
                units in 0u32..=3,
                percent_hundredths in 0i64..=10_000,
                reverse_charge in any::<bool>(),
            ) {
                let fx = Decimal::new(fx_millionths, 6);
                let tax = TaxProfile {
                    name: "t".into(),
                    label: "VAT".into(),
                    percent: if reverse_charge { Decimal::ZERO } else { Decimal::new(percent_hundredths, 2) },
                    reverse_charge,
                };
                let charges: Vec<Charge> = usd.iter().copied().map(charge).collect();
                let a = price(&charges, fx, units, Some(&tax)).unwrap();
                let sum: Decimal = a.lines.iter().map(|l| l.amount).sum();
                prop_assert_eq!(a.subtotal, sum);
                for (line, usd) in a.lines.iter().zip(&usd) {
                    prop_assert_eq!(line.amount, money::round_to_minor(*usd * fx, units));
                    prop_assert_eq!(line.amount.scale(), units);
                }
                let expected_tax = money::round_to_minor(a.subtotal * tax.percent / Decimal::ONE_HUNDRED, units);
                prop_assert_eq!(a.taxes[0].amount, expected_tax);
                if reverse_charge {
                    prop_assert!(a.taxes[0].amount.is_zero());
                }
                prop_assert_eq!(a.total, a.subtotal + a.taxes[0].amount);
                prop_assert_eq!(a.total.scale(), units);
            }
        }
    }
}
