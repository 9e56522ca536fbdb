//! Helpers of the unit tests: generate a sample in memory and read its files back.

use std::sync::Arc;

use arrow::array::AsArray;
use arrow::datatypes::Float64Type;
use arrow::record_batch::RecordBatch;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use bytes::Bytes;

use crate::{Period, SampleOptions, SampleSummary, write_sample};

pub(crate) fn period(text: &str) -> Period {
    text.parse().unwrap()
}

pub(crate) fn options(rows: u64, seed: u64) -> SampleOptions {
    SampleOptions {
        rows,
        seed,
        periods: vec![period("2025-11")],
        rows_per_file: 1_000_000,
    }
}

pub(crate) async fn generate(opts: &SampleOptions) -> (Arc<dyn ObjectStore>, SampleSummary) {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let summary = write_sample(Arc::clone(&store), &Path::from("cur2"), opts)
        .await
        .unwrap();
    (store, summary)
}

/// The bytes of one object the sample wrote.
pub(crate) async fn object(store: &Arc<dyn ObjectStore>, path: &str) -> Bytes {
    let get = store.get(&Path::from(path)).await.unwrap();
    get.bytes().await.unwrap()
}

pub(crate) async fn read_all(store: &Arc<dyn ObjectStore>, files: &[String]) -> Vec<RecordBatch> {
    let mut batches = Vec::new();
    for file in files {
        let reader = ParquetRecordBatchReaderBuilder::try_new(object(store, file).await)
            .unwrap()
            .with_batch_size(8192)
            .build()
            .unwrap();
        batches.extend(reader.map(Result::unwrap));
    }
    batches
}

pub(crate) fn strings<'a>(batch: &'a RecordBatch, name: &str) -> Vec<Option<&'a str>> {
    batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("{name}"))
        .as_string::<i32>()
        .iter()
        .collect()
}

pub(crate) fn doubles(batch: &RecordBatch, name: &str) -> Vec<Option<f64>> {
    batch
        .column_by_name(name)
        .unwrap()
        .as_primitive::<Float64Type>()
        .iter()
        .collect()
}
