//! The validated config as small Arrow tables (groups, members, plan policies), registered in the
//! session and joined by `sql/rate.sql`: config is data, never pasted into SQL. The rules, which
//! depend on the period, are `price::rules`'.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use datafusion::prelude::SessionContext;

use crate::config::Config;
use crate::error::Result;

/// Registers `line_item_types`, `services`, `group_accounts`, `group_orgs`, `groups` and
/// `credit_exceptions`.
pub fn register(ctx: &SessionContext, config: &Config) -> Result<()> {
    super::line_items::register(ctx)?;
    crate::invoice::services::register(ctx)?;
    let mut accounts = (Vec::new(), Vec::new());
    let mut orgs = (Vec::new(), Vec::new());
    for g in &config.groups {
        for a in &g.members.accounts {
            accounts.0.push(a.as_str());
            accounts.1.push(g.name.as_str());
        }
        for p in &g.members.payers {
            orgs.0.push(p.as_str());
            orgs.1.push(g.name.as_str());
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

    // Credit exceptions of every plan, in order: `sql/rate.sql` takes each credit's first match.
    let mut plans = Vec::new();
    let mut positions = Vec::new();
    let mut patterns = Vec::new();
    let mut globs = Vec::new();
    let mut services = Vec::new();
    let mut policies = Vec::new();
    for plan in &config.plans {
        for (i, e) in plan.credit_exceptions.iter().enumerate() {
            plans.push(plan.name.as_str());
            positions.push(i as i64);
            patterns.push(e.like_pattern());
            globs.push(e.description.as_str());
            services.push(e.service.as_deref());
            policies.push(e.policy.as_str());
        }
    }
    let columns: [(&str, ArrayRef); 6] = [
        ("pricing_plan", Arc::new(StringArray::from(plans))),
        ("position", Arc::new(Int64Array::from(positions))),
        ("pattern", Arc::new(StringArray::from(patterns))),
        ("description", Arc::new(StringArray::from(globs))),
        ("service", Arc::new(StringArray::from(services))),
        ("policy", Arc::new(StringArray::from(policies))),
    ];
    ctx.register_batch("credit_exceptions", RecordBatch::try_from_iter(columns)?)?;
    Ok(())
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
