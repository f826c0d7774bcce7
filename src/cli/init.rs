//! `vault init`.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use vault::escape::escape_path;
use vault::{Error, ExitCode};

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Folder to write vault.toml into.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Overwrite an existing vault.toml.
    #[arg(long)]
    pub force: bool,
}

pub fn run(a: InitArgs, quiet: bool) -> vault::Result<ExitCode> {
    std::fs::create_dir_all(&a.dir).map_err(|e| {
        Error::Io(vault::error::IoError {
            action: "cannot create",
            path: a.dir.clone(),
            source: e,
        })
    })?;
    let path = a.dir.join("vault.toml");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true);
    if a.force {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    let mut f = opts.open(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Error::Declined {
                why: format!("{} already exists", path.display()),
                hint: Some("edit it, or pass --force to start over".into()),
            }
        } else {
            Error::Io(vault::error::IoError {
                action: "cannot create",
                path: path.clone(),
                source: e,
            })
        }
    })?;
    f.write_all(vault::manifest::TEMPLATE.as_bytes())
        .map_err(|e| {
            Error::Io(vault::error::IoError {
                action: "cannot write",
                path: path.clone(),
                source: e,
            })
        })?;
    if !quiet {
        let shown = escape_path(&path);
        println!(
            "Wrote {shown}. Next: `vault host add NAME -m {shown}` for each host, list your files in it, then run `vault pack -m {shown}`."
        );
    }
    Ok(ExitCode::Ok)
}
