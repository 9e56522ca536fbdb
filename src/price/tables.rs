//! The validated config as small Arrow tables (groups, members, plan policies, rules), registered
//! in the session and joined by `sql/rate.sql`: rules are data, never pasted into SQL.

use std::sync::Arc;

use arrow::array::{ArrayRef, Decimal128Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::prelude::SessionContext;
use rust_decimal::Decimal;

use crate::config::{Config, Members, PricingRule, RuleScope};
use crate::error::Result;

/// Factors are exact: percentages have at most 6 decimals, so `1 ± p/100` fits 8.
pub const FACTOR_PRECISION: u8 = 16;
pub const FACTOR_SCALE: u32 = 8;

/// Registers `group_accounts`, `group_orgs`, `groups` and `rules`.
pub fn register(ctx: &SessionContext, config: &Config) -> Result<()> {
    let mut accounts = (Vec::new(), Vec::new());
    let mut orgs = (Vec::new(), Vec::new());
    for g in &config.groups {
        match &g.members {
            Members::Accounts(list) => {
                for a in list {
                    accounts.0.push(a.as_str());
                    accounts.1.push(g.name.as_str());
                }
            }
            Members::Organization { payer_account_id } => {
                orgs.0.push(payer_account_id.as_str());
                orgs.1.push(g.name.as_str());
            }
        }
    }
    register_strings(
        ctx,
        "group_accounts",
        &["account_id", "billing_group"],
        &[accounts.0, accounts.1],
    )?;
    register_strings(
        ctx,
        "group_orgs",
        &["payer_account_id", "billing_group"],
        &[orgs.0, orgs.1],
    )?;

    let mut cols: [Vec<&str>; 8] = Default::default();
    for g in &config.groups {
        let plan = config
            .plan(&g.pricing_plan)
            .expect("validated plan reference");
        let row = [
            g.name.as_str(),
            plan.name.as_str(),
            plan.credits.as_str(),
            plan.refunds.as_str(),
            plan.private_discounts.as_str(),
            plan.aws_tax.as_str(),
            plan.support.as_str(),
            plan.commitments.as_str(),
        ];
        for (c, v) in cols.iter_mut().zip(row) {
            c.push(v);
        }
    }
    let names = [
        "billing_group",
        "pricing_plan",
        "credits",
        "refunds",
        "private_discounts",
        "aws_tax",
        "support",
        "commitments",
    ];
    register_strings(ctx, "groups", &names, &cols)?;

    ctx.register_batch("rules", rules_batch(config)?)?;
    Ok(())
}

/// The rule kind `sql/rate.sql` joins on: one per key shape, most specific first.
pub fn rule_kind(scope: &RuleScope) -> &'static str {
    match scope {
        RuleScope::Sku {
            usage_type: Some(_),
            operation: Some(_),
            ..
        } => "sku-usage-type-operation",
        RuleScope::Sku {
            usage_type: Some(_),
            ..
        } => "sku-usage-type",
        RuleScope::Sku { .. } => "sku-operation",
        RuleScope::Service { .. } => "service",
        RuleScope::BillingEntity { .. } => "billing-entity",
        RuleScope::Global => "global",
    }
}

fn rules_batch(config: &Config) -> Result<RecordBatch> {
    let mut plan = Vec::new();
    let mut rules: Vec<&PricingRule> = Vec::new();
    for p in &config.plans {
        for name in &p.rules {
            plan.push(p.name.as_str());
            rules.push(config.rule(name).expect("validated rule reference"));
        }
    }
    let text = |f: fn(&PricingRule) -> Option<&str>| -> ArrayRef {
        Arc::new(rules.iter().map(|r| f(r)).collect::<StringArray>())
    };
    let factors = rules
        .iter()
        .map(|r| Some(factor_mantissa(r.factor())))
        .collect::<Decimal128Array>();
    let schema = Schema::new(vec![
        Field::new("pricing_plan", DataType::Utf8, false),
        Field::new("rule_name", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("service", DataType::Utf8, true),
        Field::new("billing_entity", DataType::Utf8, true),
        Field::new("usage_type", DataType::Utf8, true),
        Field::new("operation", DataType::Utf8, true),
        Field::new(
            "factor",
            DataType::Decimal128(FACTOR_PRECISION, FACTOR_SCALE as i8),
            false,
        ),
    ]);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(plan)),
        text(|r| Some(r.name.as_str())),
        text(|r| Some(rule_kind(&r.scope))),
        text(|r| match &r.scope {
            RuleScope::Service { service } | RuleScope::Sku { service, .. } => Some(service),
            _ => None,
        }),
        text(|r| match &r.scope {
            RuleScope::BillingEntity { billing_entity } => Some(billing_entity),
            _ => None,
        }),
        text(|r| match &r.scope {
            RuleScope::Sku { usage_type, .. } => usage_type.as_deref(),
            _ => None,
        }),
        text(|r| match &r.scope {
            RuleScope::Sku { operation, .. } => operation.as_deref(),
            _ => None,
        }),
        Arc::new(factors.with_precision_and_scale(FACTOR_PRECISION, FACTOR_SCALE as i8)?),
    ];
    Ok(RecordBatch::try_new(Arc::new(schema), columns)?)
}

/// `factor` at scale 8, exactly (validation keeps percentages to 6 decimals).
fn factor_mantissa(factor: Decimal) -> i128 {
    let mut f = factor;
    f.rescale(FACTOR_SCALE);
    debug_assert_eq!(
        f, factor,
        "factor {factor} has more than {FACTOR_SCALE} decimals"
    );
    f.mantissa()
}

fn register_strings(
    ctx: &SessionContext,
    table: &str,
    names: &[&str],
    columns: &[Vec<&str>],
) -> Result<()> {
    let schema = Schema::new(
        names
            .iter()
            .map(|n| Field::new(*n, DataType::Utf8, false))
            .collect::<Vec<_>>(),
    );
    let arrays: Vec<ArrayRef> = columns
        .iter()
        .map(|c| Arc::new(StringArray::from(c.clone())) as ArrayRef)
        .collect();
    ctx.register_batch(table, RecordBatch::try_new(Arc::new(schema), arrays)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factors_are_exact_at_scale_8() {
        assert_eq!(factor_mantissa(Decimal::new(95, 2)), 95_000_000);
        assert_eq!(factor_mantissa(Decimal::new(1_072_500, 6)), 107_250_000);
    }
}
