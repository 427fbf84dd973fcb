//! Flight SQL on its own port, for BI tools (DBeaver, Superset, Tableau through the Arrow
//! Flight SQL JDBC or ADBC drivers): statement queries, prepared statements with
//! parameters (`$1`, `$2`, …), and catalog metadata (catalogs, schemas, tables, table
//! types, SQL info). Read-only, with the same tokens as HTTP (`authorization: Bearer …`
//! on every call; analyst and admin tokens may query), the same timeout and per-query
//! memory limit, and counted in the same query metrics. Results are not cut at the HTTP
//! row limit: a BI tool fetches what it asked for.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use arrow::ipc::writer::IpcWriteOptions;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, Any, CommandGetCatalogs, CommandGetDbSchemas,
    CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandPreparedStatementQuery,
    CommandStatementQuery, DoPutPreparedStatementResult, ProstMessageExt, SqlInfo,
    TicketStatementQuery,
};
use arrow_flight::{
    Action, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse,
    IpcMessage, SchemaAsIpc, Ticket,
};
use datafusion::dataframe::DataFrame;
use datafusion::scalar::ScalarValue;
use futures::{Stream, StreamExt, TryStreamExt};
use kefu_sql::Engine;
use prost::Message;
use tonic::{Request, Response, Status, Streaming};

use crate::auth::{Denied, Principal, Right};
use crate::http::{AppState, Interrupted};

/// The catalog and schema the warehouse's tables are in (DataFusion's defaults).
const CATALOG: &str = "datafusion";
const SCHEMA: &str = "public";

type DataStream = Pin<Box<dyn Stream<Item = Result<arrow_flight::FlightData, Status>> + Send>>;

/// A prepared statement: its SQL and the parameters last bound to it, the token that made
/// it (only that token may use it) and when it was last used.
struct Prepared {
    sql: String,
    params: Option<RecordBatch>,
    owner: String,
    used: std::time::Instant,
}

/// Prepared statements a token may hold at once.
pub const MAX_PREPARED_PER_TOKEN: usize = 64;
/// A prepared statement unused this long is closed.
pub const PREPARED_IDLE: std::time::Duration = std::time::Duration::from_secs(30 * 60);
/// Bytes of parameters bound to one statement at most.
const MAX_PARAMETER_BYTES: usize = 1 << 20;

/// The open prepared statements, by handle: each tied to its token, capped per token and
/// closed after [`PREPARED_IDLE`] without use (clients that never close them would
/// otherwise fill the server).
#[derive(Default)]
pub struct PreparedStatements {
    open: HashMap<String, Prepared>,
}

impl PreparedStatements {
    fn expire(&mut self, now: std::time::Instant) {
        self.open
            .retain(|_, p| now.saturating_duration_since(p.used) < PREPARED_IDLE);
    }

    /// Opens a statement for `owner`; its handle.
    pub fn create(
        &mut self,
        owner: &str,
        sql: String,
        now: std::time::Instant,
    ) -> Result<String, Status> {
        self.expire(now);
        let held = self.open.values().filter(|p| p.owner == owner).count();
        if held >= MAX_PREPARED_PER_TOKEN {
            return Err(Status::resource_exhausted(format!(
                "this token holds {held} prepared statements, the most allowed; close some \
                 (unused ones close after {} minutes)",
                PREPARED_IDLE.as_secs() / 60
            )));
        }
        let handle = uuid::Uuid::new_v4().to_string();
        self.open.insert(
            handle.clone(),
            Prepared {
                sql,
                params: None,
                owner: owner.to_string(),
                used: now,
            },
        );
        Ok(handle)
    }

    fn entry(
        &mut self,
        owner: &str,
        handle: &str,
        now: std::time::Instant,
    ) -> Result<&mut Prepared, Status> {
        self.expire(now);
        match self.open.get_mut(handle) {
            Some(p) if p.owner == owner => {
                p.used = now;
                Ok(p)
            }
            // Another token's statement is as unknown as a closed one.
            _ => Err(Status::not_found(format!("no prepared statement {handle}"))),
        }
    }

    /// The statement's SQL and bound parameters.
    pub fn get(
        &mut self,
        owner: &str,
        handle: &str,
        now: std::time::Instant,
    ) -> Result<(String, Option<RecordBatch>), Status> {
        self.entry(owner, handle, now)
            .map(|p| (p.sql.clone(), p.params.clone()))
    }

    /// Binds parameters to the statement.
    pub fn bind(
        &mut self,
        owner: &str,
        handle: &str,
        params: Option<RecordBatch>,
        now: std::time::Instant,
    ) -> Result<(), Status> {
        if let Some(p) = &params
            && p.get_array_memory_size() > MAX_PARAMETER_BYTES
        {
            return Err(Status::invalid_argument(format!(
                "parameters of {} bytes; at most {MAX_PARAMETER_BYTES} are bound",
                p.get_array_memory_size()
            )));
        }
        self.entry(owner, handle, now)?.params = params;
        Ok(())
    }

    /// Closes the statement, if it is `owner`'s.
    pub fn close(&mut self, owner: &str, handle: &str) {
        if self.open.get(handle).is_some_and(|p| p.owner == owner) {
            self.open.remove(handle);
        }
    }

    /// Statements open (all tokens).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.open.len()
    }
}

/// The Flight SQL service over the server's state.
pub struct FlightSql {
    state: Arc<AppState>,
    prepared: Mutex<PreparedStatements>,
    sql_info: SqlInfoData,
}

/// The gRPC service to serve.
pub fn service(state: Arc<AppState>) -> FlightServiceServer<FlightSql> {
    let mut info = SqlInfoDataBuilder::new();
    info.append(SqlInfo::FlightSqlServerName, "kefu");
    info.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    info.append(SqlInfo::FlightSqlServerArrowVersion, "59");
    info.append(SqlInfo::FlightSqlServerReadOnly, true);
    info.append(SqlInfo::FlightSqlServerSql, true);
    info.append(SqlInfo::FlightSqlServerSubstrait, false);
    info.append(SqlInfo::FlightSqlServerTransaction, 0i32);
    let sql_info = info.build().expect("static SQL info");
    FlightServiceServer::new(FlightSql {
        state,
        prepared: Mutex::new(PreparedStatements::default()),
        sql_info,
    })
}

fn status_of(e: impl std::fmt::Display) -> Status {
    Status::invalid_argument(e.to_string())
}

/// A metadata command's one batch as the answer to DoGet.
fn answer<E: std::fmt::Display>(
    schema: SchemaRef,
    batch: Result<RecordBatch, E>,
) -> Result<Response<DataStream>, Status> {
    let batch = batch.map_err(status_of)?;
    Ok(Response::new(Box::pin(
        FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(futures::stream::once(async { Ok(batch) }))
            .map_err(Status::from),
    )))
}

/// The result of GetTableTypes.
fn table_types_schema() -> Schema {
    Schema::new(vec![arrow::datatypes::Field::new(
        "table_type",
        arrow::datatypes::DataType::Utf8,
        false,
    )])
}

fn schema_ipc(schema: &Schema) -> Result<bytes::Bytes, Status> {
    let IpcMessage(bytes) = SchemaAsIpc::new(schema, &IpcWriteOptions::default())
        .try_into()
        .map_err(|e: arrow::error::ArrowError| Status::internal(e.to_string()))?;
    Ok(bytes)
}

fn flight_info(
    schema: &Schema,
    ticket: &Any,
    descriptor: FlightDescriptor,
) -> Result<FlightInfo, Status> {
    let endpoint = FlightEndpoint::new().with_ticket(Ticket::new(ticket.encode_to_vec()));
    Ok(FlightInfo::new()
        .try_with_schema(schema)
        .map_err(|e| Status::internal(e.to_string()))?
        .with_endpoint(endpoint)
        .with_descriptor(descriptor))
}

impl FlightSql {
    fn authorize<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        self.state
            .tokens
            .authorize(header, Right::Query)
            .map_err(|d| match d {
                Denied::Unauthenticated => Status::unauthenticated(
                    "missing or unknown token (authorization: Bearer <token>)",
                ),
                Denied::Forbidden => Status::permission_denied("this token's role may not query"),
            })
    }

    async fn engine(&self) -> Result<Engine, Status> {
        self.state
            .engine()
            .await
            .map_err(|e| Status::internal(e.to_string()))
    }

    /// Plans `sql` (read-only) with `params` bound to `$1`, `$2`, … (the first row).
    async fn plan(&self, sql: &str, params: Option<&RecordBatch>) -> Result<DataFrame, Status> {
        let df = self.engine().await?.sql(sql).await.map_err(status_of)?;
        match params {
            Some(batch) if batch.num_rows() > 0 => {
                let values = batch
                    .columns()
                    .iter()
                    .map(|c| ScalarValue::try_from_array(c, 0))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(status_of)?;
                df.with_param_values(values).map_err(status_of)
            }
            _ => Ok(df),
        }
    }

    /// Runs `sql` on the query runtime, within the timeout, streaming its batches.
    async fn execute(
        &self,
        sql: String,
        params: Option<RecordBatch>,
    ) -> Result<DataStream, Status> {
        let turn = self
            .state
            .turn()
            .await
            .map_err(Status::resource_exhausted)?;
        let df = self.plan(&sql, params.as_ref()).await?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let batches = self
            .state
            .stream(df, turn, self.state.sql.timeout)
            .map(|batch| {
                batch.map_err(|stop| match stop {
                    Interrupted::Failed(e) => FlightError::ExternalError(Box::new(e)),
                    Interrupted::TimedOut(limit) => {
                        FlightError::Tonic(Box::new(Status::deadline_exceeded(format!(
                            "the query ran longer than {} s and was cancelled",
                            limit.as_secs_f64()
                        ))))
                    }
                })
            });
        Ok(Box::pin(
            FlightDataEncoderBuilder::new()
                .with_schema(schema)
                .build(batches)
                .map_err(Status::from),
        ))
    }

    /// The FlightInfo of a command answered in one DoGet: its result schema, and the
    /// command itself as the ticket.
    fn describe(
        &self,
        request: Request<FlightDescriptor>,
        schema: &Schema,
        command: &Any,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize(&request)?;
        Ok(Response::new(flight_info(
            schema,
            command,
            request.into_inner(),
        )?))
    }

    fn prepared(
        &self,
        owner: &Principal,
        handle: &[u8],
    ) -> Result<(String, Option<RecordBatch>), Status> {
        let handle = String::from_utf8_lossy(handle);
        self.prepared.lock().expect("prepared lock").get(
            &owner.name,
            &handle,
            std::time::Instant::now(),
        )
    }
}

#[tonic::async_trait]
impl FlightSqlService for FlightSql {
    type FlightService = FlightSql;

    /// Clients that insist on a handshake get the bearer token they presented back.
    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>,
        Status,
    > {
        self.authorize(&request)?;
        let token = request
            .metadata()
            .get("authorization")
            .cloned()
            .ok_or_else(|| Status::unauthenticated("no token"))?;
        let mut response: Response<
            Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>,
        > = Response::new(Box::pin(futures::stream::empty()));
        response.metadata_mut().insert("authorization", token);
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let principal = self.authorize(&request)?;
        let df = self.plan(&query.query, None).await?;
        tracing::info!(token = %principal.name, "flight sql statement");
        let ticket = TicketStatementQuery {
            statement_handle: query.query.into_bytes().into(),
        };
        let info = flight_info(
            df.schema().as_arrow(),
            &ticket.as_any(),
            request.into_inner(),
        )?;
        Ok(Response::new(info))
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.authorize(&request)?;
        let sql = String::from_utf8(ticket.statement_handle.to_vec()).map_err(status_of)?;
        Ok(Response::new(self.execute(sql, None).await?))
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let owner = self.authorize(&request)?;
        let df = self.plan(&query.query, None).await?;
        // Parameter types where DataFusion can infer them all ($1, $2, … in order).
        let types = df.logical_plan().get_parameter_types().map_err(status_of)?;
        let mut names: Vec<&String> = types.keys().collect();
        names.sort_by_key(|n| {
            n.trim_start_matches('$')
                .parse::<usize>()
                .unwrap_or(usize::MAX)
        });
        let parameter_schema = if names.iter().all(|n| types[*n].is_some()) {
            let fields: Vec<arrow::datatypes::Field> = names
                .iter()
                .map(|n| {
                    arrow::datatypes::Field::new(
                        n.as_str(),
                        types[*n].clone().expect("checked above"),
                        true,
                    )
                })
                .collect();
            schema_ipc(&Schema::new(fields))?
        } else {
            Default::default()
        };
        let handle = self.prepared.lock().expect("prepared lock").create(
            &owner.name,
            query.query,
            std::time::Instant::now(),
        )?;
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.into_bytes().into(),
            dataset_schema: schema_ipc(df.schema().as_arrow())?,
            parameter_schema,
        })
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let owner = self.authorize(&request)?;
        let handle = String::from_utf8_lossy(&query.prepared_statement_handle).into_owned();
        let stream = request
            .into_inner()
            .map_err(|s| FlightError::Tonic(Box::new(s)));
        let batches: Vec<RecordBatch> =
            arrow_flight::decode::FlightRecordBatchStream::new_from_flight_data(stream)
                .try_collect()
                .await
                .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let params = match batches.first() {
            Some(first) => {
                Some(arrow::compute::concat_batches(&first.schema(), &batches).map_err(status_of)?)
            }
            None => None,
        };
        self.prepared.lock().expect("prepared lock").bind(
            &owner.name,
            &handle,
            params,
            std::time::Instant::now(),
        )?;
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(handle.into_bytes().into()),
        })
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let owner = self.authorize(&request)?;
        let (sql, params) = self.prepared(&owner, &query.prepared_statement_handle)?;
        let df = self.plan(&sql, params.as_ref()).await?;
        let info = flight_info(
            df.schema().as_arrow(),
            &query.as_any(),
            request.into_inner(),
        )?;
        Ok(Response::new(info))
    }

    async fn do_get_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let owner = self.authorize(&request)?;
        let (sql, params) = self.prepared(&owner, &query.prepared_statement_handle)?;
        Ok(Response::new(self.execute(sql, params).await?))
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<(), Status> {
        let owner = self.authorize(&request)?;
        let handle = String::from_utf8_lossy(&query.prepared_statement_handle).into_owned();
        self.prepared
            .lock()
            .expect("prepared lock")
            .close(&owner.name, &handle);
        Ok(())
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        self.describe(request, &schema, &query.as_any())
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.authorize(&request)?;
        let mut builder = query.into_builder();
        builder.append(CATALOG);
        answer(builder.schema(), builder.build())
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        self.describe(request, &schema, &query.as_any())
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.authorize(&request)?;
        // The builder applies the request's catalog and schema filters.
        let mut builder = query.into_builder();
        builder.append(CATALOG, SCHEMA);
        answer(builder.schema(), builder.build())
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        self.describe(request, &schema, &query.as_any())
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.authorize(&request)?;
        let engine = self.engine().await?;
        // The builder applies the request's filters (catalog, schema and table patterns,
        // table types) and adds each table's schema when asked.
        let mut builder = query.into_builder();
        for table in engine.tables() {
            let df = engine
                .context()
                .table(table.name.as_str())
                .await
                .map_err(status_of)?;
            builder
                .append(
                    CATALOG,
                    SCHEMA,
                    &table.name,
                    "TABLE",
                    df.schema().as_arrow(),
                )
                .map_err(status_of)?;
        }
        answer(builder.schema(), builder.build())
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = table_types_schema();
        self.describe(request, &schema, &query.as_any())
    }

    async fn do_get_table_types(
        &self,
        _query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.authorize(&request)?;
        let schema: SchemaRef = Arc::new(table_types_schema());
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(arrow::array::StringArray::from(vec!["TABLE"]))],
        );
        answer(schema, batch)
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder(&self.sql_info).schema();
        self.describe(request, &schema, &query.as_any())
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.authorize(&request)?;
        let builder = query.into_builder(&self.sql_info);
        answer(builder.schema(), builder.build())
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

/// Serves Flight SQL on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), crate::ServerError> {
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tonic::transport::Server::builder()
        .add_service(service(state))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(|e| crate::ServerError::io("flight sql", e))
}

#[cfg(test)]
mod prepared_tests {
    use super::*;

    /// Prepared statements lived forever (about 100 kB each, unbounded): they are tied to
    /// their token, capped per token, and closed after 30 idle minutes.
    #[test]
    fn prepared_statements_are_tied_capped_and_expire() {
        let mut open = PreparedStatements::default();
        let t0 = std::time::Instant::now();
        let mine = open.create("bi", "SELECT 1".into(), t0).unwrap();
        // Another token cannot use, bind or close it.
        assert!(open.get("other", &mine, t0).is_err());
        assert!(open.bind("other", &mine, None, t0).is_err());
        open.close("other", &mine);
        assert_eq!(open.get("bi", &mine, t0).unwrap().0, "SELECT 1");
        // The cap is per token.
        for _ in 1..MAX_PREPARED_PER_TOKEN {
            open.create("bi", "SELECT 2".into(), t0).unwrap();
        }
        let refused = open.create("bi", "SELECT 3".into(), t0).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(open.create("other", "SELECT 4".into(), t0).is_ok());
        // Used statements live on; idle ones close.
        let later = t0 + PREPARED_IDLE - std::time::Duration::from_secs(1);
        assert!(open.get("bi", &mine, later).is_ok());
        let much_later = later + PREPARED_IDLE - std::time::Duration::from_secs(1);
        assert!(open.get("bi", &mine, much_later).is_ok());
        assert_eq!(open.len(), 1, "every statement but the used one expired");
        assert!(open.create("bi", "SELECT 5".into(), much_later).is_ok());
        // Oversized parameters are refused.
        let big = RecordBatch::try_from_iter([(
            "p",
            Arc::new(arrow::array::StringArray::from(vec!["x".repeat(1 << 21)]))
                as arrow::array::ArrayRef,
        )])
        .unwrap();
        assert!(open.bind("bi", &mine, Some(big), much_later).is_err());
    }
}
