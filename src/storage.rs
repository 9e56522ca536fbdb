//! Object stores from URLs (`s3://bucket/prefix`, `file:///abs`, plain paths) and the standard
//! AWS environment, so every read and write goes through `object_store`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{BackoffConfig, ObjectMeta, ObjectStore, RetryConfig};
use url::Url;

mod counted;
pub use counted::{Counted, Tally};

use crate::config::StorageSettings;
use crate::error::{Error, Result};

/// A folder in some object store: the store (rooted at the bucket or `/`), the store's URL and
/// the prefix inside it.
#[derive(Clone)]
pub struct Location {
    pub store: Arc<dyn ObjectStore>,
    /// `s3://bucket/` or `file:///`: what DataFusion and Delta register the store under.
    pub root: Url,
    pub prefix: Path,
}

impl fmt::Debug for Location {
    // Stores can carry credentials in their Debug output: print only where we point.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Location({})", self.url())
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.url())
    }
}

impl Location {
    /// Parses `s3://bucket/prefix`, `file:///abs/path` or a plain (relative or absolute) path.
    pub fn parse(input: &str, settings: &StorageSettings) -> Result<Self> {
        let bad = |reason: &str| Error::BadUrl {
            url: input.to_string(),
            reason: reason.to_string(),
        };
        if input.trim().is_empty() {
            return Err(bad("empty location"));
        }
        if let Some((scheme, rest)) = input.split_once("://")
            && let Some((_, host)) = rest.split('/').next().unwrap_or("").rsplit_once('@')
        {
            // Never echo them: this message is logged and written to the run manifest.
            return Err(Error::BadUrl {
                url: format!("{scheme}://***@{host}"),
                reason: "credentials in a location are refused, as they would end up in logs and \
                         manifests: use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                    .to_string(),
            });
        }
        if let Some(rest) = input
            .strip_prefix("s3://")
            .or_else(|| input.strip_prefix("s3a://"))
        {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("no bucket name after s3://"));
            }
            let store = s3_store(bucket, settings).map_err(|e| bad(&e.to_string()))?;
            let root = Url::parse(&format!("s3://{bucket}/")).map_err(|e| bad(&e.to_string()))?;
            let prefix =
                Path::parse(prefix.trim_end_matches('/')).map_err(|e| bad(&e.to_string()))?;
            return Ok(Self {
                store,
                root,
                prefix,
            });
        }
        let path = if input.starts_with("file:") {
            Url::parse(input)
                .ok()
                .and_then(|u| u.to_file_path().ok())
                .ok_or_else(|| bad("not an absolute file:// URL"))?
        } else if input.contains("://") {
            return Err(bad("only s3://, file:// and local paths are supported"));
        } else {
            std::path::absolute(input).map_err(|e| bad(&e.to_string()))?
        };
        let path = lexically_normal(&path);
        let prefix = Path::from_absolute_path(&path).map_err(|e| bad(&e.to_string()))?;
        let root = Url::parse("file:///").expect("static URL");
        Ok(Self {
            store: Arc::new(LocalFileSystem::new()),
            root,
            prefix,
        })
    }

    /// The full URL of this folder (no trailing slash).
    pub fn url(&self) -> Url {
        self.root
            .join(self.prefix.as_ref())
            .expect("object paths are URL-safe")
    }

    /// The URL of an object or folder below this one.
    pub fn url_of(&self, path: &Path) -> Url {
        self.root
            .join(path.as_ref())
            .expect("object paths are URL-safe")
    }

    /// A sub-folder, from path segments we control (table names, validated group names).
    pub fn child(&self, segments: &[&str]) -> Location {
        let mut prefix = self.prefix.clone();
        for s in segments {
            prefix = prefix.join(*s);
        }
        Location {
            store: self.store.clone(),
            root: self.root.clone(),
            prefix,
        }
    }

    pub fn is_local(&self) -> bool {
        self.root.scheme() == "file"
    }

    /// Every object below this folder; none when the folder does not exist (yet).
    pub async fn list(&self) -> Result<Vec<ObjectMeta>> {
        self.store
            .list(Some(&self.prefix))
            .try_collect()
            .await
            .or_else(|e| match e {
                object_store::Error::NotFound { .. } => Ok(Vec::new()),
                e => Err(self.storage_error(e)),
            })
    }

    pub fn storage_error(&self, error: object_store::Error) -> Error {
        Error::Storage {
            location: self.to_string(),
            error: Box::new(error),
        }
    }
}

/// `/a/b/../c` as `/a/c`, without touching the file system (the output may not exist yet).
fn lexically_normal(path: &std::path::Path) -> std::path::PathBuf {
    use std::path::Component;
    let mut out = std::path::PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// S3 from the standard AWS environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`), then `[storage]`.
fn s3_store(
    bucket: &str,
    settings: &StorageSettings,
) -> object_store::Result<Arc<dyn ObjectStore>> {
    let retry = RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(15),
            base: 2.0,
        },
        max_retries: settings.max_retries.unwrap_or(10) as usize,
        retry_timeout: Duration::from_secs(settings.retry_timeout_seconds.unwrap_or(180).into()),
    };
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_retry(retry);
    if let Some(endpoint) = &settings.endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    let endpoint_set =
        settings.endpoint.is_some() || std::env::var_os("AWS_ENDPOINT_URL").is_some();
    if let Some(region) = &settings.region {
        builder = builder.with_region(region);
    }
    if let Some(allow) = settings.allow_http {
        builder = builder.with_allow_http(allow);
    }
    // Custom endpoints (MinIO and friends) want path-style requests unless told otherwise.
    let virtual_hosted = settings.virtual_hosted_style.unwrap_or(!endpoint_set);
    builder = builder.with_virtual_hosted_style_request(virtual_hosted);
    Ok(Arc::new(builder.build()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_file_paths_become_local_locations() {
        let s = StorageSettings::default();
        let loc = Location::parse("/tmp/cur", &s).unwrap();
        assert!(loc.is_local());
        assert_eq!(loc.url().as_str(), "file:///tmp/cur");
        let loc = Location::parse("/tmp/x/../cur/./", &s).unwrap();
        assert_eq!(loc.url().as_str(), "file:///tmp/cur");
        let loc = Location::parse("file:///tmp/cur/", &s).unwrap();
        assert_eq!(loc.prefix.as_ref(), "tmp/cur");
        assert_eq!(
            loc.child(&["billable"]).url().as_str(),
            "file:///tmp/cur/billable"
        );
    }

    #[test]
    fn s3_urls_split_bucket_and_prefix() {
        let s = StorageSettings {
            region: Some("eu-west-1".into()),
            ..Default::default()
        };
        let loc = Location::parse("s3://cur-exports/acme/cur2/", &s).unwrap();
        assert_eq!(loc.root.as_str(), "s3://cur-exports/");
        assert_eq!(loc.prefix.as_ref(), "acme/cur2");
        assert_eq!(format!("{loc:?}"), "Location(s3://cur-exports/acme/cur2)");
    }

    #[test]
    fn unsupported_urls_are_clear_errors() {
        let s = StorageSettings::default();
        for bad in ["", "s3://", "gs://bucket/x", "ftp://host/x"] {
            let err = Location::parse(bad, &s).unwrap_err().to_string();
            assert!(err.contains("not a storage location"), "{bad}: {err}");
        }
    }
}
