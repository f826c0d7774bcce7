//! `vault attach` / `vault detach`. (Stub: the owner of this file fills it in.)

use clap::Args;
use vault::ExitCode;

#[derive(Debug, Args)]
pub struct AttachArgs {}

#[derive(Debug, Args)]
pub struct DetachArgs {}

pub fn run(_args: AttachArgs, _quiet: bool) -> vault::Result<ExitCode> {
    Err(vault::Error::Prompt("not implemented".into()))
}

pub fn run_detach(_args: DetachArgs, _quiet: bool) -> vault::Result<ExitCode> {
    Err(vault::Error::Prompt("not implemented".into()))
}
