//! `percentile_cont` as DataFusion defines it, with a grouped accumulator that keeps the
//! arrays it is given instead of copying every value into a growing vector per group.
//! DataFusion's copies each value three times over (its group's vector as it doubles, the
//! partial state, the final group's vector): in `compare_adhoc.py`'s q10, the median and
//! P95 of 6.5 million handle times per category, a third of the process's CPU was the
//! kernel faulting in those copies. Here the arrays are kept as they arrive (the two
//! percentiles of one expression share them), and each group's values are gathered once,
//! into a buffer of the exact size, when the state or the result is asked for. Everything
//! else — signature, coercion, states, `WITHIN GROUP`, the rewrite of 0 and 1 to `min` /
//! `max`, the interpolation — is DataFusion's own function, which this wraps.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, ListArray, PrimitiveArray,
};
use arrow::buffer::{NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, Field, FieldRef, Float64Type};
use datafusion::common::{Result, ScalarValue, internal_err};
use datafusion::functions_aggregate::percentile_cont::PercentileCont;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Documentation, EmitTo, GroupsAccumulator,
    Signature, function::AggregateFunctionSimplification,
};
use datafusion::physical_expr::expressions::Literal;

/// `percentile_cont` (and its alias `quantile_cont`), replacing DataFusion's under the same
/// names.
pub fn function() -> AggregateUDF {
    AggregateUDF::from(Percentiles::default())
}

#[derive(Debug, Default, PartialEq, Eq, Hash)]
struct Percentiles {
    datafusion: PercentileCont,
}

impl AggregateUDFImpl for Percentiles {
    fn name(&self) -> &str {
        self.datafusion.name()
    }

    fn aliases(&self) -> &[String] {
        self.datafusion.aliases()
    }

    fn signature(&self) -> &Signature {
        self.datafusion.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.datafusion.return_type(arg_types)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        self.datafusion.state_fields(args)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        self.datafusion.accumulator(args)
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        self.datafusion.groups_accumulator_supported(args)
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        match (args.expr_fields[0].data_type(), percentile_of(&args)) {
            (DataType::Float64, Some(percentile)) => Ok(Box::new(KeptValues {
                percentile,
                chunks: Vec::new(),
                counts: Vec::new(),
            })),
            // Other types (REAL), and percentiles DataFusion reports as errors, are its own.
            _ => Ok(Box::new(ValuesOnly(
                self.datafusion.create_groups_accumulator(args)?,
            ))),
        }
    }

    fn simplify(&self) -> Option<AggregateFunctionSimplification> {
        self.datafusion.simplify()
    }

    fn supports_within_group_clause(&self) -> bool {
        self.datafusion.supports_within_group_clause()
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.datafusion.documentation()
    }
}

/// The percentile asked for, as DataFusion reads it: a literal in [0, 1], reversed for
/// `WITHIN GROUP (ORDER BY … DESC)`.
fn percentile_of(args: &AccumulatorArgs) -> Option<f64> {
    let literal = args.exprs.get(1)?.downcast_ref::<Literal>()?;
    let ScalarValue::Float64(Some(percentile)) = literal.value() else {
        return None;
    };
    if !(0.0..=1.0).contains(percentile) {
        return None;
    }
    let descending = args
        .order_bys
        .first()
        .is_some_and(|sort| sort.options.descending);
    Some(if descending {
        1.0 - percentile
    } else {
        *percentile
    })
}

/// DataFusion's grouped accumulator for the types kefu's does not take, handed only the
/// values when partial aggregation is skipped: its `convert_to_state` asserts a single
/// argument, and is given the percentile too (DataFusion 55 panics there; its row
/// accumulator is no way round, as its `merge_batch` reads only the first state it is
/// given and so drops values when a group's partial states arrive together).
struct ValuesOnly(Box<dyn GroupsAccumulator>);

impl GroupsAccumulator for ValuesOnly {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.0
            .update_batch(values, group_indices, opt_filter, total_num_groups)
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        self.0.evaluate(emit_to)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        self.0.state(emit_to)
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.0.merge_batch(values, group_indices, total_num_groups)
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        self.0.convert_to_state(&values[..1], opt_filter)
    }

    fn size(&self) -> usize {
        self.0.size()
    }
}

/// Which group each row (or list) of a kept array belongs to; `SKIPPED` for rows that
/// count for none (null, filtered out, or emitted already).
const SKIPPED: u32 = u32::MAX;

/// Arrays as they were given to the accumulator, with each row's group.
enum Chunk {
    /// Input values (updates), one value a row.
    Values {
        values: Float64Array,
        groups: Vec<u32>,
    },
    /// Partial states (merges), a list of values a row.
    Lists { lists: ListArray, groups: Vec<u32> },
}

struct KeptValues {
    percentile: f64,
    chunks: Vec<Chunk>,
    /// Values per group.
    counts: Vec<usize>,
}

impl KeptValues {
    fn grow(&mut self, total_num_groups: usize) {
        if self.counts.len() < total_num_groups {
            self.counts.resize(total_num_groups, 0);
        }
    }

    /// The first `n` groups' values, gathered group after group, with where each group's
    /// start; those groups are forgotten and the others renumbered from 0.
    fn take_first(&mut self, n: usize) -> Result<(Vec<f64>, Vec<usize>)> {
        let mut offsets = Vec::with_capacity(n + 1);
        offsets.push(0);
        for count in &self.counts[..n] {
            offsets.push(offsets[offsets.len() - 1] + count);
        }
        let mut gathered = vec![0.0; offsets[n]];
        let mut next = offsets[..n].to_vec();
        let emitted = n;
        let n = u32::try_from(n).unwrap_or(SKIPPED);
        for chunk in &mut self.chunks {
            match chunk {
                Chunk::Values { values, groups } => {
                    for (group, value) in groups.iter_mut().zip(values.values()) {
                        if *group < n {
                            let slot = &mut next[*group as usize];
                            gathered[*slot] = *value;
                            *slot += 1;
                            *group = SKIPPED;
                        } else if *group != SKIPPED {
                            *group -= n;
                        }
                    }
                }
                Chunk::Lists { lists, groups } => {
                    let values = lists.values().as_primitive::<Float64Type>().values();
                    let offsets = lists.value_offsets();
                    for (row, group) in groups.iter_mut().enumerate() {
                        if *group < n {
                            let list = &values[offsets[row] as usize..offsets[row + 1] as usize];
                            let slot = &mut next[*group as usize];
                            gathered[*slot..*slot + list.len()].copy_from_slice(list);
                            *slot += list.len();
                            *group = SKIPPED;
                        } else if *group != SKIPPED {
                            *group -= n;
                        }
                    }
                }
            }
        }
        self.counts.drain(..emitted);
        if self.counts.is_empty() {
            self.chunks.clear();
        }
        if next.iter().zip(&offsets[1..]).any(|(at, end)| at != end) {
            return internal_err!("percentile_cont: a group's values were miscounted");
        }
        Ok((gathered, offsets))
    }
}

impl GroupsAccumulator for KeptValues {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.grow(total_num_groups);
        let values = values[0].as_primitive::<Float64Type>().clone();
        let counted = counted_rows(&values, opt_filter);
        let groups = group_indices
            .iter()
            .enumerate()
            .map(|(row, &group)| {
                if counted.as_ref().is_none_or(|c| c.is_valid(row)) {
                    self.counts[group] += 1;
                    group as u32
                } else {
                    SKIPPED
                }
            })
            .collect();
        self.chunks.push(Chunk::Values { values, groups });
        Ok(())
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.grow(total_num_groups);
        let lists = values[0].as_list::<i32>().clone();
        let offsets = lists.value_offsets();
        let groups = group_indices
            .iter()
            .enumerate()
            .map(|(row, &group)| {
                if lists.is_valid(row) {
                    self.counts[group] += (offsets[row + 1] - offsets[row]) as usize;
                    group as u32
                } else {
                    SKIPPED
                }
            })
            .collect();
        self.chunks.push(Chunk::Lists { lists, groups });
        Ok(())
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let n = emitted(emit_to, self.counts.len());
        let (values, offsets) = self.take_first(n)?;
        let offsets: Vec<i32> = offsets
            .into_iter()
            .map(i32::try_from)
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| {
                datafusion::common::DataFusionError::ResourcesExhausted(
                    "percentile_cont: over 2^31 values in one partial state".to_string(),
                )
            })?;
        Ok(vec![Arc::new(ListArray::new(
            Arc::new(Field::new_list_field(DataType::Float64, true)),
            OffsetBuffer::new(ScalarBuffer::from(offsets)),
            Arc::new(Float64Array::from(values)),
            None,
        ))])
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let n = emitted(emit_to, self.counts.len());
        let (mut values, offsets) = self.take_first(n)?;
        let result: Float64Array = offsets
            .windows(2)
            .map(|w| percentile(&mut values[w[0]..w[1]], self.percentile))
            .collect();
        Ok(Arc::new(result))
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        // Each row its own group: a list of its one value, or null.
        let input = values[0].as_primitive::<Float64Type>();
        let len = i32::try_from(input.len()).map_err(|_| {
            datafusion::common::DataFusionError::Internal(
                "percentile_cont: a batch of over 2^31 rows".to_string(),
            )
        })?;
        Ok(vec![Arc::new(ListArray::new(
            Arc::new(Field::new_list_field(DataType::Float64, true)),
            OffsetBuffer::new(ScalarBuffer::from((0..=len).collect::<Vec<_>>())),
            Arc::new(PrimitiveArray::<Float64Type>::new(
                input.values().clone(),
                None,
            )),
            counted_rows(input, opt_filter),
        ))])
    }

    fn size(&self) -> usize {
        let chunks: usize = self
            .chunks
            .iter()
            .map(|chunk| match chunk {
                Chunk::Values { values, groups } => {
                    values.get_array_memory_size() + groups.capacity() * size_of::<u32>()
                }
                Chunk::Lists { lists, groups } => {
                    lists.get_array_memory_size() + groups.capacity() * size_of::<u32>()
                }
            })
            .sum();
        chunks + self.counts.capacity() * size_of::<usize>()
    }
}

impl std::fmt::Debug for KeptValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeptValues")
            .field("percentile", &self.percentile)
            .field("chunks", &self.chunks.len())
            .field("groups", &self.counts.len())
            .finish()
    }
}

fn emitted(emit_to: EmitTo, groups: usize) -> usize {
    match emit_to {
        EmitTo::All => groups,
        EmitTo::First(n) => n.min(groups),
    }
}

/// Rows that count (value present, filter true), as a null mask; `None` when all do.
fn counted_rows(values: &Float64Array, filter: Option<&BooleanArray>) -> Option<NullBuffer> {
    let passed = filter.map(|filter| {
        let passed = match filter.nulls() {
            Some(nulls) => filter.values() & nulls.inner(),
            None => filter.values().clone(),
        };
        NullBuffer::new(passed)
    });
    NullBuffer::union(values.nulls(), passed.as_ref())
}

/// DataFusion's continuous percentile: the value at `p × (n − 1)` in ascending (total)
/// order, interpolated between its neighbours with the weight rounded down to millionths.
fn percentile(values: &mut [f64], p: f64) -> Option<f64> {
    const PRECISION: f64 = 1_000_000.0;
    match values.len() {
        0 => None,
        1 => Some(values[0]),
        _ if p == 0.0 => values.iter().copied().min_by(f64::total_cmp),
        _ if p == 1.0 => values.iter().copied().max_by(f64::total_cmp),
        len => {
            let index = p * ((len - 1) as f64);
            let (lower, upper) = (index.floor() as usize, index.ceil() as usize);
            let (_, &mut low, above) = values.select_nth_unstable_by(lower, f64::total_cmp);
            if lower == upper {
                return Some(low);
            }
            // The next value up is the least of those above.
            let high = above.iter().copied().min_by(f64::total_cmp)?;
            let weight = ((index - lower as f64) * PRECISION) as usize as f64 / PRECISION;
            Some(low + (high - low) * weight)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::util::pretty::pretty_format_batches;
    use datafusion::execution::session_state::SessionStateBuilder;
    use datafusion::prelude::{SessionConfig, SessionContext};

    /// `sql`'s rows as text, with kefu's percentile_cont or DataFusion's.
    async fn answer(sql: &str, kefu: bool, batch_size: usize, skip_partial: bool) -> String {
        let mut config = SessionConfig::new()
            .with_batch_size(batch_size)
            .with_target_partitions(3);
        if skip_partial {
            let execution = &mut config.options_mut().execution;
            execution.skip_partial_aggregation_probe_rows_threshold = 1;
            execution.skip_partial_aggregation_probe_ratio_threshold = 0.0;
        }
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features()
            .build();
        let ctx = SessionContext::new_with_state(state);
        if kefu {
            ctx.register_udaf(function());
        }
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        pretty_format_batches(&batches).unwrap().to_string()
    }

    /// Groups with nulls, a filter, descending order, empty groups, integers coerced:
    /// in batches small and large, with and without partial aggregation, the same answers
    /// as DataFusion's own accumulator.
    #[tokio::test]
    async fn percentiles_agree_with_datafusion() {
        let sql = "WITH t AS (SELECT value % 7 AS g, \
                          CASE WHEN value % 5 = 0 THEN NULL ELSE (value * 7919) % 1000 / 10.0 END AS x, \
                          value AS n \
                   FROM generate_series(1, 3000)) \
                   SELECT g, percentile_cont(0.5) WITHIN GROUP (ORDER BY x), \
                          percentile_cont(0.95) WITHIN GROUP (ORDER BY x), \
                          percentile_cont(0.3) WITHIN GROUP (ORDER BY x DESC), \
                          percentile_cont(x, 0.25), \
                          percentile_cont(0.9) WITHIN GROUP (ORDER BY n) FILTER (WHERE n % 3 = 0), \
                          percentile_cont(0.5) WITHIN GROUP (ORDER BY x) FILTER (WHERE g = 99), \
                          percentile_cont(0.75) WITHIN GROUP (ORDER BY n) \
                   FROM t GROUP BY g ORDER BY g";
        // DataFusion's own accumulator panics when partial aggregation is skipped (its
        // convert_to_state asserts one argument and is given the percentile too), so its
        // answers come with partial aggregation.
        for (batch_size, skip_partial) in [(1, false), (7, true), (100, false), (8192, true)] {
            let kefu = answer(sql, true, batch_size, skip_partial).await;
            assert_eq!(
                kefu,
                answer(sql, false, batch_size, false).await,
                "batches of {batch_size}, partial aggregation skipped: {skip_partial}"
            );
        }
    }

    /// Emitting the first groups leaves the others whole, renumbered from 0.
    #[test]
    fn emitting_the_first_groups_keeps_the_rest() {
        let mut acc = KeptValues {
            percentile: 0.5,
            chunks: Vec::new(),
            counts: Vec::new(),
        };
        let values: ArrayRef = Arc::new(Float64Array::from(vec![
            Some(1.0),
            Some(10.0),
            None,
            Some(3.0),
            Some(20.0),
            Some(5.0),
        ]));
        acc.update_batch(&[values], &[0, 1, 1, 0, 1, 2], None, 3)
            .unwrap();
        let first = acc.evaluate(EmitTo::First(1)).unwrap();
        assert_eq!(first.as_primitive::<Float64Type>().values(), &[2.0]);
        let more: ArrayRef = Arc::new(Float64Array::from(vec![30.0, 7.0]));
        acc.update_batch(&[more], &[0, 1], None, 2).unwrap();
        // Group 1 (was 2): 5 and 7; group 0 (was 1): 10, 20, 30.
        let rest = acc.evaluate(EmitTo::All).unwrap();
        assert_eq!(rest.as_primitive::<Float64Type>().values(), &[20.0, 6.0]);
    }
}
