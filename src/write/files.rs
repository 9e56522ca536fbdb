//! A period of a table as Parquet files, one folder per billing group, in one pass over the rows:
//! each partition of the plan streams its batches to one open writer per group it meets
//! (`billing_period=P/billing_group=G/part-NNNNN-<write id>.zstd.parquet`). Nothing is
//! repartitioned or copied on the way but the rows of a batch that holds several groups.
//!
//! The writers' buffers (a row group being encoded, and the bytes not yet uploaded) are
//! reserved in the session's memory pool: when the pool refuses, the largest writer closes its
//! row group early instead of growing, so `[engine] memory-limit` bounds them too.
//!
//! A failure anywhere stops every partition, aborts the uploads in flight and deletes the files
//! already finished: a failed write leaves nothing behind for a directory reader to find.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use arrow::array::{Array, AsArray, RecordBatch, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::{DataType, SchemaRef};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::physical_plan::ExecutionPlanProperties;
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
    let plan = data.create_physical_plan().await?;
    let schema = plan.schema();
    let layout = Arc::new(Layout::new(&schema, table.clone(), period, properties)?);
    let done = Arc::new(Mutex::new(Vec::new()));
    let failed = Arc::new(AtomicBool::new(false));
    let task = ctx.task_ctx();
    let mut partitions = JoinSet::new();
    for partition in 0..plan.output_partitioning().partition_count() {
        let stream = plan.execute(partition, task.clone())?;
        let reservation = MemoryConsumer::new(format!("Parquet writers[{partition}]"))
            .register(task.memory_pool());
        let writer = PartitionWriter {
            layout: layout.clone(),
            partition,
            open: Vec::new(),
            reservation,
            done: done.clone(),
            failed: failed.clone(),
        };
        partitions.spawn(writer.run(stream));
    }
    let mut first_error = None;
    while let Some(joined) = partitions.join_next().await {
        let outcome = joined.unwrap_or_else(|e| {
            Err(Error::Internal {
                what: format!("a Parquet writer task of {table} ended: {e}"),
            })
        });
        if let Err(e) = outcome {
            failed.store(true, Ordering::Relaxed);
            first_error.get_or_insert(e);
        }
    }
    let files = std::mem::take(&mut *done.lock().expect("no writer panicked holding it"));
    match first_error {
        None => Ok(files),
        Some(e) => {
            delete(table, files.iter().map(|f| f.path.as_str())).await;
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

/// What every partition's writers share: where files go and what they hold.
struct Layout {
    table: Location,
    period: String,
    write_id: String,
    /// The rows' columns that files hold (all but the partition columns).
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
            file_columns,
            file_schema,
            period_column,
            group_column,
            properties,
        })
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

/// One partition's writers: one per group it has met, in the order met.
struct PartitionWriter {
    layout: Arc<Layout>,
    partition: usize,
    open: Vec<OpenFile>,
    reservation: MemoryReservation,
    done: Arc<Mutex<Vec<WrittenFile>>>,
    failed: Arc<AtomicBool>,
}

struct OpenFile {
    group: String,
    path: String,
    writer: AsyncArrowWriter<BufWriter>,
}

impl PartitionWriter {
    async fn run(mut self, stream: SendableRecordBatchStream) -> Result<()> {
        let written = self.write_all(stream).await;
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

    async fn write_all(&mut self, mut stream: SendableRecordBatchStream) -> Result<()> {
        while let Some(batch) = stream.next().await {
            if self.failed.load(Ordering::Relaxed) {
                return Err(Error::Internal {
                    what: "stopped: another partition of the write failed".to_string(),
                });
            }
            for (group, rows) in self.layout.split(&batch?)? {
                let i = self.file_of(&group)?;
                self.open[i]
                    .writer
                    .write(&rows)
                    .await
                    .map_err(|e| self.parquet_error(i, e))?;
            }
            self.reserve().await?;
        }
        Ok(())
    }

    /// The open file of `group`, opened on first sight.
    fn file_of(&mut self, group: &str) -> Result<usize> {
        if let Some(i) = self.open.iter().position(|f| f.group == group) {
            return Ok(i);
        }
        let layout = &self.layout;
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
                    location: format!("{}/{}", self.layout.table, file.path),
                    error: Box::new(e),
                })?;
            let size = file.writer.bytes_written() as u64;
            self.done
                .lock()
                .expect("no writer panicked holding it")
                .push(WrittenFile {
                    path: file.path,
                    group: file.group,
                    size,
                    metadata,
                });
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
        Error::WriteParquet {
            location: format!("{}/{}", self.layout.table, self.open[i].path),
            error: Box::new(error),
        }
    }
}

/// `rel` (`a/b/c`, segments we made) below `prefix`.
pub(crate) fn below(prefix: &Path, rel: &str) -> Path {
    rel.split('/').fold(prefix.clone(), |p, s| p.join(s))
}
