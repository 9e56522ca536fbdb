//! Parquet files made of other Parquet files' row groups without encoding again what they hold
//! alike: a column the new file holds as a source file does (same name, type and layout) is
//! copied chunk by chunk, its pages, statistics and page index as they are; the others are read,
//! cast (or made null) and encoded. A customer's CUR export is its group's pro forma files so
//! made: the text, timestamps and tags (most of the bytes) copied, the amounts and rates
//! (decimals in pro forma, doubles and text in CUR 2.0) read and encoded again.
//!
//! A row group of a source is one row group of the new file; a new file takes row groups until
//! it holds `rows_per_file` rows or more, then the next begins.

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, RecordBatch, new_null_array};
use arrow::datatypes::{DataType, Decimal128Type, SchemaRef};
use bytes::{Buf, Bytes};
use object_store::ObjectStoreExt;
use object_store::path::Path;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::arrow_writer::{ArrowColumnChunk, compute_leaves};
use parquet::arrow::async_reader::MetadataFetch;
use parquet::column::writer::ColumnCloseResult;
use parquet::errors::ParquetError;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaDataReader, RowGroupMetaData};
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{ChunkReader, Length};
use parquet::schema::types::SchemaDescriptor;

use crate::error::{Error, Result};
use crate::money;
use crate::storage::Location;
use crate::write::file_set::{OutputFile, column_writers, descriptor, in_parts};
use crate::write::{FAILED_WRITE, delete_or_log};

/// What a column of the new files is, of a source file's.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// The source's column of this name, in the new file's type.
    Column(String),
    /// Null in every row.
    Null,
}

/// A source file: where it is below the store, and its size.
pub struct SourceFile {
    pub path: Path,
    pub size: u64,
}

/// A file made.
pub struct Spliced {
    pub path: Path,
    pub rows: u64,
    pub size: u64,
}

/// Makes files of `schema` (its columns made as `sources` say; a column a source file lacks is
/// null in its rows) from the row groups of `from`, in `output`'s store, named by `name` (1, 2, …): at least one, an empty file if `from` has no
/// rows. On failure, none is left.
pub async fn splice(
    output: &Location,
    from: &[SourceFile],
    schema: &SchemaRef,
    sources: &[Source],
    properties: &WriterProperties,
    rows_per_file: usize,
    mut name: impl FnMut(usize) -> Path,
) -> Result<Vec<Spliced>> {
    let mut done: Vec<Spliced> = Vec::new();
    let mut open: Option<Made> = None;
    let made = async {
        for file in from {
            let source = Read::open(output, file, (schema, sources), properties).await?;
            for row_group in 0..source.metadata.metadata().num_row_groups() {
                if open
                    .as_ref()
                    .is_some_and(|m| m.rows >= rows_per_file as u64)
                {
                    let full = open.take().expect("checked above");
                    done.push(full.finish().await?);
                }
                let made = match &mut open {
                    Some(made) => made,
                    none => {
                        none.insert(Made::new(output, name(done.len() + 1), schema, properties)?)
                    }
                };
                made.append(output, &source, row_group, properties).await?;
            }
        }
        let last = match open.take() {
            Some(made) => made,
            None if done.is_empty() => Made::new(output, name(1), schema, properties)?,
            None => return Ok(()),
        };
        done.push(last.finish().await?);
        Ok(())
    }
    .await;
    match made {
        Ok(()) => Ok(done),
        Err(e) => {
            if let Some(mut made) = open {
                made.out.abort().await;
            }
            for file in done {
                delete_or_log(output.store.as_ref(), &file.path, FAILED_WRITE).await;
            }
            Err(e)
        }
    }
}

/// How a column of the new files is made of a source's row group.
#[derive(Debug, Clone, Copy)]
enum Make {
    /// Copied: the source's column (its place among the source's columns).
    Copy(usize),
    /// Read (the source's column) and cast.
    Cast(usize),
    Null,
}

/// A source file, opened: its footer, and how each column of the new files is made of it.
struct Read {
    path: Path,
    metadata: ArrowReaderMetadata,
    make: Vec<Make>,
}

impl Read {
    /// Opens `file` for new files of `schema`, made as `sources` say and written with
    /// `properties`.
    async fn open(
        output: &Location,
        file: &SourceFile,
        (schema, sources): (&SchemaRef, &[Source]),
        properties: &WriterProperties,
    ) -> Result<Read> {
        let fetch = Fetch {
            location: output,
            path: &file.path,
        };
        let footer = ParquetMetaDataReader::new()
            .with_page_index_policy(PageIndexPolicy::Optional)
            .load_and_finish(fetch, file.size)
            .await;
        let metadata = footer
            .and_then(|f| ArrowReaderMetadata::try_new(Arc::new(f), ArrowReaderOptions::new()))
            .map_err(|e| read_error(output, &file.path, e))?;
        let theirs = metadata.schema();
        let their_leaves = metadata.metadata().file_metadata().schema_descr();
        let our_leaves =
            descriptor(schema, properties).map_err(|e| read_error(output, &file.path, e))?;
        let make = schema
            .fields()
            .iter()
            .zip(sources)
            .enumerate()
            .map(|(i, (field, source))| match source {
                Source::Null => Make::Null,
                // A column the file lacks is null in its rows, as a Delta reader has it (the
                // table gained the column after the file was written).
                Source::Column(name) => match theirs.index_of(name) {
                    Err(_) => Make::Null,
                    Ok(j) => {
                        let same = theirs.field(j).data_type() == field.data_type()
                            && leaves(&our_leaves, i).count() == leaves(their_leaves, j).count()
                            && leaves(&our_leaves, i)
                                .zip(leaves(their_leaves, j))
                                .all(|(a, b)| our_leaves.column(a) == their_leaves.column(b));
                        if same { Make::Copy(j) } else { Make::Cast(j) }
                    }
                },
            })
            .collect::<Vec<_>>();
        let copied = make.iter().filter(|m| matches!(m, Make::Copy(_))).count();
        tracing::debug!(file = %file.path, copied, of = make.len(), "columns copied");
        Ok(Read {
            path: file.path.clone(),
            metadata,
            make,
        })
    }
}

/// The leaves (their places) of the top-level column `column`.
fn leaves(descriptor: &SchemaDescriptor, column: usize) -> impl Iterator<Item = usize> + '_ {
    (0..descriptor.num_columns()).filter(move |&l| descriptor.get_column_root_idx(l) == column)
}

/// A new file being made.
struct Made {
    path: Path,
    schema: SchemaRef,
    out: OutputFile,
    rows: u64,
    /// How many parts the columns it encodes are made in, at once: one per core.
    parts: usize,
}

impl Made {
    fn new(
        output: &Location,
        path: Path,
        schema: &SchemaRef,
        properties: &WriterProperties,
    ) -> Result<Made> {
        let name = output.url_of(&path).to_string();
        let out = OutputFile::open(output.store.clone(), path.clone(), name, schema, properties)?;
        Ok(Made {
            path,
            schema: schema.clone(),
            out,
            rows: 0,
            parts: std::thread::available_parallelism().map_or(1, |n| n.get()),
        })
    }

    /// Appends `source`'s row group `index` as a row group.
    async fn append(
        &mut self,
        output: &Location,
        source: &Read,
        index: usize,
        properties: &WriterProperties,
    ) -> Result<()> {
        let row_group = source.metadata.metadata().row_group(index);
        let bytes = fetch(output, &source.path, row_group).await?;
        let appended = self.append_row_group(source, index, &bytes, properties);
        appended.map_err(|e| self.out.error(e))?;
        self.rows += row_group.num_rows() as u64;
        self.out.send().await
    }

    fn append_row_group(
        &mut self,
        source: &Read,
        index: usize,
        bytes: &Slice,
        properties: &WriterProperties,
    ) -> parquet::errors::Result<()> {
        // The columns not copied, encoded first, in order.
        let mut made = self.encode(source, index, bytes, properties)?.into_iter();
        let ours: Vec<usize> = (0..source.make.len())
            .map(|i| leaves(self.out.file.schema_descr(), i).count())
            .collect();
        let theirs = source.metadata.metadata().file_metadata().schema_descr();
        let mut group = self.out.file.next_row_group()?;
        for (i, make) in source.make.iter().enumerate() {
            match *make {
                Make::Copy(column) => {
                    for leaf in leaves(theirs, column) {
                        group.append_column(bytes, copied(source, index, leaf))?;
                    }
                }
                Make::Cast(_) | Make::Null => {
                    for _ in 0..ours[i] {
                        let chunk = made.next().ok_or_else(|| {
                            ParquetError::General("fewer chunks made than leaves".into())
                        })?;
                        chunk.append_to_row_group(&mut group)?;
                    }
                }
            }
        }
        group.close().map(drop)
    }

    /// The chunks, leaf by leaf, of the columns not copied from `source`'s row group `index`.
    /// The columns are independent: they are read, cast and encoded in parts, one per core, at
    /// once (exports run alone, after the tables, and would keep one core busy).
    fn encode(
        &self,
        source: &Read,
        index: usize,
        bytes: &Slice,
        properties: &WriterProperties,
    ) -> parquet::errors::Result<Vec<ArrowColumnChunk>> {
        let remade: Vec<usize> = (0..source.make.len())
            .filter(|&i| !matches!(source.make[i], Make::Copy(_)))
            .collect();
        if remade.is_empty() {
            return Ok(Vec::new());
        }
        let ordinal = self.out.file.flushed_row_groups().len();
        let part = Part {
            schema: &self.schema,
            source,
            index,
            bytes,
            properties,
            ordinal,
        };
        let made = in_parts(remade, self.parts, |columns| part.encode(&columns))?;
        let mut columns: Vec<_> = made.into_iter().flatten().collect();
        columns.sort_unstable_by_key(|(column, _)| *column);
        Ok(columns.into_iter().flat_map(|(_, chunks)| chunks).collect())
    }

    /// Writes the footer and completes the upload.
    async fn finish(mut self) -> Result<Spliced> {
        let finished = self.out.complete().await?;
        Ok(Spliced {
            size: finished.size,
            path: self.path,
            rows: self.rows,
        })
    }
}

/// What the columns of a new row group not copied from a source's row group are made of.
#[derive(Clone, Copy)]
struct Part<'a> {
    /// The new files' schema.
    schema: &'a SchemaRef,
    source: &'a Read,
    /// The source's row group, and its bytes.
    index: usize,
    bytes: &'a Slice,
    properties: &'a WriterProperties,
    /// The new row group's place in its file.
    ordinal: usize,
}

impl Part<'_> {
    /// Each of the new files' `columns` (none copied) with its chunks, leaf by leaf.
    fn encode(
        &self,
        columns: &[usize],
    ) -> parquet::errors::Result<Vec<(usize, Vec<ArrowColumnChunk>)>> {
        let source = self.source;
        let rows = source.metadata.metadata().row_group(self.index).num_rows() as usize;
        let read: Vec<usize> = columns
            .iter()
            .filter_map(|&i| match source.make[i] {
                Make::Cast(j) => Some(j),
                _ => None,
            })
            .collect();
        let batch = match read.is_empty() {
            true => None,
            false => {
                let metadata = source.metadata.clone();
                let leaves = metadata.metadata().file_metadata().schema_descr();
                let batches = ParquetRecordBatchReaderBuilder::new_with_metadata(
                    self.bytes.clone(),
                    metadata.clone(),
                )
                .with_row_groups(vec![self.index])
                .with_projection(ProjectionMask::roots(leaves, read))
                .with_batch_size(rows.max(1))
                .build()?
                .collect::<std::result::Result<Vec<RecordBatch>, _>>()?;
                match batches.first() {
                    Some(first) => Some(arrow::compute::concat_batches(&first.schema(), &batches)?),
                    None => None,
                }
            }
        };
        let schema = Arc::new(self.schema.project(columns)?);
        let mut writers = column_writers(&schema, self.properties)?
            .create_column_writers(self.ordinal)?
            .into_iter();
        let mut made = Vec::with_capacity(columns.len());
        for (field, &i) in schema.fields().iter().zip(columns) {
            let array: ArrayRef = match (source.make[i], &batch) {
                (Make::Cast(j), Some(batch)) => {
                    let name = source.metadata.schema().field(j).name();
                    let column = batch.column_by_name(name).ok_or_else(|| {
                        ParquetError::General(format!("column {name} was not read"))
                    })?;
                    cast(column, field.data_type())?
                }
                _ => new_null_array(field.data_type(), rows),
            };
            let mut chunks = Vec::new();
            for leaf in compute_leaves(field, &array)? {
                let mut writer = writers
                    .next()
                    .ok_or_else(|| ParquetError::General("fewer writers than leaves".into()))?;
                writer.write(&leaf)?;
                chunks.push(writer.close()?);
            }
            made.push((i, chunks));
        }
        Ok(made)
    }
}

/// A copied chunk: leaf `leaf` of `source`'s row group `index`, as its footer describes it.
fn copied(source: &Read, index: usize, leaf: usize) -> ColumnCloseResult {
    let footer = source.metadata.metadata();
    let row_group = footer.row_group(index);
    let metadata = row_group.column(leaf).clone();
    ColumnCloseResult {
        bytes_written: metadata.compressed_size() as u64,
        rows_written: row_group.num_rows() as u64,
        column_index: footer
            .column_index()
            .and_then(|c| c.get(index)?.get(leaf).cloned())
            .filter(|c| !matches!(c, ColumnIndexMetaData::NONE)),
        offset_index: footer
            .offset_index()
            .and_then(|o| o.get(index)?.get(leaf).cloned()),
        bloom_filter: None,
        metadata,
    }
}

/// The bytes of a row group of the file at `path`: one read from its first chunk to its last.
async fn fetch(output: &Location, path: &Path, row_group: &RowGroupMetaData) -> Result<Slice> {
    let ranges = row_group.columns().iter().map(|c| {
        let (start, length) = c.byte_range();
        (start, start + length)
    });
    let Some((start, end)) = ranges.reduce(|(a, b), (c, d)| (a.min(c), b.max(d))) else {
        return Ok(Slice {
            offset: 0,
            bytes: Bytes::new(),
        });
    };
    let bytes = output.store.get_range(path, start..end).await;
    let bytes = bytes.map_err(|e| output.storage_error(e))?;
    Ok(Slice {
        offset: start,
        bytes,
    })
}

/// Reads a file's footer and page index from the store.
struct Fetch<'a> {
    location: &'a Location,
    path: &'a Path,
}

impl MetadataFetch for Fetch<'_> {
    fn fetch(
        &mut self,
        range: std::ops::Range<u64>,
    ) -> futures::future::BoxFuture<'_, parquet::errors::Result<Bytes>> {
        Box::pin(async move {
            let got = self.location.store.get_range(self.path, range).await;
            got.map_err(|e| ParquetError::External(Box::new(e)))
        })
    }
}

/// Bytes of a file from `offset`: a reader of the parts of the file it holds.
#[derive(Clone)]
struct Slice {
    offset: u64,
    bytes: Bytes,
}

impl Slice {
    fn at(&self, start: u64, length: usize) -> parquet::errors::Result<usize> {
        start
            .checked_sub(self.offset)
            .map(|s| s as usize)
            .filter(|s| s + length <= self.bytes.len())
            .ok_or_else(|| {
                ParquetError::General(format!(
                    "{length} bytes at {start}: outside the {} bytes read at {}",
                    self.bytes.len(),
                    self.offset
                ))
            })
    }
}

impl Length for Slice {
    fn len(&self) -> u64 {
        self.offset + self.bytes.len() as u64
    }
}

impl ChunkReader for Slice {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        let from = self.at(start, 0)?;
        Ok(self.bytes.slice(from..).reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        let from = self.at(start, length)?;
        Ok(self.bytes.slice(from..from + length))
    }
}

fn read_error(output: &Location, path: &Path, error: ParquetError) -> Error {
    Error::WriteParquet {
        location: format!("{} (reading it to export)", output.url_of(path)),
        error: Box::new(error),
    }
}

/// `column` as `to`: rates, decimals in pro forma, become CUR's text by
/// [`money::decimal_text`], the rest by Arrow's cast.
fn cast(column: &ArrayRef, to: &DataType) -> arrow::error::Result<ArrayRef> {
    if let (Some(decimals), DataType::Utf8) = (column.as_primitive_opt::<Decimal128Type>(), to)
        && let Some(text) = money::decimal_text(decimals)
    {
        return Ok(Arc::new(text));
    }
    arrow::compute::cast(column, to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Decimal128Array, Float64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use parquet::arrow::ArrowWriter;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use crate::config::StorageSettings;

    /// A table file of `rows` rows from `first`: an id and an amount (decimal).
    fn table_file(
        output: &Location,
        dir: &std::path::Path,
        name: &str,
        first: i128,
        rows: i128,
    ) -> SourceFile {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("cost", DataType::Decimal128(38, 10), true),
        ]));
        let properties = WriterProperties::builder()
            .set_max_row_group_row_count(Some(100))
            .build();
        let file = std::fs::File::create(dir.join(name)).unwrap();
        let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(properties)).unwrap();
        let ids = StringArray::from_iter_values((first..first + rows).map(|i| format!("line-{i}")));
        let costs =
            Decimal128Array::from_iter_values((first..first + rows).map(|i| i * 12_500_000_000))
                .with_precision_and_scale(38, 10)
                .unwrap();
        let batch = RecordBatch::try_new(schema, vec![Arc::new(ids), Arc::new(costs)]).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        SourceFile {
            path: output.prefix.clone().join(name),
            size: std::fs::metadata(dir.join(name)).unwrap().len(),
        }
    }

    #[tokio::test]
    async fn files_made_of_row_groups_hold_the_rows_in_their_own_types() {
        let dir = tempfile::tempdir().unwrap();
        let output =
            Location::parse(dir.path().to_str().unwrap(), &StorageSettings::default()).unwrap();
        // Two table files: 250 rows (row groups of 100, 100, 50) and 120 (100, 20).
        let from = [
            table_file(&output, dir.path(), "a.parquet", 0, 250),
            table_file(&output, dir.path(), "b.parquet", 250, 120),
        ];
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("cost", DataType::Float64, true),
            Field::new("rate", DataType::Utf8, true),
            Field::new("discount", DataType::Float64, true),
            Field::new("added_later", DataType::Utf8, true),
        ]));
        let sources = [
            Source::Column("id".into()),
            Source::Column("cost".into()),
            Source::Column("cost".into()),
            Source::Null,
            // A column the table gained after its files were written: null in their rows.
            Source::Column("added_later".into()),
        ];
        let properties = WriterProperties::builder().build();
        let made = splice(&output, &from, &schema, &sources, &properties, 200, |n| {
            output.prefix.clone().join(format!("export-{n}.parquet"))
        })
        .await
        .unwrap();
        // A file ends at the first row group that takes it to 200 rows or more: 100 + 100, then
        // 50 + 100 + 20.
        let rows: Vec<u64> = made.iter().map(|f| f.rows).collect();
        assert_eq!(rows, [200, 170]);

        let mut read = Vec::new();
        for file in &made {
            let name = file.path.filename().unwrap();
            let bytes = std::fs::read(dir.path().join(name)).unwrap();
            assert_eq!(bytes.len() as u64, file.size);
            let reader = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(bytes)).unwrap();
            assert_eq!(reader.schema().as_ref(), schema.as_ref());
            for batch in reader.build().unwrap() {
                read.push(batch.unwrap());
            }
        }
        let read = arrow::compute::concat_batches(&schema, &read).unwrap();
        assert_eq!(read.num_rows(), 370);
        let ids: Vec<String> = (0..370).map(|i| format!("line-{i}")).collect();
        assert_eq!(
            read.column(0).as_ref(),
            &StringArray::from_iter_values(&ids) as &dyn arrow::array::Array
        );
        let costs = Float64Array::from_iter_values((0..370).map(|i| i as f64 * 1.25));
        assert_eq!(read.column(1).as_ref(), &costs as &dyn arrow::array::Array);
        let rates =
            StringArray::from_iter_values((0..370).map(|i| format!("{:.10}", i as f64 * 1.25)));
        assert_eq!(read.column(2).as_ref(), &rates as &dyn arrow::array::Array);
        assert_eq!(read.column(3).null_count(), 370);
        assert_eq!(read.column(4).null_count(), 370);
    }

    #[tokio::test]
    async fn a_failure_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let output =
            Location::parse(dir.path().to_str().unwrap(), &StorageSettings::default()).unwrap();
        // The first file makes a whole file and half of the next; the second is not there.
        let mut from = vec![table_file(&output, dir.path(), "a.parquet", 0, 250)];
        from.push(SourceFile {
            path: output.prefix.clone().join("gone.parquet"),
            size: 1_000,
        });
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("added_later", DataType::Utf8, true),
        ]));
        let made = splice(
            &output,
            &from,
            &schema,
            &[
                Source::Column("id".into()),
                Source::Column("added_later".into()),
            ],
            &WriterProperties::builder().build(),
            200,
            |n| output.prefix.clone().join(format!("export-{n}.parquet")),
        )
        .await;
        let error = made.err().unwrap().to_string();
        assert!(error.contains("gone.parquet"), "{error}");
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(left, ["a.parquet"]);
    }
}
