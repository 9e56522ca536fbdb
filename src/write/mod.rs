//! Outputs: Delta tables, invoice documents, customer exports and the run manifest.

pub mod delta;
pub mod exports;
pub mod file_set;
pub mod files;
pub mod invoices;
pub mod manifest;
pub mod splice;
pub mod stats;

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutPayload};
use parquet::basic::Compression;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::error::{Error, Result};
use crate::storage::Location;

/// What [`delete_or_log`] calls the files of a write that failed.
pub(crate) const FAILED_WRITE: &str = "a file of a failed write";

/// Deletes `path` from `store`, best effort: this runs on the way out of a failure, so what it
/// cannot delete is logged (with `what`: the kind of file it is).
pub(crate) async fn delete_or_log(store: &dyn ObjectStore, path: &Path, what: &str) {
    if let Err(e) = store.delete(path).await {
        tracing::error!(file = %path, error = %e, "could not delete {what}");
    }
}

/// Rows per row group: small enough to buffer one per open file, large enough for readers to
/// skip by statistics.
const ROW_GROUP_ROWS: usize = 128 * 1024;

/// Columns whose values are unique per row: a dictionary of them only costs time (the writer
/// builds one, then falls back to plain once it outgrows its page).
const UNIQUE_COLUMNS: [&str; 1] = ["identity_line_item_id"];

/// Columns without statistics: ids unique per row, free text, JSON and the leaves of maps,
/// whose least and greatest values in a row group skip nothing (every row group spans almost
/// all of them; no reader prunes by a map's leaves). Their bounds cost two comparisons of each
/// value written, most of them long strings with long common prefixes (ARNs, JSON).
const UNBOUNDED_COLUMNS: [&str; 15] = [
    "identity_line_item_id",
    "line_item_line_item_description",
    "line_item_resource_id",
    "cost_category.key_value.key",
    "cost_category.key_value.value",
    "discount.key_value.key",
    "discount.key_value.value",
    "product.key_value.key",
    "product.key_value.value",
    "resource_tags.key_value.key",
    "resource_tags.key_value.value",
    // FOCUS (`sql/focus.sql`)
    "ChargeDescription",
    "ResourceId",
    "ResourceName",
    "Tags",
];

/// How every Parquet file rerate writes is encoded: `compression`, 128Ki-row row groups,
/// dictionaries for every column but those unique per row, statistics for every column but
/// those no reader could skip by.
pub fn parquet_properties(compression: Compression) -> WriterProperties {
    let path = |c: &str| ColumnPath::new(c.split('.').map(str::to_string).collect());
    let builder = UNIQUE_COLUMNS
        .iter()
        .fold(WriterProperties::builder(), |b, c| {
            b.set_column_dictionary_enabled(path(c), false)
        });
    UNBOUNDED_COLUMNS
        .iter()
        .fold(builder, |b, c| {
            b.set_column_statistics_enabled(path(c), EnabledStatistics::None)
        })
        .set_compression(compression)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .build()
}

/// Objects a period writes over, with what each held before, so that a period failing later can
/// put them back (invoice documents, export manifests: small, so their earlier bytes are kept in
/// memory).
pub struct Overwrites {
    location: Location,
    /// Each path written, with its earlier bytes (`None`: there was no object).
    earlier: Vec<(Path, Option<PutPayload>)>,
}

impl Overwrites {
    /// Writes under `location`'s store; `location` names the folder in errors.
    pub fn new(location: Location) -> Overwrites {
        Overwrites {
            location,
            earlier: Vec::new(),
        }
    }

    /// Writes `body` at `path`, after keeping what was there.
    pub async fn put(&mut self, path: &Path, body: PutPayload) -> Result<()> {
        let (store, fail) = (&self.location.store, |e| self.location.storage_error(e));
        let earlier = match store.get(path).await {
            Ok(got) => Some(got.bytes().await.map_err(fail)?.into()),
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => return Err(fail(e)),
        };
        self.earlier.push((path.clone(), earlier));
        store.put(path, body).await.map_err(fail)?;
        Ok(())
    }

    /// Creates `path` with `body`, refusing to replace anything there (an issued document is
    /// written once); undoing it deletes it.
    pub async fn create(&mut self, path: &Path, body: PutPayload) -> Result<()> {
        let store = &self.location.store;
        match store.put_opts(path, body, PutMode::Create.into()).await {
            Ok(_) => {
                self.earlier.push((path.clone(), None));
                Ok(())
            }
            Err(object_store::Error::AlreadyExists { .. }) => Err(Error::DocumentExists {
                document: self.location.url_of(path).to_string(),
            }),
            Err(e) => Err(self.location.storage_error(e)),
        }
    }

    /// Puts every object written back as it was, the last written first.
    pub async fn undo(&self) -> Result<()> {
        let store = &self.location.store;
        for (path, earlier) in self.earlier.iter().rev() {
            let put_back = match earlier {
                Some(bytes) => store.put(path, bytes.clone()).await.map(|_| ()),
                None => match store.delete(path).await {
                    Err(object_store::Error::NotFound { .. }) => Ok(()),
                    other => other,
                },
            };
            put_back.map_err(|e| self.location.storage_error(e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        ArrayRef, MapBuilder, MapFieldNames, RecordBatch, StringArray, StringBuilder,
    };
    use bytes::Bytes;
    use parquet::arrow::ArrowWriter;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    use super::*;

    #[test]
    fn ids_text_and_map_leaves_have_no_statistics_other_columns_do() {
        let text = |values: [&str; 2]| Arc::new(StringArray::from(values.to_vec())) as ArrayRef;
        // As rerate's tables name a map's parts (`ingest::columns`).
        let names = MapFieldNames {
            entry: "key_value".into(),
            key: "key".into(),
            value: "value".into(),
        };
        let mut product = MapBuilder::new(Some(names), StringBuilder::new(), StringBuilder::new());
        for region in ["eu-west-1", "us-east-1"] {
            product.keys().append_value("region");
            product.values().append_value(region);
            product.append(true).unwrap();
        }
        let batch = RecordBatch::try_from_iter([
            ("identity_line_item_id", text(["b", "a"])),
            ("line_item_usage_account_id", text(["222", "111"])),
            ("product", Arc::new(product.finish()) as ArrayRef),
        ])
        .unwrap();
        let properties = parquet_properties(Compression::UNCOMPRESSED);
        let mut file = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut file, batch.schema(), Some(properties)).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();

        let reader = SerializedFileReader::new(Bytes::from(file)).unwrap();
        let group = reader.metadata().row_group(0);
        let bounded: Vec<(String, bool)> = group
            .columns()
            .iter()
            .map(|c| (c.column_path().string(), c.statistics().is_some()))
            .collect();
        let expected = [
            ("identity_line_item_id", false),
            ("line_item_usage_account_id", true),
            ("product.key_value.key", false),
            ("product.key_value.value", false),
        ];
        let expected: Vec<(String, bool)> =
            expected.iter().map(|&(c, b)| (c.to_string(), b)).collect();
        assert_eq!(bounded, expected);
    }
}
