//! An object store that counts the bytes read below one prefix (the input's) and written below
//! another (the output's): what the progress bars show. Every request goes to the wrapped store
//! as it is; a read is counted by the length of the range it returns, a write by its payload.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result, UploadPart,
};

/// Bytes moved below a prefix.
#[derive(Debug, Clone)]
pub struct Tally {
    pub under: Path,
    pub bytes: Arc<AtomicU64>,
}

impl Tally {
    fn add(&self, location: &Path, bytes: u64) {
        if location.prefix_matches(&self.under) {
            self.bytes.fetch_add(bytes, Ordering::Relaxed);
        }
    }
}

/// `inner`, counting the bytes read below one prefix and written below another (either, both
/// or neither).
#[derive(Debug, Clone)]
pub struct Counted {
    inner: Arc<dyn ObjectStore>,
    reads: Option<Tally>,
    writes: Option<Tally>,
}

impl Counted {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Counted {
        Counted {
            inner,
            reads: None,
            writes: None,
        }
    }

    /// Counting reads below `reads.under`.
    pub fn reading(self, reads: Tally) -> Counted {
        Counted {
            reads: Some(reads),
            ..self
        }
    }

    /// Counting writes below `writes.under`.
    pub fn writing(self, writes: Tally) -> Counted {
        Counted {
            writes: Some(writes),
            ..self
        }
    }

    fn count(&self, location: &Path, bytes: u64) {
        if let Some(r) = &self.reads {
            r.add(location, bytes);
        }
    }

    fn wrote(&self, location: &Path, bytes: usize) {
        if let Some(w) = &self.writes {
            w.add(location, bytes as u64);
        }
    }
}

/// A multipart upload whose parts are counted as they are handed over.
#[derive(Debug)]
struct CountedUpload {
    inner: Box<dyn MultipartUpload>,
    location: Path,
    writes: Tally,
}

#[async_trait]
impl MultipartUpload for CountedUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        self.writes
            .add(&self.location, data.content_length() as u64);
        self.inner.put_part(data)
    }

    async fn complete(&mut self) -> Result<PutResult> {
        self.inner.complete().await
    }

    async fn abort(&mut self) -> Result<()> {
        self.inner.abort().await
    }
}

impl std::fmt::Display for Counted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Counted({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for Counted {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.wrote(location, payload.content_length());
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let upload = self.inner.put_multipart_opts(location, opts).await?;
        Ok(match &self.writes {
            Some(writes) => Box::new(CountedUpload {
                inner: upload,
                location: location.clone(),
                writes: writes.clone(),
            }),
            None => upload,
        })
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let got = self.inner.get_opts(location, options).await?;
        self.count(location, got.range.end - got.range.start);
        Ok(got)
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let got = self.inner.get_ranges(location, ranges).await?;
        self.count(location, got.iter().map(|b| b.len() as u64).sum());
        Ok(got)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use object_store::ObjectStoreExt;
    use object_store::memory::InMemory;

    use super::*;

    #[tokio::test]
    async fn reads_below_the_input_and_writes_below_the_output_are_counted() {
        let tally = |under: &str| Tally {
            under: Path::from(under),
            bytes: Arc::new(AtomicU64::new(0)),
        };
        let (reads, writes) = (tally("in"), tally("out"));
        let read = reads.bytes.clone();
        let store = Counted::new(Arc::new(InMemory::new()))
            .reading(reads)
            .writing(writes.clone());
        store
            .put(&Path::from("in/a"), vec![7u8; 100].into())
            .await
            .unwrap();
        store
            .put(&Path::from("out/b"), vec![7u8; 50].into())
            .await
            .unwrap();
        let mut upload = store.put_multipart(&Path::from("out/c")).await.unwrap();
        upload.put_part(vec![1u8; 30].into()).await.unwrap();
        upload.complete().await.unwrap();
        assert_eq!(read.load(Ordering::Relaxed), 0, "writes are not reads");
        assert_eq!(
            writes.bytes.load(Ordering::Relaxed),
            50 + 30,
            "below out/ only"
        );
        store
            .get(&Path::from("in/a"))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        store.get_range(&Path::from("in/a"), 10..30).await.unwrap();
        store
            .get_ranges(&Path::from("in/a"), &[0..5, 5..10])
            .await
            .unwrap();
        store.get(&Path::from("out/b")).await.unwrap();
        assert_eq!(read.load(Ordering::Relaxed), 100 + 20 + 10);
    }
}
