//! A period of a table as Parquet files, one folder per billing group, in one pass over the rows:
//! the partitions of the plan stream their batches to the open files of each group
//! (`billing_period=P/billing_group=G/part-<writer>-<write id>.zstd.parquet`), shared by the
//! partitions running in the same process: a file's column writers (each with its page
//! buffers and compression context) are what the pass's memory is made of, so there are as
//! few as the pass needs, not that times the partitions. Nothing is repartitioned on the way; a
//! batch whose rows go to several files is copied once, its rows ordered by file.
//! One pass can feed several tables ([`Sink`]: which rows, as which columns), so rows that two
//! tables hold differently (billable and pro forma) are read and rated once; and the rows two
//! tables both hold are written to their files together ([`FileSet`]), each column the tables
//! hold alike encoded once. A table's group thus has a file per set of tables its rows are in
//! (billable: the rows pro forma holds too, and the rows only billable holds).
//!
//! The pass is an execution plan node, [`WriteTablesExec`]: each of its partitions writes its
//! input partition's files and yields one row per file written (path, group, size, rows, Delta
//! statistics). In-process, [`write_tables`] runs its partitions; on a Ballista cluster
//! (`crate::cluster`) executors run them, writing straight to the output store, and the driver
//! gets the same rows back. Either way the driver commits.
//!
//! A partition's number names nothing: Ballista hands each task a slice of a stage's partitions
//! renumbered from 0, and may run a task again. So every file gets a writer id of its own (no
//! two executions can name the same file), and once the write is done the files of the write
//! that no partition reported (an attempt that died halfway) are deleted.
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
    Array, ArrayRef, AsArray, BooleanArray, RecordBatch, RecordBatchOptions, StringArray,
    UInt32Array, UInt64Array,
};
use arrow::compute::take_record_batch;
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
use object_store::path::Path;
use parquet::file::properties::WriterProperties;
use tokio::task::JoinSet;

use crate::error::{Error, Result};
use crate::period::Period;
use crate::storage::Location;
use crate::write::delta::PARTITION_COLUMNS;
use crate::write::file_set::{FileSet, FileSpec};
use crate::write::stats;
use crate::write::{FAILED_WRITE, delete_or_log};

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
/// and streams them to the open file of their (table, group). What each sink wrote, in
/// the order of `sinks`; on failure, every file of every sink is deleted.
pub async fn write_tables(
    ctx: &SessionContext,
    data: DataFrame,
    sinks: Vec<Sink>,
    period: Period,
) -> Result<Vec<Vec<WrittenFile>>> {
    let state = ctx.state();
    let input = data.clone().create_physical_plan().await?;
    tracing::debug!(
        "a write's plan:\n{}",
        datafusion::physical_plan::displayable(input.as_ref()).indent(true)
    );
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
        {
            delete_or_log(table.store.as_ref(), &object.location, FAILED_WRITE).await;
        }
    }
}

/// Deletes files below `table` (paths relative to it), best effort: this runs on the way out of
/// a failure, so what it cannot delete is logged.
pub async fn delete(table: &Location, paths: impl Iterator<Item = &str>) {
    for path in paths {
        delete_or_log(
            table.store.as_ref(),
            &below(&table.prefix, path),
            FAILED_WRITE,
        )
        .await;
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

/// The pass as a plan node: `input`'s rows written to the tables of `layouts`, a partition per
/// partition of the input; the last partition to end in this process yields the files they
/// wrote ([`files_schema`]), the others none.
pub struct WriteTablesExec {
    input: Arc<dyn ExecutionPlan>,
    layouts: Arc<Vec<Layout>>,
    /// The files its partitions write in this process.
    writers: Arc<Writers>,
    properties: Arc<PlanProperties>,
}

impl WriteTablesExec {
    pub fn new(input: Arc<dyn ExecutionPlan>, layouts: Vec<Layout>) -> WriteTablesExec {
        let layouts = Arc::new(layouts);
        WriteTablesExec {
            properties: Self::plan_properties(&input),
            input,
            writers: Arc::new(Writers::new(layouts.clone())),
            layouts,
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
            writers: self.writers.clone(),
        }))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> datafusion::common::Result<SendableRecordBatchStream> {
        let stream = self.input.execute(partition, context.clone())?;
        self.writers.start(&context);
        let writers = self.writers.clone();
        let files = futures::stream::once(async move {
            let written = writers.run(stream).await;
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

    /// Which rows of `batch` (of the pass) the table holds (`None`: every row).
    fn holds(&self, batch: &RecordBatch) -> Result<Option<BooleanArray>> {
        let Some(rows) = &self.rows else {
            return Ok(None);
        };
        let mask = rows.evaluate(batch)?.into_array(batch.num_rows())?;
        Ok(Some(mask.as_boolean().clone()))
    }

    /// `rows` (of the pass, all of them rows the table holds, of one group) in the file's
    /// columns (the table's but the partition columns).
    fn file_rows(&self, rows: &RecordBatch) -> Result<RecordBatch> {
        let columns = self
            .file_columns
            .iter()
            .map(|&c| self.columns[c].evaluate(rows)?.into_array(rows.num_rows()))
            .collect::<datafusion::common::Result<Vec<_>>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(rows.num_rows()));
        Ok(RecordBatch::try_new_with_options(
            self.file_schema.clone(),
            columns,
            &options,
        )?)
    }

    /// How the table's file columns are made of the pass's rows.
    fn file_exprs(&self) -> Vec<Arc<dyn PhysicalExpr>> {
        self.file_columns
            .iter()
            .map(|&i| self.columns[i].clone())
            .collect()
    }

    /// The file of `group` the writer `writer` (unique to one execution of a partition) writes.
    fn file_path(&self, group: &str, writer: &str) -> String {
        format!(
            "billing_period={}/billing_group={group}/part-{writer}-{}.zstd.parquet",
            self.period, self.write_id
        )
    }

    /// The group of each row of `batch` (of the pass), checked: every row of the write's
    /// period, none without a group.
    fn groups_of(&self, batch: &RecordBatch) -> Result<StringArray> {
        let [periods, groups] = [self.period_column, self.group_column].map(|c| {
            let values = self.columns[c]
                .evaluate(batch)?
                .into_array(batch.num_rows())?;
            strings(&values)
        });
        let period = self.period.to_string();
        if let Some(other) = periods?.iter().flatten().find(|p| *p != period) {
            return Err(Error::Internal {
                what: format!(
                    "a row of period {other} in the write of period {} to {}",
                    self.period, self.table
                ),
            });
        }
        let groups = groups?;
        if groups.null_count() > 0 {
            return Err(Error::Internal {
                what: format!("a row without a billing group written to {}", self.table),
            });
        }
        Ok(groups)
    }
}

/// Partition column values as strings (partition columns are text).
fn strings(values: &ArrayRef) -> Result<StringArray> {
    let values = match values.data_type() {
        DataType::Utf8 => values.clone(),
        _ => arrow::compute::cast(values, &DataType::Utf8)?,
    };
    Ok(values.as_string::<i32>().clone())
}

/// The open files of a pass in this process: for each set of tables that hold the same rows,
/// one [`FileSet`] per group met (billable and pro forma: the rows both hold are encoded
/// together, the rows only billable holds apart), shared by every partition running at once,
/// so that a table's group has as few files open as the sets of tables its rows are in, not one
/// per partition. Two partitions encode into different files at the same time; a partition
/// does not wait for a file another is writing: it leaves its rows in the file's queue, for
/// whoever writes the file next (unless [`MAX_WAITING`] batches wait there already). A
/// partition whose input ends writes the rows the others leave waiting until every input has
/// ended: most rows are one group's, and its files would otherwise be written by whoever held
/// them, while the other partition ran out of work. The last partition to end closes the files
/// and reports them.
struct Writers {
    layouts: Arc<Vec<Layout>>,
    /// Set by the first partition that fails: the others stop at their next batch.
    failed: AtomicBool,
    state: std::sync::Mutex<Shared>,
    /// Woken when rows are left waiting and when a partition's input ends.
    changed: tokio::sync::Notify,
}

/// How many batches may wait for a file before the partition leaving one more writes them
/// itself (waiting for the file if another partition is writing it).
const MAX_WAITING: usize = 4;

#[derive(Default)]
struct Shared {
    /// Partitions started and not yet ended.
    running: usize,
    /// Partitions whose input has not ended.
    reading: usize,
    open: Vec<Arc<Slot>>,
    /// What the open files buffer, held in the memory pool.
    reservation: Option<MemoryReservation>,
}

/// The open files of a group's rows that a set of tables holds, and the rows waiting for them.
struct Slot {
    /// The tables' places in `layouts`.
    sinks: Vec<usize>,
    group: String,
    /// Each table's file, below the table's folder.
    paths: Vec<String>,
    /// Rows waiting: a batch per table.
    queue: std::sync::Mutex<Vec<Vec<RecordBatch>>>,
    files: tokio::sync::Mutex<FileSet>,
}

impl Slot {
    /// Leaves `rows` for the files and writes what waits if no other partition is writing the
    /// files (or, past [`MAX_WAITING`] batches waiting, once it is done).
    async fn write(&self, rows: Vec<RecordBatch>) -> Result<()> {
        let waiting = {
            let mut queue = lock(&self.queue);
            queue.push(rows);
            queue.len()
        };
        self.write_waiting(waiting > MAX_WAITING).await?;
        Ok(())
    }

    /// Writes the rows waiting, if any, once it has the files: waiting for them if `wait`, else
    /// only if no other partition is writing them. Whether it wrote.
    async fn write_waiting(&self, wait: bool) -> Result<bool> {
        if lock(&self.queue).is_empty() {
            return Ok(false);
        }
        let mut files = match wait {
            true => self.files.lock().await,
            false => match self.files.try_lock() {
                Ok(files) => files,
                Err(_) => return Ok(false),
            },
        };
        self.write_queue(&mut files).await
    }

    /// The files, once no partition writes them, with every row left waiting written.
    async fn drained(&self) -> Result<tokio::sync::MutexGuard<'_, FileSet>> {
        let mut files = self.files.lock().await;
        self.write_queue(&mut files).await?;
        Ok(files)
    }

    /// Writes the rows waiting to `files` (this slot's, held). Whether there were any.
    async fn write_queue(&self, files: &mut FileSet) -> Result<bool> {
        let waiting = std::mem::take(&mut *lock(&self.queue));
        for rows in &waiting {
            files.write(rows).await?;
        }
        Ok(!waiting.is_empty())
    }
}

/// A partition reading its input. However that ends (with an error, a panic, or its future
/// dropped), the partitions helping stop waiting for its rows, and the write fails unless it
/// read them all.
struct Reading<'a> {
    writers: &'a Writers,
    ended: bool,
}

impl Reading<'_> {
    /// Its input has ended: all of it read and left to the files (`read`), or not.
    fn end(mut self, read: bool) {
        self.ended = read;
    }
}

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        if !self.ended {
            self.writers.failed.store(true, Ordering::Relaxed);
        }
        self.writers.state().reading -= 1;
        self.writers.changed.notify_waiters();
    }
}

/// A lock no partition can leave half-changed (a panic in one leaves the data as it was).
fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Writers {
    fn new(layouts: Arc<Vec<Layout>>) -> Writers {
        Writers {
            layouts,
            failed: AtomicBool::new(false),
            state: std::sync::Mutex::new(Shared::default()),
            changed: tokio::sync::Notify::new(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Shared> {
        lock(&self.state)
    }

    /// A partition starts (before its stream is polled, so that partitions started together
    /// run together).
    fn start(&self, context: &TaskContext) {
        let mut state = self.state();
        state.running += 1;
        state.reading += 1;
        if state.reservation.is_none() {
            state.reservation =
                Some(MemoryConsumer::new("Parquet writers").register(context.memory_pool()));
        }
    }

    /// Writes the rows of one partition's `stream`, then ends the partition: the files the
    /// write closed (the last partition to end closes them all), each with its table's place in
    /// `layouts`. On failure none is left: open uploads are aborted, finished files deleted.
    async fn run(&self, stream: SendableRecordBatchStream) -> Result<Vec<(usize, WrittenFile)>> {
        let reading = Reading {
            writers: self,
            ended: false,
        };
        let read = self.write_all(stream).await;
        reading.end(read.is_ok());
        let written = match read {
            Ok(()) => self.help().await,
            Err(e) => Err(e),
        };
        if written.is_err() {
            self.failed.store(true, Ordering::Relaxed);
        }
        let last = {
            let mut state = self.state();
            state.running -= 1;
            (state.running == 0).then(|| {
                if let Some(r) = state.reservation.as_mut() {
                    r.free();
                }
                std::mem::take(&mut state.open)
            })
        };
        match (written, last) {
            (Err(e), None) => Err(e),
            (Ok(()), None) => Ok(Vec::new()),
            (Err(e), Some(open)) => {
                abort(open).await;
                Err(e)
            }
            (Ok(()), Some(open)) if self.failed.load(Ordering::Relaxed) => {
                abort(open).await;
                Err(stopped())
            }
            (Ok(()), Some(open)) => self.close(open).await,
        }
    }

    async fn write_all(&self, mut stream: SendableRecordBatchStream) -> Result<()> {
        while let Some(batch) = stream.next().await {
            if self.failed.load(Ordering::Relaxed) {
                return Err(stopped());
            }
            let batch = batch?;
            let mut pieces = Vec::new();
            for (sinks, group, rows) in self.pieces(&batch)? {
                let files = sinks
                    .iter()
                    .map(|&s| self.layouts[s].file_rows(&rows))
                    .collect::<Result<Vec<_>>>()?;
                pieces.push((self.files_of(&sinks, &group)?, files));
            }
            for (slot, rows) in pieces {
                slot.write(rows).await?;
            }
            self.changed.notify_waiters();
            self.reserve().await?;
        }
        Ok(())
    }

    /// Writes the rows other partitions leave waiting, until every partition's input has ended
    /// (or one failed).
    async fn help(&self) -> Result<()> {
        loop {
            let changed = self.changed.notified();
            let open = {
                let state = self.state();
                if state.reading == 0 || self.failed.load(Ordering::Relaxed) {
                    return Ok(());
                }
                state.open.clone()
            };
            let mut wrote = false;
            for slot in open {
                wrote |= slot.write_waiting(true).await?;
            }
            if !wrote {
                changed.await;
            }
        }
    }

    /// `batch`'s rows by the set of tables that hold them (their places in `layouts`) and by
    /// group, each piece a slice of one copy of the batch with its rows in that order (a batch
    /// of one piece, the common case, is not copied); rows no table holds are in none.
    fn pieces(&self, batch: &RecordBatch) -> Result<Vec<(Vec<usize>, String, RecordBatch)>> {
        if self.layouts.len() > 64 {
            return Err(Error::Internal {
                what: format!("one pass writing {} tables", self.layouts.len()),
            });
        }
        // Each row's key: the tables that hold it (as bits), and its group (a place in `names`).
        let mut keys = vec![(0u64, 0u32); batch.num_rows()];
        for (sink, layout) in self.layouts.iter().enumerate() {
            let table = 1u64 << sink;
            match layout.holds(batch)? {
                None => keys.iter_mut().for_each(|(h, _)| *h |= table),
                Some(mask) => {
                    for ((h, _), holds) in keys.iter_mut().zip(mask.iter()) {
                        if holds == Some(true) {
                            *h |= table;
                        }
                    }
                }
            }
        }
        let Some(first) = self.layouts.first() else {
            return Ok(Vec::new());
        };
        let groups = first.groups_of(batch)?;
        let mut names: Vec<&str> = Vec::new();
        for ((_, g), name) in keys.iter_mut().zip(groups.iter().flatten()) {
            *g = match names.iter().position(|n| *n == name) {
                Some(i) => i as u32,
                None => {
                    names.push(name);
                    names.len() as u32 - 1
                }
            };
        }
        let mut distinct = keys.clone();
        distinct.sort_unstable();
        distinct.dedup();
        distinct.retain(|(held, _)| *held != 0);
        let piece = |(held, group): (u64, u32), rows: RecordBatch| {
            let sinks = (0..self.layouts.len())
                .filter(|s| held & (1 << s) != 0)
                .collect();
            (sinks, names[group as usize].to_string(), rows)
        };
        if let [only] = distinct[..]
            && keys.iter().all(|k| *k == only)
        {
            return Ok(vec![piece(only, batch.clone())]);
        }
        let mut order: Vec<u32> = Vec::with_capacity(keys.len());
        let mut runs = Vec::with_capacity(distinct.len());
        for &key in &distinct {
            let start = order.len();
            order.extend((0..keys.len() as u32).filter(|&i| keys[i as usize] == key));
            runs.push((key, start, order.len() - start));
        }
        let ordered = take_record_batch(batch, &UInt32Array::from(order))?;
        Ok(runs
            .into_iter()
            .map(|(key, start, length)| piece(key, ordered.slice(start, length)))
            .collect())
    }

    /// The open files of `group` in the tables `sinks`, opened on first sight.
    fn files_of(&self, sinks: &[usize], group: &str) -> Result<Arc<Slot>> {
        let mut state = self.state();
        if let Some(slot) = state
            .open
            .iter()
            .find(|s| s.sinks == sinks && s.group == group)
        {
            return Ok(slot.clone());
        }
        let mut paths = Vec::with_capacity(sinks.len());
        let mut specs = Vec::with_capacity(sinks.len());
        for &sink in sinks {
            let layout = &self.layouts[sink];
            // Every file's own writer id: no other file, of this execution or another, has it.
            let writer = format!("{:016x}", uuid::Uuid::new_v4().as_u64_pair().1);
            let path = layout.file_path(group, &writer);
            specs.push(FileSpec {
                store: layout.table.store.clone(),
                path: below(&layout.table.prefix, &path),
                name: format!("{}/{path}", layout.table),
                schema: layout.file_schema.clone(),
                columns: layout.file_exprs(),
            });
            paths.push(path);
        }
        let files = FileSet::new(specs, &self.layouts[sinks[0]].properties)?;
        let slot = Arc::new(Slot {
            sinks: sinks.to_vec(),
            group: group.to_string(),
            paths,
            queue: std::sync::Mutex::new(Vec::new()),
            files: tokio::sync::Mutex::new(files),
        });
        state.open.push(slot.clone());
        Ok(slot)
    }

    /// Holds what the open writers buffer in the memory pool; past the pool's share, the
    /// largest flushes its row group. (Files another partition is writing are counted at its
    /// next look.)
    async fn reserve(&self) -> Result<()> {
        let sizes = |open: &[Arc<Slot>]| -> Vec<usize> {
            open.iter()
                .map(|s| s.files.try_lock().map_or(0, |f| f.memory_size()))
                .collect()
        };
        let largest = {
            let mut state = self.state();
            let sizes = sizes(&state.open);
            let used = sizes.iter().sum();
            let Some(reservation) = state.reservation.as_mut() else {
                return Ok(());
            };
            if reservation.try_resize(used).is_ok() {
                return Ok(());
            }
            let largest = (0..sizes.len()).max_by_key(|&i| sizes[i]);
            largest.map(|i| state.open[i].clone())
        };
        if let Some(slot) = largest {
            slot.drained().await?.flush().await?;
        }
        // What is left is the files' least: a row group's pages cannot be smaller.
        let mut state = self.state();
        let used = sizes(&state.open).iter().sum();
        if let Some(reservation) = state.reservation.as_mut() {
            reservation.resize(used);
        }
        Ok(())
    }

    /// Closes `open` (the last partition's to end): the files, or, if one fails, none (the
    /// rest aborted, the finished deleted).
    async fn close(&self, open: Vec<Arc<Slot>>) -> Result<Vec<(usize, WrittenFile)>> {
        let mut done: Vec<(usize, WrittenFile)> = Vec::with_capacity(open.len());
        let mut open = open.into_iter();
        while let Some(slot) = open.next() {
            let drained = slot.drained().await.map(drop);
            if let Err(error) = drained {
                let unfinished = std::iter::once(slot).chain(open).collect();
                return Err(self.unwind(error, unfinished, &done).await);
            }
            let finished = slot.files.lock().await.finish().await;
            // A set that failed to finish deleted or aborted its own files.
            let finished = match finished {
                Ok(finished) => finished,
                Err(error) => return Err(self.unwind(error, open.collect(), &done).await),
            };
            for ((&sink, path), file) in slot.sinks.iter().zip(&slot.paths).zip(finished) {
                let written = WrittenFile {
                    path: path.clone(),
                    group: slot.group.clone(),
                    size: file.size,
                    rows: file.metadata.file_metadata().num_rows() as u64,
                    stats: stats::json(&file.metadata),
                };
                done.push((sink, written));
            }
        }
        Ok(done)
    }

    /// `error`, once the files still `open` are aborted and those `done` deleted.
    async fn unwind(
        &self,
        error: Error,
        open: Vec<Arc<Slot>>,
        done: &[(usize, WrittenFile)],
    ) -> Error {
        abort(open).await;
        for (sink, written) in done {
            let table = &self.layouts[*sink].table;
            delete(table, std::iter::once(written.path.as_str())).await;
        }
        error
    }
}

/// Abandons files still open: their uploads are aborted, so none becomes an object.
/// (Only the last partition to end calls it: no other writes a file then.)
async fn abort(open: Vec<Arc<Slot>>) {
    for slot in open {
        slot.files.lock().await.abort().await;
    }
}

fn stopped() -> Error {
    Error::Internal {
        what: "stopped: another partition of the write failed".to_string(),
    }
}

/// `rel` (`a/b/c`, segments we made) below `prefix`.
pub(crate) fn below(prefix: &Path, rel: &str) -> Path {
    rel.split('/').fold(prefix.clone(), |p, s| p.join(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::Int64Type;
    use datafusion::datasource::MemTable;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use crate::config::StorageSettings;

    /// The rows of these tests: a period, a group and a number.
    fn numbered() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("billing_period", DataType::Utf8, false),
            Field::new("billing_group", DataType::Utf8, false),
            Field::new("n", DataType::Int64, false),
        ]))
    }

    /// Rows 0 to 7 of groups a, b and c in two partitions, each meeting every group, some batches
    /// holding several.
    fn eight_rows(ctx: &SessionContext) -> DataFrame {
        let schema = numbered();
        let partitions = vec![
            vec![
                rows(&schema, &["a", "b", "a"], 0),
                rows(&schema, &["b", "c"], 3),
            ],
            vec![rows(&schema, &["a", "c"], 5), rows(&schema, &["b"], 7)],
        ];
        let table = MemTable::try_new(schema, partitions).unwrap();
        ctx.read_table(Arc::new(table)).unwrap()
    }

    /// Rows of `groups`, numbered from `first`.
    fn rows(schema: &SchemaRef, groups: &[&str], first: i64) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec!["2025-11"; groups.len()])),
            Arc::new(StringArray::from(groups.to_vec())),
            Arc::new(Int64Array::from_iter_values(
                first..first + groups.len() as i64,
            )),
        ];
        RecordBatch::try_new(schema.clone(), columns).unwrap()
    }

    #[tokio::test]
    async fn partitions_running_together_write_one_file_per_group() {
        let dir = tempfile::tempdir().unwrap();
        let table =
            Location::parse(dir.path().to_str().unwrap(), &StorageSettings::default()).unwrap();
        let ctx = SessionContext::new();
        let data = eight_rows(&ctx);
        let period: Period = "2025-11".parse().unwrap();
        let mut written = write_period(&ctx, data, &table, period).await.unwrap();
        written.sort_by(|x, y| x.group.cmp(&y.group));

        let files: Vec<(&str, u64)> = written.iter().map(|f| (f.group.as_str(), f.rows)).collect();
        assert_eq!(files, [("a", 3), ("b", 3), ("c", 2)]);
        // Every row is in its group's file, once.
        let mut numbers = Vec::new();
        for file in &written {
            let path = dir.path().join(&file.path);
            assert!(
                file.path.starts_with(&format!(
                    "billing_period=2025-11/billing_group={}/",
                    file.group
                )),
                "{}",
                file.path
            );
            let reader =
                ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap())
                    .unwrap()
                    .build()
                    .unwrap();
            for batch in reader {
                let batch = batch.unwrap();
                assert_eq!(batch.num_columns(), 1, "the partition columns are folders");
                numbers.extend(
                    batch
                        .column(0)
                        .as_primitive::<Int64Type>()
                        .values()
                        .iter()
                        .copied(),
                );
            }
        }
        numbers.sort();
        assert_eq!(numbers, (0..8).collect::<Vec<i64>>());
        // Nothing else was left in the folder.
        let mut found = 0;
        for group in ["a", "b", "c"] {
            let folder = dir
                .path()
                .join(format!("billing_period=2025-11/billing_group={group}"));
            found += std::fs::read_dir(folder).unwrap().count();
        }
        assert_eq!(found, 3);
    }

    #[tokio::test]
    async fn a_partition_out_of_rows_writes_those_the_others_leave_waiting() {
        // One partition of a batch, the other of 200 batches of the same group: the first is
        // soon out of rows and writes what the second leaves for the group's file.
        let dir = tempfile::tempdir().unwrap();
        let table =
            Location::parse(dir.path().to_str().unwrap(), &StorageSettings::default()).unwrap();
        let ctx = SessionContext::new();
        let schema = numbered();
        let long = (0..200)
            .map(|i| rows(&schema, &["a"; 50], 1 + i * 50))
            .collect();
        let partitions = vec![vec![rows(&schema, &["a"], 0)], long];
        let data = ctx
            .read_table(Arc::new(MemTable::try_new(schema, partitions).unwrap()))
            .unwrap();
        let period: Period = "2025-11".parse().unwrap();
        let written = write_period(&ctx, data, &table, period).await.unwrap();

        assert_eq!(written.len(), 1, "one file for the group");
        assert_eq!(written[0].rows, 10_001);
        assert_eq!(
            numbers(dir.path(), &written, 0),
            (0..10_001).collect::<Vec<i64>>()
        );
    }

    #[tokio::test]
    async fn a_partition_that_panics_stops_those_helping_and_fails_the_write() {
        let dir = tempfile::tempdir().unwrap();
        let table =
            Location::parse(dir.path().to_str().unwrap(), &StorageSettings::default()).unwrap();
        let schema = numbered();
        let columns = (0..3)
            .map(|i| {
                let name = schema.field(i).name();
                Arc::new(datafusion::physical_expr::expressions::Column::new(name, i)) as _
            })
            .collect();
        let period: Period = "2025-11".parse().unwrap();
        let layout = Layout::new(table, period, "w", None, columns, schema.clone()).unwrap();
        let writers = Arc::new(Writers::new(Arc::new(vec![layout])));
        let context = SessionContext::new().task_ctx();
        writers.start(&context);
        writers.start(&context);
        let stream = |batches: Vec<RecordBatch>, panics: bool| -> SendableRecordBatchStream {
            let rows = futures::stream::iter(batches).map(move |b| {
                assert!(!panics, "a partition's input panics");
                Ok(b)
            });
            Box::pin(RecordBatchStreamAdapter::new(schema.clone(), rows))
        };
        let short = stream(vec![rows(&schema, &["a"], 0)], false);
        let panicking = stream(vec![rows(&schema, &["a"], 1)], true);
        let helping = tokio::spawn({
            let writers = writers.clone();
            async move { writers.run(short).await }
        });
        let failed = tokio::spawn({
            let writers = writers.clone();
            async move { writers.run(panicking).await }
        });
        assert!(failed.await.is_err(), "the partition panicked");
        // It ends (stopped, or having read its rows: it is not the last to end either way).
        let helped = tokio::time::timeout(std::time::Duration::from_secs(30), helping)
            .await
            .expect("the partition helping stopped")
            .unwrap();
        assert!(helped.is_err() || helped.is_ok_and(|files| files.is_empty()));
        assert!(writers.failed.load(Ordering::Relaxed), "the write failed");
    }

    /// Every row of `files` (below `dir`) in column `column`, sorted.
    fn numbers(dir: &std::path::Path, files: &[WrittenFile], column: usize) -> Vec<i64> {
        let mut numbers = Vec::new();
        for file in files {
            let reader = ParquetRecordBatchReaderBuilder::try_new(
                std::fs::File::open(dir.join(&file.path)).unwrap(),
            )
            .unwrap()
            .build()
            .unwrap();
            for batch in reader {
                let column = batch.unwrap().column(column).clone();
                numbers.extend(column.as_primitive::<Int64Type>().values().iter().copied());
            }
        }
        numbers.sort();
        numbers
    }

    #[tokio::test]
    async fn rows_two_tables_hold_are_written_to_both_and_the_others_apart() {
        let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        let [all, some] = [0, 1].map(|i| {
            Location::parse(
                dirs[i].path().to_str().unwrap(),
                &StorageSettings::default(),
            )
            .unwrap()
        });
        let ctx = SessionContext::new();
        let data = eight_rows(&ctx);
        let columns: Vec<Expr> = ["billing_period", "billing_group", "n"]
            .map(datafusion::prelude::col)
            .to_vec();
        let mut some_columns = columns.clone();
        some_columns
            .push((datafusion::prelude::col("n") * datafusion::prelude::lit(10)).alias("tenfold"));
        // The second table holds the rows whose number is not a multiple of 3: 1, 2, 4, 5, 7.
        let not_multiple_of_3 = (datafusion::prelude::col("n") % datafusion::prelude::lit(3))
            .not_eq(datafusion::prelude::lit(0));
        let sinks = vec![
            Sink {
                table: all.clone(),
                rows: None,
                columns,
            },
            Sink {
                table: some.clone(),
                rows: Some(not_multiple_of_3),
                columns: some_columns,
            },
        ];
        let period: Period = "2025-11".parse().unwrap();
        let [all_files, some_files]: [Vec<WrittenFile>; 2] =
            write_tables(&ctx, data, sinks, period)
                .await
                .unwrap()
                .try_into()
                .unwrap();

        // Every group has rows of both kinds: the first table has two files a group (the rows
        // both tables hold, the rows only it holds), the second one.
        let count =
            |files: &[WrittenFile], group: &str| files.iter().filter(|f| f.group == group).count();
        for group in ["a", "b", "c"] {
            assert_eq!(count(&all_files, group), 2, "{group}");
            assert_eq!(count(&some_files, group), 1, "{group}");
        }
        assert_eq!(
            numbers(dirs[0].path(), &all_files, 0),
            (0..8).collect::<Vec<_>>()
        );
        assert_eq!(numbers(dirs[1].path(), &some_files, 0), [1, 2, 4, 5, 7]);
        assert_eq!(
            numbers(dirs[1].path(), &some_files, 1),
            [10, 20, 40, 50, 70]
        );
        for file in all_files.iter().chain(&some_files) {
            let held: u64 = file.rows;
            assert!(
                held > 0
                    && file
                        .path
                        .contains(&format!("billing_group={}/", file.group))
            );
        }
    }
}
