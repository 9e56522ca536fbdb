//! `rerate explain`: for one line item id, which group took it and why, which rule matched (and
//! which it beat), the policy applied, its base and its pro forma cost.

use std::path::Path;

use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::{col, lit};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::job::Job;
use crate::price;

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
    "commitment_owner",
    "commitment_owner_group",
    "rule_sku_usage_type_operation",
    "rule_sku_usage_type",
    "rule_sku_operation",
    "rule_service",
    "rule_billing_entity",
    "rule_global",
    "pricing_rule",
    "factor",
    "line_item_unblended_cost",
    "pricing_public_on_demand_cost",
    "base_cost",
    "proforma_cost",
];

/// One matching input row, field by field (name, value; absent values are omitted).
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub fields: Vec<(String, String)>,
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
        if let Some(owner) = self.get("commitment_owner") {
            out.push_str(&format!(
                "  commitment owner: account {owner} (group {})\n",
                self.get("commitment_owner_group").unwrap_or("none")
            ));
        }
        let candidates: Vec<String> = FIELDS
            .iter()
            .filter(|f| f.starts_with("rule_"))
            .filter_map(|f| {
                self.get(f)
                    .map(|r| format!("{r} ({})", f.trim_start_matches("rule_").replace('_', "-")))
            })
            .collect();
        if g("treatment") == "rerate" {
            match candidates.split_first() {
                Some((won, beaten)) => {
                    out.push_str(&format!("  rule:      {won}, factor {}\n", g("factor")));
                    if !beaten.is_empty() {
                        out.push_str(&format!(
                            "  beaten:    {} (less specific; rules never stack)\n",
                            beaten.join(", ")
                        ));
                    }
                }
                None => out.push_str("  rule:      none matched: the base is charged as is\n"),
            }
            out.push_str(&format!(
                "  base:      {} (public on-demand {}, unblended {})\n",
                g("base_cost"),
                g("pricing_public_on_demand_cost"),
                g("line_item_unblended_cost")
            ));
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
    let cur = job
        .discover()
        .await?
        .table(&job.ctx)?
        .filter(col("identity_line_item_id").eq(lit(line_item_id)))?;
    let rated = price::rated(&job.ctx, cur).await?;
    let batches = rated.select_columns(FIELDS)?.collect().await?;
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
            out.push(Explanation { fields });
        }
    }
    if out.is_empty() {
        return Err(Error::LineItemNotFound(line_item_id.to_string()));
    }
    Ok(out)
}
