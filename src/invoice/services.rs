//! Readable names of AWS product codes (`line_item_product_code`) for invoice lines and FOCUS,
//! with each service's FOCUS `ServiceCategory` and `ServiceSubcategory`: `sql/services.csv`,
//! the one place they are written (the SQL joins the same text as the table `services`). A code
//! not in it (a Marketplace product id, a new service) is shown as it is, in FOCUS category
//! `Other`.

use std::sync::LazyLock;

use datafusion::prelude::SessionContext;

use crate::error::Result;

use crate::sql::SERVICES as TABLE;
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
    crate::sql::rows(text, HEADER, |fields| match fields[..] {
        [code, name, category, subcategory] => Ok(Service {
            code,
            name,
            category,
            subcategory,
        }),
        _ => Err(format!("expected 4 fields, found {}", fields.len())),
    })
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
    crate::sql::register_csv(ctx, "services", TABLE)
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
