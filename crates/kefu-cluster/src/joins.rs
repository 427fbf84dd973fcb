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

use std::sync::Arc;

use datafusion::common::JoinType;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::config::ConfigOptions;
use datafusion::error::Result;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};

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

impl PhysicalOptimizerRule for BroadcastOnlyProbeAnswers {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(join) = node.downcast_ref::<HashJoinExec>() else {
                return Ok(Transformed::no(node));
            };
            // A null-aware anti join (NOT IN) needs the whole build side in one task;
            // Ballista runs it as one.
            if join.mode != PartitionMode::CollectLeft
                || join.null_aware
                || !answers_from_build_side(*join.join_type())
            {
                return Ok(Transformed::no(node));
            }
            let partitioned = join
                .builder()
                .with_partition_mode(PartitionMode::Partitioned)
                .build_exec()?;
            Ok(Transformed::yes(partitioned))
        })
        .data()
    }

    fn name(&self) -> &str {
        "kefu_broadcast_only_probe_answers"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `rules` with [`BroadcastOnlyProbeAnswers`] right after join selection (at the end when
/// there is none).
pub fn with_safe_broadcasts(
    mut rules: Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>>,
) -> Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>> {
    let after = rules
        .iter()
        .position(|rule| rule.name() == "join_selection")
        .map_or(rules.len(), |i| i + 1);
    rules.insert(after, Arc::new(BroadcastOnlyProbeAnswers));
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

    /// The physical plan of [`SMALL_LEFT_JOIN_BIG`] in `ctx`, as text.
    async fn planned(ctx: &SessionContext) -> String {
        let df = ctx.sql(SMALL_LEFT_JOIN_BIG).await.unwrap();
        let plan = df.create_physical_plan().await.unwrap();
        datafusion::physical_plan::displayable(plan.as_ref())
            .indent(false)
            .to_string()
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
        let before = planned(&ctx).await;
        assert!(
            before.contains("mode=CollectLeft, join_type=Left"),
            "{before}"
        );

        let state = datafusion::execution::session_state::SessionStateBuilder::new_from_existing(
            ctx.state(),
        )
        .with_physical_optimizer_rules(with_safe_broadcasts(
            ctx.state().physical_optimizers().to_vec(),
        ))
        .build();
        let after = planned(&SessionContext::new_with_state(state)).await;
        assert!(
            after.contains("mode=Partitioned, join_type=Left"),
            "{after}"
        );
        assert!(!after.contains("CollectLeft"), "{after}");
    }
}
