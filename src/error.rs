//! The library's error type, and which errors are the user's to fix (exit 1) and which are the
//! environment's (exit 2, retryable).

use std::path::PathBuf;

use datafusion::error::DataFusionError;

use crate::config::ConfigError;
use crate::period::Period;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),

    #[error("cannot read config file {path}: {source}")]
    ConfigFile {
        path: PathBuf,
        source: std::io::Error,
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
        "{file}: required column {column:?} is missing (SPEC §3 lists the required CUR columns)"
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
        "{file}: unknown line item type {kind:?} in {rows} row(s); rerate handles every CUR line item \
         type explicitly, so a new AWS type must be added to its policy table before re-rating"
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

    #[error("amount {value} is too large to account exactly (more than 28 significant digits)")]
    AmountOverflow { value: String },

    #[error("Arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),

    #[error("storage error at {location}: {source}")]
    Storage {
        location: String,
        source: Box<object_store::Error>,
    },

    #[error("Delta table {table}: {source}")]
    Delta {
        table: String,
        source: Box<deltalake::DeltaTableError>,
    },

    #[error("writing export file {location}: {source}")]
    Export {
        location: String,
        source: Box<parquet::errors::ParquetError>,
    },

    #[error("rendering invoice {number}: {source}")]
    InvoiceRender {
        number: String,
        source: Box<minijinja::Error>,
    },

    #[error("query engine: {0}")]
    Engine(Box<DataFusionError>),

    #[error(transparent)]
    Sample(#[from] cur_sample::SampleError),

    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl From<DataFusionError> for Error {
    fn from(e: DataFusionError) -> Self {
        Error::Engine(Box::new(e))
    }
}

impl Error {
    /// Process exit code (SPEC §2): 1 for the user's input or config, 2 for the environment.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Storage { .. } | Error::Io(_) => 2,
            // Our own writes are planned and validated before Delta sees them: what fails
            // there is storage, a concurrent commit or the table's state, all retryable.
            Error::Delta { .. } => 2,
            // Export files are encoded from our own plan: what fails there is the upload.
            Error::Export { .. } => 2,
            Error::Engine(e) => engine_exit_code(e),
            Error::Sample(_) => 2,
            _ => 1,
        }
    }
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
