//! `vault pack`.
use clap::Args;
use vault::ExitCode;
#[derive(Debug, Args)]
pub struct PackArgs {}
pub fn run(_a: PackArgs, _q: bool) -> vault::Result<ExitCode> {
    Ok(ExitCode::Ok)
}
