//! The pass that writes tables ([`files::WriteTablesExec`]) as a logical plan node, so a
//! Ballista client can send it to the scheduler, which plans it ([`Planner`]) like any other.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::{DFSchema, DFSchemaRef};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::context::QueryPlanner;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{
    Expr, LogicalPlan, UserDefinedLogicalNode, UserDefinedLogicalNodeCore,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};

use crate::period::Period;
use crate::write::files::{self, WriteTablesExec};

/// One table of the pass, by its URL (the store is the planning session's).
#[derive(Debug, Clone)]
pub struct NodeSink {
    pub table: String,
    pub rows: Option<Expr>,
    pub columns: Vec<Expr>,
}

/// `input`'s rows written to the tables of `sinks`; yields a row per file written.
#[derive(Debug, Clone)]
pub struct WriteTablesNode {
    pub input: LogicalPlan,
    pub period: Period,
    pub write_id: String,
    pub sinks: Vec<NodeSink>,
    schema: DFSchemaRef,
}

impl WriteTablesNode {
    pub fn new(
        input: LogicalPlan,
        period: Period,
        write_id: String,
        sinks: Vec<NodeSink>,
    ) -> Result<WriteTablesNode> {
        let schema = Arc::new(DFSchema::try_from(files::files_schema())?);
        Ok(WriteTablesNode {
            input,
            period,
            write_id,
            sinks,
            schema,
        })
    }
}

// A write is the same write by its id.
impl PartialEq for WriteTablesNode {
    fn eq(&self, other: &Self) -> bool {
        self.write_id == other.write_id && self.input == other.input
    }
}

impl Eq for WriteTablesNode {}

impl Hash for WriteTablesNode {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.write_id.hash(state);
    }
}

impl PartialOrd for WriteTablesNode {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        self.write_id.partial_cmp(&other.write_id)
    }
}

impl UserDefinedLogicalNodeCore for WriteTablesNode {
    fn name(&self) -> &str {
        "WriteTables"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    /// Each sink's row filter (where it has one), then its columns.
    fn expressions(&self) -> Vec<Expr> {
        self.sinks
            .iter()
            .flat_map(|s| s.rows.iter().chain(&s.columns).cloned())
            .collect()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let tables: Vec<&str> = self.sinks.iter().map(|s| s.table.as_str()).collect();
        write!(
            f,
            "WriteTables: period={} tables=[{}]",
            self.period,
            tables.join(", ")
        )
    }

    fn with_exprs_and_inputs(&self, exprs: Vec<Expr>, inputs: Vec<LogicalPlan>) -> Result<Self> {
        let [input]: [LogicalPlan; 1] = inputs
            .try_into()
            .map_err(|_| DataFusionError::Internal("WriteTables has one input".to_string()))?;
        let mut exprs = exprs.into_iter();
        let mut sinks = Vec::with_capacity(self.sinks.len());
        for sink in &self.sinks {
            let rows = match sink.rows {
                Some(_) => exprs.next(),
                None => None,
            };
            let columns: Vec<Expr> = exprs.by_ref().take(sink.columns.len()).collect();
            if columns.len() != sink.columns.len() {
                return Err(DataFusionError::Internal(
                    "WriteTables given fewer expressions than it has".to_string(),
                ));
            }
            sinks.push(NodeSink {
                table: sink.table.clone(),
                rows,
                columns,
            });
        }
        WriteTablesNode::new(input, self.period, self.write_id.clone(), sinks)
    }
}

/// Plans [`WriteTablesNode`] as [`WriteTablesExec`], the tables' stores taken from the
/// planning session's registry.
#[derive(Debug)]
struct WritePlanner;

#[async_trait]
impl ExtensionPlanner for WritePlanner {
    async fn plan_extension(
        &self,
        planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        session: &dyn Session,
        planning_ctx: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(node) = node.as_any().downcast_ref::<WriteTablesNode>() else {
            return Ok(None);
        };
        let (Some(logical), Some(input)) = (logical_inputs.first(), physical_inputs.first()) else {
            return Err(DataFusionError::Internal(
                "WriteTables has one input".to_string(),
            ));
        };
        let rows = logical.schema();
        let mut layouts = Vec::with_capacity(node.sinks.len());
        for sink in &node.sinks {
            let layout = files::layout(
                super::location(&sink.table, session.runtime_env())?,
                sink.rows.as_ref(),
                &sink.columns,
                rows,
                &input.schema(),
                (node.period, &node.write_id),
                |e| planner.create_physical_expr(e, rows, session, planning_ctx),
            );
            layouts.push(layout.map_err(|e| e.into_datafusion())?);
        }
        Ok(Some(Arc::new(WriteTablesExec::new(input.clone(), layouts))))
    }
}

/// The scheduler's planner: DataFusion's, and [`WriteTablesNode`].
#[derive(Debug)]
pub(super) struct Planner;

#[async_trait]
impl QueryPlanner for Planner {
    async fn create_physical_plan(
        &self,
        plan: &LogicalPlan,
        session: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        DefaultPhysicalPlanner::with_extension_planners(vec![Arc::new(WritePlanner)])
            .create_physical_plan(plan, session)
            .await
    }
}
