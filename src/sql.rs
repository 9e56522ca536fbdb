//! The pipeline's SQL, one statement per file in `sql/` named after its stage, and the line
//! item type table the statements join.

/// The billing group of every (usage account, payer) pair of `cur`.
pub(crate) const ACCOUNT_GROUPS: &str = include_str!("../sql/account_groups.sql");

/// The payer of every usage account of `account_groups`.
pub(crate) const ACCOUNT_PAYERS: &str = include_str!("../sql/account_payers.sql");

/// Every row of `cur` with its billing group: the billable rows.
pub(crate) const ASSIGN: &str = include_str!("../sql/assign.sql");

/// Every row of `cur` assigned, classified, ruled and priced.
pub(crate) const RATE: &str = include_str!("../sql/rate.sql");

/// Row and amount accounting per group, type, service and treatment over `rated`.
pub(crate) const ACCOUNTING: &str = include_str!("../sql/accounting.sql");

/// The currency of every (period start, payer, billing group) of `cur`, grouped by `account_groups`.
pub(crate) const BILL_CURRENCIES: &str = include_str!("../sql/bill_currencies.sql");

/// Line items that appear more than once (same id and usage interval) in `cur`.
pub(crate) const DUPLICATES: &str = include_str!("../sql/duplicates.sql");

/// What each line item type is (`price::line_items` parses it; the SQL joins it).
pub(crate) const LINE_ITEM_TYPES: &str = include_str!("../sql/line_item_types.csv");
