//! Checks the raw model and builds the validated [`Config`], reporting every problem at once.
//!
//! Each entry is checked on its own and kept only if it had no problem; references between
//! entries are checked against every name the file defines (valid or not), so a broken plan is
//! reported once, where it is defined, and not again by every group that uses it.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use rust_decimal::Decimal;
use toml::Spanned;

use super::raw::{
    AdjustmentKind, RawConfig, RawCustomLineItem, RawEngine, RawFx, RawGroup, RawInvoice, RawIo,
    RawMatch, RawParty, RawPlan, RawRule, RawServiceFilter, RawStorage, RawTaxProfile, RawTransfer,
    Read, Scalar, ScopeKind,
};
use super::{
    Adjustment, BillingGroup, Config, CreditException, CustomAmount, CustomKind, CustomLineItem,
    EngineSettings, FxKey, InvoiceSettings, IoDefaults, Match, MatchOn, Members, Party, Policy,
    PricingPlan, PricingRule, Report, RuleScope, ServiceFilter, Stacking, StorageSettings,
    TaxProfile, Transfer, UNASSIGNED, USD, item_path, line_col,
};
use crate::money::{self, minor_units, supported_currencies};
use crate::period::Period;

pub(super) const GROUP: &str = "billing-group";
pub(super) const PLAN: &str = "pricing-plan";
pub(super) const RULE: &str = "pricing-rule";
pub(super) const ITEM: &str = "custom-line-item";
pub(super) const TAX: &str = "tax-profile";

/// Rule factors `1 ± p/100` then have at most 8 decimal places: exact in Decimal(16, 8).
const MAX_PERCENT_PLACES: u32 = 6;
/// No real price is marked up a hundredfold; a bound keeps every product of a percentage and
/// an amount inside exact decimal arithmetic.
const MAX_PERCENT: Decimal = Decimal::from_parts(10_000, 0, 0, false, 0);
/// Money has the engine's storage scale.
const MAX_MONEY_PLACES: u32 = money::SCALE;

/// Decimal places of a fixed rate: those of a CUR rate.
const MAX_RATE_PLACES: u32 = money::SCALE;
const MAX_GROUP_NAME_LEN: usize = 64;
const MAX_PAYMENT_TERMS_DAYS: i64 = 365;

/// Where a value is in the text (bytes).
type Span = Range<usize>;

/// Builds the plan. With problems in `report`, the result is incomplete and must not be used.
pub(super) fn validate(read: Read, r: &mut Report) -> Config {
    let Read { raw, broken } = read;
    let names = Names::collect(&raw, &broken);
    let tax_profiles = tax_profiles(&raw.tax_profile, r);
    let rules = rules(&raw.pricing_rule, r);
    let plans = plans(&raw.pricing_plan, &rules, &names, r);
    let groups = groups(&raw.billing_group, &raw.pricing_plan, &names, r);
    let custom_line_items = custom_line_items(&raw.custom_line_item, &groups, &names, r);
    let RawConfig {
        io: raw_io,
        transfer,
        invoice,
        storage,
        engine,
        fx: raw_fx,
        ..
    } = raw;
    Config {
        io: raw_io.map(|x| io(&x, r)).unwrap_or_default(),
        transfer: transfer.and_then(|x| self::transfer(&x, r)),
        invoice: invoice.map(|x| self::invoice(&x, r)).unwrap_or_default(),
        storage: storage.map(|x| self::storage(&x, r)).unwrap_or_default(),
        engine: engine.map(|x| self::engine(&x, r)).unwrap_or_default(),
        groups,
        plans,
        rules,
        custom_line_items,
        tax_profiles,
        fx: fx(&raw_fx, r),
        hash: String::new(),
        source_name: String::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// Names and references

/// Every name each array section defines, including entries that failed to read or validate.
struct Names {
    defined: BTreeMap<String, BTreeSet<String>>,
}

impl Names {
    fn collect(raw: &RawConfig, broken: &BTreeSet<(String, String)>) -> Self {
        fn names<'a, T: 'a>(
            entries: &'a [Spanned<T>],
            name: impl Fn(&T) -> &Spanned<String> + 'a,
        ) -> impl Iterator<Item = String> + 'a {
            entries
                .iter()
                .map(move |e| name(e.get_ref()).get_ref().clone())
        }
        let mut defined: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let sections: [(&str, Vec<String>); 5] = [
            (GROUP, names(&raw.billing_group, |x| &x.name).collect()),
            (PLAN, names(&raw.pricing_plan, |x| &x.name).collect()),
            (RULE, names(&raw.pricing_rule, |x| &x.name).collect()),
            (ITEM, names(&raw.custom_line_item, |x| &x.name).collect()),
            (TAX, names(&raw.tax_profile, |x| &x.name).collect()),
        ];
        for (section, list) in sections {
            defined.entry(section.to_string()).or_default().extend(list);
        }
        for (section, name) in broken {
            defined
                .entry(section.clone())
                .or_default()
                .insert(name.clone());
        }
        Self { defined }
    }

    fn defines(&self, section: &str, name: &str) -> bool {
        self.defined
            .get(section)
            .is_some_and(|names| names.contains(name))
    }

    /// Reports a reference to a name the file does not define; true when it is defined.
    fn check(&self, section: &str, name: &Spanned<String>, path: String, r: &mut Report) -> bool {
        if self.defines(section, name.get_ref()) {
            return true;
        }
        r.at(name, path, self.unknown(section, name.get_ref()));
        false
    }

    /// `unknown pricing plan "resellr"; defined pricing plans: reseller`
    fn unknown(&self, section: &str, name: &str) -> String {
        let kind = section.replace('-', " ");
        let defined = self.defined.get(section).filter(|d| !d.is_empty());
        match defined {
            None => format!("unknown {kind} {name:?}: the file defines no [[{section}]]"),
            Some(defined) => {
                const SHOWN: usize = 20;
                let mut list = defined
                    .iter()
                    .take(SHOWN)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ");
                if defined.len() > SHOWN {
                    list.push_str(&format!(" and {} more", defined.len() - SHOWN));
                }
                format!("unknown {kind} {name:?}; defined {kind}s: {list}")
            }
        }
    }
}

/// Names already used in one section, to report duplicates with the line of the first.
#[derive(Default)]
struct Seen(BTreeMap<String, usize>);

impl Seen {
    fn check(&mut self, section: &str, name: &Spanned<String>, r: &mut Report) {
        let path = format!("{} name", item_path(section, name.get_ref()));
        if name.get_ref().trim().is_empty() {
            r.at(name, path, "name must not be empty");
            return;
        }
        match self.0.entry(name.get_ref().clone()) {
            Entry::Vacant(e) => {
                e.insert(name.span().start);
            }
            Entry::Occupied(e) => {
                let (line, _) = line_col(r.text, *e.get());
                let msg = format!(
                    "duplicate name: another [[{section}]] named {:?} is defined on line {line}; \
                     names must be unique",
                    name.get_ref()
                );
                r.at(name, path, msg);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Scalars

/// A non-blank string.
fn text(s: &Spanned<String>, path: String, r: &mut Report) -> Option<String> {
    if s.get_ref().trim().is_empty() {
        r.at(s, path, "must not be empty");
        return None;
    }
    Some(s.get_ref().clone())
}

fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// A 12-digit AWS account id, written as a string.
fn account_id(s: &Spanned<Scalar>, path: String, r: &mut Report) -> Option<String> {
    let msg = match s.get_ref() {
        Scalar::Str(v) if is_account_id(v) => return Some(v.clone()),
        Scalar::Str(v) => {
            format!("{v:?} is not an AWS account id: expected 12 digits, e.g. \"012345678901\"")
        }
        // The number is what the user typed minus leading zeros, so suggest it zero-padded.
        Scalar::Int(n) if (0..=999_999_999_999).contains(n) => format!(
            "account ids must be quoted strings: write \"{n:012}\" (a bare number loses leading \
             zeros)"
        ),
        Scalar::Int(n) => format!("{n} is not an AWS account id: expected 12 digits in quotes"),
        Scalar::Float => "not an AWS account id: expected 12 digits in quotes".to_string(),
    };
    r.at(s, path, msg);
    None
}

/// An exact decimal from a string, an integer, or a float literal re-read from the text.
fn decimal(s: &Spanned<Scalar>, path: String, r: &mut Report) -> Option<Decimal> {
    decimal_at(s.span(), s.get_ref(), path, r)
}

/// [`decimal`] of a scalar written at `span`.
fn decimal_at(span: Span, s: &Scalar, path: String, r: &mut Report) -> Option<Decimal> {
    let parsed = match s {
        Scalar::Str(v) => Decimal::from_str_exact(v.trim())
            .map_err(|_| format!("{v:?} is not a decimal number: write e.g. \"7.5\" or 7.5")),
        Scalar::Int(n) => Decimal::try_from_i128_with_scale(*n, 0)
            .map_err(|_| format!("{n} is too large for a decimal")),
        Scalar::Float => float_literal(r.text.get(span.clone()).unwrap_or_default()),
    };
    parsed
        .map_err(|msg| r.add(Some(span.start), path, msg))
        .ok()
}

/// TOML floats arrive in serde as `f64`; re-reading the literal keeps `7.15` exactly 7.15.
fn float_literal(literal: &str) -> Result<Decimal, String> {
    let digits: String = literal
        .trim()
        .trim_start_matches('+')
        .chars()
        .filter(|&c| c != '_')
        .collect();
    let parsed = match digits.split_once(['e', 'E']) {
        // `from_scientific` parses its mantissa leniently: check first that it is exact.
        Some((mantissa, _)) => {
            Decimal::from_str_exact(mantissa).and_then(|_| Decimal::from_scientific(&digits))
        }
        None => Decimal::from_str_exact(&digits),
    };
    parsed.map_err(|_| {
        format!("{literal} is not a finite decimal number that fits exactly; write e.g. \"7.5\"")
    })
}

fn places(d: Decimal) -> u32 {
    d.normalize().scale()
}

/// A percentage: not negative, at most [`MAX_PERCENT_PLACES`] decimal places.
fn percent(s: &Spanned<Scalar>, path: String, r: &mut Report) -> Option<Decimal> {
    let p = decimal(s, path.clone(), r)?;
    if p < Decimal::ZERO {
        r.at(s, path, format!("percentages cannot be negative (got {p})"));
        return None;
    }
    if p > MAX_PERCENT {
        r.at(
            s,
            path,
            format!("percentages are at most {MAX_PERCENT} (got {p})"),
        );
        return None;
    }
    if places(p) > MAX_PERCENT_PLACES {
        let msg = format!(
            "{p} has {} decimal places; percentages allow at most {MAX_PERCENT_PLACES} (this \
             keeps rule factors exact)",
            places(p)
        );
        r.at(s, path, msg);
        return None;
    }
    Some(p.normalize())
}

fn is_currency(s: &str) -> bool {
    s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase())
}

/// An ISO 4217 code rerate can invoice in (it must know the currency's minor unit to round).
fn currency(s: &Spanned<String>, path: String, r: &mut Report) -> Option<String> {
    let code = s.get_ref();
    if minor_units(code).is_some() {
        return Some(code.clone());
    }
    let msg = if is_currency(code) {
        let supported: Vec<&str> = supported_currencies().collect();
        format!(
            "{code:?} is not a currency rerate can invoice in (its minor unit is unknown); \
             supported: {}",
            supported.join(", ")
        )
    } else {
        format!(
            "{code:?} is not an ISO 4217 currency code: expected 3 upper-case letters, e.g. \"EUR\""
        )
    };
    r.at(s, path, msg);
    None
}

fn party(p: &RawParty, path: &str, r: &mut Report) -> Option<Party> {
    let mark = r.count();
    let name = text(&p.name, format!("{path} name"), r);
    let tax_id = p
        .tax_id
        .as_ref()
        .and_then(|t| text(t, format!("{path} tax-id"), r));
    if r.count() > mark {
        return None;
    }
    Some(Party {
        name: name?,
        address: p.address.clone(),
        tax_id,
    })
}

// ---------------------------------------------------------------------------------------------
// Tax profiles

fn tax_profiles(raws: &[Spanned<RawTaxProfile>], r: &mut Report) -> Vec<TaxProfile> {
    let mut seen = Seen::default();
    raws.iter()
        .filter_map(|t| tax_profile(t, &mut seen, r))
        .collect()
}

fn tax_profile(
    raw: &Spanned<RawTaxProfile>,
    seen: &mut Seen,
    r: &mut Report,
) -> Option<TaxProfile> {
    let x = raw.get_ref();
    let path = item_path(TAX, x.name.get_ref());
    let mark = r.count();
    seen.check(TAX, &x.name, r);
    let label = match &x.label {
        Some(label) => text(label, format!("{path} label"), r),
        None => Some("Tax".to_string()),
    };
    let reverse_charge = x.reverse_charge.unwrap_or(false);
    let percent = match &x.percent {
        // Reverse charge: the customer self-assesses, the invoice carries 0 % and a legal note.
        None if reverse_charge => Some(Decimal::ZERO),
        None => {
            let msg = "a tax profile needs `percent` (e.g. percent = 23), or reverse-charge = true \
                       for a 0 % reverse-charge profile";
            r.at(raw, path.clone(), msg);
            None
        }
        Some(s) => percent(s, format!("{path} percent"), r).filter(|p| {
            let msg = if reverse_charge && !p.is_zero() {
                format!(
                    "a reverse-charge profile charges 0 % (got {p}): set percent = 0 or remove it"
                )
            } else if *p > Decimal::ONE_HUNDRED {
                format!("a tax rate cannot exceed 100 % (got {p})")
            } else {
                return true;
            };
            r.at(s, format!("{path} percent"), msg);
            false
        }),
    };
    if r.count() > mark {
        return None;
    }
    Some(TaxProfile {
        name: x.name.get_ref().clone(),
        label: label?,
        percent: percent?,
        reverse_charge,
    })
}

// ---------------------------------------------------------------------------------------------
// Pricing rules

fn rules(raws: &[Spanned<RawRule>], r: &mut Report) -> Vec<PricingRule> {
    let mut seen = Seen::default();
    raws.iter().filter_map(|x| rule(x, &mut seen, r)).collect()
}

fn rule(raw: &Spanned<RawRule>, seen: &mut Seen, r: &mut Report) -> Option<PricingRule> {
    let x = raw.get_ref();
    let path = item_path(RULE, x.name.get_ref());
    let mark = r.count();
    seen.check(RULE, &x.name, r);
    let scope = rule_scope(x, &path, r);
    let adjustment = adjustment(x, &path, r);
    let (from, until) = (
        x.from.as_ref().map(|f| *f.get_ref()),
        x.until.as_ref().map(|u| *u.get_ref()),
    );
    if let (Some(from), Some(raw_until)) = (from, &x.until)
        && *raw_until.get_ref() <= from
    {
        let msg = format!(
            "until ({}) must be after from ({from}): the rule takes part in [from, until)",
            raw_until.get_ref()
        );
        r.at(raw_until, format!("{path} until"), msg);
    }
    if let (Some(AdjustmentKind::FixedRate), Some(scope)) = (Some(*x.kind.get_ref()), &scope)
        && !matches!(
            scope,
            RuleScope::Sku {
                usage_type: Some(_),
                ..
            }
        )
    {
        let msg = "a fixed-rate rule is a unit price for one usage type: it needs scope = \"sku\" \
                   with a `usage-type`";
        r.at(&x.kind, format!("{path} type"), msg);
    }
    if r.count() > mark {
        return None;
    }
    Some(PricingRule {
        name: x.name.get_ref().clone(),
        scope: scope?,
        adjustment: adjustment?,
        from,
        until,
        last: x.last.as_ref().is_some_and(|l| *l.get_ref()),
    })
}

fn rule_scope(x: &RawRule, path: &str, r: &mut Report) -> Option<RuleScope> {
    let kind = *x.scope.get_ref();
    let allowed: &[&str] = match kind {
        ScopeKind::Global => &[],
        ScopeKind::Service => &["service"],
        ScopeKind::BillingEntity => &["billing-entity"],
        ScopeKind::Sku => &["service", "usage-type", "operation"],
    };
    let keys = [
        ("service", &x.service, "scope = \"service\" or \"sku\""),
        (
            "billing-entity",
            &x.billing_entity,
            "scope = \"billing-entity\"",
        ),
        ("usage-type", &x.usage_type, "scope = \"sku\""),
        ("operation", &x.operation, "scope = \"sku\""),
    ];
    for (key, value, fits) in keys {
        if let Some(value) = value
            && !allowed.contains(&key)
        {
            let msg = format!(
                "`{key}` does not apply to a {} rule: use {fits}, or remove it",
                kind.as_str()
            );
            r.at(value, format!("{path} {key}"), msg);
        }
    }

    // A required key: reported at `scope`, which is what makes it required.
    let required = |value: &Option<Spanned<String>>, key: &str, r: &mut Report| match value {
        Some(v) => text(v, format!("{path} {key}"), r),
        None => {
            let msg = format!("a {} rule needs `{key} = \"…\"`", kind.as_str());
            r.at(&x.scope, format!("{path} {key}"), msg);
            None
        }
    };
    match kind {
        ScopeKind::Global => Some(RuleScope::Global),
        ScopeKind::Service => Some(RuleScope::Service {
            service: required(&x.service, "service", r)?,
        }),
        ScopeKind::BillingEntity => Some(RuleScope::BillingEntity {
            billing_entity: required(&x.billing_entity, "billing-entity", r)?,
        }),
        ScopeKind::Sku => {
            let service = required(&x.service, "service", r);
            if x.usage_type.is_none() && x.operation.is_none() {
                let msg = "a sku rule needs `usage-type` and/or `operation` (a rule for a whole \
                           service is scope = \"service\")";
                r.at(&x.scope, format!("{path} scope"), msg);
            }
            let usage_type = x
                .usage_type
                .as_ref()
                .and_then(|v| text(v, format!("{path} usage-type"), r));
            let operation = x
                .operation
                .as_ref()
                .and_then(|v| text(v, format!("{path} operation"), r));
            Some(RuleScope::Sku {
                service: service?,
                usage_type,
                operation,
            })
        }
    }
}

fn adjustment(x: &RawRule, path: &str, r: &mut Report) -> Option<Adjustment> {
    let kind = *x.kind.get_ref();
    if let Some(rate) = &x.rate
        && kind != AdjustmentKind::FixedRate
    {
        let msg = format!(
            "`rate` is the unit price of a fixed-rate rule; a {} rule takes `percent`",
            kind.as_str()
        );
        r.at(rate, format!("{path} rate"), msg);
    }
    match kind {
        AdjustmentKind::FixedRate => {
            for (key, value) in [("percent", &x.percent)] {
                if let Some(v) = value {
                    let msg = format!("a fixed-rate rule takes `rate`, not `{key}`");
                    r.at(v, format!("{path} {key}"), msg);
                }
            }
            if let Some(free_tier) = &x.free_tier {
                let msg = "`free-tier` only applies to type = \"tiering\"; remove it";
                r.at(free_tier, format!("{path} free-tier"), msg);
            }
            let Some(raw_rate) = &x.rate else {
                let msg = "a fixed-rate rule needs `rate`, the unit price, e.g. rate = \"0.07\"";
                r.at(&x.kind, format!("{path} rate"), msg);
                return None;
            };
            let rate = decimal(raw_rate, format!("{path} rate"), r)?;
            if rate < Decimal::ZERO {
                let msg = format!("a rate cannot be negative (got {rate})");
                r.at(raw_rate, format!("{path} rate"), msg);
                return None;
            }
            if places(rate) > MAX_RATE_PLACES {
                let msg = format!(
                    "{rate} has {} decimal places; a rate allows at most {MAX_RATE_PLACES}",
                    places(rate)
                );
                r.at(raw_rate, format!("{path} rate"), msg);
                return None;
            }
            Some(Adjustment::FixedRate(rate.normalize()))
        }
        AdjustmentKind::Discount | AdjustmentKind::Markup => {
            if let Some(free_tier) = &x.free_tier {
                let msg = "`free-tier` only applies to type = \"tiering\"; remove it";
                r.at(free_tier, format!("{path} free-tier"), msg);
            }
            let Some(raw_percent) = &x.percent else {
                let msg = format!("a {} rule needs `percent`, e.g. percent = 5", kind.as_str());
                r.at(&x.kind, format!("{path} percent"), msg);
                return None;
            };
            let p = percent(raw_percent, format!("{path} percent"), r)?;
            if kind == AdjustmentKind::Markup {
                return Some(Adjustment::Markup(p));
            }
            if p > Decimal::ONE_HUNDRED {
                let msg = format!("a discount cannot exceed 100 % (got {p})");
                r.at(raw_percent, format!("{path} percent"), msg);
                return None;
            }
            Some(Adjustment::Discount(p))
        }
        AdjustmentKind::Tiering => {
            if let Some(p) = &x.percent {
                let msg = "a tiering rule takes no `percent`: use type = \"discount\" or \
                           \"markup\" for a percentage";
                r.at(p, format!("{path} percent"), msg);
            }
            match &x.free_tier {
                Some(free_tier) if !*free_tier.get_ref() => {
                    let msg = "free-tier = false (removing the AWS free tier) needs public price \
                               tiers, which CUR input lacks; remove the rule or set free-tier = true";
                    r.at(free_tier, format!("{path} free-tier"), msg);
                    None
                }
                _ => Some(Adjustment::Tiering { free_tier: true }),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Pricing plans

fn plans(
    raws: &[Spanned<RawPlan>],
    rules: &[PricingRule],
    names: &Names,
    r: &mut Report,
) -> Vec<PricingPlan> {
    let mut seen = Seen::default();
    raws.iter()
        .filter_map(|x| plan(x.get_ref(), rules, names, &mut seen, r))
        .collect()
}

fn plan(
    x: &RawPlan,
    rules: &[PricingRule],
    names: &Names,
    seen: &mut Seen,
    r: &mut Report,
) -> Option<PricingPlan> {
    let path = item_path(PLAN, x.name.get_ref());
    let mark = r.count();
    seen.check(PLAN, &x.name, r);
    // Exactly one rule applies to a line: the most specific. Two rules with the same scope in
    // force in the same period would both be "most specific", so the scope is each rule's key
    // within a plan, period by period.
    let stacking = x
        .stacking
        .as_ref()
        .map(|s| *s.get_ref())
        .unwrap_or_default();
    let mut by_scope: BTreeMap<&RuleScope, Vec<&PricingRule>> = BTreeMap::new();
    let mut listed = BTreeSet::new();
    for name in &x.rules {
        let rules_path = format!("{path} rules");
        if !listed.insert(name.get_ref()) {
            r.at(
                name,
                rules_path,
                format!("rule {:?} is listed twice", name.get_ref()),
            );
            continue;
        }
        if !names.check(RULE, name, rules_path.clone(), r) {
            continue;
        }
        // A defined but invalid rule has its own problem; it cannot be compared here.
        let Some(rule) = rules.iter().find(|rule| rule.name == *name.get_ref()) else {
            continue;
        };
        // In order, rules of one scope apply in turn (SPEC E8: two global rules), so only a
        // most-specific plan needs its keys apart.
        let same_key = by_scope.entry(&rule.scope).or_default();
        if stacking == Stacking::MostSpecific
            && let Some(other) = same_key.iter().find(|other| other.overlaps(rule))
        {
            let msg = format!(
                "rules {:?} and {:?} both apply to {} in this plan in the same period; keep \
                 one, or give them validities that do not overlap (from/until)",
                other.name, rule.name, rule.scope
            );
            r.at(name, rules_path, msg);
        }
        same_key.push(rule);
    }
    if stacking == Stacking::Ordered {
        // A chain multiplies its rules' factors (and a unit price): exact only while the
        // product keeps to the engine's chain scale, whichever rules of the plan match a line.
        let needed: u32 = x
            .rules
            .iter()
            .filter_map(|n| rules.iter().find(|rule| rule.name == *n.get_ref()))
            .map(|rule| match rule.adjustment {
                Adjustment::FixedRate(rate) => places(rate),
                _ => places(rule.factor()),
            })
            .sum();
        if needed > money::CHAIN_SCALE {
            let msg = format!(
                "applied in order, these rules can need {needed} decimal places, more than the \
                 {} rerate multiplies exactly; use fewer decimals in their percentages or rates",
                money::CHAIN_SCALE
            );
            match &x.stacking {
                Some(at) => r.at(at, format!("{path} stacking"), msg),
                None => r.at(&x.name, format!("{path} stacking"), msg),
            }
        }
    }
    if r.count() > mark {
        return None;
    }
    Some(PricingPlan {
        name: x.name.get_ref().clone(),
        rules: x.rules.iter().map(|n| n.get_ref().clone()).collect(),
        stacking,
        credits: x.credits.unwrap_or_default(),
        credit_exceptions: credit_exceptions(x, &path, r),
        refunds: x.refunds.unwrap_or_default(),
        private_discounts: x.private_discounts.unwrap_or_default(),
        aws_tax: x.aws_tax.as_ref().map(|p| *p.get_ref()).unwrap_or_default(),
        support: x.support.unwrap_or_default(),
        commitments: x.commitments.unwrap_or_default(),
    })
}

fn credit_exceptions(x: &RawPlan, path: &str, r: &mut Report) -> Vec<CreditException> {
    let path = format!("{path} credit-exceptions");
    x.credit_exceptions
        .iter()
        .filter_map(|e| {
            let e = e.get_ref();
            let description = text(&e.description, format!("{path} description"), r)?;
            let service = e
                .service
                .as_ref()
                .and_then(|s| text(s, format!("{path} service"), r));
            Some(CreditException {
                description,
                service,
                policy: e.policy,
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Billing groups

/// Which group already claimed each account and each organization.
#[derive(Default)]
struct Owners {
    accounts: BTreeMap<String, String>,
    payers: BTreeMap<String, String>,
    matches: BTreeMap<Match, String>,
}

fn groups(
    raws: &[Spanned<RawGroup>],
    raw_plans: &[Spanned<RawPlan>],
    names: &Names,
    r: &mut Report,
) -> Vec<BillingGroup> {
    let mut seen = Seen::default();
    let mut owners = Owners::default();
    raws.iter()
        .filter_map(|x| group(x, raw_plans, names, &mut seen, &mut owners, r))
        .collect()
}

fn group(
    raw: &Spanned<RawGroup>,
    raw_plans: &[Spanned<RawPlan>],
    names: &Names,
    seen: &mut Seen,
    owners: &mut Owners,
    r: &mut Report,
) -> Option<BillingGroup> {
    let x = raw.get_ref();
    let path = item_path(GROUP, x.name.get_ref());
    let mark = r.count();
    seen.check(GROUP, &x.name, r);
    group_name(&x.name, &path, r);
    let display_name = match &x.display_name {
        Some(d) => text(d, format!("{path} display-name"), r),
        None => Some(x.name.get_ref().clone()),
    };
    let members = members(raw, &path, owners, r);
    let primary_account_id = primary_account(x, members.as_ref(), &path, r);
    names.check(PLAN, &x.pricing_plan, format!("{path} pricing-plan"), r);
    // Unset: the group's bill currency, which only the data tells.
    let currency = x
        .currency
        .as_ref()
        .map(|c| currency(c, format!("{path} currency"), r));
    if let Some(tax_profile) = &x.tax_profile
        && names.check(TAX, tax_profile, format!("{path} tax-profile"), r)
    {
        double_tax(x, tax_profile, raw_plans, &path, r);
    }
    let bill_to = x
        .bill_to
        .as_ref()
        .and_then(|p| party(p, &format!("{path} bill-to"), r));
    if r.count() > mark {
        return None;
    }
    Some(BillingGroup {
        name: x.name.get_ref().clone(),
        display_name: display_name?,
        members: members?,
        primary_account_id: primary_account_id?,
        pricing_plan: x.pricing_plan.get_ref().clone(),
        currency: match currency {
            Some(c) => Some(c?),
            None => None,
        },
        tax_profile: x.tax_profile.as_ref().map(|t| t.get_ref().clone()),
        bill_to,
    })
}

/// Group names become partition values and folder names: they must not escape the output
/// prefix nor collide with the reserved `_unassigned` group.
fn group_name(name: &Spanned<String>, path: &str, r: &mut Report) {
    let s = name.get_ref().as_str();
    let msg = if s.is_empty() {
        return; // reported by `Seen`
    } else if s == UNASSIGNED {
        format!("{UNASSIGNED:?} is reserved for rows that belong to no group; pick another name")
    } else if s.len() > MAX_GROUP_NAME_LEN {
        format!(
            "the name is {} characters long; at most {MAX_GROUP_NAME_LEN} are allowed",
            s.len()
        )
    } else if is_safe_segment(s) {
        return;
    } else {
        format!(
            "{s:?} is not a safe path segment: use lower-case ASCII letters, digits, `-` and `_`, \
             starting with a letter or digit (it becomes a partition value and a folder name)"
        )
    };
    r.at(name, format!("{path} name"), msg);
}

fn is_safe_segment(s: &str) -> bool {
    let lower_or_digit = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut bytes = s.as_bytes().iter();
    bytes.next().is_some_and(lower_or_digit)
        && bytes.all(|b| lower_or_digit(b) || *b == b'-' || *b == b'_')
}

fn members(
    raw: &Spanned<RawGroup>,
    path: &str,
    owners: &mut Owners,
    r: &mut Report,
) -> Option<Members> {
    let x = raw.get_ref();
    let group = x.name.get_ref();
    let mark = r.count();
    if x.payer_account_id.is_none()
        && x.payer_account_ids.is_none()
        && x.accounts.is_none()
        && x.matches.is_none()
    {
        let msg = "a billing group needs members: `payer-account-id = \"…\"` (a whole \
                   organization), `payer-account-ids = [\"…\", …]` (several), `accounts = \
                   [\"…\"]` (linked accounts), and/or `match = [{ tag = \"…\", value = \"…\" }]` \
                   (rows by resource tag or cost category)";
        r.at(raw, path, msg);
        return None;
    }
    // One organization or several: the payers as written, each with where it was written.
    let mut raw_payers: Vec<(&Spanned<Scalar>, String)> = Vec::new();
    match (&x.payer_account_id, &x.payer_account_ids) {
        (Some(_), Some(many)) => {
            let msg = "set payer-account-id (one organization) or payer-account-ids (several), \
                       not both";
            r.at(many, format!("{path} payer-account-ids"), msg);
        }
        (Some(one), None) => raw_payers.push((one, format!("{path} payer-account-id"))),
        (None, Some(many)) => {
            let field = format!("{path} payer-account-ids");
            if many.get_ref().is_empty() {
                let msg = "payer-account-ids is empty: list at least one 12-digit payer account id";
                r.at(many, field.clone(), msg);
            }
            raw_payers.extend(many.get_ref().iter().map(|p| (p, field.clone())));
        }
        (None, None) => {}
    }
    let mut payers: Vec<String> = Vec::new();
    for (payer, field) in raw_payers {
        let Some(id) = account_id(payer, field.clone(), r) else {
            continue;
        };
        let msg = if payers.contains(&id) {
            format!("organization {id} is listed twice")
        } else if let Some(other) = owners.payers.get(&id) {
            format!(
                "organization {id} is already billed to group {other:?}; a payer account \
                 belongs to one group"
            )
        } else {
            payers.push(id);
            continue;
        };
        r.at(payer, field, msg);
    }
    let mut accounts: Vec<String> = Vec::new();
    if let Some(raw_accounts) = &x.accounts {
        let accounts_path = format!("{path} accounts");
        if raw_accounts.get_ref().is_empty() {
            let msg = "accounts is empty: list at least one 12-digit account id";
            r.at(raw_accounts, accounts_path.clone(), msg);
        }
        for account in raw_accounts.get_ref() {
            let Some(id) = account_id(account, accounts_path.clone(), r) else {
                continue;
            };
            let msg = if accounts.contains(&id) {
                format!("account {id} is listed twice")
            } else if let Some(other) = owners.accounts.get(&id) {
                format!(
                    "account {id} is already in group {other:?}; an account belongs to one \
                     group"
                )
            } else {
                accounts.push(id);
                continue;
            };
            r.at(account, accounts_path.clone(), msg);
        }
    }
    let mut matches: Vec<Match> = Vec::new();
    if let Some(raw_matches) = &x.matches {
        let field = format!("{path} match");
        if raw_matches.get_ref().is_empty() {
            let msg = "match is empty: list at least one { tag = \"…\", value = \"…\" }";
            r.at(raw_matches, field.clone(), msg);
        }
        for m in raw_matches.get_ref() {
            let Some(found) = a_match(m, &field, r) else {
                continue;
            };
            let msg = if matches.contains(&found) {
                format!("{found} is listed twice")
            } else if let Some(other) = owners.matches.get(&found) {
                format!(
                    "{found} already assigns rows to group {other:?}; a tag or cost category \
                     value belongs to one group"
                )
            } else {
                matches.push(found);
                continue;
            };
            r.at(m, field.clone(), msg);
        }
    }
    if r.count() > mark {
        return None;
    }
    for id in &payers {
        owners.payers.insert(id.clone(), group.clone());
    }
    for id in &accounts {
        owners.accounts.insert(id.clone(), group.clone());
    }
    for m in &matches {
        owners.matches.insert(m.clone(), group.clone());
    }
    Some(Members {
        payers,
        accounts,
        matches,
    })
}

fn a_match(raw: &Spanned<RawMatch>, field: &str, r: &mut Report) -> Option<Match> {
    let m = raw.get_ref();
    let (on, key) = match (&m.tag, &m.cost_category) {
        (Some(tag), None) => (MatchOn::Tag, tag),
        (None, Some(category)) => (MatchOn::CostCategory, category),
        (Some(_), Some(category)) => {
            let msg = "a match reads one map: `tag` or `cost-category`, not both (list two \
                       matches for both)";
            r.at(category, format!("{field} cost-category"), msg);
            return None;
        }
        (None, None) => {
            let msg = "a match needs `tag = \"…\"` (a resource tag key, e.g. user_customer) or \
                       `cost-category = \"…\"`";
            r.at(raw, field.to_string(), msg);
            return None;
        }
    };
    let key = text(key, format!("{field} {}", on.key()), r);
    let value = text(&m.value, format!("{field} value"), r);
    Some(Match {
        on,
        key: key?,
        value: value?,
    })
}

fn primary_account(
    x: &RawGroup,
    members: Option<&Members>,
    path: &str,
    r: &mut Report,
) -> Option<String> {
    let Some(raw) = &x.primary_account_id else {
        let m = members?;
        let primary = m.payers.first().or(m.accounts.first()).cloned();
        if primary.is_none() {
            let msg = "a group whose only members are matches needs `primary-account-id = \"…\"`: the \
                       account its custom line items are charged to";
            r.at(&x.name, format!("{path} primary-account-id"), msg);
        }
        return primary;
    };
    let field = format!("{path} primary-account-id");
    let id = account_id(raw, field.clone(), r)?;
    // A group of organizations or matches may name any account; a list of accounts, one of
    // them.
    if let Some(m) = members
        && m.payers.is_empty()
        && m.matches.is_empty()
        && !m.accounts.contains(&id)
    {
        let msg = format!(
            "primary account {id} is not one of the group's accounts ({})",
            m.accounts.join(", ")
        );
        r.at(raw, field, msg);
        return None;
    }
    Some(id)
}

/// AWS's own tax passed through plus customer tax from a profile would tax the customer twice.
fn double_tax(
    x: &RawGroup,
    tax_profile: &Spanned<String>,
    raw_plans: &[Spanned<RawPlan>],
    path: &str,
    r: &mut Report,
) {
    let plan = raw_plans
        .iter()
        .map(|p| p.get_ref())
        .find(|p| p.name.get_ref() == x.pricing_plan.get_ref());
    let Some(aws_tax) = plan.and_then(|p| p.aws_tax.as_ref()) else {
        return;
    };
    if *aws_tax.get_ref() != Policy::Pass {
        return;
    }
    let (line, _) = line_col(r.text, aws_tax.span().start);
    let msg = format!(
        "plan {:?} passes AWS tax through (aws-tax = \"pass\", line {line}) and this group adds \
         customer tax from tax-profile {:?}: the customer would be taxed twice; set aws-tax = \
         \"drop\" or remove tax-profile",
        x.pricing_plan.get_ref(),
        tax_profile.get_ref()
    );
    r.at(tax_profile, format!("{path} tax-profile"), msg);
}

// ---------------------------------------------------------------------------------------------
// Custom line items

/// What `base-includes` may name: each item's group and whether it is a flat amount.
type Catalog<'a> = BTreeMap<&'a str, (&'a str, bool)>;

fn custom_line_items(
    raws: &[Spanned<RawCustomLineItem>],
    groups: &[BillingGroup],
    names: &Names,
    r: &mut Report,
) -> Vec<CustomLineItem> {
    let catalog: Catalog = raws
        .iter()
        .map(|c| c.get_ref())
        .map(|c| {
            (
                c.name.get_ref().as_str(),
                (c.billing_group.get_ref().as_str(), c.flat.is_some()),
            )
        })
        .collect();
    let mut seen = Seen::default();
    raws.iter()
        .filter_map(|x| custom_line_item(x, groups, names, &catalog, &mut seen, r))
        .collect()
}

fn custom_line_item(
    raw: &Spanned<RawCustomLineItem>,
    groups: &[BillingGroup],
    names: &Names,
    catalog: &Catalog,
    seen: &mut Seen,
    r: &mut Report,
) -> Option<CustomLineItem> {
    let x = raw.get_ref();
    let path = item_path(ITEM, x.name.get_ref());
    let mark = r.count();
    seen.check(ITEM, &x.name, r);
    names.check(GROUP, &x.billing_group, format!("{path} billing-group"), r);
    let group = groups.iter().find(|g| g.name == *x.billing_group.get_ref());
    let account_id = match &x.account_id {
        Some(a) => account_id(a, format!("{path} account-id"), r),
        None => group.map(|g| g.primary_account_id.clone()),
    };
    let amount = custom_amount(raw, catalog, names, &path, r);
    let (from, until) = (*x.from.get_ref(), x.until.as_ref().map(|u| *u.get_ref()));
    if let Some(raw_until) = &x.until
        && *raw_until.get_ref() <= from
    {
        let msg = format!(
            "until ({}) must be after from ({from}): until is the first period no longer charged",
            raw_until.get_ref()
        );
        r.at(raw_until, format!("{path} until"), msg);
    }
    let description = match &x.description {
        Some(d) => text(d, format!("{path} description"), r),
        None => Some(x.name.get_ref().clone()),
    };
    if r.count() > mark {
        return None;
    }
    Some(CustomLineItem {
        name: x.name.get_ref().clone(),
        billing_group: x.billing_group.get_ref().clone(),
        account_id: account_id?,
        kind: x.kind,
        amount: amount?,
        from,
        until,
        description: description?,
    })
}

fn custom_amount(
    raw: &Spanned<RawCustomLineItem>,
    catalog: &Catalog,
    names: &Names,
    path: &str,
    r: &mut Report,
) -> Option<CustomAmount> {
    let x = raw.get_ref();
    match (&x.flat, &x.percent) {
        (Some(_), Some(p)) => {
            let msg = "set either flat (an amount) or percent (a percentage of a base), not both";
            r.at(p, format!("{path} percent"), msg);
            None
        }
        (None, None) => {
            let msg = "a custom line item needs `flat = \"500.00\"` (per period, in the group's \
                       bill currency) or `percent = 8` (of the group's pro forma total)";
            r.at(raw, path, msg);
            None
        }
        (Some(flat), None) => flat_amount(x, flat, path, r).map(CustomAmount::Flat),
        (None, Some(p)) => percent_amount(x, p, catalog, names, path, r),
    }
}

fn flat_amount(
    x: &RawCustomLineItem,
    flat: &Spanned<Scalar>,
    path: &str,
    r: &mut Report,
) -> Option<Decimal> {
    let percent_only = [
        ("base-includes", x.base_includes.as_ref().map(|v| v.span())),
        ("service", x.service.as_ref().map(|v| v.span())),
        (
            "exclude-savings-plan-negation",
            x.exclude_savings_plan_negation.as_ref().map(|v| v.span()),
        ),
    ];
    for (key, span) in percent_only {
        if let Some(span) = span {
            let msg = format!("`{key}` only applies to percentage items (percent = …); remove it");
            r.add(Some(span.start), format!("{path} {key}"), msg);
        }
    }
    let field = format!("{path} flat");
    let amount = decimal(flat, field.clone(), r)?;
    let msg = if amount <= Decimal::ZERO {
        format!("flat must be greater than 0 (got {amount}); type = \"credit\" makes it negative")
    } else if places(amount) > MAX_MONEY_PLACES {
        format!("{amount} has more than {MAX_MONEY_PLACES} decimal places")
    } else {
        return Some(amount);
    };
    r.at(flat, field, msg);
    None
}

fn percent_amount(
    x: &RawCustomLineItem,
    raw_percent: &Spanned<Scalar>,
    catalog: &Catalog,
    names: &Names,
    path: &str,
    r: &mut Report,
) -> Option<CustomAmount> {
    let mark = r.count();
    let field = format!("{path} percent");
    let percent = percent(raw_percent, field.clone(), r).filter(|p| {
        let msg = if p.is_zero() {
            "percent must be greater than 0".to_string()
        } else if x.kind == CustomKind::Credit && *p > Decimal::ONE_HUNDRED {
            format!("a credit cannot exceed 100 % of its base (got {p})")
        } else {
            return true;
        };
        r.at(raw_percent, field.clone(), msg);
        false
    });
    let base_includes = match &x.base_includes {
        Some(list) => base_includes(x, list.get_ref(), catalog, names, path, r),
        None => Vec::new(),
    };
    let service = x.service.as_ref().and_then(|f| service_filter(f, path, r));
    if r.count() > mark {
        return None;
    }
    Some(CustomAmount::Percent {
        percent: percent?,
        base_includes,
        service,
        exclude_savings_plan_negation: x
            .exclude_savings_plan_negation
            .as_ref()
            .is_some_and(|v| *v.get_ref()),
    })
}

/// Flat items of the same group whose amounts join a percentage item's base.
fn base_includes(
    x: &RawCustomLineItem,
    list: &[Spanned<String>],
    catalog: &Catalog,
    names: &Names,
    path: &str,
    r: &mut Report,
) -> Vec<String> {
    let field = format!("{path} base-includes");
    let mut included = Vec::new();
    for name in list {
        let n = name.get_ref().as_str();
        let msg = if included.iter().any(|i| i == n) {
            format!("{n:?} is listed twice")
        } else if let Some(&(group, is_flat)) = catalog.get(n) {
            if group != x.billing_group.get_ref() {
                format!(
                    "{n:?} belongs to billing group {group:?}, not {:?}: a base can only include \
                     the same group's items",
                    x.billing_group.get_ref()
                )
            } else if !is_flat {
                format!("{n:?} is a percentage item; base-includes names flat items only")
            } else {
                included.push(n.to_string());
                continue;
            }
        } else if names.defines(ITEM, n) {
            continue; // defined but unreadable: reported where it is defined
        } else {
            names.unknown(ITEM, n)
        };
        r.at(name, field.clone(), msg);
    }
    included
}

fn service_filter(
    f: &Spanned<RawServiceFilter>,
    path: &str,
    r: &mut Report,
) -> Option<ServiceFilter> {
    let field = format!("{path} service");
    match (&f.get_ref().is, &f.get_ref().not) {
        (Some(is), None) => text(is, format!("{field} is"), r).map(ServiceFilter::Is),
        (None, Some(not)) => text(not, format!("{field} not"), r).map(ServiceFilter::Not),
        _ => {
            let msg =
                "service takes exactly one of { is = \"AmazonEC2\" } or { not = \"AmazonS3\" }";
            r.at(f, field, msg);
            None
        }
    }
}

// ---------------------------------------------------------------------------------------------
// FX rates

type RawFxSection = BTreeMap<Spanned<String>, BTreeMap<Spanned<String>, Spanned<RawFx>>>;

/// `[fx."P"] EUR = r` (1 USD = r EUR) and `[fx."P".CNY] EUR = r` (1 CNY = r EUR), as
/// (period, from, to) -> rate. `[fx."P".USD]` is the same as `[fx."P"]`: TOML cannot hold both
/// `[fx."P"] CNY = r` and a `[fx."P".CNY]` table, so a period with rates to and from CNY writes
/// the former as `[fx."P".USD] CNY = r`.
fn fx(raw: &RawFxSection, r: &mut Report) -> BTreeMap<FxKey, Decimal> {
    let mut fx = BTreeMap::new();
    for (period_key, entries) in raw {
        let path = format!("[fx.{:?}]", period_key.get_ref());
        let period = match period_key.get_ref().parse::<Period>() {
            Ok(p) => Some(p),
            Err(e) => {
                r.at(period_key, path.clone(), e.to_string());
                None
            }
        };
        // Rates given twice (under [fx."P"] and [fx."P".USD]) point back at the first.
        let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
        for (key, entry) in entries {
            // (to, where the rate is, the rate) under this key.
            let (from, table_path, rates): (_, _, Vec<(&Spanned<String>, Span, &Scalar)>) =
                match entry.get_ref() {
                    RawFx::Rate(rate) => (
                        Some(USD.to_string()),
                        path.clone(),
                        vec![(key, entry.span(), rate)],
                    ),
                    RawFx::From(table) => {
                        let table_path =
                            format!("[fx.{:?}.{}]", period_key.get_ref(), key.get_ref());
                        let rates = table
                            .iter()
                            .map(|(to, rate)| (to, rate.span(), &rate.get_ref().0))
                            .collect();
                        (currency(key, table_path.clone(), r), table_path, rates)
                    }
                };
            for (to_key, span, rate) in rates {
                let field = format!("{table_path} {}", to_key.get_ref());
                let to = currency(to_key, field.clone(), r);
                let Some(value) = decimal_at(span.clone(), rate, field.clone(), r) else {
                    continue;
                };
                let (Some(from), Some(to)) = (from.as_ref(), to) else {
                    continue;
                };
                let msg = if value <= Decimal::ZERO {
                    format!("FX rates must be greater than 0 (got {value})")
                } else if *from == to && value != Decimal::ONE {
                    format!("a rate from {from} to {to} is always 1 (got {value}); remove it")
                } else if places(value) > MAX_MONEY_PLACES {
                    format!("{value} has more than {MAX_MONEY_PLACES} decimal places")
                } else if let Some(&first) = seen.get(&(from.clone(), to.clone())) {
                    let (line, _) = line_col(r.text, first);
                    let p = period_key.get_ref();
                    format!(
                        "the rate from {from} to {to} is already given on line {line}: rates \
                         from USD go under [fx.{p:?}] or [fx.{p:?}.USD], not both"
                    )
                } else {
                    seen.insert((from.clone(), to.clone()), span.start);
                    if let Some(p) = period
                        && *from != to
                    {
                        fx.insert((p, from.clone(), to), value);
                    }
                    continue;
                };
                r.add(Some(span.start), field, msg);
            }
        }
    }
    fx
}

// ---------------------------------------------------------------------------------------------
// Singleton sections

fn io(x: &RawIo, r: &mut Report) -> IoDefaults {
    IoDefaults {
        input: x
            .input
            .as_ref()
            .and_then(|v| text(v, "[io] input".into(), r)),
        output: x
            .output
            .as_ref()
            .and_then(|v| text(v, "[io] output".into(), r)),
    }
}

fn transfer(x: &RawTransfer, r: &mut Report) -> Option<Transfer> {
    let account_id = account_id(&x.account_id, "[transfer] account-id".into(), r);
    let name = x
        .name
        .as_ref()
        .and_then(|v| text(v, "[transfer] name".into(), r));
    Some(Transfer {
        account_id: account_id?,
        name,
    })
}

fn invoice(x: &RawInvoice, r: &mut Report) -> InvoiceSettings {
    let defaults = InvoiceSettings::default();
    let issuer = x
        .issuer
        .as_ref()
        .and_then(|p| party(p, "[invoice] issuer", r));
    let number_prefix = match &x.number_prefix {
        Some(prefix) => number_prefix(prefix, r).unwrap_or(defaults.number_prefix),
        None => defaults.number_prefix,
    };
    let payment_terms_days = match &x.payment_terms_days {
        Some(days) => match u32::try_from(*days.get_ref()) {
            Ok(d) if i64::from(d) <= MAX_PAYMENT_TERMS_DAYS => d,
            _ => {
                let msg = format!(
                    "payment terms of {} days: expected 0 to {MAX_PAYMENT_TERMS_DAYS}",
                    days.get_ref()
                );
                r.at(days, "[invoice] payment-terms-days", msg);
                defaults.payment_terms_days
            }
        },
        None => defaults.payment_terms_days,
    };
    InvoiceSettings {
        issuer,
        number_prefix,
        payment_terms_days,
    }
}

/// Invoice numbers are `<prefix>-<YYYYMM>-<group>`: keep the prefix one visible token.
fn number_prefix(prefix: &Spanned<String>, r: &mut Report) -> Option<String> {
    let p = prefix.get_ref();
    if !p.is_empty()
        && p.chars()
            .all(|c| c.is_ascii_graphic() && c != '/' && c != '\\')
    {
        return Some(p.clone());
    }
    let msg = format!(
        "{p:?} cannot start invoice numbers: use visible ASCII characters without spaces or \
         slashes, e.g. \"INV\""
    );
    r.at(prefix, "[invoice] number-prefix", msg);
    None
}

fn storage(x: &RawStorage, r: &mut Report) -> StorageSettings {
    let endpoint = x
        .endpoint
        .as_ref()
        .and_then(|e| endpoint(e, x.allow_http, r));
    StorageSettings {
        endpoint,
        region: x
            .region
            .as_ref()
            .and_then(|v| text(v, "[storage] region".into(), r)),
        allow_http: x.allow_http,
        virtual_hosted_style: x.virtual_hosted_style,
        max_retries: x
            .max_retries
            .as_ref()
            .and_then(|v| bounded(v, 0, 100, "[storage] max-retries", r)),
        retry_timeout_seconds: x
            .retry_timeout_seconds
            .as_ref()
            .and_then(|v| bounded(v, 1, 3600, "[storage] retry-timeout-seconds", r)),
    }
}

fn engine(x: &RawEngine, r: &mut Report) -> EngineSettings {
    EngineSettings {
        memory_limit: x.memory_limit.as_ref().and_then(|v| {
            super::parse_memory_limit(v.get_ref())
                .map_err(|msg| r.at(v, "[engine] memory-limit", msg))
                .ok()
        }),
        spill_dir: x
            .spill_dir
            .as_ref()
            .and_then(|v| text(v, "[engine] spill-dir".into(), r)),
        target_partitions: x
            .target_partitions
            .as_ref()
            .and_then(|v| bounded(v, 1, 1024, "[engine] target-partitions", r)),
        cluster: x.cluster.as_ref().and_then(|v| {
            super::parse_cluster_url(v.get_ref())
                .map(|_| v.get_ref().clone())
                .map_err(|msg| r.at(v, "[engine] cluster", msg))
                .ok()
        }),
    }
}

/// An integer setting within `min..=max`.
fn bounded(v: &Spanned<i64>, min: u32, max: u32, key: &str, r: &mut Report) -> Option<u32> {
    match u32::try_from(*v.get_ref()) {
        Ok(n) if (min..=max).contains(&n) => Some(n),
        _ => {
            r.at(
                v,
                key,
                format!("{} is out of range: expected {min} to {max}", v.get_ref()),
            );
            None
        }
    }
}

fn endpoint(e: &Spanned<String>, allow_http: Option<bool>, r: &mut Report) -> Option<String> {
    let msg = match url::Url::parse(e.get_ref()) {
        Ok(u) if !u.username().is_empty() || u.password().is_some() => {
            "credentials in the endpoint are refused, as they would end up in logs: use \
             AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                .to_string()
        }
        Ok(u) if u.scheme() == "https" => return Some(e.get_ref().clone()),
        Ok(u) if u.scheme() == "http" && allow_http != Some(false) => {
            return Some(e.get_ref().clone());
        }
        Ok(u) if u.scheme() == "http" => {
            "the endpoint uses http:// but allow-http = false: use https:// or allow-http = true"
                .to_string()
        }
        Ok(u) => format!(
            "unsupported endpoint scheme {:?}: use http:// or https://",
            u.scheme()
        ),
        Err(err) => format!(
            "{:?} is not a URL ({err}): e.g. \"http://127.0.0.1:9000\"",
            e.get_ref()
        ),
    };
    r.at(e, "[storage] endpoint", msg);
    None
}

#[cfg(test)]
mod tests {
    //! What validation reads into the plan. What it rejects, and how it says so, is in the cases
    //! under `tests/config/` (run by `tests/it/config.rs`).

    use std::str::FromStr;

    use super::super::testing::*;
    use super::*;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    /// BASE plus a rule `r` with the given body lines (after `name`).
    fn rule(body: &str) -> String {
        with(&format!("[[pricing-rule]]\nname = \"r\"\n{body}\n"))
    }

    /// BASE plus a custom line item `item` of group acme with the given body lines.
    fn item(body: &str) -> String {
        with(&format!(
            "[[custom-line-item]]\nname = \"item\"\nbilling-group = \"acme\"\n{body}\n"
        ))
    }

    fn group(body: &str) -> String {
        with(&format!(
            "[[billing-group]]\nname = \"globex\"\npricing-plan = \"standard\"\n{body}\n"
        ))
    }

    // --- accounts and membership -------------------------------------------------------------

    #[test]
    fn primary_account_defaults_to_the_payer_or_the_first_account() {
        let c = valid(&group("accounts = [\"333333333333\", \"222222222222\"]"));
        assert_eq!(
            c.group("globex").unwrap().primary_account_id,
            "333333333333"
        );
        assert_eq!(
            c.group("globex").unwrap().members,
            Members {
                payers: vec![],
                accounts: vec!["333333333333".into(), "222222222222".into()],
                matches: vec![]
            }
        );
        let c = valid(&group(
            "accounts = [\"333333333333\", \"222222222222\"]\nprimary-account-id = \"222222222222\"",
        ));
        assert_eq!(
            c.group("globex").unwrap().primary_account_id,
            "222222222222"
        );
    }

    // --- rules ----------------------------------------------------------------------------------

    #[test]
    fn a_billing_entity_rule_matches_its_entity() {
        let c = valid(&rule(
            "scope = \"billing-entity\"\nbilling-entity = \"AWS Marketplace\"\ntype = \"markup\"\npercent = 1",
        ));
        assert_eq!(
            c.rule("r").unwrap().scope,
            RuleScope::BillingEntity {
                billing_entity: "AWS Marketplace".into()
            }
        );
    }

    #[test]
    fn a_sku_rule_may_name_an_operation_without_a_usage_type() {
        let c = valid(&rule(
            "scope = \"sku\"\nservice = \"AmazonEC2\"\noperation = \"RunInstances\"\ntype = \"markup\"\npercent = 1",
        ));
        assert_eq!(
            c.rule("r").unwrap().scope,
            RuleScope::Sku {
                service: "AmazonEC2".into(),
                usage_type: None,
                operation: Some("RunInstances".into())
            }
        );
    }

    #[test]
    fn a_100_percent_discount_is_free_and_a_markup_has_no_upper_bound() {
        let c = valid(&rule(
            "scope = \"global\"\ntype = \"discount\"\npercent = 100",
        ));
        assert_eq!(c.rule("r").unwrap().factor(), Decimal::ZERO);
        let c = valid(&rule(
            "scope = \"global\"\ntype = \"markup\"\npercent = 250",
        ));
        assert_eq!(c.rule("r").unwrap().factor(), dec("3.5"));
    }

    #[test]
    fn tiering_defaults_to_keeping_the_free_tier() {
        let c = valid(&rule("scope = \"global\"\ntype = \"tiering\""));
        assert_eq!(
            c.rule("r").unwrap().adjustment,
            Adjustment::Tiering { free_tier: true }
        );
        assert_eq!(c.rule("r").unwrap().factor(), Decimal::ONE);
    }

    #[test]
    fn percentages_keep_six_decimal_places_and_trailing_zeros_do_not_count() {
        let c = valid(&rule(
            "scope = \"global\"\ntype = \"markup\"\npercent = \"1.234567\"",
        ));
        assert_eq!(c.rule("r").unwrap().factor(), dec("1.01234567"));
        let c = valid(&rule(
            "scope = \"global\"\ntype = \"markup\"\npercent = \"5.00000000\"",
        ));
        assert_eq!(
            c.rule("r").unwrap().adjustment,
            Adjustment::Markup(dec("5"))
        );
    }

    // --- custom line items ----------------------------------------------------------------------

    #[test]
    fn custom_line_item_defaults() {
        let c = valid(&item(
            "type = \"fee\"\nflat = \"500.00\"\nfrom = \"2025-01\"",
        ));
        let fee = &c.custom_line_items[0];
        assert_eq!(fee.account_id, "111111111111");
        assert_eq!(fee.description, "item");
        assert_eq!(fee.until, None);
        assert_eq!(fee.amount, CustomAmount::Flat(dec("500.00")));
    }

    #[test]
    fn custom_line_item_account_id_overrides_the_primary_account() {
        let c = valid(&item(
            "type = \"fee\"\nflat = 1\nfrom = \"2025-01\"\naccount-id = \"999999999999\"",
        ));
        assert_eq!(c.custom_line_items[0].account_id, "999999999999");
    }

    #[test]
    fn percentage_items_read_base_includes_and_service_filter() {
        let c = valid(case!("item-percentage-base-includes-and-service-filter"));
        assert_eq!(
            c.custom_line_items[2].amount,
            CustomAmount::Percent {
                percent: dec("8"),
                base_includes: vec!["fee".into()],
                service: Some(ServiceFilter::Not("AmazonS3".into())),
                exclude_savings_plan_negation: true,
            }
        );
        assert_eq!(
            c.custom_line_items[3].amount,
            CustomAmount::Percent {
                percent: dec("2.5"),
                base_includes: Vec::new(),
                service: Some(ServiceFilter::Is("AmazonEC2".into())),
                exclude_savings_plan_negation: false,
            }
        );
    }

    // --- currencies, FX, taxes ------------------------------------------------------------------

    #[test]
    fn currencies_rerate_can_round_are_kept() {
        for ok in ["EUR", "JPY", "KWD", "CHF"] {
            let c = valid(&group(&format!(
                "payer-account-id = \"555555555555\"\ncurrency = {ok:?}"
            )));
            assert_eq!(c.group("globex").unwrap().currency.as_deref(), Some(ok));
        }
    }

    #[test]
    fn fx_rates_are_read_exactly() {
        let c = valid(&with("[fx.\"2025-11\"]\nUSD = 1\nJPY = 150.25\n"));
        assert_eq!(
            c.fx_rate("2025-11".parse().unwrap(), USD, "JPY"),
            Some(dec("150.25"))
        );
        let c = valid(&with("[fx.\"2025-11\".CNY]\nEUR = 0.128\nJPY = \"21.5\"\n"));
        assert_eq!(
            c.fx_rate("2025-11".parse().unwrap(), "CNY", "EUR"),
            Some(dec("0.128"))
        );
        assert_eq!(
            c.fx_rate("2025-11".parse().unwrap(), "CNY", "JPY"),
            Some(dec("21.5"))
        );
    }

    #[test]
    fn a_reverse_charge_profile_charges_0_percent_and_percentages_are_exact() {
        let tax = |body: &str| with(&format!("[[tax-profile]]\nname = \"t\"\n{body}\n"));
        let c = valid(&tax("reverse-charge = true"));
        assert_eq!(
            c.tax_profile("t"),
            Some(&TaxProfile {
                name: "t".into(),
                label: "Tax".into(),
                percent: Decimal::ZERO,
                reverse_charge: true
            })
        );
        assert_eq!(
            valid(&tax("percent = 7.7"))
                .tax_profile("t")
                .unwrap()
                .percent,
            dec("7.7")
        );
    }

    // --- singleton sections ---------------------------------------------------------------------

    #[test]
    fn payment_terms_of_0_and_365_days_are_kept() {
        assert_eq!(
            valid(&with("[invoice]\npayment-terms-days = 0\n"))
                .invoice
                .payment_terms_days,
            0
        );
        assert_eq!(
            valid(&with("[invoice]\npayment-terms-days = 365\n"))
                .invoice
                .payment_terms_days,
            365
        );
    }

    #[test]
    fn storage_and_io_sections() {
        let c = valid(&with(
            "[io]\ninput = \"file:///cur\"\n\n[storage]\nendpoint = \"http://127.0.0.1:9000\"\nregion = \"us-east-1\"\nallow-http = true\nvirtual-hosted-style = false\n",
        ));
        assert_eq!(c.io.input.as_deref(), Some("file:///cur"));
        assert_eq!(c.io.output, None);
        assert_eq!(
            c.storage,
            StorageSettings {
                endpoint: Some("http://127.0.0.1:9000".into()),
                region: Some("us-east-1".into()),
                allow_http: Some(true),
                virtual_hosted_style: Some(false),
                max_retries: None,
                retry_timeout_seconds: None,
            }
        );
        let c = valid(&with(
            "[storage]\nmax-retries = 2\nretry-timeout-seconds = 5\n",
        ));
        assert_eq!(
            (c.storage.max_retries, c.storage.retry_timeout_seconds),
            (Some(2), Some(5))
        );
    }
}
