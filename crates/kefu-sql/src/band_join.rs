//! Inner joins on a key and a band of time, the shape of "the same customer again within an
//! hour": `ON b.customer_id = a.customer_id AND b.at > a.at AND b.at <= a.at + INTERVAL '1
//! hour'`. DataFusion's hash join pairs each probe row with every build row of its key and
//! then tests the band on each pair: in `compare_adhoc.py`'s q12, 35 M pairs for 26 K
//! answers, 43% of the CPU walking hash chains and 25% comparing keys. [`BandJoins`] runs
//! such joins as a [`BandJoinExec`] instead: the build side grouped by key, each key's rows
//! sorted by time, so that a probe row finds its band by binary search and the join's filter
//! is evaluated only on the rows inside it. The band is read from the filter's conjuncts
//! (`build ± c` against `probe ± c`, on timestamps with a duration or on integers); the
//! whole filter is still evaluated on every pair, so the band only narrows the candidates.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, DynComparator, Int64Array, RecordBatch, RecordBatchOptions,
    UInt32Array, make_comparator,
};
use arrow::compute::{SortOptions, cast, concat_batches, filter, take};
use arrow::datatypes::{DataType, Int64Type, SchemaRef, TimeUnit};
use datafusion::common::hash_utils::{RandomState, create_hashes};
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::common::{
    DataFusionError, JoinSide, JoinType, NullEquality, Result, ScalarValue, internal_err,
};
use datafusion::config::ConfigOptions;
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::expressions::{BinaryExpr, Column, Literal};
use datafusion::physical_expr::{PhysicalExpr, split_conjunction};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::joins::utils::JoinFilter;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};
use datafusion::physical_plan::metrics::{
    BaselineMetrics, Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet, RecordOutput, Time,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
};
use futures::StreamExt;
use hashbrown::HashTable;
use tokio::sync::OnceCell;

/// Seeds the build side's key hashes; not the repartition's seed, whose hashes within one
/// partition all agree modulo the partition count.
const KEY_HASHES: RandomState = RandomState::with_seed(0x6b65_6675_6261_6e64);

/// Replaces each inner hash join whose filter bounds a build-side time on both sides by a
/// probe-side time with a [`BandJoinExec`] over the same inputs. Runs before DataFusion's
/// post-optimization filter pushdown (see [`crate::rules::physical_rules`]), which would
/// otherwise hand the hash join's dynamic filter (a lookup into its hash table) to the
/// probe-side scan.
#[derive(Debug, Default)]
pub struct BandJoins;

impl PhysicalOptimizerRule for BandJoins {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(join) = node.downcast_ref::<HashJoinExec>() else {
                return Ok(Transformed::no(node));
            };
            match band_of_join(join) {
                Some(band) => Ok(Transformed::yes(Arc::new(BandJoinExec::try_new(
                    join, band,
                )?))),
                None => Ok(Transformed::no(node)),
            }
        })
        .data()
    }

    fn name(&self) -> &str {
        "kefu_band_joins"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// One end of the band: the build time against the probe time plus `offset` (in the
/// columns' own unit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bound {
    offset: i64,
    inclusive: bool,
}

/// `probe + lower.offset < build < probe + upper.offset` (each end `<=` where inclusive),
/// for the build input's column `build_time` and the probe input's `probe_time`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Band {
    build_time: usize,
    probe_time: usize,
    lower: Bound,
    upper: Bound,
}

impl Band {
    /// The positions in `times` (ascending) inside the band around probe time `at`.
    fn within(&self, times: &[i64], at: i64) -> Range<usize> {
        let low = at.saturating_add(self.lower.offset);
        let high = at.saturating_add(self.upper.offset);
        let start = if self.lower.inclusive {
            times.partition_point(|&t| t < low)
        } else {
            times.partition_point(|&t| t <= low)
        };
        let end = if self.upper.inclusive {
            times.partition_point(|&t| t <= high)
        } else {
            times.partition_point(|&t| t < high)
        };
        start..end.max(start)
    }
}

/// The band of an inner, null-rejecting, unlimited hash join with a filter, if its filter
/// has one.
fn band_of_join(join: &HashJoinExec) -> Option<Band> {
    if join.join_type != JoinType::Inner
        || join.null_equality != NullEquality::NullEqualsNothing
        || join.null_aware
        || join.fetch().is_some()
        || !matches!(
            join.mode,
            PartitionMode::Partitioned | PartitionMode::CollectLeft
        )
    {
        return None;
    }
    // Equal keys must hash alike on both sides.
    let (left, right) = (join.left().schema(), join.right().schema());
    for (l, r) in join.on() {
        if l.data_type(&left).ok()? != r.data_type(&right).ok()? {
            return None;
        }
    }
    band_of(join.filter()?)
}

/// A column of one side plus a constant, as a conjunct's operand.
struct Term {
    side: JoinSide,
    column: usize,
    data_type: DataType,
    offset: i64,
}

/// The first pair of columns that the filter's conjuncts bound from both sides.
fn band_of(join_filter: &JoinFilter) -> Option<Band> {
    let mut pair = None;
    let (mut lower, mut upper) = (None, None);
    for conjunct in split_conjunction(join_filter.expression()) {
        let Some(comparison) = conjunct.downcast_ref::<BinaryExpr>() else {
            continue;
        };
        let (Some(l), Some(r)) = (
            term(comparison.left(), join_filter),
            term(comparison.right(), join_filter),
        ) else {
            continue;
        };
        // Oriented as `build op probe`.
        let (build, probe, op) = match (l.side, r.side) {
            (JoinSide::Left, JoinSide::Right) => (l, r, *comparison.op()),
            (JoinSide::Right, JoinSide::Left) => (r, l, comparison.op().swap()?),
            _ => continue,
        };
        if build.data_type != probe.data_type {
            continue;
        }
        let columns = (build.column, probe.column);
        if *pair.get_or_insert(columns) != columns {
            continue;
        }
        // build + b op probe + p  <=>  build op probe + (p - b)
        let Some(offset) = probe.offset.checked_sub(build.offset) else {
            continue;
        };
        match op {
            Operator::Gt => {
                lower = lower.or(Some(Bound {
                    offset,
                    inclusive: false,
                }))
            }
            Operator::GtEq => {
                lower = lower.or(Some(Bound {
                    offset,
                    inclusive: true,
                }))
            }
            Operator::Lt => {
                upper = upper.or(Some(Bound {
                    offset,
                    inclusive: false,
                }))
            }
            Operator::LtEq => {
                upper = upper.or(Some(Bound {
                    offset,
                    inclusive: true,
                }))
            }
            _ => {}
        }
    }
    let (build_time, probe_time) = pair?;
    Some(Band {
        build_time,
        probe_time,
        lower: lower?,
        upper: upper?,
    })
}

/// `column`, `column ± constant` or `constant + column`, where the constant is in the
/// column's unit: a duration of a timestamp's unit, or an integer of an integer column.
fn term(expr: &Arc<dyn PhysicalExpr>, join_filter: &JoinFilter) -> Option<Term> {
    let column_term = |expr: &Arc<dyn PhysicalExpr>| {
        let column = expr.downcast_ref::<Column>()?;
        let data_type = join_filter
            .schema()
            .field(column.index())
            .data_type()
            .clone();
        if !matches!(data_type, DataType::Timestamp(..) | DataType::Int64) {
            return None;
        }
        let index = join_filter.column_indices().get(column.index())?;
        Some(Term {
            side: index.side,
            column: index.index,
            data_type,
            offset: 0,
        })
    };
    if let Some(term) = column_term(expr) {
        return Some(term);
    }
    let sum = expr.downcast_ref::<BinaryExpr>()?;
    let (column, constant, negate) = match sum.op() {
        Operator::Plus => match sum.left().downcast_ref::<Literal>() {
            Some(constant) => (sum.right(), constant, false),
            None => (sum.left(), sum.right().downcast_ref::<Literal>()?, false),
        },
        Operator::Minus => (sum.left(), sum.right().downcast_ref::<Literal>()?, true),
        _ => return None,
    };
    let mut term = column_term(column)?;
    let offset = constant_in_unit(constant.value(), &term.data_type)?;
    term.offset = if negate {
        offset.checked_neg()?
    } else {
        offset
    };
    Some(term)
}

fn constant_in_unit(value: &ScalarValue, data_type: &DataType) -> Option<i64> {
    match (data_type, value) {
        (DataType::Timestamp(TimeUnit::Second, _), ScalarValue::DurationSecond(v))
        | (DataType::Timestamp(TimeUnit::Millisecond, _), ScalarValue::DurationMillisecond(v))
        | (DataType::Timestamp(TimeUnit::Microsecond, _), ScalarValue::DurationMicrosecond(v))
        | (DataType::Timestamp(TimeUnit::Nanosecond, _), ScalarValue::DurationNanosecond(v))
        | (DataType::Int64, ScalarValue::Int64(v)) => *v,
        _ => None,
    }
}

/// An inner hash join run by key and band (see the module). Its inputs, keys, filter,
/// partitioning and output are the hash join's it replaces, which it keeps for them.
#[derive(Debug)]
pub struct BandJoinExec {
    join: Arc<HashJoinExec>,
    band: Band,
    /// The build side, shared by all output partitions when the join collects its left
    /// side into one.
    collected: Arc<OnceCell<std::result::Result<Arc<BuildSide>, Arc<DataFusionError>>>>,
    metrics: ExecutionPlanMetricsSet,
}

impl BandJoinExec {
    fn try_new(join: &HashJoinExec, band: Band) -> Result<Self> {
        Ok(BandJoinExec {
            join: Arc::new(join.builder().build()?),
            band,
            collected: Arc::default(),
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }

    /// The hash join this runs, with empty inputs (what a plan codec sends).
    pub fn template(&self) -> Result<Arc<dyn ExecutionPlan>> {
        crate::rules::with_empty_inputs(&(Arc::clone(&self.join) as Arc<dyn ExecutionPlan>))
    }

    /// The band join of `template` (a hash join, see [`Self::template`]) over `inputs`.
    pub fn from_template(
        template: &Arc<dyn ExecutionPlan>,
        inputs: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let Some(join) = template.downcast_ref::<HashJoinExec>() else {
            return internal_err!("a band join's template is not a hash join: {template:?}");
        };
        let join = join
            .builder()
            .recompute_properties()
            .with_new_children(inputs)?
            .build()?;
        match band_of_join(&join) {
            Some(band) => Ok(Arc::new(BandJoinExec::try_new(&join, band)?)),
            None => internal_err!("a band join's template has no band: {join:?}"),
        }
    }

    fn join_filter(&self) -> Result<&JoinFilter> {
        match self.join.filter() {
            Some(join_filter) => Ok(join_filter),
            None => internal_err!("BandJoinExec without a filter"),
        }
    }
}

impl DisplayAs for BandJoinExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let on = self
            .join
            .on()
            .iter()
            .map(|(l, r)| format!("({l}, {r})"))
            .collect::<Vec<_>>()
            .join(", ");
        let Band {
            build_time,
            probe_time,
            lower,
            upper,
        } = self.band;
        write!(
            f,
            "BandJoinExec: mode={:?}, on=[{on}], band=right[{probe_time}] {:+} {} left[{build_time}] {} right[{probe_time}] {:+}",
            self.join.mode,
            lower.offset,
            if lower.inclusive { "<=" } else { "<" },
            if upper.inclusive { "<=" } else { "<" },
            upper.offset,
        )?;
        if let Some(join_filter) = self.join.filter() {
            write!(f, ", filter={}", join_filter.expression())?;
        }
        if let Some(projection) = &self.join.projection {
            write!(f, ", projection={:?}", projection.as_ref())?;
        }
        Ok(())
    }
}

impl ExecutionPlan for BandJoinExec {
    fn name(&self) -> &str {
        "BandJoinExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.join.properties()
    }

    fn input_distribution_requirements(
        &self,
    ) -> datafusion::physical_plan::InputDistributionRequirements {
        self.join.input_distribution_requirements()
    }

    /// Output follows the probe side's order, as the hash join's does.
    fn maintains_input_order(&self) -> Vec<bool> {
        self.join.maintains_input_order()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![self.join.left(), self.join.right()]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        let keys = self.join.on().iter().flat_map(|(l, r)| [l, r]);
        for expr in keys.chain(self.join.filter().map(JoinFilter::expression)) {
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
        let join = self
            .join
            .builder()
            .recompute_properties()
            .with_new_children(children)?
            .build()?;
        Ok(Arc::new(BandJoinExec::try_new(&join, self.band)?))
    }

    fn reset_state(self: Arc<Self>) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(BandJoinExec::try_new(&self.join, self.band)?))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn child_stats_requests(
        &self,
        partition: Option<usize>,
    ) -> Vec<datafusion::physical_plan::ChildStats> {
        self.join.child_stats_requests(partition)
    }

    fn statistics_from_inputs(
        &self,
        input_stats: &[Arc<datafusion::common::Statistics>],
        args: &datafusion::physical_plan::StatisticsArgs,
    ) -> Result<Arc<datafusion::common::Statistics>> {
        self.join.statistics_from_inputs(input_stats, args)
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let metrics = JoinMetrics::new(&self.metrics, partition);
        let build_keys: Vec<_> = self.join.on().iter().map(|(l, _)| Arc::clone(l)).collect();
        let band = self.band;
        let build = {
            let left = Arc::clone(self.join.left());
            let context = Arc::clone(&context);
            let metrics = metrics.clone();
            async move |input: usize, name: String| {
                let reservation = MemoryConsumer::new(name).register(context.memory_pool());
                let stream = left.execute(input, context)?;
                BuildSide::collect(stream, &build_keys, band, reservation, &metrics).await
            }
        };
        let collected = Arc::clone(&self.collected);
        let mode = self.join.mode;
        let built = async move {
            match mode {
                PartitionMode::CollectLeft => collected
                    .get_or_init(|| async {
                        build(0, "BandJoinExec (collected)".to_string())
                            .await
                            .map(Arc::new)
                            .map_err(Arc::new)
                    })
                    .await
                    .clone()
                    .map_err(DataFusionError::Shared),
                _ => build(partition, format!("BandJoinExec[{partition}]"))
                    .await
                    .map(Arc::new),
            }
        };
        let probe = ProbeSide {
            input: self.join.right().execute(partition, Arc::clone(&context))?,
            probe_keys: self.join.on().iter().map(|(_, r)| Arc::clone(r)).collect(),
            join_filter: self.join_filter()?.clone(),
            projection: match &self.join.projection {
                Some(projection) => projection.to_vec(),
                None => (0..self.join.join_schema().fields().len()).collect(),
            },
            schema: self.schema(),
            band,
            batch_size: context.session_config().batch_size(),
            metrics,
            current: None,
        };
        let schema = self.schema();
        let stream = futures::stream::once(async move { (built.await, probe) }).flat_map(
            |(built, probe)| match built {
                Ok(built) => probe.into_stream(built).boxed(),
                Err(e) => futures::stream::once(async { Err(e) }).boxed(),
            },
        );
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

#[derive(Clone)]
struct JoinMetrics {
    baseline: BaselineMetrics,
    build_time: Time,
    build_rows: Count,
    candidates: Count,
}

impl JoinMetrics {
    fn new(metrics: &ExecutionPlanMetricsSet, partition: usize) -> Self {
        JoinMetrics {
            baseline: BaselineMetrics::new(metrics, partition),
            build_time: MetricBuilder::new(metrics).subset_time("build_time", partition),
            build_rows: MetricBuilder::new(metrics).counter("build_input_rows", partition),
            candidates: MetricBuilder::new(metrics).counter("candidate_pairs", partition),
        }
    }
}

/// The build side: its rows in one batch, grouped by key, each key's rows by time.
struct BuildSide {
    batch: RecordBatch,
    keys: Vec<ArrayRef>,
    /// Group numbers by key hash.
    groups: HashTable<u32>,
    /// Group `g`'s rows are `rows[starts[g]..starts[g + 1]]`, ascending by time.
    starts: Vec<u32>,
    rows: Vec<u32>,
    /// `times[i]` is the time of `rows[i]`.
    times: Vec<i64>,
    _reservation: MemoryReservation,
}

impl fmt::Debug for BuildSide {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.debug_struct("BuildSide")
            .field("rows", &self.rows.len())
            .field("keys", &(self.starts.len() - 1))
            .finish()
    }
}

impl BuildSide {
    async fn collect(
        mut input: SendableRecordBatchStream,
        build_keys: &[Arc<dyn PhysicalExpr>],
        band: Band,
        reservation: MemoryReservation,
        metrics: &JoinMetrics,
    ) -> Result<BuildSide> {
        let schema = input.schema();
        let mut batches = Vec::new();
        while let Some(batch) = input.next().await {
            let batch = batch?;
            reservation.try_grow(batch.get_array_memory_size())?;
            batches.push(batch);
        }
        let _timer = metrics.build_time.timer();
        let batch = concat_batches(&schema, &batches)?;
        drop(batches);
        let n = batch.num_rows();
        metrics.build_rows.add(n);
        if u32::try_from(n).is_err() {
            return Err(DataFusionError::ResourcesExhausted(format!(
                "BandJoinExec: {n} build rows (at most {} in one partition)",
                u32::MAX
            )));
        }
        let keys = evaluate(build_keys, &batch)?;
        let times = as_int64(batch.column(band.build_time))?;
        let mut hashes = vec![0; n];
        create_hashes(&keys, &KEY_HASHES, &mut hashes)?;
        let equal = comparators(&keys, &keys)?;
        // Each valid row's group, numbered in order of first appearance.
        let mut groups = HashTable::new();
        let mut group_hashes: Vec<u64> = Vec::new();
        let mut first_rows: Vec<u32> = Vec::new();
        let mut counts: Vec<u32> = Vec::new();
        let mut group_of = vec![u32::MAX; n];
        for row in (0..n).filter(|&row| valid(&keys, &times, row)) {
            let hash = hashes[row];
            let found = groups
                .find(hash, |&g: &u32| {
                    same_key(&equal, first_rows[g as usize] as usize, row)
                })
                .copied();
            let group = match found {
                Some(group) => group,
                None => {
                    let group = first_rows.len() as u32;
                    groups.insert_unique(hash, group, |&g| group_hashes[g as usize]);
                    group_hashes.push(hash);
                    first_rows.push(row as u32);
                    counts.push(0);
                    group
                }
            };
            group_of[row] = group;
            counts[group as usize] += 1;
        }
        // Rows by group (a counting sort), then each group's by time.
        let mut starts = Vec::with_capacity(counts.len() + 1);
        let mut total = 0u32;
        starts.push(0);
        for count in &counts {
            total += count;
            starts.push(total);
        }
        let mut next = starts.clone();
        let mut rows = vec![0u32; total as usize];
        for (row, &group) in group_of.iter().enumerate() {
            if group != u32::MAX {
                let slot = &mut next[group as usize];
                rows[*slot as usize] = row as u32;
                *slot += 1;
            }
        }
        let values = times.values();
        for window in starts.windows(2) {
            rows[window[0] as usize..window[1] as usize]
                .sort_unstable_by_key(|&row| values[row as usize]);
        }
        let times: Vec<i64> = rows.iter().map(|&row| values[row as usize]).collect();
        reservation.try_grow(
            keys.iter()
                .map(|k| k.get_array_memory_size())
                .sum::<usize>()
                + groups.capacity() * size_of::<u32>()
                + (starts.len() + rows.len()) * size_of::<u32>()
                + times.len() * size_of::<i64>(),
        )?;
        Ok(BuildSide {
            batch,
            keys,
            groups,
            starts,
            rows,
            times,
            _reservation: reservation,
        })
    }

    /// Group `group`'s first row (the one its key is compared with).
    fn first_row(&self, group: u32) -> usize {
        self.rows[self.starts[group as usize] as usize] as usize
    }
}

fn evaluate(exprs: &[Arc<dyn PhysicalExpr>], batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
    exprs
        .iter()
        .map(|expr| expr.evaluate(batch)?.into_array(batch.num_rows()))
        .collect()
}

/// A time column's values as 64-bit integers (timestamps keep their unit).
fn as_int64(array: &ArrayRef) -> Result<Int64Array> {
    Ok(cast(array, &DataType::Int64)?
        .as_primitive::<Int64Type>()
        .clone())
}

/// Comparators of `left[i]` with `right[j]`, one per key column.
fn comparators(left: &[ArrayRef], right: &[ArrayRef]) -> Result<Vec<DynComparator>> {
    left.iter()
        .zip(right)
        .map(|(l, r)| Ok(make_comparator(l, r, SortOptions::default())?))
        .collect()
}

fn same_key(equal: &[DynComparator], i: usize, j: usize) -> bool {
    equal.iter().all(|compare| compare(i, j).is_eq())
}

/// Whether a row can join: keys and time all present (a null equals nothing).
fn valid(keys: &[ArrayRef], times: &Int64Array, row: usize) -> bool {
    times.is_valid(row) && keys.iter().all(|key| key.is_valid(row))
}

/// The probe side's stream and where it is in its current batch.
struct ProbeSide {
    input: SendableRecordBatchStream,
    probe_keys: Vec<Arc<dyn PhysicalExpr>>,
    join_filter: JoinFilter,
    /// Output columns as indexes into the build side's columns then the probe side's.
    projection: Vec<usize>,
    schema: SchemaRef,
    band: Band,
    batch_size: usize,
    metrics: JoinMetrics,
    current: Option<Probing>,
}

/// A probe batch being joined.
struct Probing {
    batch: RecordBatch,
    keys: Vec<ArrayRef>,
    times: Int64Array,
    hashes: Vec<u64>,
    /// Probe key `i` against build key `j`.
    equal: Vec<DynComparator>,
    /// The next row to look up.
    row: usize,
    /// The row being joined and what is left of its band (positions in the build side's
    /// `rows`).
    joining: usize,
    band: Range<usize>,
}

impl ProbeSide {
    fn into_stream(
        self,
        built: Arc<BuildSide>,
    ) -> impl futures::Stream<Item = Result<RecordBatch>> + Send {
        futures::stream::try_unfold((self, built), |(mut probe, built)| async move {
            let next = probe.next_batch(&built).await?;
            Ok(next.map(|batch| (batch, (probe, built))))
        })
    }

    async fn next_batch(&mut self, built: &BuildSide) -> Result<Option<RecordBatch>> {
        if built.rows.is_empty() {
            // An inner join with nothing to match.
            return Ok(None);
        }
        loop {
            let Some(probing) = &mut self.current else {
                match self.input.next().await {
                    None => {
                        self.metrics.baseline.done();
                        return Ok(None);
                    }
                    Some(batch) => {
                        let _timer = self.metrics.baseline.elapsed_compute().timer();
                        self.current =
                            Some(Probing::new(batch?, &self.probe_keys, self.band, built)?);
                        continue;
                    }
                }
            };
            let _timer = self.metrics.baseline.elapsed_compute().timer();
            let (build_rows, probe_rows) = probing.candidates(built, self.band, self.batch_size);
            if build_rows.is_empty() {
                self.current = None;
                continue;
            }
            self.metrics.candidates.add(build_rows.len());
            let joined = self.join(built, &build_rows, &probe_rows)?;
            if joined.num_rows() > 0 {
                return Ok(Some(joined.record_output(&self.metrics.baseline)));
            }
        }
    }

    /// The pairs that pass the join's filter, as output rows.
    fn join(
        &self,
        built: &BuildSide,
        build_rows: &UInt32Array,
        probe_rows: &UInt32Array,
    ) -> Result<RecordBatch> {
        let Some(probing) = &self.current else {
            return internal_err!("BandJoinExec joined without a probe batch");
        };
        let pick = |side: JoinSide, column: usize, build_rows: &UInt32Array, probe_rows| {
            Ok(match side {
                JoinSide::Left => take(built.batch.column(column), build_rows, None)?,
                _ => take(probing.batch.column(column), probe_rows, None)?,
            })
        };
        let pairs = build_rows.len();
        let columns = self
            .join_filter
            .column_indices()
            .iter()
            .map(|index| pick(index.side, index.index, build_rows, probe_rows))
            .collect::<Result<Vec<_>>>()?;
        let intermediate = RecordBatch::try_new_with_options(
            Arc::clone(self.join_filter.schema()),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(pairs)),
        )?;
        let passed = self
            .join_filter
            .expression()
            .evaluate(&intermediate)?
            .into_array(pairs)?;
        let passed = passed.as_boolean();
        let build_rows = filter(build_rows, passed)?;
        let probe_rows = filter(probe_rows, passed)?;
        let (build_rows, probe_rows) = (
            build_rows.as_primitive::<arrow::datatypes::UInt32Type>(),
            probe_rows.as_primitive::<arrow::datatypes::UInt32Type>(),
        );
        let build_width = built.batch.num_columns();
        let columns = self
            .projection
            .iter()
            .map(|&i| {
                if i < build_width {
                    pick(JoinSide::Left, i, build_rows, probe_rows)
                } else {
                    pick(JoinSide::Right, i - build_width, build_rows, probe_rows)
                }
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(RecordBatch::try_new_with_options(
            Arc::clone(&self.schema),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(build_rows.len())),
        )?)
    }
}

impl Probing {
    fn new(
        batch: RecordBatch,
        probe_keys: &[Arc<dyn PhysicalExpr>],
        band: Band,
        built: &BuildSide,
    ) -> Result<Probing> {
        let keys = evaluate(probe_keys, &batch)?;
        let times = as_int64(batch.column(band.probe_time))?;
        let mut hashes = vec![0; batch.num_rows()];
        create_hashes(&keys, &KEY_HASHES, &mut hashes)?;
        let equal = comparators(&keys, &built.keys)?;
        Ok(Probing {
            batch,
            keys,
            times,
            hashes,
            equal,
            row: 0,
            joining: 0,
            band: 0..0,
        })
    }

    /// Up to `limit` (build row, probe row) pairs inside the band, continuing where the
    /// last call stopped; none once the batch is done.
    fn candidates(
        &mut self,
        built: &BuildSide,
        band: Band,
        limit: usize,
    ) -> (UInt32Array, UInt32Array) {
        let mut build_rows = Vec::new();
        let mut probe_rows = Vec::new();
        while build_rows.len() < limit {
            if self.band.is_empty() {
                if self.row == self.batch.num_rows() {
                    break;
                }
                self.joining = self.row;
                self.band = self.band_of(self.row, built, band);
                self.row += 1;
                continue;
            }
            let end = self
                .band
                .end
                .min(self.band.start + (limit - build_rows.len()));
            build_rows.extend_from_slice(&built.rows[self.band.start..end]);
            probe_rows.resize(build_rows.len(), self.joining as u32);
            self.band.start = end;
        }
        (UInt32Array::from(build_rows), UInt32Array::from(probe_rows))
    }

    /// Where row `row`'s band lies among the build side's rows.
    fn band_of(&self, row: usize, built: &BuildSide, band: Band) -> Range<usize> {
        if !valid(&self.keys, &self.times, row) {
            return 0..0;
        }
        let found = built.groups.find(self.hashes[row], |&g| {
            same_key(&self.equal, row, built.first_row(g))
        });
        let Some(&group) = found else {
            return 0..0;
        };
        let start = built.starts[group as usize] as usize;
        let end = built.starts[group as usize + 1] as usize;
        let within = band.within(&built.times[start..end], self.times.value(row));
        start + within.start..start + within.end
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::util::pretty::pretty_format_batches;
    use datafusion::execution::session_state::SessionStateBuilder;
    use datafusion::prelude::{SessionConfig, SessionContext};

    /// Keys and times with nulls and repeats (b: 150 rows, other nulls and times).
    const TABLES: &str = "CREATE TABLE a AS SELECT value AS id, \
        CASE WHEN value % 13 = 0 THEN NULL ELSE value % 6 END AS k, \
        CASE WHEN value % 17 = 0 THEN NULL ELSE (value * 37) % 50 END AS t \
        FROM generate_series(1, 120)";

    /// `sql`'s rows as text, by a session with kefu's operators or with DataFusion's own.
    async fn answer(sql: &str, kefu: bool, batch_size: usize, collect_left: bool) -> String {
        let mut config = SessionConfig::new()
            .with_batch_size(batch_size)
            .with_target_partitions(3);
        if !collect_left {
            let optimizer = &mut config.options_mut().optimizer;
            optimizer.hash_join_single_partition_threshold = 0;
            optimizer.hash_join_single_partition_threshold_rows = 0;
        }
        let mut builder = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features();
        if kefu {
            builder = builder.with_physical_optimizer_rules(crate::rules::physical_rules());
        }
        let ctx = SessionContext::new_with_state(builder.build());
        // Tables in memory, with row counts for choosing how to join.
        ctx.sql(TABLES).await.unwrap().collect().await.unwrap();
        let b = TABLES.replace("TABLE a", "TABLE b").replace("120", "150");
        ctx.sql(&b.replace("% 13", "% 11").replace("37", "23"))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let df = ctx.sql(sql).await.unwrap();
        let plan = format!(
            "{}",
            datafusion::physical_plan::displayable(
                df.clone().create_physical_plan().await.unwrap().as_ref()
            )
            .indent(false)
        );
        let mode = if collect_left {
            "CollectLeft"
        } else {
            "Partitioned"
        };
        assert_eq!(
            plan.contains(&format!("BandJoinExec: mode={mode}")),
            kefu,
            "{plan}"
        );
        pretty_format_batches(&df.collect().await.unwrap())
            .unwrap()
            .to_string()
    }

    /// Bands of every form, over keys and times with nulls and repeats, in batches small
    /// and large, collected and partitioned: the same rows as DataFusion's hash join.
    #[tokio::test]
    async fn band_joins_agree_with_datafusion() {
        let bands = [
            "b.t > a.t AND b.t <= a.t + 3",
            "b.t >= a.t - 2 AND b.t < a.t + 2",
            "a.t + 4 > b.t AND a.t - 1 <= b.t AND a.id <> b.id",
            "b.t BETWEEN a.t AND a.t + 5",
            "b.t - 2 >= a.t AND b.t - 6 < a.t AND (a.id + b.id) % 3 = 0",
        ];
        for band in bands {
            let sql = format!(
                "SELECT a.id, b.id, a.t, b.t FROM a JOIN b ON a.k = b.k AND {band} ORDER BY 1, 2"
            );
            for (batch_size, collect_left) in [(1, true), (5, false), (64, true), (8192, false)] {
                assert_eq!(
                    answer(&sql, true, batch_size, collect_left).await,
                    answer(&sql, false, batch_size, collect_left).await,
                    "{band}, batches of {batch_size}"
                );
            }
        }
    }

    fn band(lower: (i64, bool), upper: (i64, bool)) -> Band {
        Band {
            build_time: 0,
            probe_time: 0,
            lower: Bound {
                offset: lower.0,
                inclusive: lower.1,
            },
            upper: Bound {
                offset: upper.0,
                inclusive: upper.1,
            },
        }
    }

    #[test]
    fn a_band_takes_its_ends_as_it_is_told() {
        let times = [1, 3, 3, 5, 8, 13];
        // 3 < t <= 8
        assert_eq!(band((-2, false), (3, true)).within(&times, 5), 3..5);
        // 3 <= t < 8
        assert_eq!(band((-2, true), (3, false)).within(&times, 5), 1..4);
        // Empty and reversed bands hold nothing.
        assert!(band((0, false), (0, false)).within(&times, 3).is_empty());
        assert!(band((4, true), (-4, true)).within(&times, 5).is_empty());
        // Offsets past the end of time saturate rather than wrap.
        assert_eq!(
            band((i64::MIN, true), (i64::MAX, true)).within(&times, 5),
            0..6
        );
    }
}
