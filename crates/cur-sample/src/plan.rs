//! The plan: which files each billing period splits into, what each period needs formatted
//! once, and the rendering of one file from its own PRNG stream.

use std::sync::Arc;

use chrono::{Duration, NaiveDate};
use cur_layout::data_exports;
use cur_layout::period::Period;
use object_store::path::Path;
use parquet::file::properties::WriterPropertiesPtr;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::TypePtr;
use rayon::prelude::*;
use rust_decimal::Decimal;

use crate::catalog::{Catalog, PAYERS, RI_HOURS_PER_ROW, SP_COMMITMENT_PER_ROW};
use crate::columns::columns;
use crate::encode::{Column, Scratch, parquet_schema, write_row_group, writer_properties};
use crate::fixed::{SCALE, cost_decimal, fixed_f64};
use crate::rng::{GOLDEN, Rng, mix};
use crate::rows::{Ctx, Generator};
use crate::{SampleError, SampleOptions};

/// The report name AWS would take from the export's name; it prefixes every file name.
pub(crate) const REPORT_NAME: &str = "rerate-sample";

/// Rows per row group: AWS's files hold row groups of this order, and it bounds the memory of
/// one file's rendering (rows are compact; column values exist for one column at a time).
const ROW_GROUP_ROWS: u64 = 128 * 1024;

/// Everything shared, read-only, by the rendering tasks.
pub(crate) struct Plan {
    catalog: Catalog,
    pub(crate) periods: Vec<PeriodInfo>,
    pub(crate) jobs: Vec<Job>,
    pub(crate) columns: Vec<Column>,
    schema: TypePtr,
    props: WriterPropertiesPtr,
    seed: u64,
}

/// One Parquet file to render.
pub(crate) struct Job {
    pub(crate) period: usize,
    /// 0-based index of the file within its period.
    pub(crate) file: u64,
    /// Row number, within the period, of the file's first row.
    pub(crate) first_ordinal: u64,
    pub(crate) rows: u64,
    pub(crate) path: Path,
}

/// One rendered file.
pub(crate) struct Rendered {
    pub(crate) job: usize,
    pub(crate) bytes: Vec<u8>,
    pub(crate) rows: u64,
    pub(crate) unblended_total: Decimal,
}

impl Plan {
    pub(crate) fn new(prefix: &Path, opts: &SampleOptions) -> Result<Self, SampleError> {
        if opts.rows_per_file == 0 {
            return Err(SampleError::ZeroRowsPerFile);
        }
        let mut periods = opts.periods.clone();
        periods.sort();
        periods.dedup();
        if periods.is_empty() {
            return Err(SampleError::NoPeriods);
        }
        let catalog = Catalog::new();
        let periods: Vec<PeriodInfo> = periods
            .into_iter()
            .map(|p| PeriodInfo::new(p, opts.seed, opts.rows))
            .collect();

        let mut jobs = Vec::new();
        for (index, period) in periods.iter().enumerate() {
            // An empty period still gets one (row-less) file, so readers see the period.
            let files = opts.rows.div_ceil(opts.rows_per_file).max(1);
            for file in 0..files {
                let first_ordinal = file * opts.rows_per_file;
                let path = data_exports::data_dir(prefix, period.period)
                    .join(format!("{REPORT_NAME}-{:05}.snappy.parquet", file + 1));
                let rows = opts
                    .rows
                    .saturating_sub(first_ordinal)
                    .min(opts.rows_per_file);
                jobs.push(Job {
                    period: index,
                    file,
                    first_ordinal,
                    rows,
                    path,
                });
            }
        }

        let columns = columns();
        let schema = Arc::new(
            parquet_schema(&columns).map_err(|source| SampleError::Parquet {
                path: prefix.to_string(),
                source,
            })?,
        );
        Ok(Self {
            catalog,
            periods,
            jobs,
            columns,
            schema,
            props: writer_properties(),
            seed: opts.seed,
        })
    }

    pub(crate) fn render_wave(&self, jobs: &[usize]) -> Result<Vec<Rendered>, SampleError> {
        jobs.par_iter().map(|&job| self.render_file(job)).collect()
    }

    fn render_file(&self, index: usize) -> Result<Rendered, SampleError> {
        let job = &self.jobs[index];
        let period = &self.periods[job.period];
        let ctx = Ctx {
            cat: &self.catalog,
            period,
        };
        let parquet = |source| SampleError::Parquet {
            path: job.path.to_string(),
            source,
        };

        let seed = mix(
            mix(self.seed ^ period.code.wrapping_mul(0xA24B_AED4_963E_E407))
                ^ (job.file + 1).wrapping_mul(GOLDEN),
        );
        let mut generator = Generator::new(ctx, Rng(seed), job);
        // Files come to ~110 bytes a row: reserving that up front saves regrowing a large buffer.
        let buffer = Vec::with_capacity((job.rows * 128).min(1 << 31) as usize);
        let mut writer =
            SerializedFileWriter::new(buffer, Arc::clone(&self.schema), Arc::clone(&self.props))
                .map_err(parquet)?;
        let mut rows = Vec::with_capacity(job.rows.min(ROW_GROUP_ROWS) as usize);
        let mut scratch = Scratch::default();
        let mut unblended_total = Decimal::ZERO;
        let mut left = job.rows;
        while left > 0 {
            let n = left.min(ROW_GROUP_ROWS);
            rows.clear();
            generator.fill(&mut rows, n as usize);
            unblended_total += rows
                .iter()
                .map(|r| cost_decimal(fixed_f64(r.cost)))
                .sum::<Decimal>();
            write_row_group(&mut writer, &self.columns, &rows, &ctx, &mut scratch)
                .map_err(parquet)?;
            left -= n;
        }
        let bytes = writer.into_inner().map_err(parquet)?;
        Ok(Rendered {
            job: index,
            bytes,
            rows: job.rows,
            unblended_total,
        })
    }
}

/// What one billing period needs, formatted once.
pub(crate) struct PeriodInfo {
    pub(crate) period: Period,
    /// `year × 12 + month`: keys seeds and line item ids.
    pub(crate) code: u64,
    pub(crate) start_nanos: i64,
    pub(crate) end_nanos: i64,
    pub(crate) hours: u16,
    /// `2025-11-03T05:00:00Z` for every hour boundary of the period, end included.
    pub(crate) hour_iso: Vec<String>,
    /// Per payer.
    pub(crate) invoice_ids: Vec<String>,
    pub(crate) sp_start: String,
    pub(crate) sp_end: String,
    pub(crate) ri_start: String,
    pub(crate) ri_end: String,
    /// Keys line item ids: a bijection of (period, row) under a fixed seed, so ids never repeat.
    pub(crate) id_key: u64,
    pub(crate) ri_count: i64,
    pub(crate) sp_commitment: i64,
}

impl PeriodInfo {
    fn new(period: Period, seed: u64, rows: u64) -> Self {
        let start = period.first_day();
        let end = period.end_exclusive();
        let hours = ((end - start).num_days() * 24) as u16;
        let nanos = |d: NaiveDate| {
            d.and_hms_opt(0, 0, 0)
                .expect("midnight")
                .and_utc()
                .timestamp()
                * 1_000_000_000
        };
        let midnight = start.and_hms_opt(0, 0, 0).expect("midnight");
        let hour_iso = (0..=i64::from(hours))
            .map(|h| {
                (midnight + Duration::hours(h))
                    .format("%Y-%m-%dT%H:%M:%SZ")
                    .to_string()
            })
            .collect();
        let code = period.year() as u64 * 12 + u64::from(period.month());

        // Commitments started before the period and outlive it, whichever period is asked for.
        let months_before = |n: i32| {
            let m = period.year() * 12 + period.month() as i32 - 1 - n;
            (m.div_euclid(12), m.rem_euclid(12) as u32 + 1)
        };
        let (sp_year, sp_month) = months_before(14);
        let (ri_year, ri_month) = months_before(5);

        let invoice_ids = PAYERS
            .iter()
            .enumerate()
            .map(|(i, _)| {
                format!(
                    "EUINIE{:02}-{:06}",
                    period.year() % 100,
                    100_000 + mix(seed ^ code << 8 ^ i as u64) % 900_000
                )
            })
            .collect();

        let ri_count = ((rows as f64 * RI_HOURS_PER_ROW / f64::from(hours)).round() as i64).max(1);
        let sp_commitment = ((rows as f64 * SP_COMMITMENT_PER_ROW / f64::from(hours) * 100.0)
            .round() as i64)
            .max(1)
            * (SCALE / 100);

        Self {
            period,
            code,
            start_nanos: nanos(start),
            end_nanos: nanos(end),
            hours,
            hour_iso,
            invoice_ids,
            sp_start: format!("{sp_year:04}-{sp_month:02}-01T00:00:00.000Z"),
            sp_end: format!("{:04}-{sp_month:02}-01T00:00:00.000Z", sp_year + 3),
            ri_start: format!("{ri_year:04}-{ri_month:02}-15T08:30:12.000Z"),
            ri_end: format!("{:04}-{ri_month:02}-15T08:30:11.000Z", ri_year + 1),
            id_key: mix(seed ^ 0x5EED_CAFE_F00D_D00D),
            ri_count,
            sp_commitment,
        }
    }

    pub(crate) fn hour_nanos(&self, hour: u16) -> i64 {
        self.start_nanos + i64::from(hour) * 3_600_000_000_000
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{generate, object, options};

    #[tokio::test]
    async fn bytes_do_not_depend_on_threads() {
        let opts = SampleOptions {
            rows_per_file: 100,
            ..options(450, 9)
        };
        let (store, summary) = generate(&opts).await;
        let plan = Plan::new(&Path::from("cur2"), &opts).unwrap();
        for (index, file) in summary.files.iter().enumerate() {
            let alone = plan.render_file(index).unwrap();
            let written = object(&store, file).await;
            assert_eq!(alone.bytes, written, "{file}");
        }
    }
}
