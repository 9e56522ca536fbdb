//! The pipeline's SQL, one statement per file in `sql/` named after its stage, and the line
//! item type table the statements join.

/// The billing group of every (usage account, payer) pair of `cur`.
pub const ACCOUNT_GROUPS: &str = include_str!("../sql/account_groups.sql");

/// Every row of `cur` with its billing group: the billable rows.
pub const ASSIGN: &str = include_str!("../sql/assign.sql");

/// Every row of `cur` assigned, classified, ruled and priced.
pub const RATE: &str = include_str!("../sql/rate.sql");

/// Row and amount accounting per group, type, service and treatment over `rated`.
pub const ACCOUNTING: &str = include_str!("../sql/accounting.sql");

/// Line items that appear more than once (same id and usage interval) in `cur`.
pub const DUPLICATES: &str = include_str!("../sql/duplicates.sql");

/// What each line item type is (`price::line_items` parses it; the SQL joins it).
pub const LINE_ITEM_TYPES: &str = include_str!("../sql/line_item_types.csv");
