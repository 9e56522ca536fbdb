//! The one DataFusion session factory used by the binary, the tests and the benchmarks.

use std::sync::Arc;

use datafusion::execution::SessionStateBuilder;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use deltalake::delta_datafusion::planner::DeltaPlanner;

use crate::error::Result;
use crate::storage::Location;

/// A session configured for CUR: INT96 read as UTC microseconds, plain `Utf8` strings (what
/// every notebook reader understands), decimals kept decimal.
pub fn new_context() -> Result<SessionContext> {
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
        .set_str("datafusion.execution.parquet.compression", "zstd(3)");
    config.options_mut().execution.target_partitions =
        std::thread::available_parallelism().map_or(2, |n| n.get());
    let runtime = RuntimeEnvBuilder::new().build_arc()?;
    let state = SessionStateBuilder::new()
        .with_default_features()
        .with_config(config)
        .with_runtime_env(runtime)
        // Delta writes plan their own nodes (commit metrics, CDC): the planner must know them.
        .with_query_planner(DeltaPlanner::new())
        .build();
    Ok(SessionContext::new_with_state(state))
}

/// Makes `location`'s store readable by queries over its URLs.
pub fn register(ctx: &SessionContext, location: &Location) {
    ctx.register_object_store(&location.root, Arc::clone(&location.store));
}
