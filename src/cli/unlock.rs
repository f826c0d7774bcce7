//! `vault unlock`, `vault place`, `vault wipe`.
use clap::Args;
use vault::ExitCode;
#[derive(Debug, Args)]
pub struct UnlockArgs {}
#[derive(Debug, Args)]
pub struct PlaceArgs {}
#[derive(Debug, Args)]
pub struct WipeArgs {}
pub fn run(_a: UnlockArgs, _q: bool) -> vault::Result<ExitCode> {
    Ok(ExitCode::Ok)
}
pub fn run_place(_a: PlaceArgs, _q: bool) -> vault::Result<ExitCode> {
    Ok(ExitCode::Ok)
}
pub fn run_wipe(_a: WipeArgs, _q: bool) -> vault::Result<ExitCode> {
    Ok(ExitCode::Ok)
}
