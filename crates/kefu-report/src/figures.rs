//! The report's figures, derived from the named queries' results only: sums of their
//! counts, and rates re-weighted by their denominators (a rate over all regions is
//! Σ numerator / Σ denominator, never an average of the regions' rates).

use std::collections::BTreeMap;
use std::ops::Range;

use arrow::array::{Array, Float64Array, StringArray};
use arrow::datatypes::DataType;

use crate::charts::{Scale, thousands};
use crate::{DerivedTable, Lang, QueryResult, ReportError, ReportRequest, month_key};

/// Whether a KPI counts things or is a share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KpiKind {
    Count,
    Rate,
    Seconds,
}

impl KpiKind {
    pub fn scale(self) -> Scale {
        match self {
            KpiKind::Count => Scale::Count,
            KpiKind::Rate => Scale::Percent,
            KpiKind::Seconds => Scale::Decimal,
        }
    }
}

/// The headline KPIs' keys, in the report's order (targets are set by these).
pub const KPI_KEYS: &[&str] = &[
    "calls_offered",
    "answer_rate",
    "asa_s",
    "complaints",
    "on_time_rate",
    "satisfaction",
    "churn_rate",
    "service_level",
    "abandon_rate",
    "first_contact_rate",
    "callback_coverage",
    "callback_same_day",
    "callback_within_3_days",
    "new_customers",
    "net_customer_change",
    "hall_waits_over_10_min",
    "repeat_complaints",
    "over_level_complaints",
    "regulator_complaints",
];

/// A headline KPI: its monthly series over the trend's months, and its value over the
/// report's period, the period before (环比) and the same period a year earlier (同比).
#[derive(Debug, Clone, PartialEq)]
pub struct Kpi {
    pub key: &'static str,
    pub zh: &'static str,
    pub en: &'static str,
    pub kind: KpiKind,
    /// Better when higher (answer rate) or lower (complaints), for the summary's words.
    pub higher_is_better: bool,
    pub series: Vec<Option<f64>>,
    /// Per month: outcomes not all observed yet (tickets not yet due, callbacks that may
    /// still come), so the value may still change.
    pub provisional: Vec<bool>,
    /// The target the report was given for this KPI.
    pub target: Option<f64>,
    /// Over the report's period, the one before (none for the annual edition, whose only
    /// comparison is 同比) and the same period a year earlier.
    pub windows: [Option<f64>; 3],
    /// The report period's months within `series` (the first of [`windows`]' ranges).
    pub period: Range<usize>,
}

impl Kpi {
    pub fn current(&self) -> Option<f64> {
        self.windows[0]
    }
    pub fn previous(&self) -> Option<f64> {
        self.windows[1]
    }
    pub fn year_ago(&self) -> Option<f64> {
        self.windows[2]
    }

    /// Whether the report period's value is provisional (any of its months is).
    pub fn is_provisional(&self) -> bool {
        self.provisional[self.period.clone()].iter().any(|p| *p)
    }

    /// Whether the report month's value misses its target (`None`: no target or value).
    pub fn missed(&self) -> Option<bool> {
        let (value, target) = (self.current()?, self.target?);
        Some(if self.higher_is_better {
            value < target
        } else {
            value > target
        })
    }

    /// The change against `base`: relative for counts, in percentage points (as a share
    /// difference) for rates.
    pub fn change(&self, base: Option<f64>) -> Option<f64> {
        let (cur, base) = (self.current()?, base?);
        match self.kind {
            KpiKind::Rate => Some(cur - base),
            _ if base == 0.0 => None,
            _ => Some((cur - base) / base),
        }
    }

    pub fn label(&self, lang: Lang) -> &'static str {
        lang.pick(self.zh, self.en)
    }

    pub fn format(&self, v: Option<f64>) -> String {
        v.map_or_else(|| "—".into(), |v| self.kind.scale().format(v))
    }
}

/// One region's figures for the report's month.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RegionFigures {
    pub region: String,
    pub offered: f64,
    pub answered: f64,
    pub complaints: f64,
    /// Tickets with a due date that were resolved or are open past it (tickets_sla's
    /// on time + late).
    pub with_due: f64,
    pub on_time: f64,
    pub satisfied: f64,
    pub dissatisfied: f64,
}

impl RegionFigures {
    pub fn answer_rate(&self) -> Option<f64> {
        ratio(self.answered, self.offered)
    }
    pub fn on_time_rate(&self) -> Option<f64> {
        ratio(self.on_time, self.with_due)
    }
    pub fn satisfaction(&self) -> Option<f64> {
        ratio(self.satisfied, self.satisfied + self.dissatisfied)
    }
}

fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| a / b)
}

/// A branch in the month's top or bottom list.
#[derive(Debug, Clone, PartialEq)]
pub struct BranchFigures {
    pub place: String,
    pub rank: i64,
    pub region: String,
    pub branch_id: String,
    pub score: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Hotspot {
    pub week: String,
    pub region: String,
    pub category: String,
    pub complaints: f64,
    pub ratio: Option<f64>,
}

/// Waits and answer rate in one local hour of the month.
#[derive(Debug, Clone, PartialEq)]
pub struct HourFigures {
    pub hour: i64,
    pub hall_called: f64,
    pub hall_wait_min: Option<f64>,
    pub offered: f64,
    pub answer_rate: Option<f64>,
}

/// Churners against retained customers.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalFigures {
    pub group: String,
    pub customers: f64,
    /// (column, value per customer), in the query's column order.
    pub per_customer: Vec<(String, Option<f64>)>,
}

/// A region's or a branch's complaints year to date (complaints_ytd).
#[derive(Debug, Clone, PartialEq)]
pub struct YearToDate {
    /// `region` or `branch`.
    pub level: String,
    pub unit_id: String,
    /// The unit's Chinese name (org_units), its code where it has none.
    pub name: String,
    pub region: String,
    pub complaints: f64,
    pub last_year: f64,
    pub change: Option<f64>,
    /// 1 = most complaints among its peers (regions; branches of its region).
    pub rank: i64,
    pub peers: i64,
    /// Customers this year and in the same period last year.
    pub exposure: f64,
    pub exposure_last_year: f64,
    pub rate: Option<f64>,
    pub rate_change: Option<f64>,
}

/// Everything the page and the summary show.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    /// The report's period: `2026-11`, `2026-H1`, `2026`.
    pub period: String,
    /// The trend's months, a year before the period's start to its last month.
    pub months: Vec<String>,
    pub kpis: Vec<Kpi>,
    pub regions: Vec<RegionFigures>,
    pub branches: Vec<BranchFigures>,
    /// (category, complaints), most first.
    pub categories: Vec<(String, f64)>,
    pub hotspots: Vec<Hotspot>,
    pub hours: Vec<HourFigures>,
    pub signals: Vec<SignalFigures>,
    /// Year to date, regions then branches.
    pub year_to_date: Vec<YearToDate>,
    /// The last local day the year to date covers (the report month's last day).
    pub year_to_date_end: chrono::NaiveDate,
    /// The service-process figures: service level, abandonment, first contact within 2 h,
    /// callback coverage and timeliness, new and net customers, hall waits over 10
    /// minutes, repeat / over-level / regulator-transferred complaints.
    pub service: Vec<Kpi>,
    /// Work orders year to date: items, households, closed (「1952条…1721户…89.2%」).
    pub work_orders: Option<WorkOrders>,
    /// (kind, code) → (Chinese, English) display names (the `names` query).
    pub names: BTreeMap<(String, String), (String, String)>,
}

/// Tickets of one kind as items (条) and households (户), and the closed ones.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkOrders {
    pub items: f64,
    pub households: f64,
    pub closed: f64,
}

/// A query's columns, read as text or numbers whatever their Arrow type.
struct Columns<'a>(&'a QueryResult);

impl Columns<'_> {
    fn missing(&self, column: &str) -> ReportError {
        ReportError::Column {
            query: self.0.name.clone(),
            column: column.to_string(),
        }
    }

    fn cast(
        &self,
        column: &str,
        to: &DataType,
    ) -> Result<Vec<arrow::array::ArrayRef>, ReportError> {
        self.0
            .batches
            .iter()
            .map(|b| {
                let array = b
                    .column_by_name(column)
                    .ok_or_else(|| self.missing(column))?;
                arrow::compute::cast(array, to).map_err(|_| self.missing(column))
            })
            .collect()
    }

    fn text(&self, column: &str) -> Result<Vec<String>, ReportError> {
        let mut out = Vec::new();
        for a in self.cast(column, &DataType::Utf8)? {
            let a = a
                .as_any()
                .downcast_ref::<StringArray>()
                .expect("cast to Utf8");
            out.extend((0..a.len()).map(|i| {
                if a.is_null(i) {
                    String::new()
                } else {
                    a.value(i).to_string()
                }
            }));
        }
        Ok(out)
    }

    fn numbers(&self, column: &str) -> Result<Vec<Option<f64>>, ReportError> {
        let mut out = Vec::new();
        for a in self.cast(column, &DataType::Float64)? {
            let a = a
                .as_any()
                .downcast_ref::<Float64Array>()
                .expect("cast to Float64");
            out.extend((0..a.len()).map(|i| (!a.is_null(i)).then(|| a.value(i))));
        }
        Ok(out)
    }

    /// The month (`YYYY-MM`) of a date column.
    fn months(&self, column: &str) -> Result<Vec<String>, ReportError> {
        Ok(self
            .text(column)?
            .into_iter()
            .map(|d| d.chars().take(7).collect())
            .collect())
    }
}

/// Per-month sums of several columns (`None` weights mean 1).
struct MonthSums {
    index: BTreeMap<String, usize>,
    sums: Vec<Vec<f64>>,
    seen: Vec<bool>,
}

impl MonthSums {
    fn new(months: &[String], width: usize) -> Self {
        MonthSums {
            index: months
                .iter()
                .enumerate()
                .map(|(i, m)| (m.clone(), i))
                .collect(),
            sums: vec![vec![0.0; width]; months.len()],
            seen: vec![false; months.len()],
        }
    }

    fn add(&mut self, month: &str, values: &[f64]) {
        if let Some(&i) = self.index.get(month) {
            self.seen[i] = true;
            for (s, v) in self.sums[i].iter_mut().zip(values) {
                *s += v;
            }
        }
    }

    /// `f(sums)` per month, `None` where the month had no rows.
    fn series(&self, f: impl Fn(&[f64]) -> Option<f64>) -> Vec<Option<f64>> {
        self.sums
            .iter()
            .zip(&self.seen)
            .map(|(s, seen)| if *seen { f(s) } else { None })
            .collect()
    }

    /// `f(sums over the months, sums of the first month with rows)` over a window of
    /// months, `None` where none of them had rows (the first month's sums carry stocks,
    /// such as customers at the start, that must not be added up).
    fn window(
        &self,
        months: Range<usize>,
        f: impl Fn(&[f64], &[f64]) -> Option<f64>,
    ) -> Option<f64> {
        let mut seen = months.filter(|&m| self.seen[m]).peekable();
        let first = *seen.peek()?;
        let mut total = vec![0.0; self.sums[first].len()];
        for m in seen {
            for (t, v) in total.iter_mut().zip(&self.sums[m]) {
                *t += v;
            }
        }
        f(&total, &self.sums[first])
    }
}

/// The trend's months of the report's period, the period before and the same period a
/// year earlier (`None` for the annual edition: its period before is a year earlier).
fn windows(request: &ReportRequest, months: usize) -> (Range<usize>, [Option<Range<usize>>; 3]) {
    let n = request.period.edition.months() as usize;
    let current = months - n..months;
    let previous = (n < 12).then(|| months - 2 * n..months - n);
    (
        current.clone(),
        [Some(current), previous, Some(months - 12 - n..months - 12)],
    )
}

fn get<'a>(
    queries: &BTreeMap<&str, &'a QueryResult>,
    name: &str,
) -> Result<Columns<'a>, ReportError> {
    queries
        .get(name)
        .map(|q| Columns(q))
        .ok_or_else(|| ReportError::Column {
            query: name.to_string(),
            column: "(the query did not run)".into(),
        })
}

fn region<'a>(
    regions: &'a mut BTreeMap<String, RegionFigures>,
    name: &str,
) -> &'a mut RegionFigures {
    regions
        .entry(name.to_string())
        .or_insert_with(|| RegionFigures {
            region: name.to_string(),
            ..RegionFigures::default()
        })
}

fn zero(v: Option<f64>) -> f64 {
    v.unwrap_or(0.0)
}

impl Figures {
    pub(crate) fn derive(
        request: &ReportRequest,
        queries: &BTreeMap<&str, &QueryResult>,
    ) -> Result<Self, ReportError> {
        let months: Vec<String> = request.months().into_iter().map(month_key).collect();
        let (period, ranges) = windows(request, months.len());
        // The trend's months within the report's period.
        let period_months: std::collections::BTreeSet<String> =
            months[period.clone()].iter().cloned().collect();
        let mut regions: BTreeMap<String, RegionFigures> = BTreeMap::new();

        // Calls: the counts behind the rates (offered, answered, their total wait, those
        // answered within the threshold), added up; the rates are divided afterwards.
        let calls = get(queries, "calls_kpis")?;
        let mut call_sums = MonthSums::new(&months, 5);
        let (periods, names) = (calls.months("period")?, calls.text("region")?);
        let (offered, answered, wait, within_t, abandoned) = (
            calls.numbers("offered")?,
            calls.numbers("answered")?,
            calls.numbers("answered_wait_s")?,
            calls.numbers("answered_within_t")?,
            calls.numbers("abandoned")?,
        );
        for i in 0..periods.len() {
            let (o, a) = (zero(offered[i]), zero(answered[i]));
            call_sums.add(
                &periods[i],
                &[o, a, zero(wait[i]), zero(within_t[i]), zero(abandoned[i])],
            );
            if period_months.contains(&periods[i]) {
                let r = region(&mut regions, &names[i]);
                r.offered += o;
                r.answered += a;
            }
        }

        let complaints = get(queries, "complaints_trend")?;
        let mut complaint_sums = MonthSums::new(&months, 1);
        let (periods, names, counts) = (
            complaints.months("period")?,
            complaints.text("region")?,
            complaints.numbers("complaints")?,
        );
        for i in 0..periods.len() {
            complaint_sums.add(&periods[i], &[zero(counts[i])]);
            if period_months.contains(&periods[i]) {
                region(&mut regions, &names[i]).complaints += zero(counts[i]);
            }
        }

        // Tickets judged against a due date: on time, or late (resolved after it, or
        // still open past it).
        let sla = get(queries, "tickets_sla")?;
        let mut sla_sums = MonthSums::new(&months, 5);
        let (periods, names, on_time, late, pending) = (
            sla.months("period")?,
            sla.text("region")?,
            sla.numbers("on_time")?,
            sla.numbers("late")?,
            sla.numbers("provisional")?,
        );
        let (dispatched, contacted) = (
            sla.numbers("dispatched")?,
            sla.numbers("contacted_in_time")?,
        );
        for i in 0..periods.len() {
            let (on_time, judged) = (zero(on_time[i]), zero(on_time[i]) + zero(late[i]));
            sla_sums.add(
                &periods[i],
                &[
                    judged,
                    on_time,
                    zero(pending[i]),
                    zero(dispatched[i]),
                    zero(contacted[i]),
                ],
            );
            if period_months.contains(&periods[i]) {
                let r = region(&mut regions, &names[i]);
                r.with_due += judged;
                r.on_time += on_time;
            }
        }

        let callbacks = get(queries, "callbacks_kpis")?;
        let mut callback_sums = MonthSums::new(&months, 7);
        let (periods, names, satisfied, dissatisfied, pending) = (
            callbacks.months("period")?,
            callbacks.text("region")?,
            callbacks.numbers("satisfied")?,
            callbacks.numbers("dissatisfied")?,
            callbacks.numbers("provisional")?,
        );
        let (completed, called_back, same_day, within_days) = (
            callbacks.numbers("completed")?,
            callbacks.numbers("called_back")?,
            callbacks.numbers("called_back_same_day")?,
            callbacks.numbers("called_back_within_days")?,
        );
        for i in 0..periods.len() {
            let (s, d) = (zero(satisfied[i]), zero(dissatisfied[i]));
            callback_sums.add(
                &periods[i],
                &[
                    s,
                    d,
                    zero(pending[i]),
                    zero(completed[i]),
                    zero(called_back[i]),
                    zero(same_day[i]),
                    zero(within_days[i]),
                ],
            );
            if period_months.contains(&periods[i]) {
                let r = region(&mut regions, &names[i]);
                r.satisfied += s;
                r.dissatisfied += d;
            }
        }

        let churn = get(queries, "churn_monthly")?;
        let mut churn_sums = MonthSums::new(&months, 3);
        let (periods, at_start, closed, new_customers) = (
            churn.months("month")?,
            churn.numbers("at_start")?,
            churn.numbers("closed")?,
            churn.numbers("new_customers")?,
        );
        for i in 0..periods.len() {
            churn_sums.add(
                &periods[i],
                &[zero(at_start[i]), zero(closed[i]), zero(new_customers[i])],
            );
        }

        // A KPI's monthly series and its values over the windows, from one formula over
        // summed columns (the second argument is the window's first month, for stocks).
        type Formula<'f> = &'f dyn Fn(&[f64], &[f64]) -> Option<f64>;
        let measure = |sums: &MonthSums, f: Formula| {
            let series = sums.series(|s| f(s, s));
            let values = ranges.clone().map(|r| r.and_then(|r| sums.window(r, f)));
            (series, values)
        };
        let (calls_seen, calls_seen_windows) = measure(&call_sums, &|_, _| Some(1.0));
        // A month with calls but no complaint rows had no complaints; without any calls
        // there is no data to judge churn by (customers exist before the first month).
        let zero_where_calls = |(series, values): (Vec<Option<f64>>, [Option<f64>; 3])| {
            let series = series
                .into_iter()
                .zip(&calls_seen)
                .map(|(c, seen)| c.or(seen.map(|_| 0.0)))
                .collect();
            let mut values = values;
            for (v, seen) in values.iter_mut().zip(calls_seen_windows) {
                *v = v.or(seen.map(|_| 0.0));
            }
            (series, values)
        };
        let only_where_calls = |(series, values): (Vec<Option<f64>>, [Option<f64>; 3])| {
            let series = series
                .into_iter()
                .zip(&calls_seen)
                .map(|(c, seen)| seen.and(c))
                .collect();
            let mut values = values;
            for (v, seen) in values.iter_mut().zip(calls_seen_windows) {
                *v = seen.and(*v);
            }
            (series, values)
        };
        let kpi = |key,
                   zh,
                   en,
                   kind,
                   higher_is_better,
                   (series, windows): (Vec<Option<f64>>, [Option<f64>; 3])| Kpi {
            key,
            zh,
            en,
            kind,
            higher_is_better,
            provisional: vec![false; series.len()],
            series,
            target: request.targets.get(key),
            windows,
            period: period.clone(),
        };
        // A month is provisional where any of its rows is.
        let pending = |sums: &MonthSums, column: usize| -> Vec<bool> {
            sums.series(|s| Some(s[column]))
                .into_iter()
                .map(|v| v.is_some_and(|v| v > 0.0))
                .collect()
        };
        let mut kpis = vec![
            kpi(
                "calls_offered",
                "来电量",
                "Calls offered",
                KpiKind::Count,
                true,
                measure(&call_sums, &|s, _| Some(s[0])),
            ),
            kpi(
                "answer_rate",
                "接通率",
                "Answer rate",
                KpiKind::Rate,
                true,
                measure(&call_sums, &|s, _| ratio(s[1], s[0])),
            ),
            kpi(
                "asa_s",
                "平均应答时长（秒）",
                "Average speed of answer (s)",
                KpiKind::Seconds,
                false,
                measure(&call_sums, &|s, _| ratio(s[2], s[1])),
            ),
            kpi(
                "complaints",
                "投诉量",
                "Complaints",
                KpiKind::Count,
                false,
                zero_where_calls(measure(&complaint_sums, &|s, _| Some(s[0]))),
            ),
            kpi(
                "on_time_rate",
                "工单按时办结率",
                "Tickets handled on time",
                KpiKind::Rate,
                true,
                measure(&sla_sums, &|s, _| ratio(s[1], s[0])),
            ),
            kpi(
                "satisfaction",
                "回访满意度",
                "Callback satisfaction",
                KpiKind::Rate,
                true,
                measure(&callback_sums, &|s, _| ratio(s[0], s[0] + s[1])),
            ),
            kpi(
                "churn_rate",
                "客户流失率（销户）",
                "Churn rate (closures)",
                KpiKind::Rate,
                false,
                // Closures over the window against the customers at its start.
                only_where_calls(measure(&churn_sums, &|s, first| ratio(s[1], first[0]))),
            ),
        ];
        for k in &mut kpis {
            match k.key {
                "on_time_rate" => k.provisional = pending(&sla_sums, 2),
                "satisfaction" => k.provisional = pending(&callback_sums, 2),
                _ => {}
            }
        }

        let scorecard = get(queries, "branch_scorecard")?;
        let (place, rank, names, branch, score) = (
            scorecard.text("place")?,
            scorecard.numbers("rank")?,
            scorecard.text("region")?,
            scorecard.text("branch_id")?,
            scorecard.numbers("score")?,
        );
        let mut branches: Vec<BranchFigures> = (0..place.len())
            .map(|i| BranchFigures {
                place: place[i].clone(),
                rank: zero(rank[i]) as i64,
                region: names[i].clone(),
                branch_id: branch[i].clone(),
                score: zero(score[i]),
            })
            .collect();
        branches.sort_by(|a, b| (b.place.as_str(), a.rank).cmp(&(a.place.as_str(), b.rank)));

        let breakdown = get(queries, "complaints_breakdown")?;
        let mut categories: BTreeMap<String, f64> = BTreeMap::new();
        for (c, n) in breakdown
            .text("category")?
            .into_iter()
            .zip(breakdown.numbers("complaints")?)
        {
            *categories.entry(c).or_default() += zero(n);
        }
        let mut categories: Vec<(String, f64)> = categories.into_iter().collect();
        categories.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));

        let spots = get(queries, "complaint_hotspots")?;
        let (week, names, category, count, spot_ratio) = (
            spots.text("week")?,
            spots.text("region")?,
            spots.text("category")?,
            spots.numbers("complaints")?,
            spots.numbers("ratio")?,
        );
        let mut hotspots: Vec<Hotspot> = (0..week.len())
            .map(|i| Hotspot {
                week: week[i].clone(),
                region: names[i].clone(),
                category: category[i].clone(),
                complaints: zero(count[i]),
                ratio: spot_ratio[i],
            })
            .collect();
        hotspots.sort_by(|a, b| {
            b.complaints.total_cmp(&a.complaints).then_with(|| {
                (&a.week, &a.region, &a.category).cmp(&(&b.week, &b.region, &b.category))
            })
        });

        // Hours: branch-hall mean wait (total wait / customers called); hotline answer rate.
        let mut hours: BTreeMap<i64, [f64; 4]> = BTreeMap::new();
        let waits = get(queries, "visits_waits")?;
        // Waits over 10 minutes and the hours' mean waits: counts and totals added up.
        let (mut hall_over_10, mut hall_called) = (0.0, 0.0);
        for ((h, called), (over, total)) in waits
            .numbers("hour")?
            .into_iter()
            .zip(waits.numbers("called")?)
            .zip(
                waits
                    .numbers("over_announce")?
                    .into_iter()
                    .zip(waits.numbers("wait_min_total")?),
            )
        {
            hall_over_10 += zero(over);
            hall_called += zero(called);
            let e = hours.entry(zero(h) as i64).or_default();
            e[0] += zero(called);
            e[1] += zero(total);
        }
        let load = get(queries, "calls_load_matrix")?;
        for ((h, o), a) in load
            .numbers("hour")?
            .into_iter()
            .zip(load.numbers("offered")?)
            .zip(load.numbers("answered")?)
        {
            let e = hours.entry(zero(h) as i64).or_default();
            e[2] += zero(o);
            e[3] += zero(a);
        }
        let hours = hours
            .into_iter()
            .map(|(hour, [called, wait, offered, answered])| HourFigures {
                hour,
                hall_called: called,
                hall_wait_min: ratio(wait, called),
                offered,
                answer_rate: ratio(answered, offered),
            })
            .collect();

        let pre = get(queries, "churn_pre_signals")?;
        let per_customer_columns: Vec<String> = pre
            .0
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|n| n.ends_with("_per_customer"))
            .collect();
        let (groups, customers) = (pre.text("customer_group")?, pre.numbers("customers")?);
        let mut signals: Vec<SignalFigures> = Vec::new();
        // Each average's total (`calls` for `calls_per_customer`), added up and divided
        // by the customers added up.
        let totals: Vec<Vec<Option<f64>>> = per_customer_columns
            .iter()
            .map(|c| pre.numbers(c.trim_end_matches("_per_customer")))
            .collect::<Result<_, _>>()?;
        for (i, g) in groups.iter().enumerate() {
            let n = zero(customers[i]);
            let s = match signals.iter_mut().position(|s| &s.group == g) {
                Some(p) => &mut signals[p],
                None => {
                    signals.push(SignalFigures {
                        group: g.clone(),
                        customers: 0.0,
                        per_customer: per_customer_columns
                            .iter()
                            .map(|c| (c.clone(), Some(0.0)))
                            .collect(),
                    });
                    signals.last_mut().expect("just pushed")
                }
            };
            s.customers += n;
            for (slot, column) in s.per_customer.iter_mut().zip(&totals) {
                slot.1 = Some(zero(slot.1) + zero(column[i]));
            }
        }
        for s in &mut signals {
            for slot in &mut s.per_customer {
                slot.1 = ratio(zero(slot.1), s.customers);
            }
        }

        let ytd = get(queries, "complaints_ytd")?;
        let (level, unit, name, area) = (
            ytd.text("level")?,
            ytd.text("unit_id")?,
            ytd.text("name")?,
            ytd.text("region")?,
        );
        let (count, last_year, change, rank, peers) = (
            ytd.numbers("complaints")?,
            ytd.numbers("complaints_last_year")?,
            ytd.numbers("change")?,
            ytd.numbers("rank")?,
            ytd.numbers("peers")?,
        );
        let (exposure, exposure_last_year, rate, rate_change) = (
            ytd.numbers("exposure")?,
            ytd.numbers("exposure_last_year")?,
            ytd.numbers("rate")?,
            ytd.numbers("rate_change")?,
        );
        let year_to_date = (0..level.len())
            .map(|i| YearToDate {
                level: level[i].clone(),
                unit_id: unit[i].clone(),
                name: name[i].clone(),
                region: area[i].clone(),
                complaints: zero(count[i]),
                last_year: zero(last_year[i]),
                change: change[i],
                rank: zero(rank[i]) as i64,
                peers: zero(peers[i]) as i64,
                exposure: zero(exposure[i]),
                exposure_last_year: zero(exposure_last_year[i]),
                rate: rate[i],
                rate_change: rate_change[i],
            })
            .collect();

        // The service-process figures of the seeds' paragraphs, under the headline.
        let mut service = vec![
            kpi(
                "service_level",
                "服务水平",
                "Service level",
                KpiKind::Rate,
                true,
                measure(&call_sums, &|s, _| ratio(s[3], s[0])),
            ),
            kpi(
                "abandon_rate",
                "放弃率",
                "Abandon rate",
                KpiKind::Rate,
                false,
                measure(&call_sums, &|s, _| ratio(s[4], s[0])),
            ),
            kpi(
                "first_contact_rate",
                "2小时内首次联系率",
                "First contact within 2 h",
                KpiKind::Rate,
                true,
                measure(&sla_sums, &|s, _| ratio(s[4], s[3])),
            ),
            kpi(
                "callback_coverage",
                "回访覆盖率",
                "Callback coverage",
                KpiKind::Rate,
                true,
                measure(&callback_sums, &|s, _| ratio(s[4], s[3])),
            ),
            kpi(
                "callback_same_day",
                "当日回访率",
                "Called back the same day",
                KpiKind::Rate,
                true,
                measure(&callback_sums, &|s, _| ratio(s[5], s[4])),
            ),
            kpi(
                "callback_within_3_days",
                "3日内回访率",
                "Called back within 3 days",
                KpiKind::Rate,
                true,
                measure(&callback_sums, &|s, _| ratio(s[6], s[4])),
            ),
            kpi(
                "new_customers",
                "新增客户",
                "New customers",
                KpiKind::Count,
                true,
                only_where_calls(measure(&churn_sums, &|s, _| Some(s[2]))),
            ),
            kpi(
                "net_customer_change",
                "客户净增",
                "Net customer change",
                KpiKind::Count,
                true,
                only_where_calls(measure(&churn_sums, &|s, _| Some(s[2] - s[1]))),
            ),
        ];
        for k in &mut service {
            if k.key.starts_with("callback_") {
                k.provisional = pending(&callback_sums, 2);
            }
        }
        // From the queries run for the period alone: no 环比 or 同比 to give.
        let period_only = |key, zh, en, higher_is_better, value| {
            let series = vec![None; months.len()];
            kpi(
                key,
                zh,
                en,
                KpiKind::Count,
                higher_is_better,
                (series, [value, None, None]),
            )
        };
        service.push(Kpi {
            kind: KpiKind::Rate,
            ..period_only(
                "hall_waits_over_10_min",
                "网点等候超10分钟占比",
                "Branch-hall waits over 10 min",
                false,
                ratio(hall_over_10, hall_called),
            )
        });
        let breakdown_sum = |column: &str| -> Result<Option<f64>, ReportError> {
            let values = breakdown.numbers(column)?;
            Ok(Some(values.into_iter().map(zero).sum()))
        };
        service.extend([
            period_only(
                "repeat_complaints",
                "重复投诉",
                "Repeat complaints",
                false,
                breakdown_sum("repeat_complaints")?,
            ),
            period_only(
                "over_level_complaints",
                "越级投诉",
                "Over-level complaints (越级)",
                false,
                breakdown_sum("over_level")?,
            ),
            period_only(
                "regulator_complaints",
                "监管转办投诉",
                "Regulator-transferred complaints",
                false,
                breakdown_sum("regulator_transferred")?,
            ),
        ]);

        let named = get(queries, "names")?;
        let names = named
            .text("kind")?
            .into_iter()
            .zip(named.text("code")?)
            .zip(
                named
                    .text("name_zh")?
                    .into_iter()
                    .zip(named.text("name_en")?),
            )
            .collect();

        // Work orders year to date, as items and as households (the 'all' row).
        let households = get(queries, "tickets_households")?;
        let work_orders = households
            .text("level")?
            .iter()
            .position(|l| l == "all")
            .map(|i| -> Result<WorkOrders, ReportError> {
                let at = |c: &str| households.numbers(c).map(|v| zero(v[i]));
                Ok(WorkOrders {
                    items: at("items")?,
                    households: at("households")?,
                    closed: at("closed")?,
                })
            })
            .transpose()?;

        Ok(Figures {
            period: request.period.label(),
            months,
            kpis,
            regions: regions.into_values().collect(),
            branches,
            categories,
            hotspots,
            hours,
            signals,
            year_to_date,
            year_to_date_end: request.period.last_day(),
            service,
            work_orders,
            names,
        })
    }

    /// A headline or service KPI.
    pub fn kpi(&self, key: &str) -> Option<&Kpi> {
        self.kpis.iter().chain(&self.service).find(|k| k.key == key)
    }

    /// The display name of a code (`kind` unit, category, queue or staff) in the
    /// report's language, from the `names` query; the code itself where none is known.
    pub fn name(&self, kind: &str, code: &str, lang: Lang) -> String {
        self.names
            .get(&(kind.to_string(), code.to_string()))
            .map_or_else(
                || code.to_string(),
                |(zh, en)| lang.pick(zh, en).to_string(),
            )
    }

    /// The year to date over all the report's regions: complaints, last year's, and the
    /// rate per 10,000 customers this year and last (Σ complaints / Σ customers).
    pub fn year_to_date_total(&self) -> (f64, f64, Option<f64>, Option<f64>) {
        let regions: Vec<&YearToDate> = self
            .year_to_date
            .iter()
            .filter(|y| y.level == "region")
            .collect();
        let sum = |f: &dyn Fn(&YearToDate) -> f64| regions.iter().map(|y| f(y)).sum::<f64>();
        let (complaints, last_year, exposure, exposure_last_year) = (
            sum(&|y| y.complaints),
            sum(&|y| y.last_year),
            sum(&|y| y.exposure),
            sum(&|y| y.exposure_last_year),
        );
        (
            complaints,
            last_year,
            ratio(complaints * 10_000.0, exposure),
            ratio(last_year * 10_000.0, exposure_last_year),
        )
    }

    /// The derived tables written as CSV beside the page (full-precision numbers).
    pub(crate) fn tables(&self, lang: Lang) -> Vec<DerivedTable> {
        let n = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
        let headline = self.kpi_table("headline", &self.kpis, lang);
        let service = self.kpi_table("service", &self.service, lang);
        let mut trend_columns = vec!["month".to_string()];
        trend_columns.extend(self.kpis.iter().map(|k| k.key.to_string()));
        let trend = DerivedTable {
            name: "trend".into(),
            columns: trend_columns,
            rows: self
                .months
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    let mut row = vec![m.clone()];
                    row.extend(self.kpis.iter().map(|k| n(k.series[i])));
                    row
                })
                .collect(),
        };
        let regions = DerivedTable {
            name: "regions".into(),
            columns: [
                "region",
                "calls_offered",
                "answer_rate",
                "complaints",
                "on_time_rate",
                "satisfaction",
            ]
            .map(String::from)
            .to_vec(),
            rows: self
                .regions
                .iter()
                .map(|r| {
                    vec![
                        r.region.clone(),
                        r.offered.to_string(),
                        n(r.answer_rate()),
                        r.complaints.to_string(),
                        n(r.on_time_rate()),
                        n(r.satisfaction()),
                    ]
                })
                .collect(),
        };
        let hours = DerivedTable {
            name: "waits_by_hour".into(),
            columns: [
                "hour",
                "hall_customers_called",
                "hall_avg_wait_min",
                "calls_offered",
                "answer_rate",
            ]
            .map(String::from)
            .to_vec(),
            rows: self
                .hours
                .iter()
                .map(|h| {
                    vec![
                        h.hour.to_string(),
                        h.hall_called.to_string(),
                        n(h.hall_wait_min),
                        h.offered.to_string(),
                        n(h.answer_rate),
                    ]
                })
                .collect(),
        };
        let total: f64 = self.categories.iter().map(|c| c.1).sum();
        let categories = DerivedTable {
            name: "complaint_categories".into(),
            columns: ["category", "complaints", "share"]
                .map(String::from)
                .to_vec(),
            rows: self
                .categories
                .iter()
                .map(|(c, v)| vec![c.clone(), v.to_string(), n(ratio(*v, total))])
                .collect(),
        };
        let mut signal_columns = vec!["customer_group".to_string(), "customers".to_string()];
        if let Some(s) = self.signals.first() {
            signal_columns.extend(s.per_customer.iter().map(|p| p.0.clone()));
        }
        let signals = DerivedTable {
            name: "pre_churn_signals".into(),
            columns: signal_columns,
            rows: self
                .signals
                .iter()
                .map(|s| {
                    let mut row = vec![s.group.clone(), s.customers.to_string()];
                    row.extend(s.per_customer.iter().map(|p| n(p.1)));
                    row
                })
                .collect(),
        };
        let year_to_date = DerivedTable {
            name: "year_to_date".into(),
            columns: [
                "level",
                "unit_id",
                "name",
                "region",
                "through",
                "complaints",
                "same_period_last_year",
                "change",
                "rank",
                "peers",
                "customers",
                "per_10k_customers",
                "per_10k_change_points",
            ]
            .map(String::from)
            .to_vec(),
            rows: self
                .year_to_date
                .iter()
                .map(|y| {
                    vec![
                        y.level.clone(),
                        y.unit_id.clone(),
                        y.name.clone(),
                        y.region.clone(),
                        self.year_to_date_end.to_string(),
                        y.complaints.to_string(),
                        y.last_year.to_string(),
                        n(y.change),
                        y.rank.to_string(),
                        y.peers.to_string(),
                        y.exposure.to_string(),
                        n(y.rate),
                        n(y.rate_change),
                    ]
                })
                .collect(),
        };
        vec![
            headline,
            service,
            trend,
            regions,
            hours,
            categories,
            signals,
            year_to_date,
        ]
    }

    /// KPIs with their period, 环比 and 同比 values, provisional marks and targets.
    fn kpi_table(&self, name: &str, kpis: &[Kpi], lang: Lang) -> DerivedTable {
        let n = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
        DerivedTable {
            name: name.into(),
            columns: [
                "kpi",
                "label",
                "period",
                "value",
                "previous_period",
                "change_vs_previous_period",
                "same_period_last_year",
                "change_vs_last_year",
                "change_kind",
                "provisional",
                "target",
                "target_missed",
            ]
            .map(String::from)
            .to_vec(),
            rows: kpis
                .iter()
                .map(|k| {
                    vec![
                        k.key.to_string(),
                        k.label(lang).to_string(),
                        self.period.clone(),
                        n(k.current()),
                        n(k.previous()),
                        n(k.change(k.previous())),
                        n(k.year_ago()),
                        n(k.change(k.year_ago())),
                        if k.kind == KpiKind::Rate {
                            "points"
                        } else {
                            "relative"
                        }
                        .into(),
                        k.is_provisional().to_string(),
                        n(k.target),
                        k.missed().map(|m| m.to_string()).unwrap_or_default(),
                    ]
                })
                .collect(),
        }
    }

    /// The summary paragraph, in the style of the hand-written reports.
    pub(crate) fn summary(&self, request: &ReportRequest) -> String {
        let lang = request.lang;
        let get = |key: &str| self.kpi(key).expect("every headline KPI is derived");
        let mut parts: Vec<String> = Vec::new();
        let period = request.period;
        let month_name = period.name(lang);
        let this = period.this(lang);
        // "环比上升3.5%" / "up 3.5% on the previous month"; `year` picks 同比.
        let change_words = |k: &Kpi, year: bool| -> String {
            let (previous, year_ago) = period.bases(Lang::En);
            let (zh_basis, en_basis) = if year {
                ("同比", year_ago)
            } else {
                ("环比", previous)
            };
            let base = if year { k.year_ago() } else { k.previous() };
            let Some(c) = k.change(base) else {
                return match lang {
                    Lang::Zh => format!("{zh_basis}无可比数据"),
                    Lang::En => format!("no figure for {en_basis} to compare"),
                };
            };
            let amount = match k.kind {
                KpiKind::Rate => format!(
                    "{:.1}{}",
                    (c * 100.0).abs(),
                    lang.pick("个百分点", " points")
                ),
                _ => format!("{:.1}%", (c * 100.0).abs()),
            };
            match lang {
                Lang::Zh => format!(
                    "{zh_basis}{}{amount}",
                    if c >= 0.0 { "上升" } else { "下降" }
                ),
                Lang::En => format!(
                    "{} {amount} on {en_basis}",
                    if c >= 0.0 { "up" } else { "down" }
                ),
            }
        };
        // The annual edition compares with the year before only (同比).
        let annual = period.edition == crate::Edition::Year;
        let latest = |k: &Kpi| change_words(k, annual);
        let both = |k: &Kpi| {
            if annual {
                return change_words(k, true);
            }
            format!(
                "{}{}{}",
                change_words(k, false),
                lang.pick("，", " and "),
                change_words(k, true)
            )
        };
        let (calls, answer, complaints, on_time, satisfaction, churn) = (
            get("calls_offered"),
            get("answer_rate"),
            get("complaints"),
            get("on_time_rate"),
            get("satisfaction"),
            get("churn_rate"),
        );
        let count = |v: Option<f64>| v.map_or_else(|| "—".into(), |v| thousands(v.round() as i64));
        let region_words: Vec<String> = self
            .regions
            .iter()
            .filter_map(|r| {
                r.satisfaction().map(|s| {
                    format!(
                        "{} {}",
                        self.name("unit", &r.region, lang),
                        Scale::Percent.format(s)
                    )
                })
            })
            .collect();
        let sep = lang.pick("、", ", ");
        match lang {
            Lang::Zh => {
                parts.push(format!(
                    "{month_name}，热线共受理来电 {} 通，{}；接通率 {}，{}。",
                    count(calls.current()),
                    both(calls),
                    answer.format(answer.current()),
                    both(answer)
                ));
                parts.push(format!(
                    "{this}共受理投诉 {} 件，{}。工单按时办结率 {}，{}。",
                    count(complaints.current()),
                    both(complaints),
                    on_time.format(on_time.current()),
                    latest(on_time)
                ));
                parts.push(format!(
                    "回访满意度 {}{}{}。客户流失率 {}，{}。",
                    satisfaction.format(satisfaction.current()),
                    if region_words.is_empty() { "" } else { "：" },
                    region_words.join(sep),
                    churn.format(churn.current()),
                    latest(churn)
                ));
            }
            Lang::En => {
                parts.push(format!(
                    "In {month_name} the hotline received {} calls, {}; the answer rate was {}, {}.",
                    count(calls.current()),
                    both(calls),
                    answer.format(answer.current()),
                    both(answer)
                ));
                parts.push(format!(
                    "Complaints: {}, {}. Tickets handled on time: {}, {}.",
                    count(complaints.current()),
                    both(complaints),
                    on_time.format(on_time.current()),
                    latest(on_time)
                ));
                parts.push(format!(
                    "Callback satisfaction {}{}{}. Churn (closures) {}, {}.",
                    satisfaction.format(satisfaction.current()),
                    if region_words.is_empty() { "" } else { ": " },
                    region_words.join(sep),
                    churn.format(churn.current()),
                    latest(churn)
                ));
            }
        }
        parts.extend(self.year_to_date_words(request));
        parts.extend(self.service_words(request));
        parts.extend(self.target_words(lang));
        let top = self
            .branches
            .iter()
            .max_by(|a, b| a.score.total_cmp(&b.score));
        let bottom = self
            .branches
            .iter()
            .min_by(|a, b| a.score.total_cmp(&b.score));
        if let (Some(t), Some(b)) = (top, bottom) {
            parts.push(match lang {
                Lang::Zh => format!(
                    "综合评分最高的网点为 {}（{:.1} 分），最低的为 {}（{:.1} 分）。",
                    self.name("unit", &t.branch_id, lang),
                    t.score,
                    self.name("unit", &b.branch_id, lang),
                    b.score
                ),
                Lang::En => format!(
                    "The best-scoring branch was {} ({:.1}); the lowest was {} ({:.1}).",
                    self.name("unit", &t.branch_id, lang),
                    t.score,
                    self.name("unit", &b.branch_id, lang),
                    b.score
                ),
            });
        }
        if let Some((code, n)) = self.categories.first() {
            let category = self.name("category", code, lang);
            let total: f64 = self.categories.iter().map(|c| c.1).sum();
            parts.push(match lang {
                Lang::Zh => format!(
                    "投诉最多的类别是 {category}（{} 件，占 {}）。",
                    thousands(*n as i64),
                    Scale::Percent.format(n / total.max(1.0))
                ),
                Lang::En => format!(
                    "The largest complaint category was {category} ({}, {} of all).",
                    thousands(*n as i64),
                    Scale::Percent.format(n / total.max(1.0))
                ),
            });
        }
        if !self.hotspots.is_empty() {
            let spots: Vec<String> = self
                .hotspots
                .iter()
                .take(3)
                .map(|h| {
                    format!(
                        "{} {} ({})",
                        self.name("unit", &h.region, lang),
                        self.name("category", &h.category, lang),
                        h.week
                    )
                })
                .collect();
            parts.push(match lang {
                Lang::Zh => format!(
                    "{this}出现 {} 个投诉热点，包括 {}。",
                    self.hotspots.len(),
                    spots.join("、")
                ),
                Lang::En => format!(
                    "{} complaint hot spot{} {this}, among them {}.",
                    self.hotspots.len(),
                    if self.hotspots.len() == 1 { "" } else { "s" },
                    spots.join(", ")
                ),
            });
        }
        if self.kpis.iter().any(Kpi::is_provisional) {
            parts.push(
                lang.pick(
                    "标注“暂定”的指标尚有结果未出（工单未到期、回访可能仍在进行），数值可能变化。",
                    "Figures marked provisional still have outcomes to come (tickets not yet due, callbacks that may still be made) and may change.",
                )
                .to_string(),
            );
        }
        parts.join(lang.pick("", " "))
    }

    /// 「截至10月31日，本年累计受理投诉17件，同比下降32.0%……」: the year to date with
    /// 同比, the rate per 10,000 customers and its change, and the region's rank.
    fn year_to_date_words(&self, request: &ReportRequest) -> Option<String> {
        if self.year_to_date.is_empty() {
            return None;
        }
        let lang = request.lang;
        let (complaints, last_year, rate, rate_last_year) = self.year_to_date_total();
        let end = self.year_to_date_end;
        let change = ratio(complaints - last_year, last_year);
        let mut text = match (lang, change) {
            (Lang::Zh, Some(c)) => format!(
                "截至{}月{}日，本年累计受理投诉 {} 件，同比{}{:.1}%",
                end.format("%-m"),
                end.format("%-d"),
                thousands(complaints as i64),
                if c >= 0.0 { "上升" } else { "下降" },
                (c * 100.0).abs()
            ),
            (Lang::Zh, None) => format!(
                "截至{}月{}日，本年累计受理投诉 {} 件（去年同期无投诉，无同比）",
                end.format("%-m"),
                end.format("%-d"),
                thousands(complaints as i64)
            ),
            (Lang::En, Some(c)) => format!(
                "Year to date (to {}), {} complaints, {} {:.1}% on the same period last year",
                end.format("%-d %B"),
                thousands(complaints as i64),
                if c >= 0.0 { "up" } else { "down" },
                (c * 100.0).abs()
            ),
            (Lang::En, None) => format!(
                "Year to date (to {}), {} complaints (none in the same period last year to compare)",
                end.format("%-d %B"),
                thousands(complaints as i64)
            ),
        };
        if let Some(r) = rate {
            // With no complaints last year (often: no data yet) there is nothing to compare.
            let points = rate_last_year.filter(|_| last_year > 0.0).map(|l| r - l);
            text.push_str(&match (lang, points) {
                (Lang::Zh, Some(p)) => format!(
                    "；每万客户投诉 {r:.2} 件，同比{}{:.2}件",
                    if p >= 0.0 { "增加" } else { "减少" },
                    p.abs()
                ),
                (Lang::Zh, None) => format!("；每万客户投诉 {r:.2} 件"),
                (Lang::En, Some(p)) => format!(
                    "; {r:.2} per 10,000 customers, {} {:.2} on last year",
                    if p >= 0.0 { "up" } else { "down" },
                    p.abs()
                ),
                (Lang::En, None) => format!("; {r:.2} per 10,000 customers"),
            });
        }
        // The reported region's place among the regions (「暂列全市第四」).
        let place = request.region.as_ref().and_then(|code| {
            self.year_to_date
                .iter()
                .find(|y| y.level == "region" && &y.unit_id == code)
        });
        if let Some(y) = place {
            text.push_str(&match lang {
                Lang::Zh => format!("，投诉量在 {} 个区域中暂列第 {}", y.peers, y.rank),
                Lang::En => format!(
                    ", placing {} at number {} of {} regions by complaints",
                    self.name("unit", &y.unit_id, lang),
                    y.rank,
                    y.peers
                ),
            });
        } else if let Some(most) = self
            .year_to_date
            .iter()
            .filter(|y| y.level == "region" && y.complaints > 0.0)
            .min_by_key(|y| (y.rank, y.unit_id.clone()))
        {
            text.push_str(&match lang {
                Lang::Zh => format!(
                    "，投诉最多的区域为{}（{} 件）",
                    self.name("unit", &most.unit_id, lang),
                    thousands(most.complaints as i64)
                ),
                Lang::En => format!(
                    "; most in {} ({})",
                    self.name("unit", &most.unit_id, lang),
                    thousands(most.complaints as i64)
                ),
            });
        }
        text.push_str(lang.pick("。", "."));
        Some(text)
    }

    /// The seeds' service paragraphs: work orders as items and households (「本年累计受理
    /// 工单1952条，涉及1721户，已办结1741条，办结率89.2%」), service level and abandonment,
    /// first contact within 2 h, callback coverage and timeliness, hall waits over 10
    /// minutes, new and net customers, and the complaints to minimise counted apart.
    fn service_words(&self, request: &ReportRequest) -> Vec<String> {
        let lang = request.lang;
        let this = request.period.this(lang);
        let value = |key: &str| {
            self.kpi(key)
                .map_or_else(|| "—".into(), |k| k.format(k.current()))
        };
        let count = |key: &str| self.kpi(key).and_then(Kpi::current).unwrap_or(0.0);
        let whole = |v: f64| thousands(v.round() as i64);
        let mut parts = Vec::new();
        if let Some(w) = self.work_orders.filter(|w| w.items > 0.0) {
            let end = self.year_to_date_end;
            let rate = Scale::Percent.format(w.closed / w.items);
            parts.push(match lang {
                Lang::Zh => format!(
                    "截至{}月{}日，本年累计受理工单 {} 条，涉及 {} 户，已办结 {} 条，办结率 {rate}。",
                    end.format("%-m"),
                    end.format("%-d"),
                    whole(w.items),
                    whole(w.households),
                    whole(w.closed)
                ),
                Lang::En => format!(
                    "Year to date, {} work orders from {} households, {} closed ({rate}).",
                    whole(w.items),
                    whole(w.households),
                    whole(w.closed)
                ),
            });
        }
        let net = count("net_customer_change");
        let [level, abandon, contact, coverage, same_day, within, hall] = [
            "service_level",
            "abandon_rate",
            "first_contact_rate",
            "callback_coverage",
            "callback_same_day",
            "callback_within_3_days",
            "hall_waits_over_10_min",
        ]
        .map(value);
        let (new_customers, net_customers) = (whole(count("new_customers")), whole(net.abs()));
        parts.push(match lang {
            Lang::Zh => format!(
                "热线服务水平 {level}，放弃率 {abandon}；工单派单后 2 小时内首次联系客户的占 {contact}。回访覆盖率 {coverage}，当日回访 {same_day}，3 日内回访 {within}。网点等候超过 10 分钟的客户占 {hall}。{this}新增客户 {new_customers} 户，客户{} {net_customers} 户。",
                if net >= 0.0 { "净增" } else { "净减" },
            ),
            Lang::En => format!(
                "Service level {level}, abandon rate {abandon}; {contact} of dispatched tickets were first contacted within 2 hours. Callback coverage {coverage}, {same_day} the same day, {within} within 3 days. {hall} of branch-hall customers waited over 10 minutes. {new_customers} new customers {this}, a net {} of {net_customers}.",
                if net >= 0.0 { "gain" } else { "loss" },
            ),
        });
        parts.push(match lang {
            Lang::Zh => format!(
                "{this}重复投诉 {} 件、越级投诉 {} 件、监管转办投诉 {} 件，单独统计、重点压降。",
                whole(count("repeat_complaints")),
                whole(count("over_level_complaints")),
                whole(count("regulator_complaints"))
            ),
            Lang::En => format!(
                "Counted apart, to be brought down: {} repeat, {} over-level (越级) and {} regulator-transferred complaints {this}.",
                whole(count("repeat_complaints")),
                whole(count("over_level_complaints")),
                whole(count("regulator_complaints"))
            ),
        });
        parts
    }

    /// 「未达目标：接通率 80.1%（目标 85.0%）」: the KPIs that missed their target.
    fn target_words(&self, lang: Lang) -> Option<String> {
        let missed: Vec<String> = self
            .kpis
            .iter()
            .chain(&self.service)
            .filter(|k| k.missed() == Some(true))
            .map(|k| {
                format!(
                    "{} {}{}{}{}",
                    k.label(lang),
                    k.format(k.current()),
                    lang.pick("（目标 ", " (target "),
                    k.format(k.target),
                    lang.pick("）", ")")
                )
            })
            .collect();
        let with_target = self
            .kpis
            .iter()
            .chain(&self.service)
            .filter(|k| k.missed().is_some())
            .count();
        if with_target == 0 {
            return None;
        }
        Some(if missed.is_empty() {
            lang.pick("各项指标均达到目标。", "Every KPI with a target met it.")
                .to_string()
        } else {
            match lang {
                Lang::Zh => format!("未达目标：{}。", missed.join("、")),
                Lang::En => format!("Missed targets: {}.", missed.join("; ")),
            }
        })
    }
}
