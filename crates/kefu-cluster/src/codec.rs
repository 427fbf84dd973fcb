//! Plan codecs that carry `business_seconds`' working calendar from the client to the
//! scheduler and on to the executors. Ballista sends functions by name, and an executor
//! would otherwise count working time under its own default calendar, not the one the
//! client was given (`--calendar`): the same query would answer differently on a cluster.
//! Warehouse tables travel with their snapshot: the Delta version and the files the client
//! planned against (`kefu_sql::snapshot::SnapshotTable`), so the scheduler plans the scan of
//! exactly those files, and the deletion vectors of those files travel with the scan to
//! the executors. kefu's own operators (band joins, shift windows) travel as the DataFusion
//! operators they replace, and are derived again where they arrive. Everything else is
//! Ballista's own codec.

use std::sync::Arc;

use ballista_core::serde::{BallistaLogicalExtensionCodec, BallistaPhysicalExtensionCodec};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::{DataFusionError, Result, TableReference};
use datafusion::datasource::TableProvider;
use datafusion::datasource::file_format::FileFormatFactory;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Extension, LogicalPlan, ScalarUDF};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::bytes::{
    physical_plan_from_bytes_with_proto_converter, physical_plan_to_bytes_with_proto_converter,
};
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use kefu_sql::band_join::BandJoinExec;
use kefu_sql::shift_window::ShiftWindowExec;
use kefu_sql::snapshot::{DeletionVectorsExec, SnapshotTable};
use kefu_sql::udf::{WorkingCalendar, business_seconds, calendar_of, local_functions, zone_of};

/// Marks an encoded warehouse table (Ballista's own encodings never start with it).
const SNAPSHOT_TAG: &[u8] = b"kefu-snapshot:";
/// Marks the deletion vectors that travel above a scan ([`DeletionVectorsExec`]).
const DELETIONS_TAG: &[u8] = b"kefu-deletions:";
/// Marks kefu's operators, sent as the DataFusion operators they replace
/// ([`BandJoinExec`], [`ShiftWindowExec`]).
const BAND_JOIN_TAG: &[u8] = b"kefu-band-join:";
const SHIFT_WINDOW_TAG: &[u8] = b"kefu-shift-window:";

/// `business_seconds` with its calendar as TOML, the `local_*` functions with their zone
/// (the warehouse's calendar); other functions by name only.
fn encode_function(function: &ScalarUDF, buf: &mut Vec<u8>) {
    if let Some(calendar) = calendar_of(function) {
        buf.extend_from_slice(calendar.to_toml().as_bytes());
    } else if let Some(zone) = zone_of(function) {
        buf.extend_from_slice(zone.name().as_bytes());
    }
}

fn decode_function(name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
    if name.starts_with("local_") && !buf.is_empty() {
        let zone: chrono_tz::Tz = std::str::from_utf8(buf)
            .ok()
            .and_then(|z| z.parse().ok())
            .ok_or_else(|| DataFusionError::Internal(format!("{name}: not a time zone")))?;
        return local_functions(zone)
            .into_iter()
            .find(|f| f.name() == name)
            .map(Arc::new)
            .ok_or_else(|| DataFusionError::Internal(format!("no function {name}")));
    }
    if name != "business_seconds" {
        return Err(DataFusionError::NotImplemented(format!(
            "no definition is sent for function {name}; it comes from the registry"
        )));
    }
    let calendar = std::str::from_utf8(buf)
        .map_err(|e| DataFusionError::Internal(format!("business_seconds calendar: {e}")))
        .and_then(|text| {
            WorkingCalendar::from_toml(text)
                .map_err(|e| DataFusionError::Internal(format!("business_seconds calendar: {e}")))
        })?;
    Ok(Arc::new(business_seconds(calendar)))
}

/// Ballista's logical codec, with kefu's function definitions.
#[derive(Debug, Default)]
pub struct KefuLogicalCodec {
    ballista: BallistaLogicalExtensionCodec,
}

impl LogicalExtensionCodec for KefuLogicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[LogicalPlan],
        ctx: &TaskContext,
    ) -> Result<Extension> {
        self.ballista.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> Result<()> {
        self.ballista.try_encode(node, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: SchemaRef,
        ctx: &TaskContext,
    ) -> Result<Arc<dyn TableProvider>> {
        match buf.strip_prefix(SNAPSHOT_TAG) {
            Some(snapshot) => Ok(Arc::new(SnapshotTable::from_bytes(snapshot)?)),
            None => self
                .ballista
                .try_decode_table_provider(buf, table_ref, schema, ctx),
        }
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        let any: &dyn std::any::Any = node.as_ref();
        match any.downcast_ref::<SnapshotTable>() {
            Some(snapshot) => {
                buf.extend_from_slice(SNAPSHOT_TAG);
                buf.extend_from_slice(&snapshot.to_bytes());
                Ok(())
            }
            None => self
                .ballista
                .try_encode_table_provider(table_ref, node, buf),
        }
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
        decode_function(name, buf)
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
        encode_function(node, buf);
        Ok(())
    }
}

/// Ballista's physical codec (shuffles and its other operators), with kefu's function
/// definitions.
#[derive(Debug, Default)]
pub struct KefuPhysicalCodec {
    ballista: BallistaPhysicalExtensionCodec,
}

impl PhysicalExtensionCodec for KefuPhysicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if let Some(bytes) = buf.strip_prefix(DELETIONS_TAG) {
            let [input] = inputs else {
                return Err(DataFusionError::Internal(format!(
                    "DeletionVectorsExec takes one input, not {}",
                    inputs.len()
                )));
            };
            return Ok(Arc::new(DeletionVectorsExec::from_bytes(
                bytes,
                input.clone(),
            )?));
        }
        if let Some(bytes) = buf.strip_prefix(BAND_JOIN_TAG) {
            let template =
                physical_plan_from_bytes_with_proto_converter(bytes, ctx, self, proto_converter)?;
            return BandJoinExec::from_template(&template, inputs.to_vec());
        }
        if let Some(bytes) = buf.strip_prefix(SHIFT_WINDOW_TAG) {
            let template =
                physical_plan_from_bytes_with_proto_converter(bytes, ctx, self, proto_converter)?;
            return ShiftWindowExec::from_template(&template, inputs.to_vec());
        }
        self.ballista.try_decode(buf, inputs, ctx, proto_converter)
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        if let Some(exec) = node.downcast_ref::<DeletionVectorsExec>() {
            buf.extend_from_slice(DELETIONS_TAG);
            buf.extend_from_slice(&exec.to_bytes());
            return Ok(());
        }
        let template = if let Some(exec) = node.downcast_ref::<BandJoinExec>() {
            Some((BAND_JOIN_TAG, exec.template()?))
        } else if let Some(exec) = node.downcast_ref::<ShiftWindowExec>() {
            Some((SHIFT_WINDOW_TAG, exec.template()?))
        } else {
            None
        };
        if let Some((tag, template)) = template {
            buf.extend_from_slice(tag);
            buf.extend_from_slice(&physical_plan_to_bytes_with_proto_converter(
                template,
                self,
                proto_converter,
            )?);
            return Ok(());
        }
        self.ballista.try_encode(node, buf, proto_converter)
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
        decode_function(name, buf)
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
        encode_function(node, buf);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn business_seconds_travels_with_its_calendar_and_other_functions_by_name() {
        let calendar = WorkingCalendar::from_toml(
            "hours = [\"08:30-17:30\"]\nweekdays = [1, 2, 3, 4, 5, 6]\nholidays = [\"2026-10-01\"]",
        )
        .unwrap();
        let codec = KefuPhysicalCodec::default();
        let mut buf = Vec::new();
        codec
            .try_encode_udf(&business_seconds(calendar.clone()), &mut buf)
            .unwrap();
        let decoded = codec.try_decode_udf("business_seconds", &buf).unwrap();
        assert_eq!(calendar_of(&decoded), Some(&calendar));

        // The local functions travel with the warehouse's zone.
        let mut local = Vec::new();
        let ctx = datafusion::prelude::SessionContext::new();
        let london = chrono_tz::Europe::London;
        kefu_sql::udf::register(&ctx, &WorkingCalendar::default(), london);
        let local_trunc = ctx.state().scalar_functions()["local_trunc"].clone();
        KefuLogicalCodec::default()
            .try_encode_udf(&local_trunc, &mut local)
            .unwrap();
        assert_eq!(local, b"Europe/London");
        let decoded = KefuLogicalCodec::default()
            .try_decode_udf("local_trunc", &local)
            .unwrap();
        assert_eq!(zone_of(&decoded), Some(london));
        // Others by name, found in the registry.
        let mut other = Vec::new();
        let period_start = ctx.state().scalar_functions()["period_start"].clone();
        KefuLogicalCodec::default()
            .try_encode_udf(&period_start, &mut other)
            .unwrap();
        assert!(other.is_empty(), "sent by name, found in the registry");
    }

    /// Band joins and shift windows reach the executors as such, and answer there as
    /// they do where they were planned.
    #[tokio::test]
    async fn kefus_operators_travel_as_what_they_replace() {
        use datafusion::execution::session_state::SessionStateBuilder;
        use datafusion::physical_plan::{collect, displayable};
        use datafusion::prelude::SessionContext;
        use datafusion_proto::bytes::{
            physical_plan_from_bytes_with_extension_codec,
            physical_plan_to_bytes_with_extension_codec,
        };

        let state = SessionStateBuilder::new()
            .with_default_features()
            .with_physical_optimizer_rules(kefu_sql::rules::physical_rules())
            .build();
        let ctx = SessionContext::new_with_state(state);
        let sql = "WITH a AS (SELECT column1 AS k, column2 AS t FROM (VALUES \
                       ('x', 1), ('x', 4), ('y', 2), ('x', 9))), \
                   b AS (SELECT column1 AS k, column2 AS t FROM (VALUES \
                       ('x', 2), ('x', 5), ('y', 3), ('y', 8))), \
                   pairs AS (SELECT a.k, a.t AS at, b.t AS bt FROM a JOIN b \
                       ON a.k = b.k AND b.t > a.t AND b.t <= a.t + 3) \
                   SELECT k, at, bt, lead(bt) OVER (PARTITION BY k ORDER BY at, bt) AS next \
                   FROM pairs ORDER BY k, at, bt";
        let plan = ctx
            .sql(sql)
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
        let shown = displayable(plan.as_ref()).indent(false).to_string();
        assert!(shown.contains("BandJoinExec"), "{shown}");
        assert!(shown.contains("ShiftWindowExec"), "{shown}");

        let codec = KefuPhysicalCodec::default();
        let bytes = physical_plan_to_bytes_with_extension_codec(plan.clone(), &codec).unwrap();
        let decoded =
            physical_plan_from_bytes_with_extension_codec(&bytes, &ctx.task_ctx(), &codec).unwrap();
        let arrived = displayable(decoded.as_ref()).indent(false).to_string();
        assert_eq!(arrived, shown);
        let answer = |plan| {
            let ctx = ctx.task_ctx();
            async move {
                let batches = collect(plan, ctx).await.unwrap();
                datafusion::arrow::util::pretty::pretty_format_batches(&batches)
                    .unwrap()
                    .to_string()
            }
        };
        // x: 1 → 2 (then 4 → 5), 4 → 5; y: 2 → 3.
        let expected = "+---+----+----+------+\n\
                        | k | at | bt | next |\n\
                        +---+----+----+------+\n\
                        | x | 1  | 2  | 5    |\n\
                        | x | 4  | 5  |      |\n\
                        | y | 2  | 3  |      |\n\
                        +---+----+----+------+";
        assert_eq!(answer(plan).await, expected);
        assert_eq!(answer(decoded).await, expected);
    }

    /// A plan far deeper than prost's default limit of 100 nested messages decodes (see
    /// the `no-recursion-limit` feature in Cargo.toml).
    #[tokio::test]
    async fn a_deep_plan_decodes() {
        use datafusion_proto::bytes::logical_plan_to_bytes;
        use datafusion_proto::protobuf::LogicalPlanNode;
        use prost::Message;

        let ctes: Vec<String> = (1..=40)
            .map(|i| format!("c{i} AS (SELECT x + 1 AS x FROM c{})", i - 1))
            .collect();
        let sql = format!(
            "WITH c0 AS (SELECT 1 AS x), {} SELECT x FROM c40",
            ctes.join(", ")
        );
        let ctx = datafusion::prelude::SessionContext::new();
        let plan = ctx.sql(&sql).await.unwrap().into_unoptimized_plan();
        let bytes = logical_plan_to_bytes(&plan).unwrap();
        let decoded = LogicalPlanNode::decode(bytes.as_ref());
        assert!(decoded.is_ok(), "{:?}", decoded.err());
    }
}
