//! A period of a table as Parquet files, one folder per billing group, in one pass over the rows:
//! each partition of the plan streams its batches to one open writer per group it meets
//! (`billing_period=P/billing_group=G/part-<writer>-<write id>.zstd.parquet`). Nothing is
//! repartitioned or copied on the way but the rows of a batch that holds several groups.
//! One pass can feed several tables ([`Sink`]: which rows, as which columns), so rows that two
//! tables hold differently (billable and pro forma) are read and rated once.
//!
//! The pass is an execution plan node, [`WriteTablesExec`]: each of its partitions writes its
//! input partition's files and yields one row per file written (path, group, size, rows, Delta
//! statistics). In-process, [`write_tables`] runs its partitions; on a Ballista cluster
//! (`crate::cluster`) executors run them, writing straight to the output store, and the driver
//! gets the same rows back. Either way the driver commits.
//!
//! A partition's number names nothing: Ballista hands each task a slice of a stage's partitions
//! renumbered from 0, and may run a task again. So every execution of a partition gets a writer
//! id of its own (no two of them can name the same file), and once the write is done the files
//! of the write that no partition reported (an attempt that died halfway) are deleted.
//!
//! The writers' buffers (a row group being encoded, and the bytes not yet uploaded) are
//! reserved in the task's memory pool: when the pool refuses, the largest writer closes its
//! row group early instead of growing, so `[engine] memory-limit` bounds them too.
//!
//! A failure stops every partition, aborts the uploads in flight and deletes the files
//! already finished (every file of a write carries its id: [`delete_write`] finds them all), so
//! a failed write leaves nothing behind for a directory reader to find.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow::array::{
    Array, ArrayRef, AsArray, RecordBatch, RecordBatchOptions, StringArray, UInt32Array,
    UInt64Array,
};
use arrow::compute::{filter_record_batch, take_record_batch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, UInt32Type, UInt64Type};
use datafusion::common::DFSchema;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, ExprSchemable};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning,
    PhysicalExpr, PlanProperties,
};
use datafusion::prelude::{DataFrame, SessionContext};
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use parquet::arrow::AsyncArrowWriter;
use parquet::file::properties::WriterProperties;
use tokio::task::JoinSet;

use crate::error::{Error, Result};
use crate::period::Period;
use crate::storage::Location;
use crate::write::delta::PARTITION_COLUMNS;
use crate::write::stats;

/// Bytes an upload holds before it sends a part: S3's smallest multipart part.
const UPLOAD_BUFFER: usize = 5 << 20;

/// One finished file.
#[derive(Debug, Clone, PartialEq)]
pub struct WrittenFile {
    /// Below the table's folder: `billing_period=P/billing_group=G/part-….parquet`.
    pub path: String,
    pub group: String,
    pub size: u64,
    pub rows: u64,
    /// The statistics of its Delta `add` action ([`stats::json`]), read from the footer where
    /// the file was written.
    pub stats: Option<String>,
}

/// One table a pass over the rows feeds: which of them, as which columns.
pub struct Sink {
    pub table: Location,
    /// The rows the table holds (`None`: every row).
    pub rows: Option<Expr>,
    /// The table's columns as expressions of the rows, the partition columns among them.
    pub columns: Vec<Expr>,
}

/// Writes `data` (every row of `period`; its partition columns are the folders, not file
/// columns) as Parquet files below `table`. The files are not part of any table until a commit
/// names them.
pub async fn write_period(
    ctx: &SessionContext,
    data: DataFrame,
    table: &Location,
    period: Period,
) -> Result<Vec<WrittenFile>> {
    let sink = Sink {
        table: table.clone(),
        rows: None,
        columns: data
            .schema()
            .columns()
            .into_iter()
            .map(Expr::Column)
            .collect(),
    };
    let mut written = write_tables(ctx, data, vec![sink], period).await?;
    Ok(written.pop().expect("one sink, one list of files"))
}

/// Writes every table of `sinks` from one pass over `data` (every row of `period`), in this
/// process: each partition of the plan evaluates each sink's rows and columns on its batches
/// and streams them to one open writer per (table, group) it meets. What each sink wrote, in
/// the order of `sinks`; on failure, every file of every sink is deleted.
pub async fn write_tables(
    ctx: &SessionContext,
    data: DataFrame,
    sinks: Vec<Sink>,
    period: Period,
) -> Result<Vec<Vec<WrittenFile>>> {
    let state = ctx.state();
    let input = data.clone().create_physical_plan().await?;
    let write_id = new_write_id();
    let tables: Vec<Location> = sinks.iter().map(|s| s.table.clone()).collect();
    let mut layouts = Vec::with_capacity(sinks.len());
    for sink in sinks {
        layouts.push(layout(
            sink.table,
            sink.rows.as_ref(),
            &sink.columns,
            data.schema(),
            &input.schema(),
            (period, &write_id),
            |e| state.create_physical_expr(e.clone(), data.schema()),
        )?);
    }
    let exec = Arc::new(WriteTablesExec::new(input, layouts));
    let written = run_partitions(ctx, exec).await;
    files_written(written, &tables, period, &write_id).await
}

/// The files of `period` below `table` a pass over rows of `rows` (planned as `input`) writes:
/// the rows where `filter` holds (`None`: all) as `columns`, each planned by `physical`; the
/// table's schema takes its names and types from `columns` and their nullability from the
/// physical expressions. `write` is the period and the write's id. In-process and on a
/// cluster's scheduler alike.
pub(crate) fn layout(
    table: Location,
    filter: Option<&Expr>,
    columns: &[Expr],
    rows: &DFSchema,
    input: &Schema,
    (period, write_id): (Period, &str),
    physical: impl Fn(&Expr) -> datafusion::common::Result<Arc<dyn PhysicalExpr>>,
) -> Result<Layout> {
    let filter = filter.map(&physical).transpose()?;
    let planned = columns
        .iter()
        .map(&physical)
        .collect::<datafusion::common::Result<Vec<_>>>()?;
    let fields = columns
        .iter()
        .zip(&planned)
        .map(|(e, p)| {
            let (_, field) = e.to_field(rows)?;
            Ok(field.as_ref().clone().with_nullable(p.nullable(input)?))
        })
        .collect::<datafusion::common::Result<Vec<_>>>()?;
    let schema = Arc::new(Schema::new(fields));
    Layout::new(table, period, write_id, filter, planned, schema)
}

/// A new write's id: in the name of every file it writes.
pub(crate) fn new_write_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Runs every partition of `exec` here, each to its end (a failed one stops the others at
/// their next batch), and collects the rows of the files written.
async fn run_partitions(
    ctx: &SessionContext,
    exec: Arc<WriteTablesExec>,
) -> Result<Vec<RecordBatch>> {
    let task = ctx.task_ctx();
    let mut partitions = JoinSet::new();
    for partition in 0..exec.properties().partitioning.partition_count() {
        let stream = exec.execute(partition, task.clone())?;
        partitions.spawn(stream.try_collect::<Vec<_>>());
    }
    let mut batches = Vec::new();
    let mut first_error = None;
    while let Some(joined) = partitions.join_next().await {
        match joined {
            Ok(Ok(mut b)) => batches.append(&mut b),
            Ok(Err(e)) => {
                first_error.get_or_insert(Error::from(e));
            }
            Err(e) => {
                first_error.get_or_insert(Error::Internal {
                    what: format!("a Parquet writer task ended: {e}"),
                });
            }
        }
    }
    match first_error {
        None => Ok(batches),
        Some(e) => Err(e),
    }
}

/// The files a write made, per table (in the order of `tables`), from the rows its partitions
/// yielded. Every other file of the write is deleted: all of a failed write's, and those of a
/// partition's attempt that died before it could report them.
pub(crate) async fn files_written(
    written: Result<Vec<RecordBatch>>,
    tables: &[Location],
    period: Period,
    write_id: &str,
) -> Result<Vec<Vec<WrittenFile>>> {
    let files = written.and_then(|batches| {
        let mut files: Vec<Vec<WrittenFile>> = tables.iter().map(|_| Vec::new()).collect();
        for batch in &batches {
            for (sink, file) in read_files(batch)? {
                files
                    .get_mut(sink)
                    .ok_or_else(|| Error::Internal {
                        what: format!("a file written for table {sink} of {}", tables.len()),
                    })?
                    .push(file);
            }
        }
        Ok(files)
    });
    for (i, table) in tables.iter().enumerate() {
        let keep = match &files {
            Ok(files) => files[i]
                .iter()
                .map(|f| below(&table.prefix, &f.path))
                .collect(),
            Err(_) => Vec::new(),
        };
        delete_write(table, period, write_id, &keep).await;
    }
    files
}

/// Deletes the files the write `write_id` made below `table`'s folder of `period` but those of
/// `keep`, best effort: what it cannot delete is logged (no commit names them, so Delta readers
/// never see them). Files are found by listing (a cluster's executors wrote them), by the write
/// id in their names.
pub async fn delete_write(table: &Location, period: Period, write_id: &str, keep: &[Path]) {
    let folder = below(&table.prefix, &format!("billing_period={period}"));
    let listed: Vec<_> = match table.store.list(Some(&folder)).try_collect().await {
        Ok(listed) => listed,
        Err(e) => {
            tracing::error!(folder = %folder, error = %e, "could not list the files of a failed write");
            return;
        }
    };
    for object in listed {
        if object
            .location
            .filename()
            .is_some_and(|f| f.contains(write_id))
            && !keep.contains(&object.location)
            && let Err(e) = table.store.delete(&object.location).await
        {
            tracing::error!(file = %object.location, error = %e, "could not delete a file of a failed write");
        }
    }
}

/// Deletes files below `table` (paths relative to it), best effort: this runs on the way out of
/// a failure, so what it cannot delete is logged.
pub async fn delete(table: &Location, paths: impl Iterator<Item = &str>) {
    for path in paths {
        let path = below(&table.prefix, path);
        if let Err(e) = table.store.delete(&path).await {
            tracing::error!(file = %path, error = %e, "could not delete a file of a failed write");
        }
    }
}

/// What a partition of [`WriteTablesExec`] yields: a row per file written.
pub fn files_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("sink", DataType::UInt32, false),
        Field::new("path", DataType::Utf8, false),
        Field::new("group", DataType::Utf8, false),
        Field::new("size", DataType::UInt64, false),
        Field::new("rows", DataType::UInt64, false),
        Field::new("stats", DataType::Utf8, true),
    ]))
}

fn files_batch(files: &[(usize, WrittenFile)]) -> Result<RecordBatch> {
    let strings = |f: &dyn Fn(&WrittenFile) -> Option<&str>| -> ArrayRef {
        Arc::new(files.iter().map(|(_, w)| f(w)).collect::<StringArray>())
    };
    let numbers = |f: &dyn Fn(&WrittenFile) -> u64| -> ArrayRef {
        Arc::new(files.iter().map(|(_, w)| f(w)).collect::<UInt64Array>())
    };
    let sinks: ArrayRef = Arc::new(
        files
            .iter()
            .map(|(s, _)| *s as u32)
            .collect::<UInt32Array>(),
    );
    Ok(RecordBatch::try_new(
        files_schema(),
        vec![
            sinks,
            strings(&|w| Some(&w.path)),
            strings(&|w| Some(&w.group)),
            numbers(&|w| w.size),
            numbers(&|w| w.rows),
            strings(&|w| w.stats.as_deref()),
        ],
    )?)
}

fn read_files(batch: &RecordBatch) -> Result<Vec<(usize, WrittenFile)>> {
    if batch.schema().fields() != files_schema().fields() {
        return Err(Error::Internal {
            what: format!("a write yielded rows of another shape: {}", batch.schema()),
        });
    }
    let sinks = batch.column(0).as_primitive::<UInt32Type>();
    let [path, group, stats] = [1, 2, 5].map(|i| batch.column(i).as_string::<i32>());
    let [size, rows] = [3, 4].map(|i| batch.column(i).as_primitive::<UInt64Type>());
    Ok((0..batch.num_rows())
        .map(|i| {
            let file = WrittenFile {
                path: path.value(i).to_string(),
                group: group.value(i).to_string(),
                size: size.value(i),
                rows: rows.value(i),
                stats: stats.is_valid(i).then(|| stats.value(i).to_string()),
            };
            (sinks.value(i) as usize, file)
        })
        .collect())
}

/// The pass as a plan node: `input`'s rows written to the tables of `layouts`, one partition
/// of writers per partition of the input; each partition yields the files it wrote
/// ([`files_schema`]).
pub struct WriteTablesExec {
    input: Arc<dyn ExecutionPlan>,
    layouts: Arc<Vec<Layout>>,
    /// Set by the first partition that fails: the others stop (in this process).
    failed: Arc<AtomicBool>,
    properties: Arc<PlanProperties>,
}

impl WriteTablesExec {
    pub fn new(input: Arc<dyn ExecutionPlan>, layouts: Vec<Layout>) -> WriteTablesExec {
        WriteTablesExec {
            properties: Self::plan_properties(&input),
            input,
            layouts: Arc::new(layouts),
            failed: Arc::new(AtomicBool::new(false)),
        }
    }

    /// A partition of files per partition of `input`, each yielded at its end.
    fn plan_properties(input: &Arc<dyn ExecutionPlan>) -> Arc<PlanProperties> {
        Arc::new(PlanProperties::new(
            EquivalenceProperties::new(files_schema()),
            Partitioning::UnknownPartitioning(input.output_partitioning().partition_count()),
            EmissionType::Final,
            Boundedness::Bounded,
        ))
    }

    pub fn layouts(&self) -> &[Layout] {
        &self.layouts
    }
}

impl fmt::Debug for WriteTablesExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tables: Vec<String> = self.layouts.iter().map(|l| l.table.to_string()).collect();
        f.debug_struct("WriteTablesExec")
            .field("tables", &tables)
            .finish()
    }
}

impl DisplayAs for WriteTablesExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let tables: Vec<String> = self.layouts.iter().map(|l| l.table.to_string()).collect();
        write!(f, "WriteTablesExec: tables=[{}]", tables.join(", "))
    }
}

impl ExecutionPlan for WriteTablesExec {
    fn name(&self) -> &'static str {
        "WriteTablesExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        // The rows are written as they come: spreading them first is a copy of every row.
        vec![false]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> datafusion::common::Result<TreeNodeRecursion>,
    ) -> datafusion::common::Result<TreeNodeRecursion> {
        for layout in self.layouts.iter() {
            for e in layout.rows.iter().chain(&layout.columns) {
                if f(e)? == TreeNodeRecursion::Stop {
                    return Ok(TreeNodeRecursion::Stop);
                }
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
        let [input]: [Arc<dyn ExecutionPlan>; 1] = children.try_into().map_err(|_| {
            datafusion::error::DataFusionError::Internal(
                "WriteTablesExec has one input".to_string(),
            )
        })?;
        Ok(Arc::new(WriteTablesExec {
            properties: Self::plan_properties(&input),
            input,
            layouts: self.layouts.clone(),
            failed: self.failed.clone(),
        }))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> datafusion::common::Result<SendableRecordBatchStream> {
        let stream = self.input.execute(partition, context.clone())?;
        let reservation = MemoryConsumer::new(format!("Parquet writers[{partition}]"))
            .register(context.memory_pool());
        let writer = PartitionWriter {
            layouts: self.layouts.clone(),
            name: format!("{:016x}", uuid::Uuid::new_v4().as_u64_pair().1),
            open: Vec::new(),
            done: Vec::new(),
            reservation,
            failed: self.failed.clone(),
        };
        let failed = self.failed.clone();
        let files = futures::stream::once(async move {
            let written = writer.run(stream).await;
            if written.is_err() {
                failed.store(true, Ordering::Relaxed);
            }
            written
                .and_then(|files| files_batch(&files))
                .map_err(Error::into_datafusion)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            files_schema(),
            files,
        )))
    }
}

/// What every partition's writers of one table share: which rows and columns, where files go.
pub struct Layout {
    table: Location,
    period: Period,
    write_id: String,
    /// The table's rows among the pass's (`None`: all).
    rows: Option<Arc<dyn PhysicalExpr>>,
    /// The table's columns, evaluated on the pass's rows.
    columns: Vec<Arc<dyn PhysicalExpr>>,
    /// What `columns` make.
    schema: SchemaRef,
    /// Of `schema`, the columns files hold (all but the partition columns).
    file_columns: Vec<usize>,
    file_schema: SchemaRef,
    period_column: usize,
    group_column: usize,
    properties: WriterProperties,
}

impl Layout {
    /// The files of `period` below `table` from the pass's `rows` (`None`: all) as `columns`,
    /// which make `schema`; `write_id` names every file.
    pub fn new(
        table: Location,
        period: Period,
        write_id: &str,
        rows: Option<Arc<dyn PhysicalExpr>>,
        columns: Vec<Arc<dyn PhysicalExpr>>,
        schema: SchemaRef,
    ) -> Result<Layout> {
        let [period_column, group_column] = PARTITION_COLUMNS.map(|c| schema.index_of(c));
        let (Ok(period_column), Ok(group_column)) = (period_column, group_column) else {
            return Err(Error::Internal {
                what: format!("rows written to {table} lack the partition columns"),
            });
        };
        if columns.len() != schema.fields().len() {
            return Err(Error::Internal {
                what: format!(
                    "{} columns for a schema of {}",
                    columns.len(),
                    schema.fields().len()
                ),
            });
        }
        let file_columns: Vec<usize> = (0..schema.fields().len())
            .filter(|i| ![period_column, group_column].contains(i))
            .collect();
        let file_schema = Arc::new(schema.project(&file_columns)?);
        Ok(Layout {
            table,
            period,
            write_id: write_id.to_string(),
            rows,
            columns,
            schema,
            file_columns,
            file_schema,
            period_column,
            group_column,
            properties: crate::write::delta::properties(),
        })
    }

    pub fn table(&self) -> &Location {
        &self.table
    }

    pub fn period(&self) -> Period {
        self.period
    }

    pub fn write_id(&self) -> &str {
        &self.write_id
    }

    pub fn rows(&self) -> Option<&Arc<dyn PhysicalExpr>> {
        self.rows.as_ref()
    }

    pub fn columns(&self) -> &[Arc<dyn PhysicalExpr>] {
        &self.columns
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The table's rows of `batch` (of the pass), in its columns.
    fn evaluate(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let filtered;
        let batch = match &self.rows {
            None => batch,
            Some(rows) => {
                let mask = rows.evaluate(batch)?.into_array(batch.num_rows())?;
                filtered = filter_record_batch(batch, mask.as_boolean())?;
                &filtered
            }
        };
        let columns = self
            .columns
            .iter()
            .map(|c| c.evaluate(batch)?.into_array(batch.num_rows()))
            .collect::<datafusion::common::Result<Vec<_>>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        Ok(RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &options,
        )?)
    }

    /// The file of `group` the writer `writer` (unique to one execution of a partition) writes.
    fn file_path(&self, group: &str, writer: &str) -> String {
        format!(
            "billing_period={}/billing_group={group}/part-{writer}-{}.zstd.parquet",
            self.period, self.write_id
        )
    }

    /// `batch`'s rows per group, each without the partition columns; a batch of one group (the
    /// common case for a group's own files) is not copied.
    fn split(&self, batch: &RecordBatch) -> Result<Vec<(String, RecordBatch)>> {
        let periods = strings(batch, self.period_column)?;
        let period = self.period.to_string();
        if let Some(other) = periods.iter().flatten().find(|p| *p != period) {
            return Err(Error::Internal {
                what: format!(
                    "a row of period {other} in the write of period {} to {}",
                    self.period, self.table
                ),
            });
        }
        let groups = strings(batch, self.group_column)?;
        if groups.null_count() > 0 {
            return Err(Error::Internal {
                what: format!("a row without a billing group written to {}", self.table),
            });
        }
        let columns = batch.project(&self.file_columns)?;
        if groups.is_empty() {
            return Ok(Vec::new());
        }
        let first = groups.value(0);
        if groups.iter().all(|g| g == Some(first)) {
            return Ok(vec![(first.to_string(), columns)]);
        }
        let mut rows: Vec<(&str, Vec<u32>)> = Vec::new();
        for (i, g) in groups.iter().flatten().enumerate() {
            match rows.iter_mut().find(|(name, _)| *name == g) {
                Some((_, indices)) => indices.push(i as u32),
                None => rows.push((g, vec![i as u32])),
            }
        }
        rows.into_iter()
            .map(|(g, indices)| {
                let taken = take_record_batch(&columns, &UInt32Array::from(indices))?;
                Ok((g.to_string(), taken))
            })
            .collect()
    }
}

/// Column `i` of `batch` as strings (partition columns are text).
fn strings(batch: &RecordBatch, i: usize) -> Result<arrow::array::StringArray> {
    let column = batch.column(i);
    let column = match column.data_type() {
        DataType::Utf8 => column.clone(),
        _ => arrow::compute::cast(column, &DataType::Utf8)?,
    };
    Ok(column.as_string::<i32>().clone())
}

/// One partition's writers: one per (table, group) it has met, in the order met.
struct PartitionWriter {
    layouts: Arc<Vec<Layout>>,
    /// In the name of every file it writes: this execution's, no other's.
    name: String,
    open: Vec<OpenFile>,
    /// Each finished file, with its table's place in `layouts`.
    done: Vec<(usize, WrittenFile)>,
    reservation: MemoryReservation,
    failed: Arc<AtomicBool>,
}

struct OpenFile {
    /// Its table's place in `layouts`.
    sink: usize,
    group: String,
    path: String,
    writer: AsyncArrowWriter<BufWriter>,
}

impl PartitionWriter {
    /// Writes the rows of `stream`: the files written, each with its table's place in
    /// `layouts`. On failure, none is left: open uploads are aborted, finished files deleted.
    async fn run(mut self, stream: SendableRecordBatchStream) -> Result<Vec<(usize, WrittenFile)>> {
        let written = self.write_all(stream).await;
        let closed = match written {
            Ok(()) => self.close().await,
            Err(e) => Err(e),
        };
        self.reservation.free();
        if let Err(e) = closed {
            self.abort().await;
            for (sink, file) in &self.done {
                delete(
                    &self.layouts[*sink].table,
                    std::iter::once(file.path.as_str()),
                )
                .await;
            }
            return Err(e);
        }
        Ok(self.done)
    }

    async fn write_all(&mut self, mut stream: SendableRecordBatchStream) -> Result<()> {
        while let Some(batch) = stream.next().await {
            if self.failed.load(Ordering::Relaxed) {
                return Err(Error::Internal {
                    what: "stopped: another partition of the write failed".to_string(),
                });
            }
            let batch = batch?;
            for sink in 0..self.layouts.len() {
                let rows = self.layouts[sink].evaluate(&batch)?;
                self.write(sink, &rows).await?;
            }
            self.reserve().await?;
        }
        Ok(())
    }

    /// Writes `rows` (in the columns of the table `sink`) to the files of their groups.
    async fn write(&mut self, sink: usize, rows: &RecordBatch) -> Result<()> {
        for (group, rows) in self.layouts[sink].split(rows)? {
            let i = self.file_of(sink, &group)?;
            self.open[i]
                .writer
                .write(&rows)
                .await
                .map_err(|e| self.parquet_error(i, e))?;
        }
        Ok(())
    }

    /// The open file of `group` in the table `sink`, opened on first sight.
    fn file_of(&mut self, sink: usize, group: &str) -> Result<usize> {
        if let Some(i) = self
            .open
            .iter()
            .position(|f| f.sink == sink && f.group == group)
        {
            return Ok(i);
        }
        let layout = &self.layouts[sink];
        let path = layout.file_path(group, &self.name);
        let upload = BufWriter::with_capacity(
            layout.table.store.clone(),
            below(&layout.table.prefix, &path),
            UPLOAD_BUFFER,
        )
        .with_max_concurrency(2);
        let writer = AsyncArrowWriter::try_new(
            upload,
            layout.file_schema.clone(),
            Some(layout.properties.clone()),
        )
        .map_err(|e| Error::WriteParquet {
            location: format!("{}/{path}", layout.table),
            error: Box::new(e),
        })?;
        self.open.push(OpenFile {
            sink,
            group: group.to_string(),
            path,
            writer,
        });
        Ok(self.open.len() - 1)
    }

    /// Holds what the open writers buffer in the memory pool; past the pool's share, the
    /// largest flushes its row group.
    async fn reserve(&mut self) -> Result<()> {
        let used = |open: &[OpenFile]| open.iter().map(|f| f.writer.memory_size()).sum::<usize>();
        if self.reservation.try_resize(used(&self.open)).is_ok() {
            return Ok(());
        }
        if let Some(i) = (0..self.open.len()).max_by_key(|&i| self.open[i].writer.memory_size()) {
            self.open[i]
                .writer
                .flush()
                .await
                .map_err(|e| self.parquet_error(i, e))?;
        }
        // What is left is the files' least: a row group's pages cannot be smaller.
        self.reservation.resize(used(&self.open));
        Ok(())
    }

    async fn close(&mut self) -> Result<()> {
        while let Some(mut file) = self.open.pop() {
            // A file whose upload failed to complete is no object (and its writer, shut
            // down, can no longer abort).
            let metadata = file
                .writer
                .finish()
                .await
                .map_err(|e| Error::WriteParquet {
                    location: format!("{}/{}", self.layouts[file.sink].table, file.path),
                    error: Box::new(e),
                })?;
            self.done.push((
                file.sink,
                WrittenFile {
                    path: file.path,
                    group: file.group,
                    size: file.writer.bytes_written() as u64,
                    rows: metadata.file_metadata().num_rows() as u64,
                    stats: stats::json(&metadata),
                },
            ));
        }
        Ok(())
    }

    /// Abandons the files still open: their uploads are aborted, so none becomes an object.
    async fn abort(&mut self) {
        for file in self.open.drain(..) {
            let mut upload = file.writer.into_inner();
            if let Err(e) = upload.abort().await {
                tracing::warn!(file = %file.path, error = %e, "could not abort an upload");
            }
        }
    }

    fn parquet_error(&self, i: usize, error: parquet::errors::ParquetError) -> Error {
        let file = &self.open[i];
        Error::WriteParquet {
            location: format!("{}/{}", self.layouts[file.sink].table, file.path),
            error: Box::new(error),
        }
    }
}

/// `rel` (`a/b/c`, segments we made) below `prefix`.
pub(crate) fn below(prefix: &Path, rel: &str) -> Path {
    rel.split('/').fold(prefix.clone(), |p, s| p.join(s))
}
