//! What of ours crosses the wire between a Ballista client, its scheduler and executors:
//! the write pass (logical node and plan node), the small in-memory tables the job joins (the
//! config's tables, registered as `MemTable`s), and our scalar functions, found by name.
//! Everything else is DataFusion's and Ballista's own encoding, which ours wraps.
//!
//! Our encodings start with a tag of their own, so they are never mistaken for Ballista's
//! (whose decoders would read any bytes as a protobuf message).

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::{Arc, LazyLock};

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use ballista_core::serde::{BallistaLogicalExtensionCodec, BallistaPhysicalExtensionCodec};
use datafusion::catalog::TableProvider;
use datafusion::common::TableReference;
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::FileFormatFactory;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SessionStateBuilder, TaskContext};
use datafusion::logical_expr::{Extension, LogicalPlan, ScalarUDF};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::logical_plan::from_proto::parse_expr;
use datafusion_proto::logical_plan::to_proto::serialize_expr;
use datafusion_proto::physical_plan::from_proto::parse_physical_expr;
use datafusion_proto::physical_plan::to_proto::serialize_physical_expr;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use datafusion_proto::protobuf::{LogicalExprNode, PhysicalExprNode};
use prost::Message;

use super::node::{NodeSink, WriteTablesNode};
use crate::period::Period;
use crate::write::files::{Layout, WriteTablesExec};

const WRITE_NODE: &[u8] = b"rerate:write-tables:1\n";
const WRITE_EXEC: &[u8] = b"rerate:write-tables-exec:1\n";
const MEM_TABLE: &[u8] = b"rerate:mem-table:1\n";

/// Our scalar functions, and every one an in-process session has (Ballista's executors know
/// fewer: `array_element` and the other nested functions the job uses), by name: executors and
/// the scheduler find them here, so they need not be registered anywhere.
fn udf(name: &str) -> Option<Arc<ScalarUDF>> {
    static DATAFUSION: LazyLock<HashMap<String, Arc<ScalarUDF>>> = LazyLock::new(|| {
        SessionStateBuilder::new()
            .with_default_features()
            .build()
            .scalar_functions()
            .clone()
    });
    let ours = match name {
        "string_map" => ScalarUDF::from(crate::ingest::string_map::StringMap::default()),
        "decimal_text" => ScalarUDF::from(crate::ingest::decimal_text::DecimalText::default()),
        "focus_tags" => ScalarUDF::new_from_impl(crate::focus::FocusTags::default()),
        "blank_to_null" => ScalarUDF::from(crate::ingest::blank_text::BlankToNull::default()),
        "map_value" => ScalarUDF::from(crate::ingest::map_value::MapValue::default()),
        "line_item_key" => ScalarUDF::from(crate::ingest::line_item_key::LineItemKey::default()),
        _ => return DATAFUSION.get(name).cloned(),
    };
    Some(Arc::new(ours))
}

#[derive(Clone, PartialEq, Message)]
struct WriteNodeProto {
    #[prost(string, tag = "1")]
    period: String,
    #[prost(string, tag = "2")]
    write_id: String,
    #[prost(message, repeated, tag = "3")]
    sinks: Vec<NodeSinkProto>,
}

#[derive(Clone, PartialEq, Message)]
struct NodeSinkProto {
    #[prost(string, tag = "1")]
    table: String,
    #[prost(message, optional, tag = "2")]
    rows: Option<LogicalExprNode>,
    #[prost(message, repeated, tag = "3")]
    columns: Vec<LogicalExprNode>,
}

#[derive(Clone, PartialEq, Message)]
struct WriteExecProto {
    #[prost(message, repeated, tag = "1")]
    sinks: Vec<ExecSinkProto>,
}

#[derive(Clone, PartialEq, Message)]
struct ExecSinkProto {
    #[prost(string, tag = "1")]
    table: String,
    #[prost(string, tag = "2")]
    period: String,
    #[prost(string, tag = "3")]
    write_id: String,
    #[prost(message, optional, tag = "4")]
    rows: Option<PhysicalExprNode>,
    #[prost(message, repeated, tag = "5")]
    columns: Vec<PhysicalExprNode>,
    /// Arrow IPC stream of no rows: the table's schema.
    #[prost(bytes = "vec", tag = "6")]
    schema: Vec<u8>,
}

/// The client's and scheduler's: [`WriteTablesNode`], `MemTable`s, our functions.
#[derive(Debug, Default)]
pub struct LogicalCodec {
    ballista: BallistaLogicalExtensionCodec,
}

impl LogicalExtensionCodec for LogicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[LogicalPlan],
        ctx: &TaskContext,
    ) -> Result<Extension> {
        let Some(buf) = buf.strip_prefix(WRITE_NODE) else {
            return self.ballista.try_decode(buf, inputs, ctx);
        };
        let proto = WriteNodeProto::decode(buf).map_err(decode_error)?;
        let [input] = inputs else {
            return Err(DataFusionError::Internal(
                "WriteTables has one input".to_string(),
            ));
        };
        let sinks = proto
            .sinks
            .iter()
            .map(|s| {
                Ok(NodeSink {
                    table: s.table.clone(),
                    rows: s
                        .rows
                        .as_ref()
                        .map(|e| parse_expr(e, ctx, self))
                        .transpose()?,
                    columns: s
                        .columns
                        .iter()
                        .map(|e| parse_expr(e, ctx, self))
                        .collect::<std::result::Result<_, _>>()?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let node = WriteTablesNode::new(
            input.clone(),
            parse_period(&proto.period)?,
            proto.write_id,
            sinks,
        )?;
        Ok(Extension {
            node: Arc::new(node),
        })
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> Result<()> {
        let Some(node) = node.node.as_any().downcast_ref::<WriteTablesNode>() else {
            return self.ballista.try_encode(node, buf);
        };
        let sinks = node
            .sinks
            .iter()
            .map(|s| {
                Ok(NodeSinkProto {
                    table: s.table.clone(),
                    rows: s
                        .rows
                        .as_ref()
                        .map(|e| serialize_expr(e, self))
                        .transpose()?,
                    columns: s
                        .columns
                        .iter()
                        .map(|e| serialize_expr(e, self))
                        .collect::<std::result::Result<_, _>>()?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let proto = WriteNodeProto {
            period: node.period.to_string(),
            write_id: node.write_id.clone(),
            sinks,
        };
        buf.extend_from_slice(WRITE_NODE);
        proto.encode(buf).map_err(encode_error)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: SchemaRef,
        ctx: &TaskContext,
    ) -> Result<Arc<dyn TableProvider>> {
        let Some(buf) = buf.strip_prefix(MEM_TABLE) else {
            return self
                .ballista
                .try_decode_table_provider(buf, table_ref, schema, ctx);
        };
        let (_, batches) = from_ipc(buf)?;
        Ok(Arc::new(MemTable::try_new(schema, vec![batches])?))
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        let Some(table) = node.downcast_ref::<MemTable>() else {
            return self
                .ballista
                .try_encode_table_provider(table_ref, node, buf);
        };
        let mut batches = Vec::new();
        for partition in &table.batches {
            let partition = partition.try_read().map_err(|_| {
                DataFusionError::Internal(format!("table {table_ref} is being written"))
            })?;
            batches.extend(partition.iter().cloned());
        }
        buf.extend_from_slice(MEM_TABLE);
        buf.extend(to_ipc(&table.schema(), &batches)?);
        Ok(())
    }

    fn try_decode_file_format(
        &self,
        buf: &[u8],
        ctx: &TaskContext,
    ) -> Result<Arc<dyn FileFormatFactory>> {
        self.ballista.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(
        &self,
        buf: &mut Vec<u8>,
        node: Arc<dyn FileFormatFactory>,
    ) -> Result<()> {
        self.ballista.try_encode_file_format(buf, node)
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
        match udf(name) {
            Some(udf) => Ok(udf),
            None => self.ballista.try_decode_udf(name, buf),
        }
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.ballista.try_encode_udf(node, buf)
    }
}

/// The scheduler's and executors': [`WriteTablesExec`], our functions.
#[derive(Debug, Default)]
pub struct PhysicalCodec {
    ballista: BallistaPhysicalExtensionCodec,
}

impl PhysicalExtensionCodec for PhysicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let Some(buf) = buf.strip_prefix(WRITE_EXEC) else {
            return self.ballista.try_decode(buf, inputs, ctx, converter);
        };
        let proto = WriteExecProto::decode(buf).map_err(decode_error)?;
        let [input] = inputs else {
            return Err(DataFusionError::Internal(
                "WriteTablesExec has one input".to_string(),
            ));
        };
        let rows = input.schema();
        let mut layouts = Vec::with_capacity(proto.sinks.len());
        for s in &proto.sinks {
            let physical = |e: &PhysicalExprNode| parse_physical_expr(e, ctx, &rows, self);
            let (schema, _) = from_ipc(&s.schema)?;
            let layout = Layout::new(
                super::location(&s.table, &ctx.runtime_env())?,
                parse_period(&s.period)?,
                &s.write_id,
                s.rows.as_ref().map(physical).transpose()?,
                s.columns.iter().map(physical).collect::<Result<_>>()?,
                schema,
            )
            .map_err(|e| e.into_datafusion())?;
            layouts.push(layout);
        }
        Ok(Arc::new(WriteTablesExec::new(input.clone(), layouts)))
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        let Some(exec) = node.downcast_ref::<WriteTablesExec>() else {
            return self.ballista.try_encode(node, buf, converter);
        };
        let sinks = exec
            .layouts()
            .iter()
            .map(|layout| {
                Ok(ExecSinkProto {
                    table: layout.table().url().to_string(),
                    period: layout.period().to_string(),
                    write_id: layout.write_id().to_string(),
                    rows: layout
                        .rows()
                        .map(|e| serialize_physical_expr(e, self))
                        .transpose()?,
                    columns: layout
                        .columns()
                        .iter()
                        .map(|e| serialize_physical_expr(e, self))
                        .collect::<Result<_>>()?,
                    schema: to_ipc(layout.schema(), &[])?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        buf.extend_from_slice(WRITE_EXEC);
        WriteExecProto { sinks }.encode(buf).map_err(encode_error)
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
        match udf(name) {
            Some(udf) => Ok(udf),
            None => self.ballista.try_decode_udf(name, buf),
        }
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.ballista.try_encode_udf(node, buf)
    }
}

fn to_ipc(schema: &Schema, batches: &[RecordBatch]) -> Result<Vec<u8>> {
    let mut writer = StreamWriter::try_new(Vec::new(), schema)?;
    for batch in batches {
        writer.write(batch)?;
    }
    Ok(writer.into_inner()?)
}

fn from_ipc(bytes: &[u8]) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let reader = StreamReader::try_new(Cursor::new(bytes), None)?;
    let schema = reader.schema();
    let batches = reader.collect::<std::result::Result<Vec<_>, _>>()?;
    Ok((schema, batches))
}

fn parse_period(text: &str) -> Result<Period> {
    text.parse()
        .map_err(|_| DataFusionError::Internal(format!("not a billing period: {text}")))
}

fn decode_error(e: prost::DecodeError) -> DataFusionError {
    DataFusionError::Internal(format!("decoding a rerate plan node: {e}"))
}

fn encode_error(e: prost::EncodeError) -> DataFusionError {
    DataFusionError::Internal(format!("encoding a rerate plan node: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_functions_and_datafusions_are_found_by_name() {
        for name in [
            "string_map",
            "decimal_text",
            "focus_tags",
            "array_element",
            "upper",
        ] {
            assert_eq!(udf(name).unwrap().name(), name);
        }
        assert!(udf("no_such_function").is_none());
    }

    #[test]
    fn a_mem_table_crosses_the_wire_with_its_rows() {
        let batch = RecordBatch::try_from_iter([(
            "group",
            Arc::new(arrow::array::StringArray::from(vec!["acme", "globex"])) as _,
        )])
        .unwrap();
        let table = Arc::new(MemTable::try_new(batch.schema(), vec![vec![batch.clone()]]).unwrap());
        let codec = LogicalCodec::default();
        let mut buf = Vec::new();
        codec
            .try_encode_table_provider(&"groups".into(), table, &mut buf)
            .unwrap();
        let ctx = TaskContext::default();
        let decoded = codec
            .try_decode_table_provider(&buf, &"groups".into(), batch.schema(), &ctx)
            .unwrap();
        let decoded = decoded.downcast_ref::<MemTable>().unwrap();
        let rows = decoded.batches[0].try_read().unwrap().clone();
        assert_eq!(rows, vec![batch]);
    }
}
