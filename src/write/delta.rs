//! Delta Lake tables partitioned by `billing_period` then `billing_group`: one commit replaces
//! exactly one period, readers never see half a write, and earlier versions stay readable.

use std::sync::{Arc, Once};

use datafusion::prelude::{DataFrame, SessionContext, col, lit};
use deltalake::logstore::{
    LogStore, LogStoreFactory, StorageConfig, default_logstore, logstore_factories,
};
use deltalake::operations::write::SchemaMode;
use deltalake::parquet::basic::{Compression, ZstdLevel};
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::protocol::SaveMode;
use deltalake::{DeltaResult, DeltaTable, DeltaTableBuilder, DeltaTableError, ObjectStore};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use serde::Serialize;
use url::Url;

use crate::error::{Error, Result};
use crate::period::Period;
use crate::storage::Location;

pub const PARTITION_COLUMNS: [&str; 2] = ["billing_period", "billing_group"];

const ROW_GROUP_ROWS: usize = 128 * 1024;

/// What one table write committed.
#[derive(Debug, Clone, Serialize)]
pub struct TableCommit {
    pub table: String,
    pub url: String,
    pub version: u64,
    /// The version before this commit (`None`: the commit created the table).
    pub previous_version: Option<u64>,
    pub rows: u64,
}

/// Replaces `period` in the Delta table `name` under `output` with `data`, in one commit.
pub async fn replace_period(
    ctx: &SessionContext,
    output: &Location,
    name: &str,
    data: DataFrame,
    period: Period,
) -> Result<TableCommit> {
    let location = output.child(&[name]);
    let delta_err = |error: DeltaTableError| Error::Delta {
        table: location.to_string(),
        error: Box::new(error),
    };
    if location.is_local() {
        let dir = location
            .url()
            .to_file_path()
            .expect("local locations are file URLs");
        std::fs::create_dir_all(&dir).map_err(Error::io(dir.display()))?;
    }
    let (table, previous_version) = match load(&location).await? {
        Some(table) => {
            let version = table.version();
            (table, version)
        }
        None => (open(&location).map_err(delta_err)?, None),
    };
    let exists = previous_version.is_some();
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("valid zstd level"),
        ))
        // Row groups are buffered uncompressed per open partition while writing: 128 Ki rows
        // keep that bounded and still let readers skip by statistics.
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .build();
    let mut write = table
        .write(Vec::new())
        .with_input_plan(data.logical_plan().clone())
        .with_session_state(Arc::new(ctx.state()))
        .with_partition_columns(PARTITION_COLUMNS)
        .with_writer_properties(properties)
        .with_table_name(name);
    write = if exists {
        write
            .with_save_mode(SaveMode::Overwrite)
            .with_replace_where(col("billing_period").eq(lit(period.to_string())))
            // A period whose input has other columns than the table's (SPEC §3: every column
            // is kept) adds them; columns it lacks are null in its rows.
            .with_schema_mode(SchemaMode::Merge)
    } else {
        write.with_save_mode(SaveMode::Append)
    };
    let table = write.await.map_err(delta_err)?;
    let rows = last_commit_rows(&table).await.map_err(delta_err)?;
    Ok(TableCommit {
        table: name.to_string(),
        url: location.to_string(),
        version: table.version().unwrap_or_default(),
        previous_version,
        rows,
    })
}

/// A table a failed period had committed to, put back as it was before the period.
#[derive(Debug, Clone, Serialize)]
pub struct Restored {
    pub table: String,
    /// The version the failed period committed.
    pub from_version: u64,
    /// The version put back (`None`: the period had created the table, which is removed).
    pub to_version: Option<u64>,
}

/// One commit per table standing for all of `commits` to it, in the order of each table's last
/// commit: from the version before its first to the version of its last, which is what undoing
/// them all restores ([`restore`]).
pub fn per_table(commits: &[TableCommit]) -> Vec<TableCommit> {
    let mut out: Vec<TableCommit> = Vec::new();
    for c in commits {
        match out.iter().position(|t| t.table == c.table) {
            Some(i) => {
                let first = out.remove(i);
                out.push(TableCommit {
                    previous_version: first.previous_version,
                    ..c.clone()
                });
            }
            None => out.push(c.clone()),
        }
    }
    out
}

/// Undoes `commit`: a restore commit back to the version before it (readers of the latest
/// version see the table as it was), or, for a table the commit created, no table. Refused when
/// another writer has committed since: its data is not ours to undo.
pub async fn restore(output: &Location, commit: &TableCommit) -> Result<Restored> {
    let location = output.child(&[&commit.table]);
    let delta_err = |error: DeltaTableError| Error::Delta {
        table: location.to_string(),
        error: Box::new(error),
    };
    let mut table = open(&location).map_err(delta_err)?;
    table.load().await.map_err(delta_err)?;
    if table.version() != Some(commit.version) {
        return Err(Error::Internal {
            what: format!(
                "{location}: another writer committed after version {} of this run; not undone",
                commit.version
            ),
        });
    }
    match commit.previous_version {
        Some(v) => {
            table
                .restore()
                .with_version_to_restore(v)
                .await
                .map_err(delta_err)?;
        }
        None => {
            for object in location.list().await? {
                location
                    .store
                    .delete(&object.location)
                    .await
                    .map_err(|e| location.storage_error(e))?;
            }
        }
    }
    Ok(Restored {
        table: commit.table.clone(),
        from_version: commit.version,
        to_version: commit.previous_version,
    })
}

/// The Delta table at `location` (not loaded), through our own object store.
pub fn open(location: &Location) -> DeltaResult<DeltaTable> {
    register_s3_logstore();
    let mut url = location.url();
    // Delta wants the table root as a folder URL.
    if !url.path().ends_with('/') {
        url.set_path(&format!("{}/", url.path()));
    }
    DeltaTableBuilder::from_url(url.clone())?
        .with_storage_backend(location.store.clone(), url)
        .build()
}

/// The rows of the table version `commit` made (a later writer's commits are not read).
pub async fn read_commit(
    ctx: &SessionContext,
    output: &Location,
    commit: &TableCommit,
) -> Result<DataFrame> {
    let location = output.child(&[&commit.table]);
    let delta_err = |error| Error::Delta {
        table: location.to_string(),
        error: Box::new(error),
    };
    let mut table = open(&location).map_err(delta_err)?;
    table
        .load_version(commit.version)
        .await
        .map_err(delta_err)?;
    Ok(ctx.read_table(table.table_provider().await?)?)
}

/// The Delta table at `location` at its latest version (`None`: there is no table).
pub async fn load(location: &Location) -> Result<Option<DeltaTable>> {
    // The kernel refuses to open a missing table: look for its log first.
    if location.child(&["_delta_log"]).list().await?.is_empty() {
        return Ok(None);
    }
    let mut table = open(location).map_err(|error| Error::Delta {
        table: location.to_string(),
        error: Box::new(error),
    })?;
    table.load().await.map_err(|error| Error::Delta {
        table: location.to_string(),
        error: Box::new(error),
    })?;
    Ok(Some(table))
}

async fn last_commit_rows(table: &DeltaTable) -> DeltaResult<u64> {
    let last: Vec<_> = table.history(Some(1)).try_collect().await?;
    Ok(last
        .first()
        .and_then(|c| c.info.get("operationMetrics"))
        .and_then(|m| m.get("num_added_rows"))
        .and_then(|n| n.as_u64())
        .unwrap_or_default())
}

/// S3 commits use conditional puts (`If-None-Match`), which AWS S3 and MinIO-style servers
/// honour, so the default log store is safe there without a locking table.
#[derive(Debug)]
struct ConditionalPutLogStore;

impl LogStoreFactory for ConditionalPutLogStore {
    fn with_options(
        &self,
        prefixed_store: Arc<dyn ObjectStore>,
        root_store: Arc<dyn ObjectStore>,
        location: &Url,
        options: &StorageConfig,
    ) -> DeltaResult<Arc<dyn LogStore>> {
        Ok(default_logstore(
            prefixed_store,
            root_store,
            location,
            options,
        ))
    }
}

fn register_s3_logstore() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for scheme in ["s3://", "s3a://"] {
            logstore_factories().insert(
                Url::parse(scheme).expect("static URL"),
                Arc::new(ConditionalPutLogStore),
            );
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_over_two_periods_is_undone_to_before_its_first_commit() {
        let c = |table: &str, previous: Option<u64>, version: u64| TableCommit {
            table: table.into(),
            url: format!("out/{table}"),
            version,
            previous_version: previous,
            rows: version,
        };
        let commits = [
            c("billable", Some(3), 4),
            c("proforma", None, 0),
            c("billable", Some(4), 5),
            c("proforma", Some(0), 1),
            c("billable", Some(5), 6),
        ];
        let undo: Vec<(String, Option<u64>, u64)> = per_table(&commits)
            .into_iter()
            .map(|t| (t.table, t.previous_version, t.version))
            .collect();
        assert_eq!(
            undo,
            vec![
                ("proforma".into(), None, 1),
                ("billable".into(), Some(3), 6)
            ]
        );
    }
}
