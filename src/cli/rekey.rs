//! `vault rekey`. (Stub: the owner of this file fills it in.)

use clap::Args;
use vault::ExitCode;

#[derive(Debug, Args)]
pub struct RekeyArgs {}

pub fn run(_args: RekeyArgs, _quiet: bool) -> vault::Result<ExitCode> {
    Err(vault::Error::Prompt("not implemented".into()))
}
