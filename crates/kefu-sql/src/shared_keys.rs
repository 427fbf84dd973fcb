//! One shuffle where two nest: an aggregate by customer and month under a window over
//! customers (`lag(tier) OVER (PARTITION BY customer_id ORDER BY month)`). DataFusion
//! places repartitions bottom up, so the aggregate's input is hash-partitioned by
//! (customer, month) and its output again by customer, for the window. Rows of one
//! (customer, month) group are all in one partition when the aggregate's input is
//! partitioned by customer alone, so [`ShuffleOnceOnSharedKeys`] partitions it that way
//! and drops the repartition above.
//!
//! Kefu's cluster sessions plan with it ([`with_shuffle_once_on_shared_keys`]); local
//! mode does not. On a cluster each repartition is a stage: its rows are written to
//! files, fetched by the next stage's tasks, and nothing of that stage starts before
//! the last task of the one below ends. On the two-executor benchmark (310 K
//! customers), `churn_tier_migration` went from 7 stages shuffling 15.9 M rows (0.46 GB)
//! to 5 stages shuffling 5.8 M (0.20 GB), 3.90 -> 3.63 s (means of 6, alternating). In
//! one process a repartition is a copy in memory, and the trade below did not pay there.
//!
//! The trade: the aggregate's parallelism becomes that of the keys above it (which the
//! operator above ran on already). Few distinct keys above narrow the aggregate below
//! them: a rank of customers within each of 12 months at a million customers, locally,
//! 6.5 -> 6.7 s at 1.29 -> 1.43 GB; on the cluster the same query was faster
//! (2.08 -> 1.71 s at 310 K customers), the stage saved outweighing the narrower
//! aggregate.

use std::sync::Arc;

use datafusion::common::Result;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::config::ConfigOptions;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::{ExecutionPlan, Partitioning};

/// Where a hash repartition sits above a partitioned aggregate (through operators that
/// keep their input's partitions) and hashes on a strict subset of the aggregate's group
/// keys, hashes the aggregate's input on that subset instead and removes the repartition
/// above. Runs right after DataFusion's `EnsureRequirements`, which in DataFusion 55
/// places the repartitions and the sorts in one pass: a sort between the two (kept
/// within its partitions) is passed through.
#[derive(Debug, Default)]
pub struct ShuffleOnceOnSharedKeys;

impl PhysicalOptimizerRule for ShuffleOnceOnSharedKeys {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            Ok(match shuffled_once(&node)? {
                Some(rewritten) => Transformed::yes(rewritten),
                None => Transformed::no(node),
            })
        })
        .data()
    }

    fn name(&self) -> &str {
        "kefu_shuffle_once_on_shared_keys"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// The operators above the new repartition hand its partitioning up.
const RECOMPUTED: ReplaceChildrenOptions =
    ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute);

/// `rules` with [`ShuffleOnceOnSharedKeys`] right after the repartitions and sorts are
/// placed (DataFusion's `EnsureRequirements`; at the end when there is none).
pub fn with_shuffle_once_on_shared_keys(
    mut rules: Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>>,
) -> Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>> {
    let after = crate::rules::index_after(&rules, "EnsureRequirements");
    rules.insert(after, Arc::new(ShuffleOnceOnSharedKeys));
    rules
}

/// `node`, a hash repartition over a partitioned aggregate on a superset of its keys,
/// as the operators between them over the aggregate partitioned on its keys; `None` for
/// any other shape.
fn shuffled_once(node: &Arc<dyn ExecutionPlan>) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let Some(outer) = node.downcast_ref::<RepartitionExec>() else {
        return Ok(None);
    };
    let Partitioning::Hash(outer_keys, partitions) = outer.partitioning() else {
        return Ok(None);
    };
    // The operators between, top down, and the outer keys as column indices of the
    // aggregate's output.
    let mut between = Vec::new();
    let mut below = Arc::clone(outer.input());
    let Some(mut columns) = outer_keys
        .iter()
        .map(|key| key.downcast_ref::<Column>().map(Column::index))
        .collect::<Option<Vec<_>>>()
    else {
        return Ok(None);
    };
    while !below.is::<AggregateExec>() {
        let Some(mapped) = columns_below(&below, &columns) else {
            return Ok(None);
        };
        columns = mapped;
        between.push(Arc::clone(&below));
        below = Arc::clone(below.children()[0]);
    }
    let Some(aggregate) = below.downcast_ref::<AggregateExec>() else {
        return Ok(None);
    };
    if !matches!(
        aggregate.mode(),
        AggregateMode::FinalPartitioned | AggregateMode::SinglePartitioned
    ) || !aggregate.group_expr().is_single()
    {
        return Ok(None);
    }
    let Some(inner) = aggregate.input().downcast_ref::<RepartitionExec>() else {
        return Ok(None);
    };
    let Partitioning::Hash(inner_keys, inner_partitions) = inner.partitioning() else {
        return Ok(None);
    };
    let groups = aggregate.group_expr().expr();
    let Some(shared_keys) = columns
        .iter()
        .map(|&index| groups.get(index).map(|(expr, _)| Arc::clone(expr)))
        .collect::<Option<Vec<Arc<dyn PhysicalExpr>>>>()
    else {
        return Ok(None);
    };
    let is_strict_subset = shared_keys.len() < inner_keys.len()
        && shared_keys
            .iter()
            .all(|key| inner_keys.iter().any(|inner_key| inner_key.eq(key)));
    if !is_strict_subset || inner_partitions != partitions {
        return Ok(None);
    }

    let mut repartition = RepartitionExec::try_new(
        Arc::clone(inner.input()),
        Partitioning::Hash(shared_keys, *partitions),
    )?;
    if inner.preserve_order() {
        repartition = repartition.with_preserve_order();
    }
    let mut rebuilt =
        Arc::clone(&below).replace_children(vec![Arc::new(repartition)], RECOMPUTED)?;
    for operator in between.into_iter().rev() {
        rebuilt = operator.replace_children(vec![rebuilt], RECOMPUTED)?;
    }
    // The operators between must hand the new partitioning up as the one the outer
    // repartition made; where they do not (an expression DataFusion cannot project), the
    // plan stays as it was.
    Ok((rebuilt.properties().partitioning == *outer.partitioning()).then_some(rebuilt))
}

/// `columns` of `plan`'s output as columns of its only input's output, where `plan`
/// keeps its input's partitions and passes each of those columns through unchanged.
fn columns_below(plan: &Arc<dyn ExecutionPlan>, columns: &[usize]) -> Option<Vec<usize>> {
    if let Some(projection) = plan.downcast_ref::<ProjectionExec>() {
        let exprs = projection.expr();
        return columns
            .iter()
            .map(|&index| {
                exprs
                    .get(index)?
                    .expr
                    .downcast_ref::<Column>()
                    .map(Column::index)
            })
            .collect();
    }
    if let Some(filter) = plan.downcast_ref::<FilterExec>() {
        return match filter.projection() {
            Some(projection) => columns
                .iter()
                .map(|&index| projection.get(index).copied())
                .collect(),
            None => Some(columns.to_vec()),
        };
    }
    plan.downcast_ref::<SortExec>()
        .is_some_and(SortExec::preserve_partitioning)
        .then(|| columns.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::util::pretty::pretty_format_batches;
    use datafusion::execution::session_state::SessionStateBuilder;
    use datafusion::prelude::{SessionConfig, SessionContext};

    /// Each customer's tier per month (the newest row's), and the tier of the month
    /// before: an aggregate by (customer, month) under a window over customers.
    const TIER_BEFORE: &str = "WITH seen AS (SELECT value % 97 AS customer, value % 5 AS month, \
                 value AS at, value % 3 AS tier FROM generate_series(1, 5000)), \
             monthly AS (SELECT customer, month, max(at * 10 + tier) % 10 AS tier FROM seen \
                 GROUP BY customer, month) \
             SELECT customer, month, tier, \
                 lag(tier) OVER (PARTITION BY customer ORDER BY month) AS tier_before \
             FROM monthly ORDER BY customer, month";

    /// `sql`'s physical plan and rows, as text, planned with this rule or without it.
    async fn planned_and_answered(sql: &str, with_rule: bool) -> (String, String) {
        let mut rules = datafusion::physical_optimizer::optimizer::PhysicalOptimizer::new().rules;
        if with_rule {
            rules = with_shuffle_once_on_shared_keys(rules);
        }
        let state = SessionStateBuilder::new()
            .with_config(
                SessionConfig::new()
                    .with_target_partitions(4)
                    .with_batch_size(64),
            )
            .with_default_features()
            .with_physical_optimizer_rules(rules)
            .build();
        let df = SessionContext::new_with_state(state)
            .sql(sql)
            .await
            .unwrap();
        let plan = datafusion::physical_plan::displayable(
            df.clone().create_physical_plan().await.unwrap().as_ref(),
        )
        .indent(false)
        .to_string();
        let rows = pretty_format_batches(&df.collect().await.unwrap())
            .unwrap()
            .to_string();
        (plan, rows)
    }

    /// Without the rule the monthly rows are hashed twice, by (customer, month) and then
    /// by customer; with it once, by customer, and the answer is the same.
    #[tokio::test]
    async fn an_aggregate_under_a_window_on_fewer_keys_is_shuffled_once() {
        let (before, expected) = planned_and_answered(TIER_BEFORE, false).await;
        assert!(
            before.contains("Hash([customer@0, month@1], 4)"),
            "{before}"
        );
        assert!(before.contains("Hash([customer@0], 4)"), "{before}");

        let (after, answer) = planned_and_answered(TIER_BEFORE, true).await;
        assert!(!after.contains("Hash([customer@0, month@1], 4)"), "{after}");
        assert_eq!(
            after.matches("RepartitionExec: partitioning=Hash").count(),
            1,
            "{after}"
        );
        assert_eq!(answer, expected);
        assert_eq!(answer.lines().count(), 97 * 5 + 4, "{answer}");
    }

    /// A window over a key the aggregate does not group by keeps its own repartition.
    #[tokio::test]
    async fn a_window_on_other_keys_keeps_its_shuffle() {
        let sql = "WITH monthly AS (SELECT value % 97 AS customer, value % 5 AS month, \
                       count(*) AS n FROM generate_series(1, 5000) GROUP BY 1, 2) \
                   SELECT month, n, sum(n) OVER (PARTITION BY n) FROM monthly ORDER BY 1, 2, 3";
        let (before, expected) = planned_and_answered(sql, false).await;
        let (after, answer) = planned_and_answered(sql, true).await;
        assert_eq!(after, before);
        assert_eq!(answer, expected);
    }
}
