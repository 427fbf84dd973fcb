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

/// What to report on.
#[derive(Debug, Clone)]
pub struct ReportRequest {
    /// The month's first day.
    pub month: NaiveDate,
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
    pub fn month_label(&self) -> String {
        month_key(self.month)
    }

    /// The 13 months of the trends, oldest first; the last is the report's month.
    pub fn months(&self) -> Vec<NaiveDate> {
        (0..13)
            .rev()
            .map(|back| self.month - Months::new(back))
            .collect()
    }

    fn next_month(&self) -> NaiveDate {
        self.month + Months::new(1)
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
        let mut writer = csv::Writer::from_writer(Vec::new());
        writer.write_record(&self.columns).map_err(fail)?;
        for row in &self.rows {
            writer.write_record(row).map_err(fail)?;
        }
        writer
            .into_inner()
            .map_err(|e| ReportError::Write(format!("{}: {e}", self.name)))
    }
}

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
    let month = request.month.to_string();
    let next = request.next_month().to_string();
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
    let this_month = p(&[("from", &month), ("to", &next)]);
    let without_period = p(&[("from", &first), ("to", &next)]);
    vec![
        ("calls_kpis", trend.clone()),
        ("complaints_trend", trend.clone()),
        ("tickets_sla", trend.clone()),
        ("callbacks_kpis", trend),
        ("churn_monthly", without_period),
        ("branch_scorecard", this_month.clone()),
        ("complaints_breakdown", this_month.clone()),
        ("complaint_hotspots", this_month.clone()),
        ("visits_waits", this_month.clone()),
        ("calls_load_matrix", this_month.clone()),
        ("churn_pre_signals", this_month),
        ("complaints_ytd", year_to_date),
    ]
}

/// Runs the report's queries and derives its figures and page.
pub async fn build(
    engine: &Engine,
    library: &QueryLibrary,
    request: &ReportRequest,
    progress: &dyn kefu_progress::Progress,
) -> Result<MonthlyReport, ReportError> {
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
        let (schema, batches) = engine.collect(&sql).await.map_err(fail)?;
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
    let html = page::render(request, &figures, &summary, &snapshot)?;
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
    /// The report's files, relative to its directory: `index.html`, one CSV per query
    /// under `tables/`, and the derived tables under `tables/` too.
    pub fn files(&self) -> Result<Vec<(String, Vec<u8>)>, ReportError> {
        let mut files = vec![("index.html".to_string(), self.html.clone().into_bytes())];
        for q in &self.queries {
            let bytes = kefu_sql::output::encode(Format::Csv, q.schema.clone(), &q.batches)
                .map_err(|e| ReportError::Write(format!("{}: {e}", q.name)))?;
            files.push((format!("tables/{}.csv", q.name), bytes));
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
