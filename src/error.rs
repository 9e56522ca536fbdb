//! The library's error type, and which errors are the user's to fix (exit 1) and which are the
//! environment's (exit 2, retryable).
//!
//! A variant's message says what failed and how to fix it. Where it wraps another library's
//! error it prints that error's text itself (those texts already carry their causes), so
//! [`chain`] never prints a cause twice; only our own wrapped errors are `source`s.

use std::path::PathBuf;

use datafusion::error::DataFusionError;

use crate::config::ConfigError;
use crate::money::Overflow;
use crate::period::Period;
use cur_sample::SampleError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),

    #[error("cannot read config file {path}: {error}")]
    ConfigFile {
        path: PathBuf,
        error: std::io::Error,
    },

    #[error("no input given: pass --input URL or set [io] input in the config")]
    NoInput,

    #[error("no output given: pass --output URL or set [io] output in the config")]
    NoOutput,

    #[error("{url:?} is not a storage location: {reason}")]
    BadUrl { url: String, reason: String },

    #[error("no CUR Parquet files (*.parquet) found under {location}")]
    NoInputFiles { location: String },

    #[error(
        "{file}: not a readable Parquet file ({reason}); re-export it or remove it from the input"
    )]
    CorruptFile { file: String, reason: String },

    #[error(
        "{file}: required column {column:?} is missing (the README lists the required CUR \
         columns under \"Required columns\")"
    )]
    MissingColumn { file: String, column: String },

    #[error("{file}: column {column:?} holds a value rerate cannot read as {expected}: {reason}")]
    BadValue {
        file: String,
        column: String,
        expected: String,
        reason: String,
    },

    #[error("{file}: column {column:?} has type {found}, expected {expected}")]
    WrongType {
        file: String,
        column: String,
        found: String,
        expected: String,
    },

    #[error(
        "{file}: unknown line item type {kind:?} in {rows} row(s); rerate handles every CUR line \
         item type explicitly (sql/line_item_types.csv), so a type AWS added since must be added \
         there, with what it is, before this bill can be re-rated"
    )]
    UnknownLineItemType {
        kind: String,
        file: String,
        rows: u64,
    },

    #[error(
        "{file}: {rows} row(s) have no {column}; every CUR line item has one, so the file is \
         damaged or not a CUR export"
    )]
    MissingValue {
        file: String,
        column: String,
        rows: u64,
    },

    #[error(
        "{file}: {rows} row(s) have line_item_currency_code {currency:?}; rerate re-rates USD \
         bills (invoices convert with [fx] rates), so a bill in another currency cannot be mixed in"
    )]
    NotUsd {
        file: String,
        currency: String,
        rows: u64,
    },

    #[error(
        "line item {id:?} ({start} to {end}) appears {count} times, in {files}; each line item \
         is billed once: is the same export in the input twice?"
    )]
    DuplicateLineItem {
        id: String,
        start: String,
        end: String,
        count: u64,
        files: String,
    },

    #[error(
        "{rows} row(s) of billing period {period} are in a {folder} folder ({files}); AWS writes \
         one period per folder: re-export the period or move the file"
    )]
    PeriodFolderMismatch {
        folder: Period,
        period: Period,
        rows: u64,
        files: String,
    },

    #[error("period {period} not found in the input; periods found: {found}")]
    PeriodNotInInput { period: Period, found: String },

    #[error(
        "period {period}: {rows} row(s) from account(s) {accounts} belong to no billing group \
         (--strict); add the accounts or their payer to a [[billing-group]]"
    )]
    Unassigned {
        period: Period,
        rows: u64,
        accounts: String,
    },

    #[error("line item id {0:?} not found in the input")]
    LineItemNotFound(String),

    #[error(
        "period {period}: billable output holds {written} rows but the input has {input}: refusing to continue"
    )]
    AccountingMismatch {
        period: Period,
        input: u64,
        written: u64,
    },

    #[error(transparent)]
    AmountOverflow(#[from] Overflow),

    #[error("Arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),

    #[error("storage error at {location}: {error}")]
    Storage {
        location: String,
        error: Box<object_store::Error>,
    },

    #[error("Delta table {table}: {error}")]
    Delta {
        table: String,
        error: Box<deltalake::DeltaTableError>,
    },

    #[error("writing export file {location}: {error}")]
    Export {
        location: String,
        error: Box<parquet::errors::ParquetError>,
    },

    #[error("rendering invoice {number}: {error}")]
    InvoiceRender {
        number: String,
        error: Box<minijinja::Error>,
    },

    #[error("query engine: {0}")]
    Engine(Box<DataFusionError>),

    #[error(transparent)]
    Sample(#[from] SampleError),

    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },

    /// Something rerate's own code got wrong: never the input's fault.
    #[error("internal error: {what}; this is a bug in rerate, please report it")]
    Internal { what: String },
}

impl From<DataFusionError> for Error {
    fn from(e: DataFusionError) -> Self {
        Error::Engine(Box::new(e))
    }
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> Error {
        move |error| Error::Io {
            path: path.to_string(),
            error,
        }
    }

    /// Process exit code: 0 success, 1 for the user's input or config (retrying cannot help),
    /// 2 for the environment (storage, network, memory: retry).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_)
            | Error::ConfigFile { .. }
            | Error::NoInput
            | Error::NoOutput
            | Error::BadUrl { .. }
            | Error::NoInputFiles { .. }
            | Error::CorruptFile { .. }
            | Error::MissingColumn { .. }
            | Error::BadValue { .. }
            | Error::WrongType { .. }
            | Error::UnknownLineItemType { .. }
            | Error::MissingValue { .. }
            | Error::NotUsd { .. }
            | Error::DuplicateLineItem { .. }
            | Error::PeriodFolderMismatch { .. }
            | Error::PeriodNotInInput { .. }
            | Error::Unassigned { .. }
            | Error::LineItemNotFound(_)
            | Error::AmountOverflow(_) => 1,
            // Retrying a bug gives the same bug.
            Error::AccountingMismatch { .. } | Error::Internal { .. } | Error::Arrow(_) => 1,
            Error::Storage { .. } | Error::Io { .. } => 2,
            // Our own writes are planned and validated before Delta sees them: what fails
            // there is storage, a concurrent commit or the table's state, all retryable.
            Error::Delta { .. } => 2,
            // Export files are encoded from our own plan: what fails there is the upload.
            Error::Export { .. } => 2,
            Error::InvoiceRender { .. } => 1,
            // The sample's options are the user's; storing its files is the environment's.
            Error::Sample(e) if e.is_storage() => 2,
            Error::Sample(_) => 1,
            Error::Engine(e) => engine_exit_code(e),
        }
    }
}

/// An error and its causes, one per line (`caused by: …`), as `main` prints them and the run
/// manifest records them.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(&format!("\n  caused by: {s}"));
        source = s.source();
    }
    out
}

fn engine_exit_code(e: &DataFusionError) -> i32 {
    match e {
        DataFusionError::ObjectStore(_)
        | DataFusionError::IoError(_)
        | DataFusionError::ResourcesExhausted(_) => 2,
        DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => {
            engine_exit_code(inner)
        }
        DataFusionError::Shared(inner) => engine_exit_code(inner),
        DataFusionError::External(inner) => {
            if inner.downcast_ref::<object_store::Error>().is_some()
                || inner.downcast_ref::<std::io::Error>().is_some()
            {
                2
            } else if let Some(df) = inner.downcast_ref::<DataFusionError>() {
                engine_exit_code(df)
            } else {
                1
            }
        }
        _ => 1,
    }
}
