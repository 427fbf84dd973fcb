//! Job files: TOML, read with spans so that every error names its line. See
//! `fixtures/jobs/monthly.toml` for a commented example.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono::NaiveDate;
use kefu_model::Table;
use kefu_report::Lang;
use kefu_sql::queries::ParamType;
use kefu_sql::{Format, NamedQuery, QueryLibrary};
use kefu_storage::WarehouseLocation;
use kefu_storage::publish::Target;
use serde::Deserialize;
use toml::Spanned;

use crate::JobError;
use kefu_model::calendar::{self as dates, Period};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJob {
    name: Spanned<String>,
    warehouse: Spanned<String>,
    schedule: Option<Spanned<String>>,
    time_zone: Option<Spanned<String>>,
    output_dir: Option<Spanned<String>>,
    state_dir: Option<Spanned<String>>,
    queries: Option<Spanned<String>>,
    deliveries: Option<Spanned<kefu_ingest::deliveries::ScheduleConfig>>,
    #[serde(default)]
    step: Vec<Spanned<RawStep>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    #[serde(rename = "type")]
    kind: Spanned<String>,
    name: Option<Spanned<String>>,
    requires_deliveries: Option<Spanned<String>>,
    // ingest
    sources: Option<Spanned<Vec<String>>>,
    profile: Option<Spanned<String>>,
    table: Option<Spanned<String>>,
    max_reject_ratio: Option<Spanned<f64>>,
    // query
    query: Option<Spanned<String>>,
    sql: Option<Spanned<String>>,
    #[serde(default)]
    params: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
    partition: Option<Spanned<String>>,
    lookahead: Option<Spanned<String>>,
    #[serde(default)]
    output: Vec<Spanned<RawOutput>>,
    // report
    month: Option<Spanned<String>>,
    edition: Option<Spanned<String>>,
    region: Option<Spanned<String>>,
    lang: Option<Spanned<String>>,
    out: Option<Spanned<String>>,
    targets: Option<Spanned<Vec<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutput {
    path: Spanned<String>,
    format: Option<Spanned<String>>,
}

/// A validated job.
#[derive(Debug, Clone)]
pub struct Job {
    pub name: String,
    /// The job file.
    pub path: PathBuf,
    pub warehouse: WarehouseLocation,
    pub schedule: Option<Schedule>,
    /// The calendar the job's warehouse is on, when the job names it (`time_zone`): the
    /// zone a warehouse its first ingest creates gets; an existing warehouse on another
    /// is refused. Otherwise the warehouse's own.
    pub time_zone: Option<chrono_tz::Tz>,
    /// [`Job::calendar`], once its warehouse exists: a warehouse's zone never changes
    /// after its creation, so the scheduler need not open it at every tick.
    calendar: std::sync::OnceLock<chrono_tz::Tz>,
    /// Relative output paths and the run reports (`_runs/`) go here.
    pub output_dir: Target,
    /// The lock, the incremental state and the cached period results.
    pub state_dir: PathBuf,
    pub library: QueryLibrary,
    /// What the offices deliver and by when (`[deliveries]`; the default schedule
    /// otherwise): what steps' `requires_deliveries` are checked against.
    pub deliveries: kefu_ingest::deliveries::Schedule,
    pub steps: Vec<Step>,
}

/// A cron schedule, on the warehouse's calendar ([`Job::calendar`]).
#[derive(Debug, Clone)]
pub struct Schedule {
    pub expression: String,
    pub cron: croner::Cron,
}

#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    /// The line of its `[[step]]` in the job file.
    pub line: usize,
    pub kind: StepKind,
    /// The data days every expected office must have delivered before the step runs.
    pub requires_deliveries: Option<DaysRequired>,
}

/// `requires_deliveries = "yesterday"` or `"month_start - 1 month .. month_start - 1 day"`:
/// date expressions of the first and last data day, evaluated at run time.
#[derive(Debug, Clone)]
pub struct DaysRequired {
    pub from: String,
    pub to: String,
}

impl DaysRequired {
    fn parse(text: &str) -> Result<Self, String> {
        let (from, to) = match text.split_once("..") {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (text.trim(), text.trim()),
        };
        let required = DaysRequired {
            from: from.to_string(),
            to: to.to_string(),
        };
        // Checked against a fixed date: only the expressions' form is in question here.
        required.resolve(NaiveDate::from_ymd_opt(2026, 1, 31).expect("a date"))?;
        Ok(required)
    }

    /// The first and last data day at `run_date`.
    pub fn resolve(&self, run_date: NaiveDate) -> Result<(NaiveDate, NaiveDate), String> {
        let from = dates::eval(&self.from, run_date).map_err(|e| e.to_string())?;
        let to = dates::eval(&self.to, run_date).map_err(|e| e.to_string())?;
        if to < from {
            return Err(format!(
                "requires_deliveries: '{}' ({to}) is before '{}' ({from})",
                self.to, self.from
            ));
        }
        Ok((from, to))
    }
}

#[derive(Debug, Clone)]
pub enum StepKind {
    Ingest(IngestStep),
    Query(QueryStep),
    Report(ReportStep),
}

impl StepKind {
    pub fn name(&self) -> &'static str {
        match self {
            StepKind::Ingest(_) => "ingest",
            StepKind::Query(_) => "query",
            StepKind::Report(_) => "report",
        }
    }
}

#[derive(Debug, Clone)]
pub struct IngestStep {
    pub sources: Vec<String>,
    pub profile: kefu_ingest::Profile,
    pub max_reject_ratio: f64,
}

/// A parameter value: fixed text, or a date expression evaluated at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamValue {
    Literal(String),
    Date(String),
}

impl ParamValue {
    pub fn resolve(&self, run_date: NaiveDate) -> Result<String, String> {
        match self {
            ParamValue::Literal(v) => Ok(v.clone()),
            ParamValue::Date(expr) => dates::eval(expr, run_date)
                .map(|d| d.to_string())
                .map_err(|e| e.to_string()),
        }
    }
}

/// How far past a period's end new data can still change its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookahead {
    /// Only data up to the period's end (the default).
    None,
    /// Data up to this many months past the period's month.
    Months(u32),
    /// Data up to this many days past the period's end (churn_monthly's `{days}`).
    Days(u32),
    /// Any newer data.
    All,
}

impl Lookahead {
    /// What `query` declares (`-- lookahead:`, none where it says nothing), its `{param}`
    /// references filled from `values` or the parameters' defaults.
    pub fn declared_by(query: &NamedQuery, values: &[(String, String)]) -> Result<Self, String> {
        query
            .lookahead_with(values)
            .map_or(Ok(Lookahead::None), |l| l.parse())
    }
}

impl FromStr for Lookahead {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s == "all" {
            return Ok(Lookahead::All);
        }
        if s == "0" || s == "none" {
            return Ok(Lookahead::None);
        }
        let (n, unit) = s.split_once(' ').unwrap_or((s, ""));
        let n: u32 = n
            .parse()
            .map_err(|_| format!("'{s}' is not a lookahead (none, N days, N months or all)"))?;
        match unit.trim().trim_end_matches('s') {
            "month" | "day" if n == 0 => Ok(Lookahead::None),
            "month" => Ok(Lookahead::Months(n)),
            "day" => Ok(Lookahead::Days(n)),
            _ => Err(format!(
                "'{s}' is not a lookahead (none, N days, N months or all)"
            )),
        }
    }
}

#[derive(Debug, Clone)]
pub struct QueryStep {
    pub query: NamedQuery,
    pub params: Vec<(String, ParamValue)>,
    /// Cut the `from`..`to` range into periods, each computed (and recomputed) alone.
    pub partition: Option<Period>,
    pub lookahead: Lookahead,
    pub outputs: Vec<Output>,
}

#[derive(Debug, Clone)]
pub struct Output {
    /// Path or URL; `{period}` is replaced by the period's label.
    pub path: String,
    pub format: Format,
    pub line: usize,
}

impl Output {
    pub fn per_period(&self) -> bool {
        self.path.contains("{period}")
    }
}

#[derive(Debug, Clone)]
pub struct ReportStep {
    /// A date expression; the report is for the period of `edition` holding it.
    pub month: String,
    /// Monthly (the default), half-year or annual.
    pub edition: kefu_report::Edition,
    pub region: Option<String>,
    pub lang: Lang,
    /// Directory (path or URL); `{month}` (or `{period}`) is replaced by the period's
    /// label: `2026-11`, `2026-H1`, `2026`.
    pub out: String,
    /// The headline KPIs' targets: the usual ones, changed by the step's
    /// `targets = ["answer_rate=90%", "complaints=none"]`.
    pub targets: kefu_report::Targets,
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Ctx<'_> {
    fn err<T>(
        &self,
        span: std::ops::Range<usize>,
        message: impl Into<String>,
    ) -> Result<T, JobError> {
        Err(JobError::Config {
            path: self.path.to_path_buf(),
            line: line_of(self.text, span.start),
            message: message.into(),
        })
    }
}

impl Job {
    /// Reads and validates a job file: every query, parameter, expression, path and
    /// schedule is checked before anything runs.
    pub fn load(path: &Path) -> Result<Job, JobError> {
        let text = std::fs::read_to_string(path).map_err(|e| JobError::Io {
            path: path.display().to_string(),
            source: e.into(),
        })?;
        Job::parse(path, &text)
    }

    /// The calendar of the job's schedule and default run date: its `time_zone`, else
    /// its warehouse's (read over `runtime`, from a thread that may block), else (no
    /// warehouse yet, or unreadable) the default.
    pub fn calendar(&self, runtime: &tokio::runtime::Handle) -> chrono_tz::Tz {
        if let Some(zone) = self.calendar.get() {
            return *zone;
        }
        if let Some(zone) = self.time_zone {
            return *self.calendar.get_or_init(|| zone);
        }
        // Opening a local warehouse creates its directory: a job's first run does that.
        if self.warehouse.local_path().is_some_and(|d| !d.is_dir()) {
            return kefu_model::calendar::DEFAULT_TIME_ZONE;
        }
        let read = || -> Option<chrono_tz::Tz> {
            let warehouse = kefu_storage::Warehouse::open(&self.warehouse).ok()?;
            runtime.block_on(warehouse.time_zone()).ok()
        };
        match read() {
            Some(zone) => *self.calendar.get_or_init(|| zone),
            None => kefu_model::calendar::DEFAULT_TIME_ZONE,
        }
    }

    pub fn parse(path: &Path, text: &str) -> Result<Job, JobError> {
        let ctx = Ctx { path, text };
        let raw: RawJob = toml::from_str(text).map_err(|e| JobError::Config {
            path: path.to_path_buf(),
            line: e.span().map_or(1, |s| line_of(text, s.start)),
            message: e.message().trim().to_string(),
        })?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let dir = std::path::absolute(&dir).unwrap_or(dir);
        let dir: PathBuf = dir.components().collect();
        let name = raw.name.get_ref().trim().to_string();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_alphanumeric() || "-_.".contains(c))
        {
            return ctx.err(
                raw.name.span(),
                format!("job name '{name}': use letters, digits, '-', '_' or '.'"),
            );
        }
        let warehouse = match WarehouseLocation::parse_in(raw.warehouse.get_ref(), &dir) {
            Ok(w) => w,
            Err(e) => return ctx.err(raw.warehouse.span(), format!("warehouse: {e}")),
        };
        let schedule = match &raw.schedule {
            None => None,
            Some(s) => match croner::Cron::from_str(s.get_ref().trim()) {
                Ok(cron) => Some(Schedule {
                    expression: s.get_ref().trim().to_string(),
                    cron,
                }),
                Err(e) => {
                    return ctx.err(
                        s.span(),
                        format!("schedule '{}' is not a cron expression: {e} (minute hour day-of-month month day-of-week, e.g. \"30 2 * * *\")", s.get_ref()),
                    );
                }
            },
        };
        let time_zone = match &raw.time_zone {
            None => None,
            Some(z) => match z.get_ref().trim().parse::<chrono_tz::Tz>() {
                Ok(zone) => Some(zone),
                Err(_) => {
                    return ctx.err(
                        z.span(),
                        format!(
                            "time_zone '{}' is not an IANA zone (e.g. Asia/Shanghai, Europe/London)",
                            z.get_ref()
                        ),
                    );
                }
            },
        };
        let output_dir = match &raw.output_dir {
            None => Target::Local(dir.clone()),
            Some(o) => match Target::parse_in(o.get_ref(), &dir) {
                Ok(t) => t,
                Err(e) => return ctx.err(o.span(), format!("output_dir: {e}")),
            },
        };
        let state_dir = raw.state_dir.as_ref().map_or_else(
            || dir.join(".kefu-jobs").join(&name),
            |s| dir.join(s.get_ref()),
        );
        let mut library = QueryLibrary::embedded().map_err(|e| JobError::Config {
            path: path.to_path_buf(),
            line: 1,
            message: e.to_string(),
        })?;
        if let Some(q) = &raw.queries {
            library = match library.with_overrides(&dir.join(q.get_ref())) {
                Ok(l) => l,
                Err(e) => return ctx.err(q.span(), format!("queries: {e}")),
            };
        }
        let deliveries = match &raw.deliveries {
            None => kefu_ingest::deliveries::Schedule::default(),
            Some(d) => {
                let origin = format!("{} line {}", path.display(), line_of(text, d.span().start));
                match kefu_ingest::deliveries::Schedule::new(d.get_ref().clone(), &origin) {
                    Ok(s) => s,
                    Err(e) => return ctx.err(d.span(), format!("[deliveries]: {e}")),
                }
            }
        };
        if raw.step.is_empty() {
            return ctx.err(0..0, "the job has no [[step]]");
        }
        let mut steps = Vec::new();
        for (i, spanned) in raw.step.iter().enumerate() {
            let step = spanned.get_ref();
            let line = line_of(text, spanned.span().start);
            let kind = match step.kind.get_ref().as_str() {
                "ingest" => StepKind::Ingest(ingest_step(&ctx, step, &dir)?),
                "query" => StepKind::Query(query_step(&ctx, step, &library)?),
                "report" => StepKind::Report(report_step(&ctx, step)?),
                other => {
                    return ctx.err(
                        step.kind.span(),
                        format!("unknown step type '{other}' (ingest, query or report)"),
                    );
                }
            };
            let name = step.name.as_ref().map_or_else(
                || match &kind {
                    StepKind::Query(q) => q.query.name.clone(),
                    other => format!("{}-{}", other.name(), i + 1),
                },
                |n| n.get_ref().clone(),
            );
            if steps.iter().any(|s: &Step| s.name == name) {
                return ctx.err(
                    step.name.as_ref().map_or(spanned.span(), Spanned::span),
                    format!("two steps are named '{name}' (give one a `name`)"),
                );
            }
            let requires_deliveries = match &step.requires_deliveries {
                None => None,
                Some(r) => match DaysRequired::parse(r.get_ref()) {
                    Ok(d) => Some(d),
                    Err(e) => return ctx.err(r.span(), format!("requires_deliveries: {e}")),
                },
            };
            steps.push(Step {
                name,
                line,
                kind,
                requires_deliveries,
            });
        }
        Ok(Job {
            name,
            path: path.to_path_buf(),
            warehouse,
            schedule,
            time_zone,
            calendar: std::sync::OnceLock::new(),
            output_dir,
            state_dir,
            library,
            deliveries,
            steps,
        })
    }
}

/// Fields that only some step types take.
fn refuse_fields(ctx: &Ctx, step: &RawStep, allowed: &[&str]) -> Result<(), JobError> {
    let present: [(&str, Option<std::ops::Range<usize>>); 16] = [
        ("sources", step.sources.as_ref().map(Spanned::span)),
        ("profile", step.profile.as_ref().map(Spanned::span)),
        ("table", step.table.as_ref().map(Spanned::span)),
        (
            "max_reject_ratio",
            step.max_reject_ratio.as_ref().map(Spanned::span),
        ),
        ("query", step.query.as_ref().map(Spanned::span)),
        ("sql", step.sql.as_ref().map(Spanned::span)),
        ("params", step.params.keys().next().map(Spanned::span)),
        ("partition", step.partition.as_ref().map(Spanned::span)),
        ("lookahead", step.lookahead.as_ref().map(Spanned::span)),
        ("output", step.output.first().map(Spanned::span)),
        ("month", step.month.as_ref().map(Spanned::span)),
        ("edition", step.edition.as_ref().map(Spanned::span)),
        ("lang", step.lang.as_ref().map(Spanned::span)),
        ("region", step.region.as_ref().map(Spanned::span)),
        ("out", step.out.as_ref().map(Spanned::span)),
        ("targets", step.targets.as_ref().map(Spanned::span)),
    ];
    for (field, span) in present {
        if let Some(span) = span
            && !allowed.contains(&field)
        {
            return ctx.err(
                span,
                format!("a {} step takes no '{field}'", step.kind.get_ref()),
            );
        }
    }
    Ok(())
}

fn ingest_step(ctx: &Ctx, step: &RawStep, dir: &Path) -> Result<IngestStep, JobError> {
    refuse_fields(
        ctx,
        step,
        &["sources", "profile", "table", "max_reject_ratio"],
    )?;
    let Some(sources) = &step.sources else {
        return ctx.err(
            step.kind.span(),
            "an ingest step needs `sources` (globs, directories or URLs)",
        );
    };
    if sources.get_ref().is_empty() {
        return ctx.err(sources.span(), "`sources` is empty");
    }
    let resolved = sources
        .get_ref()
        .iter()
        .map(|s| {
            if s.contains("://") || Path::new(s).is_absolute() {
                s.clone()
            } else {
                dir.join(s).display().to_string()
            }
        })
        .collect();
    let mut profile = match &step.profile {
        None => kefu_ingest::Profile::builtin(),
        Some(p) => match kefu_ingest::Profile::load(&dir.join(p.get_ref())) {
            Ok(p) => p,
            Err(e) => return ctx.err(p.span(), format!("profile: {e}")),
        },
    };
    if let Some(t) = &step.table {
        match Table::from_str(t.get_ref()) {
            Ok(t) => profile.table = Some(t),
            Err(e) => return ctx.err(t.span(), e.to_string()),
        }
    }
    let max_reject_ratio = step
        .max_reject_ratio
        .as_ref()
        .map_or(kefu_ingest::ingest::DEFAULT_MAX_REJECT_RATIO, |r| {
            *r.get_ref()
        });
    if !(0.0..=1.0).contains(&max_reject_ratio) {
        return ctx.err(
            step.max_reject_ratio.as_ref().map_or(0..0, Spanned::span),
            "max_reject_ratio must be between 0 and 1",
        );
    }
    Ok(IngestStep {
        sources: resolved,
        profile,
        max_reject_ratio,
    })
}

fn value_text(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Datetime(d) => Some(d.to_string()),
        _ => None,
    }
}

/// A day to check date expressions against while validating.
fn probe_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 1, 15).expect("valid")
}

fn query_step(ctx: &Ctx, step: &RawStep, library: &QueryLibrary) -> Result<QueryStep, JobError> {
    refuse_fields(
        ctx,
        step,
        &["query", "sql", "params", "partition", "lookahead", "output"],
    )?;
    let mut values: Vec<(Spanned<String>, String, std::ops::Range<usize>)> = Vec::new();
    for (k, v) in &step.params {
        let Some(text) = value_text(v.get_ref()) else {
            return ctx.err(
                v.span(),
                format!("param {}: give a string or a number", k.get_ref()),
            );
        };
        values.push((k.clone(), text, v.span()));
    }
    let query = match (&step.query, &step.sql) {
        (Some(q), None) => match library.get(q.get_ref()) {
            Ok(q) => q.clone(),
            Err(e) => return ctx.err(q.span(), e.to_string()),
        },
        (None, Some(sql)) => {
            // Inline SQL declares its parameters by their values: a date expression is a
            // date, a whole number an int, a number a float, anything else text.
            let mut header = String::from("-- purpose: inline SQL of a job step\n");
            for (k, v, _) in &values {
                let (kind, default) = if let Ok(d) = dates::eval(v, probe_day()) {
                    ("date", d.to_string())
                } else if v.trim().parse::<i64>().is_ok() {
                    ("int", v.clone())
                } else if v.trim().parse::<f64>().is_ok_and(f64::is_finite) {
                    ("float", v.clone())
                } else {
                    ("text", "-".to_string())
                };
                header.push_str(&format!("-- param: {} {kind} {default}\n", k.get_ref()));
            }
            header.push_str(sql.get_ref());
            match NamedQuery::parse("inline", "inline SQL", &header) {
                Ok(q) => q,
                Err(e) => return ctx.err(sql.span(), e.to_string()),
            }
        }
        (Some(q), Some(_)) => return ctx.err(q.span(), "give either `query` or `sql`, not both"),
        (None, None) => {
            return ctx.err(
                step.kind.span(),
                "a query step needs `query` (a named query) or `sql`",
            );
        }
    };
    let mut params = Vec::new();
    for (k, v, span) in values {
        let Some(declared) = query.params.iter().find(|p| &p.name == k.get_ref()) else {
            let known: Vec<&str> = query.params.iter().map(|p| p.name.as_str()).collect();
            return ctx.err(
                k.span(),
                format!(
                    "query {} has no parameter '{}' (it takes: {})",
                    query.name,
                    k.get_ref(),
                    known.join(", ")
                ),
            );
        };
        let value = if declared.kind == ParamType::Date {
            if let Err(e) = dates::eval(&v, probe_day()) {
                return ctx.err(span, format!("param {}: {e}", k.get_ref()));
            }
            ParamValue::Date(v)
        } else {
            if let Err(e) = query.render(&[(k.get_ref().clone(), v.clone())]) {
                return ctx.err(span, e.to_string());
            }
            ParamValue::Literal(v)
        };
        params.push((k.get_ref().clone(), value));
    }
    let partition = match &step.partition {
        None => None,
        Some(p) if p.get_ref() == "none" => None,
        Some(p) => {
            let Some(period) = Period::parse(p.get_ref()) else {
                return ctx.err(p.span(), format!("partition '{}' is not a period (none, day, week, month, quarter, half or year)", p.get_ref()));
            };
            for needed in ["from", "to"] {
                if !query
                    .params
                    .iter()
                    .any(|q| q.name == needed && q.kind == ParamType::Date)
                {
                    return ctx.err(p.span(), format!("partition needs the query to take date parameters `from` and `to`; {} has no '{needed}'", query.name));
                }
            }
            Some(period)
        }
    };
    let lookahead = match &step.lookahead {
        Some(l) => match l.get_ref().parse() {
            Ok(l) => l,
            Err(e) => return ctx.err(l.span(), e),
        },
        // Literal values fill a lookahead's `{param}` (a date expression cannot be one).
        None => Lookahead::declared_by(
            &query,
            &params
                .iter()
                .filter_map(|(name, value)| match value {
                    ParamValue::Literal(v) => Some((name.clone(), v.clone())),
                    ParamValue::Date(_) => None,
                })
                .collect::<Vec<_>>(),
        )
        .map_err(|e| JobError::Config {
            path: ctx.path.to_path_buf(),
            line: line_of(ctx.text, step.kind.span().start),
            message: format!("query {}: {e}", query.name),
        })?,
    };
    let mut outputs = Vec::new();
    for o in &step.output {
        let raw = o.get_ref();
        let format = match &raw.format {
            Some(f) => match Format::from_str(f.get_ref()) {
                Ok(format) if format.is_for_screens() => {
                    return ctx.err(
                        f.span(),
                        format!(
                            "output format '{format}': use parquet, csv, tsv, json, ndjson or xlsx"
                        ),
                    );
                }
                Err(_) => {
                    return ctx.err(
                        f.span(),
                        format!(
                            "output format '{}': use parquet, csv, tsv, json, ndjson or xlsx",
                            f.get_ref()
                        ),
                    );
                }
                Ok(f) => f,
            },
            None => match Format::from_extension(raw.path.get_ref()) {
                Some(f) if f.is_for_screens() => {
                    return ctx.err(raw.path.span(), format!("output '{}': name a format (`format = \"parquet\"`) or end the path in .parquet, .csv, .tsv, .json, .ndjson or .xlsx", raw.path.get_ref()));
                }
                None => {
                    return ctx.err(raw.path.span(), format!("output '{}': name a format (`format = \"parquet\"`) or end the path in .parquet, .csv, .json or .ndjson", raw.path.get_ref()));
                }
                Some(f) => f,
            },
        };
        let output = Output {
            path: raw.path.get_ref().clone(),
            format,
            line: line_of(ctx.text, o.span().start),
        };
        if output.per_period() && partition.is_none() {
            return ctx.err(
                raw.path.span(),
                "`{period}` in an output path needs `partition` on the step",
            );
        }
        outputs.push(output);
    }
    Ok(QueryStep {
        query,
        params,
        partition,
        lookahead,
        outputs,
    })
}

fn report_step(ctx: &Ctx, step: &RawStep) -> Result<ReportStep, JobError> {
    refuse_fields(
        ctx,
        step,
        &["month", "edition", "lang", "out", "region", "targets"],
    )?;
    let edition = match &step.edition {
        None => kefu_report::Edition::Month,
        Some(e) => match e.get_ref().parse() {
            Ok(e) => e,
            Err(_) => {
                return ctx.err(
                    e.span(),
                    format!("edition '{}' is not one of month, half, year", e.get_ref()),
                );
            }
        },
    };
    // By default the last complete period: last month, the last half year, last year.
    let month = step.month.as_ref().map_or_else(
        || match edition {
            kefu_report::Edition::Month => "month_start - 1 month".to_string(),
            kefu_report::Edition::Half => "month_start - 6 months".to_string(),
            kefu_report::Edition::Year => "month_start - 12 months".to_string(),
        },
        |m| m.get_ref().clone(),
    );
    if let Err(e) = dates::eval(&month, probe_day()) {
        return ctx.err(
            step.month.as_ref().map_or(0..0, Spanned::span),
            format!("month: {e}"),
        );
    }
    let lang = match &step.lang {
        None => Lang::Zh,
        Some(l) => match l.get_ref().parse() {
            Ok(l) => l,
            Err(e) => return ctx.err(l.span(), format!("{e}")),
        },
    };
    let Some(out) = &step.out else {
        return ctx.err(step.kind.span(), "a report step needs `out`, the directory for the page and tables (e.g. \"reports/{month}\")");
    };
    let mut targets = kefu_report::Targets::usual();
    if let Some(list) = &step.targets {
        for target in list.get_ref() {
            if let Err(e) = targets.set(target) {
                return ctx.err(list.span(), format!("targets: {e}"));
            }
        }
    }
    Ok(ReportStep {
        month,
        edition,
        region: step.region.as_ref().map(|r| r.get_ref().clone()),
        lang,
        out: out.get_ref().clone(),
        targets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Job, JobError> {
        Job::parse(Path::new("/jobs/j.toml"), text)
    }

    const HEAD: &str = "name = \"j\"\nwarehouse = \"wh\"\n";

    fn error_line(text: &str) -> (usize, String) {
        match parse(text) {
            Err(JobError::Config { line, message, .. }) => (line, message),
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn a_good_job_parses() {
        let job = parse(&format!(
            "{HEAD}schedule = \"30 2 * * *\"\n[[step]]\ntype = \"ingest\"\nsources = [\"in/*.zip\"]\n\n[[step]]\ntype = \"query\"\nquery = \"calls_kpis\"\npartition = \"month\"\nparams = {{ from = \"month_start - 3 months\", to = \"tomorrow\", period = \"month\" }}\n[[step.output]]\npath = \"kpi/calls/{{period}}.parquet\"\n\n[[step]]\ntype = \"report\"\nout = \"reports/{{month}}\"\n"
        ))
        .unwrap();
        assert_eq!(job.steps.len(), 3);
        assert_eq!(job.steps[1].name, "calls_kpis");
        assert_eq!(job.steps[1].line, 8);
        assert_eq!(job.state_dir, Path::new("/jobs/.kefu-jobs/j"));
        let StepKind::Ingest(i) = &job.steps[0].kind else {
            panic!()
        };
        assert_eq!(i.sources, vec!["/jobs/in/*.zip".to_string()]);
        let StepKind::Report(r) = &job.steps[2].kind else {
            panic!()
        };
        assert_eq!(r.edition, kefu_report::Edition::Month);
        assert_eq!(r.month, "month_start - 1 month");
    }

    #[test]
    fn a_lookahead_naming_a_parameter_takes_the_steps_value_or_its_default() {
        let step = |params: &str| {
            let job = parse(&format!(
                "{HEAD}[[step]]\ntype = \"query\"\nquery = \"churn_monthly\"\nparams = {{ {params} }}\n"
            ))
            .unwrap();
            let StepKind::Query(q) = &job.steps[0].kind else {
                panic!()
            };
            q.lookahead
        };
        // churn_monthly's `{days} days`.
        assert_eq!(step("from = \"2026-01-01\""), Lookahead::Days(90));
        assert_eq!(step("days = 30"), Lookahead::Days(30));
    }

    #[test]
    fn report_editions_default_to_the_last_complete_period() {
        for (edition, expr) in [
            ("half", "month_start - 6 months"),
            ("year", "month_start - 12 months"),
        ] {
            let job = parse(&format!(
                "{HEAD}[[step]]\ntype = \"report\"\nedition = \"{edition}\"\nout = \"r/{{period}}\"\n"
            ))
            .unwrap();
            let StepKind::Report(r) = &job.steps[0].kind else {
                panic!()
            };
            assert_eq!(r.month, expr);
            assert_eq!(r.edition.name(), edition);
            // Run on 2026-07-03, the half year before is 2026-H1; in January, last year's H2.
            let day = dates::eval(expr, "2026-07-03".parse().unwrap()).unwrap();
            let half = kefu_report::ReportPeriod::containing(r.edition, day);
            let january = dates::eval(expr, "2027-01-15".parse().unwrap()).unwrap();
            let then = kefu_report::ReportPeriod::containing(r.edition, january);
            match edition {
                "half" => assert_eq!(
                    (half.label(), then.label()),
                    ("2026-H1".into(), "2026-H2".into())
                ),
                _ => assert_eq!((half.label(), then.label()), ("2025".into(), "2026".into())),
            }
        }
    }

    #[test]
    fn errors_name_the_line() {
        let cases = [
            (
                format!("{HEAD}\n[[step]]\ntype = \"transmogrify\"\n"),
                5,
                "unknown step type",
            ),
            (
                "name = \"j\"\n[[step]]\ntype = \"report\"\nout = \"r\"\n".to_string(),
                1,
                "warehouse",
            ),
            (
                format!(
                    "{HEAD}schedule = \"61 * * * *\"\n[[step]]\ntype = \"report\"\nout = \"r\"\n"
                ),
                3,
                "cron",
            ),
            (
                format!("{HEAD}[[step]]\ntype = \"query\"\nquery = \"calls_kpiz\"\n"),
                5,
                "unknown named query",
            ),
            (
                format!(
                    "{HEAD}[[step]]\ntype = \"query\"\nquery = \"calls_kpis\"\nparams = {{ t = \"soon\" }}\n"
                ),
                6,
                "not an integer",
            ),
            (
                format!(
                    "{HEAD}[[step]]\ntype = \"query\"\nquery = \"calls_kpis\"\n\nparams = {{ from = \"next tuesday\" }}\n"
                ),
                7,
                "not a date expression",
            ),
            (
                format!(
                    "{HEAD}[[step]]\ntype = \"query\"\nquery = \"calls_kpis\"\nparams = {{ nope = 1 }}\n"
                ),
                6,
                "no parameter 'nope'",
            ),
            (
                format!(
                    "{HEAD}[[step]]\ntype = \"query\"\nquery = \"calls_kpis\"\nsources = [\"x\"]\n"
                ),
                6,
                "takes no 'sources'",
            ),
            (
                format!(
                    "{HEAD}[[step]]\ntype = \"query\"\nquery = \"calls_kpis\"\n[[step.output]]\npath = \"x.docx\"\n"
                ),
                7,
                "name a format",
            ),
            (
                format!("{HEAD}[[step]]\ntype = \"query\"\nquery = \"calls_kpis\"\ncolour = 1\n"),
                6,
                "unknown field",
            ),
            (
                format!(
                    "{HEAD}[[step]]\ntype = \"report\"\nout = \"r\"\nedition = \"quarterly\"\n"
                ),
                6,
                "edition 'quarterly' is not one of month, half, year",
            ),
        ];
        let mut wrong = Vec::new();
        for (text, line, needle) in cases {
            let (got_line, message) = error_line(&text);
            if !message.contains(needle) || got_line != line {
                wrong.push(format!(
                    "line {got_line} (want {line}): {message} (want '{needle}')\n{text}"
                ));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n---\n"));
    }
}
