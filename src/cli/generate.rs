//! `vault completions SHELL` and `vault man`: shell completions and man pages, generated from
//! the same clap definitions as `--help`, so they cannot drift from the binary. Packagers run
//! them at install time (the flake package does, in its postInstall).

use std::path::PathBuf;

use clap::{Args, CommandFactory};
use clap_complete::Shell;
use vault::{Error, ExitCode};

use super::Cli;

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to print a completion script for.
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write vault.1 and a page per subcommand (vault-pack.1, vault-host-add.1, ...) into DIR
    /// instead of printing vault.1.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

pub fn run_completions(a: CompletionsArgs) -> vault::Result<ExitCode> {
    let mut cmd = without_hidden(&Cli::command());
    // Generated whole, then written: a reader that goes away must not panic the generator.
    let mut script = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "vault", &mut script);
    vault::output::out_bytes(&script);
    Ok(ExitCode::Ok)
}

/// `cmd` without its hidden arguments and subcommands (clap_complete offers them otherwise):
/// those exist for tests and have no place in a user's shell. Groups keep their visible members.
fn without_hidden(cmd: &clap::Command) -> clap::Command {
    let hidden: Vec<&clap::Id> = cmd
        .get_arguments()
        .filter(|a| a.is_hide_set())
        .map(|a| a.get_id())
        .collect();
    // Rebuilt rather than edited: clap can mark an argument hidden but not remove one. Names
    // are `&'static str` to clap; these few live until the script is printed and vault exits.
    let leak = |s: &str| -> &'static str { Box::leak(s.to_owned().into_boxed_str()) };
    let mut new = clap::Command::new(leak(cmd.get_name()))
        .args(cmd.get_arguments().filter(|a| !a.is_hide_set()).cloned())
        .groups(cmd.get_groups().map(|g| {
            let multiple = g.clone().is_multiple();
            clap::ArgGroup::new(g.get_id().clone())
                .args(g.get_args().filter(|id| !hidden.contains(id)).cloned())
                .multiple(multiple)
                .required(g.is_required_set())
        }))
        .subcommands(
            cmd.get_subcommands()
                .filter(|c| !c.is_hide_set())
                .map(without_hidden),
        );
    if let Some(v) = cmd.get_version() {
        new = new.version(leak(v));
    }
    if let Some(about) = cmd.get_about() {
        new = new.about(about.clone());
    }
    new = new.visible_aliases(cmd.get_visible_aliases().map(leak).collect::<Vec<_>>());
    if cmd.is_subcommand_required_set() {
        new = new.subcommand_required(true);
    }
    new
}

pub fn run_man(a: ManArgs) -> vault::Result<ExitCode> {
    let cmd = Cli::command();
    match a.out_dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir).map_err(|e| {
                Error::Io(vault::error::IoError {
                    action: "cannot create",
                    path: dir.clone(),
                    source: e,
                })
            })?;
            clap_mangen::generate_to(cmd, &dir).map_err(|e| {
                Error::Io(vault::error::IoError {
                    action: "cannot write man pages into",
                    path: dir,
                    source: e,
                })
            })?;
        }
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut page).map_err(|e| {
                Error::Io(vault::error::IoError {
                    action: "cannot write",
                    path: "standard output".into(),
                    source: e,
                })
            })?;
            vault::output::out_bytes(&page);
        }
    }
    Ok(ExitCode::Ok)
}
