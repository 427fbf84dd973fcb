//! `kefu compact`: partitions of many small files rewritten as few large ones.

use clap::Args;
use kefu_storage::StoredTable;
use kefu_storage::maintain::{self, CompactOptions};

use crate::args::{WarehouseArgs, open_for_writing};
use crate::exit::CliResult;

#[derive(Debug, Args)]
pub struct CompactArgs {
    #[command(flatten)]
    pub warehouse: WarehouseArgs,
    /// Only this table (repeatable; all by default): calls, tickets, callbacks, visits,
    /// customers, _rejects.
    #[arg(long, value_parser = parse_table)]
    pub table: Vec<StoredTable>,
    /// Only this partition: a month (YYYY-MM), or a table name for _rejects (repeatable).
    #[arg(long, value_name = "PARTITION")]
    pub partition: Vec<String>,
    /// Compact a partition holding at least this many files.
    #[arg(long, default_value_t = 2)]
    pub min_files: usize,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

fn parse_table(s: &str) -> Result<StoredTable, String> {
    StoredTable::from_name(s.trim()).ok_or_else(|| {
        format!("unknown table '{s}' (calls, tickets, callbacks, visits, customers, _rejects)")
    })
}

pub fn compact_command(args: &CompactArgs) -> CliResult {
    let runtime = crate::args::runtime()?;
    let (warehouse, _lock) = open_for_writing(&args.warehouse, &runtime)?;
    let options = CompactOptions {
        tables: if args.table.is_empty() {
            StoredTable::ALL.to_vec()
        } else {
            args.table.clone()
        },
        partitions: args.partition.clone(),
        min_files: args.min_files,
        settled_rows: None,
    };
    crate::print(
        &runtime.block_on(maintain::compact(&warehouse, &options))?,
        args.json,
    );
    Ok(())
}
