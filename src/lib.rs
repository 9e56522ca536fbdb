//! rerate: re-rate AWS Cost and Usage Reports into billable and pro forma data, margins and
//! invoices. The entry points are [`run::run`], [`validate::validate`] and [`explain::explain`];
//! `rerate sample` is [`cur_sample::write_sample`].

pub mod cli;
pub mod config;
pub mod engine;
pub mod error;
pub mod explain;
pub mod ingest;
pub mod invoice;
pub mod margin;
pub mod price;
pub mod progress;
pub mod run;
pub mod sql;
pub mod storage;
pub mod validate;
pub mod write;

pub use cur_layout::{data_exports, period};
pub use error::{Error, Result};

use std::path::Path;

/// Reads and validates a `billing.toml`.
pub fn load_config(path: &Path) -> Result<config::Config> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::ConfigFile {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(config::parse(&text, &path.display().to_string())?)
}

/// An error and all its causes, one per line, as `main` prints them.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(&format!("\n  caused by: {text}"));
        }
        source = s.source();
    }
    out
}
