//! Plan rewrites kefu adds to DataFusion's optimizer: each gives the same answer as the
//! plan it replaces, faster on the shapes analysts write.

use std::sync::Arc;

use arrow::datatypes::{DataType, IntervalDayTime, IntervalMonthDayNano, TimeUnit};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result, ScalarValue};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{BinaryExpr, Cast, Expr, ExprSchemable, LogicalPlan, Operator};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::{ExecutionPlan, Partitioning};

/// `ts ± INTERVAL '7 days'` as `ts ± 7 × 86,400 s` where the two are equal: a timestamp
/// without a zone, in UTC or at a fixed offset, and an interval of days and time but no
/// months. Arrow adds an interval to a zoned timestamp value by value through the calendar
/// (about 75 ns a row); a duration is a vectorised add. Measured on 10 M calls:
/// `count(*) WHERE ivr_entered_at + INTERVAL '1 day' > ended_at` 0.93 s, as a duration
/// 0.22 s. Zones with daylight saving keep the calendar's arithmetic (a day is not always
/// 24 hours there).
pub const INTERVALS_AS_DURATIONS: ExpressionRule = ExpressionRule {
    name: "kefu_intervals_as_durations",
    rewrite: as_duration,
};

/// `extract(hour FROM ts)` (any `date_part`) on a UTC timestamp as the same on the
/// timestamp without its zone, where every field reads the same. Arrow looks the zone's
/// offset up value by value (measured on 10 M calls: an hour × weekday matrix 0.60 s, 0.33 s
/// without the zone; half of its CPU was chrono's offset lookups).
pub const UTC_FIELDS_WITHOUT_ZONE: ExpressionRule = ExpressionRule {
    name: "kefu_utc_fields_without_zone",
    rewrite: field_without_zone,
};

/// A logical rule that rewrites each expression of every plan node bottom up, keeping
/// the output's column names.
#[derive(Debug, Clone, Copy)]
pub struct ExpressionRule {
    name: &'static str,
    rewrite: fn(Expr, &DFSchema) -> Result<Transformed<Expr>>,
}

impl OptimizerRule for ExpressionRule {
    fn name(&self) -> &str {
        self.name
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        // A scan's pushed-down filters only prune (their originals stay above the scan).
        if plan.inputs().is_empty() {
            return Ok(Transformed::no(plan));
        }
        let schema = merge_schema(&plan.inputs());
        // The output's column names must not change with the expressions' spelling.
        let names = NamePreserver::new(&plan);
        plan.map_expressions(|expr| {
            let name = names.save(&expr);
            let rewritten = expr.transform_up(|e| (self.rewrite)(e, &schema))?;
            Ok(Transformed::new_transformed(
                name.restore(rewritten.data),
                rewritten.transformed,
            ))
        })
    }
}

/// The date parts that read the same on a UTC timestamp and on its zoneless value.
const ZONE_FREE_FIELDS: [&str; 15] = [
    "year",
    "quarter",
    "month",
    "week",
    "day",
    "hour",
    "minute",
    "second",
    "millisecond",
    "microsecond",
    "nanosecond",
    "dow",
    "doy",
    "isodow",
    "epoch",
];

fn field_without_zone(expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let Expr::ScalarFunction(ScalarFunction { func, args }) = &expr else {
        return Ok(Transformed::no(expr));
    };
    let [field, timestamp] = args.as_slice() else {
        return Ok(Transformed::no(expr));
    };
    let is_zone_free_field = || match field {
        Expr::Literal(ScalarValue::Utf8(Some(f)) | ScalarValue::Utf8View(Some(f)), _) => {
            ZONE_FREE_FIELDS.contains(&f.to_ascii_lowercase().as_str())
        }
        _ => false,
    };
    if func.name() != "date_part" || !is_zone_free_field() {
        return Ok(Transformed::no(expr));
    }
    let Ok(DataType::Timestamp(unit, Some(zone))) = timestamp.get_type(schema) else {
        return Ok(Transformed::no(expr));
    };
    if !is_utc(&zone) {
        return Ok(Transformed::no(expr));
    }
    let zoneless = Expr::Cast(Cast::new(
        Box::new(timestamp.clone()),
        DataType::Timestamp(unit, None),
    ));
    Ok(Transformed::yes(Expr::ScalarFunction(ScalarFunction {
        func: Arc::clone(func),
        args: vec![field.clone(), zoneless],
    })))
}

/// A zone at offset zero, always: UTC by name, or `±00:00`.
fn is_utc(zone: &str) -> bool {
    ZERO_OFFSET_NAMES.contains(&zone)
        || offset_digits(zone).is_some_and(|digits| digits.bytes().all(|b| b == b'0' || b == b':'))
}

/// Where a rule goes to run right after the rule named `name` in `rules`: at the end
/// when there is none.
pub fn index_after(rules: &[Arc<dyn PhysicalOptimizerRule + Send + Sync>], name: &str) -> usize {
    rules
        .iter()
        .position(|rule| rule.name() == name)
        .map_or(rules.len(), |i| i + 1)
}

/// DataFusion's physical optimizer rules with kefu's operators (see [`with_operators`]).
pub fn physical_rules() -> Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>> {
    with_operators(datafusion::physical_optimizer::optimizer::PhysicalOptimizer::new().rules)
}

/// `rules` with kefu's operators for the shapes analysts write,
/// [`BandJoins`](crate::band_join::BandJoins) and
/// [`ShiftWindows`](crate::shift_window::ShiftWindows): once joins, sorts and repartitions
/// are placed, before the post-optimization filter pushdown (which ties dynamic filters
/// to the operators they replace; at the end when there is none).
pub fn with_operators(
    mut rules: Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>>,
) -> Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>> {
    let before = rules
        .iter()
        .position(|rule| rule.name() == "FilterPushdown(Post)")
        .unwrap_or(rules.len());
    rules.insert(before, Arc::new(crate::band_join::BandJoins));
    rules.insert(before + 1, Arc::new(crate::shift_window::ShiftWindows));
    rules.push(Arc::new(SortedResults));
    rules
}

/// Keeps a sorted result in one partition. Under a projection that cannot move below the
/// final merge of a sort (kefu's cast of text to `Utf8` on every result, see
/// [`crate::engine::plain_text`]), DataFusion 55 spreads the merged rows round-robin over
/// the partitions again, to compute the projection in parallel, and reports the order as
/// kept in each; whoever runs the plan then concatenates the partitions in whatever order
/// their batches come, so an `ORDER BY` over more than one batch (16,384 rows) came out
/// in pieces. This rule takes such a repartition out again, between the top of the plan
/// and the merge.
#[derive(Debug, Default)]
pub struct SortedResults;

impl PhysicalOptimizerRule for SortedResults {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &datafusion::config::ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        without_split_of_sorted_rows(plan)
    }

    fn name(&self) -> &str {
        "kefu_sorted_results"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `plan` without a round-robin repartition of one sorted partition, looked for down the
/// operators at its top that keep their input's order and partitions.
fn without_split_of_sorted_rows(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    if let Some(repartition) = plan.downcast_ref::<RepartitionExec>() {
        let input = repartition.input();
        let splits_sorted_rows =
            matches!(repartition.partitioning(), Partitioning::RoundRobinBatch(_))
                && input.properties().partitioning.partition_count() == 1
                && input.properties().output_ordering().is_some();
        return Ok(if splits_sorted_rows {
            Arc::clone(input)
        } else {
            plan
        });
    }
    let [child] = plan.children()[..] else {
        return Ok(plan);
    };
    let passes_rows_through = plan.maintains_input_order() == [true]
        && plan.properties().partitioning.partition_count()
            == child.properties().partitioning.partition_count();
    if !passes_rows_through {
        return Ok(plan);
    }
    let new_child = without_split_of_sorted_rows(Arc::clone(child))?;
    if Arc::ptr_eq(&new_child, child) {
        return Ok(plan);
    }
    #[expect(
        deprecated,
        reason = "replace_children takes options DataFusion 55 adds"
    )]
    plan.with_new_children(vec![new_child])
}

/// `plan` with each input replaced by an empty one of the same schema: what a plan codec
/// sends for one of kefu's operators (the DataFusion operator it replaces, from which the
/// receiver derives it again; the real inputs travel as the node's own).
pub fn with_empty_inputs(plan: &Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    let empty = plan
        .children()
        .into_iter()
        .map(|input| Arc::new(EmptyExec::new(input.schema())) as Arc<dyn ExecutionPlan>)
        .collect();
    #[expect(
        deprecated,
        reason = "replace_children takes options DataFusion 55 adds"
    )]
    Arc::clone(plan).with_new_children(empty)
}

/// Registers kefu's rules on a session being built.
pub fn add_to(
    builder: datafusion::execution::session_state::SessionStateBuilder,
) -> datafusion::execution::session_state::SessionStateBuilder {
    builder
        .with_optimizer_rule(Arc::new(INTERVALS_AS_DURATIONS))
        .with_optimizer_rule(Arc::new(UTC_FIELDS_WITHOUT_ZONE))
}

fn as_duration(expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = &expr else {
        return Ok(Transformed::no(expr));
    };
    let (timestamp, nanos, interval_first) = match (left.as_ref(), op, right.as_ref()) {
        (ts, Operator::Plus | Operator::Minus, Expr::Literal(v, _)) => match fixed_nanos(v) {
            Some(n) => (ts, n, false),
            None => return Ok(Transformed::no(expr)),
        },
        (Expr::Literal(v, _), Operator::Plus, ts) => match fixed_nanos(v) {
            Some(n) => (ts, n, true),
            None => return Ok(Transformed::no(expr)),
        },
        _ => return Ok(Transformed::no(expr)),
    };
    let Ok(DataType::Timestamp(unit, zone)) = timestamp.get_type(schema) else {
        return Ok(Transformed::no(expr));
    };
    if !zone.as_deref().is_none_or(is_fixed_offset) {
        return Ok(Transformed::no(expr));
    }
    let Some(duration) = duration_in(unit, nanos) else {
        return Ok(Transformed::no(expr));
    };
    let duration = Expr::Literal(duration, None);
    let timestamp = Box::new(timestamp.clone());
    let (left, right) = if interval_first {
        (Box::new(duration), timestamp)
    } else {
        (timestamp, Box::new(duration))
    };
    Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr {
        left,
        op: *op,
        right,
    })))
}

/// An interval literal's length in nanoseconds, when it has no months (whose length
/// depends on the date).
fn fixed_nanos(value: &ScalarValue) -> Option<i128> {
    const DAY: i128 = 86_400 * 1_000_000_000;
    match value {
        ScalarValue::IntervalMonthDayNano(Some(IntervalMonthDayNano {
            months: 0,
            days,
            nanoseconds,
        })) => Some(i128::from(*days) * DAY + i128::from(*nanoseconds)),
        ScalarValue::IntervalDayTime(Some(IntervalDayTime { days, milliseconds })) => {
            Some(i128::from(*days) * DAY + i128::from(*milliseconds) * 1_000_000)
        }
        _ => None,
    }
}

/// A duration literal of `unit` equal to `nanos`, when it is a whole number of units
/// that fits.
fn duration_in(unit: TimeUnit, nanos: i128) -> Option<ScalarValue> {
    let per_unit = match unit {
        TimeUnit::Second => 1_000_000_000,
        TimeUnit::Millisecond => 1_000_000,
        TimeUnit::Microsecond => 1_000,
        TimeUnit::Nanosecond => 1,
    };
    if nanos % per_unit != 0 {
        return None;
    }
    let units = i64::try_from(nanos / per_unit).ok()?;
    Some(match unit {
        TimeUnit::Second => ScalarValue::DurationSecond(Some(units)),
        TimeUnit::Millisecond => ScalarValue::DurationMillisecond(Some(units)),
        TimeUnit::Microsecond => ScalarValue::DurationMicrosecond(Some(units)),
        TimeUnit::Nanosecond => ScalarValue::DurationNanosecond(Some(units)),
    })
}

/// A zone whose offset never changes: UTC or `±HH:MM`. Named zones may have daylight
/// saving, where a day is not 24 hours.
fn is_fixed_offset(zone: &str) -> bool {
    ZERO_OFFSET_NAMES.contains(&zone) || offset_digits(zone).is_some()
}

/// Names of the zone at offset zero.
const ZERO_OFFSET_NAMES: [&str; 5] = ["UTC", "Z", "Etc/UTC", "GMT", "Etc/GMT"];

/// The `HH:MM` of a zone written as an offset, `±HH:MM` (or `±HHMM`, `±HH`).
fn offset_digits(zone: &str) -> Option<&str> {
    zone.strip_prefix(['+', '-'])
        .filter(|rest| rest.len() >= 2 && rest.bytes().all(|b| b.is_ascii_digit() || b == b':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_month_free_intervals_have_a_fixed_length() {
        let days = |days, nanoseconds| {
            ScalarValue::IntervalMonthDayNano(Some(IntervalMonthDayNano {
                months: 0,
                days,
                nanoseconds,
            }))
        };
        assert_eq!(fixed_nanos(&days(7, 0)), Some(7 * 86_400 * 1_000_000_000));
        assert_eq!(
            fixed_nanos(&days(0, 3_600_000_000_000)),
            Some(3_600_000_000_000)
        );
        let month = ScalarValue::IntervalMonthDayNano(Some(IntervalMonthDayNano {
            months: 1,
            days: 0,
            nanoseconds: 0,
        }));
        assert_eq!(fixed_nanos(&month), None);
        assert_eq!(fixed_nanos(&ScalarValue::IntervalMonthDayNano(None)), None);
    }

    #[test]
    fn durations_are_whole_units_only() {
        assert_eq!(
            duration_in(TimeUnit::Microsecond, 86_400_000_000_000),
            Some(ScalarValue::DurationMicrosecond(Some(86_400_000_000)))
        );
        assert_eq!(duration_in(TimeUnit::Second, 1_500_000_000), None);
    }

    #[test]
    fn named_zones_are_not_fixed_offsets() {
        assert!(is_fixed_offset("UTC"));
        assert!(is_fixed_offset("+08:00"));
        assert!(is_fixed_offset("-0500"));
        assert!(!is_fixed_offset("Europe/London"));
        assert!(!is_fixed_offset("Asia/Shanghai"));
    }
}
