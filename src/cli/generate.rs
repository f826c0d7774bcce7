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
    let mut cmd = Cli::command();
    // Generated whole, then written: a reader that goes away must not panic the generator.
    let mut script = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "vault", &mut script);
    vault::output::out_bytes(&script);
    Ok(ExitCode::Ok)
}

pub fn run_man(a: ManArgs) -> vault::Result<ExitCode> {
    let cmd = Cli::command();
    match a.out_dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir).map_err(|e| Error::Io {
                action: "cannot create",
                path: dir.clone(),
                source: e,
            })?;
            clap_mangen::generate_to(cmd, &dir).map_err(|e| Error::Io {
                action: "cannot write man pages into",
                path: dir,
                source: e,
            })?;
        }
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut page)
                .map_err(|e| Error::Io {
                    action: "cannot write",
                    path: "standard output".into(),
                    source: e,
                })?;
            vault::output::out_bytes(&page);
        }
    }
    Ok(ExitCode::Ok)
}
