//! The AWS Data Exports layout that `rerate` reads and `cur-sample` writes: billing periods
//! (`YYYY-MM`), where a period's files and manifest go, and the manifest itself.
//!
//! A crate of its own so that the billing engine and the generator share one definition
//! without either depending on the other; `rerate` re-exports both modules at
//! `rerate::period` and `rerate::data_exports`.

pub mod data_exports;
pub mod period;
