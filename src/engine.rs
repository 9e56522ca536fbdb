//! The one DataFusion session factory used by the binary, the tests and the benchmarks.

use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::ScalarUDF;
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use deltalake::delta_datafusion::planner::DeltaPlanner;

use crate::config::EngineSettings;
use crate::error::Result;
use crate::ingest::map_value::MapValue;
use crate::storage::Location;

/// A session configured for CUR: INT96 read as UTC microseconds, plain `Utf8` strings (what
/// every notebook reader understands), decimals kept decimal. With a memory limit, joins,
/// aggregations and sorts share it fairly and spill to disk past their share.
pub fn new_context(settings: &EngineSettings) -> Result<SessionContext> {
    let mut config = SessionConfig::new()
        .with_information_schema(false)
        .with_batch_size(8192)
        .set_bool(
            "datafusion.execution.parquet.schema_force_view_types",
            false,
        )
        .set_bool("datafusion.sql_parser.map_string_types_to_utf8view", false)
        .set_str("datafusion.execution.parquet.coerce_int96", "us")
        .set_str("datafusion.execution.parquet.coerce_int96_tz", "UTC")
        .set_bool("datafusion.execution.parquet.pushdown_filters", false)
        // Every join here has a small side (config tables, per-key decisions): hold it whole
        // and stream the rows past it, instead of hash-repartitioning millions of wide rows.
        .set_bool("datafusion.optimizer.repartition_joins", false)
        .set_str("datafusion.execution.parquet.compression", "zstd(1)");
    config.options_mut().execution.target_partitions = match settings.target_partitions {
        Some(n) => n as usize,
        None => std::thread::available_parallelism().map_or(2, |n| n.get()),
    };
    let mut runtime = RuntimeEnvBuilder::new();
    if let Some(limit) = settings.memory_limit {
        runtime = runtime.with_memory_pool(Arc::new(FairSpillPool::new(limit as usize)));
    }
    if let Some(dir) = &settings.spill_dir {
        runtime = runtime.with_disk_manager_builder(
            DiskManagerBuilder::default().with_mode(DiskManagerMode::Directories(vec![dir.into()])),
        );
    }
    let runtime = runtime.build_arc()?;
    let state = SessionStateBuilder::new()
        .with_default_features()
        .with_config(config)
        .with_runtime_env(runtime)
        // Delta writes plan their own nodes (commit metrics, CDC): the planner must know them.
        .with_query_planner(DeltaPlanner::new())
        .build();
    let ctx = SessionContext::new_with_state(state);
    ctx.register_udf(ScalarUDF::from(MapValue::default()));
    Ok(ctx)
}

/// Runs `plan` (planned in a session of this process) to the end, on `cluster` if there is one
/// (a Ballista client, `crate::cluster::connect`): its rows.
pub async fn collect(
    cluster: Option<&SessionContext>,
    plan: DataFrame,
) -> Result<Vec<RecordBatch>> {
    Ok(match cluster {
        Some(cluster) => {
            cluster
                .execute_logical_plan(plan.into_unoptimized_plan())
                .await?
                .collect()
                .await?
        }
        None => plan.collect().await?,
    })
}

/// Makes `location`'s store readable by queries over its URLs.
pub fn register(ctx: &SessionContext, location: &Location) {
    ctx.register_object_store(&location.root, Arc::clone(&location.store));
}

#[cfg(test)]
mod tests {
    use datafusion::execution::memory_pool::MemoryLimit;

    use super::*;

    #[test]
    fn the_memory_limit_bounds_the_pool_and_partitions_follow_the_settings() {
        let ctx = new_context(&EngineSettings {
            memory_limit: Some(256 << 20),
            spill_dir: Some(std::env::temp_dir().display().to_string()),
            target_partitions: Some(3),
            cluster: None,
        })
        .unwrap();
        let pool = ctx.runtime_env().memory_pool.clone();
        assert!(matches!(pool.memory_limit(), MemoryLimit::Finite(n) if n == 256 << 20));
        assert_eq!(ctx.state().config().target_partitions(), 3);
        let unbounded = new_context(&EngineSettings::default()).unwrap();
        assert!(matches!(
            unbounded.runtime_env().memory_pool.memory_limit(),
            MemoryLimit::Infinite
        ));
    }
}
