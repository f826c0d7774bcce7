//! `vault init`.
use clap::Args;
use vault::ExitCode;
#[derive(Debug, Args)]
pub struct InitArgs {}
pub fn run(_a: InitArgs, _q: bool) -> vault::Result<ExitCode> {
    Ok(ExitCode::Ok)
}
