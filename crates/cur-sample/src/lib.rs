//! Deterministic, realistic synthetic CUR 2.0 Parquet in the AWS Data Exports layout, for demos,
//! tests and benchmarks (`rerate sample`).
//!
//! Under the prefix it writes, per billing period:
//! ```text
//! data/BILLING_PERIOD=YYYY-MM/rerate-sample-00001.snappy.parquet   (-00002, … per rows_per_file)
//! metadata/BILLING_PERIOD=YYYY-MM/rerate-sample-Manifest.json
//! ```
//!
//! The bill is the one `sample-data/billing.toml` is written against: organization "acme" (payer
//! 111111111111; accounts 111111111111, 222222222222 and 333333333333), "globex" (payer
//! 444444444444; 444444444444, 555555555555) and payer 777777777777 (666666666666 and the
//! ungrouped 888888888888). A Compute Savings Plan owned by 222222222222 covers EC2 in acme's
//! three accounts; a Reserved Instance owned by 444444444444 covers m5.xlarge in 555555555555.
//! Every line item type of SPEC 5.3 except the rare RiVolumeDiscount, DistributorDiscount and
//! SavingsPlanUpfrontFee appears in every period of a few thousand rows or more: the monthly
//! lines (commitment fees, support, subscription, taxes, credits, a refund) open the period's
//! first file, then come hourly usage events of one line, or two where a discount, negation or
//! covered usage goes with it. About 70 % of the lines are Usage.
//!
//! The physical format follows what AWS writes, because those are the details that break
//! readers: timestamps are INT96, rates are 10-decimal strings, costs are doubles, `product`,
//! `resource_tags` and `cost_category` are `map<string,string>` and `discount` is
//! `map<string,double>`, every column is optional, and columns are not in alphabetical order.
//! parquet-rs' `ArrowWriter` cannot write INT96, so files are encoded with the low-level
//! `SerializedFileWriter`, column by column.
//!
//! Money is fixed-point (10 decimals, `i64`) from generation to encoding: every cost is
//! `round(amount × rate, 10)` half away from zero, and the double written is the nearest one to
//! that 10-decimal value. Each file is generated from its own PRNG stream, seeded from the seed,
//! the period and the file index, so the bytes do not depend on the number of threads.

mod catalog;
mod columns;
mod encode;
mod fixed;
mod plan;
mod rng;
mod rows;
#[cfg(test)]
mod testing;

use std::sync::Arc;

use cur_layout::data_exports;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parquet::errors::ParquetError;
use rust_decimal::Decimal;

pub use cur_layout::period::Period;

use plan::{Job, Plan, REPORT_NAME, Rendered};

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleOptions {
    /// Line items per billing period.
    pub rows: u64,
    /// The same seed writes the same bytes.
    pub seed: u64,
    /// Billing periods to generate (duplicates are written once).
    pub periods: Vec<Period>,
    /// At most this many rows per Parquet file; a period splits into `-00001`, `-00002`, …
    pub rows_per_file: u64,
}

impl Default for SampleOptions {
    fn default() -> Self {
        Self {
            rows: 10_000,
            seed: 42,
            periods: vec![Period::new(2025, 11).expect("a valid period")],
            rows_per_file: 1_000_000,
        }
    }
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleSummary {
    /// Object paths of the Parquet data files, in period then file order.
    pub files: Vec<String>,
    /// Object paths of the manifests, one per period.
    pub manifests: Vec<String>,
    /// Rows written, all periods together.
    pub rows: u64,
    /// Sum of `line_item_unblended_cost` as written: each double converted to a decimal with 10
    /// decimals (half away from zero), then added exactly. A control total for ingest tests.
    pub unblended_total: Decimal,
}

/// Why a sample was not written: options to fix, a store that failed, or a bug here.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error("no billing period to generate: give at least one --period YYYY-MM")]
    NoPeriods,

    #[error("rows per file must be at least 1")]
    ZeroRowsPerFile,

    #[error("cannot encode sample file {path} as Parquet")]
    Parquet {
        path: String,
        #[source]
        source: ParquetError,
    },

    #[error("cannot write {path} to the output store")]
    Store {
        path: String,
        #[source]
        source: object_store::Error,
    },
}

impl SampleError {
    /// Whether the output store failed (worth retrying as is), rather than the options (to fix)
    /// or the encoder (a bug: the files are encoded from a plan the options already passed).
    pub fn is_storage(&self) -> bool {
        matches!(self, SampleError::Store { .. })
    }
}

/// Generates the sample described by `opts` and writes it under `prefix` in `store`.
///
/// Files are rendered in parallel on rayon's pool, one file per task, in waves of one file per
/// thread; a wave is uploaded while the next one renders, so memory stays at about two waves of
/// files whatever the row count.
pub async fn write_sample(
    store: Arc<dyn ObjectStore>,
    prefix: &Path,
    opts: &SampleOptions,
) -> Result<SampleSummary, SampleError> {
    let plan = Arc::new(Plan::new(prefix, opts)?);
    let width = rayon::current_num_threads().max(1);
    let waves: Vec<Vec<usize>> = (0..plan.jobs.len())
        .collect::<Vec<_>>()
        .chunks(width)
        .map(<[usize]>::to_vec)
        .collect();

    let mut rendered: Vec<Option<Rendered>> = (0..plan.jobs.len()).map(|_| None).collect();
    let mut in_flight = None;
    for wave in waves {
        let renderer = Arc::clone(&plan);
        let next = tokio::task::spawn_blocking(move || renderer.render_wave(&wave));
        if let Some(previous) = in_flight.replace(next) {
            upload(&store, &plan, join(previous).await, &mut rendered).await?;
        }
    }
    if let Some(last) = in_flight {
        upload(&store, &plan, join(last).await, &mut rendered).await?;
    }

    let rendered: Vec<Rendered> = rendered
        .into_iter()
        .map(|r| r.expect("every job was rendered"))
        .collect();
    let mut summary = SampleSummary {
        files: Vec::new(),
        manifests: Vec::new(),
        rows: 0,
        unblended_total: Decimal::ZERO,
    };
    for (period_index, period) in plan.periods.iter().enumerate() {
        let jobs: Vec<&Job> = plan
            .jobs
            .iter()
            .filter(|j| j.period == period_index)
            .collect();
        let files: Vec<String> = jobs.iter().map(|j| j.path.to_string()).collect();
        let rows: u64 = jobs.iter().map(|j| j.rows).sum();
        let path = data_exports::manifest_path(prefix, period.period, REPORT_NAME);
        let body = data_exports::Manifest {
            name: REPORT_NAME,
            execution_id: None,
            period: period.period,
            files: &files,
            rows,
            columns: plan
                .columns
                .iter()
                .map(|c| (c.name.to_string(), c.render.manifest_type().to_string()))
                .collect(),
        }
        .to_json();
        put(&store, &path, body).await?;
        summary.files.extend(files);
        summary.manifests.push(path.to_string());
    }
    summary.rows = rendered.iter().map(|r| r.rows).sum();
    summary.unblended_total = rendered.iter().map(|r| r.unblended_total).sum();
    Ok(summary)
}

async fn join<T>(handle: tokio::task::JoinHandle<T>) -> T {
    // A panic while rendering is a bug in this crate: surface it as the panic it is.
    handle
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

async fn upload(
    store: &Arc<dyn ObjectStore>,
    plan: &Plan,
    wave: Result<Vec<Rendered>, SampleError>,
    done: &mut [Option<Rendered>],
) -> Result<(), SampleError> {
    let wave = wave?;
    let puts = wave.into_iter().map(|mut file| async move {
        let bytes = std::mem::take(&mut file.bytes);
        put(store, &plan.jobs[file.job].path, bytes)
            .await
            .map(|()| file)
    });
    for file in futures::future::try_join_all(puts).await? {
        let job = file.job;
        done[job] = Some(file);
    }
    Ok(())
}

async fn put(store: &Arc<dyn ObjectStore>, path: &Path, bytes: Vec<u8>) -> Result<(), SampleError> {
    store
        .put(path, PutPayload::from(bytes))
        .await
        .map(|_| ())
        .map_err(|source| SampleError::Store {
            path: path.to_string(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use arrow::array::AsArray;
    use arrow::datatypes::TimestampNanosecondType;
    use arrow::record_batch::RecordBatch;
    use object_store::local::LocalFileSystem;

    use super::*;
    use crate::testing::{generate, object, options, period, read_all, strings};

    #[tokio::test]
    async fn bad_options_and_storage_failures_are_told_apart() {
        let store: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new());
        let fail = |prefix: Path, opts: SampleOptions| {
            let store = Arc::clone(&store);
            async move { write_sample(store, &prefix, &opts).await.unwrap_err() }
        };
        let zero = SampleOptions {
            rows_per_file: 0,
            ..options(10, 1)
        };
        let zero = fail(Path::from("cur2"), zero).await;
        assert!(matches!(zero, SampleError::ZeroRowsPerFile) && !zero.is_storage());
        let none = SampleOptions {
            periods: Vec::new(),
            ..options(10, 1)
        };
        let none = fail(Path::from("cur2"), none).await;
        assert!(matches!(none, SampleError::NoPeriods) && !none.is_storage());

        // A regular file where the output folder should be: every write under it fails.
        let file = tempfile::NamedTempFile::new().unwrap();
        let prefix = Path::from_absolute_path(file.path().join("cur2")).unwrap();
        let failed = fail(prefix, options(10, 1)).await;
        assert!(matches!(failed, SampleError::Store { .. }) && failed.is_storage());
    }

    #[tokio::test]
    async fn same_seed_writes_the_same_bytes() {
        let opts = SampleOptions {
            rows_per_file: 120,
            ..options(300, 7)
        };
        let (a, sa) = generate(&opts).await;
        let (b, sb) = generate(&opts).await;
        assert_eq!(sa, sb);
        assert_eq!(sa.files.len(), 3);
        for file in &sa.files {
            let (x, y) = (object(&a, file).await, object(&b, file).await);
            assert_eq!(x, y, "{file} differs between runs");
        }
    }

    #[tokio::test]
    async fn empty_period_still_has_a_readable_file() {
        let (store, summary) = generate(&options(0, 1)).await;
        assert_eq!(
            (summary.rows, summary.files.len(), summary.unblended_total),
            (0, 1, Decimal::ZERO)
        );
        assert!(
            read_all(&store, &summary.files)
                .await
                .iter()
                .all(|b| b.num_rows() == 0)
        );
    }

    #[tokio::test]
    async fn different_seed_writes_different_data() {
        let (a, sa) = generate(&options(300, 1)).await;
        let (b, sb) = generate(&options(300, 2)).await;
        assert_ne!(sa.unblended_total, sb.unblended_total);
        let ids = |batches: Vec<RecordBatch>| -> HashSet<String> {
            batches
                .iter()
                .flat_map(|b| {
                    strings(b, "identity_line_item_id")
                        .into_iter()
                        .map(|s| s.unwrap().to_string())
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        let (ia, ib) = (
            ids(read_all(&a, &sa.files).await),
            ids(read_all(&b, &sb.files).await),
        );
        assert!(ia.is_disjoint(&ib));
    }

    #[tokio::test]
    async fn layout_splits_files_and_writes_a_manifest_per_period() {
        let opts = SampleOptions {
            rows: 250,
            seed: 3,
            periods: vec![period("2025-12"), period("2025-11"), period("2025-11")],
            rows_per_file: 100,
        };
        let (store, summary) = generate(&opts).await;
        assert_eq!(summary.rows, 500);
        assert_eq!(
            summary.files,
            [
                "cur2/data/BILLING_PERIOD=2025-11/rerate-sample-00001.snappy.parquet",
                "cur2/data/BILLING_PERIOD=2025-11/rerate-sample-00002.snappy.parquet",
                "cur2/data/BILLING_PERIOD=2025-11/rerate-sample-00003.snappy.parquet",
                "cur2/data/BILLING_PERIOD=2025-12/rerate-sample-00001.snappy.parquet",
                "cur2/data/BILLING_PERIOD=2025-12/rerate-sample-00002.snappy.parquet",
                "cur2/data/BILLING_PERIOD=2025-12/rerate-sample-00003.snappy.parquet",
            ]
        );
        assert_eq!(
            summary.manifests[1],
            "cur2/metadata/BILLING_PERIOD=2025-12/rerate-sample-Manifest.json"
        );
        let manifest: serde_json::Value =
            serde_json::from_slice(&object(&store, &summary.manifests[1]).await).unwrap();
        assert_eq!(
            manifest["billingPeriod"]["start"],
            "2025-12-01T00:00:00.000Z"
        );
        assert_eq!(manifest["billingPeriod"]["end"], "2026-01-01T00:00:00.000Z");
        assert_eq!(manifest["dataFiles"].as_array().unwrap().len(), 3);
        assert_eq!(manifest["rowCount"], 250);
        assert!(
            manifest["columns"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["name"] == "product" && c["type"] == "map<string,string>")
        );

        let batches = read_all(&store, &summary.files[3..]).await;
        let starts: Vec<i64> = batches
            .iter()
            .flat_map(|b| {
                b.column_by_name("line_item_usage_start_date")
                    .unwrap()
                    .as_primitive::<TimestampNanosecondType>()
                    .values()
                    .to_vec()
            })
            .collect();
        let (lo, hi) = (1_764_547_200_000_000_000_i64, 1_767_225_600_000_000_000_i64); // 2025-12-01 .. 2026-01-01 UTC
        assert!(starts.iter().all(|&s| (lo..hi).contains(&s)));
    }
}
