//! Command-line interface. Each subcommand group has its own file holding its `Args` struct
//! and a `run` function; this file only dispatches and renders errors.

use std::process::ExitCode as ProcessExitCode;

use clap::{Parser, Subcommand};
use vault::Hint;

mod attach;
mod config_check;
mod host;
mod init;
mod initrd;
mod inspect;
mod keys;
mod pack;
mod progress;
mod rekey;
mod source;
mod unlock;
mod util;

/// Passphrase-encrypted secrets bundles for NixOS installs.
///
/// On the workstation: `vault init`, edit vault.toml, `vault pack`, `vault attach`.
/// On the booted installer: `vault unlock`.
#[derive(Debug, Parser)]
#[command(
    name = "vault",
    version,
    propagate_version = true,
    max_term_width = 100,
    after_long_help = "Exit codes: 0 ok, 1 failure, 2 usage, 3 wrong passphrase, 4 bad or tampered \
bundle, 5 invalid vault.toml, 6 refused before writing, 7 failed and rolled back, 8 rekey --check: \
stale. Details: docs/CLI.md."
)]
pub struct Cli {
    /// Print only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented vault.toml to start from.
    Init(init::InitArgs),
    /// Pack the files vault.toml lists into one encrypted bundle.
    Pack(pack::PackArgs),
    /// Show a bundle's parameters; with the passphrase, its hosts and entries.
    Inspect(inspect::InspectArgs),
    /// Decrypt a bundle, verify all of it, then place its files under the target root.
    Unlock(unlock::UnlockArgs),
    /// Place the root-stage files kept by `vault unlock --stage disk`.
    Place(unlock::PlaceArgs),
    /// Discard what `vault unlock --stage disk` kept in RAM.
    Wipe(unlock::WipeArgs),
    /// Put a bundle on an installer image or stick, outside the Nix store.
    Attach(attach::AttachArgs),
    /// Show or remove the bundle an installer image carries.
    Detach(attach::DetachArgs),
    /// Manage hosts: generate or adopt host keys, register recipients.
    #[command(subcommand)]
    Host(host::HostCommand),
    /// Key conversions (ssh-to-age).
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Re-encrypt the secrets repo (sops and agenix files) to the current recipients.
    Rekey(rekey::RekeyArgs),
}

pub fn main() -> ProcessExitCode {
    let cli = Cli::parse();
    let quiet = cli.quiet;
    let result = match cli.command {
        Command::Init(a) => init::run(a, quiet),
        Command::Pack(a) => pack::run(a, quiet),
        Command::Inspect(a) => inspect::run(a, quiet),
        Command::Unlock(a) => unlock::run(a, quiet),
        Command::Place(a) => unlock::run_place(a, quiet),
        Command::Wipe(a) => unlock::run_wipe(a, quiet),
        Command::Attach(a) => attach::run(a, quiet),
        Command::Detach(a) => attach::run_detach(a, quiet),
        Command::Host(c) => host::run(c, quiet),
        Command::Keys(c) => keys::run(c, quiet),
        Command::Rekey(a) => rekey::run(a, quiet),
    };
    match result {
        Ok(code) => ProcessExitCode::from(code as u8),
        Err(e) => {
            util::report(&e);
            ProcessExitCode::from(e.exit_code() as u8)
        }
    }
}
