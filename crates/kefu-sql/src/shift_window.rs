//! `lead()` and `lag()` over sorted input, as a shift of each batch. Analysts find repeat
//! contacts with `lead(at) OVER (PARTITION BY customer_id ORDER BY at)`: hundreds of
//! thousands of small partitions. DataFusion's bounded window operator handles each
//! partition on its own (its key as scalar values, its state, its slice of the batch): in
//! `compare_adhoc.py`'s q04, 1.43 s of CPU for 8.25 M rows, as much as the sort before it.
//! [`ShiftWindows`] runs a window of only `lead` / `lag` with constant offsets as a
//! [`ShiftWindowExec`] instead: partition boundaries are found by comparing each row's keys
//! with the next row's (vectorised), and each result is a `take` of the value column at
//! the shifted positions, the default where the shift leaves the partition.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, UInt32Array};
use arrow::compute::kernels::cmp::distinct;
use arrow::compute::kernels::zip::zip;
use arrow::compute::{cast, concat, take};
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::common::{Result, ScalarValue, internal_err};
use datafusion::config::ConfigOptions;
use datafusion::execution::TaskContext;
use datafusion::physical_expr::expressions::Literal;
use datafusion::physical_expr::window::{StandardWindowExpr, WindowExpr};
use datafusion::physical_expr::{OrderingRequirements, PhysicalExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::metrics::{
    BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet, RecordOutput,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::windows::{BoundedWindowAggExec, WindowUDFExpr};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, InputOrderMode, PlanProperties,
    SendableRecordBatchStream,
};
use futures::StreamExt;

/// The longest shift run this way; longer ones keep DataFusion's operator (they would hold
/// that many rows back).
const MAX_OFFSET: i64 = 1 << 16;

/// Replaces each bounded window operator over sorted input whose functions are all
/// `lead` / `lag` with constant offsets and defaults by a [`ShiftWindowExec`].
#[derive(Debug, Default)]
pub struct ShiftWindows;

impl PhysicalOptimizerRule for ShiftWindows {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(window) = node.downcast_ref::<BoundedWindowAggExec>() else {
                return Ok(Transformed::no(node));
            };
            match shifts_of(window) {
                Some(shifts) => Ok(Transformed::yes(Arc::new(ShiftWindowExec::new(
                    Arc::clone(&node),
                    window,
                    shifts,
                )))),
                None => Ok(Transformed::no(node)),
            }
        })
        .data()
    }

    fn name(&self) -> &str {
        "kefu_shift_windows"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// One `lead` / `lag`: the value of the row `offset` rows later (earlier when negative) in
/// the same partition, `default` where there is none.
#[derive(Debug, Clone)]
struct Shift {
    value: Arc<dyn PhysicalExpr>,
    offset: i64,
    default: ScalarValue,
}

/// The window's functions as shifts, if all of them are plain `lead` / `lag` and the input
/// is sorted on the partition keys.
fn shifts_of(window: &BoundedWindowAggExec) -> Option<Vec<Shift>> {
    if window.input_order_mode != InputOrderMode::Sorted {
        return None;
    }
    let partition_by = window.window_expr().first()?.partition_by();
    window
        .window_expr()
        .iter()
        .map(|expr| {
            if expr.partition_by() != partition_by {
                return None;
            }
            shift_of(expr)
        })
        .collect()
}

fn shift_of(expr: &Arc<dyn WindowExpr>) -> Option<Shift> {
    let standard = expr.as_any().downcast_ref::<StandardWindowExpr>()?;
    let function = standard
        .get_standard_func_expr()
        .as_any()
        .downcast_ref::<WindowUDFExpr>()?;
    let sign = match function.fun().name() {
        "lead" => 1,
        "lag" => -1,
        _ => return None,
    };
    // DataFusion keeps whether IGNORE NULLS was given, and whether the function was
    // reversed to read a descending input, in private fields; their derived Debug shows
    // them. Only the plain form is taken (a renamed field leaves DataFusion's operator).
    let described = format!("{function:?}");
    if !described.contains("ignore_nulls: false") || !described.contains("is_reversed: false") {
        return None;
    }
    let args = function.args();
    let literal = |i: usize| -> Option<Option<ScalarValue>> {
        match args.get(i) {
            None => Some(None),
            Some(arg) => Some(Some(arg.downcast_ref::<Literal>()?.value().clone())),
        }
    };
    let offset = match literal(1)? {
        None => 1,
        Some(ScalarValue::Int64(Some(n))) => n,
        Some(_) => return None,
    };
    if offset.unsigned_abs() > MAX_OFFSET as u64 {
        return None;
    }
    let return_type = standard.field().ok()?.data_type().clone();
    let default = match literal(2)? {
        None => ScalarValue::try_from(&return_type).ok()?,
        Some(value) if value.is_null() => ScalarValue::try_from(&return_type).ok()?,
        Some(value) => value.cast_to(&return_type).ok()?,
    };
    Some(Shift {
        value: Arc::clone(args.first()?),
        offset: sign * offset,
        default,
    })
}

/// A window of `lead` / `lag` run as shifts (see the module). Input, ordering, partitioning
/// and output are the window operator's it replaces, which it keeps for them.
#[derive(Debug)]
pub struct ShiftWindowExec {
    window: Arc<dyn ExecutionPlan>,
    partition_by: Vec<Arc<dyn PhysicalExpr>>,
    shifts: Vec<Shift>,
    metrics: ExecutionPlanMetricsSet,
}

impl ShiftWindowExec {
    fn new(
        node: Arc<dyn ExecutionPlan>,
        window: &BoundedWindowAggExec,
        shifts: Vec<Shift>,
    ) -> Self {
        ShiftWindowExec {
            window: node,
            partition_by: window.window_expr()[0].partition_by().to_vec(),
            shifts,
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    /// The window operator this runs, with an empty input (what a plan codec sends).
    pub fn template(&self) -> Result<Arc<dyn ExecutionPlan>> {
        crate::rules::with_empty_inputs(&self.window)
    }

    /// The shifts of `template` (a window operator, see [`Self::template`]) over `input`.
    pub fn from_template(
        template: &Arc<dyn ExecutionPlan>,
        inputs: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        #[expect(
            deprecated,
            reason = "replace_children takes options DataFusion 55 adds"
        )]
        let node = Arc::clone(template).with_new_children(inputs)?;
        let Some(window) = node.downcast_ref::<BoundedWindowAggExec>() else {
            return internal_err!("a shift window's template is not a window: {template:?}");
        };
        match shifts_of(window) {
            Some(shifts) => Ok(Arc::new(ShiftWindowExec::new(
                Arc::clone(&node),
                window,
                shifts,
            ))),
            None => internal_err!("a shift window's template has other functions"),
        }
    }

    fn input(&self) -> &Arc<dyn ExecutionPlan> {
        self.window.children()[0]
    }
}

impl DisplayAs for ShiftWindowExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let keys = self
            .partition_by
            .iter()
            .map(|k| k.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let shifts = self
            .shifts
            .iter()
            .map(|s| format!("{} {:+}", s.value, s.offset))
            .collect::<Vec<_>>()
            .join(", ");
        write!(
            f,
            "ShiftWindowExec: partition_by=[{keys}], shifts=[{shifts}]"
        )
    }
}

impl ExecutionPlan for ShiftWindowExec {
    fn name(&self) -> &str {
        "ShiftWindowExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.window.properties()
    }

    fn input_distribution_requirements(
        &self,
    ) -> datafusion::physical_plan::InputDistributionRequirements {
        self.window.input_distribution_requirements()
    }

    fn required_input_ordering(&self) -> Vec<Option<OrderingRequirements>> {
        self.window.required_input_ordering()
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![self.input()]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        let values = self.shifts.iter().map(|s| &s.value);
        for expr in self.partition_by.iter().chain(values) {
            if f(expr)? == TreeNodeRecursion::Stop {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        #[expect(deprecated, reason = "the window operator kept for its properties")]
        let window = Arc::clone(&self.window).with_new_children(children)?;
        Ok(Arc::new(ShiftWindowExec {
            window,
            partition_by: self.partition_by.clone(),
            shifts: self.shifts.clone(),
            metrics: ExecutionPlanMetricsSet::new(),
        }))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn child_stats_requests(
        &self,
        partition: Option<usize>,
    ) -> Vec<datafusion::physical_plan::ChildStats> {
        self.window.child_stats_requests(partition)
    }

    fn statistics_from_inputs(
        &self,
        input_stats: &[Arc<datafusion::common::Statistics>],
        args: &datafusion::physical_plan::StatisticsArgs,
    ) -> Result<Arc<datafusion::common::Statistics>> {
        self.window.statistics_from_inputs(input_stats, args)
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.input().execute(partition, context)?;
        let ahead = self
            .shifts
            .iter()
            .map(|s| s.offset)
            .max()
            .unwrap_or(0)
            .max(0) as usize;
        let behind = (-self.shifts.iter().map(|s| s.offset).min().unwrap_or(0)).max(0) as usize;
        let shifting = Shifting {
            input,
            partition_by: self.partition_by.clone(),
            shifts: self.shifts.clone(),
            schema: self.schema(),
            ahead,
            behind,
            waiting: VecDeque::new(),
            rows_waiting: 0,
            before: None,
            input_done: false,
            metrics: BaselineMetrics::new(&self.metrics, partition),
        };
        let stream = futures::stream::try_unfold(shifting, |mut shifting| async move {
            let next = shifting.next_batch().await?;
            Ok(next.map(|batch| (batch, shifting)))
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema(),
            stream.boxed(),
        )))
    }
}

/// One partition's stream: input batches wait until the rows after them cover the
/// longest lead; the rows before the next one (as many as the longest lag) are kept.
struct Shifting {
    input: SendableRecordBatchStream,
    partition_by: Vec<Arc<dyn PhysicalExpr>>,
    shifts: Vec<Shift>,
    schema: arrow::datatypes::SchemaRef,
    ahead: usize,
    behind: usize,
    waiting: VecDeque<RecordBatch>,
    /// Rows waiting after the first waiting batch.
    rows_waiting: usize,
    /// Up to `behind` rows before the first waiting batch.
    before: Option<RecordBatch>,
    input_done: bool,
    metrics: BaselineMetrics,
}

impl Shifting {
    async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        loop {
            let ready = self
                .waiting
                .front()
                .map(|first| self.rows_waiting - first.num_rows() >= self.ahead || self.input_done);
            match ready {
                Some(true) => {
                    let Some(first) = self.waiting.pop_front() else {
                        return internal_err!("ShiftWindowExec lost a waiting batch");
                    };
                    self.rows_waiting -= first.num_rows();
                    let started = std::time::Instant::now();
                    let shifted = self.shift(&first)?;
                    self.keep_before(first)?;
                    self.metrics.elapsed_compute().add_elapsed(started);
                    return Ok(Some(shifted.record_output(&self.metrics)));
                }
                None if self.input_done => {
                    self.metrics.done();
                    return Ok(None);
                }
                _ => {}
            }
            match self.input.next().await {
                Some(batch) => {
                    let batch = batch?;
                    if batch.num_rows() > 0 {
                        self.rows_waiting += batch.num_rows();
                        self.waiting.push_back(batch);
                    }
                }
                None => self.input_done = true,
            }
        }
    }

    /// `batch` with the shifts' columns, reading the rows kept before it and the waiting
    /// rows after it.
    fn shift(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let before = self.before.iter().cloned();
        let mut after = Vec::new();
        let mut needed = self.ahead;
        for next in &self.waiting {
            if needed == 0 {
                break;
            }
            let rows = needed.min(next.num_rows());
            after.push(next.slice(0, rows));
            needed -= rows;
        }
        let start = self.before.as_ref().map_or(0, RecordBatch::num_rows);
        let pieces: Vec<RecordBatch> = before
            .chain(std::iter::once(batch.clone()))
            .chain(after)
            .collect();
        let len: usize = pieces.iter().map(RecordBatch::num_rows).sum();
        let part = partition_numbers(&self.partition_by, &pieces, len)?;
        let mut columns = batch.columns().to_vec();
        for (shift, field) in self
            .shifts
            .iter()
            .zip(self.schema.fields().iter().skip(batch.num_columns()))
        {
            let values = evaluate_over(&shift.value, &pieces)?;
            let indices: UInt32Array = (start..start + batch.num_rows())
                .map(|row| {
                    let from = row as i64 + shift.offset;
                    (0..len as i64)
                        .contains(&from)
                        .then_some(from as usize)
                        .filter(|&from| part[from] == part[row])
                        .map(|from| from as u32)
                })
                .collect();
            let mut shifted = take(&values, &indices, None)?;
            if !shift.default.is_null() {
                let outside = BooleanArray::from_iter(indices.iter().map(|i| Some(i.is_none())));
                shifted = zip(&outside, &shift.default.to_scalar()?, &shifted)?;
            }
            if shifted.data_type() != field.data_type() {
                shifted = cast(&shifted, field.data_type())?;
            }
            columns.push(shifted);
        }
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }

    /// Keeps the last `behind` rows up to and including `batch` for the lags of the next.
    fn keep_before(&mut self, batch: RecordBatch) -> Result<()> {
        if self.behind == 0 {
            return Ok(());
        }
        let rows = batch.num_rows();
        self.before = Some(if rows >= self.behind {
            batch.slice(rows - self.behind, self.behind)
        } else {
            let mut kept = match self.before.take() {
                Some(before) => vec![before],
                None => Vec::new(),
            };
            kept.push(batch);
            let joined = arrow::compute::concat_batches(&kept[0].schema(), &kept)?;
            let keep = self.behind.min(joined.num_rows());
            joined.slice(joined.num_rows() - keep, keep)
        });
        Ok(())
    }
}

/// `expr` over the pieces, as one array.
fn evaluate_over(expr: &Arc<dyn PhysicalExpr>, pieces: &[RecordBatch]) -> Result<ArrayRef> {
    let arrays = pieces
        .iter()
        .map(|piece| expr.evaluate(piece)?.into_array(piece.num_rows()))
        .collect::<Result<Vec<_>>>()?;
    match arrays.as_slice() {
        [one] => Ok(Arc::clone(one)),
        _ => Ok(concat(
            &arrays.iter().map(|a| a.as_ref()).collect::<Vec<_>>(),
        )?),
    }
}

/// Each row's partition as a running number: it grows where a row's keys differ from the
/// previous row's (nulls equal to nulls, as PARTITION BY groups them).
fn partition_numbers(
    partition_by: &[Arc<dyn PhysicalExpr>],
    pieces: &[RecordBatch],
    len: usize,
) -> Result<Vec<u32>> {
    let mut numbers = vec![0u32; len];
    if len < 2 || partition_by.is_empty() {
        return Ok(numbers);
    }
    let mut starts = vec![false; len - 1];
    for key in partition_by {
        let key = evaluate_over(key, pieces)?;
        let changed = distinct(&key.slice(0, len - 1), &key.slice(1, len - 1))?;
        if changed.null_count() > 0 {
            return internal_err!("distinct() gave nulls");
        }
        for (start, changed) in starts.iter_mut().zip(changed.values().iter()) {
            *start |= changed;
        }
    }
    for (i, start) in starts.into_iter().enumerate() {
        numbers[i + 1] = numbers[i] + u32::from(start);
    }
    Ok(numbers)
}

#[cfg(test)]
mod tests {
    use arrow::util::pretty::pretty_format_batches;
    use datafusion::execution::session_state::SessionStateBuilder;
    use datafusion::prelude::{SessionConfig, SessionContext};

    /// `sql`'s rows as text, by a session with kefu's operators or with DataFusion's own.
    async fn answer(sql: &str, kefu: bool, batch_size: usize) -> String {
        let config = SessionConfig::new()
            .with_batch_size(batch_size)
            .with_target_partitions(3);
        let mut builder = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features();
        if kefu {
            builder = builder.with_physical_optimizer_rules(crate::rules::physical_rules());
        }
        let ctx = SessionContext::new_with_state(builder.build());
        let df = ctx.sql(sql).await.unwrap();
        let plan = format!(
            "{}",
            datafusion::physical_plan::displayable(
                df.clone().create_physical_plan().await.unwrap().as_ref()
            )
            .indent(false)
        );
        assert_eq!(plan.contains("ShiftWindowExec"), kefu, "{plan}");
        pretty_format_batches(&df.collect().await.unwrap())
            .unwrap()
            .to_string()
    }

    /// Shifts longer than the batches, across partitions that span batches, with nulls in
    /// keys and values: the same rows as DataFusion's window operator gives.
    #[tokio::test]
    async fn shifts_agree_with_datafusion_across_small_batches() {
        let sql = "WITH t AS (SELECT CASE WHEN value % 11 = 0 THEN NULL ELSE value % 5 END AS k, \
                          value AS o, CASE WHEN value % 7 = 0 THEN NULL ELSE value * 10 END AS v \
                   FROM generate_series(1, 400)) \
                   SELECT k, o, lead(v) OVER w, lag(v, 3) OVER w, lead(v, 5, -1) OVER w, \
                          lag(o, 1, 0) OVER w, lead(v, 0) OVER w, lag(v) OVER (ORDER BY o) \
                   FROM t WINDOW w AS (PARTITION BY k ORDER BY o) ORDER BY o";
        for batch_size in [1, 2, 7, 64, 8192] {
            assert_eq!(
                answer(sql, true, batch_size).await,
                answer(sql, false, batch_size).await,
                "batches of {batch_size}"
            );
        }
    }
}
