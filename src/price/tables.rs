//! The validated config as small Arrow tables (groups, members, plan policies, rules), registered
//! in the session and joined by `sql/rate.sql`: rules are data, never pasted into SQL.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::prelude::SessionContext;

use crate::config::{Adjustment, Config, Members, PricingRule, RuleScope};
use crate::error::Result;
use crate::money;

/// Registers `line_item_types`, `group_accounts`, `group_orgs`, `groups` and `rules`.
pub fn register(ctx: &SessionContext, config: &Config) -> Result<()> {
    super::line_items::register(ctx)?;
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
            let rule = config.rule(name).expect("validated rule reference");
            // Keeping the free tier is what AWS's bill already does, not a price: such a rule
            // takes no part in the match, so it never hides a markup or discount.
            if matches!(rule.adjustment, Adjustment::Tiering { .. }) {
                continue;
            }
            plan.push(p.name.as_str());
            rules.push(rule);
        }
    }
    let text = |f: fn(&PricingRule) -> Option<&str>| -> ArrayRef {
        Arc::new(rules.iter().map(|r| f(r)).collect::<StringArray>())
    };
    let factors = money::decimal_array(
        rules.iter().map(|r| Some(r.factor())),
        money::FACTOR_PRECISION,
        money::FACTOR_SCALE,
    )?;
    let columns: [(&str, ArrayRef); 8] = [
        ("pricing_plan", Arc::new(StringArray::from(plan))),
        ("rule_name", text(|r| Some(r.name.as_str()))),
        ("kind", text(|r| Some(rule_kind(&r.scope)))),
        (
            "service",
            text(|r| match &r.scope {
                RuleScope::Service { service } | RuleScope::Sku { service, .. } => Some(service),
                _ => None,
            }),
        ),
        (
            "billing_entity",
            text(|r| match &r.scope {
                RuleScope::BillingEntity { billing_entity } => Some(billing_entity),
                _ => None,
            }),
        ),
        (
            "usage_type",
            text(|r| match &r.scope {
                RuleScope::Sku { usage_type, .. } => usage_type.as_deref(),
                _ => None,
            }),
        ),
        (
            "operation",
            text(|r| match &r.scope {
                RuleScope::Sku { operation, .. } => operation.as_deref(),
                _ => None,
            }),
        ),
        ("factor", Arc::new(factors)),
    ];
    Ok(RecordBatch::try_from_iter(columns)?)
}

fn register_strings(
    ctx: &SessionContext,
    table: &str,
    names: &[&str],
    columns: &[Vec<&str>],
) -> Result<()> {
    let arrays = names.iter().zip(columns).map(|(name, values)| {
        let array: ArrayRef = Arc::new(StringArray::from(values.clone()));
        (*name, array)
    });
    ctx.register_batch(table, RecordBatch::try_from_iter(arrays)?)?;
    Ok(())
}
