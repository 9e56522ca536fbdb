//! `billing.toml`: the validated configuration plan every other stage reads, and where parsing
//! starts (raw serde model in `raw`, checks in `validate`).
//!
//! Parsing never stops at the first mistake: every problem in the file is collected and reported
//! at once, each with a `file:line:col` location and the key it concerns, so a billing engineer
//! fixes the whole file in one pass.

mod raw;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::period::Period;

/// The currency every amount is in before invoice conversion.
pub const USD: &str = "USD";

/// The billing group of rows that belong to no configured group; reserved.
pub const UNASSIGNED: &str = "_unassigned";

/// The whole validated configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Config {
    pub io: IoDefaults,
    pub transfer: Option<Transfer>,
    pub invoice: InvoiceSettings,
    pub storage: StorageSettings,
    pub engine: EngineSettings,
    pub groups: Vec<BillingGroup>,
    pub plans: Vec<PricingPlan>,
    pub rules: Vec<PricingRule>,
    pub custom_line_items: Vec<CustomLineItem>,
    pub tax_profiles: Vec<TaxProfile>,
    /// FX rates per billing period, from a bill currency to an invoice currency: `[fx."P"]
    /// EUR = r` is (P, USD, EUR) -> r (1 USD = r EUR), `[fx."P".CNY] EUR = r` is (P, CNY, EUR).
    #[serde(serialize_with = "fx_as_list")]
    pub fx: BTreeMap<FxKey, Decimal>,
    /// SHA-256 (lower-case hex) of the configuration text, recorded in the run manifest.
    pub hash: String,
    /// Where the text came from (a path, or a name given to [`parse`]); used in error locations.
    pub source_name: String,
}

/// `(period, from, to)`: 1 `from` = rate `to` in the billing period.
pub type FxKey = (Period, String, String);

/// The rates as a list of `{ period, from, to, rate }` (a map keyed by a tuple is not JSON).
fn fx_as_list<S: serde::Serializer>(
    fx: &BTreeMap<FxKey, Decimal>,
    s: S,
) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Rate<'a> {
        period: Period,
        from: &'a str,
        to: &'a str,
        rate: Decimal,
    }
    s.collect_seq(fx.iter().map(|((period, from, to), rate)| Rate {
        period: *period,
        from,
        to,
        rate: *rate,
    }))
}

/// `[io]`: defaults for `--input`/`--output`; the command-line flags win.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IoDefaults {
    pub input: Option<String>,
    pub output: Option<String>,
}

/// `[transfer]`: the bill-transfer (reseller) account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transfer {
    pub account_id: String,
    pub name: Option<String>,
}

/// `[invoice]`: issuer details and numbering.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvoiceSettings {
    pub issuer: Option<Party>,
    /// Invoice numbers are `<prefix>-<YYYYMM>-<group>`.
    pub number_prefix: String,
    pub payment_terms_days: u32,
}

impl Default for InvoiceSettings {
    fn default() -> Self {
        Self {
            issuer: None,
            number_prefix: "INV".to_string(),
            payment_terms_days: 30,
        }
    }
}

/// `[storage]`: object store settings that override the AWS environment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StorageSettings {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub allow_http: Option<bool>,
    pub virtual_hosted_style: Option<bool>,
    /// Retries of a failed storage request (transient errors only); default 10.
    pub max_retries: Option<u32>,
    /// Give up retrying a request after this long; default 180 s.
    pub retry_timeout_seconds: Option<u32>,
}

/// `[engine]`: how much of the machine a run may use.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EngineSettings {
    /// Bytes the query engine may hold for joins, aggregations and sorts before they spill to
    /// disk (DataFusion's memory pool); `None` means unbounded. `--memory-limit` wins.
    pub memory_limit: Option<u64>,
    /// Where spill files go; default: the system temporary folder.
    pub spill_dir: Option<String>,
    /// Parallel partitions per query; default: the number of cores.
    pub target_partitions: Option<u32>,
    /// A Ballista cluster's scheduler (`df://host:port`) to run the job's plans on (SPEC §7.1);
    /// `None`: in this process. `--cluster` wins.
    pub cluster: Option<String>,
}

/// A cluster's scheduler, `df://host:port`: its host and port.
pub fn parse_cluster_url(text: &str) -> std::result::Result<(String, u16), String> {
    let expected = "expected df://host:port (the Ballista scheduler)";
    let url = url::Url::parse(text).map_err(|e| format!("{text}: {e}; {expected}"))?;
    match (url.scheme(), url.host_str(), url.port(), url.path()) {
        ("df", Some(host), Some(port), "" | "/") if !host.is_empty() => {
            Ok((host.to_string(), port))
        }
        _ => Err(format!("{text}: {expected}")),
    }
}

/// A memory limit such as `"512MiB"`, `"4GiB"`, `"2GB"` or `"1073741824"` (bytes), in bytes.
pub fn parse_memory_limit(text: &str) -> std::result::Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let unit_bytes: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "tib" => 1 << 40,
        _ => {
            return Err(format!(
                "{text:?} is not a size: use a number with a unit, e.g. \"512MiB\" or \"4GiB\""
            ));
        }
    };
    let bytes = number
        .parse::<Decimal>()
        .ok()
        .and_then(|n| n.checked_mul(Decimal::from(unit_bytes)))
        .and_then(|b| u64::try_from(b.trunc()).ok())
        .ok_or_else(|| {
            format!("{text:?} is not a size: use a number with a unit, e.g. \"4GiB\"")
        })?;
    if bytes < MIN_MEMORY_LIMIT {
        return Err(format!(
            "{text:?} is too small: a run needs at least 64MiB to make progress"
        ));
    }
    Ok(bytes)
}

/// Below this a run cannot hold one batch per partition of the widest table.
const MIN_MEMORY_LIMIT: u64 = 64 << 20;

/// An invoice party (issuer or bill-to).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Party {
    pub name: String,
    pub address: Vec<String>,
    pub tax_id: Option<String>,
}

/// One customer: an organization or a list of accounts, re-rated under one plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BillingGroup {
    /// A safe path segment (`[a-z0-9][a-z0-9_-]*`, at most 64 characters).
    pub name: String,
    pub display_name: String,
    pub members: Members,
    pub primary_account_id: String,
    pub pricing_plan: String,
    /// ISO 4217 code of the invoice currency as configured. `None`: the group's bill currency
    /// (its rows' `line_item_currency_code`), known only from the data; see
    /// [`BillingGroup::invoice_currency`].
    pub currency: Option<String>,
    pub tax_profile: Option<String>,
    pub bill_to: Option<Party>,
}

impl BillingGroup {
    /// The currency the group is invoiced in when AWS bills it in `bill_currency`: `currency`
    /// if set, else the bill currency itself (no conversion).
    pub fn invoice_currency<'a>(&'a self, bill_currency: &'a str) -> &'a str {
        self.currency.as_deref().unwrap_or(bill_currency)
    }
}

/// Which rows a group owns: whole organizations (matched on `bill_payer_account_id`) and/or
/// linked accounts (matched on `line_item_usage_account_id`); an explicit account wins over
/// an organization. At least one of either.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Members {
    /// `payer-account-id`, or `payer-account-ids`: one customer's organizations.
    pub payers: Vec<String>,
    pub accounts: Vec<String>,
    /// Rows of any account by resource tag or cost category: these win over accounts and
    /// organizations (SPEC §5.1).
    pub matches: Vec<Match>,
}

/// `{ tag = key, value }` or `{ cost-category = key, value }`: rows whose map holds `value`
/// under `key` (keys as in the CUR 2.0 maps; legacy CUR's `resource_tags_*` and
/// `cost_category_*` columns fold into the same keys).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Match {
    pub on: MatchOn,
    pub key: String,
    pub value: String,
}

/// Which CUR map a match reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum MatchOn {
    Tag,
    CostCategory,
}

impl MatchOn {
    /// The CUR 2.0 map column.
    pub fn column(self) -> &'static str {
        match self {
            MatchOn::Tag => "resource_tags",
            MatchOn::CostCategory => "cost_category",
        }
    }

    /// The config key.
    pub fn key(self) -> &'static str {
        match self {
            MatchOn::Tag => "tag",
            MatchOn::CostCategory => "cost-category",
        }
    }
}

impl fmt::Display for Match {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?} = {:?}", self.on.key(), self.key, self.value)
    }
}

/// A named set of rules and line item policies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PricingPlan {
    pub name: String,
    pub rules: Vec<String>,
    pub stacking: Stacking,
    pub credits: Policy,
    /// Tried in order on Credit lines before `credits`: the first that matches decides.
    pub credit_exceptions: Vec<CreditException>,
    pub refunds: Policy,
    pub private_discounts: Policy,
    pub aws_tax: Policy,
    pub support: Policy,
    pub commitments: CommitmentPolicy,
}

/// A case-by-case policy for Credit lines (SPEC §5.3): credits whose description matches the
/// glob (`*` any text, `?` one character; case-sensitive), of `service` if given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreditException {
    pub description: String,
    pub service: Option<String>,
    pub policy: Policy,
}

impl CreditException {
    /// The glob as a SQL LIKE pattern: `*` is `%`, `?` is `_`, and LIKE's own wildcards and
    /// escape character are escaped, so they match themselves.
    pub fn like_pattern(&self) -> String {
        let mut out = String::with_capacity(self.description.len() + 4);
        for c in self.description.chars() {
            match c {
                '*' => out.push('%'),
                '?' => out.push('_'),
                '%' | '_' | '\\' => {
                    out.push('\\');
                    out.push(c);
                }
                c => out.push(c),
            }
        }
        out
    }
}

/// What pro forma does with a kind of line item (docs/config.md, `[[pricing-plan]]`).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, strum::IntoStaticStr,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum Policy {
    /// Absent from pro forma, present in billable, counted per reason.
    #[default]
    Drop,
    /// In pro forma at its billable value, untouched by rules.
    Pass,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// What pro forma does with Savings Plan and Reserved Instance lines (docs/config.md).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, strum::IntoStaticStr,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum CommitmentPolicy {
    /// Commitments owned inside the group pass through; others are re-rated as on-demand.
    #[default]
    Group,
    OnDemand,
    Pass,
}

impl CommitmentPolicy {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// One pricing rule. Within a plan, no two rules share a scope (the scope is the rule's key) in
/// the same period, so the most specific match is always unique.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PricingRule {
    pub name: String,
    pub scope: RuleScope,
    pub adjustment: Adjustment,
    /// The billing periods the rule takes part in: `[from, until)`, open where `None`.
    pub from: Option<Period>,
    pub until: Option<Period>,
    /// Under `stacking = "ordered"`: the chain ends with this rule for the lines it matches.
    pub last: bool,
}

impl PricingRule {
    /// The multiplier applied to the base: markup p -> 1 + p/100, discount p -> 1 - p/100,
    /// tiering (free tier kept) -> 1. Exact: percentages have at most 6 decimal places. A
    /// fixed rate replaces the base instead (`Adjustment::FixedRate`): 1 here.
    pub fn factor(&self) -> Decimal {
        match self.adjustment {
            Adjustment::Discount(p) => Decimal::ONE - p / Decimal::ONE_HUNDRED,
            Adjustment::Markup(p) => Decimal::ONE + p / Decimal::ONE_HUNDRED,
            Adjustment::Tiering { .. } | Adjustment::FixedRate(_) => Decimal::ONE,
        }
    }

    /// Whether the rule takes part in `period`.
    pub fn in_force(&self, period: Period) -> bool {
        self.from.is_none_or(|f| f <= period) && self.until.is_none_or(|u| period < u)
    }

    /// Whether this rule's validity and `other`'s share a period.
    pub fn overlaps(&self, other: &PricingRule) -> bool {
        let starts_before_end = |a: &PricingRule, b: &PricingRule| match (a.from, b.until) {
            (Some(from), Some(until)) => from < until,
            _ => true,
        };
        starts_before_end(self, other) && starts_before_end(other, self)
    }
}

/// How the rules of a plan combine on a line (SPEC §5.2).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, strum::IntoStaticStr,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum Stacking {
    /// Exactly one rule applies, the most specific match (AWS Billing Conductor).
    #[default]
    MostSpecific,
    /// Every matching rule applies, in the plan's order, each to the previous result, until a
    /// rule with `final = true`.
    Ordered,
}

/// What a rule matches. Equal scopes in one plan are a configuration error.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, strum::IntoStaticStr)]
#[strum(serialize_all = "kebab-case")]
pub enum RuleScope {
    Global,
    /// Matches `line_item_product_code`.
    Service {
        service: String,
    },
    /// Matches `bill_billing_entity`.
    BillingEntity {
        billing_entity: String,
    },
    /// `service` plus `usage_type` and/or `operation` (at least one is set).
    Sku {
        service: String,
        usage_type: Option<String>,
        operation: Option<String>,
    },
}

impl RuleScope {
    pub fn as_str(&self) -> &'static str {
        self.into()
    }

    /// Higher is more specific: sku 3 > service 2 > billing-entity 1 > global 0.
    pub fn specificity(&self) -> u8 {
        match self {
            RuleScope::Global => 0,
            RuleScope::BillingEntity { .. } => 1,
            RuleScope::Service { .. } => 2,
            RuleScope::Sku { .. } => 3,
        }
    }
}

impl fmt::Display for RuleScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleScope::Global => f.write_str("global"),
            RuleScope::Service { service } => write!(f, "service {service}"),
            RuleScope::BillingEntity { billing_entity } => {
                write!(f, "billing-entity {billing_entity}")
            }
            RuleScope::Sku {
                service,
                usage_type,
                operation,
            } => {
                write!(f, "sku {service}")?;
                if let Some(u) = usage_type {
                    write!(f, " usage-type {u}")?;
                }
                if let Some(o) = operation {
                    write!(f, " operation {o}")?;
                }
                Ok(())
            }
        }
    }
}

/// How a rule changes the base. Percentages are in 0..=100 for discounts, >= 0 for markups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, strum::IntoStaticStr)]
#[strum(serialize_all = "kebab-case")]
pub enum Adjustment {
    Discount(Decimal),
    Markup(Decimal),
    /// A unit price in the bill currency: cost = usage amount × rate (sku rules with a usage
    /// type only).
    FixedRate(Decimal),
    /// Only `free_tier = true` (no change) validates today: removing the free tier needs public
    /// price tiers, which CUR input lacks.
    Tiering {
        free_tier: bool,
    },
}

impl Adjustment {
    pub fn as_str(&self) -> &'static str {
        self.into()
    }

    /// The percentage of a discount or markup.
    pub fn percent(&self) -> Option<Decimal> {
        match self {
            Adjustment::Discount(p) | Adjustment::Markup(p) => Some(*p),
            Adjustment::Tiering { .. } | Adjustment::FixedRate(_) => None,
        }
    }
}

/// A fee or credit added to a group's pro forma (docs/config.md). Amounts are in the group's
/// bill currency (USD, or CNY, INR … when AWS bills its payers in that), as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CustomLineItem {
    pub name: String,
    pub billing_group: String,
    /// Defaults to the group's primary account.
    pub account_id: String,
    pub kind: CustomKind,
    pub amount: CustomAmount,
    /// First billing period, inclusive.
    pub from: Period,
    /// First billing period no longer charged; `None` recurs forever.
    pub until: Option<Period>,
    pub description: String,
}

impl CustomLineItem {
    /// Whether the item is charged in `p`: `from <= p < until`.
    pub fn active_in(&self, p: Period) -> bool {
        self.from <= p && self.until.is_none_or(|until| p < until)
    }
}

/// `type = "fee" | "credit"`: the kind decides the sign, amounts are always positive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, strum::IntoStaticStr)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum CustomKind {
    Fee,
    Credit,
}

impl CustomKind {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// +1 for fees, -1 for credits.
    pub fn sign(self) -> Decimal {
        match self {
            CustomKind::Fee => Decimal::ONE,
            CustomKind::Credit => Decimal::NEGATIVE_ONE,
        }
    }
}

/// A custom line item's amount, always > 0 (the kind gives the sign).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum CustomAmount {
    /// Per billing period, in the group's bill currency.
    Flat(Decimal),
    /// A percentage of the group's pro forma total before custom line items, plus the named
    /// flat items of the same group.
    Percent {
        percent: Decimal,
        base_includes: Vec<String>,
        service: Option<ServiceFilter>,
        exclude_savings_plan_negation: bool,
    },
}

/// Restricts a percentage item's base by `line_item_product_code`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum ServiceFilter {
    Is(String),
    Not(String),
}

impl ServiceFilter {
    pub fn matches(&self, product_code: &str) -> bool {
        match self {
            ServiceFilter::Is(s) => s == product_code,
            ServiceFilter::Not(s) => s != product_code,
        }
    }
}

/// Customer tax added on invoices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaxProfile {
    pub name: String,
    pub label: String,
    /// 0..=100; always 0 for reverse charge.
    pub percent: Decimal,
    pub reverse_charge: bool,
}

/// Everything wrong with a configuration, each problem with its location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub source_name: String,
    pub problems: Vec<Problem>,
}

/// One problem: where (`file:line:col: key path`) and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub location: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        let s = if n == 1 { "" } else { "s" };
        write!(
            f,
            "invalid configuration {} ({n} problem{s}):",
            self.source_name
        )?;
        for problem in &self.problems {
            write!(f, "\n  {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Reads and validates a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let source_name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, &source_name),
        Err(e) => Err(ConfigError {
            problems: vec![Problem {
                location: source_name.clone(),
                message: format!("cannot read the configuration file: {e}"),
            }],
            source_name,
        }),
    }
}

/// Parses and validates configuration text; `source_name` prefixes every error location.
pub fn parse(text: &str, source_name: &str) -> Result<Config, ConfigError> {
    let mut report = Report::new(text);
    let read = raw::read(text, &mut report);
    let mut config = validate::validate(read, &mut report);
    report.finish(source_name)?;
    config.hash = crate::sha256_hex(text.as_bytes());
    config.source_name = source_name.to_string();
    Ok(config)
}

impl Config {
    pub fn group(&self, name: &str) -> Option<&BillingGroup> {
        self.groups.iter().find(|g| g.name == name)
    }

    pub fn plan(&self, name: &str) -> Option<&PricingPlan> {
        self.plans.iter().find(|p| p.name == name)
    }

    pub fn rule(&self, name: &str) -> Option<&PricingRule> {
        self.rules.iter().find(|r| r.name == name)
    }

    pub fn tax_profile(&self, name: &str) -> Option<&TaxProfile> {
        self.tax_profiles.iter().find(|t| t.name == name)
    }

    /// The rate from `from` to `to` for period `p` (1 `from` = rate `to`); always 1 when they
    /// are the same currency.
    pub fn fx_rate(&self, p: Period, from: &str, to: &str) -> Option<Decimal> {
        if from == to {
            return Some(Decimal::ONE);
        }
        self.fx.get(&(p, from.to_string(), to.to_string())).copied()
    }

    /// The rules of a plan, in the plan's order (names are validated, so none is missing).
    pub fn plan_rules<'a>(
        &'a self,
        plan: &'a PricingPlan,
    ) -> impl Iterator<Item = &'a PricingRule> {
        plan.rules.iter().filter_map(|name| self.rule(name))
    }

    /// Custom line items charged to `group` in period `p`.
    pub fn custom_items_in<'a>(
        &'a self,
        group: &'a str,
        p: Period,
    ) -> impl Iterator<Item = &'a CustomLineItem> {
        self.custom_line_items
            .iter()
            .filter(move |c| c.billing_group == group && c.active_in(p))
    }

    /// FX coverage needs the data: which periods get processed, and each group's bill currency
    /// (`bill_currency(period, group)`, its rows' `line_item_currency_code`). Every (group,
    /// period) invoiced in another currency than it is billed in, without a rate, is reported
    /// at once, each with the key to add.
    pub fn check_fx(
        &self,
        periods: &[Period],
        bill_currency: impl Fn(Period, &BillingGroup) -> String,
    ) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        for group in &self.groups {
            for &p in periods {
                let bill = bill_currency(p, group);
                let to = group.invoice_currency(&bill);
                if self.fx_rate(p, &bill, to).is_some() {
                    continue;
                }
                let message = if bill == USD {
                    format!(
                        "no FX rate from USD to {to} for billing period {p}: add `{to} = \
                         \"<rate>\"` under [fx.\"{p}\"]"
                    )
                } else {
                    format!(
                        "AWS bills this group in {bill} (its rows' line_item_currency_code) and it \
                         is invoiced in {to}: no FX rate from {bill} to {to} for billing period \
                         {p}: add `{to} = \"<rate>\"` (1 {bill} = <rate> {to}) under \
                         [fx.\"{p}\".{bill}]"
                    )
                };
                problems.push(Problem {
                    location: format!(
                        "{}: {} currency",
                        self.source_name,
                        item_path(validate::GROUP, &group.name)
                    ),
                    message,
                });
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError {
                source_name: self.source_name.clone(),
                problems,
            })
        }
    }
}

/// `[[section]] "name"`: how problems name an entry of an array of tables.
fn item_path(section: &str, name: &str) -> String {
    format!("[[{section}]] {name:?}")
}

/// Problems found so far, kept as byte offsets until they become `file:line:col` locations.
struct Report<'t> {
    text: &'t str,
    issues: Vec<Issue>,
}

struct Issue {
    offset: Option<usize>,
    path: String,
    message: String,
}

impl<'t> Report<'t> {
    fn new(text: &'t str) -> Self {
        Self {
            text,
            issues: Vec::new(),
        }
    }

    /// A problem at byte `offset` of the text (or nowhere in particular).
    fn add(&mut self, offset: Option<usize>, path: impl Into<String>, message: impl Into<String>) {
        self.issues.push(Issue {
            offset,
            path: path.into(),
            message: message.into(),
        });
    }

    /// A problem at a spanned value.
    fn at<T>(
        &mut self,
        at: &toml::Spanned<T>,
        path: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.add(Some(at.span().start), path, message);
    }

    fn count(&self) -> usize {
        self.issues.len()
    }

    /// Problems in file order, so the list reads top to bottom like the file.
    fn finish(mut self, source_name: &str) -> Result<(), ConfigError> {
        if self.issues.is_empty() {
            return Ok(());
        }
        self.issues.sort_by_key(|i| i.offset.unwrap_or(usize::MAX));
        let problems = self
            .issues
            .into_iter()
            .map(|issue| {
                let mut location = source_name.to_string();
                if let Some(offset) = issue.offset {
                    let (line, col) = line_col(self.text, offset);
                    location.push_str(&format!(":{line}:{col}"));
                }
                if !issue.path.is_empty() {
                    location.push_str(": ");
                    location.push_str(&issue.path);
                }
                Problem {
                    location,
                    message: issue.message,
                }
            })
            .collect();
        Err(ConfigError {
            source_name: source_name.to_string(),
            problems,
        })
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// Helpers shared by the configuration unit tests and the tests that need a configuration.
#[cfg(test)]
pub(crate) mod testing {
    /// The text of the case `tests/config/<name>.toml`.
    macro_rules! case {
        ($name:literal) => {
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/config/",
                $name,
                ".toml"
            ))
        };
    }
    pub(crate) use case;

    pub(crate) fn valid(text: &str) -> super::Config {
        super::parse(text, "billing.toml").unwrap_or_else(|e| panic!("{e}"))
    }

    /// `tests/config/minimal.toml`: one organization group on one plan with one global rule;
    /// tests append what they check.
    pub(crate) const BASE: &str = case!("minimal");

    pub(crate) fn with(extra: &str) -> String {
        format!("{BASE}\n{extra}")
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::testing::*;
    use super::*;

    fn assert_contains(haystack: &str, needles: &[&str]) {
        for needle in needles {
            assert!(
                haystack.contains(needle),
                "{haystack:?} should contain {needle:?}"
            );
        }
    }

    #[test]
    fn a_cluster_is_a_df_url_with_a_host_and_a_port() {
        assert_eq!(
            parse_cluster_url("df://scheduler:50050"),
            Ok(("scheduler".to_string(), 50050))
        );
        for bad in [
            "http://scheduler:50050",
            "df://scheduler",
            "scheduler:50050",
            "df://:50050",
            "df://scheduler:50050/x",
        ] {
            let err = parse_cluster_url(bad).unwrap_err();
            assert!(
                err.starts_with(bad) && err.contains("df://host:port"),
                "{err}"
            );
        }
    }

    #[test]
    fn memory_limits_read_binary_and_decimal_units() {
        assert_eq!(parse_memory_limit("4GiB"), Ok(4 << 30));
        assert_eq!(parse_memory_limit("512 MiB"), Ok(512 << 20));
        assert_eq!(parse_memory_limit("2GB"), Ok(2_000_000_000));
        assert_eq!(parse_memory_limit("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_memory_limit("1073741824"), Ok(1 << 30));
        for bad in ["lots", "", "4 GiBs", "-1GiB", "1MiB"] {
            assert!(parse_memory_limit(bad).is_err(), "{bad:?} accepted");
        }
    }

    /// SPEC §4's example, verbatim: the documented file must parse.
    const SPEC_EXAMPLE: &str = case!("spec-example");

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn period(s: &str) -> Period {
        s.parse().unwrap()
    }

    #[test]
    fn spec_example_parses_into_the_documented_plan() {
        let c = valid(SPEC_EXAMPLE);
        assert_eq!(
            c.io.input.as_deref(),
            Some("s3://cur-exports/acme-reseller/cur2")
        );
        assert_eq!(c.io.output.as_deref(), Some("s3://billing-out/rerate"));
        assert_eq!(
            c.transfer,
            Some(Transfer {
                account_id: "999999999999".into(),
                name: Some("Example Reseller Ltd".into())
            })
        );
        assert_eq!(c.invoice.number_prefix, "ER");
        assert_eq!(c.invoice.payment_terms_days, 30);
        assert_eq!(
            c.invoice.issuer,
            Some(Party {
                name: "Example Reseller Ltd".into(),
                address: vec!["1 Main St".into(), "Dublin".into()],
                tax_id: Some("IE123".into()),
            })
        );
        assert_eq!(c.storage, StorageSettings::default());

        let acme = c.group("acme").unwrap();
        assert_eq!(acme.display_name, "ACME Corp");
        assert_eq!(
            acme.members,
            Members {
                payers: vec!["111111111111".into()],
                accounts: vec![],
                matches: vec![]
            }
        );
        assert_eq!(acme.primary_account_id, "111111111111");
        assert_eq!(acme.pricing_plan, "reseller");
        assert_eq!(acme.currency.as_deref(), Some("EUR"));
        assert_eq!(acme.tax_profile.as_deref(), Some("ie-vat"));
        assert_eq!(
            acme.bill_to.as_ref().unwrap().tax_id.as_deref(),
            Some("IE456")
        );

        let plan = c.plan("reseller").unwrap();
        assert_eq!(plan.rules, ["all-5-off", "s3-10-off", "m5-markup"]);
        assert_eq!(plan.credits, Policy::Drop);
        assert_eq!(plan.aws_tax, Policy::Drop);
        assert_eq!(plan.commitments, CommitmentPolicy::Group);
        assert_eq!(c.plan_rules(plan).count(), 3);

        assert_eq!(c.rule("all-5-off").unwrap().scope, RuleScope::Global);
        assert_eq!(
            c.rule("all-5-off").unwrap().adjustment,
            Adjustment::Discount(dec("5"))
        );
        assert_eq!(
            c.rule("s3-10-off").unwrap().scope,
            RuleScope::Service {
                service: "AmazonS3".into()
            }
        );
        let m5 = c.rule("m5-markup").unwrap();
        assert_eq!(
            m5.scope,
            RuleScope::Sku {
                service: "AmazonEC2".into(),
                usage_type: Some("USW2-BoxUsage:m5.large".into()),
                operation: Some("RunInstances".into()),
            }
        );
        assert_eq!(m5.factor(), dec("1.2"));

        let fee = &c.custom_line_items[0];
        assert_eq!(fee.name, "managed-service-fee");
        assert_eq!(fee.account_id, "111111111111");
        assert_eq!(fee.kind, CustomKind::Fee);
        assert_eq!(fee.amount, CustomAmount::Flat(dec("500.00")));
        assert_eq!(
            (fee.from, fee.until),
            (period("2025-01"), Some(period("2026-01")))
        );
        assert_eq!(fee.description, "Managed services");

        let vat = c.tax_profile("ie-vat").unwrap();
        assert_eq!(
            (vat.label.as_str(), vat.percent, vat.reverse_charge),
            ("VAT", dec("23"), false)
        );

        assert_eq!(
            c.fx_rate(period("2025-11"), USD, "EUR"),
            Some(dec("0.9210"))
        );
        assert_eq!(
            c.fx_rate(period("2025-11"), USD, "GBP"),
            Some(dec("0.7890"))
        );
        assert_eq!(c.fx_rate(period("2025-10"), USD, "EUR"), None);
        assert_eq!(c.hash, crate::sha256_hex(SPEC_EXAMPLE.as_bytes()));
        assert_eq!(c.source_name, "billing.toml");
    }

    #[test]
    fn optional_sections_and_defaults() {
        let c = valid(BASE);
        assert_eq!(c.io, IoDefaults::default());
        assert_eq!(c.transfer, None);
        assert_eq!(c.invoice, InvoiceSettings::default());
        assert_eq!(c.invoice.number_prefix, "INV");
        assert_eq!(c.invoice.payment_terms_days, 30);
        let acme = c.group("acme").unwrap();
        assert_eq!(acme.display_name, "acme");
        assert_eq!(acme.currency, None);
        assert_eq!(acme.invoice_currency("CNY"), "CNY");
        assert_eq!(acme.primary_account_id, "111111111111");
        assert_eq!(acme.tax_profile, None);
        let plan = c.plan("standard").unwrap();
        assert_eq!(
            (
                plan.credits,
                plan.refunds,
                plan.private_discounts,
                plan.aws_tax,
                plan.support
            ),
            (
                Policy::Drop,
                Policy::Drop,
                Policy::Drop,
                Policy::Drop,
                Policy::Drop
            )
        );
        assert_eq!(plan.commitments, CommitmentPolicy::Group);
    }

    #[test]
    fn an_empty_file_is_a_valid_configuration_with_no_groups() {
        let c = valid("");
        assert!(c.groups.is_empty());
        assert_eq!(
            c.hash,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn hash_is_sha256_of_the_text() {
        let c = valid(BASE);
        assert_eq!(c.hash.len(), 64);
        assert_eq!(c.hash, crate::sha256_hex(BASE.as_bytes()));
        assert_ne!(c.hash, valid(&with("# a comment changes the hash")).hash);
    }

    #[test]
    fn error_display_lists_every_problem_on_its_own_line() {
        let err = parse(
            "[[billing-group]]\nname = \"acme\"\npricing-plan = \"nope\"\n",
            "conf/billing.toml",
        )
        .unwrap_err();
        assert_eq!(err.source_name, "conf/billing.toml");
        let shown = err.to_string();
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(lines.len(), 3, "{shown}");
        assert_eq!(
            lines[0],
            "invalid configuration conf/billing.toml (2 problems):"
        );
        assert!(lines[1].starts_with("  conf/billing.toml:1:1: [[billing-group]] \"acme\": "));
        assert!(lines[2].starts_with("  conf/billing.toml:3:16: [[billing-group]] \"acme\" pricing-plan: unknown pricing plan \"nope\""));
    }

    #[test]
    fn credit_exception_globs_become_like_patterns_that_match_only_what_they_say() {
        let e = |glob: &str| CreditException {
            description: glob.into(),
            service: None,
            policy: Policy::Pass,
        };
        assert_eq!(e("*Well-Architected*").like_pattern(), "%Well-Architected%");
        assert_eq!(e("MAP ?redit").like_pattern(), "MAP _redit");
        assert_eq!(e("100%_off\\").like_pattern(), "100\\%\\_off\\\\");
    }

    #[test]
    fn factor_of_markup_discount_and_tiering() {
        let rule = |adjustment| PricingRule {
            name: "r".into(),
            scope: RuleScope::Global,
            adjustment,
            from: None,
            until: None,
            last: false,
        };
        assert_eq!(rule(Adjustment::Markup(dec("20"))).factor(), dec("1.2"));
        assert_eq!(rule(Adjustment::Discount(dec("5"))).factor(), dec("0.95"));
        assert_eq!(rule(Adjustment::Discount(dec("100"))).factor(), dec("0"));
        assert_eq!(
            rule(Adjustment::Discount(dec("12.345678"))).factor(),
            dec("0.87654322")
        );
        assert_eq!(
            rule(Adjustment::Tiering { free_tier: true }).factor(),
            Decimal::ONE
        );
    }

    #[test]
    fn scope_names() {
        assert_eq!(RuleScope::Global.as_str(), "global");
        assert_eq!(
            RuleScope::Service {
                service: "S".into()
            }
            .as_str(),
            "service"
        );
        assert_eq!(
            RuleScope::BillingEntity {
                billing_entity: "AWS".into()
            }
            .as_str(),
            "billing-entity"
        );
        let sku = RuleScope::Sku {
            service: "S".into(),
            usage_type: None,
            operation: Some("Op".into()),
        };
        assert_eq!(sku.as_str(), "sku");
        assert!(
            sku.specificity()
                > RuleScope::Service {
                    service: "S".into()
                }
                .specificity()
        );
    }

    #[test]
    fn custom_line_item_is_active_from_inclusive_until_exclusive() {
        let c = valid(case!("item-from-until"));
        let fee = &c.custom_line_items[0];
        let credit = &c.custom_line_items[1];
        assert!(!fee.active_in(period("2024-12")));
        assert!(fee.active_in(period("2025-01")));
        assert!(fee.active_in(period("2030-06")));
        assert!(!credit.active_in(period("2025-02")));
        assert!(credit.active_in(period("2025-03")));
        assert!(!credit.active_in(period("2025-04")));
        assert_eq!(c.custom_items_in("acme", period("2025-03")).count(), 2);
        assert_eq!(c.custom_items_in("acme", period("2025-04")).count(), 1);
        assert_eq!(credit.kind.sign(), Decimal::NEGATIVE_ONE);
    }

    #[test]
    fn fx_rate_is_one_within_a_currency() {
        let c = valid(BASE);
        assert_eq!(c.fx_rate(period("2025-11"), USD, USD), Some(Decimal::ONE));
        assert_eq!(
            c.fx_rate(period("2025-11"), "CNY", "CNY"),
            Some(Decimal::ONE)
        );
        assert_eq!(c.fx_rate(period("2025-11"), USD, "EUR"), None);
    }

    #[test]
    fn fx_rates_from_usd_and_from_other_bill_currencies() {
        let c = valid(case!("fx-from-bill-currencies"));
        let rate = |p: &str, from: &str, to: &str| c.fx_rate(period(p), from, to);
        assert_eq!(rate("2025-11", USD, "EUR"), Some(dec("0.92")));
        assert_eq!(rate("2025-11", "CNY", "EUR"), Some(dec("0.128")));
        assert_eq!(rate("2025-11", "CNY", USD), Some(dec("0.1390")));
        assert_eq!(rate("2025-11", "INR", "EUR"), Some(dec("0.0107")));
        assert_eq!(rate("2025-11", "INR", "INR"), Some(Decimal::ONE));
        // Never inverted nor crossed: each rate is the one written.
        assert_eq!(rate("2025-11", "EUR", "CNY"), None);
        assert_eq!(rate("2025-11", "INR", USD), None);
        // [fx."P".USD] is [fx."P"] under another name.
        assert_eq!(rate("2025-12", USD, "CNY"), Some(dec("7.1")));
        assert_eq!(rate("2025-12", USD, "EUR"), Some(dec("0.93")));
        assert_eq!(rate("2025-12", "CNY", "EUR"), Some(dec("0.129")));
        assert_eq!(c.fx.len(), 7, "{:?}", c.fx);
    }

    #[test]
    fn check_fx_reports_every_missing_group_currency_period() {
        let c = valid(case!("fx-groups-in-three-currencies"));
        let usd = |_: Period, _: &BillingGroup| USD.to_string();
        assert_eq!(c.check_fx(&[period("2025-11")], usd), Ok(()));
        assert_eq!(c.check_fx(&[], usd), Ok(()));
        let err = c
            .check_fx(
                &[period("2025-10"), period("2025-11"), period("2025-12")],
                usd,
            )
            .unwrap_err();
        let problems: Vec<String> = err.problems.iter().map(ToString::to_string).collect();
        assert_eq!(problems.len(), 4, "{problems:#?}");
        assert_contains(
            &problems[0],
            &[
                "billing.toml: [[billing-group]] \"acme\" currency",
                "EUR",
                "2025-10",
                "[fx.\"2025-10\"]",
            ],
        );
        assert_contains(&problems[1], &["\"acme\"", "2025-12"]);
        assert_contains(&problems[2], &["\"globex\"", "GBP", "2025-10"]);
        assert_contains(&problems[3], &["\"globex\"", "GBP", "2025-12"]);
    }

    #[test]
    fn check_fx_converts_from_each_groups_bill_currency() {
        let c = valid(case!("fx-from-bill-currencies"));
        let billed_in =
            |currency: &'static str| move |_: Period, _: &BillingGroup| currency.to_string();
        // EUR from CNY or INR in 2025-11, from USD or CNY in 2025-12.
        for bill in [USD, "CNY", "INR"] {
            assert_eq!(c.check_fx(&[period("2025-11")], billed_in(bill)), Ok(()));
        }
        assert_eq!(c.check_fx(&[period("2025-12")], billed_in("CNY")), Ok(()));
        // An invoice in the bill currency needs no rate.
        let eur = |_: Period, _: &BillingGroup| "EUR".to_string();
        assert_eq!(c.check_fx(&[period("2030-01")], eur), Ok(()));
        let err = c
            .check_fx(&[period("2025-12")], billed_in("INR"))
            .unwrap_err();
        assert_eq!(err.problems.len(), 1, "{err}");
        assert_eq!(
            err.problems[0].to_string(),
            "billing.toml: [[billing-group]] \"acme\" currency: AWS bills this group in INR \
             (its rows' line_item_currency_code) and it is invoiced in EUR: no FX rate from INR to \
             EUR for billing period 2025-12: add `EUR = \"<rate>\"` (1 INR = <rate> EUR) under \
             [fx.\"2025-12\".INR]"
        );
    }

    #[test]
    fn load_reads_a_file_and_names_it_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("billing.toml");
        std::fs::write(&path, BASE).unwrap();
        let c = load(&path).unwrap();
        assert_eq!(c.source_name, path.display().to_string());

        std::fs::write(&path, "[[billing-group]]\nname = \"acme\"\n").unwrap();
        let err = load(&path).unwrap_err();
        assert!(
            err.problems[0]
                .location
                .starts_with(&format!("{}:1:1", path.display())),
            "{err}"
        );

        let missing = load(&dir.path().join("nope.toml")).unwrap_err();
        assert_contains(&missing.to_string(), &["nope.toml", "cannot read"]);
    }

    #[test]
    fn line_and_column_count_characters() {
        let text = "a = 1\nbé = \"x\"\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        assert_eq!(line_col(text, 10), (2, 4));
        assert_eq!(line_col(text, 8), (2, 2)); // inside 'é': clamps to its start
    }
}
