//! `vault host`. (Stub: the owner of this file fills it in.)

use clap::Subcommand;
use vault::ExitCode;

#[derive(Debug, Subcommand)]
pub enum HostCommand {
    /// Not implemented yet.
    List,
}

pub fn run(_cmd: HostCommand, _quiet: bool) -> vault::Result<ExitCode> {
    Err(vault::Error::Prompt("not implemented".into()))
}
