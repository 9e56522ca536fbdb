//! Shared test plumbing: CUR fixtures from CSV, running the job, reading its Delta outputs.

use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::logical_expr::cast;
use datafusion::prelude::{CsvReadOptions, SessionContext, col};
use rerate::ingest::columns::{Kind, kind_of, timestamp_type};
use rerate::run::RunOptions;
use rerate::storage::Location;
use rerate::write::manifest::RunManifest;

/// Writes `csv` (a header of CUR 2.0 column names) as CUR Parquet with AWS's physical types:
/// costs as doubles, rates as strings, timestamps as timestamps. A column beyond the catalog is
/// text, a double if its name ends in `_cost`, a 64-bit integer if in `_count`.
pub async fn csv_to_cur_parquet(csv: &Path, out_file: &Path) {
    let ctx = SessionContext::new();
    let header = std::fs::read_to_string(csv)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    let names: Vec<&str> = header.split(',').collect();
    let schema = Schema::new(
        names
            .iter()
            .map(|n| Field::new(*n, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    );
    let df = ctx
        .read_csv(
            csv.to_str().unwrap(),
            CsvReadOptions::new().schema(&schema).file_extension(".csv"),
        )
        .await
        .unwrap();
    let exprs = names.iter().map(|n| {
        let physical = match kind_of(n) {
            Some(Kind::Money | Kind::Quantity) => DataType::Float64,
            Some(Kind::Timestamp) => timestamp_type(),
            Some(_) => DataType::Utf8,
            None if n.ends_with("_cost") => DataType::Float64,
            None if n.ends_with("_count") => DataType::Int64,
            None => DataType::Utf8,
        };
        cast(col(*n), physical).alias(*n)
    });
    let df = df.select(exprs.collect::<Vec<_>>()).unwrap();
    std::fs::create_dir_all(out_file.parent().unwrap()).unwrap();
    df.write_parquet(
        out_file.to_str().unwrap(),
        DataFrameWriteOptions::new().with_single_file_output(true),
        None,
    )
    .await
    .unwrap();
}

pub async fn run(config: &Path, input: &Path, output: &Path) -> rerate::Result<RunManifest> {
    run_with(config, input, output, false).await
}

pub async fn run_with(
    config: &Path,
    input: &Path,
    output: &Path,
    strict: bool,
) -> rerate::Result<RunManifest> {
    let opts = RunOptions {
        config: config.to_path_buf(),
        input: Some(input.display().to_string()),
        output: Some(output.display().to_string()),
        periods: Vec::new(),
        strict,
        ..Default::default()
    };
    rerate::run::run(&opts).await
}

/// The Delta tables a run writes.
pub const TABLES: [&str; 6] = [
    "billable",
    "proforma",
    "focus",
    "margin",
    "invoice_lines",
    "periods",
];

/// A session with the run's Delta tables registered under their names ([`TABLES`]).
pub async fn outputs(output: &Path) -> SessionContext {
    let ctx = rerate::engine::new_context(&Default::default()).unwrap();
    let location = Location::parse(output.to_str().unwrap(), &Default::default()).unwrap();
    for name in TABLES {
        let mut table = rerate::write::delta::open(&location.child(&[name])).unwrap();
        table.load().await.unwrap();
        let provider = table.table_provider().await.unwrap();
        ctx.register_table(name, provider).unwrap();
    }
    ctx
}

/// Query results as rows of display strings (null as "NULL").
pub async fn query(ctx: &SessionContext, sql: &str) -> Vec<Vec<String>> {
    let batches = ctx
        .sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .collect()
        .await
        .unwrap();
    rows(&batches)
}

pub fn rows(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let options = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for b in batches {
        let f: Vec<_> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for r in 0..b.num_rows() {
            out.push(f.iter().map(|f| f.value(r).to_string()).collect());
        }
    }
    out
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The AWS-written CUR data set `name` (a folder of `../shared/realdata`), where this machine
/// has it. `RERATE_REALDATA` names the folder of data sets (default: `../shared/realdata`
/// beside the repository). Where it is not set and the default is absent (a clone elsewhere),
/// the test says so and is skipped; where it is set, the data must be there (`.ci/run` sets it,
/// so CI never skips these tests).
pub fn realdata(name: &str) -> Option<PathBuf> {
    let (root, required) = match std::env::var_os("RERATE_REALDATA") {
        Some(dir) => (PathBuf::from(dir), true),
        None => (repo().join("../shared/realdata"), false),
    };
    let path = root.join(name);
    if path.is_dir() {
        return Some(path);
    }
    assert!(
        !required,
        "RERATE_REALDATA is set but {} is not there",
        path.display()
    );
    eprintln!(
        "skipped: real AWS data {} is not on this machine (set RERATE_REALDATA to its folder)",
        path.display()
    );
    None
}

/// Every file and folder below `dir`, sorted (none if it does not exist).
pub fn paths_under(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .min_depth(1)
        .into_iter()
        .filter_map(|e| e.ok())
        .map(walkdir::DirEntry::into_path)
        .collect();
    found.sort();
    found
}

/// Every file below `dir`, sorted (none if it does not exist).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = paths_under(dir);
    found.retain(|p| p.is_file());
    found
}
