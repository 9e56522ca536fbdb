//! `rerate explain`: for one line item id, which group took it and why, the policy applied, its
//! base, each rule of its chain in order with the value after it (and the rules that matched but
//! did not apply), and its pro forma cost.

use std::path::Path;

use arrow::array::AsArray;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::{col, lit};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::config::{Adjustment, Config, Stacking};
use crate::error::{Error, Result};
use crate::job::Job;
use crate::period::Period;
use crate::price;
use crate::price::rules::Price;

/// Columns of `sql/rate.sql` that explain a row's pricing, in reading order.
const FIELDS: &[&str] = &[
    "billing_period",
    "line_item_line_item_type",
    "line_item_product_code",
    "line_item_usage_type",
    "line_item_operation",
    "bill_billing_entity",
    "line_item_usage_account_id",
    "bill_payer_account_id",
    "billing_group",
    "assigned_by",
    "pricing_plan",
    "charge_class",
    "treatment",
    "credit_exception",
    "commitment_owner",
    "commitment_owner_group",
    "matched_rule",
    "rules_beaten",
    "pricing_rule",
    "factor",
    "fixed_rate",
    "line_item_usage_amount",
    "line_item_unblended_cost",
    "pricing_public_on_demand_cost",
    "base_cost",
    "proforma_cost",
];

/// One matching input row, field by field (name, value; absent values are omitted), and the
/// chain of rules that priced it, step by step.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub fields: Vec<(String, String)>,
    pub steps: Vec<Step>,
    pub stacking: Stacking,
}

/// One rule of a chain and the value after it.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub rule: String,
    /// What the rule does, e.g. `discount 5 %`, `fixed rate 0.07 × usage 1500`.
    pub does: String,
    pub value: Decimal,
}

/// The steps of `chain` (rule names, `a > b`) from `base`, for a line of `usage` units: the
/// chain's own arithmetic (`rules::Price`), with the amount after each rule.
fn steps(config: &Config, chain: &str, base: Decimal, usage: Option<Decimal>) -> Vec<Step> {
    let usage = usage.unwrap_or_default();
    let mut price = Price::Factor(Decimal::ONE);
    let mut out = Vec::new();
    for name in chain.split(" > ") {
        let Some(rule) = config.rule(name) else {
            continue;
        };
        price = price.then(rule);
        let does = match &rule.adjustment {
            Adjustment::FixedRate(rate) => {
                format!("fixed rate {rate} × usage {}", usage.normalize())
            }
            other => match other.percent() {
                Some(p) => format!("{} {p} %", other.as_str()),
                None => other.as_str().to_string(),
            },
        };
        out.push(Step {
            rule: name.to_string(),
            does,
            value: price.amount(base, usage).normalize(),
        });
    }
    out
}

/// Rows under a header, columns padded to their widest cell, the last (an amount) right-aligned;
/// each line indented under the narrative's labels.
fn table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; N]| {
        let mut text = String::from("             ");
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == N {
                text.push_str(&format!("{cell:>w$}"));
            } else {
                text.push_str(&format!("{cell:<w$}  "));
            }
        }
        text.push('\n');
        text
    };
    let mut out = line(header);
    for row in rows {
        out.push_str(&line(row.each_ref().map(String::as_str)));
    }
    out
}

impl Explanation {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A few sentences a billing engineer can read.
    pub fn narrative(&self) -> String {
        let g = |n| self.get(n).unwrap_or("-");
        let mut out = format!(
            "{} line of {} in {} (account {}, payer {}):\n",
            g("line_item_line_item_type"),
            g("line_item_product_code"),
            g("billing_period"),
            g("line_item_usage_account_id"),
            g("bill_payer_account_id"),
        );
        match self.get("assigned_by") {
            Some("match") => out.push_str(&format!("  group:     {} (its match: the row's tag or cost category)\n", g("billing_group"))),
            Some(by) => out.push_str(&format!("  group:     {} (matched by {by})\n", g("billing_group"))),
            None => out.push_str("  group:     _unassigned (no group lists the account or its payer): billable only\n"),
        }
        if let Some(plan) = self.get("pricing_plan") {
            out.push_str(&format!("  plan:      {plan}\n"));
        }
        out.push_str(&format!(
            "  policy:    {} ({})\n",
            g("treatment"),
            g("charge_class")
        ));
        if let Some(glob) = self.get("credit_exception") {
            out.push_str(&format!(
                "  exception: credit description matches {glob:?} (credit-exceptions)\n"
            ));
        }
        if let Some(owner) = self.get("commitment_owner") {
            out.push_str(&format!(
                "  commitment owner: account {owner} (group {})\n",
                self.get("commitment_owner_group").unwrap_or("none")
            ));
        }
        if g("treatment") == "rerate" {
            out.push_str(&format!(
                "  base:      {} (public on-demand {}, unblended {})\n",
                g("base_cost"),
                g("pricing_public_on_demand_cost"),
                g("line_item_unblended_cost")
            ));
            if self.steps.is_empty() {
                out.push_str("  rules:     none matched: the base is charged as is\n");
            } else {
                let stacking = match self.stacking {
                    Stacking::MostSpecific => "the most specific applies",
                    Stacking::Ordered => "applied in order",
                };
                out.push_str(&format!("  rules:     {stacking}\n"));
                let rows: Vec<[String; 4]> = self
                    .steps
                    .iter()
                    .enumerate()
                    .map(|(i, s)| {
                        [
                            (i + 1).to_string(),
                            s.rule.clone(),
                            s.does.clone(),
                            s.value.to_string(),
                        ]
                    })
                    .collect();
                out.push_str(&table(["#", "rule", "does", "value after"], &rows));
            }
            if let Some(beaten) = self.get("rules_beaten") {
                let why = match self.stacking {
                    Stacking::MostSpecific => "less specific: one rule applies, the most specific",
                    Stacking::Ordered => "after a final rule",
                };
                out.push_str(&format!("  not applied: {beaten} ({why})\n"));
            }
        }
        out.push_str(&format!(
            "  billable:  {}\n  pro forma: {}\n",
            g("line_item_unblended_cost"),
            g("proforma_cost")
        ));
        out
    }
}

pub async fn explain(
    config_path: &Path,
    input: Option<&str>,
    line_item_id: &str,
) -> Result<Vec<Explanation>> {
    let job = Job::open(crate::load_config(config_path)?, input)?;
    let rows = job
        .discover()
        .await?
        .table(&job.ctx)?
        .filter(col("identity_line_item_id").eq(lit(line_item_id)))?;
    // The rules in force depend on the period: each period's rows are rated with its own.
    let periods = rows
        .clone()
        .select_columns(&["billing_period"])?
        .distinct()?
        .collect()
        .await?;
    let mut batches = Vec::new();
    for b in &periods {
        let column = arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Utf8)?;
        for period in column.as_string::<i32>().iter().flatten() {
            let Ok(parsed) = period.parse::<Period>() else {
                continue;
            };
            let of_period = rows.clone().filter(col("billing_period").eq(lit(period)))?;
            let rated = price::rated(
                &job.ctx,
                job.cluster.as_ref(),
                &job.config,
                parsed,
                of_period,
            )
            .await?;
            batches.extend(rated.select_columns(FIELDS)?.collect().await?);
        }
    }
    let options = FormatOptions::default();
    let mut out = Vec::new();
    for b in &batches {
        let formatters = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        for row in 0..b.num_rows() {
            let fields = FIELDS
                .iter()
                .zip(&formatters)
                .zip(b.columns())
                .filter(|(_, c)| c.is_valid(row))
                .map(|((name, f), _)| (name.to_string(), f.value(row).to_string()))
                .collect();
            let mut e = Explanation {
                fields,
                steps: Vec::new(),
                stacking: Stacking::default(),
            };
            if let Some(plan) = e.get("pricing_plan").and_then(|p| job.config.plan(p)) {
                e.stacking = plan.stacking;
            }
            let number = |name: &str| e.get(name).and_then(|v| v.parse::<Decimal>().ok());
            if let (Some(chain), Some(base)) = (e.get("pricing_rule"), number("base_cost")) {
                e.steps = steps(&job.config, chain, base, number("line_item_usage_amount"));
            }
            out.push(e);
        }
    }
    if out.is_empty() {
        return Err(Error::LineItemNotFound(line_item_id.to_string()));
    }
    Ok(out)
}
