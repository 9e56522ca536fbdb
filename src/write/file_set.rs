//! The files of one set of rows, one per table that holds them, encoded together: a column two
//! of the tables hold alike (same name, type and expression of the rows) is encoded once and its
//! compressed pages written to each file. Billable and pro forma hold most of a row alike (its
//! id, dates, account, resource, product, tags; they differ in amounts, rates and commitment
//! details), so the rows they share cost one encoding of those columns, not two, and one
//! column writer (page buffers, compression context) where there were two.
//!
//! Parquet's Arrow writer encodes a row group a column at a time ([`ArrowColumnWriter`]); a
//! closed column chunk is a run of pages and the metadata of where they lie. The set encodes
//! each of its distinct columns, splices each chunk into the first file that holds it, keeps the
//! pages of a chunk another file holds as they go by ([`KeepPages`]), and appends the same bytes
//! there. Each file is what the Arrow writer alone would make of its table's rows: same schema,
//! row groups, statistics, page indexes and Arrow schema in the footer.
//!
//! Each file is an [`OutputFile`]: made in memory a row group at a time and sent on to the
//! store's upload after each (the customer exports, `crate::write::splice`, are written so too).

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use bytes::{Bytes, BytesMut};
use datafusion::physical_plan::PhysicalExpr;
use object_store::ObjectStore;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use parquet::arrow::ArrowSchemaConverter;
use parquet::arrow::arrow_writer::{
    ArrowColumnWriter, ArrowLeafColumn, ArrowRowGroupWriterFactory, ArrowWriter, PageKey,
    PageStore, PageStoreArgs, PageStoreFactory, compute_leaves,
};
use parquet::column::writer::ColumnCloseResult;
use parquet::errors::ParquetError;
use parquet::file::metadata::ParquetMetaData;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::SchemaDescriptor;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::error::{Error, Result};
use crate::write::{FAILED_WRITE, delete_or_log};

/// Bytes an upload holds before it sends a part: S3's smallest multipart part.
const UPLOAD_BUFFER: usize = 5 << 20;

/// One file of a set, before it is opened.
pub struct FileSpec {
    /// Where it goes.
    pub store: Arc<dyn ObjectStore>,
    pub path: Path,
    /// Its name in errors and logs.
    pub name: String,
    /// The file's columns.
    pub schema: SchemaRef,
    /// How each column is made of the rows: columns of two files are the same column when
    /// their fields and expressions are equal.
    pub columns: Vec<Arc<dyn PhysicalExpr>>,
}

/// A Parquet file being written: its row groups and footer made in memory, and sent on to the
/// store after each.
pub struct OutputFile {
    store: Arc<dyn ObjectStore>,
    path: Path,
    /// Its name in errors and logs.
    name: String,
    pub file: SerializedFileWriter<Vec<u8>>,
    upload: BufWriter,
}

impl OutputFile {
    /// Opens a file of `schema` at `path`, encoded with `properties`; `name` names it in errors.
    pub fn open(
        store: Arc<dyn ObjectStore>,
        path: Path,
        name: String,
        schema: &SchemaRef,
        properties: &WriterProperties,
    ) -> Result<OutputFile> {
        let opened = ArrowWriter::try_new(Vec::new(), schema.clone(), Some(properties.clone()))
            .and_then(ArrowWriter::into_serialized_writer);
        let (file, _) = opened.map_err(|e| Error::WriteParquet {
            location: name.clone(),
            error: Box::new(e),
        })?;
        let upload = BufWriter::with_capacity(store.clone(), path.clone(), UPLOAD_BUFFER)
            .with_max_concurrency(2);
        Ok(OutputFile {
            store,
            path,
            name,
            file,
            upload,
        })
    }

    pub fn error(&self, error: ParquetError) -> Error {
        Error::WriteParquet {
            location: self.name.clone(),
            error: Box::new(error),
        }
    }

    /// Sends what the file has made so far on to its upload. The bytes are copied into the
    /// upload's parts and the row group's buffer freed: handed over as they are, the part of
    /// them left waiting for the next part would keep the whole buffer alive (a row group
    /// per open file, and the slack of its growth).
    pub async fn send(&mut self) -> Result<()> {
        self.file
            .flush()
            .map_err(|e| self.error(ParquetError::External(Box::new(e))))?;
        let made = std::mem::take(self.file.inner_mut());
        let sent = self.upload.write_all(&made).await;
        sent.map_err(|e| self.error(ParquetError::External(Box::new(e))))
    }

    /// Writes the footer and completes the upload.
    pub async fn complete(&mut self) -> Result<Finished> {
        let metadata = self.file.finish().map_err(|e| self.error(e))?;
        self.send().await?;
        let upload = &mut self.upload;
        let shutdown = poll_fn(|cx| Pin::new(&mut *upload).poll_shutdown(cx)).await;
        shutdown.map_err(|e| self.error(ParquetError::External(Box::new(e))))?;
        Ok(Finished {
            metadata,
            size: self.file.bytes_written() as u64,
        })
    }

    /// Abandons the file: its upload becomes no object.
    pub async fn abort(&mut self) {
        if let Err(e) = self.upload.abort().await {
            tracing::warn!(file = %self.name, error = %e, "could not abort an upload");
        }
    }

    /// Deletes the file, once complete (best effort: what cannot be deleted is logged).
    pub async fn delete(self) {
        delete_or_log(self.store.as_ref(), &self.path, FAILED_WRITE).await;
    }
}

/// Column writers for `schema`'s leaves, from a writer of its columns that writes nothing.
pub fn column_writers(
    schema: &SchemaRef,
    properties: &WriterProperties,
) -> parquet::errors::Result<ArrowRowGroupWriterFactory> {
    let (columns, _) =
        ArrowWriter::try_new(std::io::sink(), schema.clone(), Some(properties.clone()))
            .and_then(ArrowWriter::into_serialized_writer)?;
    Ok(ArrowRowGroupWriterFactory::new(&columns, schema.clone()))
}

/// The Parquet leaves of `schema` as a writer with `properties` converts it.
pub fn descriptor(
    schema: &Schema,
    properties: &WriterProperties,
) -> parquet::errors::Result<SchemaDescriptor> {
    ArrowSchemaConverter::new()
        .with_coerce_types(properties.coerce_types())
        .convert(schema)
}

/// A file of the set, being written.
struct Member {
    out: OutputFile,
    /// For each leaf column of the file, the set's leaf that holds it.
    leaves: Vec<usize>,
}

/// A file's metadata, once it is complete, and its size.
pub struct Finished {
    pub metadata: ParquetMetaData,
    pub size: u64,
}

/// The open files of a set of rows (in the order of their [`FileSpec`]s).
pub struct FileSet {
    members: Vec<Member>,
    /// The set's distinct columns, each as (file, column of that file) of its first file.
    columns: Vec<(usize, usize)>,
    /// The fields of `columns`.
    schema: SchemaRef,
    /// Makes the column writers of the set's leaves for each row group.
    factory: ArrowRowGroupWriterFactory,
    pages: Arc<KeepPages>,
    /// The row group being encoded: a writer per leaf of the set.
    writers: Option<Vec<ArrowColumnWriter>>,
    rows: usize,
    row_groups: usize,
    row_group_rows: usize,
    /// The threads a large piece's columns are encoded on: one per core.
    threads: usize,
}

impl FileSet {
    /// Opens a file per spec, all encoded with `properties`.
    pub fn new(specs: Vec<FileSpec>, properties: &WriterProperties) -> Result<FileSet> {
        // The set's columns: each file's, but for those an earlier file holds alike.
        let mut columns: Vec<(usize, usize)> = Vec::new();
        let mut sources: Vec<Vec<usize>> = Vec::with_capacity(specs.len());
        for (f, spec) in specs.iter().enumerate() {
            let mut source = Vec::with_capacity(spec.columns.len());
            for (c, expr) in spec.columns.iter().enumerate() {
                let field = spec.schema.field(c);
                let same = columns.iter().position(|&(g, d)| {
                    specs[g].schema.field(d) == field
                        && specs[g].columns[d].as_ref() == expr.as_ref()
                });
                source.push(same.unwrap_or_else(|| {
                    columns.push((f, c));
                    columns.len() - 1
                }));
            }
            sources.push(source);
        }
        let sources_len: usize = sources.iter().map(Vec::len).sum();
        let schema = Arc::new(arrow::datatypes::Schema::new(
            columns
                .iter()
                .map(|&(f, c)| specs[f].schema.field(c).clone())
                .collect::<Vec<_>>(),
        ));
        let first = specs.first().ok_or_else(|| Error::Internal {
            what: "a set of no files".to_string(),
        })?;
        let set_leaves = descriptor(&schema, properties).map_err(|e| Error::WriteParquet {
            location: first.name.clone(),
            error: Box::new(e),
        })?;
        let first_leaf = first_leaves(&set_leaves, columns.len());
        let mut users = vec![0usize; set_leaves.num_columns()];
        let mut members = Vec::with_capacity(specs.len());
        for (spec, source) in specs.into_iter().zip(sources) {
            let out = OutputFile::open(spec.store, spec.path, spec.name, &spec.schema, properties)?;
            let descr = out.file.schema_descr();
            let file_first_leaf = first_leaves(descr, spec.columns.len());
            let leaves: Vec<usize> = (0..descr.num_columns())
                .map(|leaf| {
                    let column = descr.get_column_root_idx(leaf);
                    first_leaf[source[column]] + (leaf - file_first_leaf[column])
                })
                .collect();
            for &leaf in &leaves {
                users[leaf] += 1;
            }
            members.push(Member { out, leaves });
        }
        tracing::debug!(
            files = members.len(),
            columns = columns.len(),
            of = sources_len,
            "a set of files opened"
        );
        let pages = Arc::new(KeepPages::new(users.iter().map(|&u| u > 1)));
        let factory = column_writers(&schema, properties)
            .map_err(|e| members[0].out.error(e))?
            .with_page_store_factory(pages.clone());
        Ok(FileSet {
            members,
            columns,
            schema,
            factory,
            pages,
            writers: None,
            rows: 0,
            row_groups: 0,
            row_group_rows: properties
                .max_row_group_row_count()
                .unwrap_or(usize::MAX)
                .max(1),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        })
    }

    /// Writes the same rows to every file: `rows` holds one batch per file, in its columns.
    pub async fn write(&mut self, rows: &[RecordBatch]) -> Result<()> {
        let count = rows.first().map_or(0, RecordBatch::num_rows);
        let mut done = 0;
        while done < count {
            let take = (self.row_group_rows - self.rows).min(count - done);
            self.encode(rows, done, take)
                .map_err(|e| self.members[0].out.error(e))?;
            done += take;
            if self.rows == self.row_group_rows {
                self.flush().await?;
            }
        }
        Ok(())
    }

    fn encode(
        &mut self,
        rows: &[RecordBatch],
        offset: usize,
        length: usize,
    ) -> parquet::errors::Result<()> {
        let writers = match &mut self.writers {
            Some(writers) => writers,
            none => none.insert(self.factory.create_column_writers(self.row_groups)?),
        };
        let mut writers = writers.iter_mut();
        let mut leaves = Vec::new();
        for (field, &(f, c)) in self.schema.fields().iter().zip(&self.columns) {
            let column = rows[f].column(c).slice(offset, length);
            for leaf in compute_leaves(field, &column)? {
                let writer = writers
                    .next()
                    .ok_or_else(|| ParquetError::General("fewer writers than leaves".into()))?;
                leaves.push((leaf, writer));
            }
        }
        let threads = match length >= PARALLEL_ROWS.min(self.row_group_rows) {
            true => self.threads,
            false => 1,
        };
        encode_leaves(leaves, threads)?;
        self.rows += length;
        Ok(())
    }

    /// Ends the row group being encoded (if any): each file gets its chunks, and what it made
    /// goes on to its upload.
    pub async fn flush(&mut self) -> Result<()> {
        let Some(writers) = self.writers.take() else {
            return Ok(());
        };
        let chunks = writers
            .into_iter()
            .map(ArrowColumnWriter::close)
            .collect::<parquet::errors::Result<Vec<_>>>()
            .map_err(|e| self.members[0].out.error(e))?;
        let mut chunks: Vec<_> = chunks.into_iter().map(Some).collect();
        let mut copies: Vec<Option<(Bytes, ColumnCloseResult)>> = vec![None; chunks.len()];
        for member in &mut self.members {
            let appended = (|| {
                let mut group = member.out.file.next_row_group()?;
                for &leaf in &member.leaves {
                    match (chunks[leaf].take(), &copies[leaf]) {
                        (Some(chunk), _) => {
                            let close = self.pages.keeps(leaf).then(|| chunk.close().clone());
                            chunk.append_to_row_group(&mut group)?;
                            if let Some(close) = close {
                                copies[leaf] = Some(self.pages.take(leaf, close)?);
                            }
                        }
                        (None, Some((bytes, close))) => {
                            group.append_column(bytes, close.clone())?
                        }
                        (None, None) => {
                            return Err(ParquetError::General(format!(
                                "leaf {leaf} written twice without its pages kept"
                            )));
                        }
                    }
                }
                group.close().map(drop)
            })();
            appended.map_err(|e| member.out.error(e))?;
            member.out.send().await?;
        }
        self.row_groups += 1;
        self.rows = 0;
        Ok(())
    }

    /// What the set holds in memory: the row group being encoded.
    pub fn memory_size(&self) -> usize {
        self.writers
            .iter()
            .flatten()
            .map(ArrowColumnWriter::memory_size)
            .sum()
    }

    /// Completes every file: the last row group, the footers, the uploads. On failure the files
    /// already complete are deleted and the others aborted.
    pub async fn finish(&mut self) -> Result<Vec<Finished>> {
        if let Err(e) = self.flush().await {
            self.abort().await;
            return Err(e);
        }
        let mut finished = Vec::with_capacity(self.members.len());
        let mut members = std::mem::take(&mut self.members).into_iter();
        while let Some(mut member) = members.next() {
            match member.out.complete().await {
                Ok(done) => finished.push((member.out, done)),
                Err(e) => {
                    abort(members).await;
                    for (out, _) in finished {
                        out.delete().await;
                    }
                    return Err(e);
                }
            }
        }
        Ok(finished.into_iter().map(|(_, done)| done).collect())
    }

    /// Abandons every file: no upload becomes an object.
    pub async fn abort(&mut self) {
        abort(std::mem::take(&mut self.members).into_iter()).await
    }
}

/// Rows from which a piece's columns (or a whole row group's, if fewer) are encoded on every
/// core. A table read back in its files' order (FOCUS from pro forma) brings whole batches of
/// one group's rows to every partition at once, and a group's files are written by one
/// partition at a time: without this, the others wait and one core encodes. A pass over mixed
/// rows, cut into pieces per group, keeps the cores busy with different files, its pieces
/// mostly below this.
const PARALLEL_ROWS: usize = 4096;

/// Writes each leaf to its writer, on `threads` threads.
fn encode_leaves(
    leaves: Vec<(ArrowLeafColumn, &mut ArrowColumnWriter)>,
    threads: usize,
) -> parquet::errors::Result<()> {
    in_parts(leaves, threads, |part| {
        part.into_iter()
            .try_for_each(|(leaf, writer)| writer.write(&leaf))
    })
    .map(drop)
}

/// `work` done on `items` in at most `parts` parts, each on a thread of its own (the first on
/// this one), the items dealt in turn so that each part gets a share of every kind: what each
/// part made, in the parts' order. A part that panics is an error, not a panic.
pub(crate) fn in_parts<T: Send, R: Send>(
    items: Vec<T>,
    parts: usize,
    work: impl Fn(Vec<T>) -> parquet::errors::Result<R> + Sync,
) -> parquet::errors::Result<Vec<R>> {
    let count = parts.clamp(1, items.len().max(1));
    if count == 1 {
        return Ok(vec![work(items)?]);
    }
    let mut dealt: Vec<Vec<T>> = (0..count).map(|_| Vec::new()).collect();
    for (i, item) in items.into_iter().enumerate() {
        dealt[i % count].push(item);
    }
    let first = dealt.remove(0);
    let work = &work;
    std::thread::scope(|scope| {
        let others: Vec<_> = dealt
            .into_iter()
            .map(|part| scope.spawn(move || work(part)))
            .collect();
        let first = work(first);
        let others = others.into_iter().map(|thread| {
            thread
                .join()
                .unwrap_or_else(|_| Err(ParquetError::General("an encoder panicked".into())))
        });
        std::iter::once(first).chain(others).collect()
    })
}

async fn abort(members: impl Iterator<Item = Member>) {
    for mut member in members {
        member.out.abort().await;
    }
}

/// Where each top-level column of `descriptor` (of `columns`) starts among its leaves.
fn first_leaves(descriptor: &SchemaDescriptor, columns: usize) -> Vec<usize> {
    let mut first = vec![usize::MAX; columns];
    for leaf in (0..descriptor.num_columns()).rev() {
        first[descriptor.get_column_root_idx(leaf)] = leaf;
    }
    first
}

/// The page stores of a set's column writers: pages in memory, as Parquet's own store keeps
/// them, and for a leaf more than one file holds, the pages kept as they are taken (spliced into
/// the first file, in the chunk's order), for the others.
#[derive(Debug)]
struct KeepPages {
    /// Per leaf of the set: where its pages are kept (`None`: one file holds it).
    kept: Vec<Option<Arc<Mutex<Vec<Bytes>>>>>,
}

impl KeepPages {
    fn new(shared: impl Iterator<Item = bool>) -> KeepPages {
        KeepPages {
            kept: shared.map(|s| s.then(Default::default)).collect(),
        }
    }

    fn keeps(&self, leaf: usize) -> bool {
        self.kept.get(leaf).is_some_and(Option::is_some)
    }

    /// The bytes of a chunk of `leaf` just spliced into a file, and `close` (as its writer
    /// closed it) made to describe them: the dictionary page first, as in the file.
    fn take(
        &self,
        leaf: usize,
        close: ColumnCloseResult,
    ) -> parquet::errors::Result<(Bytes, ColumnCloseResult)> {
        let kept = self.kept[leaf]
            .as_ref()
            .ok_or_else(|| ParquetError::General(format!("leaf {leaf}'s pages are not kept")))?;
        let pages = std::mem::take(&mut *kept.lock().unwrap_or_else(|e| e.into_inner()));
        // A dictionary page is a header then the data, taken first.
        let dictionary = match close.metadata.dictionary_page_offset() {
            Some(_) if pages.len() >= 2 => pages[0].len() + pages[1].len(),
            Some(_) => return Err(ParquetError::General("a dictionary page not kept".into())),
            None => 0,
        };
        let close = close.update_dictionary_location(dictionary)?;
        let mut bytes = BytesMut::with_capacity(pages.iter().map(Bytes::len).sum());
        for page in pages {
            bytes.extend_from_slice(&page);
        }
        Ok((bytes.freeze(), close))
    }
}

impl PageStoreFactory for KeepPages {
    fn create(&self, args: &PageStoreArgs<'_>) -> parquet::errors::Result<Box<dyn PageStore>> {
        let kept = self.kept.get(args.column_index()).cloned().flatten();
        Ok(Box::new(Pages {
            blobs: Vec::new(),
            resident: 0,
            kept,
        }))
    }
}

/// One column chunk's pages.
struct Pages {
    blobs: Vec<Bytes>,
    resident: usize,
    /// Where they go as they are taken, when another file holds the chunk too.
    kept: Option<Arc<Mutex<Vec<Bytes>>>>,
}

impl PageStore for Pages {
    fn put(&mut self, value: Bytes) -> parquet::errors::Result<PageKey> {
        self.resident += value.len();
        self.blobs.push(value);
        Ok(PageKey::new(self.blobs.len() as u64 - 1))
    }

    fn take(&mut self, key: PageKey) -> parquet::errors::Result<Bytes> {
        let blob = self
            .blobs
            .get_mut(key.get() as usize)
            .map(std::mem::take)
            .ok_or_else(|| ParquetError::General(format!("no page {}", key.get())))?;
        self.resident -= blob.len();
        if let Some(kept) = &self.kept {
            kept.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(blob.clone());
        }
        Ok(blob)
    }

    fn memory_size(&self) -> usize {
        self.resident
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{
        ArrayRef, Decimal128Array, Int64Array, MapBuilder, StringArray, StringBuilder,
    };
    use arrow::datatypes::{Field, Schema};
    use datafusion::physical_expr::expressions::Column;
    use object_store::local::LocalFileSystem;
    use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
    use parquet::basic::{Compression, ZstdLevel};
    use parquet::file::metadata::PageIndexPolicy;

    /// `n` rows from `first`: a unique id, a kind of three, two amounts, tags, a nullable count.
    fn rows(first: usize, n: usize) -> Vec<ArrayRef> {
        let numbers = first..first + n;
        let mut tags = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
        for i in numbers.clone() {
            tags.keys().append_value("team");
            tags.values().append_value(format!("team-{}", i % 7));
            tags.append(i % 5 != 0).unwrap();
        }
        let amounts = |scale: i128| {
            Decimal128Array::from_iter_values(numbers.clone().map(|i| i as i128 * scale))
                .with_precision_and_scale(38, 10)
                .unwrap()
        };
        vec![
            Arc::new(StringArray::from_iter_values(
                numbers.clone().map(|i| format!("line-item-{i:08}")),
            )),
            Arc::new(StringArray::from_iter_values(
                numbers.clone().map(|i| ["Usage", "Tax", "Credit"][i % 3]),
            )),
            Arc::new(amounts(1_000)),
            Arc::new(amounts(1_250)),
            Arc::new(tags.finish()),
            Arc::new(Int64Array::from_iter(
                numbers.map(|i| (i % 4 != 0).then_some(i as i64)),
            )),
        ]
    }

    #[tokio::test]
    async fn each_file_is_what_the_arrow_writer_makes_of_its_rows() {
        let all = rows(0, 1);
        let fields: Vec<Field> = ["id", "kind", "cost", "other_cost", "tags", "count"]
            .iter()
            .zip(&all)
            .map(|(name, a)| Field::new(*name, a.data_type().clone(), true))
            .collect();
        // Two tables: the second holds the first's id, kind and tags alike, and its own cost
        // (the other amount, under the same name).
        let first = [0, 1, 2, 4, 5];
        let second = [(0, "id"), (1, "kind"), (3, "cost"), (4, "tags")];
        let first_schema = Arc::new(Schema::new(first.map(|i| fields[i].clone()).to_vec()));
        let second_schema = Arc::new(Schema::new(
            second
                .map(|(i, name)| fields[i].clone().with_name(name))
                .to_vec(),
        ));
        let column = |i: usize| Arc::new(Column::new(fields[i].name(), i)) as Arc<dyn PhysicalExpr>;
        // Small row groups and dictionary pages: several row groups, and the ids' dictionary
        // falls back to plain pages partway.
        let properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap()))
            .set_max_row_group_row_count(Some(1_000))
            .set_dictionary_page_size_limit(4_096)
            .build();
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> =
            Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap());
        let spec = |name: &str, schema: &SchemaRef, columns: Vec<Arc<dyn PhysicalExpr>>| FileSpec {
            store: store.clone(),
            path: Path::from(name),
            name: name.to_string(),
            schema: schema.clone(),
            columns,
        };
        let mut set = FileSet::new(
            vec![
                spec("first.parquet", &first_schema, first.map(column).to_vec()),
                spec(
                    "second.parquet",
                    &second_schema,
                    second.map(|(i, _)| column(i)).to_vec(),
                ),
            ],
            &properties,
        )
        .unwrap();
        assert_eq!(
            set.schema.fields().len(),
            6,
            "id, kind and tags encoded once"
        );

        // The last batch fills whole row groups: their columns are encoded on every core.
        let batches: Vec<[RecordBatch; 2]> = [(0, 700), (700, 700), (1_400, 1_100), (2_500, 5_000)]
            .into_iter()
            .map(|(from, n)| {
                let all = rows(from, n);
                [
                    RecordBatch::try_new(
                        first_schema.clone(),
                        first.map(|i| all[i].clone()).to_vec(),
                    )
                    .unwrap(),
                    RecordBatch::try_new(
                        second_schema.clone(),
                        second.map(|(i, _)| all[i].clone()).to_vec(),
                    )
                    .unwrap(),
                ]
            })
            .collect();
        for pair in &batches {
            set.write(pair).await.unwrap();
        }
        let finished = set.finish().await.unwrap();
        assert_eq!(
            finished
                .iter()
                .map(|f| f.metadata.num_row_groups())
                .collect::<Vec<_>>(),
            [8, 8]
        );

        for (t, (name, schema)) in [
            ("first.parquet", &first_schema),
            ("second.parquet", &second_schema),
        ]
        .into_iter()
        .enumerate()
        {
            let mut alone =
                ArrowWriter::try_new(Vec::new(), schema.clone(), Some(properties.clone())).unwrap();
            for pair in &batches {
                alone.write(&pair[t]).unwrap();
            }
            let alone = alone.into_inner().unwrap();
            let written = std::fs::read(dir.path().join(name)).unwrap();
            assert_eq!(written.len() as u64, finished[t].size);
            assert!(
                written == alone,
                "{name} differs from the Arrow writer's file"
            );
            // And it reads back, page index and all.
            let reader = ParquetRecordBatchReaderBuilder::try_new_with_options(
                Bytes::from(written),
                ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Required),
            )
            .unwrap();
            assert!(reader.metadata().offset_index().is_some());
            let back: Vec<RecordBatch> = reader.build().unwrap().map(Result::unwrap).collect();
            let back = arrow::compute::concat_batches(schema, &back).unwrap();
            let sent: Vec<RecordBatch> = batches.iter().map(|p| p[t].clone()).collect();
            assert_eq!(back, arrow::compute::concat_batches(schema, &sent).unwrap());
        }
    }
}
