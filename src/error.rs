//! The library's error type, and which errors are the user's to fix (exit 1) and which are the
//! environment's (exit 2, retryable).
//!
//! A variant's message says what failed and how to fix it. Where it wraps another library's
//! error it prints that error's text itself (those texts already carry their causes), so
//! [`chain`] never prints a cause twice; only our own wrapped errors are `source`s.

use std::path::PathBuf;

use datafusion::error::DataFusionError;
use deltalake::DeltaTableError;
use deltalake::kernel::transaction::TransactionError;

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
        "{manifest}: lists {file}, which is not in the input: the delivery is incomplete \
         (copy every file the manifest lists, or remove the manifest to read the folder as it is)"
    )]
    IncompleteDelivery { manifest: String, file: String },

    #[error(
        "{file}: column {column:?} has the name of a column rerate adds itself; rename it in the \
         input"
    )]
    ReservedColumn { file: String, column: String },

    #[error("{manifest}: not a readable CUR manifest ({reason})")]
    BadManifest { manifest: String, reason: String },

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
        "{file}: payer account {payer} is billed in several currencies in billing period \
         {period} ({currencies}); AWS bills a payer in one currency (line_item_currency_code), \
         so its {rows} {currency} row(s) in this file cannot be part of the same bill: is another \
         payer's export in the input?"
    )]
    PayerCurrencies {
        file: String,
        rows: u64,
        period: Period,
        payer: String,
        currency: String,
        currencies: String,
    },

    #[error(
        "billing group {group:?} spans payers billed in different currencies in billing period \
         {period}: {currencies}; a group is billed and invoiced from one bill currency, so put the \
         payers (or accounts) of each currency in a [[billing-group]] of their own"
    )]
    GroupCurrencies {
        period: Period,
        group: String,
        currencies: String,
    },

    #[error(
        "{file}: billing group {group:?} is billed in {currency:?} in billing period {period} \
         (line_item_currency_code), a currency rerate cannot invoice from (its minor unit is \
         unknown); supported: {supported}"
    )]
    UnsupportedBillCurrency {
        file: String,
        period: Period,
        group: String,
        currency: String,
        supported: String,
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
        "{scope}: {what} do not reconcile: expected {expected}, found {found}; nothing written"
    )]
    Unreconciled {
        scope: String,
        what: &'static str,
        expected: String,
        found: String,
    },

    #[error(
        "period {period}: billable output holds {written} rows but the input has {input}: refusing to continue"
    )]
    AccountingMismatch {
        period: Period,
        input: u64,
        written: u64,
    },

    #[error(
        "period {period} is closed for {groups}: their invoices are issued, and a run would \
         change them. To correct the period, run it again with --correct: each group whose \
         invoice changes gets a credit note and a replacement invoice, and every issued \
         document stays as it is"
    )]
    PeriodClosed { period: Period, groups: String },

    #[error(
        "period {period} has no drafts to issue under {output}: run it first (rerate run \
         --period {period}); close issues the invoices of its last run"
    )]
    PeriodNotRun { period: Period, output: String },

    #[error("period {period} has not ended (it ends on {ends}): close it once its bill is final")]
    PeriodNotEnded {
        period: Period,
        ends: chrono::NaiveDate,
    },

    #[error("period {period} has no invoice for group {group:?}; its groups: {groups}")]
    GroupNotInPeriod {
        period: Period,
        group: String,
        groups: String,
    },

    #[error("periods table {table}: {what}")]
    BadLedger { table: String, what: String },

    #[error(
        "{document} is not the document periods/ recorded (SHA-256 {expected}, found \
         {found}): it was changed outside rerate; put back the recorded file"
    )]
    DocumentChanged {
        document: String,
        expected: String,
        found: String,
    },

    #[error(
        "{document} exists, but periods/ records no such document: a close or correction \
         that failed left it, or periods/ was removed. Nothing was issued; move the file \
         away after checking it was never sent, and try again"
    )]
    DocumentExists { document: String },

    #[error(
        "{table} changed while this run was working (version {read:?} when it started, \
         {found:?} now): another run or close wrote it; nothing was issued, run again"
    )]
    ConcurrentChange {
        table: String,
        read: Option<u64>,
        found: Option<u64>,
    },

    #[error(
        "period {period}: line item {line_item} is claimed by the matches of groups {groups}: a \
         row belongs to one group; make their tag or cost-category values exclusive"
    )]
    AmbiguousMatch {
        period: Period,
        line_item: String,
        groups: String,
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

    #[error("writing Parquet file {location}: {error}")]
    WriteParquet {
        location: String,
        error: Box<parquet::errors::ParquetError>,
    },

    #[error("rendering invoice {number}: {error}")]
    InvoiceRender {
        number: String,
        error: Box<minijinja::Error>,
    },

    #[error("rendering the report of {period}: {error}")]
    ReportRender {
        period: Period,
        error: Box<minijinja::Error>,
    },

    #[error("query engine: {0}")]
    Engine(Box<DataFusionError>),

    /// The Ballista cluster (`--cluster`, `rerate cluster …`) could not be reached or run.
    #[error("cluster: {what}")]
    Cluster { what: String },

    #[error(transparent)]
    Sample(#[from] SampleError),

    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },

    /// Something rerate's own code got wrong: never the input's fault.
    #[error("internal error: {what}; this is a bug in rerate, please report it")]
    Internal { what: String },
}

impl From<DataFusionError> for Error {
    /// Our own error, where a plan node of ours failed and the engine carried it out, is
    /// given back as it was.
    fn from(e: DataFusionError) -> Self {
        match e {
            DataFusionError::External(inner) => match inner.downcast::<Error>() {
                Ok(ours) => *ours,
                Err(other) => Error::Engine(Box::new(DataFusionError::External(other))),
            },
            e => Error::Engine(Box::new(e)),
        }
    }
}

impl Error {
    /// For a plan node of ours to fail with: the engine carries it to whoever runs the plan.
    pub fn into_datafusion(self) -> DataFusionError {
        match self {
            Error::Engine(e) => *e,
            e => DataFusionError::External(Box::new(e)),
        }
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
            | Error::IncompleteDelivery { .. }
            | Error::BadManifest { .. }
            | Error::ReservedColumn { .. }
            | Error::MissingColumn { .. }
            | Error::BadValue { .. }
            | Error::WrongType { .. }
            | Error::UnknownLineItemType { .. }
            | Error::MissingValue { .. }
            | Error::PayerCurrencies { .. }
            | Error::GroupCurrencies { .. }
            | Error::UnsupportedBillCurrency { .. }
            | Error::DuplicateLineItem { .. }
            | Error::PeriodFolderMismatch { .. }
            | Error::PeriodNotInInput { .. }
            | Error::Unassigned { .. }
            | Error::LineItemNotFound(_)
            | Error::AmbiguousMatch { .. }
            | Error::PeriodClosed { .. }
            | Error::PeriodNotRun { .. }
            | Error::PeriodNotEnded { .. }
            | Error::GroupNotInPeriod { .. }
            | Error::BadLedger { .. }
            | Error::DocumentChanged { .. }
            | Error::DocumentExists { .. }
            | Error::AmountOverflow(_) => 1,
            Error::ConcurrentChange { .. } => 2,
            // Retrying a bug gives the same bug.
            Error::AccountingMismatch { .. }
            | Error::Unreconciled { .. }
            | Error::Internal { .. }
            | Error::Arrow(_) => 1,
            Error::Storage { .. } | Error::Io { .. } | Error::Cluster { .. } => 2,
            // Storage and concurrent commits are retryable; a table or data Delta refuses is not.
            Error::Delta { error, .. } => exit_code_of(error.as_ref()),
            // Files are encoded from our own plan: what fails there is the upload.
            Error::WriteParquet { .. } => 2,
            Error::InvoiceRender { .. } => 1,
            // The template is ours: a failure to render it is a defect, never the input's.
            Error::ReportRender { .. } => 1,
            // The sample's options are the user's; storing its files is the environment's.
            Error::Sample(e) if e.is_storage() => 2,
            Error::Sample(_) => 1,
            Error::Engine(e) => exit_code_of(e.as_ref()),
        }
    }
}

fn exit_code_of(e: &(dyn std::error::Error + 'static)) -> i32 {
    if retryable(e) { 2 } else { 1 }
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

/// Whether a failure inside another library is the environment's (storage, I/O, memory, a
/// concurrent commit), looking through its whole cause chain. Everything else (a value, a
/// schema, a table in a state rerate cannot use) comes back the same on a retry.
fn retryable(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(e) = next {
        let environment = e.is::<object_store::Error>()
            || e.is::<std::io::Error>()
            || e.downcast_ref::<DataFusionError>().is_some_and(|e| {
                matches!(
                    e,
                    DataFusionError::ObjectStore(_)
                        | DataFusionError::IoError(_)
                        | DataFusionError::ResourcesExhausted(_)
                )
            })
            || e.downcast_ref::<DeltaTableError>().is_some_and(|e| {
                matches!(
                    e,
                    DeltaTableError::ObjectStore { .. }
                        | DeltaTableError::Io { .. }
                        | DeltaTableError::VersionAlreadyExists(_)
                        | DeltaTableError::VersionMismatch(..)
                )
            })
            || e.downcast_ref::<TransactionError>().is_some_and(|e| {
                matches!(
                    e,
                    TransactionError::ObjectStore { .. }
                        | TransactionError::VersionAlreadyExists(_)
                        | TransactionError::CommitConflict(_)
                        | TransactionError::MaxCommitAttempts(_)
                )
            });
        if environment {
            return true;
        }
        next = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delta(error: DeltaTableError) -> Error {
        Error::Delta {
            table: "file:///out/billable".into(),
            error: Box::new(error),
        }
    }

    fn outage() -> object_store::Error {
        object_store::Error::Generic {
            store: "S3",
            source: "connection refused".into(),
        }
    }

    #[test]
    fn only_what_a_retry_can_fix_exits_2() {
        // Storage, however deep in the chain, and a concurrent commit: retry.
        assert_eq!(
            delta(DeltaTableError::ObjectStore { source: outage() }).exit_code(),
            2
        );
        assert_eq!(
            delta(DeltaTableError::VersionAlreadyExists(3)).exit_code(),
            2
        );
        let wrapped = DataFusionError::Context("writing".into(), Box::new(outage().into()));
        let generic = DeltaTableError::GenericError {
            source: Box::new(wrapped),
        };
        assert_eq!(delta(generic).exit_code(), 2);
        let io = std::io::Error::other("disk full");
        assert_eq!(
            Error::from(DataFusionError::External(Box::new(io))).exit_code(),
            2
        );
        // Data and schema problems come back the same: the user's (or a bug) to fix.
        let schema = DeltaTableError::SchemaMismatch {
            msg: "non-nullable column holds nulls".into(),
        };
        assert_eq!(delta(schema).exit_code(), 1);
        let cast = DataFusionError::Execution("cannot cast \"200 USD\"".into());
        assert_eq!(Error::from(cast).exit_code(), 1);
        assert_eq!(
            Error::Sample(cur_sample::SampleError::ZeroRowsPerFile).exit_code(),
            1
        );
    }
}
