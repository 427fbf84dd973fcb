//! Analysts' own files beside the warehouse — a roster, a targets sheet — in the local
//! CLI only: `SELECT … FROM 'targets.csv'`, the table functions `read_csv`,
//! `read_parquet` and `read_json` (a path, a directory or a glob; local or an
//! object-store URL the session knows), `CREATE EXTERNAL TABLE` and `CREATE [TEMP] VIEW`.
//! The server never enables them: its sessions read the warehouse and nothing else.

use std::sync::Arc;

use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{DataFusionError, Result, ScalarValue, plan_err};
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::logical_expr::{DdlStatement, Expr, LogicalPlan};
use datafusion::prelude::SessionContext;

/// Which files a table function reads.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Csv,
    Parquet,
    Json,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Csv => "read_csv",
            Kind::Parquet => "read_parquet",
            Kind::Json => "read_json",
        }
    }

    fn format(self) -> (Arc<dyn FileFormat>, &'static str) {
        match self {
            Kind::Csv => (Arc::new(CsvFormat::default().with_has_header(true)), ".csv"),
            Kind::Parquet => (Arc::new(ParquetFormat::default()), ".parquet"),
            Kind::Json => (Arc::new(JsonFormat::default()), ".json"),
        }
    }
}

#[derive(Debug)]
struct ReadFiles(Kind);

impl TableFunctionImpl for ReadFiles {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let name = self.0.name();
        let path = match args.exprs() {
            [Expr::Literal(ScalarValue::Utf8(Some(p)) | ScalarValue::Utf8View(Some(p)), _)] => {
                p.clone()
            }
            _ => return plan_err!("{name} takes one path in quotes: {name}('targets.csv')"),
        };
        let url = ListingTableUrl::parse(&path)?;
        let (format, extension) = self.0.format();
        // A named file is read whatever it ends in; a directory by its files' extension.
        let extension = if path.ends_with('/') || std::path::Path::new(&path).is_dir() {
            extension
        } else {
            ""
        };
        let options = ListingOptions::new(format).with_file_extension(extension);
        let state = args.session();
        // Planning is synchronous here and reading a schema is not: wait for it on this
        // worker (the CLI's runtime has several).
        let schema = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(options.infer_schema(state, &url))
        })
        .map_err(|e| DataFusionError::Plan(format!("{name}('{path}'): {e}")))?;
        let config = ListingTableConfig::new(url)
            .with_listing_options(options)
            .with_schema(schema);
        Ok(Arc::new(ListingTable::try_new(config)?))
    }
}

/// Lets `ctx` read files beside the warehouse: quoted paths as tables, and the
/// `read_csv`, `read_parquet` and `read_json` table functions.
pub fn enable(ctx: SessionContext) -> SessionContext {
    let ctx = ctx.enable_url_table();
    for kind in [Kind::Csv, Kind::Parquet, Kind::Json] {
        ctx.register_udtf(kind.name(), Arc::new(ReadFiles(kind)));
    }
    ctx
}

/// Whether `plan` only defines a session's own names (views and external tables over
/// files), which a local session with side files may do; warehouse tables stay as they
/// are (`names` are the warehouse's).
pub fn defines_only_session_names(plan: &LogicalPlan, names: &[String]) -> bool {
    let is_warehouse = |table: &str| names.iter().any(|n| n.eq_ignore_ascii_case(table));
    match plan {
        LogicalPlan::Ddl(DdlStatement::CreateExternalTable(t)) => !is_warehouse(t.name.table()),
        LogicalPlan::Ddl(DdlStatement::CreateView(v)) => !is_warehouse(v.name.table()),
        LogicalPlan::Ddl(DdlStatement::DropView(v)) => !is_warehouse(v.name.table()),
        LogicalPlan::Ddl(DdlStatement::DropTable(t)) => !is_warehouse(t.name.table()),
        _ => false,
    }
}
