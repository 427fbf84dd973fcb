//! The PostgreSQL wire protocol, for the BI tools and clients that speak only it
//! (Metabase, Superset, Power BI, FineBI, Tableau, DBeaver, `psql`, psycopg). The password
//! is a kefu token and the user name is free; the token's role must allow querying.
//! Statements are planned read-only in a session over the warehouse's newest cut, with
//! the server's timeout, per-query memory limit and query turns, exactly as HTTP and
//! Flight SQL plan them; PostgreSQL's catalog (`pg_catalog`, `information_schema`) is
//! answered by `datafusion-pg-catalog`, so clients list tables and columns on connect.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::QueryHook;
use datafusion_postgres::arrow_pg::datatypes::df::deserialize_parameters;
use datafusion_postgres::arrow_pg::datatypes::{
    arrow_schema_to_pg_fields, encode_recordbatch, into_pg_type,
};
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::catalog_info::CatalogInfo;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::{
    PgCatalogSchemaProvider, PgCatalogStaticTables, setup_pg_catalog,
};
use datafusion_postgres::datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::pgwire;
use futures::{Sink, SinkExt, StreamExt};
use kefu_sql::Engine;
use pgwire::api::auth::{
    DefaultServerParameterProvider, StartupHandler, finish_authentication, protocol_negotiation,
    save_startup_parameters_to_metadata,
};
use pgwire::api::cancel::DefaultCancelHandler;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{FieldInfo, QueryResponse, Response};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, ConnectionManager, ErrorHandler, PgWireConnectionState,
    PgWireServerHandlers, PidSecretKeyGenerator, RandomPidSecretKeyGenerator, Type,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::startup::Authentication;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};

use crate::auth::{Denied, Right};
use crate::http::{AppState, Interrupted};

/// Where the principal's name is kept in a connection's metadata.
const PRINCIPAL: &str = "kefu.principal";

/// A statement as the extended protocol keeps it between Parse and Execute: the SQL, and
/// (for anything but an empty query) the parsed statement with its read-only plan.
pub type Planned = (String, Option<(Statement, LogicalPlan)>);

/// The handlers of one server: token authentication, the query handlers, and the cancel
/// requests (`psql`'s Ctrl-C) that stop a connection's running statement.
pub struct Postgres {
    startup: Arc<TokenStartup>,
    queries: Arc<Queries>,
    cancel: Arc<DefaultCancelHandler>,
}

impl Postgres {
    pub fn new(state: Arc<AppState>) -> PgWireResult<Self> {
        let connections = Arc::new(ConnectionManager::new());
        let pg_catalog = Arc::new(PgCatalog::new()?);
        let queries = Arc::new(Queries {
            parser: Arc::new(Parser {
                state: state.clone(),
                pg_catalog: pg_catalog.clone(),
                sql: PostgresCompatibilityParser::new(),
            }),
            pg_catalog,
            state: state.clone(),
        });
        Ok(Postgres {
            startup: Arc::new(TokenStartup {
                state,
                connections: connections.clone(),
                keys: RandomPidSecretKeyGenerator::default(),
            }),
            queries,
            cancel: Arc::new(DefaultCancelHandler::new(connections)),
        })
    }
}

impl PgWireServerHandlers for Postgres {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.queries.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.queries.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.startup.clone()
    }

    fn cancel_handler(&self) -> Arc<impl pgwire::api::cancel::CancelHandler> {
        self.cancel.clone()
    }

    fn error_handler(&self) -> Arc<impl ErrorHandler> {
        Arc::new(LogErrors)
    }
}

struct LogErrors;

impl ErrorHandler for LogErrors {
    fn on_error<C: ClientInfo>(&self, client: &C, error: &mut PgWireError) {
        tracing::debug!(
            principal = client.metadata().get(PRINCIPAL).map(String::as_str),
            %error,
            "postgres: statement failed"
        );
    }
}

/// Cleartext password authentication where the password is a token (the user name is
/// only shown in logs): `psql "host=… user=analyst password=$KEFU_TOKEN"`. Run the port
/// behind TLS (a proxy) where the network is not trusted, as for HTTP.
struct TokenStartup {
    state: Arc<AppState>,
    connections: Arc<ConnectionManager>,
    keys: RandomPidSecretKeyGenerator,
}

fn fatal(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "FATAL".into(),
        code.into(),
        message,
    )))
}

fn error(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".into(),
        code.into(),
        message.into(),
    )))
}

#[async_trait]
impl StartupHandler for TokenStartup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                client.set_state(PgWireConnectionState::AuthenticationInProgress);
                client
                    .send(PgWireBackendMessage::Authentication(
                        Authentication::CleartextPassword,
                    ))
                    .await?;
            }
            PgWireFrontendMessage::PasswordMessageFamily(password) => {
                let password = password.into_password()?;
                let header = format!("Bearer {}", password.password);
                let principal = match self.state.tokens.authorize(Some(&header), Right::Query) {
                    Ok(p) => p,
                    Err(Denied::Unauthenticated) => {
                        return Err(fatal(
                            "28P01",
                            "password authentication failed: the password must be a kefu token"
                                .into(),
                        ));
                    }
                    Err(Denied::Forbidden) => {
                        return Err(fatal(
                            "42501",
                            "this token's role may not query (an office token uploads only)".into(),
                        ));
                    }
                };
                tracing::info!(
                    principal = %principal.name,
                    user = client.metadata().get("user").map(String::as_str),
                    "postgres: connected"
                );
                client
                    .metadata_mut()
                    .insert(PRINCIPAL.into(), principal.name);
                let (pid, key) = self.keys.generate(client);
                client.set_pid_and_secret_key(pid, key.clone());
                // Registered, so that a cancel request with this key stops its queries.
                let (handle, guard) = self.connections.register(pid, key);
                client.session_extensions().insert(handle);
                client.session_extensions().insert(guard);
                let mut parameters = DefaultServerParameterProvider::default();
                parameters.default_transaction_read_only = true;
                parameters.is_superuser = false;
                finish_authentication(client, &parameters).await?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// The hooks that answer what a PostgreSQL session says but a query engine has no plan
/// for: `SET`/`SHOW` of session variables, and `BEGIN`/`COMMIT`/`ROLLBACK` (acknowledged:
/// every statement reads one consistent cut anyway).
fn hooks() -> [Arc<dyn QueryHook>; 2] {
    [Arc::new(SetShowHook), Arc::new(TransactionStatementHook)]
}

/// A session over the warehouse's newest cut with PostgreSQL's catalog in it.
async fn session(state: &AppState, pg_catalog: &PgCatalog) -> PgWireResult<Engine> {
    let engine = state
        .engine()
        .await
        .map_err(|e| error("58000", e.to_string()))?;
    let catalog = engine
        .context()
        .catalog_names()
        .into_iter()
        .next()
        .unwrap_or_else(|| "datafusion".into());
    setup_pg_catalog(engine.context(), &catalog, EmptyContextProvider)
        .map_err(|e| error("XX000", e.to_string()))?;
    *pg_catalog
        .current
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) =
        engine.context().state().catalog_list().clone();
    engine
        .context()
        .catalog(&catalog)
        .ok_or_else(|| error("XX000", format!("no catalog {catalog}")))?
        .register_schema("pg_catalog", pg_catalog.provider.clone())
        .map_err(|e| error("XX000", e.to_string()))?;
    Ok(engine)
}

/// PostgreSQL's catalog over the warehouse, one for the server. The catalog numbers
/// relations (OIDs) as it first meets them, and each query has a session of its own: one
/// catalog for all of them numbers each table once, so a client that looks a table up in
/// one query and describes it by its OID in the next (psql's `\d calls`) gets that table.
struct PgCatalog {
    /// The newest session's catalogs: what the catalog lists (names and schemas, the
    /// same in every session).
    current: Arc<std::sync::RwLock<Arc<dyn datafusion::catalog::CatalogProviderList>>>,
    provider: Arc<PgCatalogSchemaProvider<SortedCatalog, EmptyContextProvider>>,
}

impl PgCatalog {
    fn new() -> PgWireResult<Self> {
        let current: Arc<std::sync::RwLock<Arc<dyn datafusion::catalog::CatalogProviderList>>> =
            Arc::new(std::sync::RwLock::new(Arc::new(
                datafusion::catalog::MemoryCatalogProviderList::new(),
            )));
        let static_tables =
            PgCatalogStaticTables::try_new().map_err(|e| error("XX000", e.to_string()))?;
        let provider = PgCatalogSchemaProvider::try_new(
            SortedCatalog(current.clone()),
            Arc::new(static_tables),
            EmptyContextProvider,
        )
        .map_err(|e| error("XX000", e.to_string()))?;
        Ok(PgCatalog {
            current,
            provider: Arc::new(provider),
        })
    }
}

/// The newest session's catalogs, schemas and tables, each list sorted.
#[derive(Debug, Clone)]
struct SortedCatalog(Arc<std::sync::RwLock<Arc<dyn datafusion::catalog::CatalogProviderList>>>);

impl SortedCatalog {
    fn list(&self) -> Arc<dyn datafusion::catalog::CatalogProviderList> {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

fn sorted(mut names: Vec<String>) -> Vec<String> {
    names.sort();
    names
}

#[async_trait::async_trait]
impl CatalogInfo for SortedCatalog {
    async fn catalog_names(&self) -> datafusion::error::Result<Vec<String>> {
        Ok(sorted(CatalogInfo::catalog_names(&self.list()).await?))
    }

    async fn schema_names(&self, catalog: &str) -> datafusion::error::Result<Option<Vec<String>>> {
        Ok(CatalogInfo::schema_names(&self.list(), catalog)
            .await?
            .map(sorted))
    }

    async fn table_names(
        &self,
        catalog: &str,
        schema: &str,
    ) -> datafusion::error::Result<Option<Vec<String>>> {
        Ok(CatalogInfo::table_names(&self.list(), catalog, schema)
            .await?
            .map(sorted))
    }

    async fn table_schema(
        &self,
        catalog: &str,
        schema: &str,
        table: &str,
    ) -> datafusion::error::Result<Option<SchemaRef>> {
        CatalogInfo::table_schema(&self.list(), catalog, schema, table).await
    }

    async fn table_type(
        &self,
        catalog: &str,
        schema: &str,
        table: &str,
    ) -> datafusion::error::Result<Option<datafusion::datasource::TableType>> {
        CatalogInfo::table_type(&self.list(), catalog, schema, table).await
    }
}

/// Plans one statement read-only, refusing text beyond the server's bounds first.
async fn plan(engine: &Engine, statement: &Statement) -> PgWireResult<LogicalPlan> {
    let df = engine
        .plan(datafusion::sql::parser::Statement::Statement(Box::new(
            statement.clone(),
        )))
        .await
        .map_err(|e| sql_error(&e))?;
    Ok(df.logical_plan().clone())
}

fn sql_error(e: &kefu_sql::SqlError) -> PgWireError {
    let message = e.to_string();
    let code = if message.contains("read-only") {
        "25006" // read_only_sql_transaction
    } else {
        "42000" // syntax_error_or_access_rule_violation
    };
    error(code, message)
}

struct Parser {
    state: Arc<AppState>,
    pg_catalog: Arc<PgCatalog>,
    sql: PostgresCompatibilityParser,
}

impl Parser {
    /// Parses `sql` into statements within the server's bounds on length and depth.
    fn parse(&self, sql: &str) -> PgWireResult<Vec<Statement>> {
        // Bounds first (DataFusion's own parser on a thread with a large stack): the
        // PostgreSQL rewriter below walks the tree recursively.
        if let Err(e @ (kefu_sql::SqlError::TooLong { .. } | kefu_sql::SqlError::TooDeep { .. })) =
            kefu_sql::engine::parse_bounded(sql, self.state.sql.bounds)
        {
            return Err(error("54001", e.to_string())); // statement_too_complex
        }
        self.sql
            .parse(sql)
            .map_err(|e| error("42601", format!("syntax error: {e}")))
    }
}

#[async_trait]
impl QueryParser for Parser {
    type Statement = Planned;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        _types: &[Option<Type>],
    ) -> PgWireResult<Option<Planned>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let mut statements = self.parse(sql)?;
        if statements.is_empty() {
            return Ok(None);
        }
        if statements.len() > 1 {
            return Err(error("42601", "a prepared statement holds one statement"));
        }
        let statement = statements.remove(0);
        let engine = session(&self.state, &self.pg_catalog).await?;
        for hook in hooks() {
            if let Some(plan) = hook
                .handle_extended_parse_query(&statement, engine.context(), client)
                .await
            {
                return Ok(Some((sql.to_string(), Some((statement, plan?)))));
            }
        }
        let plan = plan(&engine, &statement).await?;
        Ok(Some((sql.to_string(), Some((statement, plan)))))
    }

    fn get_parameter_types(&self, planned: &Planned) -> PgWireResult<Vec<Type>> {
        match planned {
            (_, Some((_, plan))) => parameter_types(plan)?
                .into_iter()
                .map(|t| t.map_or(Ok(Type::UNKNOWN), |t| into_pg_type(&t)))
                .collect(),
            _ => Ok(Vec::new()),
        }
    }

    fn get_result_schema(
        &self,
        planned: &Planned,
        format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        match planned {
            (_, Some((_, plan))) => arrow_schema_to_pg_fields(
                plan.schema().as_arrow(),
                format.unwrap_or(&Format::UnifiedText),
                None,
            ),
            _ => Ok(Vec::new()),
        }
    }
}

/// The types of `$1`, `$2`, … in order (`None` where the plan does not fix one).
fn parameter_types(plan: &LogicalPlan) -> PgWireResult<Vec<Option<DataType>>> {
    let types: HashMap<String, Option<DataType>> = plan
        .get_parameter_types()
        .map_err(|e| error("42P18", e.to_string()))?;
    let mut numbered: Vec<(usize, Option<DataType>)> = types
        .into_iter()
        .filter_map(|(id, t)| Some((id.strip_prefix('$')?.parse().ok()?, t)))
        .collect();
    numbered.sort_by_key(|(n, _)| *n);
    Ok(numbered.into_iter().map(|(_, t)| t).collect())
}

struct Queries {
    state: Arc<AppState>,
    pg_catalog: Arc<PgCatalog>,
    parser: Arc<Parser>,
}

impl Queries {
    /// Runs `plan` as a query of the server: with a query turn, on the query runtime,
    /// within the server's timeout (or the session's `statement_timeout`, if shorter),
    /// streaming its rows to the client.
    async fn run<C: ClientInfo + ?Sized>(
        &self,
        client: &C,
        engine: &Engine,
        plan: LogicalPlan,
        format: &Format,
    ) -> PgWireResult<Response> {
        let mut timeout = self.state.sql.timeout;
        if let Some(session) = datafusion_postgres_timeout(client) {
            timeout = timeout.min(session);
        }
        let turn = self.state.turn().await.map_err(|e| error("53300", e))?;
        let df = engine
            .context()
            .execute_logical_plan(plan)
            .await
            .and_then(kefu_sql::engine::plain_text)
            .map_err(|e| error("XX000", e.to_string()))?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let fields = Arc::new(arrow_schema_to_pg_fields(&schema, format, None)?);
        let batches = self.state.stream(df, turn, timeout);
        let encode = fields.clone();
        let rows = batches
            .map(move |batch| {
                let rows: Box<dyn Iterator<Item = PgWireResult<_>> + Send + Sync> = match batch {
                    Ok(batch) => encode_recordbatch(encode.clone(), batch),
                    Err(Interrupted::TimedOut(limit)) => Box::new(std::iter::once(Err(error(
                        "57014", // query_canceled
                        format!(
                            "the query ran longer than {} s and was cancelled",
                            limit.as_secs_f64()
                        ),
                    )))),
                    Err(Interrupted::Failed(e)) => {
                        Box::new(std::iter::once(Err(error("XX000", e.to_string()))))
                    }
                };
                futures::stream::iter(rows)
            })
            .flatten();
        Ok(Response::Query(QueryResponse::new(fields, rows)))
    }
}

/// The session's `SET statement_timeout`, as datafusion-postgres's hook keeps it.
fn datafusion_postgres_timeout<C: ClientInfo + ?Sized>(client: &C) -> Option<std::time::Duration> {
    client
        .metadata()
        .get("statement_timeout_ms")
        .and_then(|ms| ms.parse().ok())
        .map(std::time::Duration::from_millis)
}

#[async_trait]
impl SimpleQueryHandler for Queries {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statements = self.parser.parse(query)?;
        if statements.is_empty() {
            return Ok(vec![Response::EmptyQuery]);
        }
        let engine = session(&self.state, &self.pg_catalog).await?;
        let mut responses = Vec::with_capacity(statements.len());
        'statements: for statement in statements {
            for hook in hooks() {
                if let Some(response) = hook
                    .handle_simple_query(&statement, engine.context(), client)
                    .await
                {
                    responses.push(response?);
                    continue 'statements;
                }
            }
            let plan = plan(&engine, &statement).await?;
            responses.push(
                self.run(&*client, &engine, plan, &Format::UnifiedText)
                    .await?,
            );
        }
        Ok(responses)
    }
}

#[async_trait]
impl ExtendedQueryHandler for Queries {
    type Statement = Planned;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Parser> {
        self.parser.clone()
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Planned>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let (_, Some((statement, plan))) = &portal.statement.statement else {
            return Ok(Response::EmptyQuery);
        };
        let types = parameter_types(plan)?;
        let type_refs: Vec<Option<&DataType>> = types.iter().map(Option::as_ref).collect();
        let values = deserialize_parameters(portal, &type_refs)?;
        let engine = session(&self.state, &self.pg_catalog).await?;
        for hook in hooks() {
            if let Some(response) = hook
                .handle_extended_query(statement, plan, &values, engine.context(), client)
                .await
            {
                return response;
            }
        }
        let plan = plan
            .clone()
            .replace_params_with_values(&values)
            .map_err(|e| error("22023", e.to_string()))?;
        self.run(&*client, &engine, plan, &portal.result_column_format)
            .await
    }
}

/// Serves the PostgreSQL protocol on `listener` until `shutdown` completes. At most
/// [`crate::MAX_CONNECTIONS`] connections are served at once; a connection that sends no
/// startup message within [`crate::HEADER_TIMEOUT`] is closed.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), crate::ServerError> {
    let handlers = Arc::new(
        Postgres::new(state)
            .map_err(|e| crate::ServerError::Warehouse(format!("PostgreSQL catalog: {e}")))?,
    );
    let slots = Arc::new(tokio::sync::Semaphore::new(crate::MAX_CONNECTIONS));
    let mut shutdown = std::pin::pin!(shutdown);
    let mut connections = tokio::task::JoinSet::new();
    while let Some((slot, socket)) = crate::next_connection(&listener, &slots, &mut shutdown).await
    {
        let handlers = handlers.clone();
        connections.spawn(async move {
            let _slot = slot;
            if let Err(e) = pgwire::tokio::process_socket(socket, None, handlers).await {
                tracing::debug!(error = %e, "postgres: connection ended");
            }
        });
        // Reap the finished ones so the set does not grow with every connection.
        while connections.try_join_next().is_some() {}
    }
    connections.shutdown().await;
    Ok(())
}
