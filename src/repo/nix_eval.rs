//! Evaluating a repository's Nix files (`secrets.nix`, the agenix keys file) with
//! `nix-instantiate`, in Nix's restricted mode.
//!
//! These files are code that anyone who can commit to the secrets repo writes, and vault
//! evaluates them where the admin's keys are (`vault rekey --check`, `vault host add`).
//! Unrestricted, `builtins.readFile ~/.ssh/id_ed25519` reads a key and `builtins.fetchurl`
//! sends it away. So: `restrict-eval` (only files below the search path's folders may be read,
//! links resolved first), no URI allowed (every fetch fails before connecting), no import from
//! derivation (nothing is built), no experimental feature (the flakes fetchers escape
//! restricted mode), `NIX_PATH` removed and only the repository's folders given with `-I`. In
//! restricted mode `builtins.getEnv` returns "". Command-line `--option`s win over nix.conf
//! and `NIX_CONFIG`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The program.
pub const NIX_INSTANTIATE: &str = "nix-instantiate";

/// `nix-instantiate --eval --strict --json` in restricted mode, run in `dir`, reading only
/// below `allowed` (and `dir`). Arguments (the file, or `-E TEXT`) follow.
pub fn restricted(dir: &Path, allowed: &[PathBuf]) -> Command {
    let mut c = Command::new(NIX_INSTANTIATE);
    c.args(["--eval", "--strict", "--json"])
        .args(["--option", "restrict-eval", "true"])
        .args(["--option", "allowed-uris", ""])
        .args(["--option", "allow-import-from-derivation", "false"])
        // builtins.exec, should the user's nix.conf allow it.
        .args([
            "--option",
            "allow-unsafe-native-code-during-evaluation",
            "false",
        ])
        // No experimental builtins, whatever the user's nix.conf turns on: with `flakes`,
        // Nix 2.8's restricted mode lets `fetchTree { type = "path"; }` copy any folder into
        // the store and read it, and `allowed-uris` does not stop `fetchClosure` or the
        // `github` fetcher's `host` from connecting anywhere.
        .args(["--option", "experimental-features", ""])
        .env_remove("NIX_PATH")
        .current_dir(dir);
    let mut seen: Vec<&Path> = Vec::new();
    for p in std::iter::once(dir).chain(allowed.iter().map(PathBuf::as_path)) {
        if !seen.contains(&p) {
            seen.push(p);
            c.arg("-I").arg(p);
        }
    }
    c
}

/// The folder a file is in, absolute and with links resolved (what restricted mode compares
/// paths against), for [`restricted`]. The file's own name is not resolved: a file that is a
/// link out of its folder does not widen what may be read (restricted mode refuses its target).
pub fn folder_of(file: &Path) -> std::io::Result<PathBuf> {
    let dir = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::canonicalize(dir)
}

/// Runs `cmd`: its stdout as JSON, or nix's message (stderr, without its warnings about this
/// machine's setup, such as a missing `nixbld` group).
pub fn json(mut cmd: Command) -> Result<serde_json::Value, String> {
    let out: Output = cmd
        .output()
        .map_err(|e| format!("cannot run {NIX_INSTANTIATE}: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = err
            .lines()
            .filter(|l| !l.starts_with("warning: the group 'nixbld'"))
            .collect();
        return Err(lines.join("\n").trim().to_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("output is not JSON: {e}"))
}
