//! The pipeline's SQL, one statement per file in `sql/`, named after its stage.

/// Group assignment, policies, rule resolution and pro forma amounts over `cur`.
pub const RATE: &str = include_str!("../sql/rate.sql");

/// Row and amount accounting per group, type, service and treatment over `rated`.
pub const ACCOUNTING: &str = include_str!("../sql/accounting.sql");
