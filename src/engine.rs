//! The one DataFusion session factory used by the binary, the tests and the benchmarks.

mod lookup;

use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::config::ConfigOptions;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{
    FileGroup, FileScanConfig, FileScanConfigBuilder, ParquetSource,
};
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::ScalarUDF;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
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
        .with_physical_optimizer_rule(Arc::new(ScanRanges { most: SCAN_RANGE }))
        .with_physical_optimizer_rule(Arc::new(lookup::Lookups))
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

/// Cuts each Parquet scan's byte ranges to at most `most` bytes, every partition keeping its
/// files. In one process, a partition that has read its ranges reads the next range no other
/// has begun (DataFusion's file stream work stealing), so a scan's partitions end within a
/// range of each other rather than within a file: three files of a million rows on two
/// partitions had one of them read the third file alone, a third of the pass on one core.
#[derive(Debug)]
struct ScanRanges {
    most: u64,
}

/// The most bytes of a file one partition reads with no other able to take over: a few row
/// groups as `rerate sample` and AWS write them.
const SCAN_RANGE: u64 = 32 << 20;

impl PhysicalOptimizerRule for ScanRanges {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
        if !config.execution.enable_file_stream_work_stealing {
            return Ok(plan);
        }
        plan.transform_up(|node| {
            let Some(scan) = parquet_scan(node.as_ref()) else {
                return Ok(Transformed::no(node));
            };
            let groups = scan
                .file_groups
                .iter()
                .map(|group| {
                    let files = group.iter().flat_map(|file| cut(file, self.most));
                    FileGroup::new(files.collect())
                })
                .collect();
            let scan = FileScanConfigBuilder::from(scan.clone())
                .with_file_groups(groups)
                .build();
            Ok(Transformed::yes(DataSourceExec::from_data_source(scan) as _))
        })
        .data()
    }

    fn name(&self) -> &str {
        "scan_ranges"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `node`'s files, if it is a Parquet scan.
fn parquet_scan(node: &dyn ExecutionPlan) -> Option<&FileScanConfig> {
    node.downcast_ref::<DataSourceExec>()
        .and_then(|exec| exec.data_source().downcast_ref::<FileScanConfig>())
        .filter(|scan| scan.file_source().downcast_ref::<ParquetSource>().is_some())
}

/// `file`'s range in as few equal pieces as keep each within `most` bytes.
fn cut(file: &PartitionedFile, most: u64) -> Vec<PartitionedFile> {
    let (start, end) = file.range();
    let pieces = (end - start).div_ceil(most);
    if pieces <= 1 {
        return vec![file.clone()];
    }
    let step = (end - start).div_ceil(pieces);
    (start..end)
        .step_by(step as usize)
        .map(|from| {
            let to = (from + step).min(end);
            file.clone().with_range(from as i64, to as i64)
        })
        .collect()
}

/// Makes `location`'s store readable by queries over its URLs.
pub fn register(ctx: &SessionContext, location: &Location) {
    ctx.register_object_store(&location.root, Arc::clone(&location.store));
}

#[cfg(test)]
mod tests {
    use arrow::array::AsArray;
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

    #[tokio::test]
    async fn scans_read_every_row_once_in_ranges_of_at_most_the_limit() {
        // A file of 20 row groups of 1,000 rows, each row group some 8 KB.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("numbers.parquet");
        let schema = Arc::new(arrow::datatypes::Schema::new(vec![
            arrow::datatypes::Field::new("n", arrow::datatypes::DataType::Int64, false),
        ]));
        let properties = parquet::file::properties::WriterProperties::builder()
            .set_max_row_group_row_count(Some(1000))
            .set_dictionary_enabled(false)
            .build();
        let file = std::fs::File::create(&path).unwrap();
        let mut writer =
            parquet::arrow::ArrowWriter::try_new(file, schema.clone(), Some(properties)).unwrap();
        let numbers = arrow::array::Int64Array::from_iter_values(0..20_000);
        let batch = RecordBatch::try_new(schema, vec![Arc::new(numbers)]).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        let size = std::fs::metadata(&path).unwrap().len();

        let config = SessionConfig::new()
            .with_target_partitions(2)
            .with_repartition_file_min_size(0);
        let state = SessionStateBuilder::new()
            .with_default_features()
            .with_config(config)
            .with_physical_optimizer_rule(Arc::new(ScanRanges { most: 20_000 }))
            .build();
        let ctx = SessionContext::new_with_state(state);
        ctx.register_parquet("t", path.to_str().unwrap(), Default::default())
            .await
            .unwrap();
        let rows = ctx.sql("SELECT n FROM t").await.unwrap();
        let plan = rows.clone().create_physical_plan().await.unwrap();
        let mut ranges = Vec::new();
        plan.apply(|node| {
            if let Some(scan) = parquet_scan(node.as_ref()) {
                assert_eq!(scan.file_groups.len(), 2, "the partitions stay two");
                ranges.extend(
                    scan.file_groups
                        .iter()
                        .flat_map(|g| g.iter().map(|f| f.range())),
                );
            }
            Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
        })
        .unwrap();
        // The ranges cover the file end to end, none longer than the limit.
        ranges.sort();
        assert!(ranges.len() >= (size / 20_000) as usize, "{ranges:?}");
        assert!(ranges.iter().all(|(a, b)| b - a <= 20_000), "{ranges:?}");
        assert_eq!(ranges.first().map(|r| r.0), Some(0));
        assert_eq!(ranges.last().map(|r| r.1), Some(size));
        assert!(ranges.windows(2).all(|w| w[0].1 == w[1].0), "{ranges:?}");
        // Every row is read once.
        let mut read: Vec<i64> = rows
            .collect()
            .await
            .unwrap()
            .iter()
            .flat_map(|b| {
                let column = b.column(0).as_primitive::<arrow::datatypes::Int64Type>();
                column.values().to_vec()
            })
            .collect();
        read.sort_unstable();
        assert_eq!(read, (0..20_000).collect::<Vec<i64>>());
    }
}
