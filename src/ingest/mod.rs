//! Finds CUR Parquet files, checks each file's columns, and presents them all as one normalized
//! CUR 2.0 table (`cur_schema()`), whatever mix of CUR 2.0 and legacy files the input holds.

pub(crate) mod blank_text;
pub mod checks;
pub mod columns;
pub(crate) mod decimal_text;
pub mod delivery;
pub(crate) mod line_item_key;
pub(crate) mod map_value;
pub mod string_map;

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{
    DataType, Decimal128Type, Field, Int64Type, Schema, SchemaRef, TimestampMicrosecondType,
};
use chrono::{DateTime, Datelike};
use datafusion::common::ScalarValue;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::physical_plan::parquet::metadata::DFParquetMetadata;
use datafusion::error::DataFusionError;
use datafusion::functions::expr_fn::to_char;
use datafusion::logical_expr::{ScalarUDF, cast};
use datafusion::prelude::{DataFrame, Expr, SessionContext, col, ident, lit};
use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectMeta, ObjectStoreExt};
use rust_decimal::Decimal;
use serde::Serialize;

use self::blank_text::blank_to_null;
use self::columns::{CUR2_COLUMNS, FLATTENED_MAPS, Kind, REQUIRED};
use self::delivery::{Delivery, IgnoredFile};
use crate::error::{Error, Result};
use crate::money::{self, Overflow};
use crate::period::Period;
use crate::storage::Location;

/// One input file as the run manifest records it.
#[derive(Debug, Clone, Serialize)]
pub struct InputFile {
    pub url: String,
    pub size: u64,
    pub e_tag: Option<String>,
    /// Rows, as the file's Parquet footer counts them: the control total the scan must match.
    pub rows: u64,
}

/// One billing period of the input, aggregated straight from the files (no assignment or
/// pricing in between): the control totals billable must reconcile to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeriodInput {
    pub rows: u64,
    /// Σ line_item_unblended_cost.
    pub cost: Decimal,
}

/// Files sharing one physical schema and one billing-period folder: read by one scan,
/// normalized by one projection.
struct SchemaGroup {
    schema: SchemaRef,
    /// The period their folder names (`BILLING_PERIOD=2025-11`, `year=2025/month=11`), if any.
    folder_period: Option<Period>,
    files: Vec<usize>,
    /// Its columns beyond the catalog (SPEC §3 "Every column is kept").
    extras: Vec<String>,
}

/// The discovered input: every CUR file under the input location, checked and grouped.
pub struct Input {
    pub location: Location,
    pub files: Vec<InputFile>,
    /// The manifests that chose the files (SPEC §3 "Which files"), and what they leave out.
    pub manifests: Vec<String>,
    pub ignored: Vec<IgnoredFile>,
    groups: Vec<SchemaGroup>,
    /// Every column beyond the catalog, over all files, in the order first seen, as written.
    extras: Vec<Field>,
}

impl Input {
    /// Lists `*.parquet` under `location` (skipping `_`/`.` folders such as `_delta_log`), keeps
    /// the files of each period's newest manifest where there is one (`delivery`), reads every
    /// footer and checks required columns and types.
    pub async fn discover(ctx: &SessionContext, location: &Location) -> Result<Input> {
        let Delivery {
            read: metas,
            manifests,
            ignored,
        } = delivery::select(location, list(location).await?).await?;
        let metas = with_e_tags(location, metas).await?;
        if metas.is_empty() {
            return Err(Error::NoInputFiles {
                location: location.to_string(),
            });
        }
        let state = ctx.state();
        let format = ParquetFormat::default().with_options(state.table_options().parquet.clone());
        let cache = state.runtime_env().cache_manager.get_file_metadata_cache();
        let footers: Vec<(SchemaRef, u64)> = futures::stream::iter(&metas)
            .map(|meta| {
                let (state, format, cache) = (&state, &format, &cache);
                async move {
                    let url = location.url_of(&meta.location).to_string();
                    let unreadable = |e: DataFusionError| match e {
                        DataFusionError::ObjectStore(error) => Error::Storage {
                            location: url.clone(),
                            error,
                        },
                        other => Error::CorruptFile {
                            file: url.clone(),
                            reason: other.to_string(),
                        },
                    };
                    let schema = format
                        .infer_schema(state, &location.store, std::slice::from_ref(meta))
                        .await
                        .map_err(unreadable)?;
                    check_columns(&url, &schema)?;
                    // The footer infer_schema just read, from the session's metadata cache.
                    let footer = DFParquetMetadata::new(location.store.as_ref(), meta)
                        .with_file_metadata_cache(Some(cache.clone()))
                        .fetch_metadata()
                        .await
                        .map_err(unreadable)?;
                    let rows = u64::try_from(footer.file_metadata().num_rows()).map_err(|_| {
                        Error::CorruptFile {
                            file: url.clone(),
                            reason: "its footer counts a negative number of rows".to_string(),
                        }
                    })?;
                    Ok::<_, Error>((schema, rows))
                }
            })
            .buffered(16)
            .try_collect()
            .await?;
        let (schemas, rows): (Vec<SchemaRef>, Vec<u64>) = footers.into_iter().unzip();

        let files: Vec<InputFile> = metas
            .iter()
            .zip(rows)
            .map(|(m, rows)| InputFile {
                url: location.url_of(&m.location).to_string(),
                size: m.size,
                e_tag: m.e_tag.clone(),
                rows,
            })
            .collect();
        let mut groups: Vec<SchemaGroup> = Vec::new();
        for (i, (schema, meta)) in schemas.into_iter().zip(&metas).enumerate() {
            let schema = nullable(&schema);
            let folder_period = folder_period(&meta.location);
            match groups
                .iter_mut()
                .find(|g| g.folder_period == folder_period && g.schema.fields() == schema.fields())
            {
                Some(g) => g.files.push(i),
                None => groups.push(SchemaGroup {
                    schema,
                    folder_period,
                    files: vec![i],
                    extras: Vec::new(),
                }),
            }
        }
        let mut extras: Vec<(Field, usize)> = Vec::new();
        for g in &mut groups {
            let first = g.files[0];
            for field in beyond_catalog(&files[first].url, &g.schema)? {
                match extras.iter().find(|(f, _)| f.name() == field.name()) {
                    Some((known, _)) if known.data_type() == field.data_type() => {}
                    Some((known, seen_in)) => {
                        return Err(Error::WrongType {
                            file: files[first].url.clone(),
                            column: field.name().clone(),
                            found: field.data_type().to_string(),
                            expected: format!(
                                "{}, its type in {}",
                                known.data_type(),
                                files[*seen_in].url
                            ),
                        });
                    }
                    None => extras.push((field.clone(), first)),
                }
                g.extras.push(field.name().clone());
            }
        }
        let extras: Vec<Field> = extras.into_iter().map(|(f, _)| f).collect();
        tracing::info!(files = files.len(), schemas = groups.len(), location = %location, "discovered input");
        Ok(Input {
            location: location.clone(),
            files,
            manifests,
            ignored,
            groups,
            extras,
        })
    }

    /// All input rows as one normalized CUR 2.0 table with `billing_period` (`YYYY-MM`, from
    /// the data) and `folder_period` (from the file's folder, if it names one).
    pub fn table(&self, ctx: &SessionContext) -> Result<DataFrame> {
        self.union(ctx, None)
    }

    /// The rows of one period. Files in another period's folder are not even opened.
    /// Bytes of the files that can hold `period` (what a scan of the period reads at most).
    pub fn period_bytes(&self, period: Period) -> u64 {
        self.groups
            .iter()
            .filter(|g| g.folder_period.is_none_or(|f| f == period))
            .flat_map(|g| &g.files)
            .map(|&i| self.files[i].size)
            .sum()
    }

    pub fn period_table(&self, ctx: &SessionContext, period: Period) -> Result<DataFrame> {
        self.union(ctx, Some(period))
    }

    fn union(&self, ctx: &SessionContext, period: Option<Period>) -> Result<DataFrame> {
        let mut union: Option<DataFrame> = None;
        let keep = |g: &&SchemaGroup| match (period, g.folder_period) {
            (Some(p), Some(folder)) => p == folder,
            _ => true,
        };
        let kept: Vec<&SchemaGroup> = self.groups.iter().filter(keep).collect();
        let extras = self.extras_of(&kept);
        for group in kept {
            let df = self.scan(ctx, group, &group.files, period, &extras)?;
            union = Some(match union {
                None => df,
                Some(u) => u.union(df)?,
            });
        }
        match union {
            Some(u) => Ok(u),
            // No file can hold the period: an empty table of the right shape.
            None => Ok(self
                .scan(ctx, &self.groups[0], &self.groups[0].files, period, &[])?
                .limit(0, Some(0))?),
        }
    }

    /// The columns beyond the catalog that some of `groups` hold, in the input's order.
    fn extras_of(&self, groups: &[&SchemaGroup]) -> Vec<Field> {
        self.extras
            .iter()
            .filter(|f| groups.iter().any(|g| g.extras.contains(f.name())))
            .cloned()
            .collect()
    }

    /// Rows and unblended cost per billing period, from the data. Every row must have a period,
    /// and a file in a period's folder must hold only that period (AWS writes one period per
    /// folder; a stray row would otherwise be billed in neither). The rows read must be the rows
    /// the files' footers count.
    pub async fn periods(&self, ctx: &SessionContext) -> Result<BTreeMap<Period, PeriodInput>> {
        use datafusion::functions_aggregate::expr_fn::{count, sum};
        // By the start instant itself, not a formatted period: a damaged start (a zeroed
        // INT96, the year 900) must become a clear error, and the engine cannot format every
        // instant it can hold.
        let start = "bill_billing_period_start_date";
        let batches = self
            .table(ctx)?
            .aggregate(
                vec![col(start), col("folder_period")],
                vec![
                    count(lit(1)).alias("rows"),
                    sum(col("line_item_unblended_cost")).alias("cost"),
                ],
            )?
            .collect()
            .await?;
        let mut out: BTreeMap<Period, PeriodInput> = BTreeMap::new();
        for b in &batches {
            let starts = b.column(0).as_primitive::<TimestampMicrosecondType>();
            let folder = b.column(1).as_string::<i32>();
            let rows = b.column(2).as_primitive::<Int64Type>();
            let costs = b.column(3).as_primitive::<Decimal128Type>();
            for i in 0..b.num_rows() {
                let n = rows.value(i) as u64;
                if starts.is_null(i) {
                    let (file, rows) = self
                        .locate(ctx, None, col(start).is_null())
                        .await?
                        .unwrap_or_else(|| (self.location.to_string(), n));
                    return Err(Error::MissingValue {
                        file,
                        column: start.to_string(),
                        rows,
                    });
                }
                let micros = starts.value(i);
                let Some(period) = DateTime::from_timestamp_micros(micros)
                    .and_then(|t| Period::new(t.year(), t.month()))
                else {
                    return Err(self.unreadable_period(ctx, micros, n).await);
                };
                if let Some(folder) = folder.is_valid(i).then(|| folder.value(i)) {
                    let folder: Period = folder.parse().expect("a folder period we wrote");
                    if folder != period {
                        return Err(self.stray_rows(period, folder, n));
                    }
                }
                let counted = out.entry(period).or_default();
                counted.rows += n;
                let cost = money::decimal_at(costs, i)?.unwrap_or_default();
                counted.cost = counted
                    .cost
                    .checked_add(cost)
                    .ok_or_else(|| Overflow(format!("{} + {cost}", counted.cost)))?;
            }
        }
        let read: u64 = out.values().map(|p| p.rows).sum();
        let footers: u64 = self.files.iter().map(|f| f.rows).sum();
        if read != footers {
            return Err(Error::Unreconciled {
                scope: self.location.to_string(),
                what: "input rows",
                expected: format!("{footers} (the files' footers)"),
                found: format!("{read} read"),
            });
        }
        Ok(out)
    }

    /// A billing period start outside the years a period can name (1000 to 9999): a damaged
    /// date, such as a zeroed INT96.
    async fn unreadable_period(&self, ctx: &SessionContext, micros: i64, rows: u64) -> Error {
        let column = "bill_billing_period_start_date";
        let file = match self
            .locate(ctx, None, col(column).eq(utc_instant(micros)))
            .await
        {
            Ok(found) => found.map_or_else(|| self.location.to_string(), |(file, _)| file),
            Err(e) => return e,
        };
        let shown = DateTime::from_timestamp_micros(micros).map_or_else(
            || format!("{micros} µs"),
            |t| t.format("%Y-%m-%d").to_string(),
        );
        Error::BadValue {
            file,
            column: column.to_string(),
            expected: "a date in the years 1000 to 9999".to_string(),
            reason: format!("{rows} row(s) start their billing period on {shown}"),
        }
    }

    fn stray_rows(&self, period: Period, folder: Period, rows: u64) -> Error {
        let files: Vec<&str> = self
            .groups
            .iter()
            .filter(|g| g.folder_period == Some(folder))
            .flat_map(|g| g.files.iter().map(|&i| self.files[i].url.as_str()))
            .collect();
        Error::PeriodFolderMismatch {
            folder,
            period,
            rows,
            files: files.join(", "),
        }
    }

    /// One file alone, normalized the same way: used to say which file a bad row came from.
    pub fn file_table(&self, ctx: &SessionContext, file: usize) -> Result<DataFrame> {
        let group = self
            .groups
            .iter()
            .find(|g| g.files.contains(&file))
            .expect("every file is in a group");
        self.scan(ctx, group, &[file], None, &self.extras_of(&[group]))
    }

    /// The first file holding rows (of `period`, if given) that match, and how many it holds:
    /// how an error names the file a bad row came from. Reads the files one by one, so only
    /// errors call it.
    pub async fn locate(
        &self,
        ctx: &SessionContext,
        period: Option<Period>,
        matches: Expr,
    ) -> Result<Option<(String, u64)>> {
        for (i, file) in self.files.iter().enumerate() {
            let n = self.count_in_file(ctx, i, period, matches.clone()).await?;
            if n > 0 {
                return Ok(Some((file.url.clone(), n)));
            }
        }
        Ok(None)
    }

    /// How many rows of one file (of `period`, if given) match.
    pub async fn count_in_file(
        &self,
        ctx: &SessionContext,
        file: usize,
        period: Option<Period>,
        matches: Expr,
    ) -> Result<u64> {
        let n = self
            .file_rows(ctx, file, period)?
            .filter(matches)?
            .count()
            .await?;
        Ok(n as u64)
    }

    /// One file's rows, of `period` if given.
    fn file_rows(
        &self,
        ctx: &SessionContext,
        file: usize,
        period: Option<Period>,
    ) -> Result<DataFrame> {
        let df = self.file_table(ctx, file)?;
        Ok(match period {
            Some(p) => df.filter(col("billing_period").eq(lit(p.to_string())))?,
            None => df,
        })
    }

    /// A query over the input failed: when one file's values cannot be read, that file (and
    /// column) is the problem to report, not the query.
    pub async fn blame(&self, ctx: &SessionContext, period: Option<Period>, e: Error) -> Error {
        if !matches!(e, Error::Engine(_) | Error::Delta { .. }) {
            return e;
        }
        self.find_bad_value(ctx, period).await.unwrap_or(e)
    }

    /// After a query over the period failed on the data itself (a value that does not cast, an
    /// amount too large for exact money, a damaged page), finds the file and column to blame by
    /// reading the period's files one by one. `None` when every file reads: the failure was
    /// elsewhere. Only run on the error path.
    pub async fn find_bad_value(
        &self,
        ctx: &SessionContext,
        period: Option<Period>,
    ) -> Option<Error> {
        for (i, file) in self.files.iter().enumerate() {
            let df = self.file_rows(ctx, i, period).ok()?;
            let Err(whole) = drain(df.clone()).await else {
                continue;
            };
            if whole.exit_code() != 1 {
                return None; // storage: not the data's fault
            }
            for &(column, kind) in CUR2_COLUMNS {
                let one = df.clone().select_columns(&[column]).ok()?;
                if let Err(e) = drain(one).await {
                    return Some(Error::BadValue {
                        file: file.url.clone(),
                        column: column.to_string(),
                        expected: expected_type(column, kind).to_string(),
                        reason: e.to_string(),
                    });
                }
            }
            return Some(Error::CorruptFile {
                file: file.url.clone(),
                reason: whole.to_string(),
            });
        }
        None
    }

    /// The files, normalized, with `billing_period` and `folder_period`; with `period`, only
    /// that period's rows (by a range on the period's start, cheaper than formatting each row).
    fn scan(
        &self,
        ctx: &SessionContext,
        group: &SchemaGroup,
        files: &[usize],
        period: Option<Period>,
        extras: &[Field],
    ) -> Result<DataFrame> {
        let urls = files
            .iter()
            .map(|&i| ListingTableUrl::parse(&self.files[i].url))
            .collect::<datafusion::error::Result<Vec<_>>>()?;
        let state = ctx.state();
        let format = ParquetFormat::default().with_options(state.table_options().parquet.clone());
        let options = ListingOptions::new(Arc::new(format)).with_file_extension(".parquet");
        let config = ListingTableConfig::new_with_multi_paths(urls)
            .with_listing_options(options)
            .with_schema(group.schema.clone());
        let df = ctx.read_table(Arc::new(ListingTable::try_new(config)?))?;
        let mut read = normalize(&group.schema)?;
        read.extend(extras.iter().map(|f| read_extra(&group.schema, f)));
        let mut df = df.select(read)?;
        let start = col("bill_billing_period_start_date");
        let period = match period {
            Some(p) => {
                df = df.filter(
                    start
                        .clone()
                        .gt_eq(utc_instant(p.start_micros()))
                        .and(start.lt(utc_instant(p.end_micros()))),
                )?;
                lit(p.to_string()).alias("billing_period")
            }
            None => to_char(start, lit("%Y-%m")).alias("billing_period"),
        };
        let folder = lit(ScalarValue::Utf8(
            group.folder_period.map(|p| p.to_string()),
        ));
        let mut exprs: Vec<Expr> = CUR2_COLUMNS.iter().map(|(n, _)| col(*n)).collect();
        exprs.extend(extras.iter().map(|f| ident(f.name())));
        exprs.extend([period, folder.alias("folder_period")]);
        Ok(df.select(exprs)?)
    }
}

/// An instant in UTC microseconds, as the normalized timestamp columns hold it.
fn utc_instant(micros: i64) -> Expr {
    lit(ScalarValue::TimestampMicrosecond(
        Some(micros),
        Some("UTC".into()),
    ))
}

/// `schema` with every column nullable. Files are read through it, so what rerate writes never
/// inherits a file's REQUIRED flags: legacy CUR marks every column REQUIRED, and the rows
/// rerate adds (custom line items) leave most columns null.
fn nullable(schema: &Schema) -> SchemaRef {
    let fields: Vec<_> = schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// Reads every batch of `df` and drops it.
async fn drain(df: DataFrame) -> Result<()> {
    let mut stream = df.execute_stream().await?;
    while let Some(batch) = stream.next().await {
        batch?;
    }
    Ok(())
}

/// The billing period a file's folders name: `BILLING_PERIOD=YYYY-MM` (CUR 2.0 Data Exports,
/// any case) or `year=YYYY/month=M` (legacy CUR).
pub fn folder_period(path: &object_store::path::Path) -> Option<Period> {
    let (mut year, mut month) = (None, None);
    for part in path.parts() {
        let Some((key, value)) = part.as_ref().split_once('=') else {
            continue;
        };
        match key.to_ascii_lowercase().as_str() {
            "billing_period" => return value.parse().ok(),
            "year" => year = value.parse::<i32>().ok(),
            "month" => month = value.parse::<u32>().ok(),
            _ => {}
        }
    }
    Period::new(year?, month?)
}

/// Every object below `location`, sorted by path, outside `_`/`.` folders (`_delta_log`,
/// `.hidden`).
async fn list(location: &Location) -> Result<Vec<ObjectMeta>> {
    let mut metas: Vec<ObjectMeta> = location
        .list()
        .await?
        .into_iter()
        .filter(|m| {
            let rel = m
                .location
                .prefix_match(&location.prefix)
                .map(|parts| parts.collect::<Vec<_>>())
                .unwrap_or_default();
            !rel.iter()
                .any(|p| p.as_ref().starts_with('_') || p.as_ref().starts_with('.'))
        })
        .collect();
    metas.sort_by(|a, b| a.location.cmp(&b.location));
    Ok(metas)
}

/// Some S3-compatible servers list without ETags; the run manifest wants them.
async fn with_e_tags(location: &Location, metas: Vec<ObjectMeta>) -> Result<Vec<ObjectMeta>> {
    if location.is_local() || metas.iter().all(|m| m.e_tag.is_some()) {
        return Ok(metas);
    }
    futures::stream::iter(metas)
        .map(|m| async move {
            if m.e_tag.is_some() {
                return Ok(m);
            }
            location
                .store
                .head(&m.location)
                .await
                .map_err(|e| location.storage_error(e))
        })
        .buffered(16)
        .try_collect()
        .await
}

/// How a file of this physical schema is read as CUR 2.0: one expression per catalog column,
/// then one per column it has beyond the catalog, or the error naming `file` and the column that
/// makes it unreadable.
pub fn read_plan(file: &str, schema: &Schema) -> Result<Vec<Expr>> {
    check_columns(file, schema)?;
    let mut exprs = normalize(schema)?;
    let extras = beyond_catalog(file, schema)?;
    exprs.extend(extras.iter().map(|f| read_extra(schema, f)));
    Ok(exprs)
}

/// Required columns present; every known column of a type we can read as its kind.
fn check_columns(file: &str, schema: &Schema) -> Result<()> {
    for required in REQUIRED {
        if schema.field_with_name(required).is_err() {
            return Err(Error::MissingColumn {
                file: file.to_string(),
                column: required.to_string(),
            });
        }
    }
    for field in schema.fields() {
        let Some(kind) = columns::kind_of(field.name()) else {
            continue;
        };
        if !readable_as(field.name(), kind, field.data_type()) {
            return Err(Error::WrongType {
                file: file.to_string(),
                column: field.name().clone(),
                found: field.data_type().to_string(),
                expected: expected_type(field.name(), kind).to_string(),
            });
        }
    }
    Ok(())
}

fn is_string(t: &DataType) -> bool {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, v) => is_string(v),
        _ => false,
    }
}

fn is_number(t: &DataType) -> bool {
    t.is_numeric() || matches!(t, DataType::Decimal128(..) | DataType::Decimal256(..))
}

/// Account ids must stay strings: as numbers they lose their leading zeros.
fn must_be_string(name: &str) -> bool {
    name.ends_with("_account_id")
        || name == "identity_line_item_id"
        || name == "line_item_line_item_type"
}

fn readable_as(name: &str, kind: Kind, t: &DataType) -> bool {
    match kind {
        Kind::Text if must_be_string(name) => is_string(t),
        Kind::Text => {
            is_string(t) || is_number(t) || matches!(t, DataType::Boolean | DataType::Timestamp(..))
        }
        Kind::Money | Kind::Rate | Kind::Quantity => is_number(t) || is_string(t),
        Kind::Timestamp => {
            matches!(
                t,
                DataType::Timestamp(..) | DataType::Date32 | DataType::Date64
            ) || is_string(t)
        }
        Kind::TextMap | Kind::MoneyMap => matches!(t, DataType::Map(..)),
    }
}

fn expected_type(name: &str, kind: Kind) -> &'static str {
    match kind {
        Kind::Text if must_be_string(name) => "a string",
        Kind::Text => "a string",
        Kind::Money | Kind::Rate => "a number or a decimal string",
        Kind::Quantity => "a number",
        Kind::Timestamp => "a timestamp",
        Kind::TextMap => "map<string,string>",
        Kind::MoneyMap => "map<string,double>",
    }
}

/// One expression per catalog column, turning this physical schema into the CUR 2.0 shape.
fn normalize(schema: &Schema) -> Result<Vec<Expr>> {
    let string_map = ScalarUDF::from(string_map::StringMap::default());
    CUR2_COLUMNS
        .iter()
        .map(|&(name, kind)| {
            let target = kind.data_type();
            let expr = match schema.field_with_name(name) {
                Ok(field) => read_as(name, kind, field.data_type(), target),
                Err(_) => match flattened_entries(schema, name) {
                    Some(entries) if !entries.is_empty() => string_map.call(entries),
                    _ => Expr::Literal(ScalarValue::try_from(&target)?, None),
                },
            };
            Ok(expr.alias(name))
        })
        .collect()
}

fn read_as(name: &str, kind: Kind, found: &DataType, target: DataType) -> Expr {
    let c = col(name);
    // Legacy CUR writes blanks as "": they are nulls.
    match kind {
        Kind::Text => blank_to_null(c),
        Kind::TextMap | Kind::MoneyMap if found == &target => c,
        Kind::TextMap | Kind::MoneyMap => cast(c, target),
        // Rates are text in CUR; exactly, in any standard notation.
        Kind::Money | Kind::Rate if is_string(found) => {
            ScalarUDF::from(decimal_text::DecimalText::default()).call(vec![blank_to_null(c)])
        }
        _ if is_string(found) => cast(blank_to_null(c), target),
        _ if found == &target => c,
        _ => cast(c, target),
    }
}

/// For a map column a legacy file flattened (`product_*`, …): `'key', column` pairs, in the
/// file's column order, for every column of that prefix that is not itself a CUR 2.0 column.
fn flattened_entries(schema: &Schema, map: &str) -> Option<Vec<Expr>> {
    let (_, prefix) = FLATTENED_MAPS.iter().find(|(m, _)| *m == map)?;
    let entries = schema
        .fields()
        .iter()
        .filter(|f| folded_into(schema, f) == Some(map))
        .flat_map(|f| {
            let key = &f.name()[prefix.len()..];
            [lit(key.to_string()), cast(ident(f.name()), DataType::Utf8)]
        })
        .collect();
    Some(entries)
}

/// The map a legacy file's column folds into (`product_*` into `product`, …): a column beyond
/// the catalog under a flattened prefix, in a file without that map column. Only values that
/// read as text fold into a map<string,string>; a nested column under such a prefix is not a
/// legacy attribute (found by the `normalize` fuzz target: a map there failed at read time).
fn folded_into(schema: &Schema, field: &Field) -> Option<&'static str> {
    if columns::kind_of(field.name()).is_some()
        || !readable_as(field.name(), Kind::Text, field.data_type())
    {
        return None;
    }
    FLATTENED_MAPS
        .iter()
        .find(|(map, prefix)| {
            field.name().starts_with(prefix) && schema.field_with_name(map).is_err()
        })
        .map(|(map, _)| *map)
}

/// The columns of a file beyond the catalog (and not folded into a map), each with the type it
/// is kept as: its own, or the nearest type a Delta table holds. `file` names the file in errors.
fn beyond_catalog(file: &str, schema: &Schema) -> Result<Vec<Field>> {
    schema
        .fields()
        .iter()
        .filter(|f| columns::kind_of(f.name()).is_none() && folded_into(schema, f).is_none())
        .map(|f| {
            if columns::RESERVED.contains(&f.name().as_str()) {
                return Err(Error::ReservedColumn {
                    file: file.to_string(),
                    column: f.name().clone(),
                });
            }
            let kept = kept_type(f.data_type()).ok_or_else(|| Error::WrongType {
                file: file.to_string(),
                column: f.name().clone(),
                found: f.data_type().to_string(),
                expected: "a type a Delta table can hold".to_string(),
            })?;
            Ok(Field::new(f.name(), kept, true))
        })
        .collect()
}

/// The type a column beyond the catalog is kept as: its own where a Delta table can hold it;
/// else the nearest that holds every value (unsigned integers widen, instants become UTC
/// microseconds as CUR's are, text of any encoding becomes `Utf8`).
fn kept_type(t: &DataType) -> Option<DataType> {
    use DataType::*;
    Some(match t {
        Null => Utf8,
        Boolean | Int8 | Int16 | Int32 | Int64 | Float32 | Float64 | Date32 | Binary => t.clone(),
        Decimal128(..) => t.clone(),
        Decimal256(p, s) if *p <= 38 => Decimal128(*p, *s),
        UInt8 => Int16,
        UInt16 => Int32,
        UInt32 => Int64,
        UInt64 => Decimal128(20, 0),
        Float16 => Float32,
        Date64 => Date32,
        Timestamp(..) => columns::timestamp_type(),
        LargeBinary | BinaryView | FixedSizeBinary(_) => Binary,
        _ if is_string(t) => Utf8,
        Map(..) | List(_) | Struct(_) => t.clone(),
        _ if arrow::compute::can_cast_types(t, &Utf8) => Utf8,
        _ => return None,
    })
}

/// How a column beyond the catalog is read from one file: as kept, or null where the file
/// lacks it.
fn read_extra(schema: &Schema, kept: &Field) -> Expr {
    let expr = match schema.field_with_name(kept.name()) {
        Ok(found) if found.data_type() == kept.data_type() => ident(kept.name()),
        Ok(_) => cast(ident(kept.name()), kept.data_type().clone()),
        Err(_) => null_of(kept.data_type()),
    };
    expr.alias(kept.name())
}

/// A null of type `t`: a typed literal where the engine has one for `t`, else a cast null.
pub(crate) fn null_of(t: &DataType) -> Expr {
    match ScalarValue::try_from(t) {
        Ok(null) => Expr::Literal(null, None),
        Err(_) => cast(lit(ScalarValue::Null), t.clone()),
    }
}

/// Runs the scalar function `udf` on `args` over `rows` rows, as the engine calls it (tests).
#[cfg(test)]
pub(crate) fn invoke(
    udf: &dyn datafusion::logical_expr::ScalarUDFImpl,
    args: Vec<datafusion::logical_expr::ColumnarValue>,
    rows: usize,
) -> datafusion::common::Result<arrow::array::ArrayRef> {
    let types: Vec<DataType> = args.iter().map(|a| a.data_type()).collect();
    let field = |name: &str, t: &DataType| Arc::new(Field::new(name, t.clone(), true));
    let args = datafusion::logical_expr::ScalarFunctionArgs {
        arg_fields: types.iter().map(|t| field("arg", t)).collect(),
        return_field: field(udf.name(), &udf.return_type(&types)?),
        args,
        number_rows: rows,
        config_options: Arc::new(datafusion::config::ConfigOptions::default()),
    };
    udf.invoke_with_args(args)?.to_array(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::path::Path;

    #[test]
    fn required_file_columns_are_read_as_nullable() {
        let file = Schema::new(vec![
            arrow::datatypes::Field::new(
                "line_item_normalization_factor",
                DataType::Float64,
                false,
            ),
            arrow::datatypes::Field::new("product", columns::map_type(DataType::Utf8), false),
        ]);
        let read = nullable(&file);
        assert!(read.fields().iter().all(|f| f.is_nullable()));
        // Only the columns: a map's keys stay non-null.
        assert_eq!(read.field(1).data_type(), file.field(1).data_type());
    }

    #[test]
    fn only_text_like_columns_fold_into_a_legacy_map() {
        let map = columns::map_type(DataType::Float64);
        let schema = Schema::new(vec![
            arrow::datatypes::Field::new("product_custom_attribute", DataType::Utf8, true),
            arrow::datatypes::Field::new("product_vcpu", DataType::Int64, true),
            arrow::datatypes::Field::new("product_nested", map, true),
        ]);
        let entries = flattened_entries(&schema, "product").unwrap();
        let keys: Vec<String> = entries.iter().step_by(2).map(|e| e.to_string()).collect();
        assert_eq!(keys, ["Utf8(\"custom_attribute\")", "Utf8(\"vcpu\")"]);
    }

    #[test]
    fn folder_periods_follow_both_aws_layouts() {
        let p = |s: &str| folder_period(&Path::from(s)).map(|p| p.to_string());
        assert_eq!(
            p("cur2/data/BILLING_PERIOD=2025-11/x-00001.snappy.parquet").as_deref(),
            Some("2025-11")
        );
        assert_eq!(
            p("x/billing_period=2024-02/part.parquet").as_deref(),
            Some("2024-02")
        );
        assert_eq!(
            p("legacy/year=2018/month=9/cur.parquet").as_deref(),
            Some("2018-09")
        );
        assert_eq!(p("legacy/year=2018/cur.parquet"), None);
        assert_eq!(p("plain/Oct2018-WorkshopCUR-00001.snappy.parquet"), None);
        assert_eq!(p("x/BILLING_PERIOD=garbage/part.parquet"), None);
    }
}
