//! The raw serde model of `billing.toml`: exactly what the file says, before any check.
//!
//! The file is read one section (and one array entry) at a time, so a typo in the first group
//! does not hide the problems in the groups, plans and rules after it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use toml::Spanned;
use toml::de::{DeArray, DeString, DeTable, DeValue, ValueDeserializer};

use super::{CommitmentPolicy, CustomKind, Policy, Report, Stacking};
use crate::period::Period;

/// Top-level keys holding arrays of tables (`[[billing-group]]` …), read entry by entry.
const ARRAY_SECTIONS: [&str; 5] = [
    "billing-group",
    "pricing-plan",
    "pricing-rule",
    "custom-line-item",
    "tax-profile",
];

/// The whole file. Every field is optional here; `validate` decides what is required.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawConfig {
    pub io: Option<RawIo>,
    pub transfer: Option<RawTransfer>,
    pub invoice: Option<RawInvoice>,
    pub storage: Option<RawStorage>,
    pub engine: Option<RawEngine>,
    #[serde(default)]
    pub billing_group: Vec<Spanned<RawGroup>>,
    #[serde(default)]
    pub pricing_plan: Vec<Spanned<RawPlan>>,
    #[serde(default)]
    pub pricing_rule: Vec<Spanned<RawRule>>,
    #[serde(default)]
    pub custom_line_item: Vec<Spanned<RawCustomLineItem>>,
    #[serde(default)]
    pub tax_profile: Vec<Spanned<RawTaxProfile>>,
    /// `[fx."YYYY-MM"]` tables of `CUR = rate` (from USD) and `[fx."YYYY-MM".FROM]` tables of
    /// `CUR = rate` (from another bill currency); keys are checked in `validate`.
    #[serde(default)]
    pub fx: BTreeMap<Spanned<String>, BTreeMap<Spanned<String>, Spanned<RawFx>>>,
}

/// What a key under `[fx."YYYY-MM"]` holds: a rate from USD to the key's currency, or a table of
/// rates from the key's currency (a bill currency other than USD) to each of its keys.
#[derive(Debug)]
pub(super) enum RawFx {
    Rate(Scalar),
    From(BTreeMap<Spanned<String>, Spanned<RawRate>>),
}

/// A rate inside `[fx."YYYY-MM".FROM]`: a number or a decimal string, nothing deeper.
#[derive(Debug)]
pub(super) struct RawRate(pub Scalar);

const RATE: &str = "an FX rate (a decimal string or number, e.g. \"0.92\")";
const RATE_FROM: &str = "an FX rate (a decimal string or number, e.g. \"0.128\") under \
                         [fx.\"YYYY-MM\".<bill currency>]";

impl<'de> Deserialize<'de> for RawFx {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FxVisitor)
    }
}

struct FxVisitor;

impl<'de> Visitor<'de> for FxVisitor {
    type Value = RawFx;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{RATE} from USD, or a table of rates from a bill currency, e.g. \
             [fx.\"2025-11\".CNY] EUR = \"0.128\""
        )
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<RawFx, E> {
        Ok(RawFx::Rate(Scalar::Str(v.to_string())))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawFx, E> {
        Ok(RawFx::Rate(Scalar::Int(v.into())))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawFx, E> {
        Ok(RawFx::Rate(Scalar::Int(v.into())))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<RawFx, E> {
        Ok(RawFx::Rate(Scalar::Int(v)))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<RawFx, E> {
        Ok(RawFx::Rate(Scalar::Float))
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<RawFx, A::Error> {
        let mut rates = BTreeMap::new();
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            let rate = map.next_value::<Spanned<RawRate>>()?;
            rates.insert(key, rate);
        }
        Ok(RawFx::From(rates))
    }
}

impl<'de> Deserialize<'de> for RawRate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor {
            expecting: RATE_FROM,
        })
        .map(RawRate)
    }
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "kebab-case",
    expecting = "an [io] table"
)]
pub(super) struct RawIo {
    pub input: Option<Spanned<String>>,
    pub output: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "kebab-case",
    expecting = "a [transfer] table"
)]
pub(super) struct RawTransfer {
    pub account_id: Spanned<Scalar>,
    pub name: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "kebab-case",
    expecting = "an [invoice] table"
)]
pub(super) struct RawInvoice {
    pub issuer: Option<RawParty>,
    pub number_prefix: Option<Spanned<String>>,
    pub payment_terms_days: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "kebab-case",
    expecting = "a [storage] table"
)]
pub(super) struct RawStorage {
    pub endpoint: Option<Spanned<String>>,
    pub region: Option<Spanned<String>>,
    pub allow_http: Option<bool>,
    pub virtual_hosted_style: Option<bool>,
    pub max_retries: Option<Spanned<i64>>,
    pub retry_timeout_seconds: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "kebab-case",
    expecting = "an [engine] table"
)]
pub(super) struct RawEngine {
    pub memory_limit: Option<Spanned<String>>,
    pub spill_dir: Option<Spanned<String>>,
    pub target_partitions: Option<Spanned<i64>>,
    pub cluster: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "kebab-case",
    expecting = "a party table { name = \"…\", address = [\"…\"], tax-id = \"…\" }"
)]
pub(super) struct RawParty {
    pub name: Spanned<String>,
    #[serde(default)]
    pub address: Vec<String>,
    pub tax_id: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "kebab-case",
    expecting = "a [[billing-group]] table"
)]
pub(super) struct RawGroup {
    pub name: Spanned<String>,
    pub display_name: Option<Spanned<String>>,
    pub payer_account_id: Option<Spanned<Scalar>>,
    pub payer_account_ids: Option<Spanned<Vec<Spanned<Scalar>>>>,
    pub accounts: Option<Spanned<Vec<Spanned<Scalar>>>>,
    #[serde(rename = "match")]
    pub matches: Option<Spanned<Vec<Spanned<RawMatch>>>>,
    pub primary_account_id: Option<Spanned<Scalar>>,
    pub pricing_plan: Spanned<String>,
    pub currency: Option<Spanned<String>>,
    pub tax_profile: Option<Spanned<String>>,
    pub bill_to: Option<RawParty>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "kebab-case",
    expecting = "{ tag = \"…\", value = \"…\" } or { cost-category = \"…\", value = \"…\" }"
)]
pub(super) struct RawMatch {
    pub tag: Option<Spanned<String>>,
    pub cost_category: Option<Spanned<String>>,
    pub value: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "kebab-case",
    expecting = "a [[pricing-plan]] table"
)]
pub(super) struct RawPlan {
    pub name: Spanned<String>,
    #[serde(default)]
    pub rules: Vec<Spanned<String>>,
    pub credits: Option<Policy>,
    pub refunds: Option<Policy>,
    pub private_discounts: Option<Policy>,
    pub aws_tax: Option<Spanned<Policy>>,
    pub support: Option<Policy>,
    pub commitments: Option<CommitmentPolicy>,
    pub stacking: Option<Spanned<Stacking>>,
    #[serde(default)]
    pub credit_exceptions: Vec<Spanned<RawCreditException>>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "kebab-case",
    expecting = "{ description = \"<glob>\", service = \"<product code>\", policy = \"pass\" | \"drop\" }"
)]
pub(super) struct RawCreditException {
    pub description: Spanned<String>,
    pub service: Option<Spanned<String>>,
    pub policy: Policy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum ScopeKind {
    Global,
    Service,
    BillingEntity,
    Sku,
}

impl ScopeKind {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            ScopeKind::Global => "global",
            ScopeKind::Service => "service",
            ScopeKind::BillingEntity => "billing-entity",
            ScopeKind::Sku => "sku",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum AdjustmentKind {
    Discount,
    Markup,
    Tiering,
    FixedRate,
}

impl AdjustmentKind {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            AdjustmentKind::Discount => "discount",
            AdjustmentKind::Markup => "markup",
            AdjustmentKind::Tiering => "tiering",
            AdjustmentKind::FixedRate => "fixed-rate",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "kebab-case",
    expecting = "a [[pricing-rule]] table"
)]
pub(super) struct RawRule {
    pub name: Spanned<String>,
    pub scope: Spanned<ScopeKind>,
    #[serde(rename = "type")]
    pub kind: Spanned<AdjustmentKind>,
    pub service: Option<Spanned<String>>,
    pub billing_entity: Option<Spanned<String>>,
    pub usage_type: Option<Spanned<String>>,
    pub operation: Option<Spanned<String>>,
    pub percent: Option<Spanned<Scalar>>,
    pub rate: Option<Spanned<Scalar>>,
    pub free_tier: Option<Spanned<bool>>,
    pub from: Option<Spanned<Period>>,
    pub until: Option<Spanned<Period>>,
    #[serde(rename = "final")]
    pub last: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "kebab-case",
    expecting = "a [[custom-line-item]] table"
)]
pub(super) struct RawCustomLineItem {
    pub name: Spanned<String>,
    pub billing_group: Spanned<String>,
    pub account_id: Option<Spanned<Scalar>>,
    #[serde(rename = "type")]
    pub kind: CustomKind,
    pub flat: Option<Spanned<Scalar>>,
    pub percent: Option<Spanned<Scalar>>,
    pub base_includes: Option<Spanned<Vec<Spanned<String>>>>,
    pub service: Option<Spanned<RawServiceFilter>>,
    pub exclude_savings_plan_negation: Option<Spanned<bool>>,
    pub from: Spanned<Period>,
    pub until: Option<Spanned<Period>>,
    pub description: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "kebab-case",
    expecting = "{ is = \"ServiceCode\" } or { not = \"ServiceCode\" }"
)]
pub(super) struct RawServiceFilter {
    pub is: Option<Spanned<String>>,
    pub not: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "kebab-case",
    expecting = "a [[tax-profile]] table"
)]
pub(super) struct RawTaxProfile {
    pub name: Spanned<String>,
    pub label: Option<Spanned<String>>,
    pub percent: Option<Spanned<Scalar>>,
    pub reverse_charge: Option<bool>,
}

/// A string or number as written. Numbers are kept apart from strings so that account ids
/// written without quotes get a precise message, and so that decimals never go through `f64`:
/// for a float, `validate` re-reads the literal text at the value's span.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Scalar {
    Str(String),
    Int(i128),
    /// Only a marker that the literal is a TOML float; the value itself is never used.
    Float,
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor {
            expecting: "a string or a number",
        })
    }
}

struct ScalarVisitor {
    expecting: &'static str,
}

impl Visitor<'_> for ScalarVisitor {
    type Value = Scalar;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar::Str(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
        Ok(Scalar::Str(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar::Int(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar::Int(v.into()))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Scalar, E> {
        Ok(Scalar::Int(v))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Scalar, E> {
        Ok(Scalar::Float)
    }
}

impl RawConfig {
    /// Merges a section read on its own. TOML forbids repeating a key, so nothing is overwritten.
    fn absorb(&mut self, part: RawConfig) {
        self.io = self.io.take().or(part.io);
        self.transfer = self.transfer.take().or(part.transfer);
        self.invoice = self.invoice.take().or(part.invoice);
        self.storage = self.storage.take().or(part.storage);
        self.engine = self.engine.take().or(part.engine);
        self.billing_group.extend(part.billing_group);
        self.pricing_plan.extend(part.pricing_plan);
        self.pricing_rule.extend(part.pricing_rule);
        self.custom_line_item.extend(part.custom_line_item);
        self.tax_profile.extend(part.tax_profile);
        self.fx.extend(part.fx);
    }
}

/// The raw model plus what could not be read.
#[derive(Debug, Default)]
pub(super) struct Read {
    pub raw: RawConfig,
    /// `(section, name)` of array entries that failed to deserialize: references to them are
    /// not reported a second time as unknown names.
    pub broken: BTreeSet<(String, String)>,
}

/// Parses the TOML text into the raw model, reporting every syntax and shape problem.
pub(super) fn read(text: &str, report: &mut Report) -> Read {
    let (doc, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        // After a syntax error the recovered document is a guess: checking it would only add
        // confusing follow-up problems, so report the syntax alone.
        for e in errors {
            let span = e.span();
            let mut message = e.message().to_string();
            // Some parser messages ("duplicate key") do not say which text they mean.
            let found = span.clone().and_then(|s| text.get(s));
            if let Some(found) = found.filter(|f| (1..=40).contains(&f.len()) && !f.contains('\n'))
            {
                message.push_str(&format!(" (`{found}`)"));
            }
            report.add(span.map(|s| s.start), "", message);
        }
        return Read::default();
    }
    let mut read = Read::default();
    for (key, value) in doc.into_inner() {
        for piece in split(key, value) {
            match RawConfig::deserialize(ValueDeserializer::from(piece.doc)) {
                Ok(part) => read.raw.absorb(part),
                Err(e) => {
                    let offset = e.span().map_or(piece.offset, |s| s.start);
                    report.add(Some(offset), piece.path, e.message());
                    if let Some(name) = piece.name {
                        read.broken.insert((piece.section, name));
                    }
                }
            }
        }
    }
    read
}

/// A one-key document holding one section, or one entry of an array section.
struct Piece<'i> {
    doc: Spanned<DeValue<'i>>,
    path: String,
    section: String,
    name: Option<String>,
    offset: usize,
}

fn split<'i>(key: Spanned<DeString<'i>>, value: Spanned<DeValue<'i>>) -> Vec<Piece<'i>> {
    let section = key.get_ref().to_string();
    let is_array = matches!(value.get_ref(), DeValue::Array(_));
    if !(is_array && ARRAY_SECTIONS.contains(&section.as_str())) {
        let offset = key.span().start;
        let path = format!("[{section}]");
        return vec![Piece {
            doc: document(key, value),
            path,
            section,
            name: None,
            offset,
        }];
    }
    let DeValue::Array(entries) = value.into_inner() else {
        unreachable!("checked above")
    };
    entries
        .into_iter()
        .enumerate()
        .map(|(i, entry)| {
            let name = entry_name(&entry);
            let path = match &name {
                Some(name) => super::item_path(&section, name),
                None => format!("[[{section}]] #{}", i + 1),
            };
            let offset = entry.span().start;
            let span = entry.span();
            let mut one = DeArray::new();
            one.push(entry);
            let doc = document(key.clone(), Spanned::new(span, DeValue::Array(one)));
            Piece {
                doc,
                path,
                section: section.clone(),
                name,
                offset,
            }
        })
        .collect()
}

/// `{ key = value }` as a document the `RawConfig` deserializer accepts.
fn document<'i>(key: Spanned<DeString<'i>>, value: Spanned<DeValue<'i>>) -> Spanned<DeValue<'i>> {
    let span = value.span();
    let mut table = DeTable::new();
    table.insert(key, value);
    Spanned::new(span, DeValue::Table(table))
}

/// The `name` of an array entry, read before deserializing so that problems can name it.
fn entry_name(entry: &Spanned<DeValue<'_>>) -> Option<String> {
    Some(
        entry
            .get_ref()
            .as_table()?
            .get("name")?
            .get_ref()
            .as_str()?
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    //! Numbers are read exactly. What reading rejects, and how it says so, is in the cases under
    //! `tests/config/` (run by `tests/it/config.rs`).

    use std::str::FromStr;

    use rust_decimal::Decimal;

    use super::super::testing::*;
    use super::super::{Adjustment, CustomAmount};

    fn rule_percent(literal: &str) -> Decimal {
        let text = with(&format!(
            "[[pricing-rule]]\nname = \"r\"\nscope = \"global\"\ntype = \"markup\"\npercent = {literal}\n"
        ));
        match valid(&text).rule("r").unwrap().adjustment {
            Adjustment::Markup(p) => p,
            ref other => panic!("{other:?}"),
        }
    }

    #[test]
    fn float_literals_are_read_exactly_never_through_f64() {
        assert_eq!(rule_percent("7.15"), Decimal::from_str("7.15").unwrap());
        assert_eq!(rule_percent("0.1").to_string(), "0.1");
        assert_eq!(rule_percent("+2.5"), Decimal::from_str("2.5").unwrap());
        assert_eq!(
            rule_percent("1_000.5"),
            Decimal::from_str("1000.5").unwrap()
        );
        assert_eq!(rule_percent("1.5e1"), Decimal::from_str("15").unwrap());
        assert_eq!(rule_percent("25e-1"), Decimal::from_str("2.5").unwrap());
        assert_eq!(
            rule_percent("12.345678"),
            Decimal::from_str("12.345678").unwrap()
        );
    }

    #[test]
    fn decimal_strings_and_integers_are_accepted() {
        assert_eq!(rule_percent("\"7.5\""), Decimal::from_str("7.5").unwrap());
        assert_eq!(rule_percent("20"), Decimal::from(20));
        let c = valid(&with(
            "[[custom-line-item]]\nname = \"f\"\nbilling-group = \"acme\"\ntype = \"fee\"\nflat = 1234.5678\nfrom = \"2025-01\"\n",
        ));
        assert_eq!(
            c.custom_line_items[0].amount,
            CustomAmount::Flat(Decimal::from_str("1234.5678").unwrap())
        );
    }
}
