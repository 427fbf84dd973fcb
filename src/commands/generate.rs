//! `kefu gen`: realistic, deterministic customer-service logs.

use kefu_gen::GenConfig;
use kefu_gen::cli::GenArgs;

use crate::exit::CliResult;
use crate::progress::BarProgress;

pub fn gen_command(args: &GenArgs) -> CliResult {
    let progress = BarProgress::new(args.quiet || args.json);
    let summary = kefu_gen::generate(&GenConfig::from(args), &progress)?;
    crate::print(&summary, args.json);
    Ok(())
}
