//! Cluster mode (SPEC §7.1): the job's heavy plans on an Apache DataFusion Ballista cluster.
//!
//! A cluster is this binary started on several machines: `rerate cluster scheduler` and
//! `rerate cluster executor` are Ballista's scheduler and executor with what they need of
//! ours ([`codec`]: the write pass as a plan node, the config's small tables, our functions;
//! [`Stores`]: S3 buckets from the machine's AWS environment). `rerate run --cluster
//! df://host:port` ([`connect`]) sends the period's pass over the input to the scheduler: the
//! executors scan the CUR files, re-rate the rows and write the billable and pro forma Parquet
//! files straight to the output store ([`write_tables`]); the driver gets back the list of
//! files, commits the Delta logs and writes the documents, as in-process.

mod codec;
mod node;

use std::net::SocketAddr;
use std::sync::Arc;

use ballista_core::config::BALLISTA_ADAPTIVE_PLANNER_ENABLED;
use ballista_core::extension::{SessionConfigExt, SessionStateExt};
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::start_server;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::object_store::{
    DefaultObjectStoreRegistry, ObjectStoreRegistry, ObjectStoreUrl,
};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::logical_expr::{Extension, LogicalPlan};
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use object_store::ObjectStore;
use object_store::path::Path;
use url::Url;

pub use codec::{LogicalCodec, PhysicalCodec};
pub use node::WriteTablesNode;

use crate::config::StorageSettings;
use crate::error::{Error, Result};
use crate::period::Period;
use crate::storage::Location;
use crate::write::files::{self, Sink, WrittenFile};

/// A Ballista client for the scheduler at `url` (`df://host:port`): a session whose plans
/// run on the cluster, with the settings of the job's own session `local` (they travel with
/// every job to the scheduler and executors).
pub fn connect(url: &str, local: &SessionContext) -> Result<SessionContext> {
    let scheduler = scheduler_url(url)?;
    let config = local
        .state()
        .config()
        .clone()
        .with_ballista_logical_extension_codec(Arc::new(LogicalCodec::default()))
        .with_ballista_physical_extension_codec(Arc::new(PhysicalCodec::default()))
        .upgrade_for_ballista()
        // Ballista 55's adaptive planner re-planned a small scenario's plan without end
        // (16,000 stages in two minutes, none of them the last); the static planner runs it.
        .set_bool(BALLISTA_ADAPTIVE_PLANNER_ENABLED, false)
        // An executor runs one partition of a scan per task, with no sibling to share files
        // with: each reads its own files (DataFusion's advice for Ballista).
        .set_bool(
            "datafusion.execution.enable_file_stream_work_stealing",
            false,
        );
    // A state of its own, not one built from `local`'s: building a state from an existing one
    // registers a new default catalog in the catalog list they share, which empties `local`'s.
    let state = SessionStateBuilder::new()
        .with_default_features()
        .with_config(config)
        .build()
        .upgrade_for_ballista(scheduler)?;
    Ok(SessionContext::new_with_state(state))
}

/// `df://host:port` as the scheduler's gRPC URL (`http://host:port`).
fn scheduler_url(url: &str) -> Result<String> {
    let (host, port) = crate::config::parse_cluster_url(url).map_err(|reason| Error::BadUrl {
        url: url.to_string(),
        reason,
    })?;
    Ok(format!("http://{host}:{port}"))
}

/// [`files::write_tables`] on the cluster: `data` (every row of `period`, planned in the job's
/// session) and the sinks go to the scheduler as one plan; each executor writes its partitions'
/// files below the tables; the driver gets back what was written. On failure every file of the
/// write is deleted (found by its id: no executor says which it finished).
pub async fn write_tables(
    cluster: &SessionContext,
    data: DataFrame,
    sinks: Vec<Sink>,
    period: Period,
) -> Result<Vec<Vec<WrittenFile>>> {
    let write_id = files::new_write_id();
    let tables: Vec<Location> = sinks.iter().map(|s| s.table.clone()).collect();
    let sinks = sinks
        .into_iter()
        .map(|s| node::NodeSink {
            table: s.table.url().to_string(),
            rows: s.rows,
            columns: s.columns,
        })
        .collect();
    let node = WriteTablesNode::new(
        data.into_unoptimized_plan(),
        period,
        write_id.clone(),
        sinks,
    )?;
    let plan = LogicalPlan::Extension(Extension {
        node: Arc::new(node),
    });
    let written = async { Ok(cluster.execute_logical_plan(plan).await?.collect().await?) }.await;
    files::files_written(written, &tables, period, &write_id).await
}

/// The folder `url` points at, in the store `runtime` has for it.
fn location(url: &str, runtime: &RuntimeEnv) -> DfResult<Location> {
    let parsed = Url::parse(url).map_err(|e| DataFusionError::External(Box::new(e)))?;
    let root = Url::parse(&format!(
        "{}://{}/",
        parsed.scheme(),
        parsed.host_str().unwrap_or("")
    ))
    .map_err(|e| DataFusionError::External(Box::new(e)))?;
    let store = runtime.object_store(ObjectStoreUrl::parse(root.as_str())?)?;
    let prefix = Path::from_url_path(parsed.path())?;
    Ok(Location {
        store,
        root,
        prefix,
    })
}

/// The object stores of a scheduler or executor: local files, and each S3 bucket a plan names,
/// opened on first use from the machine's AWS environment (`AWS_ACCESS_KEY_ID`,
/// `AWS_ENDPOINT_URL`, … as for `rerate run`; a driver's `[storage]` section does not travel).
#[derive(Debug, Default)]
pub struct Stores {
    known: DefaultObjectStoreRegistry,
}

impl ObjectStoreRegistry for Stores {
    fn register_store(
        &self,
        url: &Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        self.known.register_store(url, store)
    }

    fn deregister_store(&self, url: &Url) -> DfResult<Arc<dyn ObjectStore>> {
        self.known.deregister_store(url)
    }

    fn get_store(&self, url: &Url) -> DfResult<Arc<dyn ObjectStore>> {
        if let Ok(store) = self.known.get_store(url) {
            return Ok(store);
        }
        let (Some(bucket), "s3" | "s3a") = (url.host_str(), url.scheme()) else {
            return self.known.get_store(url);
        };
        let location = Location::parse(&format!("s3://{bucket}"), &StorageSettings::default())
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        self.known.register_store(url, location.store.clone());
        Ok(location.store)
    }
}

/// A scheduler's or executor's runtime: [`Stores`], the rest as DataFusion's defaults.
fn runtime(stores: Arc<Stores>) -> DfResult<Arc<RuntimeEnv>> {
    RuntimeEnvBuilder::new()
        .with_object_store_registry(stores)
        .build_arc()
}

/// Runs Ballista's scheduler on `bind` until the process is stopped.
pub async fn scheduler(bind: SocketAddr) -> Result<()> {
    let stores = Arc::new(Stores::default());
    let builder = move |config: SessionConfig| {
        Ok(SessionStateBuilder::new()
            .with_default_features()
            .with_config(config)
            .with_runtime_env(runtime(stores.clone())?)
            .with_query_planner(Arc::new(node::Planner))
            .build())
    };
    let mut config = SchedulerConfig {
        bind_host: bind.ip().to_string(),
        bind_port: bind.port(),
        ..Default::default()
    }
    .with_override_session_builder(Arc::new(builder));
    config.override_logical_codec = Some(Arc::new(LogicalCodec::default()));
    config.override_physical_codec = Some(Arc::new(PhysicalCodec::default()));
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .map_err(cluster_error)?;
    start_server(cluster, bind, Arc::new(config))
        .await
        .map_err(cluster_error)
}

/// What `rerate cluster executor` was told.
#[derive(Debug, Clone, clap::Args)]
pub struct ExecutorOptions {
    /// The scheduler, host:port.
    #[arg(long)]
    pub scheduler: String,
    /// Where to serve Arrow Flight (other executors and the driver fetch results here).
    #[arg(long, default_value = "0.0.0.0:50051")]
    pub bind: SocketAddr,
    /// Where to serve gRPC to the scheduler (same host as --bind).
    #[arg(long, default_value = "0.0.0.0:50052")]
    pub grpc_bind: SocketAddr,
    /// The name or address others reach this executor at (default: --bind's address, which
    /// must then not be 0.0.0.0).
    #[arg(long)]
    pub external_host: Option<String>,
    /// Tasks run at once (default: the machine's cores).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Where shuffle files go (default: a temporary folder).
    #[arg(long)]
    pub work_dir: Option<String>,
    /// Memory the executor's tasks share for joins, aggregations, sorts and Parquet writers
    /// before they spill, e.g. 8GiB (default: 70 % of the machine's, Ballista's default).
    #[arg(long, value_parser = crate::config::parse_memory_limit)]
    pub memory_limit: Option<u64>,
}

/// Runs Ballista's executor until the process is stopped.
pub async fn executor(opts: &ExecutorOptions) -> Result<()> {
    let bad = |reason: String| Error::BadUrl {
        url: opts.scheduler.clone(),
        reason,
    };
    let (host, port) = opts
        .scheduler
        .rsplit_once(':')
        .ok_or_else(|| bad("the scheduler is host:port".to_string()))?;
    let port: u16 = port
        .parse()
        .map_err(|_| bad(format!("{port} is not a port")))?;
    if opts.bind.ip() != opts.grpc_bind.ip() {
        return Err(Error::Cluster {
            what: format!(
                "--bind {} and --grpc-bind {} must be on the same address",
                opts.bind, opts.grpc_bind
            ),
        });
    }
    let external_host = match &opts.external_host {
        Some(h) => h.clone(),
        None if opts.bind.ip().is_unspecified() => {
            return Err(Error::Cluster {
                what: format!(
                    "--bind {} serves every address: say which one others reach this executor at \
                     (--external-host)",
                    opts.bind
                ),
            });
        }
        None => opts.bind.ip().to_string(),
    };
    let stores = Arc::new(Stores::default());
    let mut config = ExecutorProcessConfig {
        bind_host: opts.bind.ip().to_string(),
        external_host: Some(external_host),
        port: opts.bind.port(),
        grpc_port: opts.grpc_bind.port(),
        scheduler_host: host.to_string(),
        scheduler_port: port,
        work_dir: opts.work_dir.clone(),
        print_thread_info: false,
        override_runtime_producer: Some(Arc::new(move |_: &SessionConfig| runtime(stores.clone()))),
        override_logical_codec: Some(Arc::new(LogicalCodec::default())),
        override_physical_codec: Some(Arc::new(PhysicalCodec::default())),
        ..Default::default()
    };
    if let Some(n) = opts.concurrency {
        config.vcores = n;
    }
    config.memory_pool_size = opts.memory_limit;
    start_executor_process(Arc::new(config))
        .await
        .map_err(cluster_error)
}

fn cluster_error(e: ballista_core::error::BallistaError) -> Error {
    Error::Cluster {
        what: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheduler_is_reached_over_grpc_and_a_bad_url_is_the_users_to_fix() {
        assert_eq!(
            scheduler_url("df://scheduler:50050").unwrap(),
            "http://scheduler:50050"
        );
        let err = scheduler_url("http://scheduler:50050").unwrap_err();
        assert!(err.to_string().contains("df://host:port"), "{err}");
        assert_eq!(err.exit_code(), 1);
    }
}
