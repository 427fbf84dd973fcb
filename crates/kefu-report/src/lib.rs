//! The monthly customer-service report (月度客服报告), the document service managers now
//! write by hand: headline KPIs beside the previous month (环比) and the same month last
//! year (同比), 13-month trends, the branch ranking, the complaint mix and hot spots, waits
//! by hour, churn and its pre-churn signals, and a generated summary paragraph.
//!
//! Every figure comes from the named queries of `kefu-sql`: [`build`] runs them for the
//! month, keeps their results as the report's tables (written as CSV beside the page, the
//! same bytes `kefu query … --format csv` prints), and derives the headline and trend
//! figures from those tables only, re-weighting rates by their denominators. The page is
//! one self-contained HTML file with inline SVG charts, in Chinese or English.

pub mod charts;
#[cfg(feature = "cli")]
pub mod cli;
mod figures;
mod font;
pub mod page;

use std::collections::BTreeMap;
use std::str::FromStr;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use chrono::{Datelike, Months, NaiveDate};
use kefu_sql::{Engine, Format, QueryLibrary, SqlError};
use kefu_storage::publish::Target;

pub use figures::{Figures, Kpi, KpiKind};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("'{0}' is not a month (YYYY-MM)")]
    Month(String),
    #[error(
        "'{0}' is not a report period: a month (2026-11), a half year (2026-H1, 2026-H2) or a year (2026); editions are month, half and year"
    )]
    Period(String),
    /// Neither a report period nor a date expression.
    #[error("{not_a_period}; nor a date expression: {not_a_date}")]
    PeriodExpression {
        not_a_period: Box<ReportError>,
        #[source]
        not_a_date: kefu_model::calendar::BadDateExpression,
    },
    #[error("'{0}' is not a report language (zh or en)")]
    Lang(String),
    #[error("query {query}: {source}")]
    Query {
        query: String,
        #[source]
        source: SqlError,
    },
    #[error("query {query}: column '{column}' is missing from its result")]
    Column { query: String, column: String },
    #[error("rendering the report page: {0}")]
    Template(String),
    #[error("writing the report: {0}")]
    Write(String),
    #[error("'{0}' is not a target (KPI=VALUE, a KPI among {1}; rates as shares, 0.9 or 90%)")]
    Target(String, String),
    /// The period has no calls, tickets, visits or callbacks: a report would be all dashes.
    #[error("nothing to report for {period}{region}: {held}")]
    NoData {
        period: String,
        region: String,
        held: String,
    },
}

impl kefu_model::Classify for ReportError {
    fn kind(&self) -> kefu_model::ErrorKind {
        use kefu_model::ErrorKind;
        match self {
            ReportError::Month(_)
            | ReportError::Period(_)
            | ReportError::Lang(_)
            | ReportError::PeriodExpression { .. }
            | ReportError::Target(..) => ErrorKind::Config,
            ReportError::Write(_) => ErrorKind::Io,
            ReportError::NoData { .. } => ErrorKind::NoData,
            ReportError::Query { .. } | ReportError::Column { .. } | ReportError::Template(_) => {
                ErrorKind::Failure
            }
        }
    }
}

/// The report's language: labels, summary and number words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    Zh,
    En,
}

impl FromStr for Lang {
    type Err = ReportError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "zh" | "zh-cn" | "cn" => Ok(Lang::Zh),
            "en" => Ok(Lang::En),
            _ => Err(ReportError::Lang(s.to_string())),
        }
    }
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }

    /// The Chinese or the English text.
    pub fn pick<'a>(self, zh: &'a str, en: &'a str) -> &'a str {
        match self {
            Lang::Zh => zh,
            Lang::En => en,
        }
    }
}

/// `YYYY-MM` → the month's first day.
pub fn parse_month(s: &str) -> Result<NaiveDate, ReportError> {
    NaiveDate::parse_from_str(&format!("{}-01", s.trim()), "%Y-%m-%d")
        .map_err(|_| ReportError::Month(s.to_string()))
}

/// A report's edition: the monthly one, or the half-year and annual ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Edition {
    #[default]
    Month,
    Half,
    Year,
}

impl Edition {
    /// The months one edition covers.
    pub fn months(self) -> u32 {
        match self {
            Edition::Month => 1,
            Edition::Half => 6,
            Edition::Year => 12,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Edition::Month => "month",
            Edition::Half => "half",
            Edition::Year => "year",
        }
    }
}

impl FromStr for Edition {
    type Err = ReportError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "month" | "monthly" => Ok(Edition::Month),
            "half" | "half_year" | "half-year" => Ok(Edition::Half),
            "year" | "annual" => Ok(Edition::Year),
            _ => Err(ReportError::Period(s.to_string())),
        }
    }
}

/// What one report covers: a month, a half year (1 January or 1 July for six months) or
/// a calendar year, in the reporting time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportPeriod {
    pub edition: Edition,
    /// The first day.
    pub start: NaiveDate,
}

impl ReportPeriod {
    /// The period of `edition` holding `day`.
    pub fn containing(edition: Edition, day: NaiveDate) -> Self {
        let month = match edition {
            Edition::Month => day.month(),
            Edition::Half if day.month() <= 6 => 1,
            Edition::Half => 7,
            Edition::Year => 1,
        };
        ReportPeriod {
            edition,
            start: NaiveDate::from_ymd_opt(day.year(), month, 1).expect("a month's first day"),
        }
    }

    /// The monthly edition of the month starting `start`'s month.
    pub fn month(day: NaiveDate) -> Self {
        Self::containing(Edition::Month, day)
    }

    /// The day after the last one.
    pub fn end(self) -> NaiveDate {
        self.start + Months::new(self.edition.months())
    }

    /// The last day.
    pub fn last_day(self) -> NaiveDate {
        self.end().pred_opt().expect("a day before")
    }

    /// `2026-11`, `2026-H1`, `2026`: the label of files, job outputs and `--month`.
    pub fn label(self) -> String {
        match self.edition {
            Edition::Month => month_key(self.start),
            Edition::Half => format!(
                "{}-H{}",
                self.start.year(),
                if self.start.month() <= 6 { 1 } else { 2 }
            ),
            Edition::Year => self.start.year().to_string(),
        }
    }

    /// 「2026年11月」「2026年上半年」「2026年」 / "November 2026", "the first half of 2026",
    /// "2026".
    pub fn name(self, lang: Lang) -> String {
        let first = self.start.month() <= 6;
        match (self.edition, lang) {
            (Edition::Month, Lang::Zh) => self.start.format("%Y年%-m月").to_string(),
            (Edition::Month, Lang::En) => self.start.format("%B %Y").to_string(),
            (Edition::Half, Lang::Zh) => format!(
                "{}年{}",
                self.start.year(),
                if first { "上半年" } else { "下半年" }
            ),
            (Edition::Half, Lang::En) => format!(
                "the {} half of {}",
                if first { "first" } else { "second" },
                self.start.year()
            ),
            (Edition::Year, Lang::Zh) => format!("{}年", self.start.year()),
            (Edition::Year, Lang::En) => self.start.year().to_string(),
        }
    }
}

impl ReportPeriod {
    /// 「本月」「上半年」「全年」 / "this month", "this half year", "this year".
    pub fn this(self, lang: Lang) -> &'static str {
        match self.edition {
            Edition::Month => lang.pick("本月", "this month"),
            Edition::Half if self.start.month() <= 6 => lang.pick("上半年", "this half year"),
            Edition::Half => lang.pick("下半年", "this half year"),
            Edition::Year => lang.pick("全年", "this year"),
        }
    }

    /// What 环比 and 同比 compare with: ("the previous month", "the same month last
    /// year") and their halves and years.
    pub fn bases(self, lang: Lang) -> (&'static str, &'static str) {
        match self.edition {
            Edition::Month => (
                lang.pick("上月", "the previous month"),
                lang.pick("去年同月", "the same month last year"),
            ),
            Edition::Half => (
                lang.pick("上一半年", "the previous half year"),
                lang.pick("去年同期", "the same half last year"),
            ),
            Edition::Year => (
                lang.pick("上年", "the previous year"),
                lang.pick("上年", "the previous year"),
            ),
        }
    }
}

impl ReportPeriod {
    /// A period (`2026-11`, `2026-H1`, `2026`), or the month holding the day of a date
    /// expression (`last_month`, `today - 1 month`) evaluated on `today`.
    pub fn resolve(text: &str, today: NaiveDate) -> Result<Self, ReportError> {
        text.parse::<ReportPeriod>().or_else(|not_a_period| {
            kefu_model::calendar::eval(text, today)
                .map(ReportPeriod::month)
                .map_err(|not_a_date| ReportError::PeriodExpression {
                    not_a_period: Box::new(not_a_period),
                    not_a_date,
                })
        })
    }
}

impl FromStr for ReportPeriod {
    type Err = ReportError;
    /// `YYYY-MM` (a month), `YYYY-H1` / `YYYY-H2` (a half year) or `YYYY` (a year).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let bad = || ReportError::Period(s.to_string());
        let year = |y: &str| -> Result<i32, ReportError> {
            match y.parse::<i32>() {
                Ok(y) if (1000..=9999).contains(&y) => Ok(y),
                _ => Err(bad()),
            }
        };
        let first_of = |y: i32, m: u32| NaiveDate::from_ymd_opt(y, m, 1).ok_or_else(bad);
        if let Some((y, half)) = text
            .split_once(['-', ' '])
            .filter(|(_, h)| h.eq_ignore_ascii_case("h1") || h.eq_ignore_ascii_case("h2"))
        {
            let month = if half.eq_ignore_ascii_case("h1") {
                1
            } else {
                7
            };
            return Ok(ReportPeriod {
                edition: Edition::Half,
                start: first_of(year(y)?, month)?,
            });
        }
        if text.len() == 4 {
            return Ok(ReportPeriod {
                edition: Edition::Year,
                start: first_of(year(text)?, 1)?,
            });
        }
        Ok(ReportPeriod::month(parse_month(text).map_err(|_| bad())?))
    }
}

/// What to report on.
#[derive(Debug, Clone)]
pub struct ReportRequest {
    /// The month, half year or year.
    pub period: ReportPeriod,
    /// One region's code, or `None` for all.
    pub region: Option<String>,
    pub lang: Lang,
    /// Targets of the headline KPIs (key → value), each marked where missed.
    pub targets: Targets,
}

/// Targets of headline KPIs, by KPI key (`answer_rate`, `on_time_rate`, …): a rate as a
/// share, a count or seconds as such. A KPI whose "higher is better" misses its target
/// below it; the others (complaints, churn, ASA) above it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Targets(pub BTreeMap<String, f64>);

impl Targets {
    /// The documents' usual targets: answer rate 85%, tickets on time 95%, callback
    /// satisfaction 90%, average speed of answer 20 s.
    pub fn usual() -> Self {
        Targets(
            [
                ("answer_rate", 0.85),
                ("on_time_rate", 0.95),
                ("satisfaction", 0.90),
                ("asa_s", 20.0),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        )
    }

    /// The usual targets with `given` (`KPI=VALUE` each) set over them.
    pub fn usual_with(given: &[String]) -> Result<Self, ReportError> {
        let mut targets = Targets::usual();
        for target in given {
            targets.set(target)?;
        }
        Ok(targets)
    }

    pub fn get(&self, kpi: &str) -> Option<f64> {
        self.0.get(kpi).copied()
    }

    /// Sets one target from `KPI=VALUE` (`answer_rate=0.9`, `answer_rate=90%`,
    /// `complaints=120`); `KPI=none` removes it.
    pub fn set(&mut self, text: &str) -> Result<(), ReportError> {
        let bad = || ReportError::Target(text.to_string(), figures::KPI_KEYS.join(", "));
        let (key, value) = text.split_once('=').ok_or_else(bad)?;
        let key = key.trim();
        if !figures::KPI_KEYS.contains(&key) {
            return Err(bad());
        }
        let value = value.trim();
        if value.eq_ignore_ascii_case("none") {
            self.0.remove(key);
            return Ok(());
        }
        let number = match value.strip_suffix('%') {
            Some(p) => p.trim().parse::<f64>().map(|v| v / 100.0),
            None => value.parse::<f64>(),
        }
        .map_err(|_| bad())?;
        if !number.is_finite() {
            return Err(bad());
        }
        self.0.insert(key.to_string(), number);
        Ok(())
    }
}

impl ReportRequest {
    pub fn label(&self) -> String {
        self.period.label()
    }

    /// The months of the trends, oldest first: from a year before the period's start to
    /// its last month (13 for a month, 18 for a half year, 24 for a year), so that every
    /// figure has its 环比 and 同比 periods among them.
    pub fn months(&self) -> Vec<NaiveDate> {
        let count = 12 + self.period.edition.months();
        let first = self.period.start - Months::new(12);
        (0..count).map(|m| first + Months::new(m)).collect()
    }
}

/// One named query as the report ran it.
#[derive(Debug, Clone)]
pub struct QueryResult {
    pub name: String,
    pub params: Vec<(String, String)>,
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

/// A table derived from the query results (headline, trend, …), as text cells.
#[derive(Debug, Clone, PartialEq)]
pub struct DerivedTable {
    pub name: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl DerivedTable {
    fn csv(&self) -> Result<Vec<u8>, ReportError> {
        let fail = |e: csv::Error| ReportError::Write(format!("{}: {e}", self.name));
        let mut writer = csv::Writer::from_writer(BOM.as_bytes().to_vec());
        writer.write_record(&self.columns).map_err(fail)?;
        for row in &self.rows {
            writer.write_record(row).map_err(fail)?;
        }
        writer
            .into_inner()
            .map_err(|e| ReportError::Write(format!("{}: {e}", self.name)))
    }
}

/// The report's tables are opened in Excel, which reads UTF-8 as GBK on Chinese Windows
/// unless the file starts with a byte-order mark.
const BOM: &str = "\u{FEFF}";

/// A built report: the query results, the derived figures and the page.
#[derive(Debug, Clone)]
pub struct MonthlyReport {
    pub request: ReportRequest,
    pub queries: Vec<QueryResult>,
    pub figures: Figures,
    pub derived: Vec<DerivedTable>,
    pub summary: String,
    pub html: String,
    /// The state of the warehouse the figures come from (batch and table versions).
    pub snapshot: kefu_storage::Cut,
}

/// The named queries the report runs, with their parameters for `request`.
pub fn query_plan(request: &ReportRequest) -> Vec<(&'static str, Vec<(String, String)>)> {
    let first = request.months()[0].to_string();
    let month = request.period.start.to_string();
    let next = request.period.end().to_string();
    let region = request.region.clone().unwrap_or_else(|| "%".into());
    let p = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .chain([("region".to_string(), region.clone())])
            .collect()
    };
    let trend = p(&[("from", &first), ("to", &next), ("period", "month")]);
    let year_to_date = p(&[("to", &next)]);
    let year_start = NaiveDate::from_ymd_opt(request.period.start.year(), 1, 1)
        .expect("1 January")
        .to_string();
    let work_orders = p(&[("from", &year_start), ("to", &next), ("kind", "work_order")]);
    let this_month = p(&[("from", &month), ("to", &next)]);
    // Every category, so that the repeat / over-level / regulator counts are totals.
    let all_categories = p(&[("from", &month), ("to", &next), ("top", "1000000")]);
    let without_period = p(&[("from", &first), ("to", &next)]);
    vec![
        ("calls_kpis", trend.clone()),
        ("complaints_trend", trend.clone()),
        ("tickets_sla", trend.clone()),
        ("callbacks_kpis", trend),
        ("churn_monthly", without_period),
        ("branch_scorecard", this_month.clone()),
        ("complaints_breakdown", all_categories),
        ("complaint_hotspots", this_month.clone()),
        ("visits_waits", this_month.clone()),
        ("calls_load_matrix", this_month.clone()),
        ("churn_pre_signals", this_month),
        ("complaints_ytd", year_to_date),
        ("tickets_households", work_orders),
        // The display names of the codes above.
        ("names", vec![("kind".to_string(), "%".to_string())]),
    ]
}

/// Runs the report's queries and derives its figures and page.
/// Refuses a period in which the warehouse holds no events (of the region, if one is
/// asked for), saying which months it does hold: a report of dashes and "best branch
/// scored 0.0" published as if it were one misleads whoever reads it.
async fn ensure_data(engine: &Engine, request: &ReportRequest) -> Result<(), ReportError> {
    let first = month_key(request.period.start);
    let end = month_key(request.period.end());
    let region = request
        .region
        .as_ref()
        .map(|r| format!(" AND region = '{}'", r.replace('\'', "''")))
        .unwrap_or_default();
    let tables = ["calls", "tickets", "visits", "callbacks"];
    let fail = |source| ReportError::Query {
        query: "the period's events".into(),
        source,
    };
    // The period's rows first, one count per table: filtered on the partition column
    // alone, DataFusion answers each from the files' row counts without reading them
    // (0.4 s of scanning every month of the four tables at 1 M customers).
    let counts = tables
        .map(|t| {
            format!(
                "SELECT count(*) AS n FROM {t} WHERE month >= '{first}' AND month < '{end}'{region}"
            )
        })
        .join(" UNION ALL ");
    let sql = format!("SELECT sum(n) FROM ({counts})");
    let (_, batches) = engine.collect(&sql).await.map_err(fail)?;
    let events: u64 = first_row_text(&batches, 0)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    if events > 0 {
        return Ok(());
    }
    // None: say which months the warehouse does hold.
    let held = tables
        .map(|t| format!("SELECT month FROM {t} WHERE true{region}"))
        .join(" UNION ALL ");
    let sql = format!("SELECT min(month), max(month) FROM ({held})");
    let (_, batches) = engine.collect(&sql).await.map_err(fail)?;
    let text = |column| first_row_text(&batches, column);
    let held = match (text(0).filter(|m| !m.is_empty()), text(1)) {
        (Some(first), Some(last)) => format!(
            "no calls, tickets, visits or callbacks in it; the warehouse holds {first} to {last}"
        ),
        _ => "the warehouse holds no calls, tickets, visits or callbacks at all".to_string(),
    };
    Err(ReportError::NoData {
        period: request.period.label(),
        region: request
            .region
            .as_ref()
            .map(|r| format!(" (region {r})"))
            .unwrap_or_default(),
        held,
    })
}

/// Column `column` of a one-row result as text (empty for NULL).
fn first_row_text(batches: &[RecordBatch], column: usize) -> Option<String> {
    let batch = batches.first().filter(|b| b.num_rows() == 1)?;
    let formatter = arrow::util::display::ArrayFormatter::try_new(
        batch.column(column).as_ref(),
        &arrow::util::display::FormatOptions::default().with_null(""),
    )
    .ok()?;
    Some(formatter.value(0).to_string())
}

pub async fn build(
    engine: &Engine,
    library: &QueryLibrary,
    request: &ReportRequest,
    progress: &dyn kefu_progress::Progress,
) -> Result<MonthlyReport, ReportError> {
    build_reusing(engine, library, request, progress, &Known::new()).await
}

/// Results of the report's queries already at hand, by their SQL.
pub type Known = BTreeMap<String, (SchemaRef, Vec<RecordBatch>)>;

/// [`build`], taking the result of any query whose SQL `known` holds from there instead
/// of running it. A job passes what it computed or cached from the same state of the
/// warehouse; whatever it passes is what the report shows.
pub async fn build_reusing(
    engine: &Engine,
    library: &QueryLibrary,
    request: &ReportRequest,
    progress: &dyn kefu_progress::Progress,
    known: &Known,
) -> Result<MonthlyReport, ReportError> {
    ensure_data(engine, request).await?;
    let plan = query_plan(request);
    progress.start(
        "report queries",
        Some(plan.len() as u64),
        kefu_progress::Unit::Items("queries"),
    );
    let mut queries = Vec::new();
    for (name, params) in plan {
        let fail = |source| ReportError::Query {
            query: name.to_string(),
            source,
        };
        let sql = library
            .get(name)
            .and_then(|q| q.render(&params))
            .map_err(fail)?;
        let (schema, batches) = match known.get(&sql) {
            Some(result) => result.clone(),
            None => engine.collect(&sql).await.map_err(fail)?,
        };
        tracing::debug!(
            query = name,
            rows = batches.iter().map(|b| b.num_rows()).sum::<usize>(),
            "report query"
        );
        queries.push(QueryResult {
            name: name.to_string(),
            params,
            schema,
            batches,
        });
        progress.advance(1);
    }
    progress.finish();
    let by_name: BTreeMap<&str, &QueryResult> =
        queries.iter().map(|q| (q.name.as_str(), q)).collect();
    let figures = Figures::derive(request, &by_name)?;
    let derived = figures.tables(request.lang);
    let summary = figures.summary(request);
    let snapshot = engine.cut().clone();
    let html = page::render(request, &figures, &summary, &snapshot, engine.time_zone())?;
    Ok(MonthlyReport {
        request: request.clone(),
        queries,
        figures,
        derived,
        summary,
        html,
        snapshot,
    })
}

impl MonthlyReport {
    /// The report's files, relative to its directory: `index.html`, one CSV (with a BOM,
    /// for Excel) and one `.xlsx` workbook per query under `tables/`, and the derived
    /// tables as CSV under `tables/` too.
    pub fn files(&self) -> Result<Vec<(String, Vec<u8>)>, ReportError> {
        let mut files = vec![("index.html".to_string(), self.html.clone().into_bytes())];
        for q in &self.queries {
            let for_excel = kefu_sql::output::TableStyle {
                bom: true,
                ..Default::default()
            };
            let bytes = kefu_sql::output::encode_styled(
                Format::Csv,
                q.schema.clone(),
                &q.batches,
                for_excel,
            )
            .map_err(|e| ReportError::Write(format!("{}: {e}", q.name)))?;
            files.push((format!("tables/{}.csv", q.name), bytes));
            // The same table as a workbook: numbers and dates typed, for those who chart
            // in Excel or WPS.
            let workbook = kefu_sql::output::encode_styled(
                Format::Xlsx,
                q.schema.clone(),
                &q.batches,
                Default::default(),
            )
            .map_err(|e| ReportError::Write(format!("{}: {e}", q.name)))?;
            files.push((format!("tables/{}.xlsx", q.name), workbook));
        }
        for t in &self.derived {
            files.push((format!("tables/{}.csv", t.name), t.csv()?));
        }
        let parameters = DerivedTable {
            name: "_queries".into(),
            columns: vec!["query".into(), "parameters".into()],
            rows: self
                .queries
                .iter()
                .map(|q| {
                    let text: Vec<String> =
                        q.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    vec![q.name.clone(), text.join(" ")]
                })
                .collect(),
        };
        files.push(("tables/_queries.csv".to_string(), parameters.csv()?));
        let snapshot = serde_json::to_vec_pretty(&serde_json::json!({
            "batch": self.snapshot.seq,
            "committed_at": self.snapshot.committed_at,
            "versions": self.snapshot.versions,
        }))
        .map_err(|e| ReportError::Write(e.to_string()))?;
        files.push(("tables/_snapshot.json".to_string(), snapshot));
        Ok(files)
    }

    /// Writes the files under `dir` (a local directory or an object-store URL), each
    /// replaced atomically; returns where each went.
    pub async fn publish(&self, dir: &Target) -> Result<Vec<Target>, ReportError> {
        let mut written = Vec::new();
        for (relative, bytes) in self.files()? {
            let target = dir.join(&relative);
            target
                .put_atomic(bytes)
                .await
                .map_err(|e| ReportError::Write(e.to_string()))?;
            written.push(target);
        }
        Ok(written)
    }
}

/// A month as the report labels it: `2026-12`.
pub(crate) fn month_key(d: NaiveDate) -> String {
    format!("{:04}-{:02}", d.year(), d.month())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn periods_parse_label_and_bound_each_edition() {
        let cases = [
            ("2026-11", Edition::Month, "2026-11-01", "2026-12-01", 13),
            ("2026-12", Edition::Month, "2026-12-01", "2027-01-01", 13),
            ("2026-H1", Edition::Half, "2026-01-01", "2026-07-01", 18),
            ("2026-h2", Edition::Half, "2026-07-01", "2027-01-01", 18),
            ("2026", Edition::Year, "2026-01-01", "2027-01-01", 24),
        ];
        for (text, edition, start, end, months) in cases {
            let period: ReportPeriod = text.parse().unwrap();
            assert_eq!(period.edition, edition, "{text}");
            assert_eq!(period.start, day(start), "{text}");
            assert_eq!(period.end(), day(end), "{text}");
            assert_eq!(period.label(), text.to_ascii_uppercase(), "{text}");
            let request = ReportRequest {
                period,
                region: None,
                lang: Lang::Zh,
                targets: Targets::default(),
            };
            let trend = request.months();
            assert_eq!(trend.len(), months, "{text}");
            // From a year before the start to the period's last month.
            assert_eq!(trend[0], period.start - Months::new(12), "{text}");
            assert_eq!(
                *trend.last().unwrap() + Months::new(1),
                period.end(),
                "{text}"
            );
        }
        for bad in ["2026-H3", "2026-13", "26", "H1", "2026-", ""] {
            assert!(bad.parse::<ReportPeriod>().is_err(), "{bad}");
        }
        assert_eq!(
            ReportPeriod::containing(Edition::Half, day("2026-09-30")).label(),
            "2026-H2"
        );
        assert_eq!(
            ReportPeriod::containing(Edition::Half, day("2026-06-30")).name(Lang::Zh),
            "2026年上半年"
        );
    }
}
