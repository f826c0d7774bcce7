//! `vault keys`. (Stub: the owner of this file fills it in.)

use clap::Subcommand;
use vault::ExitCode;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Not implemented yet.
    List,
}

pub fn run(_cmd: KeysCommand, _quiet: bool) -> vault::Result<ExitCode> {
    Err(vault::Error::Prompt("not implemented".into()))
}
