//! A DataFusion session over one warehouse.

use std::path::PathBuf;
use std::sync::Arc;

use arrow::datatypes::{DataType, FieldRef, SchemaRef};
use datafusion::common::Column;
use datafusion::config::ConfigOptions;
use datafusion::error::DataFusionError;
use datafusion::execution::context::SQLOptions;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::{
    FairSpillPool, MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation,
};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::logical_expr::{Expr, cast};
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use datafusion::sql::parser::{DFParser, Statement};
use kefu_storage::{AsOf, Cut, StoredTable, Warehouse};

use crate::SqlError;

/// How a session runs.
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    /// Memory for query execution (sorts, joins and aggregates spill to disk beyond it);
    /// `None` leaves memory unbounded.
    pub memory_limit: Option<usize>,
    /// Where spill files go (the system temporary directory by default).
    pub spill_dir: Option<PathBuf>,
    /// Parallelism of each query (by default the number of cores, at least 4).
    pub target_partitions: Option<usize>,
    /// The working calendar of `business_seconds`.
    pub calendar: crate::udf::WorkingCalendar,
    /// Which state of the warehouse to read (the newest committed by default).
    pub as_of: AsOf,
    /// How long and how deeply nested ad hoc SQL may be.
    pub bounds: SqlBounds,
    /// Memory every session of a server draws from together (its queries' total), on top
    /// of `memory_limit` per session.
    pub shared_pool: Option<Arc<dyn MemoryPool>>,
    /// Whether ad hoc SQL may read the analyst's own files beside the warehouse and name
    /// them (`crate::side_files`): the local CLI's sessions, never the server's.
    pub side_files: bool,
}

/// A session's memory: its own limit (spilling consumers share it fairly), and every
/// reservation also drawn from the pool all sessions of a server share.
#[derive(Debug)]
struct SharedPool {
    session: FairSpillPool,
    shared: Arc<dyn MemoryPool>,
}

impl std::fmt::Display for SharedPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} within {}", self.session, self.shared)
    }
}

impl MemoryPool for SharedPool {
    fn name(&self) -> &str {
        "kefu-shared"
    }
    fn register(&self, consumer: &MemoryConsumer) {
        self.session.register(consumer);
        self.shared.register(consumer);
    }
    fn unregister(&self, consumer: &MemoryConsumer) {
        self.session.unregister(consumer);
        self.shared.unregister(consumer);
    }
    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.session.grow(reservation, additional);
        self.shared.grow(reservation, additional);
    }
    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.session.shrink(reservation, shrink);
        self.shared.shrink(reservation, shrink);
    }
    fn try_grow(
        &self,
        reservation: &MemoryReservation,
        additional: usize,
    ) -> datafusion::error::Result<()> {
        self.session.try_grow(reservation, additional)?;
        if let Err(e) = self.shared.try_grow(reservation, additional) {
            self.session.shrink(reservation, additional);
            return Err(e);
        }
        Ok(())
    }
    fn reserved(&self) -> usize {
        self.session.reserved()
    }
    fn memory_limit(&self) -> MemoryLimit {
        self.session.memory_limit()
    }
}

/// The stack of every thread that plans or runs queries. DataFusion evaluates an
/// expression tree recursively (a `BinaryExpr` calls its children), with no guard on the
/// stack: 500 levels, the default bound, overflow Tokio's 2 MiB in a debug build. The
/// stack is virtual memory, touched only as deep as a query goes.
pub const QUERY_THREAD_STACK: usize = 32 << 20;

/// Bounds on ad hoc SQL, checked before it is planned: a statement beyond them is refused
/// with a clear error rather than parsed into a tree that planning recurses over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqlBounds {
    /// Bytes of SQL text at most.
    pub max_bytes: usize,
    /// How deeply expressions and queries may nest (`1+1+…+1` with n terms nests n deep).
    pub max_depth: usize,
}

impl Default for SqlBounds {
    fn default() -> Self {
        SqlBounds {
            max_bytes: 1 << 20,
            max_depth: 500,
        }
    }
}

/// Parses SQL within `bounds`. The text is parsed on a thread of its own with a large
/// (virtual, touched only when used) stack: a long left-nested chain parses into a tree as
/// deep as it is long, and walking or dropping that tree recurses once per level.
pub fn parse_bounded(sql: &str, bounds: SqlBounds) -> Result<Vec<Statement>, SqlError> {
    if sql.len() > bounds.max_bytes {
        return Err(SqlError::TooLong {
            bytes: sql.len(),
            limit: bounds.max_bytes,
        });
    }
    // Each level of a dropped or walked expression takes well under 256 bytes of stack.
    let stack = (sql.len() * 256).max(8 << 20);
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("kefu-sql-parse".into())
            .stack_size(stack)
            .spawn_scoped(scope, || {
                let statements = DFParser::parse_sql(sql).map_err(SqlError::from)?;
                for statement in &statements {
                    let depth = nesting_depth(statement, bounds.max_depth);
                    if depth > bounds.max_depth {
                        return Err(SqlError::TooDeep {
                            limit: bounds.max_depth,
                        });
                    }
                }
                Ok(Vec::from(statements))
            })
            .map_err(|e| SqlError::Io {
                path: "a thread to parse SQL".into(),
                error: e,
            })?
            .join()
            .unwrap_or_else(|_| Err(SqlError::Internal("the SQL parser panicked".into())))
    })
}

/// How deeply `statement`'s expressions and queries nest, counted up to `limit + 1`.
fn nesting_depth(statement: &Statement, limit: usize) -> usize {
    use datafusion::sql::sqlparser::ast::{Expr, Query, Visit, Visitor};
    use std::ops::ControlFlow;
    struct Depth {
        now: usize,
        deepest: usize,
        limit: usize,
    }
    impl Depth {
        fn enter(&mut self) -> ControlFlow<()> {
            self.now += 1;
            self.deepest = self.deepest.max(self.now);
            // Stop walking beyond the limit: the walk itself recurses per level.
            if self.now > self.limit {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        }
        fn leave(&mut self) -> ControlFlow<()> {
            self.now -= 1;
            ControlFlow::Continue(())
        }
    }
    impl Visitor for Depth {
        type Break = ();
        fn pre_visit_expr(&mut self, _: &Expr) -> ControlFlow<()> {
            self.enter()
        }
        fn post_visit_expr(&mut self, _: &Expr) -> ControlFlow<()> {
            self.leave()
        }
        fn pre_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
            self.enter()
        }
        fn post_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
            self.leave()
        }
    }
    let mut depth = Depth {
        now: 0,
        deepest: 0,
        limit,
    };
    let mut statement = statement;
    while let Statement::Explain(explain) = statement {
        statement = &explain.statement;
    }
    match statement {
        Statement::Statement(s) => {
            let _ = s.visit(&mut depth);
        }
        Statement::CopyTo(copy) => {
            if let datafusion::sql::parser::CopyToSource::Query(query) = &copy.source {
                let _ = query.visit(&mut depth);
            }
        }
        Statement::Explain(_) | Statement::CreateExternalTable(_) | Statement::Reset(_) => {}
    }
    depth.deepest
}

/// A registered table: its name, its schema (partition columns last) and what it holds.
#[derive(Debug, Clone)]
pub struct TableInfo {
    pub name: String,
    pub schema: SchemaRef,
    pub partition_columns: Vec<String>,
}

/// A read-only SQL session over a warehouse: every canonical table and `_rejects`
/// registered at the versions of one cut (the newest committed operation, or the one
/// `as_of` names), so every query of the session sees every table as of one batch.
pub struct Engine {
    ctx: SessionContext,
    tables: Vec<TableInfo>,
    cut: Cut,
    bounds: SqlBounds,
    /// The warehouse's calendar.
    time_zone: chrono_tz::Tz,
    side_files: bool,
}

/// DataFusion settings from the environment, over kefu's own: each option `a.b.c` is
/// read from `DATAFUSION_A_B_C` (e.g. `DATAFUSION_EXECUTION_BATCH_SIZE=16384`), as
/// DataFusion's own `from_env` names them; so are the options of extensions registered
/// in `options` (a cluster's `ballista.*`, from `BALLISTA_*`). Ad hoc SQL cannot `SET`
/// them (read-only).
pub fn apply_environment(options: &mut ConfigOptions) -> Result<(), SqlError> {
    for entry in options.entries() {
        let variable = entry.key.to_uppercase().replace('.', "_");
        if let Ok(value) = std::env::var(&variable) {
            options
                .set(&entry.key, &value)
                .map_err(SqlError::DataFusion)?;
        }
    }
    Ok(())
}

/// What ad hoc SQL may do: read. DDL, DML (INSERT, COPY) and statements (SET) are refused.
pub fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

impl Engine {
    /// The calendar of the warehouse this session reads (its `local_*` functions').
    pub fn time_zone(&self) -> chrono_tz::Tz {
        self.time_zone
    }

    /// Opens a session over `warehouse` at the cut `options.as_of` names. Reads the
    /// ledger and each table's list of files (from its log), no data.
    pub async fn open(warehouse: &Warehouse, options: &EngineOptions) -> Result<Self, SqlError> {
        Engine::open_with(warehouse, options, Ok).await
    }

    /// Opens a session whose state `upgrade` may change before the warehouse's functions
    /// and tables are registered in it: `kefu-cluster` makes it run on a Ballista cluster.
    pub async fn open_with(
        warehouse: &Warehouse,
        options: &EngineOptions,
        upgrade: impl FnOnce(SessionState) -> datafusion::error::Result<SessionState>,
    ) -> Result<Self, SqlError> {
        let cut = warehouse
            .cut(options.as_of)
            .await
            .map_err(|e| SqlError::Warehouse(e.to_string()))?;
        let time_zone = warehouse
            .time_zone()
            .await
            .map_err(|e| SqlError::Warehouse(e.to_string()))?;
        let mut files = Vec::new();
        for table in StoredTable::ALL {
            files.push(
                warehouse
                    .files_at(&cut, table)
                    .await
                    .map_err(|e| SqlError::Warehouse(e.to_string()))?,
            );
        }
        let mut runtime = RuntimeEnvBuilder::new();
        match (options.memory_limit, &options.shared_pool) {
            (Some(limit), Some(shared)) => {
                runtime = runtime.with_memory_pool(Arc::new(SharedPool {
                    session: FairSpillPool::new(limit),
                    shared: shared.clone(),
                }));
            }
            (Some(limit), None) => {
                runtime = runtime.with_memory_pool(Arc::new(FairSpillPool::new(limit)));
            }
            (None, Some(shared)) => runtime = runtime.with_memory_pool(shared.clone()),
            (None, None) => {}
        }
        if let Some(dir) = &options.spill_dir {
            runtime = runtime.with_disk_manager_builder(
                DiskManagerBuilder::default()
                    .with_mode(DiskManagerMode::Directories(vec![dir.clone()])),
            );
        }
        let runtime = runtime.build_arc().map_err(SqlError::DataFusion)?;
        let mut config = SessionConfig::new()
            .with_information_schema(true)
            .with_parquet_pruning(true)
            .with_collect_statistics(true);
        // Row-level filter pushdown (late materialisation) costs more than it saves here:
        // files are sorted by region and time, so time and region filters already skip
        // row groups and pages, and what is left mostly passes. Measured over the query
        // library (10 M calls, kefu against kefu, alternating): 7–11% less time without.
        config.options_mut().execution.parquet.pushdown_filters = false;
        config.options_mut().execution.time_zone = Some("UTC".into());
        // Pre-aggregating is wasted work when the groups are nearly as many as the rows
        // (customer x month over the churn queries: 13 M rows, 6 M groups); DataFusion
        // stops at 80% of the rows, kefu already at 10% (measured: the final aggregate
        // then does the work once, in less memory).
        config
            .options_mut()
            .execution
            .skip_partial_aggregation_probe_ratio_threshold = 0.1;
        // Batches of 16,384 rows rather than 8,192: sorts, windows and joins with residual
        // filters do less per-batch work (compare_adhoc.py, kefu alone, medians of 3: the
        // window over customers 4.02 → 2.59 s, the two joins on time windows 1.46 → 1.28 s
        // and 1.96 → 1.70 s); the named queries are unchanged (0.99×, compare_settings.sh).
        let mut batch_size = 16_384;
        let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
        // At least 4 partitions: on 2 cores, 4 let one partition decode Parquet while
        // another aggregates (measured: 7% less time over the query library).
        let mut partitions = cores.max(4);
        if let Some(limit) = options.memory_limit {
            // A sort reserves memory for merging its spilled runs; under a small limit,
            // reserve a share of it rather than DataFusion's fixed 10 MB.
            let execution = &mut config.options_mut().execution;
            execution.sort_spill_reservation_bytes =
                execution.sort_spill_reservation_bytes.min(limit / 8);
            // The fair pool gives each spilling operator an equal share, and an operator
            // merging its spilled runs holds a batch of each at once. Under a tight limit
            // (less than 512 MiB a partition), one partition per core and DataFusion's
            // 8,192-row batches: churn_tier_migration at 1 M customers under
            // --memory-limit 1GB failed in 3 of 3 runs ("Failed to allocate ... for
            // FinalHashAggregateStream"); with both, 7 of 7 runs gave the unlimited answer.
            if limit / partitions < 512 << 20 {
                batch_size = 8_192;
                partitions = cores;
            }
        }
        config = config.with_batch_size(batch_size);
        let partitions = options.target_partitions.unwrap_or(partitions);
        config = config.with_target_partitions(partitions.max(1));
        apply_environment(config.options_mut())?;
        let state = crate::rules::add_to(
            SessionStateBuilder::new()
                .with_config(config)
                .with_runtime_env(runtime)
                .with_default_features()
                .with_physical_optimizer_rules(crate::rules::physical_rules()),
        )
        .build();
        let ctx = SessionContext::new_with_state(upgrade(state).map_err(SqlError::DataFusion)?);
        let ctx = if options.side_files {
            crate::side_files::enable(ctx)
        } else {
            ctx
        };
        // A calendar that names no zone works in the warehouse's.
        let mut calendar = options.calendar.clone();
        if !calendar.time_zone_given {
            // Fixed now: a plan sent to a cluster carries it.
            calendar.time_zone = time_zone;
            calendar.time_zone_given = true;
        }
        crate::udf::register(&ctx, &calendar, time_zone);
        crate::limits::register(&ctx);

        let root = warehouse.url().clone();
        if warehouse.local_dir().is_none() {
            // The warehouse's own store (credentials, endpoint) serves its bucket.
            let mut bucket = root.clone();
            bucket.set_path("");
            ctx.register_object_store(&bucket, warehouse.store());
        }
        let mut tables = Vec::new();
        for (table, files) in StoredTable::ALL.into_iter().zip(files) {
            tables.push(register(
                &ctx,
                &root,
                table,
                cut.version(table),
                files,
                options.memory_limit.is_none(),
            )?);
        }
        Ok(Engine {
            ctx,
            tables,
            cut,
            bounds: options.bounds,
            time_zone,
            side_files: options.side_files,
        })
    }

    /// The state of the warehouse this session reads: the operation and each table's
    /// version.
    pub fn cut(&self) -> &Cut {
        &self.cut
    }

    /// The session, for registering more (functions, views) or running trusted SQL.
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// The tables of the warehouse, in model order, `_rejects` last.
    pub fn tables(&self) -> &[TableInfo] {
        &self.tables
    }

    /// Plans one statement of ad hoc SQL, refusing anything but reading, and SQL beyond
    /// the session's bounds.
    pub async fn sql(&self, sql: &str) -> Result<DataFrame, SqlError> {
        let mut statements = self.parse(sql)?;
        match statements.len() {
            1 => self.plan(statements.remove(0)).await,
            n => Err(SqlError::DataFusion(DataFusionError::NotImplemented(
                format!("one statement at a time, found {n}"),
            ))),
        }
    }

    /// Runs one statement of ad hoc SQL to the end: its schema and every batch.
    pub async fn collect(
        &self,
        sql: &str,
    ) -> Result<(SchemaRef, Vec<arrow::record_batch::RecordBatch>), SqlError> {
        let df = self.sql(sql).await?;
        let schema = Arc::new(df.schema().as_arrow().clone());
        Ok((schema, df.collect().await?))
    }

    /// Splits a script into statements (parsing all of it first, so a syntax error
    /// anywhere runs nothing).
    pub fn parse(&self, sql: &str) -> Result<Vec<Statement>, SqlError> {
        parse_bounded(sql, self.bounds)
    }

    /// Plans one parsed statement, refusing anything but reading.
    pub async fn plan(&self, statement: Statement) -> Result<DataFrame, SqlError> {
        let text = statement.to_string();
        let plan = self
            .ctx
            .state()
            .statement_to_plan(statement)
            .await
            .map_err(|e| SqlError::from_planning(&text, e))?;
        let own_names = self.side_files && {
            let warehouse: Vec<String> = self.tables.iter().map(|t| t.name.clone()).collect();
            crate::side_files::defines_only_session_names(&plan, &warehouse)
        };
        if !own_names {
            read_only()
                .verify_plan(&plan)
                .map_err(|e| SqlError::from_planning(&text, e))?;
        }
        Ok(plain_text(self.ctx.execute_logical_plan(plan).await?)?)
    }
}

/// `df` with its text columns as `Utf8`: the warehouse is read as `Utf8View` (faster inside
/// the plan), but what leaves the engine — files, the shell, the report, the server's
/// protocols, Delta tables a job writes — keeps the one text type it always had. The cast
/// touches only the result's rows.
pub fn plain_text(df: DataFrame) -> datafusion::error::Result<DataFrame> {
    if !df
        .schema()
        .fields()
        .iter()
        .any(|f| has_views(f.data_type()))
    {
        return Ok(df);
    }
    let columns: Vec<Expr> = df
        .schema()
        .iter()
        .map(|(qualifier, field)| {
            let column = Expr::Column(Column::from((qualifier, field)));
            if has_views(field.data_type()) {
                cast(column, without_views(field.data_type()))
                    .alias_qualified(qualifier.cloned(), field.name())
            } else {
                column
            }
        })
        .collect();
    df.select(columns)
}

fn has_views(data_type: &DataType) -> bool {
    without_views(data_type) != *data_type
}

fn without_views(data_type: &DataType) -> DataType {
    let field = |f: &FieldRef| {
        Arc::new(
            f.as_ref()
                .clone()
                .with_data_type(without_views(f.data_type())),
        )
    };
    match data_type {
        DataType::Utf8View => DataType::Utf8,
        DataType::BinaryView => DataType::Binary,
        DataType::List(f) => DataType::List(field(f)),
        DataType::LargeList(f) => DataType::LargeList(field(f)),
        DataType::FixedSizeList(f, n) => DataType::FixedSizeList(field(f), *n),
        DataType::Struct(fields) => DataType::Struct(fields.iter().map(field).collect()),
        DataType::Dictionary(k, v) => DataType::Dictionary(k.clone(), Box::new(without_views(v))),
        other => other.clone(),
    }
}

/// Runs `df` as one stream that a task abort or a dropped consumer stops promptly.
///
/// DataFusion's joins (55) do not yield to Tokio while they emit, so an aborted query
/// over a large cross or nested-loop join would compute to its end (apache/datafusion
/// #19358). Each join is wrapped here in a [`CooperativeExec`], which spends the task's
/// Tokio budget per batch and so gives the runtime a point to cancel at.
pub async fn execute_cancellable(
    df: DataFrame,
) -> Result<datafusion::physical_plan::SendableRecordBatchStream, SqlError> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    use datafusion::physical_plan::ExecutionPlan;
    use datafusion::physical_plan::coop::CooperativeExec;
    let task = Arc::new(df.task_ctx());
    let plan = df.create_physical_plan().await?;
    let plan = plan
        .transform_up(|node: Arc<dyn ExecutionPlan>| {
            Ok(if node.name().contains("Join") {
                Transformed::yes(Arc::new(CooperativeExec::new(node)) as Arc<dyn ExecutionPlan>)
            } else {
                Transformed::no(node)
            })
        })?
        .data;
    Ok(datafusion::physical_plan::execute_stream(plan, task)?)
}

fn register(
    ctx: &SessionContext,
    root: &url::Url,
    table: StoredTable,
    version: Option<u64>,
    files: Arc<Vec<kefu_storage::DataFile>>,
    views: bool,
) -> Result<TableInfo, SqlError> {
    let name = table.name();
    let url = root
        .join(&format!("{name}/"))
        .map_err(|e| SqlError::Warehouse(format!("table {name}: {e}")))?;
    let provider = crate::snapshot::SnapshotTable::new(table, version, &url, files, views)
        .map_err(SqlError::DataFusion)?;
    let schema = datafusion::datasource::TableProvider::schema(&provider);
    ctx.register_table(name, Arc::new(provider))
        .map_err(SqlError::DataFusion)?;
    Ok(TableInfo {
        name: name.to_string(),
        schema,
        partition_columns: table
            .partition_column()
            .map(|c| vec![c.to_string()])
            .unwrap_or_default(),
    })
}
