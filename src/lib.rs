//! rerate: re-rate AWS Cost and Usage Reports into billable and pro forma data, margins and
//! invoices. The entry points are [`run::run`], [`books::close::close`], [`validate::validate`]
//! and [`explain::explain`];
//! `rerate sample` is [`cur_sample::write_sample`].

#![warn(unreachable_pub)]

pub mod books;
pub mod cli;
#[cfg(feature = "cluster")]
pub mod cluster;
pub mod config;
pub mod engine;
pub mod error;
pub mod explain;
mod focus;
pub mod ingest;
pub mod invoice;
pub mod job;
mod margin;
pub mod money;
pub mod price;
mod progress;
mod report;
pub mod run;
mod sql;
pub mod storage;
pub mod validate;
pub mod write;

pub use cur_layout::{data_exports, period};
pub use error::{Error, Result, chain as error_chain};

use std::path::Path;

/// The SHA-256 of `bytes` in lower-case hex: the config's hash, and each document's in
/// `periods/`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(bytes))
}

/// Reads and validates a `billing.toml`.
pub fn load_config(path: &Path) -> Result<config::Config> {
    let text = std::fs::read_to_string(path).map_err(|error| Error::ConfigFile {
        path: path.to_path_buf(),
        error,
    })?;
    Ok(config::parse(&text, &path.display().to_string())?)
}
