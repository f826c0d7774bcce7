//! Command-line interface. Each subcommand group has its own file holding its `Args` struct
//! and a `run` function; this file only dispatches and renders errors.

use std::process::ExitCode as ProcessExitCode;

use clap::{Parser, Subcommand};
use vault::Hint;

mod attach;
mod config_check;
mod generate;
mod host;
mod identify;
mod init;
mod inspect;
mod json;
mod keys;
mod pack;
mod progress;
mod rekey;
mod repack;
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
stale, 128+N stopped by signal N (130: Ctrl-C) and rolled back. Details: docs/CLI.md."
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
    /// Write a bundle again under a new passphrase, opened with its passphrase or a recovery key.
    Repack(repack::RepackArgs),
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
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(generate::CompletionsArgs),
    /// Print the man page, or write one per subcommand with --out-dir.
    Man(generate::ManArgs),
}

/// Whether `--json` was asked for, read from the raw arguments so that even a command line
/// clap rejects gets its error as JSON.
fn wants_json() -> bool {
    std::env::args_os()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--json")
}

pub fn main() -> ProcessExitCode {
    let json = wants_json();
    if json {
        vault::interrupt::before_immediate_exit(|signal, message| {
            if !json::printed() {
                util::report_json_interrupted(signal, message, None);
            }
        });
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if json && e.use_stderr() => {
            let rendered = e.render().to_string();
            let message = rendered
                .lines()
                .next()
                .unwrap_or("")
                .trim_start_matches("error: ");
            util::print_json_error(
                vault::ExitCode::Usage,
                message,
                Vec::new(),
                Some("see the command's --help".into()),
            );
            e.exit()
        }
        Err(e) => e.exit(),
    };
    let quiet = cli.quiet;
    // SIGINT, SIGTERM and SIGHUP roll back like any error (see vault::interrupt).
    if let Err(e) = vault::interrupt::install() {
        eprintln!("warning: cannot handle interrupt signals: {e}");
    }
    let result = match cli.command {
        Command::Init(a) => init::run(a, quiet),
        Command::Pack(a) => pack::run(a, quiet),
        Command::Inspect(a) => inspect::run(a, quiet),
        Command::Repack(a) => repack::run(a, quiet),
        Command::Unlock(a) => unlock::run(a, quiet),
        Command::Place(a) => unlock::run_place(a, quiet),
        Command::Wipe(a) => unlock::run_wipe(a, quiet),
        Command::Attach(a) => attach::run(a, quiet),
        Command::Detach(a) => attach::run_detach(a, quiet),
        Command::Host(c) => host::run(c, quiet),
        Command::Keys(c) => keys::run(c, quiet),
        Command::Rekey(a) => rekey::run(a, quiet),
        Command::Completions(a) => generate::run_completions(a),
        Command::Man(a) => generate::run_man(a),
    };
    // A signal that arrived during work that finished anyway still ends with 128 + n.
    let interrupted = vault::interrupt::received();
    let code = match (result, interrupted) {
        (Ok(code), None) => code,
        // Committed: the work is done and stays done; the signal came too late to stop it.
        (Ok(code), Some(signal)) if vault::interrupt::committed() => {
            eprintln!(
                "note: {} arrived after the command had committed; it completed",
                vault::interrupt::signal_name(signal)
            );
            code
        }
        (Ok(_), Some(signal)) => vault::interrupt::exit_for(signal, || {
            let message = format!(
                "interrupted by {} after the command had completed",
                vault::interrupt::signal_name(signal)
            );
            if json && !json::printed() {
                util::report_json_interrupted(signal, &message, None);
            }
            eprintln!("error: {message}")
        }),
        (Err(e), None) | (Err(e @ vault::Error::Incomplete { .. }), Some(_)) => {
            if json && !json::printed() {
                util::report_json(&e);
            }
            util::report(&e);
            e.exit_code()
        }
        (Err(e), Some(signal)) => vault::interrupt::exit_for(signal, || {
            let e = vault::interrupt::explain(e);
            if json && !json::printed() {
                util::report_json_interrupted(signal, &e.to_string(), vault::Hint::hint(&e));
            }
            util::report(&e)
        }),
    };
    // A reader that went away (EPIPE) is not an error (vault::output); a full disk behind
    // `>` is, once the work is done.
    match vault::output::stdout_error() {
        Some(e) => {
            eprintln!("error: cannot write to standard output: {e}");
            if code == vault::ExitCode::Ok {
                eprintln!("  note: the command itself completed; only its output was lost");
                return ProcessExitCode::from(vault::ExitCode::Failure as u8);
            }
            ProcessExitCode::from(code as u8)
        }
        None => ProcessExitCode::from(code as u8),
    }
}
