//! `kefu cluster check`: is the cluster fit to run kefu's queries? It lists the executors
//! registered with the scheduler (the scheduler's REST API), runs a small query over the
//! warehouse's latest month of calls on the cluster — with one task per task slot, so
//! that every executor runs part of it — and compares the answer with the same query run
//! here. An executor that cannot read the warehouse, lacks kefu's functions or counts
//! working time differently makes the query fail or differ, and the report says which.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ballista_core::execution_plans::DistributedQueryExec;
use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use ballista_core::serde::protobuf::{GetJobStatusParams, job_status};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::physical_plan::collect;
use datafusion_proto::protobuf::LogicalPlanNode;
use kefu_sql::{Engine, EngineOptions};
use kefu_storage::Warehouse;
use kefu_storage::warehouse::MONTH_COLUMN;

use crate::tls::ClusterTls;
use crate::{ClusterError, open_session, scheduler_address};

/// An executor as the scheduler knows it, and what it did for the check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutorReport {
    pub id: String,
    /// Where the executor serves results and shuffle data.
    pub host: String,
    pub port: u16,
    /// Tasks it runs at once.
    pub task_slots: u64,
    /// Time since its last heartbeat.
    pub last_seen: Option<Duration>,
    /// Tasks of the check query's last stage it ran.
    pub tasks: usize,
}

/// What `kefu cluster check` found.
#[derive(Debug, Clone)]
pub struct CheckReport {
    pub scheduler: String,
    /// Ballista's version, as the scheduler reports it.
    pub version: String,
    pub executors: Vec<ExecutorReport>,
    /// The month of calls the check query read.
    pub month: String,
    /// Rows of the check query's answer, the same on the cluster and here.
    pub rows: Vec<String>,
    /// The cluster's answer equals the one computed here.
    pub equal_to_local: bool,
    /// The cluster's answer, where it differs.
    pub cluster_rows: Vec<String>,
    /// Runs of the check query (more than one when a first run left an executor idle).
    pub runs: usize,
    pub cluster_time: Duration,
    pub local_time: Duration,
}

impl CheckReport {
    /// Every executor ran part of the query, and the answer equals the local one.
    pub fn passed(&self) -> bool {
        !self.executors.is_empty()
            && self.executors.iter().all(|e| e.tasks > 0)
            && self.equal_to_local
    }
}

/// The check query: per region, calls, the local days they fall on (`local_date`) and
/// their working seconds from queueing to the end (`business_seconds`, under the client's
/// calendar). No ORDER BY, so that its last stage has one task per partition.
fn check_sql(month: &str) -> String {
    format!(
        "SELECT region, count(*) AS calls, count(DISTINCT local_date(queued_at)) AS days, \
         sum(business_seconds(queued_at, ended_at)) AS working_seconds \
         FROM calls WHERE {MONTH_COLUMN} = '{month}' GROUP BY region"
    )
}

/// Checks the cluster at `url` (`df://HOST:PORT`) against `warehouse`.
pub async fn check(
    url: &str,
    warehouse: &Warehouse,
    options: &EngineOptions,
    tls: Option<&ClusterTls>,
) -> Result<CheckReport, ClusterError> {
    let (host, port) = scheduler_address(url)?;
    let scheduler = format!("df://{host}:{port}");
    let unreachable = |source: kefu_model::BoxError| ClusterError::Unreachable {
        scheduler: scheduler.clone(),
        source,
    };
    let api = SchedulerApi::new(&host, port, tls).await?;
    let version: serde_json::Value = api.get("version").await?;
    let listed = api.executors().await?;
    let mut executors: Vec<ExecutorReport> = listed.iter().map(executor_report).collect();
    executors.sort_by(|a, b| (&a.host, a.port).cmp(&(&b.host, b.port)));
    let month = latest_month(warehouse).await?;
    let mut report = CheckReport {
        scheduler: scheduler.clone(),
        version: version["version"].as_str().unwrap_or("unknown").to_string(),
        executors,
        month: month.clone(),
        rows: Vec::new(),
        equal_to_local: false,
        cluster_rows: Vec::new(),
        runs: 0,
        cluster_time: Duration::ZERO,
        local_time: Duration::ZERO,
    };
    if report.executors.is_empty() {
        return Ok(report);
    }

    let sql = check_sql(&month);
    let started = Instant::now();
    let local = Engine::open(warehouse, options).await?;
    let mut local_rows = rows(&local.collect(&sql).await?.1)?;
    local_rows.sort();
    report.local_time = started.elapsed();

    // One task per slot: the scheduler hands out every free slot at once, so each
    // executor gets some. A busy cluster may leave one out; then run again.
    let slots: u64 = report.executors.iter().map(|e| e.task_slots.max(1)).sum();
    let cluster_options = EngineOptions {
        target_partitions: Some(slots as usize),
        ..options.clone()
    };
    let engine = open_session(warehouse, &cluster_options, &host, port, tls).await?;
    {
        // Spread the query over every slot even when the month is a few small files:
        // without statistics DataFusion does not judge the input too small to
        // repartition, and files are split into byte ranges.
        let state = engine.context().state_ref();
        let mut state = state.write();
        let options = state.config_mut().options_mut();
        options.execution.collect_statistics = false;
        options.optimizer.repartition_file_min_size = 0;
    }
    let mut endpoint = tonic::transport::Endpoint::from_shared(format!("http://{host}:{port}"))
        .map_err(|e| unreachable(e.into()))?;
    if let Some(tls) = tls {
        endpoint = (tls.endpoint_override())(endpoint).map_err(unreachable)?;
    }
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| unreachable(e.into()))?;
    let mut grpc = SchedulerGrpcClient::new(channel);
    let started = Instant::now();
    while report.runs < 3 && report.executors.iter().any(|e| e.tasks == 0) {
        report.runs += 1;
        let frame = engine.sql(&sql).await?;
        let task_ctx = frame.task_ctx();
        let plan = frame
            .create_physical_plan()
            .await
            .map_err(kefu_sql::SqlError::DataFusion)?;
        let batches = collect(plan.clone(), std::sync::Arc::new(task_ctx))
            .await
            .map_err(kefu_sql::SqlError::DataFusion)?;
        let mut answer = rows(&batches)?;
        answer.sort();
        report.equal_to_local = answer == local_rows;
        if !report.equal_to_local {
            report.cluster_rows = answer;
        }
        let job = plan
            .downcast_ref::<DistributedQueryExec<LogicalPlanNode>>()
            .and_then(DistributedQueryExec::job_id)
            .ok_or_else(|| ClusterError::Scheduler("the check query ran no cluster job".into()))?;
        let status = grpc
            .get_job_status(GetJobStatusParams {
                job_id: job.to_string(),
            })
            .await
            .map_err(|e| ClusterError::Scheduler(e.message().to_string()))?
            .into_inner()
            .status
            .and_then(|s| s.status);
        let Some(job_status::Status::Successful(done)) = status else {
            return Err(ClusterError::Scheduler(format!(
                "job {job} ran, but the scheduler reports {status:?}"
            )));
        };
        let mut tasks: BTreeMap<String, usize> = BTreeMap::new();
        for location in done.partition_location {
            if let Some(executor) = location.executor_meta {
                *tasks.entry(executor.id).or_default() += 1;
            }
        }
        for executor in &mut report.executors {
            executor.tasks += tasks.get(&executor.id).copied().unwrap_or(0);
        }
        if !report.equal_to_local {
            break;
        }
    }
    report.cluster_time = started.elapsed();
    report.rows = local_rows;
    Ok(report)
}

/// The scheduler's REST API.
struct SchedulerApi {
    /// `df://HOST:PORT`, as errors name it.
    scheduler: String,
    /// `http(s)://…:PORT`.
    base: String,
    client: reqwest::Client,
}

impl SchedulerApi {
    async fn new(host: &str, port: u16, tls: Option<&ClusterTls>) -> Result<Self, ClusterError> {
        let scheduler = format!("df://{host}:{port}");
        let unreachable = |source: kefu_model::BoxError| ClusterError::Unreachable {
            scheduler: scheduler.clone(),
            source,
        };
        let (base, client) = match tls {
            None => (
                format!("http://{host}:{port}"),
                reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .map_err(|e| unreachable(e.into()))?,
            ),
            Some(tls) => {
                // The certificate names the cluster, not the host: the name resolves to it.
                let address = tokio::net::lookup_host((host, port))
                    .await
                    .map_err(|e| unreachable(e.into()))?
                    .next()
                    .ok_or_else(|| unreachable("the host has no address".into()))?;
                (
                    format!("https://{}:{port}", crate::tls::MEMBER_NAME),
                    tls.http_client(address)?,
                )
            }
        };
        Ok(SchedulerApi {
            scheduler,
            base,
            client,
        })
    }

    /// `GET /api/{path}` as JSON.
    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, ClusterError> {
        let fetched = async {
            self.client
                .get(format!("{}/api/{path}", self.base))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await
        };
        fetched
            .await
            .map_err(|e: reqwest::Error| ClusterError::Unreachable {
                scheduler: self.scheduler.clone(),
                source: e.into(),
            })
    }

    /// The executors registered with the scheduler.
    async fn executors(&self) -> Result<Vec<serde_json::Value>, ClusterError> {
        self.get("executors").await
    }
}

/// Waits up to `wait` for an executor to register with the scheduler at `host:port`: a
/// scheduler without executors queues a query's job for ever, so a client would wait
/// without end (a cluster still starting, or one whose executors failed to start).
pub(crate) async fn await_executor(
    host: &str,
    port: u16,
    tls: Option<&ClusterTls>,
    wait: Duration,
) -> Result<(), ClusterError> {
    let api = SchedulerApi::new(host, port, tls).await?;
    let started = Instant::now();
    let waiting = format!("waiting for an executor to register with {}", api.scheduler);
    // An unreachable scheduler fails at once; only an empty list is waited out.
    let listed = poll(
        wait,
        Duration::from_millis(250),
        &waiting,
        || api.executors(),
        |l| !matches!(l, Ok(executors) if executors.is_empty()),
    )
    .await?;
    if listed.is_empty() {
        return Err(ClusterError::NoExecutor {
            scheduler: api.scheduler,
            waited: started.elapsed(),
        });
    }
    Ok(())
}

/// [`check`], again every half second until it passes or `wait` has passed (a cluster
/// still starting); the last check's answer.
pub async fn check_until_passed(
    url: &str,
    warehouse: &Warehouse,
    options: &EngineOptions,
    tls: Option<&ClusterTls>,
    wait: Duration,
) -> Result<CheckReport, ClusterError> {
    let waiting = format!("the cluster at {url} is not ready yet; checking again until it is");
    let checked = || check(url, warehouse, options, tls);
    poll(wait, Duration::from_millis(500), &waiting, checked, |c| {
        c.as_ref().is_ok_and(CheckReport::passed)
    })
    .await
}

/// Runs `attempt` every `every` until `done` takes its answer or `wait` has passed, and
/// gives the last answer; says once (`waiting`, in the log) that it waits.
async fn poll<T, Attempt>(
    wait: Duration,
    every: Duration,
    waiting: &str,
    mut attempt: impl FnMut() -> Attempt,
    done: impl Fn(&T) -> bool,
) -> T
where
    Attempt: Future<Output = T>,
{
    let started = Instant::now();
    let mut told = false;
    loop {
        let answer = attempt().await;
        if done(&answer) || started.elapsed() >= wait {
            return answer;
        }
        if !std::mem::replace(&mut told, true) {
            tracing::info!("{waiting}");
        }
        tokio::time::sleep(every).await;
    }
}

fn executor_report(listed: &serde_json::Value) -> ExecutorReport {
    ExecutorReport {
        id: listed["id"].as_str().unwrap_or_default().to_string(),
        host: listed["host"].as_str().unwrap_or_default().to_string(),
        port: listed["port"].as_u64().unwrap_or_default() as u16,
        task_slots: vcores(&listed["specification"]),
        last_seen: listed["last_seen"].as_u64().map(|ms| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            now.saturating_sub(Duration::from_millis(ms))
        }),
        tasks: 0,
    }
}

/// The executor's task slots: its `vcores` resources, wherever the specification's JSON
/// puts them.
fn vcores(specification: &serde_json::Value) -> u64 {
    match specification {
        serde_json::Value::Object(fields) => fields
            .iter()
            .map(|(key, value)| match value.as_u64() {
                Some(n) if key.eq_ignore_ascii_case("vcores") => n,
                _ => vcores(value),
            })
            .sum(),
        serde_json::Value::Array(items) => items.iter().map(vcores).sum(),
        _ => 0,
    }
}

/// The latest month partition of `calls`.
async fn latest_month(warehouse: &Warehouse) -> Result<String, ClusterError> {
    let err = |e: kefu_storage::StorageError| ClusterError::Warehouse(e.to_string());
    let cut = warehouse
        .cut(kefu_storage::AsOf::Latest)
        .await
        .map_err(err)?;
    let files = warehouse
        .files_at(
            &cut,
            kefu_storage::StoredTable::Model(kefu_model::Table::Calls),
        )
        .await
        .map_err(err)?;
    files
        .iter()
        .filter_map(|f| f.partition.clone())
        .max()
        .ok_or_else(|| {
            ClusterError::Warehouse(format!(
                "{} has no calls for the check query to read; ingest some first",
                warehouse.location()
            ))
        })
}

/// Each row as its values joined by `|`.
fn rows(batches: &[RecordBatch]) -> Result<Vec<String>, ClusterError> {
    let mut out = Vec::new();
    for batch in batches {
        let rows = kefu_sql::output::text_rows(batch, usize::MAX)
            .map_err(|e| ClusterError::Scheduler(format!("cannot show the answer: {e}")))?;
        out.extend(rows.into_iter().map(|values| values.join("|")));
    }
    Ok(out)
}

impl std::fmt::Display for CheckReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let slots: u64 = self.executors.iter().map(|e| e.task_slots).sum();
        writeln!(
            f,
            "scheduler {} (Ballista {}): {} executor(s), {slots} task slot(s)",
            self.scheduler,
            self.version,
            self.executors.len()
        )?;
        if self.executors.is_empty() {
            return Ok(());
        }
        let mut table = comfy_table::Table::new();
        table.load_preset(comfy_table::presets::NOTHING);
        table.set_header([
            "executor",
            "address",
            "slots",
            "last heartbeat",
            "tasks run",
        ]);
        for executor in &self.executors {
            table.add_row([
                executor.id.clone(),
                format!("{}:{}", executor.host, executor.port),
                executor.task_slots.to_string(),
                executor
                    .last_seen
                    .map_or("?".to_string(), |d| format!("{:.1} s ago", d.as_secs_f64())),
                executor.tasks.to_string(),
            ]);
        }
        writeln!(f, "{table}")?;
        writeln!(
            f,
            "check query: calls of {} per region (local_date, business_seconds), {} run(s) on the \
             cluster in {:.2} s, here in {:.2} s; answers {} ({} rows)",
            self.month,
            self.runs,
            self.cluster_time.as_secs_f64(),
            self.local_time.as_secs_f64(),
            if self.equal_to_local {
                "equal"
            } else {
                "DIFFER"
            },
            self.rows.len()
        )?;
        if self.passed() {
            writeln!(
                f,
                "ok: every executor ran part of the query and the cluster answers as local mode does"
            )?;
        }
        Ok(())
    }
}

impl CheckReport {
    /// Why the check failed; none when it passed.
    pub fn failure(&self) -> Option<String> {
        if self.passed() {
            return None;
        }
        if self.executors.is_empty() {
            return Some(format!(
                "no executor has registered with {}: start one with `kefu cluster executor \
                 --scheduler HOST:PORT --warehouse DIR_OR_URL` and check its log",
                self.scheduler
            ));
        }
        let mut problems = Vec::new();
        let idle: Vec<&str> = self
            .executors
            .iter()
            .filter(|e| e.tasks == 0)
            .map(|e| e.id.as_str())
            .collect();
        if !idle.is_empty() {
            problems.push(format!(
                "executor(s) {} ran no task in {} run(s) (busy, or not taking tasks: see their logs)",
                idle.join(", "),
                self.runs
            ));
        }
        if !self.equal_to_local {
            problems.push(format!(
                "the cluster's answer differs from local mode's (do the executors see the same \
                 warehouse, and run the same kefu?):\n  here:    {}\n  cluster: {}",
                self.rows.join("\n           "),
                self.cluster_rows.join("\n           ")
            ));
        }
        Some(format!("cluster check failed: {}", problems.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_slots_are_read_wherever_the_specification_puts_them() {
        let spec = serde_json::json!({"resources": [{"resource": {"Vcores": 3}}]});
        assert_eq!(vcores(&spec), 3);
        assert_eq!(vcores(&serde_json::json!({"task_slots": 4})), 0);
    }
}
