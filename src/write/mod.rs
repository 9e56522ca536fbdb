//! Outputs: Delta tables and the run manifest.

pub mod delta;
pub mod manifest;
