//! `vault inspect`.
use clap::Args;
use vault::ExitCode;
#[derive(Debug, Args)]
pub struct InspectArgs {}
pub fn run(_a: InspectArgs, _q: bool) -> vault::Result<ExitCode> {
    Ok(ExitCode::Ok)
}
