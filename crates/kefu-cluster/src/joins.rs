//! Which joins may broadcast on a cluster. A collected (`CollectLeft`) hash join builds
//! its whole left side in every task that probes a part of the right side. That is
//! right for joins that answer from the probe side alone (inner, right, right semi,
//! right anti, right mark), and wrong for those that must also emit the build side's
//! unmatched or matched rows (left, full, left semi, left anti, left mark): in one
//! process DataFusion's tasks share which build rows were matched, but a cluster's tasks
//! do not, so each would emit them by what its own part matched (rows lost or repeated).
//! [`BroadcastOnlyProbeAnswers`] plans those joins partitioned instead, before DataFusion
//! places its repartitions. (Ballista 55 demotes them too, but only when it cuts the plan
//! into stages, after the repartitions were placed; with that alone, `agents_ranking` on
//! a two-executor cluster lost a region's rows.)
//!
//! The other way round, [`BroadcastSmallBuildSide`] collects the build side of a join
//! that may broadcast, where Ballista would broadcast it, before the probe side is
//! planned for a shuffle it then does not need.

use std::sync::Arc;

use ballista_core::config::BallistaConfig;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::JoinType;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::config::ConfigOptions;
use datafusion::error::Result;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};
use datafusion::physical_plan::{ExecutionPlan, StatisticsArgs, StatisticsContext};

/// Runs right after DataFusion's join selection, which collects a small build side
/// whatever the join type; before the distribution is enforced, which then hash-partitions
/// both sides of the joins this rule made partitioned.
#[derive(Debug, Default)]
pub struct BroadcastOnlyProbeAnswers;

/// Whether a join emits rows of its build (left) side by what the whole probe side
/// matched.
fn answers_from_build_side(join_type: JoinType) -> bool {
    matches!(
        join_type,
        JoinType::Left
            | JoinType::Full
            | JoinType::LeftSemi
            | JoinType::LeftAnti
            | JoinType::LeftMark
    )
}

/// `plan` with each hash join that `chosen` picks planned in `mode`.
fn planned_as(
    plan: Arc<dyn ExecutionPlan>,
    mode: PartitionMode,
    chosen: impl Fn(&HashJoinExec) -> bool,
) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| match node.downcast_ref::<HashJoinExec>() {
        Some(join) if chosen(join) => Ok(Transformed::yes(
            join.builder().with_partition_mode(mode).build_exec()?,
        )),
        _ => Ok(Transformed::no(node)),
    })
    .data()
}

impl PhysicalOptimizerRule for BroadcastOnlyProbeAnswers {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // A null-aware anti join (NOT IN) needs the whole build side in one task;
        // Ballista runs it as one.
        planned_as(plan, PartitionMode::Partitioned, |join| {
            join.mode == PartitionMode::CollectLeft
                && !join.null_aware
                && answers_from_build_side(*join.join_type())
        })
    }

    fn name(&self) -> &str {
        "kefu_broadcast_only_probe_answers"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Collects the build side of a partitioned join that answers from its probe side alone
/// when Ballista would broadcast it anyway: its estimated size is under
/// `ballista.optimizer.broadcast_join_threshold_bytes`, estimated as Ballista does.
/// Ballista's static planner makes that choice only when it cuts the plan into stages,
/// after the probe side's repartition was placed, so the probe side was shuffled for a
/// join that no longer needed it (`agents_ranking` shuffled 6.8 M calls to join 192 K
/// callbacks, and a second stage re-shuffled the callbacks to broadcast them). Chosen
/// here, before the repartitions are placed, the probe side stays where it was read.
#[derive(Debug, Default)]
pub struct BroadcastSmallBuildSide;

/// Ballista's size estimate of `plan`'s output, from the planner's statistics: their
/// byte size, else rows times a width per column (32 bytes for variable-length types).
fn estimated_bytes(plan: &Arc<dyn ExecutionPlan>) -> Option<usize> {
    let statistics = StatisticsContext::new()
        .compute(plan.as_ref(), &StatisticsArgs::new())
        .ok()?;
    if let Some(&bytes) = statistics.total_byte_size.get_value()
        && bytes != 0
    {
        return Some(bytes);
    }
    let rows = *statistics.num_rows.get_value()?;
    if rows == 0 {
        return None;
    }
    let row_width: usize = plan
        .schema()
        .fields()
        .iter()
        .map(|field| match field.data_type() {
            DataType::Boolean | DataType::Int8 | DataType::UInt8 => 1,
            DataType::Int16 | DataType::UInt16 => 2,
            DataType::Int32 | DataType::UInt32 | DataType::Float32 | DataType::Date32 => 4,
            DataType::Int64 | DataType::UInt64 | DataType::Float64 | DataType::Date64 => 8,
            DataType::Decimal128(_, _) => 16,
            _ => 32,
        })
        .sum();
    Some(rows.saturating_mul(row_width.max(8)))
}

impl PhysicalOptimizerRule for BroadcastSmallBuildSide {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let threshold = config
            .extensions
            .get::<BallistaConfig>()
            .cloned()
            .unwrap_or_default()
            .broadcast_join_threshold_bytes();
        if threshold == 0 {
            return Ok(plan);
        }
        planned_as(plan, PartitionMode::CollectLeft, |join| {
            join.mode == PartitionMode::Partitioned
                && !join.null_aware
                && !answers_from_build_side(*join.join_type())
                && estimated_bytes(join.left()).is_some_and(|bytes| bytes < threshold)
        })
    }

    fn name(&self) -> &str {
        "kefu_broadcast_small_build_side"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `rules` with [`BroadcastOnlyProbeAnswers`] and [`BroadcastSmallBuildSide`] right after
/// join selection (at the end when there is none).
pub fn with_safe_broadcasts(
    mut rules: Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>>,
) -> Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>> {
    let after = kefu_sql::rules::index_after(&rules, "join_selection");
    rules.insert(after, Arc::new(BroadcastOnlyProbeAnswers));
    rules.insert(after + 1, Arc::new(BroadcastSmallBuildSide));
    rules
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    #[test]
    fn only_joins_answering_from_the_build_side_are_partitioned() {
        for join_type in [
            JoinType::Left,
            JoinType::Full,
            JoinType::LeftSemi,
            JoinType::LeftAnti,
            JoinType::LeftMark,
        ] {
            assert!(answers_from_build_side(join_type), "{join_type}");
        }
        for join_type in [
            JoinType::Inner,
            JoinType::Right,
            JoinType::RightSemi,
            JoinType::RightAnti,
            JoinType::RightMark,
        ] {
            assert!(!answers_from_build_side(join_type), "{join_type}");
        }
    }

    const SMALL_LEFT_JOIN_BIG: &str =
        "SELECT s.k, count(b.k) FROM small s LEFT JOIN big b ON b.k = s.k GROUP BY s.k";

    /// The physical plan of `query` in `ctx`, as text.
    async fn planned(ctx: &SessionContext, query: &str) -> String {
        let df = ctx.sql(query).await.unwrap();
        let plan = df.create_physical_plan().await.unwrap();
        datafusion::physical_plan::displayable(plan.as_ref())
            .indent(false)
            .to_string()
    }

    /// `ctx`'s session with its physical rules passed through [`with_safe_broadcasts`], as
    /// the scheduler's are.
    fn with_cluster_rules(ctx: &SessionContext) -> SessionContext {
        let state = datafusion::execution::session_state::SessionStateBuilder::new_from_existing(
            ctx.state(),
        )
        .with_physical_optimizer_rules(with_safe_broadcasts(
            ctx.state().physical_optimizers().to_vec(),
        ))
        .build();
        SessionContext::new_with_state(state)
    }

    /// A small table left-joined to a larger one: local planning collects the small side
    /// (a left join, so it answers from the build side); the rule partitions it, and the
    /// plan then hash-partitions both sides.
    #[tokio::test]
    async fn a_collected_left_join_becomes_partitioned() {
        let ctx = SessionContext::new_with_config(
            datafusion::prelude::SessionConfig::new().with_target_partitions(4),
        );
        ctx.sql("CREATE TABLE small (k INT) AS VALUES (1), (2)")
            .await
            .unwrap();
        ctx.sql("CREATE TABLE big (k INT) AS SELECT value FROM generate_series(1, 10000)")
            .await
            .unwrap();
        let before = planned(&ctx, SMALL_LEFT_JOIN_BIG).await;
        assert!(
            before.contains("mode=CollectLeft, join_type=Left"),
            "{before}"
        );

        let after = planned(&with_cluster_rules(&ctx), SMALL_LEFT_JOIN_BIG).await;
        assert!(
            after.contains("mode=Partitioned, join_type=Left"),
            "{after}"
        );
        assert!(!after.contains("CollectLeft"), "{after}");
    }

    /// An inner join of `build_rows` keys with 100,000, on 4 partitions, as planned with
    /// [`BroadcastSmallBuildSide`] after a join selection that collects nothing, and a
    /// broadcast threshold of 10 KB.
    async fn inner_join_planned(build_rows: usize) -> String {
        let mut config = datafusion::prelude::SessionConfig::new()
            .with_target_partitions(4)
            .with_option_extension(BallistaConfig::default());
        let options = config.options_mut();
        options.optimizer.hash_join_single_partition_threshold = 0;
        options.optimizer.hash_join_single_partition_threshold_rows = 0;
        options
            .set("ballista.optimizer.broadcast_join_threshold_bytes", "10000")
            .unwrap();
        let ctx = SessionContext::new_with_config(config);
        ctx.sql(&format!(
            "CREATE TABLE small (k INT) AS SELECT value FROM generate_series(1, {build_rows})"
        ))
        .await
        .unwrap();
        ctx.sql("CREATE TABLE big (k INT) AS SELECT value FROM generate_series(1, 100000)")
            .await
            .unwrap();
        let query = "SELECT count(*) FROM small s JOIN big b ON b.k = s.k";
        let before = planned(&ctx, query).await;
        assert!(before.contains("mode=Partitioned"), "{before}");

        planned(&with_cluster_rules(&ctx), query).await
    }

    /// 100 keys are under the broadcast threshold: collected, and the probe side is not
    /// repartitioned. 50,000 keys are over it: partitioned, both sides repartitioned.
    #[tokio::test]
    async fn a_build_side_ballista_would_broadcast_is_collected_before_repartitioning() {
        let small = inner_join_planned(100).await;
        assert!(
            small.contains("mode=CollectLeft, join_type=Inner"),
            "{small}"
        );
        assert!(!small.contains("Hash([k@0], 4)"), "{small}");

        let large = inner_join_planned(50_000).await;
        assert!(
            large.contains("mode=Partitioned, join_type=Inner"),
            "{large}"
        );
        assert!(large.contains("Hash([k@0], 4)"), "{large}");
    }
}
