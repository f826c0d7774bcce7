//! `vault init`.

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
    let path = a.dir.join("vault.toml");
    // Written whole through a temporary (vault::new_file): an interrupted init leaves no
    // half-written vault.toml, and --force never a truncated one. --force keeps the mode of
    // the file it replaces.
    let old_mode = std::fs::metadata(&path)
        .ok()
        .filter(|_| a.force)
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777);
    let opts = vault::new_file::Options {
        mode: old_mode.unwrap_or(0o666),
        exact: old_mode.is_some(),
        dir_mode: 0o777,
        force: a.force,
    };
    vault::new_file::write(&path, vault::manifest::TEMPLATE.as_bytes(), opts, || {
        Error::Declined {
            why: format!("{} already exists", path.display()),
            hint: Some("edit it, or pass --force to start over".into()),
        }
    })?;
    if !quiet {
        let shown = escape_path(&path);
        println!(
            "Wrote {shown}. Next: `vault host add NAME -m {shown}` for each host, list your files in it, then run `vault pack -m {shown}`."
        );
    }
    Ok(ExitCode::Ok)
}
