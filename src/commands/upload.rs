//! `kefu upload`: the regional offices' client of `kefu serve`.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use kefu_model::{Classify, ErrorKind};

use crate::exit::{CliResult, Failure};

#[derive(Debug, Args)]
pub struct UploadArgs {
    /// Files to upload (exports or archives of them).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// The server, e.g. http://head-office:8080
    #[arg(long, env = "KEFU_SERVER", value_name = "URL")]
    pub server: String,
    /// The office's token (better in the KEFU_TOKEN environment variable than on the
    /// command line, where other users of the machine can see it).
    #[arg(long, env = "KEFU_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub token: String,
    /// Restrict the upload to one region (admin tokens; an office's is always its own).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Wait until each upload is ingested, and print its counts.
    #[arg(long)]
    pub wait: bool,
    /// Retries after network errors, with exponential backoff from 0.5 s.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub retries: usize,
    /// Print the server's records as JSON lines instead of text.
    #[arg(long)]
    pub json: bool,
    /// No progress bars.
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn upload_command(args: &UploadArgs) -> CliResult {
    let mut client = kefu_server::client::UploadClient::new(&args.server, args.token.clone())
        .map_err(|e| Failure::new(ErrorKind::Config, e.to_string()))?;
    client.retries = args.retries;
    let runtime = crate::args::runtime()?;
    let progress: Arc<dyn kefu_progress::Progress> =
        Arc::new(crate::progress::BarProgress::new(args.quiet));
    let mut failed = 0;
    runtime.block_on(async {
        for file in &args.files {
            let record = client
                .deliver(file, args.region.as_deref(), args.wait, progress.clone())
                .await
                .map_err(|e| Failure::new(e.kind(), format!("{}: {e}", file.display())))?;
            if record["status"] == "failed" {
                failed += 1;
            }
            if args.json {
                println!("{record}");
            } else {
                println!("{}", kefu_server::client::describe_upload(file, &record));
            }
        }
        Ok::<(), Failure>(())
    })?;
    if failed > 0 {
        return Err(Failure::new(
            ErrorKind::Failure,
            format!("uploads that failed to ingest: {failed}"),
        ));
    }
    Ok(())
}
