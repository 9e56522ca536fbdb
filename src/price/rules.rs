//! Rule resolution (SPEC §5.2), decided once per distinct key in Rust over the config, never per
//! row. Whether a rule matches a line depends only on the values rules name: a service, a usage
//! type or operation of that service, a billing entity. So for each plan, every combination of
//! the values its rules name (and `None`, for any value no rule names) gets its **chain**: the
//! rules that apply, in order, and what they make of the base, a factor or a unit price.
//!
//! `sql/rate.sql` looks up each decision key's named values (`rule_values`) and joins its chain
//! (`rule_chains`) in one equi-join. Only rules in force in the period take part (`from`,
//! `until`), so the tables are registered per period ([`register`]).

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::prelude::SessionContext;
use rust_decimal::Decimal;

use crate::config::{Adjustment, Config, PricingPlan, PricingRule, RuleScope, Stacking};
use crate::error::Result;
use crate::money;
use crate::period::Period;

/// The values of a line that rules can name (`None`: a value no rule of the plan names).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    pub service: Option<String>,
    pub usage_type: Option<String>,
    pub operation: Option<String>,
    pub billing_entity: Option<String>,
}

/// What a plan's rules make of a line with one [`Key`].
#[derive(Debug, Clone, PartialEq)]
pub struct Chain<'a> {
    pub plan: &'a str,
    pub key: Key,
    /// The rules applied, in order (most-specific: one).
    pub applied: Vec<&'a PricingRule>,
    /// Rules that matched but did not apply: less specific ones, or those after a final rule.
    pub beaten: Vec<&'a PricingRule>,
    pub price: Price,
}

/// The result of a chain: the base times a factor, or the usage amount times a unit price.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Price {
    Factor(Decimal),
    UnitRate(Decimal),
}

impl Price {
    /// This price with `rule` applied after it. A unit price replaces the base and what was
    /// applied to it.
    pub fn then(self, rule: &PricingRule) -> Price {
        match (&rule.adjustment, self) {
            (Adjustment::FixedRate(rate), _) => Price::UnitRate(*rate),
            (_, Price::Factor(f)) => Price::Factor(f * rule.factor()),
            (_, Price::UnitRate(r)) => Price::UnitRate(r * rule.factor()),
        }
    }

    /// The amount of a line with `base` and `usage` units at this price, exact (the engine
    /// rounds it once, at the storage scale).
    pub fn amount(self, base: Decimal, usage: Decimal) -> Decimal {
        match self {
            Price::Factor(f) => base * f,
            Price::UnitRate(r) => usage * r,
        }
    }
}

/// How specific a rule is, most specific highest: sku with usage type and operation, sku with
/// a usage type, sku with an operation, service, billing entity, global.
fn rank(scope: &RuleScope) -> u8 {
    match scope {
        RuleScope::Sku {
            usage_type: Some(_),
            operation: Some(_),
            ..
        } => 5,
        RuleScope::Sku {
            usage_type: Some(_),
            ..
        } => 4,
        RuleScope::Sku { .. } => 3,
        RuleScope::Service { .. } => 2,
        RuleScope::BillingEntity { .. } => 1,
        RuleScope::Global => 0,
    }
}

fn matches(scope: &RuleScope, key: &Key) -> bool {
    let is = |named: &str, value: &Option<String>| value.as_deref() == Some(named);
    match scope {
        RuleScope::Global => true,
        RuleScope::Service { service } => is(service, &key.service),
        RuleScope::BillingEntity { billing_entity } => is(billing_entity, &key.billing_entity),
        RuleScope::Sku {
            service,
            usage_type,
            operation,
        } => {
            is(service, &key.service)
                && usage_type.as_ref().is_none_or(|u| is(u, &key.usage_type))
                && operation.as_ref().is_none_or(|o| is(o, &key.operation))
        }
    }
}

/// The plan's price rules in force in `period`, in the plan's order. Keeping the free tier is
/// what AWS's bill already does, not a price: such a rule takes no part, so it never hides a
/// markup or discount.
fn in_force<'a>(config: &'a Config, plan: &'a PricingPlan, period: Period) -> Vec<&'a PricingRule> {
    plan.rules
        .iter()
        .filter_map(|name| config.rule(name))
        .filter(|r| !matches!(r.adjustment, Adjustment::Tiering { .. }))
        .filter(|r| r.in_force(period))
        .collect()
}

/// The chain of `rules` (a plan's, in order) for a line with `key`; `None` when no rule matches.
pub fn chain<'a>(plan: &'a PricingPlan, rules: &[&'a PricingRule], key: Key) -> Option<Chain<'a>> {
    let matching: Vec<&PricingRule> = rules
        .iter()
        .copied()
        .filter(|r| matches(&r.scope, &key))
        .collect();
    if matching.is_empty() {
        return None;
    }
    let (applied, beaten) = match plan.stacking {
        Stacking::MostSpecific => {
            let mut by_rank = matching;
            // Stable: among rules of one rank (validation keeps them apart) the plan's order.
            by_rank.sort_by_key(|r| std::cmp::Reverse(rank(&r.scope)));
            let beaten = by_rank.split_off(1);
            (by_rank, beaten)
        }
        Stacking::Ordered => {
            let end = matching
                .iter()
                .position(|r| r.last)
                .map_or(matching.len(), |i| i + 1);
            let mut applied = matching;
            let beaten = applied.split_off(end);
            (applied, beaten)
        }
    };
    let price = applied
        .iter()
        .fold(Price::Factor(Decimal::ONE), |price, rule| price.then(rule));
    Some(Chain {
        plan: &plan.name,
        key,
        applied,
        beaten,
        price,
    })
}

/// Every chain of every plan for `period`: one per combination of the values the plan's rules
/// name in force then (usage types and operations only with the service that names them).
pub fn chains(config: &Config, period: Period) -> Vec<Chain<'_>> {
    let mut out = Vec::new();
    for plan in &config.plans {
        let rules = in_force(config, plan, period);
        let values = named_values(&rules);
        let services = values
            .services
            .iter()
            .map(|s| Some(s.clone()))
            .chain([None]);
        for service in services {
            let of_service = |set: &BTreeSet<(String, String)>| -> Vec<Option<String>> {
                set.iter()
                    .filter(|(s, _)| Some(s) == service.as_ref())
                    .map(|(_, v)| Some(v.clone()))
                    .chain([None])
                    .collect()
            };
            for usage_type in of_service(&values.usage_types) {
                for operation in of_service(&values.operations) {
                    let entities = values
                        .entities
                        .iter()
                        .map(|e| Some(e.clone()))
                        .chain([None]);
                    for billing_entity in entities {
                        let key = Key {
                            service: service.clone(),
                            usage_type: usage_type.clone(),
                            operation: operation.clone(),
                            billing_entity,
                        };
                        out.extend(chain(plan, &rules, key));
                    }
                }
            }
        }
    }
    out
}

/// The values a plan's rules name.
#[derive(Default)]
struct Named {
    services: BTreeSet<String>,
    /// (service, usage type) and (service, operation) of sku rules.
    usage_types: BTreeSet<(String, String)>,
    operations: BTreeSet<(String, String)>,
    entities: BTreeSet<String>,
}

fn named_values(rules: &[&PricingRule]) -> Named {
    let mut named = Named::default();
    for r in rules {
        match &r.scope {
            RuleScope::Global => {}
            RuleScope::Service { service } => {
                named.services.insert(service.clone());
            }
            RuleScope::BillingEntity { billing_entity } => {
                named.entities.insert(billing_entity.clone());
            }
            RuleScope::Sku {
                service,
                usage_type,
                operation,
            } => {
                named.services.insert(service.clone());
                if let Some(u) = usage_type {
                    named.usage_types.insert((service.clone(), u.clone()));
                }
                if let Some(o) = operation {
                    named.operations.insert((service.clone(), o.clone()));
                }
            }
        }
    }
    named
}

/// Registers `rule_values` (pricing_plan, field, service, value: what the plan's rules in force
/// in `period` name) and `rule_chains` (one row per chain: its key, the rules applied and
/// beaten, its factor or unit rate).
pub fn register(ctx: &SessionContext, config: &Config, period: Period) -> Result<()> {
    let mut values: [Vec<Option<String>>; 4] = Default::default();
    for plan in &config.plans {
        let named = named_values(&in_force(config, plan, period));
        let mut push = |field: &str, service: Option<&str>, value: &str| {
            let row = [Some(plan.name.as_str()), Some(field), service, Some(value)];
            for (c, v) in values.iter_mut().zip(row) {
                c.push(v.map(str::to_string));
            }
        };
        for s in &named.services {
            push("service", Some(s), s);
        }
        for (s, u) in &named.usage_types {
            push("usage_type", Some(s), u);
        }
        for (s, o) in &named.operations {
            push("operation", Some(s), o);
        }
        for e in &named.entities {
            push("billing_entity", None, e);
        }
    }
    let names = ["pricing_plan", "field", "service", "value"];
    let columns = names.iter().zip(values).map(|(name, v)| {
        let array: ArrayRef = Arc::new(StringArray::from(v));
        (*name, array)
    });
    replace(ctx, "rule_values", RecordBatch::try_from_iter(columns)?)?;

    let chains = chains(config, period);
    let text = |f: &dyn Fn(&Chain) -> Option<String>| -> ArrayRef {
        Arc::new(chains.iter().map(f).collect::<StringArray>())
    };
    let names = |rules: &[&PricingRule], sep: &str| {
        (!rules.is_empty()).then(|| {
            rules
                .iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>()
                .join(sep)
        })
    };
    let decimal = |f: &dyn Fn(&Price) -> Option<Decimal>| -> Result<ArrayRef> {
        Ok(Arc::new(money::decimal_array(
            chains.iter().map(|c| f(&c.price)),
            money::CHAIN_PRECISION,
            money::CHAIN_SCALE,
        )?))
    };
    let columns: [(&str, ArrayRef); 9] = [
        ("pricing_plan", text(&|c| Some(c.plan.to_string()))),
        ("service", text(&|c| c.key.service.clone())),
        ("usage_type", text(&|c| c.key.usage_type.clone())),
        ("operation", text(&|c| c.key.operation.clone())),
        ("billing_entity", text(&|c| c.key.billing_entity.clone())),
        ("matched_rule", text(&|c| names(&c.applied, " > "))),
        ("rules_beaten", text(&|c| names(&c.beaten, ", "))),
        (
            "factor",
            decimal(&|p| match p {
                Price::Factor(f) => Some(*f),
                Price::UnitRate(_) => None,
            })?,
        ),
        (
            "fixed_rate",
            decimal(&|p| match p {
                Price::UnitRate(r) => Some(*r),
                Price::Factor(_) => None,
            })?,
        ),
    ];
    replace(ctx, "rule_chains", RecordBatch::try_from_iter(columns)?)?;
    Ok(())
}

fn replace(ctx: &SessionContext, name: &str, batch: RecordBatch) -> Result<()> {
    ctx.deregister_table(name)?;
    ctx.register_batch(name, batch)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        crate::config::parse(text, "billing.toml").unwrap_or_else(|e| panic!("{e}"))
    }

    const GROUP: &str = "[[billing-group]]\nname = \"acme\"\npayer-account-id = \"111111111111\"\npricing-plan = \"p\"\n";

    fn key(service: &str, usage_type: Option<&str>) -> Key {
        Key {
            service: Some(service.into()),
            usage_type: usage_type.map(str::to_string),
            ..Key::default()
        }
    }

    fn price_of(config: &Config, period: &str, key: Key) -> Option<(String, Price)> {
        let period = period.parse().unwrap();
        let plan = config.plan("p").unwrap();
        let rules = in_force(config, plan, period);
        chain(plan, &rules, key).map(|c| {
            let names: Vec<&str> = c.applied.iter().map(|r| r.name.as_str()).collect();
            (names.join(" > "), c.price)
        })
    }

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    const E7_RULES: &str = r#"
[[pricing-rule]]
name = "gp3-fixed"
scope = "sku"
service = "AmazonEC2"
usage-type = "USW2-EBS:VolumeUsage.gp3"
type = "fixed-rate"
rate = "0.07"

[[pricing-rule]]
name = "all-5-off"
scope = "global"
type = "discount"
percent = 5
"#;

    #[test]
    fn e7_a_unit_price_wins_as_the_most_specific_rule_and_stacks_when_ordered() {
        let most = config(&format!(
            "{GROUP}[[pricing-plan]]\nname = \"p\"\nrules = [\"gp3-fixed\", \"all-5-off\"]\n{E7_RULES}"
        ));
        let gp3 = key("AmazonEC2", Some("USW2-EBS:VolumeUsage.gp3"));
        assert_eq!(
            price_of(&most, "2025-11", gp3.clone()),
            Some(("gp3-fixed".into(), Price::UnitRate(d("0.07"))))
        );
        assert_eq!(
            price_of(&most, "2025-11", key("AmazonEC2", None)),
            Some(("all-5-off".into(), Price::Factor(d("0.95"))))
        );
        let ordered = config(&format!(
            "{GROUP}[[pricing-plan]]\nname = \"p\"\nstacking = \"ordered\"\nrules = [\"gp3-fixed\", \"all-5-off\"]\n{E7_RULES}"
        ));
        // 1500 GB-month × 0.07 × 0.95 = 99.75
        assert_eq!(
            price_of(&ordered, "2025-11", gp3),
            Some(("gp3-fixed > all-5-off".into(), Price::UnitRate(d("0.0665"))))
        );
    }

    #[test]
    fn e8_ordered_rules_apply_in_turn_until_a_final_one() {
        let c = config(&format!(
            r#"{GROUP}
[[pricing-plan]]
name = "p"
stacking = "ordered"
rules = ["up-10", "s3-20-off", "all-5-off"]

[[pricing-rule]]
name = "up-10"
scope = "global"
type = "markup"
percent = 10

[[pricing-rule]]
name = "s3-20-off"
scope = "service"
service = "AmazonS3"
type = "discount"
percent = 20
final = true

[[pricing-rule]]
name = "all-5-off"
scope = "global"
type = "discount"
percent = 5
"#
        ));
        // S3 100 → 110 → 88 (final: the last rule is skipped); EC2 100 → 110 → 104.50.
        assert_eq!(
            price_of(&c, "2025-11", key("AmazonS3", None)),
            Some(("up-10 > s3-20-off".into(), Price::Factor(d("0.88"))))
        );
        assert_eq!(
            price_of(&c, "2025-11", key("AmazonEC2", None)),
            Some(("up-10 > all-5-off".into(), Price::Factor(d("1.045"))))
        );
    }

    #[test]
    fn e11_a_rule_takes_part_only_inside_its_validity() {
        let c = config(&format!(
            r#"{GROUP}
[[pricing-plan]]
name = "p"
rules = ["new-10", "old-5"]

[[pricing-rule]]
name = "new-10"
scope = "global"
type = "discount"
percent = 10
from = "2025-06"

[[pricing-rule]]
name = "old-5"
scope = "global"
type = "discount"
percent = 5
until = "2025-06"
"#
        ));
        let any = || key("AmazonEC2", None);
        assert_eq!(
            price_of(&c, "2025-05", any()),
            Some(("old-5".into(), Price::Factor(d("0.95"))))
        );
        assert_eq!(
            price_of(&c, "2025-06", any()),
            Some(("new-10".into(), Price::Factor(d("0.90"))))
        );
    }

    #[test]
    fn every_combination_of_named_values_gets_its_chain_and_unnamed_ones_none() {
        let c = config(&format!(
            "{GROUP}[[pricing-plan]]\nname = \"p\"\nrules = [\"gp3-fixed\"]\n{E7_RULES}"
        ));
        let keys: Vec<Key> = chains(&c, "2025-11".parse().unwrap())
            .into_iter()
            .map(|c| c.key)
            .collect();
        // Only the usage type the rule names, of the service it names, has a chain.
        assert_eq!(
            keys,
            vec![key("AmazonEC2", Some("USW2-EBS:VolumeUsage.gp3"))]
        );
    }
}
