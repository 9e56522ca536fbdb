//! `rerate sample`: deterministic, realistic synthetic CUR 2.0 Parquet in the AWS Data Exports
//! layout, for demos, tests and benchmarks.
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

use std::io::Write as _;
use std::sync::Arc;

use chrono::{Duration, NaiveDate};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parquet::basic::Compression;
use parquet::data_type::{ByteArray, ByteArrayType, DataType, DoubleType, Int96, Int96Type};
use parquet::errors::ParquetError;
use parquet::file::properties::{WriterProperties, WriterPropertiesPtr};
use parquet::file::writer::{SerializedFileWriter, SerializedRowGroupWriter};
use parquet::schema::parser::parse_message_type;
use parquet::schema::types::{ColumnPath, TypePtr};
use rayon::prelude::*;
use rust_decimal::{Decimal, RoundingStrategy};

use crate::data_exports;
use crate::period::Period;

// ---------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------

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
                .map(|c| (c.name, c.render.manifest_type()))
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

/// The report name AWS would take from the export's name; it prefixes every file name.
const REPORT_NAME: &str = "rerate-sample";

/// Rows per row group: AWS's files hold row groups of this order, and it bounds the memory of
/// one file's rendering (rows are compact; column values exist for one column at a time).
const ROW_GROUP_ROWS: u64 = 128 * 1024;

async fn join<T>(handle: tokio::task::JoinHandle<T>) -> T {
    // A panic while rendering is a bug in this module: surface it as the panic it is.
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

// ---------------------------------------------------------------------------------------------
// Plan: what to render where
// ---------------------------------------------------------------------------------------------

/// Everything shared, read-only, by the rendering tasks.
struct Plan {
    catalog: Catalog,
    periods: Vec<PeriodInfo>,
    jobs: Vec<Job>,
    columns: Vec<Column>,
    schema: TypePtr,
    props: WriterPropertiesPtr,
    seed: u64,
}

/// One Parquet file to render.
struct Job {
    period: usize,
    /// 0-based index of the file within its period.
    file: u64,
    /// Row number, within the period, of the file's first row.
    first_ordinal: u64,
    rows: u64,
    path: Path,
}

/// One rendered file.
struct Rendered {
    job: usize,
    bytes: Vec<u8>,
    rows: u64,
    unblended_total: Decimal,
}

impl Plan {
    fn new(prefix: &Path, opts: &SampleOptions) -> Result<Self, SampleError> {
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

    fn render_wave(&self, jobs: &[usize]) -> Result<Vec<Rendered>, SampleError> {
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

/// How a double read from a CUR becomes money: a decimal with 10 decimals, half away from zero.
fn cost_decimal(value: f64) -> Decimal {
    Decimal::from_f64_retain(value)
        .expect("generated costs are finite")
        .round_dp_with_strategy(10, RoundingStrategy::MidpointAwayFromZero)
}

fn writer_properties() -> WriterPropertiesPtr {
    // Dictionaries pay off for repetitive strings, not for near-unique ids and amounts, where
    // they would only be built to be abandoned.
    let unique = [
        "identity_line_item_id",
        "line_item_usage_amount",
        "line_item_normalized_usage_amount",
        "line_item_unblended_cost",
        "line_item_blended_cost",
        "line_item_net_unblended_cost",
        "pricing_public_on_demand_cost",
    ];
    let mut builder = WriterProperties::builder().set_compression(Compression::SNAPPY);
    for name in unique {
        builder = builder.set_column_dictionary_enabled(ColumnPath::from(name), false);
    }
    Arc::new(builder.build())
}

// ---------------------------------------------------------------------------------------------
// Fixed-point money and the PRNG
// ---------------------------------------------------------------------------------------------

/// Amounts, rates and costs are integers in units of 10⁻¹⁰, the precision AWS bills in.
const SCALE: i64 = 10_000_000_000;
/// A null fixed-point value.
const NONE: i64 = i64::MIN;

/// `a × b` in fixed point, rounded half away from zero.
fn fixed_mul(a: i64, b: i64) -> i64 {
    round_div(a as i128 * b as i128, SCALE as i128)
}

/// `value × percent / 100`, rounded half away from zero.
fn percent_of(value: i64, percent: i64) -> i64 {
    round_div(value as i128 * percent as i128, 100)
}

fn round_div(n: i128, d: i128) -> i64 {
    let q = (n.abs() + d / 2) / d;
    (if n < 0 { -q } else { q }) as i64
}

/// The nearest double to a fixed-point value. Below 2⁵³ units (900,719 USD) the integer is exact
/// as a double and IEEE division rounds correctly; above, only decimal parsing rounds once.
fn fixed_f64(value: i64) -> f64 {
    if value.unsigned_abs() < 1 << 53 {
        return value as f64 / SCALE as f64;
    }
    let mut text = Vec::new();
    write_fixed(&mut text, value);
    std::str::from_utf8(&text)
        .expect("ascii")
        .parse()
        .expect("a decimal number")
}

fn fixed_opt(value: i64) -> Option<f64> {
    (value != NONE).then(|| fixed_f64(value))
}

/// Parses a decimal literal of the catalog ("0.096") into fixed point.
fn fixed(text: &str) -> i64 {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    assert!(frac.len() <= 10, "{text}: more than 10 decimals");
    let int: i64 = int.parse().expect("catalog literal");
    let frac: i64 = if frac.is_empty() {
        0
    } else {
        frac.parse::<i64>().expect("catalog literal") * 10_i64.pow(10 - frac.len() as u32)
    };
    int * SCALE + frac
}

/// Writes a fixed-point value with exactly 10 decimals, as AWS writes rates: `0.0960000000`.
fn write_fixed(out: &mut Vec<u8>, value: i64) {
    if value < 0 {
        out.push(b'-');
    }
    let abs = value.unsigned_abs();
    let _ = write!(out, "{}.{:010}", abs / SCALE as u64, abs % SCALE as u64);
}

/// A price as AWS prints it in descriptions: `$0.096`, `$0.0000166667`.
fn price_text(rate: i64) -> String {
    let mut digits = Vec::new();
    write_fixed(&mut digits, rate);
    let text = String::from_utf8(digits).expect("ascii");
    let keep = text
        .trim_end_matches('0')
        .len()
        .max(text.find('.').unwrap_or(0) + 4);
    format!("${}", &text[..keep])
}

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// The SplitMix64 output function: a bijection on `u64` with good avalanche, used both to draw
/// numbers and to derive seeds and ids.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// SplitMix64: tiny, fast and identical on every platform, which is all synthetic data needs.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        mix(self.0)
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; the bias is far below what matters here).
    fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    fn between(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    fn per_mille(&mut self, chance: u64) -> bool {
        self.below(1000) < chance
    }
}

/// A weighted choice among a few options.
struct Weighted {
    cumulative: Vec<u64>,
}

impl Weighted {
    fn new(weights: impl IntoIterator<Item = u32>) -> Self {
        let cumulative = weights
            .into_iter()
            .scan(0_u64, |sum, w| {
                *sum += u64::from(w);
                Some(*sum)
            })
            .collect();
        Self { cumulative }
    }

    fn pick(&self, rng: &mut Rng) -> usize {
        let x = rng.below(*self.cumulative.last().expect("non-empty weights"));
        self.cumulative.partition_point(|&c| c <= x)
    }
}

// ---------------------------------------------------------------------------------------------
// The bill: organizations, accounts, regions, services, SKUs, commitments
// ---------------------------------------------------------------------------------------------

struct Payer {
    id: &'static str,
    name: &'static str,
    /// Enterprise Discount Program percentage; 0 = none.
    edp_percent: i64,
    /// Private pricing on S3 (PrivateRateDiscount lines); 0 = none.
    s3_private_percent: i64,
    /// Solution Provider Program discount (SppDiscount lines); 0 = none.
    spp_percent: i64,
}

#[rustfmt::skip]
const PAYERS: [Payer; 3] = [
    Payer { id: "111111111111", name: "ACME Corp", edp_percent: 6, s3_private_percent: 0, spp_percent: 0 },
    Payer { id: "444444444444", name: "Globex Corporation", edp_percent: 4, s3_private_percent: 12, spp_percent: 0 },
    Payer { id: "777777777777", name: "Initech Holdings", edp_percent: 0, s3_private_percent: 0, spp_percent: 3 },
];

struct Account {
    id: &'static str,
    name: &'static str,
    payer: usize,
    /// The `team` cost category; `None` leaves the map empty.
    team: Option<&'static str>,
    /// Share of the bill's usage lines.
    weight: u32,
    /// Where the account runs: (index into [`REGIONS`], weight).
    regions: &'static [(usize, u32)],
}

const USE1: usize = 0;
const USW2: usize = 1;
const EUW1: usize = 2;
const EUC1: usize = 3;

#[rustfmt::skip]
const ACCOUNTS: [Account; 7] = [
    Account { id: "111111111111", name: "acme-management", payer: 0, team: Some("platform"), weight: 12, regions: &[(USE1, 3), (USW2, 1)] },
    Account { id: "222222222222", name: "acme-production", payer: 0, team: Some("commerce"), weight: 24, regions: &[(USW2, 3), (USE1, 1)] },
    Account { id: "333333333333", name: "acme-research", payer: 0, team: Some("research"), weight: 12, regions: &[(USE1, 1), (EUW1, 1)] },
    Account { id: "444444444444", name: "globex-management", payer: 1, team: Some("finance"), weight: 8, regions: &[(EUW1, 1)] },
    Account { id: "555555555555", name: "globex-production", payer: 1, team: Some("logistics"), weight: 20, regions: &[(USE1, 2), (EUW1, 1)] },
    Account { id: "666666666666", name: "initech-production", payer: 2, team: Some("tps-reports"), weight: 14, regions: &[(EUC1, 2), (USE1, 1)] },
    Account { id: "888888888888", name: "initech-sandbox", payer: 2, team: None, weight: 10, regions: &[(USE1, 1)] },
];

const ACME_MANAGEMENT: u8 = 0;
const ACME_PRODUCTION: u8 = 1;
const GLOBEX_MANAGEMENT: u8 = 3;
const GLOBEX_PRODUCTION: u8 = 4;
const INITECH_PRODUCTION: u8 = 5;

struct Region {
    code: &'static str,
    /// Usage type prefix.
    prefix: &'static str,
    location: &'static str,
    /// Price relative to us-east-1, per mille.
    price_per_mille: i64,
}

#[rustfmt::skip]
const REGIONS: [Region; 4] = [
    Region { code: "us-east-1", prefix: "USE1", location: "US East (N. Virginia)", price_per_mille: 1000 },
    Region { code: "us-west-2", prefix: "USW2", location: "US West (Oregon)", price_per_mille: 1000 },
    Region { code: "eu-west-1", prefix: "EU", location: "EU (Ireland)", price_per_mille: 1115 },
    Region { code: "eu-central-1", prefix: "EUC1", location: "EU (Frankfurt)", price_per_mille: 1200 },
];

const AWS: &str = "AWS";
const AWS_EMEA: &str = "Amazon Web Services EMEA SARL";

struct Service {
    code: &'static str,
    name: &'static str,
}

const EC2: Service = Service {
    code: "AmazonEC2",
    name: "Amazon Elastic Compute Cloud",
};
const S3: Service = Service {
    code: "AmazonS3",
    name: "Amazon Simple Storage Service",
};
const CLOUDWATCH: Service = Service {
    code: "AmazonCloudWatch",
    name: "AmazonCloudWatch",
};
const LAMBDA: Service = Service {
    code: "AWSLambda",
    name: "AWS Lambda",
};
const RDS: Service = Service {
    code: "AmazonRDS",
    name: "Amazon Relational Database Service",
};
const DYNAMODB: Service = Service {
    code: "AmazonDynamoDB",
    name: "Amazon DynamoDB",
};
const DATA_TRANSFER: Service = Service {
    code: "AWSDataTransfer",
    name: "AWS Data Transfer",
};
const VPC: Service = Service {
    code: "AmazonVPC",
    name: "Amazon Virtual Private Cloud",
};

/// How much of a SKU one hourly line item meters.
#[derive(Clone, Copy)]
enum Amount {
    /// Instance hours: mostly a full hour, sometimes a partial one billed per second.
    Hours,
    /// A monthly quantity (GB-month, metric-month) prorated to the hour, as AWS meters storage.
    PerMonth { min: i64, max: i64 },
    /// A metered quantity with 10 decimals (GB, GB-seconds), up to `max`.
    Metered { max: i64 },
    /// Whole units (requests), up to `max`.
    Count { max: i64 },
    /// Exactly one unit (fees, taxes, credits).
    One,
}

/// What `line_item_resource_id` names.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Resource {
    None,
    Instance,
    Volume,
    Bucket,
    Function,
    Database,
    Table,
    NatGateway,
    LogGroup,
    Address,
    Reservation,
    SavingsPlan,
}

impl Resource {
    /// How many distinct resources of this kind an account has per SKU.
    fn pool(self) -> u64 {
        match self {
            Resource::None => 0,
            Resource::Instance => 24,
            Resource::Volume => 32,
            Resource::Bucket => 6,
            Resource::Function => 12,
            Resource::Database => 3,
            Resource::Table => 5,
            Resource::NatGateway => 2,
            Resource::LogGroup => 8,
            Resource::Address => 6,
            Resource::Reservation | Resource::SavingsPlan => 1,
        }
    }
}

/// A usage SKU, priced for us-east-1 and instantiated in every region.
struct Sku {
    service: Service,
    family: &'static str,
    /// Usage type after the region prefix.
    usage: &'static str,
    operation: &'static str,
    unit: &'static str,
    /// us-east-1 public on-demand rate.
    rate: &'static str,
    /// `{price}` and `{location}` are filled in per region.
    describe: &'static str,
    /// Instance type and its normalization factor.
    instance: Option<(&'static str, &'static str)>,
    amount: Amount,
    resource: Resource,
    zonal: bool,
    weight: u32,
}

#[rustfmt::skip]
const SKUS: &[Sku] = &[
    Sku { service: EC2, family: "Compute Instance", usage: "BoxUsage:t3.micro", operation: "RunInstances", unit: "Hrs", rate: "0.0104", describe: "{price} per On Demand Linux t3.micro Instance Hour", instance: Some(("t3.micro", "0.5")), amount: Amount::Hours, resource: Resource::Instance, zonal: true, weight: 10 },
    Sku { service: EC2, family: "Compute Instance", usage: "BoxUsage:t3.medium", operation: "RunInstances", unit: "Hrs", rate: "0.0416", describe: "{price} per On Demand Linux t3.medium Instance Hour", instance: Some(("t3.medium", "2")), amount: Amount::Hours, resource: Resource::Instance, zonal: true, weight: 8 },
    Sku { service: EC2, family: "Compute Instance", usage: "BoxUsage:m5.large", operation: "RunInstances", unit: "Hrs", rate: "0.096", describe: "{price} per On Demand Linux m5.large Instance Hour", instance: Some(("m5.large", "4")), amount: Amount::Hours, resource: Resource::Instance, zonal: true, weight: 14 },
    Sku { service: EC2, family: "Compute Instance", usage: "BoxUsage:m5.xlarge", operation: "RunInstances", unit: "Hrs", rate: "0.192", describe: "{price} per On Demand Linux m5.xlarge Instance Hour", instance: Some(("m5.xlarge", "8")), amount: Amount::Hours, resource: Resource::Instance, zonal: true, weight: 8 },
    Sku { service: EC2, family: "Compute Instance", usage: "BoxUsage:c5.2xlarge", operation: "RunInstances", unit: "Hrs", rate: "0.34", describe: "{price} per On Demand Linux c5.2xlarge Instance Hour", instance: Some(("c5.2xlarge", "16")), amount: Amount::Hours, resource: Resource::Instance, zonal: true, weight: 4 },
    Sku { service: EC2, family: "Compute Instance", usage: "BoxUsage:r6g.large", operation: "RunInstances", unit: "Hrs", rate: "0.1008", describe: "{price} per On Demand Linux r6g.large Instance Hour", instance: Some(("r6g.large", "4")), amount: Amount::Hours, resource: Resource::Instance, zonal: true, weight: 3 },
    Sku { service: EC2, family: "Storage", usage: "EBS:VolumeUsage.gp3", operation: "CreateVolume-Gp3", unit: "GB-Mo", rate: "0.08", describe: "{price} per GB-month of General Purpose (gp3) provisioned storage - {location}", instance: None, amount: Amount::PerMonth { min: 8, max: 2000 }, resource: Resource::Volume, zonal: true, weight: 10 },
    Sku { service: DATA_TRANSFER, family: "Data Transfer", usage: "DataTransfer-Out-Bytes", operation: "RunInstances", unit: "GB", rate: "0.09", describe: "{price} per GB - first 10 TB / month data transfer out beyond the global free tier", instance: None, amount: Amount::Metered { max: 4 }, resource: Resource::Instance, zonal: false, weight: 6 },
    Sku { service: DATA_TRANSFER, family: "Data Transfer", usage: "DataTransfer-Regional-Bytes", operation: "InterZone-In", unit: "GB", rate: "0.01", describe: "{price} per GB - regional data transfer - in/out/between EC2 AZs or using elastic IPs or ELB", instance: None, amount: Amount::Metered { max: 20 }, resource: Resource::Instance, zonal: false, weight: 4 },
    Sku { service: S3, family: "Storage", usage: "TimedStorage-ByteHrs", operation: "StandardStorage", unit: "GB-Mo", rate: "0.023", describe: "{price} per GB - first 50 TB / month of storage used", instance: None, amount: Amount::PerMonth { min: 1, max: 12_000 }, resource: Resource::Bucket, zonal: false, weight: 8 },
    Sku { service: S3, family: "API Request", usage: "Requests-Tier1", operation: "PutObject", unit: "Requests", rate: "0.000005", describe: "{price} per 1,000 PUT, COPY, POST, or LIST requests", instance: None, amount: Amount::Count { max: 100_000 }, resource: Resource::Bucket, zonal: false, weight: 4 },
    Sku { service: S3, family: "API Request", usage: "Requests-Tier2", operation: "GetObject", unit: "Requests", rate: "0.0000004", describe: "{price} per 10,000 GET and all other requests", instance: None, amount: Amount::Count { max: 500_000 }, resource: Resource::Bucket, zonal: false, weight: 4 },
    Sku { service: CLOUDWATCH, family: "Metric", usage: "CW:MetricMonitorUsage", operation: "MetricStorage", unit: "Metrics", rate: "0.30", describe: "{price} per metric-month - first 10,000 metrics - {location}", instance: None, amount: Amount::PerMonth { min: 10, max: 400 }, resource: Resource::None, zonal: false, weight: 3 },
    Sku { service: CLOUDWATCH, family: "Data Payload", usage: "DataProcessing-Bytes", operation: "PutLogEvents", unit: "GB", rate: "0.50", describe: "{price} per GB custom log data ingested - {location}", instance: None, amount: Amount::Metered { max: 1 }, resource: Resource::LogGroup, zonal: false, weight: 3 },
    Sku { service: LAMBDA, family: "Serverless", usage: "Lambda-GB-Second", operation: "Invoke", unit: "Lambda-GB-Second", rate: "0.0000166667", describe: "AWS Lambda - Total Compute - {location}", instance: None, amount: Amount::Metered { max: 20_000 }, resource: Resource::Function, zonal: false, weight: 5 },
    Sku { service: LAMBDA, family: "Serverless", usage: "Request", operation: "Invoke", unit: "Requests", rate: "0.0000002", describe: "AWS Lambda - Total Requests - {location}", instance: None, amount: Amount::Count { max: 400_000 }, resource: Resource::Function, zonal: false, weight: 4 },
    Sku { service: RDS, family: "Database Instance", usage: "InstanceUsage:db.m5.large", operation: "CreateDBInstance:0002", unit: "Hrs", rate: "0.171", describe: "{price} per RDS db.m5.large Single-AZ instance hour (or partial hour) running MySQL", instance: Some(("db.m5.large", "4")), amount: Amount::Hours, resource: Resource::Database, zonal: true, weight: 4 },
    Sku { service: RDS, family: "Database Storage", usage: "RDS:GP2-Storage", operation: "CreateDBInstance:0002", unit: "GB-Mo", rate: "0.115", describe: "{price} per GB-month of provisioned GP2 storage running MySQL", instance: None, amount: Amount::PerMonth { min: 20, max: 4_000 }, resource: Resource::Database, zonal: true, weight: 2 },
    Sku { service: DYNAMODB, family: "Amazon DynamoDB PayPerRequest Throughput", usage: "ReadRequestUnits", operation: "PayPerRequestThroughput", unit: "ReadRequestUnits", rate: "0.000000125", describe: "{price} per ReadRequestUnits - {location}", instance: None, amount: Amount::Count { max: 800_000 }, resource: Resource::Table, zonal: false, weight: 3 },
    Sku { service: DYNAMODB, family: "Amazon DynamoDB PayPerRequest Throughput", usage: "WriteRequestUnits", operation: "PayPerRequestThroughput", unit: "WriteRequestUnits", rate: "0.000000625", describe: "{price} per WriteRequestUnits - {location}", instance: None, amount: Amount::Count { max: 300_000 }, resource: Resource::Table, zonal: false, weight: 2 },
    Sku { service: DYNAMODB, family: "Database Storage", usage: "TimedStorage-ByteHrs", operation: "StandardStorage", unit: "GB-Mo", rate: "0.25", describe: "{price} per GB-Month of storage used beyond first 25 free GB-Months", instance: None, amount: Amount::PerMonth { min: 1, max: 800 }, resource: Resource::Table, zonal: false, weight: 1 },
    Sku { service: VPC, family: "NAT Gateway", usage: "NatGateway-Hours", operation: "NatGateway", unit: "Hrs", rate: "0.045", describe: "{price} per NAT Gateway Hour", instance: None, amount: Amount::Hours, resource: Resource::NatGateway, zonal: false, weight: 3 },
    Sku { service: VPC, family: "VPC", usage: "PublicIPv4:InUseAddress", operation: "AssociateAddressVPC", unit: "Hrs", rate: "0.005", describe: "{price} per In-use public IPv4 address per hour", instance: None, amount: Amount::Hours, resource: Resource::Address, zonal: false, weight: 3 },
];

/// The Compute Savings Plan owned by acme-production.
const SP_ARN: &str =
    "arn:aws:savingsplans::222222222222:savingsplan/3f1c2a9e-7b4d-4c61-9a8e-5d2f0b6e1c47";
const SP_OWNER: u8 = ACME_PRODUCTION;
/// Savings Plan rate as a share of the on-demand rate, percent (3-year no upfront, roughly).
const SP_RATE_PERCENT: i64 = 66;
/// The Reserved Instances (m5.xlarge, us-east-1, 1-year partial upfront) owned by
/// globex-management and used by globex-production.
const RI_ARN: &str =
    "arn:aws:ec2:us-east-1:444444444444:reserved-instances/9d2e4b1a-3c5f-4e7a-8b6d-2f1a0c9e7d35";
const RI_OWNER: u8 = GLOBEX_MANAGEMENT;
const RI_USER: u8 = GLOBEX_PRODUCTION;
/// Hourly recurring fee per reservation.
const RI_RECURRING: &str = "0.0605";
/// Upfront payment (530 USD per year) amortized per hour: 530 / 8760, to 10 decimals.
const RI_AMORTIZED: &str = "0.0605022831";

/// Chances, per mille, of each kind of hourly event. The first three are drawn for every event;
/// the others only where they apply (the Savings Plan on acme's EC2 instances, the reservation
/// in globex-production, bundled discounts on data transfer out, and each organization's own
/// private pricing), in this order.
const P_MARKETPLACE: u64 = 4;
const P_CREDIT: u64 = 2;
const P_REFUND: u64 = 1;
const P_SAVINGS_PLAN: u64 = 450;
const P_RESERVED: u64 = 250;
const P_BUNDLED: u64 = 500;
const P_PRIVATE_RATE: u64 = 400;
const P_EDP: u64 = 120;
const P_SPP: u64 = 150;
/// Commitments are sized to the usage they cover, so the sample looks like a well-run bill at
/// any row count: per generated row, the Savings Plan commitment (USD per period; the lines
/// generated cover ≈ 0.00464 USD of effective cost per row) and the reserved hours (≈ 0.0375
/// covered hours per row). Measured on 1M rows; `commitments_are_sized_to_their_usage` checks.
const SP_COMMITMENT_PER_ROW: f64 = 0.0048;
const RI_HOURS_PER_ROW: f64 = 0.038;

/// One line a row can be about: a SKU in a region, a fee, or a service as a whole (taxes,
/// credits). Strings are built once per run, so rows only hold indices.
struct Item {
    product_code: &'static str,
    billing_entity: &'static str,
    legal_entity: &'static str,
    usage_type: String,
    operation: &'static str,
    unit: Option<&'static str>,
    family: Option<&'static str>,
    description: String,
    instance_type: Option<&'static str>,
    normalization_factor: i64,
    region: Option<usize>,
    sku: Option<String>,
    /// Index into [`SKUS`] for usage items; keys resource names.
    sku_index: Option<usize>,
    rate: i64,
    amount: Amount,
    resource: Resource,
    zonal: bool,
    product: Vec<(&'static str, String)>,
}

impl Item {
    fn usage(sku_index: usize, sku: &Sku, region: &Region) -> Self {
        let rate = round_div(
            fixed(sku.rate) as i128 * region.price_per_mille as i128,
            1000,
        );
        let usage_type = format!("{}-{}", region.prefix, sku.usage);
        let description = sku
            .describe
            .replace("{price}", &price_text(rate))
            .replace("{location}", region.location);
        let mut product = vec![
            ("product_name", sku.service.name.to_string()),
            ("servicename", sku.service.name.to_string()),
            ("region", region.code.to_string()),
            ("location", region.location.to_string()),
            ("usagetype", usage_type.clone()),
            ("operation", sku.operation.to_string()),
        ];
        if sku.instance.is_some() {
            product.push(("operating_system", "Linux".to_string()));
            product.push(("tenancy", "Shared".to_string()));
        }
        Self {
            product_code: sku.service.code,
            billing_entity: AWS,
            legal_entity: AWS_EMEA,
            sku: Some(sku_code(&usage_type, sku.operation)),
            usage_type,
            operation: sku.operation,
            unit: Some(sku.unit),
            family: Some(sku.family),
            description,
            instance_type: sku.instance.map(|(t, _)| t),
            normalization_factor: sku.instance.map_or(NONE, |(_, f)| fixed(f)),
            region: Some(
                REGIONS
                    .iter()
                    .position(|r| r.code == region.code)
                    .expect("known region"),
            ),
            sku_index: Some(sku_index),
            rate,
            amount: sku.amount,
            resource: sku.resource,
            zonal: sku.zonal,
            product,
        }
    }

    /// A line about a service as a whole, not one SKU: taxes, credits, support, subscriptions.
    fn account_level(service: &Service, description: String) -> Self {
        Self {
            product_code: service.code,
            billing_entity: AWS,
            legal_entity: AWS_EMEA,
            usage_type: String::new(),
            operation: "",
            unit: None,
            family: None,
            description,
            instance_type: None,
            normalization_factor: NONE,
            region: None,
            sku: None,
            sku_index: None,
            rate: NONE,
            amount: Amount::One,
            resource: Resource::None,
            zonal: false,
            product: vec![
                ("product_name", service.name.to_string()),
                ("servicename", service.name.to_string()),
            ],
        }
    }
}

/// A stable 16-character AWS-style SKU code for a usage type and operation.
fn sku_code(usage_type: &str, operation: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut h = 0xCBF2_9CE4_8422_2325_u64;
    for b in usage_type.bytes().chain([0]).chain(operation.bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3);
    }
    let (mut a, mut b) = (mix(h), mix(h ^ GOLDEN));
    (0..16)
        .map(|i| {
            let v = if i < 8 { &mut a } else { &mut b };
            let c = ALPHABET[(*v & 31) as usize];
            *v >>= 5;
            c as char
        })
        .collect()
}

/// Every item, plus the indices of the special ones.
struct Catalog {
    items: Vec<Item>,
    accounts: Weighted,
    skus: Weighted,
    regions: Vec<Weighted>,
    ri_usage: u16,
    ri_fee: u16,
    sp_fee: u16,
    business_support: u16,
    developer_support: u16,
    marketplace_fee: u16,
    marketplace_usage: u16,
    ec2: u16,
    s3: u16,
    rds: u16,
    lambda: u16,
}

impl Catalog {
    fn new() -> Self {
        let mut items: Vec<Item> = Vec::new();
        for (index, sku) in SKUS.iter().enumerate() {
            for region in &REGIONS {
                items.push(Item::usage(index, sku, region));
            }
        }
        let mut add = |item: Item| {
            items.push(item);
            (items.len() - 1) as u16
        };

        let m5_xlarge = SKUS
            .iter()
            .position(|s| s.usage == "BoxUsage:m5.xlarge")
            .expect("m5.xlarge in the catalog");
        let ri_usage = (m5_xlarge * REGIONS.len() + USE1) as u16;
        let ri_recurring = fixed(RI_RECURRING);
        let ri_fee = add(Item {
            usage_type: "USE1-HeavyUsage:m5.xlarge".to_string(),
            operation: "RunInstances",
            unit: Some("Hrs"),
            family: Some("Compute Instance"),
            description: format!(
                "USD {} hourly fee per Linux/UNIX (Amazon VPC), m5.xlarge instance",
                RI_RECURRING
            ),
            instance_type: Some("m5.xlarge"),
            region: Some(USE1),
            sku: Some(sku_code("USE1-HeavyUsage:m5.xlarge", "RunInstances")),
            rate: ri_recurring,
            resource: Resource::Reservation,
            ..Item::account_level(&EC2, String::new())
        });
        let sp_fee = add(Item {
            usage_type: "ComputeSP:3yrNoUpfront".to_string(),
            unit: Some("Hrs"),
            family: Some("Savings Plan"),
            sku: Some(sku_code("ComputeSP:3yrNoUpfront", "")),
            resource: Resource::SavingsPlan,
            ..Item::account_level(
                &Service {
                    code: "ComputeSavingsPlans",
                    name: "Savings Plans for AWS Compute usage",
                },
                "3 year No Upfront Compute Savings Plan".to_string(),
            )
        });
        let business_support = add(Item {
            usage_type: "Dollar".to_string(),
            ..Item::account_level(
                &Service {
                    code: "AWSSupportBusiness",
                    name: "AWS Support (Business)",
                },
                "AWS Support (Business)".to_string(),
            )
        });
        let developer_support = add(Item {
            usage_type: "Dollar".to_string(),
            ..Item::account_level(
                &Service {
                    code: "AWSDeveloperSupport",
                    name: "AWS Support (Developer)",
                },
                "AWS Support (Developer)".to_string(),
            )
        });
        let marketplace_fee = add(Item {
            billing_entity: "AWS Marketplace",
            legal_entity: "Datadog, Inc.",
            usage_type: "SaaS-Subscription:pro".to_string(),
            ..Item::account_level(
                &Service {
                    code: "9s2k4hd7rw3qz0mxv5b8ny1tj",
                    name: "Datadog Pro (monthly subscription)",
                },
                "Datadog Pro - monthly subscription fee".to_string(),
            )
        });
        let marketplace_usage = add(Item {
            billing_entity: "AWS Marketplace",
            legal_entity: "Sentinel Labs LLC",
            usage_type: "USE1-SoftwareUsage:t3.medium".to_string(),
            operation: "RunInstances",
            unit: Some("Hrs"),
            family: Some("Software"),
            region: Some(USE1),
            sku: Some(sku_code("USE1-SoftwareUsage:t3.medium", "RunInstances")),
            rate: fixed("0.35"),
            amount: Amount::Hours,
            resource: Resource::Instance,
            zonal: true,
            ..Item::account_level(
                &Service {
                    code: "6ub7c3mw0qz2kx5fh8tyd1nae",
                    name: "Sentinel Threat Scanner",
                },
                "$0.35 per hour for Sentinel Threat Scanner on t3.medium".to_string(),
            )
        });
        let mut service = |s: &Service| {
            add(Item::account_level(
                s,
                format!("Tax for product code {}", s.code),
            ))
        };
        let (ec2, s3, rds, lambda) = (service(&EC2), service(&S3), service(&RDS), service(&LAMBDA));

        let regions = ACCOUNTS
            .iter()
            .map(|a| Weighted::new(a.regions.iter().map(|&(_, w)| w)))
            .collect();
        Self {
            items,
            accounts: Weighted::new(ACCOUNTS.iter().map(|a| a.weight)),
            skus: Weighted::new(SKUS.iter().map(|s| s.weight)),
            regions,
            ri_usage,
            ri_fee,
            sp_fee,
            business_support,
            developer_support,
            marketplace_fee,
            marketplace_usage,
            ec2,
            s3,
            rds,
            lambda,
        }
    }
}

/// What one billing period needs, formatted once.
struct PeriodInfo {
    period: Period,
    /// `year × 12 + month`: keys seeds and line item ids.
    code: u64,
    start_nanos: i64,
    end_nanos: i64,
    hours: u16,
    /// `2025-11-03T05:00:00Z` for every hour boundary of the period, end included.
    hour_iso: Vec<String>,
    /// Per payer.
    invoice_ids: Vec<String>,
    sp_start: String,
    sp_end: String,
    ri_start: String,
    ri_end: String,
    /// Keys line item ids: a bijection of (period, row) under a fixed seed, so ids never repeat.
    id_key: u64,
    ri_count: i64,
    sp_commitment: i64,
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

    fn hour_nanos(&self, hour: u16) -> i64 {
        self.start_nanos + i64::from(hour) * 3_600_000_000_000
    }
}

// ---------------------------------------------------------------------------------------------
// Rows and their generation
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Usage,
    Fee,
    DiscountedUsage,
    RiFee,
    SavingsPlanCoveredUsage,
    SavingsPlanNegation,
    SavingsPlanRecurringFee,
    Credit,
    Refund,
    Tax,
    EdpDiscount,
    PrivateRateDiscount,
    BundledDiscount,
    SppDiscount,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Usage => "Usage",
            Kind::Fee => "Fee",
            Kind::DiscountedUsage => "DiscountedUsage",
            Kind::RiFee => "RIFee",
            Kind::SavingsPlanCoveredUsage => "SavingsPlanCoveredUsage",
            Kind::SavingsPlanNegation => "SavingsPlanNegation",
            Kind::SavingsPlanRecurringFee => "SavingsPlanRecurringFee",
            Kind::Credit => "Credit",
            Kind::Refund => "Refund",
            Kind::Tax => "Tax",
            Kind::EdpDiscount => "EdpDiscount",
            Kind::PrivateRateDiscount => "PrivateRateDiscount",
            Kind::BundledDiscount => "BundledDiscount",
            Kind::SppDiscount => "SppDiscount",
        }
    }

    /// Lines that meter a resource's usage (and so carry its pricing, unit and tags).
    fn is_usage(self) -> bool {
        matches!(
            self,
            Kind::Usage
                | Kind::DiscountedUsage
                | Kind::SavingsPlanCoveredUsage
                | Kind::SavingsPlanNegation
        )
    }

    fn is_savings_plan(self) -> bool {
        matches!(
            self,
            Kind::SavingsPlanCoveredUsage
                | Kind::SavingsPlanNegation
                | Kind::SavingsPlanRecurringFee
        )
    }

    fn is_reservation(self) -> bool {
        matches!(self, Kind::DiscountedUsage | Kind::RiFee)
    }
}

/// A discount shown on a usage line (`discount` map, net columns) and as its own line item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Discount {
    Edp,
    PrivateRate,
    Spp,
    Bundled,
}

impl Discount {
    fn line(self) -> Kind {
        match self {
            Discount::Edp => Kind::EdpDiscount,
            Discount::PrivateRate => Kind::PrivateRateDiscount,
            Discount::Spp => Kind::SppDiscount,
            Discount::Bundled => Kind::BundledDiscount,
        }
    }

    /// The key in the `discount` map.
    fn key(self) -> &'static str {
        match self {
            Discount::Edp => "edp_discount",
            Discount::PrivateRate => "private_rate_discount",
            Discount::Spp => "spp_discount",
            Discount::Bundled => "bundled_discount",
        }
    }
}

const NO_RESOURCE: u16 = u16::MAX;

/// One line item, compactly: catalog indices and fixed-point numbers ([`NONE`] = null). Columns
/// are rendered from it one at a time, so a row group never holds its strings all at once.
#[derive(Debug, Clone, Copy)]
struct Row {
    /// Row number within the period.
    ordinal: u64,
    kind: Kind,
    account: u8,
    item: u16,
    resource: u16,
    start_hour: u16,
    hours: u16,
    amount: i64,
    rate: i64,
    cost: i64,
    public_rate: i64,
    public_cost: i64,
    net_rate: i64,
    net_cost: i64,
    discount: i64,
    discount_kind: Option<Discount>,
    /// Savings Plan rate of covered usage.
    commitment_rate: i64,
    /// Savings Plan or reservation effective cost of covered usage.
    commitment_cost: i64,
    /// Reservation amortized upfront cost of covered usage.
    upfront: i64,
}

impl Row {
    fn blank(kind: Kind, account: u8, item: u16) -> Self {
        Self {
            ordinal: 0,
            kind,
            account,
            item,
            resource: NO_RESOURCE,
            start_hour: 0,
            hours: 1,
            amount: NONE,
            rate: NONE,
            cost: 0,
            public_rate: NONE,
            public_cost: NONE,
            net_rate: NONE,
            net_cost: NONE,
            discount: NONE,
            discount_kind: None,
            commitment_rate: NONE,
            commitment_cost: NONE,
            upfront: NONE,
        }
    }
}

/// Produces one file's rows: the period's monthly lines first (first file only), then hourly
/// usage events of one or two lines each.
struct Generator<'a> {
    ctx: Ctx<'a>,
    rng: Rng,
    next_ordinal: u64,
    left: u64,
    /// Lines still to emit before drawing a new event, in reverse order.
    queue: Vec<Row>,
}

impl<'a> Generator<'a> {
    fn new(ctx: Ctx<'a>, rng: Rng, job: &Job) -> Self {
        let mut generator = Self {
            ctx,
            rng,
            next_ordinal: job.first_ordinal,
            left: job.rows,
            queue: Vec::new(),
        };
        if job.file == 0 {
            let mut monthly = generator.monthly_lines();
            monthly.reverse();
            generator.queue = monthly;
        }
        generator
    }

    fn fill(&mut self, out: &mut Vec<Row>, n: usize) {
        while out.len() < n {
            if self.queue.is_empty() {
                // A pair never straddles the end of the file: the row count stays exact and
                // every discount line sits beside its usage line.
                let pair_fits = self.left >= 2;
                let (first, second) = self.event(pair_fits);
                self.queue.extend(second);
                self.queue.push(first);
            }
            let mut row = self.queue.pop().expect("queue refilled");
            row.ordinal = self.next_ordinal;
            self.next_ordinal += 1;
            self.left -= 1;
            out.push(row);
        }
    }

    /// The once-a-month lines: commitment fees, support, subscriptions, taxes, credits.
    fn monthly_lines(&mut self) -> Vec<Row> {
        let cat = self.ctx.cat;
        let period = self.ctx.period;
        let hours = i64::from(period.hours) * SCALE;
        let mut lines = Vec::new();
        let mut monthly =
            |kind: Kind, account: u8, item: u16, amount: i64, rate: i64, cost: i64| {
                let mut row = Row::blank(kind, account, item);
                row.hours = period.hours;
                row.amount = amount;
                row.rate = rate;
                row.cost = cost;
                row.net_cost = cost;
                row.net_rate = rate;
                lines.push(row);
                lines.len() - 1
            };
        let rng = &mut self.rng;
        let mut dollars = |lo: i64, hi: i64| rng.between(lo * 100, hi * 100) * (SCALE / 100);

        let ri_amount = hours * period.ri_count;
        let ri_rate = cat.items[cat.ri_fee as usize].rate;
        let ri = monthly(
            Kind::RiFee,
            RI_OWNER,
            cat.ri_fee,
            ri_amount,
            ri_rate,
            fixed_mul(ri_amount, ri_rate),
        );
        let sp = monthly(
            Kind::SavingsPlanRecurringFee,
            SP_OWNER,
            cat.sp_fee,
            hours,
            period.sp_commitment,
            fixed_mul(hours, period.sp_commitment),
        );

        let business = [
            (ACME_MANAGEMENT, dollars(100, 1500)),
            (GLOBEX_MANAGEMENT, dollars(100, 900)),
        ];
        for (account, cost) in business {
            monthly(Kind::Fee, account, cat.business_support, SCALE, cost, cost);
        }
        monthly(
            Kind::Fee,
            INITECH_PRODUCTION,
            cat.developer_support,
            SCALE,
            fixed("29"),
            fixed("29"),
        );
        let subscription = dollars(300, 600);
        let marketplace = monthly(
            Kind::Fee,
            ACME_PRODUCTION,
            cat.marketplace_fee,
            SCALE,
            subscription,
            subscription,
        );

        for account in 0..ACCOUNTS.len() as u8 {
            let tax = dollars(20, 800);
            monthly(Kind::Tax, account, cat.ec2, SCALE, NONE, tax);
        }
        let s3_tax = dollars(5, 120);
        monthly(Kind::Tax, ACME_MANAGEMENT, cat.s3, SCALE, NONE, s3_tax);
        let credit = -dollars(250, 2500);
        monthly(Kind::Credit, ACME_MANAGEMENT, cat.ec2, SCALE, NONE, credit);
        let credit = -dollars(100, 1000);
        monthly(
            Kind::Credit,
            GLOBEX_PRODUCTION,
            cat.lambda,
            SCALE,
            NONE,
            credit,
        );
        let refund = -dollars(10, 300);
        monthly(
            Kind::Refund,
            GLOBEX_MANAGEMENT,
            cat.rds,
            SCALE,
            NONE,
            refund,
        );

        // Commitment fees name their commitment as the resource; Marketplace shows no public
        // price (on-demand cost 0) although it charges.
        lines[ri].resource = 0;
        lines[sp].resource = 0;
        lines[marketplace].public_rate = 0;
        lines[marketplace].public_cost = 0;
        lines
    }

    /// One hourly event: a usage line, possibly with its discount or negation line.
    fn event(&mut self, pair_fits: bool) -> (Row, Option<Row>) {
        let account = self.ctx.cat.accounts.pick(&mut self.rng) as u8;
        let roll = self.rng.below(1000);
        if roll < P_MARKETPLACE {
            let mut usage = self.usage(account, self.ctx.cat.marketplace_usage);
            usage.public_rate = NONE;
            usage.public_cost = NONE;
            return (usage, None);
        }
        if roll < P_MARKETPLACE + P_CREDIT + P_REFUND {
            let kind = if roll < P_MARKETPLACE + P_CREDIT {
                Kind::Credit
            } else {
                Kind::Refund
            };
            return (self.adjustment(kind, account), None);
        }

        let acct = &ACCOUNTS[account as usize];
        let payer = &PAYERS[acct.payer];
        if account == RI_USER && self.rng.per_mille(P_RESERVED) {
            return (self.reserved(account), None);
        }
        let sku = self.ctx.cat.skus.pick(&mut self.rng);
        let region = acct.regions[self.ctx.cat.regions[account as usize].pick(&mut self.rng)].0;
        let item = (sku * REGIONS.len() + region) as u16;
        let usage = self.usage(account, item);
        if !pair_fits {
            return (usage, None);
        }
        let spec = &SKUS[sku];
        let instance = spec.service.code == EC2.code && spec.instance.is_some();
        if acct.payer == ACCOUNTS[SP_OWNER as usize].payer
            && instance
            && self.rng.per_mille(P_SAVINGS_PLAN)
        {
            return self.savings_plan(usage);
        }
        if spec.usage == "DataTransfer-Out-Bytes" && self.rng.per_mille(P_BUNDLED) {
            return discounted(usage, Discount::Bundled, 100);
        }
        if payer.s3_private_percent > 0
            && spec.service.code == S3.code
            && self.rng.per_mille(P_PRIVATE_RATE)
        {
            return discounted(usage, Discount::PrivateRate, payer.s3_private_percent);
        }
        if payer.edp_percent > 0 && self.rng.per_mille(P_EDP) {
            return discounted(usage, Discount::Edp, payer.edp_percent);
        }
        if payer.spp_percent > 0 && self.rng.per_mille(P_SPP) {
            return discounted(usage, Discount::Spp, payer.spp_percent);
        }
        (usage, None)
    }

    /// An on-demand usage line at the public rate.
    fn usage(&mut self, account: u8, item: u16) -> Row {
        let it = &self.ctx.cat.items[item as usize];
        let amount = self.amount(it.amount);
        let cost = fixed_mul(amount, it.rate);
        let mut row = Row::blank(Kind::Usage, account, item);
        row.resource = match it.resource.pool() {
            0 => NO_RESOURCE,
            pool => self.rng.below(pool) as u16,
        };
        row.start_hour = self.rng.below(u64::from(self.ctx.period.hours)) as u16;
        row.amount = amount;
        row.rate = it.rate;
        row.cost = cost;
        row.public_rate = it.rate;
        row.public_cost = cost;
        row.net_rate = it.rate;
        row.net_cost = cost;
        row
    }

    fn amount(&mut self, model: Amount) -> i64 {
        let rng = &mut self.rng;
        match model {
            Amount::Hours if rng.per_mille(850) => SCALE,
            Amount::Hours => round_div(rng.between(60, 3599) as i128 * SCALE as i128, 3600),
            Amount::PerMonth { min, max } => {
                let units_milli = rng.between(min * 1000, max * 1000);
                round_div(
                    units_milli as i128 * (SCALE / 1000) as i128,
                    i128::from(self.ctx.period.hours),
                )
            }
            Amount::Metered { max } => rng.between(1, max * SCALE),
            Amount::Count { max } => rng.between(1, max) * SCALE,
            Amount::One => SCALE,
        }
    }

    /// EC2 usage covered by acme-production's Savings Plan, and its negation.
    fn savings_plan(&mut self, usage: Row) -> (Row, Option<Row>) {
        let mut covered = usage;
        covered.kind = Kind::SavingsPlanCoveredUsage;
        covered.commitment_rate = percent_of(usage.rate, SP_RATE_PERCENT);
        covered.commitment_cost = fixed_mul(usage.amount, covered.commitment_rate);
        let mut negation = usage;
        negation.kind = Kind::SavingsPlanNegation;
        negation.rate = -usage.rate;
        negation.cost = -usage.cost;
        negation.net_rate = -usage.rate;
        negation.net_cost = -usage.cost;
        negation.public_rate = NONE;
        negation.public_cost = NONE;
        (covered, Some(negation))
    }

    /// m5.xlarge usage in globex-production covered by globex-management's reservation: no
    /// unblended cost; the reservation's effective cost carries it.
    fn reserved(&mut self, account: u8) -> Row {
        let mut row = self.usage(account, self.ctx.cat.ri_usage);
        row.kind = Kind::DiscountedUsage;
        row.rate = 0;
        row.cost = 0;
        row.net_rate = 0;
        row.net_cost = 0;
        row.upfront = fixed_mul(row.amount, fixed(RI_AMORTIZED));
        row.commitment_cost = fixed_mul(row.amount, fixed(RI_RECURRING)) + row.upfront;
        row
    }

    /// A one-hour credit or refund against a service.
    fn adjustment(&mut self, kind: Kind, account: u8) -> Row {
        let cat = self.ctx.cat;
        let services = [cat.ec2, cat.s3, cat.rds, cat.lambda];
        let item = services[self.rng.below(services.len() as u64) as usize];
        let mut row = Row::blank(kind, account, item);
        row.start_hour = self.rng.below(u64::from(self.ctx.period.hours)) as u16;
        row.amount = SCALE;
        row.cost = -self.rng.between(1, 5_000) * (SCALE / 1000);
        row.net_cost = row.cost;
        row
    }
}

/// Splits a usage line into its discounted form and the discount's own (negative) line item.
fn discounted(mut usage: Row, kind: Discount, percent: i64) -> (Row, Option<Row>) {
    let discount = percent_of(usage.cost, percent);
    usage.discount = -discount;
    usage.discount_kind = Some(kind);
    usage.net_cost = usage.cost - discount;
    usage.net_rate = percent_of(usage.rate, 100 - percent);
    let mut line = Row::blank(kind.line(), usage.account, usage.item);
    line.resource = usage.resource;
    line.start_hour = usage.start_hour;
    line.amount = 0;
    line.cost = -discount;
    // The usage line's net cost already includes the discount: counting it again would not add up.
    line.net_cost = 0;
    (usage, Some(line))
}

// ---------------------------------------------------------------------------------------------
// Columns: names, Parquet types and how each renders from a row
// ---------------------------------------------------------------------------------------------

/// What a renderer needs besides the row.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    cat: &'a Catalog,
    period: &'a PeriodInfo,
}

impl<'a> Ctx<'a> {
    fn item(&self, r: &Row) -> &'a Item {
        &self.cat.items[r.item as usize]
    }

    fn account(&self, r: &Row) -> &'static Account {
        &ACCOUNTS[r.account as usize]
    }

    fn payer(&self, r: &Row) -> &'static Payer {
        &PAYERS[self.account(r).payer]
    }

    fn region(&self, r: &Row) -> Option<&'static Region> {
        self.item(r).region.map(|i| &REGIONS[i])
    }
}

type StrFn = fn(&Row, &Ctx<'_>, &mut StrOut);
type F64Fn = fn(&Row, &Ctx<'_>) -> Option<f64>;
type TsFn = fn(&Row, &Ctx<'_>) -> Option<i64>;
type StrMapFn = fn(&Row, &Ctx<'_>, &mut MapOut<StrBuf>);
type F64MapFn = fn(&Row, &Ctx<'_>, &mut MapOut<Vec<f64>>);

#[derive(Clone, Copy)]
enum Render {
    Str(StrFn),
    F64(F64Fn),
    /// Nanoseconds since the epoch, UTC, written as INT96.
    Ts(TsFn),
    StrMap(StrMapFn),
    F64Map(F64MapFn),
}

impl Render {
    fn manifest_type(&self) -> &'static str {
        match self {
            Render::Str(_) => "string",
            Render::F64(_) => "double",
            Render::Ts(_) => "timestamp",
            Render::StrMap(_) => "map<string,string>",
            Render::F64Map(_) => "map<string,double>",
        }
    }
}

struct Column {
    name: &'static str,
    render: Render,
}

/// The columns in file order: grouped roughly as AWS groups them but deliberately not
/// alphabetical, because real exports vary and readers must go by name.
#[rustfmt::skip]
fn columns() -> Vec<Column> {
    use Render::*;
    let c = |name, render| Column { name, render };
    vec![
        c("identity_line_item_id", Str(|r, x, o| o.with(|b| write_line_item_id(b, x.period, r.ordinal)))),
        c("identity_time_interval", Str(|r, x, o| o.with(|b| {
            b.extend_from_slice(x.period.hour_iso[r.start_hour as usize].as_bytes());
            b.push(b'/');
            b.extend_from_slice(x.period.hour_iso[(r.start_hour + r.hours) as usize].as_bytes());
        }))),
        c("line_item_usage_account_id", Str(|r, x, o| o.str(x.account(r).id))),
        c("line_item_line_item_type", Str(|r, _, o| o.str(r.kind.as_str()))),
        c("line_item_usage_start_date", Ts(|r, x| Some(x.period.hour_nanos(r.start_hour)))),
        c("line_item_usage_end_date", Ts(|r, x| Some(x.period.hour_nanos(r.start_hour + r.hours)))),
        c("line_item_product_code", Str(|r, x, o| o.str(x.item(r).product_code))),
        c("line_item_usage_type", Str(|r, x, o| o.str(&x.item(r).usage_type))),
        c("line_item_operation", Str(|r, x, o| o.str(x.item(r).operation))),
        c("line_item_unblended_cost", F64(|r, _| fixed_opt(r.cost))),
        c("line_item_unblended_rate", Str(|r, _, o| o.fixed(r.rate))),
        c("line_item_usage_amount", F64(|r, _| fixed_opt(r.amount))),
        c("bill_payer_account_id", Str(|r, x, o| o.str(x.payer(r).id))),
        c("bill_billing_period_start_date", Ts(|_, x| Some(x.period.start_nanos))),
        c("bill_billing_period_end_date", Ts(|_, x| Some(x.period.end_nanos))),
        c("line_item_resource_id", Str(render_resource_id)),
        c("product", StrMap(|r, x, m| m.entries(|m| {
            for (k, v) in &x.item(r).product {
                m.put(k, v);
            }
        }))),
        c("line_item_currency_code", Str(|_, _, o| o.str("USD"))),
        c("pricing_public_on_demand_cost", F64(|r, _| fixed_opt(r.public_cost))),
        c("pricing_public_on_demand_rate", Str(|r, _, o| o.fixed(r.public_rate))),
        c("line_item_line_item_description", Str(render_description)),
        c("line_item_net_unblended_cost", F64(|r, _| fixed_opt(r.net_cost))),
        c("line_item_net_unblended_rate", Str(|r, _, o| o.fixed(r.net_rate))),
        c("discount", F64Map(|r, _, m| match r.discount_kind {
            Some(kind) => m.entries(|m| m.put(kind.key(), fixed_f64(r.discount))),
            None => m.null(),
        })),
        c("discount_total_discount", F64(|r, _| fixed_opt(r.discount))),
        c("discount_bundled_discount", F64(|r, _| (r.discount_kind == Some(Discount::Bundled)).then(|| fixed_f64(r.discount)))),
        c("bill_invoice_id", Str(|r, x, o| o.str(&x.period.invoice_ids[x.account(r).payer]))),
        c("bill_billing_entity", Str(|r, x, o| o.str(x.item(r).billing_entity))),
        c("bill_bill_type", Str(|_, _, o| o.str("Anniversary"))),
        c("bill_invoicing_entity", Str(|_, _, o| o.str(AWS_EMEA))),
        c("bill_payer_account_name", Str(|r, x, o| o.str(x.payer(r).name))),
        c("line_item_usage_account_name", Str(|r, x, o| o.str(x.account(r).name))),
        c("line_item_legal_entity", Str(|r, x, o| o.str(x.item(r).legal_entity))),
        c("line_item_availability_zone", Str(|r, x, o| match x.region(r) {
            Some(region) if x.item(r).zonal && r.kind.is_usage() && r.resource != NO_RESOURCE => {
                o.with(|b| {
                    b.extend_from_slice(region.code.as_bytes());
                    b.push(b"abc"[r.resource as usize % 3]);
                });
            }
            _ => o.str(""),
        })),
        c("line_item_tax_type", Str(|r, _, o| o.opt((r.kind == Kind::Tax).then_some("VAT")))),
        c("line_item_blended_rate", Str(|r, _, o| o.fixed(r.rate))),
        c("line_item_blended_cost", F64(|r, _| fixed_opt(r.cost))),
        c("line_item_normalization_factor", F64(|r, x| normalization_factor(r, x).map(fixed_f64))),
        c("line_item_normalized_usage_amount", F64(|r, x| normalization_factor(r, x).map(|f| fixed_f64(fixed_mul(r.amount, f))))),
        c("resource_tags", StrMap(render_tags)),
        c("pricing_term", Str(|r, _, o| o.opt(match r.kind {
            Kind::Usage | Kind::SavingsPlanCoveredUsage => Some("OnDemand"),
            Kind::DiscountedUsage | Kind::RiFee => Some("Reserved"),
            _ => None,
        }))),
        c("pricing_unit", Str(|r, x, o| o.opt(if r.kind.is_usage() || r.kind.is_reservation() || r.kind.is_savings_plan() { x.item(r).unit } else { None }))),
        c("pricing_currency", Str(|r, _, o| o.opt((r.public_rate != NONE).then_some("USD")))),
        c("product_servicecode", Str(|r, x, o| o.str(x.item(r).product_code))),
        c("product_sku", Str(|r, x, o| o.opt(x.item(r).sku.as_deref()))),
        c("product_product_family", Str(|r, x, o| o.opt(x.item(r).family))),
        c("product_region_code", Str(|r, x, o| o.opt(x.region(r).map(|g| g.code)))),
        c("product_instance_type", Str(|r, x, o| o.opt(x.item(r).instance_type))),
        c("savings_plan_savings_plan_a_r_n", Str(|r, _, o| o.opt(r.kind.is_savings_plan().then_some(SP_ARN)))),
        c("savings_plan_savings_plan_rate", Str(|r, _, o| o.fixed(r.commitment_rate))),
        c("savings_plan_savings_plan_effective_cost", F64(|r, _| (r.kind == Kind::SavingsPlanCoveredUsage).then(|| fixed_f64(r.commitment_cost)))),
        c("savings_plan_used_commitment", F64(|r, _| (r.kind == Kind::SavingsPlanCoveredUsage).then(|| fixed_f64(r.commitment_cost)))),
        c("savings_plan_recurring_commitment_for_billing_period", F64(|r, _| (r.kind == Kind::SavingsPlanRecurringFee).then(|| fixed_f64(r.cost)))),
        c("savings_plan_start_time", Str(|r, x, o| o.opt(r.kind.is_savings_plan().then_some(x.period.sp_start.as_str())))),
        c("savings_plan_end_time", Str(|r, x, o| o.opt(r.kind.is_savings_plan().then_some(x.period.sp_end.as_str())))),
        c("cost_category", StrMap(|r, x, m| m.entries(|m| {
            if let Some(team) = x.account(r).team {
                m.put("team", team);
            }
        }))),
        c("reservation_reservation_a_r_n", Str(|r, _, o| o.opt(r.kind.is_reservation().then_some(RI_ARN)))),
        c("reservation_effective_cost", F64(|r, _| (r.kind == Kind::DiscountedUsage).then(|| fixed_f64(r.commitment_cost)))),
        c("reservation_amortized_upfront_cost_for_usage", F64(|r, _| fixed_opt(r.upfront))),
        c("reservation_start_time", Str(|r, x, o| o.opt(r.kind.is_reservation().then_some(x.period.ri_start.as_str())))),
        c("reservation_end_time", Str(|r, x, o| o.opt(r.kind.is_reservation().then_some(x.period.ri_end.as_str())))),
    ]
}

/// 52 lower-case base32 characters, like AWS's line item ids. The first 13 characters encode a
/// bijection of (seed, period, row), so ids are unique; the rest only add AWS's length.
fn write_line_item_id(out: &mut Vec<u8>, period: &PeriodInfo, ordinal: u64) {
    const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut word = mix(period.id_key ^ (period.code << 40 | ordinal));
    for part in 0..4_u64 {
        let mut bits = word;
        for _ in 0..13 {
            out.push(BASE32[(bits & 31) as usize]);
            bits >>= 5;
        }
        word = mix(word.wrapping_add(GOLDEN.wrapping_mul(part + 1)));
    }
}

fn render_description(r: &Row, x: &Ctx<'_>, o: &mut StrOut) {
    match r.kind {
        Kind::SavingsPlanNegation => o.with(|b| {
            let _ = write!(
                b,
                "SavingsPlanNegation used by AccountId : {} and UsageSku : {}",
                ACCOUNTS[SP_OWNER as usize].id,
                x.item(r).sku.as_deref().unwrap_or("")
            );
        }),
        Kind::DiscountedUsage => {
            o.str("USD 0.0 hourly fee per Linux/UNIX (Amazon VPC), m5.xlarge instance")
        }
        Kind::EdpDiscount => o.str("Enterprise Program Discount"),
        Kind::PrivateRateDiscount => o.str("Private rate discount"),
        Kind::SppDiscount => o.str("Solution Provider Program Discount"),
        Kind::BundledDiscount => o.str("Free data transfer out bundled with usage"),
        Kind::Credit => o.str("AWS Promotional Credit"),
        Kind::Refund => o.str("Refund for service level agreement credit"),
        _ => o.str(&x.item(r).description),
    }
}

fn normalization_factor(r: &Row, x: &Ctx<'_>) -> Option<i64> {
    let factor = x.item(r).normalization_factor;
    (factor != NONE && r.kind.is_usage()).then_some(factor)
}

fn render_resource_id(r: &Row, x: &Ctx<'_>, o: &mut StrOut) {
    let item = x.item(r);
    if r.resource == NO_RESOURCE {
        // Usage lines always have the column, empty when AWS meters no resource; account-level
        // lines (taxes, credits, fees) have none.
        return if r.kind.is_usage() {
            o.str("")
        } else {
            o.null()
        };
    }
    let account = x.account(r);
    let region = x.region(r).map_or("", |g| g.code);
    let index = r.resource;
    let word = RESOURCE_WORDS[index as usize % RESOURCE_WORDS.len()];
    // Stable per (account, SKU, index): the same resources recur hour after hour.
    let hex = mix((u64::from(r.account) << 40)
        ^ ((item.sku_index.unwrap_or(999) as u64) << 20)
        ^ u64::from(index))
        >> 4;
    o.with(|b| {
        let _ = match item.resource {
            Resource::Instance => write!(b, "i-0{hex:015x}"),
            Resource::Volume => write!(b, "vol-0{hex:015x}"),
            Resource::Bucket => write!(b, "{}-{word}-{index}", account.name),
            Resource::Function => write!(
                b,
                "arn:aws:lambda:{region}:{}:function:{word}-{index}",
                account.id
            ),
            Resource::Database => write!(
                b,
                "arn:aws:rds:{region}:{}:db:{word}-db-{index}",
                account.id
            ),
            Resource::Table => write!(
                b,
                "arn:aws:dynamodb:{region}:{}:table/{word}-{index}",
                account.id
            ),
            Resource::NatGateway => write!(
                b,
                "arn:aws:ec2:{region}:{}:natgateway/nat-0{hex:015x}",
                account.id
            ),
            Resource::LogGroup => write!(
                b,
                "arn:aws:logs:{region}:{}:log-group:/aws/lambda/{word}-{index}",
                account.id
            ),
            Resource::Address => write!(
                b,
                "arn:aws:ec2:{region}:{}:elastic-ip/eipalloc-0{hex:015x}",
                account.id
            ),
            Resource::Reservation => write!(b, "{RI_ARN}"),
            Resource::SavingsPlan => write!(b, "{SP_ARN}"),
            Resource::None => Ok(()),
        };
    });
}

const RESOURCE_WORDS: [&str; 8] = [
    "orders",
    "billing",
    "search",
    "ingest",
    "analytics",
    "web",
    "auth",
    "reports",
];
const ENVIRONMENTS: [&str; 3] = ["prod", "staging", "dev"];

/// User tags of the line's resource: most resources are tagged, some are not (an empty map), and
/// lines without a resource have no tags at all (null).
fn render_tags(r: &Row, x: &Ctx<'_>, m: &mut MapOut<StrBuf>) {
    if !r.kind.is_usage() {
        return m.null();
    }
    let index = r.resource as usize;
    m.entries(|m| {
        if r.resource == NO_RESOURCE || index % 7 == 6 {
            return;
        }
        if let Some(team) = x.account(r).team {
            m.put("user_team", team);
        }
        m.put("user_env", ENVIRONMENTS[index % ENVIRONMENTS.len()]);
        if index.is_multiple_of(2) {
            m.put("user_service", RESOURCE_WORDS[index % RESOURCE_WORDS.len()]);
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Parquet encoding
// ---------------------------------------------------------------------------------------------

fn parquet_schema(columns: &[Column]) -> Result<parquet::schema::types::Type, ParquetError> {
    let mut text = String::from("message schema {\n");
    for column in columns {
        let name = column.name;
        let line = match column.render {
            Render::Str(_) => format!("  optional binary {name} (STRING);\n"),
            Render::F64(_) => format!("  optional double {name};\n"),
            Render::Ts(_) => format!("  optional int96 {name};\n"),
            Render::StrMap(_) => format!(
                "  optional group {name} (MAP) {{ repeated group key_value {{ required binary key (STRING); optional binary value (STRING); }} }}\n"
            ),
            Render::F64Map(_) => format!(
                "  optional group {name} (MAP) {{ repeated group key_value {{ required binary key (STRING); optional double value; }} }}\n"
            ),
        };
        text.push_str(&line);
    }
    text.push('}');
    parse_message_type(&text)
}

/// Strings of one column chunk, back to back, so a row group costs one allocation per column
/// rather than one per value.
#[derive(Default)]
struct StrBuf {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl StrBuf {
    fn push(&mut self, s: &str) {
        self.bytes.extend_from_slice(s.as_bytes());
        self.ends.push(self.bytes.len());
    }

    /// Hands the values to Parquet as slices of one shared buffer.
    fn drain_into(&mut self, out: &mut Vec<ByteArray>) {
        out.clear();
        let all = ByteArray::from(std::mem::take(&mut self.bytes));
        let mut start = 0;
        for &end in &self.ends {
            out.push(all.slice(start, end - start));
            start = end;
        }
        self.ends.clear();
    }
}

/// One optional string column being rendered: one definition level per row.
#[derive(Default)]
struct StrOut {
    values: StrBuf,
    def: Vec<i16>,
}

impl StrOut {
    fn str(&mut self, s: &str) {
        self.values.push(s);
        self.def.push(1);
    }

    fn null(&mut self) {
        self.def.push(0);
    }

    fn opt(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.str(s),
            None => self.null(),
        }
    }

    /// A fixed-point value as a 10-decimal string, or null.
    fn fixed(&mut self, value: i64) {
        if value == NONE {
            return self.null();
        }
        self.with(|b| write_fixed(b, value));
    }

    /// A value written straight into the column buffer, without a `String` per row.
    fn with(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        write(&mut self.values.bytes);
        self.values.ends.push(self.values.bytes.len());
        self.def.push(1);
    }
}

/// One optional `map<string, V>` column being rendered: keys and values are two leaf columns
/// sharing repetition levels (0 starts a row, 1 continues its map).
#[derive(Default)]
struct MapOut<V> {
    keys: StrBuf,
    values: V,
    key_def: Vec<i16>,
    value_def: Vec<i16>,
    rep: Vec<i16>,
    row_start: usize,
}

impl<V> MapOut<V> {
    fn null(&mut self) {
        self.key_def.push(0);
        self.value_def.push(0);
        self.rep.push(0);
    }

    /// A present map; `fill` adds its entries, none at all makes it an empty map.
    fn entries(&mut self, fill: impl FnOnce(&mut Self)) {
        self.row_start = self.rep.len();
        fill(self);
        if self.rep.len() == self.row_start {
            self.key_def.push(1);
            self.value_def.push(1);
            self.rep.push(0);
        }
    }

    fn level(&mut self) {
        self.rep.push(if self.rep.len() == self.row_start {
            0
        } else {
            1
        });
        self.key_def.push(2);
        self.value_def.push(3);
    }

    fn clear(&mut self) {
        self.key_def.clear();
        self.value_def.clear();
        self.rep.clear();
    }
}

impl MapOut<StrBuf> {
    fn put(&mut self, key: &str, value: &str) {
        self.level();
        self.keys.push(key);
        self.values.push(value);
    }
}

impl MapOut<Vec<f64>> {
    fn put(&mut self, key: &str, value: f64) {
        self.level();
        self.keys.push(key);
        self.values.push(value);
    }
}

/// Buffers reused across columns and row groups.
#[derive(Default)]
struct Scratch {
    strs: StrOut,
    doubles: Vec<f64>,
    timestamps: Vec<Int96>,
    def: Vec<i16>,
    str_map: MapOut<StrBuf>,
    f64_map: MapOut<Vec<f64>>,
    arrays: Vec<ByteArray>,
}

fn write_row_group(
    writer: &mut SerializedFileWriter<Vec<u8>>,
    columns: &[Column],
    rows: &[Row],
    ctx: &Ctx<'_>,
    s: &mut Scratch,
) -> Result<(), ParquetError> {
    let mut group = writer.next_row_group()?;
    for column in columns {
        write_column(&mut group, column.render, rows, ctx, s)?;
    }
    group.close()?;
    Ok(())
}

fn write_column(
    group: &mut SerializedRowGroupWriter<'_, Vec<u8>>,
    render: Render,
    rows: &[Row],
    ctx: &Ctx<'_>,
    s: &mut Scratch,
) -> Result<(), ParquetError> {
    match render {
        Render::Str(f) => {
            s.strs.def.clear();
            for r in rows {
                f(r, ctx, &mut s.strs);
            }
            s.strs.values.drain_into(&mut s.arrays);
            write_leaf::<ByteArrayType>(group, &s.arrays, &s.strs.def, None)?;
        }
        Render::F64(f) => {
            s.doubles.clear();
            s.def.clear();
            for r in rows {
                match f(r, ctx) {
                    Some(v) => {
                        s.doubles.push(v);
                        s.def.push(1);
                    }
                    None => s.def.push(0),
                }
            }
            write_leaf::<DoubleType>(group, &s.doubles, &s.def, None)?;
        }
        Render::Ts(f) => {
            s.timestamps.clear();
            s.def.clear();
            for r in rows {
                match f(r, ctx) {
                    Some(nanos) => {
                        s.timestamps.push(int96(nanos));
                        s.def.push(1);
                    }
                    None => s.def.push(0),
                }
            }
            write_leaf::<Int96Type>(group, &s.timestamps, &s.def, None)?;
        }
        Render::StrMap(f) => {
            let m = &mut s.str_map;
            m.clear();
            for r in rows {
                f(r, ctx, m);
            }
            m.keys.drain_into(&mut s.arrays);
            write_leaf::<ByteArrayType>(group, &s.arrays, &m.key_def, Some(&m.rep))?;
            m.values.drain_into(&mut s.arrays);
            write_leaf::<ByteArrayType>(group, &s.arrays, &m.value_def, Some(&m.rep))?;
        }
        Render::F64Map(f) => {
            let m = &mut s.f64_map;
            m.clear();
            m.values.clear();
            for r in rows {
                f(r, ctx, m);
            }
            m.keys.drain_into(&mut s.arrays);
            write_leaf::<ByteArrayType>(group, &s.arrays, &m.key_def, Some(&m.rep))?;
            write_leaf::<DoubleType>(group, &m.values, &m.value_def, Some(&m.rep))?;
        }
    }
    // Release the shared string buffer now rather than at the next column.
    s.arrays.clear();
    Ok(())
}

fn write_leaf<T: DataType>(
    group: &mut SerializedRowGroupWriter<'_, Vec<u8>>,
    values: &[T::T],
    def: &[i16],
    rep: Option<&[i16]>,
) -> Result<(), ParquetError> {
    let mut column = group.next_column()?.ok_or_else(|| {
        ParquetError::General("rendered more columns than the schema has".to_string())
    })?;
    column.typed::<T>().write_batch(values, Some(def), rep)?;
    column.close()
}

/// INT96 as Impala and Spark (and so AWS) write it: nanoseconds of the day in the first eight
/// bytes, little-endian, then the Julian day number.
fn int96(nanos: i64) -> Int96 {
    const NANOS_PER_DAY: i64 = 86_400_000_000_000;
    const JULIAN_DAY_OF_EPOCH: i64 = 2_440_588;
    let day = nanos.div_euclid(NANOS_PER_DAY) + JULIAN_DAY_OF_EPOCH;
    let nanos_of_day = nanos.rem_euclid(NANOS_PER_DAY) as u64;
    let mut value = Int96::new();
    value.set_data(nanos_of_day as u32, (nanos_of_day >> 32) as u32, day as u32);
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::{BTreeMap, HashSet};

    use arrow::array::AsArray;
    use arrow::datatypes::{DataType as ArrowType, Float64Type, TimeUnit, TimestampNanosecondType};
    use arrow::record_batch::RecordBatch;
    use object_store::memory::InMemory;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::basic::Type as PhysicalType;

    fn period(text: &str) -> Period {
        text.parse().unwrap()
    }

    fn options(rows: u64, seed: u64) -> SampleOptions {
        SampleOptions {
            rows,
            seed,
            periods: vec![period("2025-11")],
            rows_per_file: 1_000_000,
        }
    }

    async fn generate(opts: &SampleOptions) -> (Arc<dyn ObjectStore>, SampleSummary) {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let summary = write_sample(Arc::clone(&store), &Path::from("cur2"), opts)
            .await
            .unwrap();
        (store, summary)
    }

    async fn read_all(store: &Arc<dyn ObjectStore>, files: &[String]) -> Vec<RecordBatch> {
        let mut batches = Vec::new();
        for file in files {
            let data = store
                .get(&Path::from(file.as_str()))
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            let reader = ParquetRecordBatchReaderBuilder::try_new(data)
                .unwrap()
                .with_batch_size(8192)
                .build()
                .unwrap();
            batches.extend(reader.map(Result::unwrap));
        }
        batches
    }

    fn strings<'a>(batch: &'a RecordBatch, name: &str) -> Vec<Option<&'a str>> {
        batch
            .column_by_name(name)
            .unwrap_or_else(|| panic!("{name}"))
            .as_string::<i32>()
            .iter()
            .collect()
    }

    fn doubles(batch: &RecordBatch, name: &str) -> Vec<Option<f64>> {
        batch
            .column_by_name(name)
            .unwrap()
            .as_primitive::<Float64Type>()
            .iter()
            .collect()
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
            let (x, y) = (
                a.get(&Path::from(file.as_str()))
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap(),
                b.get(&Path::from(file.as_str()))
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap(),
            );
            assert_eq!(x, y, "{file} differs between runs");
        }
    }

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
            let written = store
                .get(&Path::from(file.as_str()))
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            assert_eq!(alone.bytes, written.to_vec(), "{file}");
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
        let manifest: serde_json::Value = serde_json::from_slice(
            &store
                .get(&Path::from(summary.manifests[1].as_str()))
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap(),
        )
        .unwrap();
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

    #[tokio::test]
    async fn physical_format_matches_aws() {
        let (store, summary) = generate(&options(2_000, 42)).await;
        let data = store
            .get(&Path::from(summary.files[0].as_str()))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let builder = ParquetRecordBatchReaderBuilder::try_new(data).unwrap();

        let parquet = builder.metadata().file_metadata().schema_descr();
        let physical: BTreeMap<String, PhysicalType> = parquet
            .columns()
            .iter()
            .map(|c| (c.path().string(), c.physical_type()))
            .collect();
        for ts in [
            "bill_billing_period_start_date",
            "bill_billing_period_end_date",
            "line_item_usage_start_date",
            "line_item_usage_end_date",
        ] {
            assert_eq!(physical[ts], PhysicalType::INT96, "{ts}");
        }

        let arrow = builder.schema();
        let ty = |name: &str| arrow.field_with_name(name).unwrap().data_type().clone();
        assert_eq!(
            ty("line_item_usage_start_date"),
            ArrowType::Timestamp(TimeUnit::Nanosecond, None)
        );
        for rate in [
            "line_item_unblended_rate",
            "line_item_blended_rate",
            "line_item_net_unblended_rate",
            "pricing_public_on_demand_rate",
            "savings_plan_savings_plan_rate",
        ] {
            assert_eq!(ty(rate), ArrowType::Utf8, "{rate}");
        }
        for cost in [
            "line_item_unblended_cost",
            "pricing_public_on_demand_cost",
            "savings_plan_savings_plan_effective_cost",
            "reservation_effective_cost",
            "line_item_usage_amount",
        ] {
            assert_eq!(ty(cost), ArrowType::Float64, "{cost}");
        }
        for map in ["product", "resource_tags", "cost_category", "discount"] {
            let ArrowType::Map(entries, _) = ty(map) else {
                panic!("{map} is {:?}", ty(map))
            };
            let ArrowType::Struct(fields) = entries.data_type() else {
                panic!("{map} entries")
            };
            let value = if map == "discount" {
                ArrowType::Float64
            } else {
                ArrowType::Utf8
            };
            assert_eq!(
                (fields[0].data_type(), fields[1].data_type()),
                (&ArrowType::Utf8, &value),
                "{map}"
            );
        }
        assert!(arrow.fields().iter().all(|f| f.is_nullable()));
        let names: Vec<&str> = arrow.fields().iter().map(|f| f.name().as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_ne!(names, sorted, "columns must not be in alphabetical order");
        assert_eq!(names.len(), 61);

        let batch = builder.build().unwrap().next().unwrap().unwrap();
        let rate = strings(&batch, "line_item_unblended_rate");
        assert!(
            rate.iter()
                .flatten()
                .all(|r| r.split_once('.').is_some_and(|(_, f)| f.len() == 10))
        );
        let start = batch
            .column_by_name("bill_billing_period_start_date")
            .unwrap()
            .as_primitive::<TimestampNanosecondType>()
            .value(0);
        assert_eq!(start, 1_761_955_200_000_000_000); // 2025-11-01T00:00:00Z
    }

    #[tokio::test]
    async fn content_exercises_every_feature() {
        let (store, summary) = generate(&options(20_000, 42)).await;
        let batches = read_all(&store, &summary.files).await;
        assert_eq!(
            batches.iter().map(RecordBatch::num_rows).sum::<usize>(),
            20_000
        );
        assert_eq!(summary.rows, 20_000);

        let mut types: BTreeMap<String, usize> = BTreeMap::new();
        let mut total = Decimal::ZERO;
        let mut ids = HashSet::new();
        let mut seen = HashSet::new();
        for b in &batches {
            let kind = strings(b, "line_item_line_item_type");
            let account = strings(b, "line_item_usage_account_id");
            let payer = strings(b, "bill_payer_account_id");
            let usage_type = strings(b, "line_item_usage_type");
            let product = strings(b, "line_item_product_code");
            let entity = strings(b, "bill_billing_entity");
            let sp_arn = strings(b, "savings_plan_savings_plan_a_r_n");
            let ri_arn = strings(b, "reservation_reservation_a_r_n");
            let rate = strings(b, "line_item_unblended_rate");
            let public_rate = strings(b, "pricing_public_on_demand_rate");
            let operation = strings(b, "line_item_operation");
            let cost = doubles(b, "line_item_unblended_cost");
            let public_cost = doubles(b, "pricing_public_on_demand_cost");
            let amount = doubles(b, "line_item_usage_amount");
            for (i, id) in strings(b, "identity_line_item_id").into_iter().enumerate() {
                assert!(
                    ids.insert(id.unwrap().to_string()),
                    "duplicate line item id"
                );
                let k = kind[i].unwrap();
                *types.entry(k.to_string()).or_default() += 1;
                let c = cost[i].unwrap();
                total += cost_decimal(c);
                let (acct, pay) = (account[i].unwrap(), payer[i].unwrap());
                let expected_payer = match acct {
                    "111111111111" | "222222222222" | "333333333333" => "111111111111",
                    "444444444444" | "555555555555" => "444444444444",
                    "666666666666" | "888888888888" => "777777777777",
                    other => panic!("unexpected account {other}"),
                };
                assert_eq!(pay, expected_payer);
                match k {
                    "Usage" if entity[i] == Some("AWS") => {
                        // cost = round(amount × rate, 10), exactly.
                        let r: Decimal = rate[i].unwrap().parse().unwrap();
                        let a = cost_decimal(amount[i].unwrap());
                        let expected = (a * r)
                            .round_dp_with_strategy(10, RoundingStrategy::MidpointAwayFromZero);
                        assert_eq!(cost_decimal(c), expected, "{k} {:?}", usage_type[i]);
                        assert_eq!(public_cost[i], cost[i]);
                        if usage_type[i] == Some("USW2-BoxUsage:m5.large")
                            && operation[i] == Some("RunInstances")
                        {
                            assert_eq!(public_rate[i], Some("0.0960000000"));
                            seen.insert("m5.large");
                        }
                    }
                    "Usage" => {
                        assert_eq!(entity[i], Some("AWS Marketplace"));
                        assert!(public_cost[i].is_none() && c > 0.0);
                        seen.insert("marketplace usage");
                    }
                    "Fee" if entity[i] == Some("AWS Marketplace") => {
                        assert_eq!(public_cost[i], Some(0.0));
                        seen.insert("marketplace fee");
                    }
                    "Fee" if product[i] == Some("AWSSupportBusiness") => {
                        seen.insert("support");
                    }
                    "SavingsPlanCoveredUsage"
                    | "SavingsPlanNegation"
                    | "SavingsPlanRecurringFee" => {
                        assert_eq!(sp_arn[i], Some(SP_ARN));
                        if k == "SavingsPlanRecurringFee" {
                            assert_eq!(acct, "222222222222");
                        } else {
                            assert!(matches!(
                                acct,
                                "111111111111" | "222222222222" | "333333333333"
                            ));
                            assert_eq!(product[i], Some("AmazonEC2"));
                        }
                        if k == "SavingsPlanCoveredUsage" && acct == "333333333333" {
                            seen.insert("sp outside group");
                        }
                        if k == "SavingsPlanNegation" {
                            assert!(c <= 0.0);
                        }
                    }
                    "DiscountedUsage" | "RIFee" => {
                        assert_eq!(ri_arn[i], Some(RI_ARN));
                        assert_eq!(
                            acct,
                            if k == "RIFee" {
                                "444444444444"
                            } else {
                                "555555555555"
                            }
                        );
                        if k == "DiscountedUsage" {
                            assert_eq!(c, 0.0);
                            assert!(public_cost[i].unwrap() > 0.0);
                        }
                    }
                    "Credit"
                    | "Refund"
                    | "EdpDiscount"
                    | "PrivateRateDiscount"
                    | "BundledDiscount"
                    | "SppDiscount" => {
                        assert!(
                            c < 0.0 || (c == 0.0 && k != "Credit" && k != "Refund"),
                            "{k} {c}"
                        );
                    }
                    _ => {}
                }
            }
        }
        for kind in [
            "Usage",
            "Fee",
            "DiscountedUsage",
            "RIFee",
            "SavingsPlanCoveredUsage",
            "SavingsPlanNegation",
            "SavingsPlanRecurringFee",
            "Credit",
            "Refund",
            "Tax",
            "EdpDiscount",
            "PrivateRateDiscount",
            "BundledDiscount",
            "SppDiscount",
        ] {
            assert!(types.contains_key(kind), "no {kind} line in {types:?}");
        }
        assert!(
            types["Usage"] * 2 > 20_000,
            "most lines are Usage: {types:?}"
        );
        for feature in [
            "m5.large",
            "marketplace usage",
            "marketplace fee",
            "support",
            "sp outside group",
        ] {
            assert!(seen.contains(feature), "missing {feature}");
        }
        assert_eq!(total, summary.unblended_total);
    }

    #[tokio::test]
    async fn commitments_are_sized_to_their_usage() {
        let (store, summary) = generate(&options(20_000, 11)).await;
        let (mut sp_used, mut sp_commitment, mut ri_used, mut ri_hours) = (0.0, 0.0, 0.0, 0.0);
        for b in &read_all(&store, &summary.files).await {
            let kind = strings(b, "line_item_line_item_type");
            let amount = doubles(b, "line_item_usage_amount");
            let effective = doubles(b, "savings_plan_savings_plan_effective_cost");
            let recurring = doubles(b, "savings_plan_recurring_commitment_for_billing_period");
            for i in 0..b.num_rows() {
                match kind[i].unwrap() {
                    "SavingsPlanCoveredUsage" => sp_used += effective[i].unwrap(),
                    "SavingsPlanRecurringFee" => sp_commitment += recurring[i].unwrap(),
                    "DiscountedUsage" => ri_used += amount[i].unwrap(),
                    "RIFee" => ri_hours += amount[i].unwrap(),
                    _ => {}
                }
            }
        }
        let (sp, ri) = (sp_used / sp_commitment, ri_used / ri_hours);
        assert!((0.8..1.1).contains(&sp), "Savings Plan utilization {sp}");
        assert!((0.8..1.1).contains(&ri), "reservation utilization {ri}");
    }

    #[test]
    fn fixed_point_helpers_round_half_away_from_zero() {
        assert_eq!(fixed("0.096"), 960_000_000);
        assert_eq!(fixed_mul(fixed("100"), fixed("0.096")), fixed("9.6"));
        assert_eq!(round_div(-15, 10), -2);
        assert_eq!(round_div(15, 10), 2);
        let mut text = Vec::new();
        write_fixed(&mut text, -fixed("0.0104"));
        assert_eq!(text, b"-0.0104000000");
        assert_eq!(price_text(fixed("0.096")), "$0.096");
        assert_eq!(price_text(fixed("0.0000166667")), "$0.0000166667");
        assert_eq!(price_text(fixed("0.3")), "$0.300");
        assert_eq!(
            cost_decimal(fixed_f64(1_234_567_890_123)),
            Decimal::new(1_234_567_890_123, 10)
        );
        // Beyond 2^53 units the conversion goes through decimal text and stays correctly rounded.
        assert_eq!(fixed_f64(fixed("3905280")), 3_905_280.0);
        assert_eq!(
            fixed_f64(-123_456_789_012_345_678),
            "-12345678.9012345678".parse::<f64>().unwrap()
        );
    }

    #[test]
    fn int96_round_trips_nanoseconds() {
        for nanos in [
            0,
            1_761_955_200_000_000_000,
            1_761_955_200_123_456_789,
            -86_400_000_000_001,
        ] {
            assert_eq!(int96(nanos).to_nanos(), nanos);
        }
    }
}
