//! `period_last_next(period, at)`: per group, one entry for each period its rows fall
//! in, ascending — `{period, last_at, next_at}`: the period, the latest `at` in it, and
//! the earliest `at` of the group's next period with rows (null after its last one).
//!
//! Activity churn asks, for every customer and month, whether the month's last contact
//! was followed by another within 90 days. Said in plain SQL that is an aggregate by
//! customer × month and a `lead()` over it; at a million customers that is 41 M
//! contacts in 10.6 M groups, then a sort of the groups for the window. Grouped by
//! customer alone, each group holds a cell (first and last instant) per period, and the
//! window's work comes for free: churn_monthly over 13 months at a million customers
//! went from about 9.5 s to 5 s.
//!
//! Periods and instants are integers, dates or timestamps, and come back in their own
//! types; rows with a null period or instant are skipped; a group without rows gets an
//! empty list. `unnest` turns the list into rows.

use std::mem::size_of;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Int64Array, Int64Builder, ListArray,
    StructArray,
};
use arrow::buffer::OffsetBuffer;
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, FieldRef, Fields};
use datafusion::common::{Result as DfResult, ScalarValue, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};

use crate::by_key::{READ_AHEAD, key_type_supported, keys, read_ahead};

/// The function, for registration.
pub fn function() -> AggregateUDF {
    AggregateUDF::from(PeriodLastNext::new())
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct PeriodLastNext {
    signature: Signature,
}

impl PeriodLastNext {
    fn new() -> Self {
        PeriodLastNext {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

/// The type of one entry of the result.
fn entry_fields(period: &DataType, at: &DataType) -> Fields {
    Fields::from(vec![
        Field::new("period", period.clone(), false),
        Field::new("last_at", at.clone(), false),
        Field::new("next_at", at.clone(), true),
    ])
}

/// The partial state: one binary value per group holding its entries, each the period,
/// its earliest and its latest instant as three little-endian `i64`. Rows handed on
/// without partial aggregation are one-entry states by the ten million, and a binary
/// column moves through a hash repartition (and a cluster's shuffle) as buffer copies;
/// three lists of `i64` went through `take_list` there, about 13% of churn_monthly's CPU.
const ENTRY_BYTES: usize = 3 * size_of::<i64>();

impl AggregateUDFImpl for PeriodLastNext {
    fn name(&self) -> &str {
        "period_last_next"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> DfResult<DataType> {
        for (name, arg) in ["period", "at"].iter().zip(args) {
            if !key_type_supported(arg) || matches!(arg, DataType::Null) {
                return plan_err!(
                    "period_last_next(period, at): {name} must be an integer, date or timestamp, not {arg}"
                );
            }
        }
        Ok(DataType::List(Arc::new(Field::new_list_field(
            DataType::Struct(entry_fields(&args[0], &args[1])),
            true,
        ))))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> DfResult<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format!("{}[entries]", args.name),
            DataType::Binary,
            true,
        ))])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        Ok(Box::new(SingleLastNext {
            output: Output::of(&args)?,
            periods: Periods::default(),
        }))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> DfResult<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(GroupsLastNext::new(Output::of(&args)?)))
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    period: i64,
    first: i64,
    last: i64,
}

/// One group's periods, sorted by period.
#[derive(Debug, Default)]
struct Periods(Vec<Entry>);

impl Periods {
    /// Adds instants `first..=last` of `period`; returns whether it was a new period.
    fn add(&mut self, period: i64, first: i64, last: i64) -> bool {
        match self.0.binary_search_by_key(&period, |e| e.period) {
            Ok(i) => {
                let entry = &mut self.0[i];
                entry.first = entry.first.min(first);
                entry.last = entry.last.max(last);
                false
            }
            Err(i) => {
                self.0.insert(
                    i,
                    Entry {
                        period,
                        first,
                        last,
                    },
                );
                true
            }
        }
    }
}

/// The argument types, in which the result is given back.
#[derive(Debug)]
struct Output {
    period: DataType,
    at: DataType,
}

impl Output {
    fn of(args: &AccumulatorArgs) -> DfResult<Self> {
        let [period, at] = args.exprs else {
            return plan_err!("period_last_next takes two arguments (period, at)");
        };
        Ok(Output {
            period: period.data_type(args.schema)?,
            at: at.data_type(args.schema)?,
        })
    }

    /// An `i64` column back in `to` (dates are days, as `Date32`).
    fn typed(values: Int64Array, to: &DataType) -> DfResult<ArrayRef> {
        let values: ArrayRef = Arc::new(values);
        Ok(match to {
            DataType::Int64 => values,
            DataType::Date32 => cast(&cast(&values, &DataType::Int32)?, to)?,
            _ => cast(&values, to)?,
        })
    }

    /// The result for `groups`: one list per group.
    fn lists(&self, groups: &Flat) -> DfResult<ListArray> {
        let mut periods = Int64Builder::with_capacity(groups.entries.len());
        let mut lasts = Int64Builder::with_capacity(groups.entries.len());
        let mut nexts = Int64Builder::with_capacity(groups.entries.len());
        let mut start = 0;
        for &length in &groups.lengths {
            let group = &groups.entries[start..start + length];
            for (i, entry) in group.iter().enumerate() {
                periods.append_value(entry.period);
                lasts.append_value(entry.last);
                nexts.append_option(group.get(i + 1).map(|next| next.first));
            }
            start += length;
        }
        let fields = entry_fields(&self.period, &self.at);
        let entries = StructArray::try_new(
            fields.clone(),
            vec![
                Self::typed(periods.finish(), &self.period)?,
                Self::typed(lasts.finish(), &self.at)?,
                Self::typed(nexts.finish(), &self.at)?,
            ],
            None,
        )?;
        Ok(ListArray::try_new(
            Arc::new(Field::new_list_field(DataType::Struct(fields), true)),
            OffsetBuffer::from_lengths(groups.lengths.iter().copied()),
            Arc::new(entries),
            None,
        )?)
    }
}

/// Groups' entries one group after another, each group's sorted by period.
#[derive(Default)]
struct Flat {
    entries: Vec<Entry>,
    lengths: Vec<usize>,
}

impl Flat {
    /// The first `groups` groups of columns of cells (see [`Layout::Columns`]).
    fn of_columns(periods: &[i64], columns: &[Vec<Cell>], groups: usize) -> Flat {
        let mut flat = Flat::default();
        for group in 0..groups {
            let before = flat.entries.len();
            for (&period, column) in periods.iter().zip(columns) {
                let cell = column[group];
                if !cell.is_empty() {
                    flat.entries.push(Entry {
                        period,
                        first: cell.first,
                        last: cell.last,
                    });
                }
            }
            flat.lengths.push(flat.entries.len() - before);
        }
        flat
    }

    /// Each group's entries as its own list.
    fn into_lists(self) -> Vec<Periods> {
        let mut entries = self.entries.into_iter();
        self.lengths
            .iter()
            .map(|&n| Periods(entries.by_ref().take(n).collect()))
            .collect()
    }

    fn of_lists<'a>(groups: impl Iterator<Item = &'a Periods>) -> Flat {
        let mut flat = Flat::default();
        for group in groups {
            flat.entries.extend_from_slice(&group.0);
            flat.lengths.push(group.0.len());
        }
        flat
    }
}

/// The partial state of `groups` (see [`ENTRY_BYTES`]).
fn state_of(groups: &Flat) -> Vec<ArrayRef> {
    let mut bytes = Vec::with_capacity(groups.entries.len() * ENTRY_BYTES);
    for entry in &groups.entries {
        for value in [entry.period, entry.first, entry.last] {
            bytes.extend_from_slice(&value.to_le_bytes());
        }
    }
    let offsets = OffsetBuffer::from_lengths(groups.lengths.iter().map(|n| n * ENTRY_BYTES));
    vec![Arc::new(BinaryArray::new(offsets, bytes.into(), None))]
}

/// The rows' periods and instants, with whether each row counts: both present and, under
/// a FILTER, passed.
struct Rows {
    periods: Int64Array,
    ats: Int64Array,
}

impl Rows {
    fn of(values: &[ArrayRef]) -> DfResult<Rows> {
        Ok(Rows {
            periods: keys(&values[0])?,
            ats: keys(&values[1])?,
        })
    }

    /// `(period, at)` of `row` if it counts.
    fn get(&self, row: usize, filter: Option<&BooleanArray>) -> Option<(i64, i64)> {
        let counts = self.periods.is_valid(row)
            && self.ats.is_valid(row)
            && filter.is_none_or(|f| f.is_valid(row) && f.value(row));
        counts.then(|| (self.periods.value(row), self.ats.value(row)))
    }

    fn len(&self) -> usize {
        self.periods.len()
    }
}

/// Calls `add(row, period, first, last)` for every entry of partial states.
fn each_state_entry(
    states: &[ArrayRef],
    mut add: impl FnMut(usize, i64, i64, i64),
) -> DfResult<()> {
    let Some(entries) = states.first().and_then(|s| s.as_binary_opt::<i32>()) else {
        return plan_err!("period_last_next: a partial state is one binary column");
    };
    for row in 0..entries.len() {
        if entries.is_null(row) {
            continue;
        }
        let value = entries.value(row);
        if value.len() % ENTRY_BYTES != 0 {
            return plan_err!("period_last_next: a partial state of {} bytes", value.len());
        }
        for entry in value.chunks_exact(ENTRY_BYTES) {
            let part =
                |i: usize| i64::from_le_bytes(entry[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
            add(row, part(0), part(1), part(2));
        }
    }
    Ok(())
}

/// Periods at most this many are kept as columns (see [`Layout::Columns`]).
const MAX_COLUMNS: usize = 32;

/// Columns are given up once their cells would outnumber this many times the filled
/// ones (plus one per group): sparse periods, days over a customer base that calls a
/// few times a year, take their memory as lists.
const MAX_EMPTY_RATIO: usize = 4;

#[derive(Clone, Copy)]
struct Cell {
    first: i64,
    last: i64,
}

impl Cell {
    const EMPTY: Cell = Cell {
        first: i64::MAX,
        last: i64::MIN,
    };

    fn is_empty(self) -> bool {
        self.first > self.last
    }
}

enum Layout {
    /// One column of cells per period, as long as the groups, the columns sorted by
    /// period. A row writes one cell at a place known from its group and period. With
    /// a million groups, a list per group first had to be found and then searched, two
    /// reads of far-apart memory one after the other for every row: that took a third
    /// of churn_monthly's CPU time.
    Columns {
        periods: Vec<i64>,
        cells: Vec<Vec<Cell>>,
        /// Cells holding a value.
        filled: usize,
    },
    /// Each group's periods as a sorted list: once there are more than [`MAX_COLUMNS`]
    /// periods (days over years), whose columns would be mostly empty.
    Lists {
        groups: Vec<Periods>,
        entries: usize,
    },
}

struct GroupsLastNext {
    output: Output,
    layout: Layout,
    groups: usize,
}

impl GroupsLastNext {
    fn new(output: Output) -> Self {
        GroupsLastNext {
            output,
            layout: Layout::Columns {
                periods: Vec::new(),
                cells: Vec::new(),
                filled: 0,
            },
            groups: 0,
        }
    }

    fn resize(&mut self, groups: usize) {
        self.groups = groups;
        match &mut self.layout {
            Layout::Columns { cells, .. } => {
                for column in cells {
                    column.resize(groups, Cell::EMPTY);
                }
            }
            Layout::Lists { groups: lists, .. } => lists.resize_with(groups, Periods::default),
        }
    }

    fn add(&mut self, group: usize, period: i64, first: i64, last: i64) {
        if let Layout::Columns {
            periods,
            cells,
            filled,
        } = &mut self.layout
        {
            let column = match periods.binary_search(&period) {
                Ok(column) => Some(column),
                Err(column)
                    if periods.len() < MAX_COLUMNS
                        && (periods.len() + 1) * self.groups
                            <= MAX_EMPTY_RATIO * (*filled + self.groups) =>
                {
                    periods.insert(column, period);
                    cells.insert(column, vec![Cell::EMPTY; self.groups]);
                    Some(column)
                }
                Err(_) => None,
            };
            match column {
                Some(column) => {
                    let cell = &mut cells[column][group];
                    *filled += usize::from(cell.is_empty());
                    cell.first = cell.first.min(first);
                    cell.last = cell.last.max(last);
                    return;
                }
                None => self.switch_to_lists(),
            }
        }
        if let Layout::Lists { groups, entries } = &mut self.layout
            && groups[group].add(period, first, last)
        {
            *entries += 1;
        }
    }

    /// Adds `entries` (group, period, first, last), a run at a time, each run's cells
    /// [read ahead](read_ahead): with a million groups nearly every cell is a cache miss
    /// (the one load `add` waited on, 86% of its time in `perf annotate`).
    fn add_all(&mut self, entries: &[(usize, i64, i64, i64)]) {
        for run in entries.chunks(READ_AHEAD) {
            self.read_cells_of(run);
            for &(group, period, first, last) in run {
                self.add(group, period, first, last);
            }
        }
    }

    /// Reads the cells `run` will update, where their columns exist.
    fn read_cells_of(&self, run: &[(usize, i64, i64, i64)]) {
        let Layout::Columns { periods, cells, .. } = &self.layout else {
            return;
        };
        let mut column = None;
        let mut column_period = None;
        read_ahead(run, |&(group, period, _, _)| {
            if column_period != Some(period) {
                column = periods.binary_search(&period).ok();
                column_period = Some(period);
            }
            Some(cells[column?].get(group)?.first)
        });
    }

    fn switch_to_lists(&mut self) {
        let Layout::Columns {
            periods,
            cells,
            filled,
        } = &self.layout
        else {
            return;
        };
        let entries = *filled;
        let groups = Flat::of_columns(periods, cells, self.groups).into_lists();
        self.layout = Layout::Lists { groups, entries };
    }

    fn take(&mut self, emit_to: EmitTo) -> Flat {
        let taken = match emit_to {
            EmitTo::All => self.groups,
            EmitTo::First(n) => n.min(self.groups),
        };
        self.groups -= taken;
        match &mut self.layout {
            Layout::Columns {
                periods,
                cells,
                filled,
            } => {
                let columns: Vec<Vec<Cell>> = cells
                    .iter_mut()
                    .map(|column| emit_to.take_needed(column))
                    .collect();
                let flat = Flat::of_columns(periods, &columns, taken);
                *filled -= flat.entries.len();
                if self.groups == 0 {
                    periods.clear();
                    cells.clear();
                }
                flat
            }
            Layout::Lists { groups, entries } => {
                let lists = emit_to.take_needed(groups);
                let flat = Flat::of_lists(lists.iter());
                *entries -= flat.entries.len();
                flat
            }
        }
    }
}

impl GroupsAccumulator for GroupsLastNext {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> DfResult<()> {
        self.resize(total_num_groups);
        let rows = Rows::of(values)?;
        let entries: Vec<_> = group_indices
            .iter()
            .enumerate()
            .filter_map(|(row, &group)| {
                let (period, at) = rows.get(row, opt_filter)?;
                Some((group, period, at, at))
            })
            .collect();
        self.add_all(&entries);
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> DfResult<ArrayRef> {
        let taken = self.take(emit_to);
        Ok(Arc::new(self.output.lists(&taken)?))
    }

    fn state(&mut self, emit_to: EmitTo) -> DfResult<Vec<ArrayRef>> {
        Ok(state_of(&self.take(emit_to)))
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> DfResult<()> {
        self.resize(total_num_groups);
        let mut entries = Vec::with_capacity(group_indices.len());
        each_state_entry(values, |row, period, first, last| {
            entries.push((group_indices[row], period, first, last));
        })?;
        self.add_all(&entries);
        Ok(())
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> DfResult<Vec<ArrayRef>> {
        // Each row its own state: one period whose first and last instant are the row's,
        // or none for a row that is skipped.
        let rows = Rows::of(values)?;
        let mut states = Flat::default();
        for row in 0..rows.len() {
            let entry = rows.get(row, opt_filter);
            if let Some((period, at)) = entry {
                states.entries.push(Entry {
                    period,
                    first: at,
                    last: at,
                });
            }
            states.lengths.push(usize::from(entry.is_some()));
        }
        Ok(state_of(&states))
    }

    fn size(&self) -> usize {
        match &self.layout {
            Layout::Columns { periods, cells, .. } => {
                periods.capacity() * size_of::<i64>()
                    + cells.iter().map(Vec::capacity).sum::<usize>() * size_of::<Cell>()
            }
            Layout::Lists { groups, entries } => {
                groups.capacity() * size_of::<Periods>() + entries * size_of::<Entry>()
            }
        }
    }
}

/// The accumulator without GROUP BY (one group).
#[derive(Debug)]
struct SingleLastNext {
    output: Output,
    periods: Periods,
}

impl Accumulator for SingleLastNext {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        let rows = Rows::of(values)?;
        for row in 0..rows.len() {
            if let Some((period, at)) = rows.get(row, None) {
                self.periods.add(period, at, at);
            }
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        let periods = &mut self.periods;
        each_state_entry(states, |_, period, first, last| {
            periods.add(period, first, last);
        })
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        let state = state_of(&Flat::of_lists(std::iter::once(&self.periods)));
        Ok(vec![ScalarValue::try_from_array(&state[0], 0)?])
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        Ok(ScalarValue::List(Arc::new(
            self.output
                .lists(&Flat::of_lists(std::iter::once(&self.periods)))?,
        )))
    }

    fn size(&self) -> usize {
        size_of::<Self>() + self.periods.0.capacity() * size_of::<Entry>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accumulator() -> GroupsLastNext {
        GroupsLastNext::new(Output {
            period: DataType::Int64,
            at: DataType::Int64,
        })
    }

    fn column(values: &[Option<i64>]) -> ArrayRef {
        Arc::new(values.iter().copied().collect::<Int64Array>())
    }

    /// The entries of an evaluated result: (group, period, last, next).
    fn entries(result: &ArrayRef) -> Vec<(usize, i64, i64, Option<i64>)> {
        let lists = result.as_list::<i32>();
        let values = lists.values().as_struct();
        let column = |i: usize| keys(values.column(i)).unwrap();
        let (periods, lasts, nexts) = (column(0), column(1), column(2));
        let offsets = lists.value_offsets();
        let mut out = Vec::new();
        for group in 0..lists.len() {
            for i in offsets[group] as usize..offsets[group + 1] as usize {
                out.push((
                    group,
                    periods.value(i),
                    lasts.value(i),
                    nexts.is_valid(i).then(|| nexts.value(i)),
                ));
            }
        }
        out
    }

    /// Skipping partial aggregation hands rows on as one-entry states: merged, they
    /// give what updating with the rows gives, filter included.
    #[test]
    fn states_of_single_rows_merge_to_the_same_result() {
        let values = [
            column(&[Some(20), Some(10), None, Some(10), Some(20), Some(30)]),
            column(&[Some(25), Some(14), Some(1), Some(11), Some(21), Some(33)]),
        ];
        let groups = [0, 0, 0, 0, 1, 0];
        let filter = BooleanArray::from(vec![true, true, true, true, true, false]);

        let mut updated = accumulator();
        updated
            .update_batch(&values, &groups, Some(&filter), 2)
            .unwrap();
        let mut merged = accumulator();
        let states = merged.convert_to_state(&values, Some(&filter)).unwrap();
        merged.merge_batch(&states, &groups, 2).unwrap();

        let (a, b) = (
            updated.evaluate(EmitTo::All).unwrap(),
            merged.evaluate(EmitTo::All).unwrap(),
        );
        assert_eq!(a.as_ref(), b.as_ref());
        // Group 0: period 10 (last 14, next 25), period 20 (last 25, none); the row of
        // period 30 is filtered out. Group 1: period 20 alone.
        assert_eq!(
            entries(&a),
            vec![(0, 10, 14, Some(25)), (0, 20, 25, None), (1, 20, 21, None)]
        );
    }

    /// Rows in runs longer than the cells read ahead, over periods that appear in the
    /// middle of a run (a column inserted between reading and updating), against each
    /// group's entries worked out directly.
    #[test]
    fn long_batches_with_periods_arriving_mid_run() {
        let (groups, rows) = (37_usize, 5_000_i64);
        let row = |i: i64| {
            let group = (i * 7919 % groups as i64) as usize;
            // Periods 0..5 at first, 5..9 from the middle on, in no order.
            let period = if i < rows / 2 {
                i * 31 % 5
            } else {
                5 + i * 17 % 4
            };
            (group, period, i * 104_729 % 1_000_003)
        };
        let mut expected = std::collections::BTreeMap::new();
        for i in 0..rows {
            let (group, period, at) = row(i);
            let (first, last) = expected.entry((group, period)).or_insert((at, at));
            *first = at.min(*first);
            *last = at.max(*last);
        }
        let expected: Vec<_> = expected
            .iter()
            .map(|(&(group, period), &(_, last))| {
                let next = expected
                    .range((group, period + 1)..(group + 1, i64::MIN))
                    .next()
                    .map(|(_, &(first, _))| first);
                (group, period, last, next)
            })
            .collect();

        let periods = column(&(0..rows).map(|i| Some(row(i).1)).collect::<Vec<_>>());
        let ats = column(&(0..rows).map(|i| Some(row(i).2)).collect::<Vec<_>>());
        let group_indices: Vec<usize> = (0..rows).map(|i| row(i).0).collect();
        let mut updated = accumulator();
        updated
            .update_batch(&[periods, ats], &group_indices, None, groups)
            .unwrap();
        assert_eq!(entries(&updated.evaluate(EmitTo::All).unwrap()), expected);
    }

    /// Past `MAX_COLUMNS` periods the accumulator keeps lists per group; the groups it
    /// holds then, and those emitted first, come out the same.
    #[test]
    fn many_periods_and_partial_emits() {
        let periods = MAX_COLUMNS as i64 + 8;
        // Group 0 gets every period p at instants 100p + 1 and 100p + 2, in descending
        // order; group 1 every other period at 100p + 5; group 2 only period 3.
        let mut rows = Vec::new();
        for p in (0..periods).rev() {
            rows.extend([(0, p, 100 * p + 2), (0, p, 100 * p + 1)]);
            if p % 2 == 0 {
                rows.push((1, p, 100 * p + 5));
            }
        }
        rows.push((2, 3, 305));
        let values = [
            column(&rows.iter().map(|r| Some(r.1)).collect::<Vec<_>>()),
            column(&rows.iter().map(|r| Some(r.2)).collect::<Vec<_>>()),
        ];
        let groups: Vec<usize> = rows.iter().map(|r| r.0).collect();

        let mut expected = Vec::new();
        for p in 0..periods {
            let next = (p + 1 < periods).then(|| 100 * (p + 1) + 1);
            expected.push((0, p, 100 * p + 2, next));
        }
        for p in (0..periods).step_by(2) {
            let next = (p + 2 < periods).then(|| 100 * (p + 2) + 5);
            expected.push((1, p, 100 * p + 5, next));
        }
        expected.push((2, 3, 305, None));

        // The first half of the rows while columns still do, then the rest.
        let half = rows.len() / 2;
        let mut acc = accumulator();
        acc.update_batch(
            &[values[0].slice(0, half), values[1].slice(0, half)],
            &groups[..half],
            None,
            3,
        )
        .unwrap();
        assert!(matches!(acc.layout, Layout::Columns { .. }));
        acc.update_batch(
            &[
                values[0].slice(half, rows.len() - half),
                values[1].slice(half, rows.len() - half),
            ],
            &groups[half..],
            None,
            3,
        )
        .unwrap();
        assert!(matches!(acc.layout, Layout::Lists { .. }));
        assert_eq!(entries(&acc.evaluate(EmitTo::All).unwrap()), expected);

        // Emitting the first group, then the rest, in the columns' layout.
        let mut acc = accumulator();
        let few: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].1 < 4).collect();
        let pick = |c: &ArrayRef| {
            arrow::compute::take(
                c,
                &arrow::array::UInt32Array::from_iter_values(few.iter().map(|&i| i as u32)),
                None,
            )
            .unwrap()
        };
        let few_groups: Vec<usize> = few.iter().map(|&i| groups[i]).collect();
        acc.update_batch(&[pick(&values[0]), pick(&values[1])], &few_groups, None, 3)
            .unwrap();
        let first = entries(&acc.evaluate(EmitTo::First(1)).unwrap());
        let rest: Vec<_> = entries(&acc.evaluate(EmitTo::All).unwrap())
            .into_iter()
            .map(|(g, p, l, n)| (g + 1, p, l, n))
            .collect();
        let mut expected_few: Vec<_> = vec![
            (0, 0, 2, Some(101)),
            (0, 1, 102, Some(201)),
            (0, 2, 202, Some(301)),
            (0, 3, 302, None),
        ];
        assert_eq!(first, expected_few);
        expected_few = vec![(1, 0, 5, Some(205)), (1, 2, 205, None), (2, 3, 305, None)];
        assert_eq!(rest, expected_few);
        assert!(matches!(&acc.layout, Layout::Columns { cells, .. } if cells.is_empty()));
    }

    /// Sparse periods (each of 100 groups in one of 10) are kept as lists rather than
    /// as columns mostly empty: with four columns for 100 groups and 4 rows, the fifth
    /// period switches.
    #[test]
    fn sparse_periods_become_lists() {
        let rows: Vec<i64> = (0..100).collect();
        let values = [
            column(&rows.iter().map(|g| Some(g % 10)).collect::<Vec<_>>()),
            column(&rows.iter().map(|g| Some(1000 + g)).collect::<Vec<_>>()),
        ];
        let groups: Vec<usize> = (0..100).collect();
        let mut acc = accumulator();
        acc.update_batch(&values, &groups, None, 100).unwrap();
        assert!(matches!(acc.layout, Layout::Lists { entries: 100, .. }));
        let expected: Vec<_> = rows
            .iter()
            .map(|&g| (g as usize, g % 10, 1000 + g, None))
            .collect();
        assert_eq!(entries(&acc.evaluate(EmitTo::All).unwrap()), expected);
    }
}
