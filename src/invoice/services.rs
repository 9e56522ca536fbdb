//! Readable names of AWS product codes (`line_item_product_code`) for invoice lines and FOCUS,
//! with each service's FOCUS `ServiceCategory` and `ServiceSubcategory`: `sql/services.csv`,
//! the one place they are written (the SQL joins the same text as the table `services`). A code
//! not in it (a Marketplace product id, a new service) is shown as it is, in FOCUS category
//! `Other`.

use std::sync::LazyLock;

use datafusion::prelude::SessionContext;

use crate::error::Result;

const TABLE: &str = include_str!("../../sql/services.csv");
const HEADER: &str = "product_code,name,service_category,service_subcategory";

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub code: &'static str,
    pub name: &'static str,
    pub category: &'static str,
    pub subcategory: &'static str,
}

static SERVICES: LazyLock<Vec<Service>> = LazyLock::new(|| {
    // The table is ours, compiled in and checked by a unit test: not input.
    parse(TABLE).unwrap_or_else(|e| panic!("sql/services.csv: {e}"))
});

fn parse(text: &'static str) -> std::result::Result<Vec<Service>, String> {
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, header)) if header == HEADER => {}
        _ => return Err(format!("the header must be {HEADER:?}")),
    }
    lines
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| match line.split(',').collect::<Vec<_>>()[..] {
            [code, name, category, subcategory] => Ok(Service {
                code,
                name,
                category,
                subcategory,
            }),
            ref fields => Err(format!(
                "line {}: expected 4 fields, found {}",
                i + 1,
                fields.len()
            )),
        })
        .collect()
}

/// The readable name of `product_code`, or the code itself.
pub fn name(product_code: &str) -> &str {
    SERVICES
        .iter()
        .find(|s| s.code == product_code)
        .map_or(product_code, |s| s.name)
}

/// Registers the table as `services` for the SQL.
pub fn register(ctx: &SessionContext) -> Result<()> {
    use arrow::array::{ArrayRef, RecordBatch, StringArray};
    let column = |f: fn(&Service) -> &'static str| -> ArrayRef {
        std::sync::Arc::new(SERVICES.iter().map(|s| Some(f(s))).collect::<StringArray>())
    };
    let batch = RecordBatch::try_from_iter([
        ("product_code", column(|s| s.code)),
        ("name", column(|s| s.name)),
        ("service_category", column(|s| s.category)),
        ("service_subcategory", column(|s| s.subcategory)),
    ])?;
    ctx.register_batch("services", batch)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_parses_with_each_code_once_and_focus_categories_it_allows() {
        let services = parse(TABLE).unwrap();
        let mut codes: Vec<&str> = services.iter().map(|s| s.code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), services.len());
        for s in &services {
            // FOCUS 1.2: "Other (<category>)" belongs to its category; named subcategories
            // are checked by focus-validator in .ci/run.
            if let Some(parent) = s.subcategory.strip_prefix("Other (") {
                assert_eq!(parent, format!("{})", s.category), "{s:?}");
            }
        }
        assert!(parse("code,name\nx,y\n").is_err());
    }

    #[test]
    fn known_codes_read_well_and_unknown_ones_stay() {
        assert_eq!(name("AmazonEC2"), "Amazon Elastic Compute Cloud (EC2)");
        assert_eq!(
            name("9s2k4hd7rw3qz0mxv5b8ny1tj"),
            "9s2k4hd7rw3qz0mxv5b8ny1tj"
        );
    }
}
