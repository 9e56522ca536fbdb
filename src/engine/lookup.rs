//! Lookups: an inner join of many rows to a small side whose keys are unique, done as a lookup.
//!
//! The job joins every CUR row to the few thousand decisions made for it (`sql/rate.sql`) and
//! every pro forma row to its group's facts (`sql/focus.sql`): each row matches one row of the
//! small side. DataFusion's hash join makes no use of that. For every batch it compares each key
//! column of the candidate pairs (a `take` of the key on both sides, then an equality kernel,
//! per key: eleven keys in the rating join), then `take`s every column of the wide side by the
//! matched indices, a copy of each row that changes nothing when each row matches once.
//!
//! [`Lookups`] replaces such a join (inner, small side held whole, no filter, no limit) by a
//! [`LookupJoinExec`]. It encodes the small side's keys once in the row format
//! (`arrow::row`: one byte string per key tuple, equal strings for equal tuples, nulls
//! included), keyed in a hash map; each wide row's keys are encoded the same way and looked up.
//! The wide side's columns pass through untouched (filtered only if a row finds no match), and
//! the small side's are taken by the rows' matches. If the small side holds a key twice, the
//! node runs the hash join it replaced: the result is the join's, always.
//!
//! In-process only: cluster sessions plan on Ballista's scheduler, which knows no such node.

use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasherDefault;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, BooleanBufferBuilder, RecordBatch, UInt32Array};
use arrow::compute::{concat_batches, filter, take};
use arrow::datatypes::SchemaRef;
use arrow::row::{RowConverter, SortField};
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::common::{JoinType, NullEquality};
use datafusion::config::ConfigOptions;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, InputDistributionRequirements, PlanProperties,
    replace_children_if_necessary,
};
use futures::{StreamExt, TryStreamExt};
use tokio::sync::OnceCell;
use twox_hash::XxHash64;

/// The physical optimizer rule: every hash join that can be a lookup becomes one.
#[derive(Debug)]
pub(super) struct Lookups;

impl PhysicalOptimizerRule for Lookups {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| match LookupJoinExec::try_new(&node) {
            Some(lookup) => Ok(Transformed::yes(Arc::new(lookup) as _)),
            None => Ok(Transformed::no(node)),
        })
        .data()
    }

    fn name(&self) -> &str {
        "lookups"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// An inner hash join (build side collected whole) run as a lookup of each probe row's keys.
#[derive(Debug)]
pub(super) struct LookupJoinExec {
    /// The join replaced: its sides, keys, output and properties are this node's, and it runs
    /// instead when the build side's keys are not unique.
    join: Arc<dyn ExecutionPlan>,
    /// What the build side's rows made, the first partition to run collecting them.
    built: Arc<OnceCell<Built>>,
}

/// The build side's rows, collected once for every partition.
#[derive(Debug)]
enum Built {
    /// Unique keys: looked up.
    Lookup(Arc<Table>),
    /// A key twice: the hash join replaced, over the rows collected (a build side cannot run
    /// twice: its repartitions hand each partition's stream out once).
    Join(Arc<dyn ExecutionPlan>),
}

impl LookupJoinExec {
    /// `node` as a lookup, if it is a hash join one can replace.
    fn try_new(node: &Arc<dyn ExecutionPlan>) -> Option<LookupJoinExec> {
        let join = node.downcast_ref::<HashJoinExec>()?;
        let (build, probe) = (join.left().schema(), join.right().schema());
        let comparable = join.on().iter().all(|(b, p)| {
            match (b.data_type(&build), p.data_type(&probe)) {
                // Floats: the row format tells -0 from 0 and NaNs apart, equality does not.
                (Ok(b), Ok(p)) => {
                    b == p
                        && !b.is_floating()
                        && !b.is_nested()
                        && RowConverter::supports_fields(&[SortField::new(b)])
                }
                _ => false,
            }
        });
        let replaceable = *join.join_type() == JoinType::Inner
            && *join.partition_mode() == PartitionMode::CollectLeft
            && join.filter().is_none()
            && join.fetch().is_none()
            && !join.null_aware
            && !join.on().is_empty()
            && comparable;
        replaceable.then(|| LookupJoinExec {
            join: Arc::clone(node),
            built: Arc::default(),
        })
    }

    fn hash_join(&self) -> &HashJoinExec {
        self.join
            .downcast_ref::<HashJoinExec>()
            .expect("a lookup replaces a hash join")
    }
}

/// The build side, whole, and where each of its key tuples is.
#[derive(Debug)]
struct Table {
    rows: RecordBatch,
    keys: RowConverter,
    index: HashMap<Box<[u8]>, u32, BuildHasherDefault<XxHash64>>,
}

impl Table {
    /// `rows`'s lookup table by `on`, or `None` if two rows share a key tuple (or there are
    /// more than a `u32` indexes). With `nulls`
    /// [`NullEquality::NullEqualsNothing`], rows with a null key are left out: nothing matches
    /// them, and a probe row with a null key, encoded apart from every value, matches nothing.
    fn new(
        rows: &RecordBatch,
        on: &[Arc<dyn PhysicalExpr>],
        nulls: NullEquality,
    ) -> Result<Option<Table>> {
        let columns = evaluate(on, rows)?;
        let fields = columns
            .iter()
            .map(|c| SortField::new(c.data_type().clone()));
        let keys = RowConverter::new(fields.collect())?;
        let encoded = keys.convert_columns(&columns)?;
        let mut index = HashMap::with_capacity_and_hasher(rows.num_rows(), Default::default());
        for (i, key) in encoded.iter().enumerate() {
            let null = || columns.iter().any(|c| c.is_null(i));
            if nulls == NullEquality::NullEqualsNothing && null() {
                continue;
            }
            // Past u32 rows, or a key twice: the hash join.
            let Ok(at) = u32::try_from(i) else {
                return Ok(None);
            };
            if index.insert(Box::from(key.as_ref()), at).is_some() {
                return Ok(None);
            }
        }
        let rows = rows.clone();
        Ok(Some(Table { rows, keys, index }))
    }

    /// `probe`'s rows with their match's columns, as the join's output (`output`: where each
    /// output column is in build columns then probe columns).
    fn join(
        &self,
        probe: RecordBatch,
        on: &[Arc<dyn PhysicalExpr>],
        output: &[usize],
        schema: &SchemaRef,
    ) -> Result<RecordBatch> {
        let keys = self.keys.convert_columns(&evaluate(on, &probe)?)?;
        let mut matches = Vec::with_capacity(probe.num_rows());
        let mut matched = BooleanBufferBuilder::new(probe.num_rows());
        for key in keys.iter() {
            let found = self.index.get(key.as_ref());
            matched.append(found.is_some());
            matches.extend(found.copied());
        }
        let matches = UInt32Array::from(matches);
        let probe_columns: Vec<ArrayRef> = if matches.len() == probe.num_rows() {
            probe.columns().to_vec()
        } else {
            let matched = BooleanArray::new(matched.finish(), None);
            let kept = probe.columns().iter().map(|c| filter(c, &matched));
            kept.collect::<std::result::Result<_, _>>()?
        };
        let width = self.rows.num_columns();
        let columns = output.iter().map(|&i| match i.checked_sub(width) {
            Some(p) => Ok(Arc::clone(&probe_columns[p])),
            None => Ok(take(self.rows.column(i), &matches, None)?),
        });
        let columns = columns.collect::<Result<Vec<_>>>()?;
        let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(matches.len()));
        Ok(RecordBatch::try_new_with_options(
            Arc::clone(schema),
            columns,
            &options,
        )?)
    }
}

fn evaluate(exprs: &[Arc<dyn PhysicalExpr>], batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
    exprs
        .iter()
        .map(|e| e.evaluate(batch)?.into_array(batch.num_rows()))
        .collect()
}

impl DisplayAs for LookupJoinExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let on: Vec<String> = (self.hash_join().on().iter())
            .map(|(b, p)| format!("({b}, {p})"))
            .collect();
        write!(f, "LookupJoinExec: on=[{}]", on.join(", "))
    }
}

impl ExecutionPlan for LookupJoinExec {
    fn name(&self) -> &'static str {
        "LookupJoinExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.join.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        self.join.children()
    }

    fn input_distribution_requirements(&self) -> InputDistributionRequirements {
        self.join.input_distribution_requirements()
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        self.join.maintains_input_order()
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        self.join.benefits_from_input_partitioning()
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        self.join.apply_expressions(f)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let join = replace_children_if_necessary(Arc::clone(&self.join), children)?;
        Ok(Arc::new(LookupJoinExec {
            join,
            built: Arc::default(),
        }))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let join = self.hash_join();
        let (build, probe) = (Arc::clone(join.left()), Arc::clone(join.right()));
        let (build_on, probe_on): (Vec<_>, Vec<_>) = join.on().iter().cloned().unzip();
        let width = build.schema().fields().len() + probe.schema().fields().len();
        let output: Arc<[usize]> = match &join.projection {
            Some(projection) => Arc::clone(projection),
            None => (0..width).collect(),
        };
        let nulls = join.null_equality();
        let schema = self.schema();
        let (built, join) = (Arc::clone(&self.built), Arc::clone(&self.join));
        let rows = async move {
            let built = built.get_or_try_init(|| async {
                let build_schema = build.schema();
                let context = Arc::clone(&context);
                let batches = datafusion::physical_plan::collect(build, context).await?;
                let rows = concat_batches(&build_schema, &batches)?;
                Ok::<_, DataFusionError>(match Table::new(&rows, &build_on, nulls)? {
                    Some(table) => Built::Lookup(Arc::new(table)),
                    None => {
                        let rows =
                            MemorySourceConfig::try_new_exec(&[batches], build_schema, None)?;
                        let probe = Arc::clone(&probe);
                        Built::Join(replace_children_if_necessary(join, vec![rows, probe])?)
                    }
                })
            });
            let stream = match built.await? {
                Built::Lookup(table) => {
                    let table = Arc::clone(table);
                    let schema = Arc::clone(&schema);
                    probe
                        .execute(partition, context)?
                        .and_then(move |batch| {
                            let joined = table.join(batch, &probe_on, &output, &schema);
                            futures::future::ready(joined)
                        })
                        .boxed()
                }
                Built::Join(join) => join.execute(partition, context)?.boxed(),
            };
            Ok::<_, DataFusionError>(stream)
        };
        let rows = futures::stream::once(rows).try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.schema(), rows)))
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::util::pretty::pretty_format_batches;
    use datafusion::datasource::MemTable;
    use datafusion::prelude::{SessionConfig, SessionContext};

    use super::*;
    use crate::config::EngineSettings;

    fn table(rows: &[(Option<&str>, i64, &str)], partitions: usize) -> Arc<MemTable> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k1", DataType::Utf8, true),
            Field::new("k2", DataType::Int64, false),
            Field::new("v", DataType::Utf8, false),
        ]));
        let batch = |rows: &[(Option<&str>, i64, &str)]| {
            let k1 = StringArray::from_iter(rows.iter().map(|r| r.0));
            let k2 = Int64Array::from_iter_values(rows.iter().map(|r| r.1));
            let v = StringArray::from_iter_values(rows.iter().map(|r| r.2));
            let columns: Vec<ArrayRef> = vec![Arc::new(k1), Arc::new(k2), Arc::new(v)];
            RecordBatch::try_new(Arc::clone(&schema), columns).unwrap()
        };
        let chunk = rows.len().div_ceil(partitions);
        let parts = rows
            .chunks(chunk)
            .map(|c| c.chunks(100).map(batch).collect());
        Arc::new(MemTable::try_new(Arc::clone(&schema), parts.collect()).unwrap())
    }

    /// 3,000 wide rows: keys a/b/c/null by 0..3, a tenth of them keyed to nothing the small side
    /// has.
    fn wide() -> Vec<(Option<&'static str>, i64, &'static str)> {
        (0..3000)
            .map(|i| {
                let k1 = [Some("a"), Some("b"), Some("c"), None][i % 4];
                let k2 = if i % 10 == 0 { 99 } else { (i % 3) as i64 };
                (k1, k2, ["x", "y", "z"][i % 3])
            })
            .collect()
    }

    /// The rows of `sql` in a session with lookups and in one without, sorted, and whether the
    /// first planned a lookup.
    async fn both(small: Arc<MemTable>, sql: &str) -> (String, String, bool) {
        let run = async |ctx: SessionContext| {
            ctx.register_table("small", Arc::clone(&small) as _)
                .unwrap();
            ctx.register_table("wide", table(&wide(), 3)).unwrap();
            let df = ctx.sql(sql).await.unwrap();
            let plan = df.clone().create_physical_plan().await.unwrap();
            let mut lookups = 0;
            plan.apply(|node| {
                lookups += usize::from(node.downcast_ref::<LookupJoinExec>().is_some());
                Ok(TreeNodeRecursion::Continue)
            })
            .unwrap();
            let rows = datafusion::physical_plan::collect(plan, ctx.task_ctx()).await;
            let rows = pretty_format_batches(&rows.unwrap()).unwrap().to_string();
            let mut lines: Vec<&str> = rows.lines().collect();
            lines.sort_unstable();
            (lines.join("\n"), lookups)
        };
        let ours = crate::engine::new_context(&EngineSettings::default()).unwrap();
        let config = SessionConfig::new().set_bool("datafusion.optimizer.repartition_joins", false);
        let (rows, lookups) = run(ours).await;
        let (reference, none) = run(SessionContext::new_with_config(config)).await;
        assert_eq!(none, 0);
        (rows, reference, lookups == 1)
    }

    fn data_rows(rows: &str) -> usize {
        rows.lines().filter(|l| l.starts_with("| ")).count() - 1
    }

    #[tokio::test]
    async fn a_join_to_unique_keys_is_a_lookup_with_the_hash_joins_rows() {
        let small = || {
            let rows = [
                (Some("a"), 0, "A0"),
                (Some("a"), 1, "A1"),
                (Some("b"), 1, "B1"),
            ];
            table(
                &[&rows[..], &[(None, 2, "N2"), (Some("c"), 7, "C7")]].concat(),
                2,
            )
        };
        // IS NOT DISTINCT FROM: a null key is a key. The rows keyed (a,0), (a,1), (b,1) and
        // (null,2) match, but for those keyed 99.
        let not_distinct = "SELECT wide.v, small.v AS decided, wide.k2 FROM small JOIN wide \
             ON (wide.k1 IS NOT DISTINCT FROM small.k1) AND (wide.k2 IS NOT DISTINCT FROM small.k2)";
        let (rows, reference, lookup) = both(small(), not_distinct).await;
        assert!(lookup, "the join is a lookup");
        assert_eq!(rows, reference);
        let expected = (0..3000)
            .filter(|i| i % 10 != 0)
            .filter(|i| matches!((i % 4, i % 3), (0, 0) | (0, 1) | (1, 1) | (3, 2)))
            .count();
        assert_eq!(data_rows(&rows), expected);
        assert!(rows.contains("| N2 "), "the null key matched: {rows}");
        // `=`: a null key matches nothing.
        let equal = "SELECT small.v AS decided, wide.* FROM small JOIN wide \
             ON wide.k1 = small.k1 AND wide.k2 = small.k2";
        let (rows, reference, lookup) = both(small(), equal).await;
        assert!(lookup, "the join is a lookup");
        assert_eq!(rows, reference);
        assert!(!rows.contains("N2"), "a null key matched: {rows}");
        let expected = (0..3000)
            .filter(|i| i % 10 != 0)
            .filter(|i| matches!((i % 4, i % 3), (0, 0) | (0, 1) | (1, 1)))
            .count();
        assert_eq!(data_rows(&rows), expected);
    }

    #[tokio::test]
    async fn a_small_side_holding_a_key_twice_runs_the_hash_join() {
        let small = table(&[(Some("a"), 0, "first"), (Some("a"), 0, "second")], 1);
        let sql = "SELECT small.v, wide.v FROM small JOIN wide \
             ON wide.k1 = small.k1 AND wide.k2 = small.k2";
        let (rows, reference, lookup) = both(small, sql).await;
        assert!(lookup, "planned as a lookup, run as the join");
        assert_eq!(rows, reference);
        let a0 = (0..3000).filter(|i| i % 12 == 0 && i % 10 != 0).count();
        assert_eq!(a0, 200);
        let (first, second) = (
            rows.matches("first").count(),
            rows.matches("second").count(),
        );
        assert_eq!((first, second), (a0, a0));
    }
}
