//! A period of a table as Parquet files, one folder per billing group, in one pass over the rows:
//! each partition of the plan streams its batches to one open writer per group it meets
//! (`billing_period=P/billing_group=G/part-NNNNN-<write id>.zstd.parquet`). Nothing is
//! repartitioned or copied on the way but the rows of a batch that holds several groups.
//! One pass can feed several tables ([`Sink`]: which rows, as which columns), so rows that two
//! tables hold differently (billable and pro forma) are read and rated once.
//!
//! The writers' buffers (a row group being encoded, and the bytes not yet uploaded) are
//! reserved in the session's memory pool: when the pool refuses, the largest writer closes its
//! row group early instead of growing, so `[engine] memory-limit` bounds them too.
//!
//! A failure anywhere stops every partition, aborts the uploads in flight and deletes the files
//! already finished: a failed write leaves nothing behind for a directory reader to find.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatchOptions;
use arrow::array::{Array, AsArray, RecordBatch, UInt32Array};
use arrow::compute::{filter_record_batch, take_record_batch};
use arrow::datatypes::{DataType, SchemaRef};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::{ExecutionPlanProperties, PhysicalExpr};
use datafusion::prelude::{DataFrame, SessionContext};
use futures::StreamExt;
use object_store::ObjectStoreExt;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use parquet::arrow::AsyncArrowWriter;
use parquet::file::metadata::ParquetMetaData;
use parquet::file::properties::WriterProperties;
use tokio::task::JoinSet;

use crate::error::{Error, Result};
use crate::period::Period;
use crate::storage::Location;
use crate::write::delta::PARTITION_COLUMNS;

/// Bytes an upload holds before it sends a part: S3's smallest multipart part.
const UPLOAD_BUFFER: usize = 5 << 20;

/// One finished file.
#[derive(Debug)]
pub struct WrittenFile {
    /// Below the table's folder: `billing_period=P/billing_group=G/part-….parquet`.
    pub path: String,
    pub group: String,
    pub size: u64,
    pub metadata: ParquetMetaData,
}

/// One table a pass over the rows feeds: which of them, as which columns.
pub struct Sink {
    pub table: Location,
    /// The rows the table holds (`None`: every row).
    pub rows: Option<Expr>,
    /// The table's columns as expressions of the rows, the partition columns among them.
    pub columns: Vec<Expr>,
    /// Rows written before the pass's, already in the table's columns.
    pub extra: Vec<RecordBatch>,
}

/// Writes `data` (every row of `period`; its partition columns are the folders, not file
/// columns) as Parquet files below `table`. The files are not part of any table until a commit
/// names them.
pub async fn write_period(
    ctx: &SessionContext,
    data: DataFrame,
    table: &Location,
    period: Period,
    properties: WriterProperties,
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
        extra: Vec::new(),
    };
    let mut written = write_tables(ctx, data, vec![sink], period, properties).await?;
    Ok(written.pop().expect("one sink, one list of files"))
}

/// Writes every table of `sinks` from one pass over `data` (every row of `period`): each
/// partition of the plan evaluates each sink's rows and columns on its batches and streams them
/// to one open writer per (table, group) it meets. What each sink wrote, in the order of
/// `sinks`; on failure, every file of every sink is deleted.
pub async fn write_tables(
    ctx: &SessionContext,
    data: DataFrame,
    sinks: Vec<Sink>,
    period: Period,
    properties: WriterProperties,
) -> Result<Vec<Vec<WrittenFile>>> {
    let state = ctx.state();
    let plan = data.clone().create_physical_plan().await?;
    let mut layouts = Vec::with_capacity(sinks.len());
    let mut extras = Vec::new();
    for (i, sink) in sinks.into_iter().enumerate() {
        let rows = sink
            .rows
            .map(|e| state.create_physical_expr(e, data.schema()))
            .transpose()?;
        let schema = data
            .clone()
            .select(sink.columns.clone())?
            .schema()
            .inner()
            .clone();
        let columns = sink
            .columns
            .into_iter()
            .map(|e| state.create_physical_expr(e, data.schema()))
            .collect::<datafusion::common::Result<Vec<_>>>()?;
        let schema = Arc::new(arrow::datatypes::Schema::new(
            schema
                .fields()
                .iter()
                .zip(&columns)
                .map(|(f, e)| {
                    Ok(f.as_ref()
                        .clone()
                        .with_nullable(e.nullable(&plan.schema())?))
                })
                .collect::<datafusion::common::Result<Vec<_>>>()?,
        ));
        extras.extend(sink.extra.into_iter().map(|b| (i, b)));
        layouts.push(Layout::new(
            &schema,
            sink.table,
            period,
            properties.clone(),
            rows,
            columns,
        )?);
    }
    let layouts = Arc::new(layouts);
    let done = Arc::new(Mutex::new(Vec::new()));
    let failed = Arc::new(AtomicBool::new(false));
    let task = ctx.task_ctx();
    let mut partitions = JoinSet::new();
    for partition in 0..plan.output_partitioning().partition_count() {
        let stream = plan.execute(partition, task.clone())?;
        let reservation = MemoryConsumer::new(format!("Parquet writers[{partition}]"))
            .register(task.memory_pool());
        let writer = PartitionWriter {
            layouts: layouts.clone(),
            partition,
            open: Vec::new(),
            reservation,
            done: done.clone(),
            failed: failed.clone(),
        };
        partitions.spawn(writer.run(std::mem::take(&mut extras), stream));
    }
    let mut first_error = None;
    while let Some(joined) = partitions.join_next().await {
        let outcome = joined.unwrap_or_else(|e| {
            Err(Error::Internal {
                what: format!("a Parquet writer task of {} ended: {e}", layouts[0].table),
            })
        });
        if let Err(e) = outcome {
            failed.store(true, Ordering::Relaxed);
            first_error.get_or_insert(e);
        }
    }
    let files = std::mem::take(&mut *done.lock().expect("no writer panicked holding it"));
    let mut written: Vec<Vec<WrittenFile>> = layouts.iter().map(|_| Vec::new()).collect();
    for (sink, file) in files {
        written[sink].push(file);
    }
    match first_error {
        None => Ok(written),
        Some(e) => {
            for (layout, files) in layouts.iter().zip(&written) {
                delete(&layout.table, files.iter().map(|f| f.path.as_str())).await;
            }
            Err(e)
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

/// What every partition's writers of one table share: which rows and columns, where files go.
struct Layout {
    table: Location,
    period: String,
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
    fn new(
        schema: &SchemaRef,
        table: Location,
        period: Period,
        properties: WriterProperties,
        rows: Option<Arc<dyn PhysicalExpr>>,
        columns: Vec<Arc<dyn PhysicalExpr>>,
    ) -> Result<Layout> {
        let [period_column, group_column] = PARTITION_COLUMNS.map(|c| schema.index_of(c));
        let (Ok(period_column), Ok(group_column)) = (period_column, group_column) else {
            return Err(Error::Internal {
                what: format!("rows written to {table} lack the partition columns"),
            });
        };
        let file_columns: Vec<usize> = (0..schema.fields().len())
            .filter(|i| ![period_column, group_column].contains(i))
            .collect();
        let file_schema = Arc::new(schema.project(&file_columns)?);
        Ok(Layout {
            table,
            period: period.to_string(),
            write_id: uuid::Uuid::new_v4().simple().to_string(),
            rows,
            columns,
            schema: schema.clone(),
            file_columns,
            file_schema,
            period_column,
            group_column,
            properties,
        })
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

    fn file_path(&self, group: &str, partition: usize) -> String {
        format!(
            "billing_period={}/billing_group={group}/part-{partition:05}-{}.zstd.parquet",
            self.period, self.write_id
        )
    }

    /// `batch`'s rows per group, each without the partition columns; a batch of one group (the
    /// common case for a group's own files) is not copied.
    fn split(&self, batch: &RecordBatch) -> Result<Vec<(String, RecordBatch)>> {
        let periods = strings(batch, self.period_column)?;
        if let Some(other) = periods.iter().flatten().find(|p| *p != self.period) {
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
    partition: usize,
    open: Vec<OpenFile>,
    reservation: MemoryReservation,
    /// Each finished file, with its table's place in `layouts`.
    done: Arc<Mutex<Vec<(usize, WrittenFile)>>>,
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
    /// Writes `extra` (rows in their table's columns, with its place in `layouts`), then the
    /// rows of `stream`.
    async fn run(
        mut self,
        extra: Vec<(usize, RecordBatch)>,
        stream: SendableRecordBatchStream,
    ) -> Result<()> {
        let written = self.write_all(extra, stream).await;
        let closed = match written {
            Ok(()) => self.close().await,
            Err(e) => Err(e),
        };
        if closed.is_err() {
            self.abort().await;
        }
        self.reservation.free();
        closed
    }

    async fn write_all(
        &mut self,
        extra: Vec<(usize, RecordBatch)>,
        mut stream: SendableRecordBatchStream,
    ) -> Result<()> {
        for (sink, rows) in extra {
            let rows =
                RecordBatch::try_new(self.layouts[sink].schema.clone(), rows.columns().to_vec())?;
            self.write(sink, &rows).await?;
        }
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
        let path = layout.file_path(group, self.partition);
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
            let size = file.writer.bytes_written() as u64;
            self.done
                .lock()
                .expect("no writer panicked holding it")
                .push((
                    file.sink,
                    WrittenFile {
                        path: file.path,
                        group: file.group,
                        size,
                        metadata,
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
