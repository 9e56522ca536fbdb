//! Outputs: Delta tables, invoice documents, customer exports and the run manifest.

pub mod delta;
pub mod exports;
pub mod invoices;
pub mod manifest;
