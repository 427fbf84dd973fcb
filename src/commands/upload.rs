//! `kefu upload`: the regional offices' client of `kefu serve`.

use std::sync::Arc;

use kefu_model::{Classify, ErrorKind};
use kefu_server::cli::UploadArgs;
use tokio::runtime::Runtime;

use crate::exit::{CliResult, Failure};

pub fn upload_command(args: &UploadArgs, runtime: &Runtime) -> CliResult {
    let mut client = kefu_server::client::UploadClient::new(&args.server, args.token.clone())
        .map_err(|e| Failure::new(ErrorKind::Config, e.to_string()))?;
    client.retries = args.retries;
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
