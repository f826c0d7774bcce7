//! Rendering shared by the subcommands.

use std::error::Error as _;

use vault::escape::escape_message;
use vault::Hint;

/// Prints `error: ...`, its causes, and the hint, the way cargo does. Messages quote names
/// from bundles, media and repositories: control characters in them are escaped here too.
pub fn report(e: &vault::Error) {
    eprintln!("error: {}", escape_message(&e.to_string()));
    let mut source = e.source();
    // `Io`'s message already includes its source; print deeper causes only.
    if matches!(
        e,
        vault::Error::Io(vault::error::IoError { .. }) | vault::Error::RolledBack { .. }
    ) {
        source = source.and_then(|s| s.source());
    }
    while let Some(s) = source {
        eprintln!("  caused by: {}", escape_message(&s.to_string()));
        source = s.source();
    }
    if let Some(h) = e.hint() {
        eprintln!("  hint: {}", escape_message(&h));
    }
}

/// `--json`: the error as one JSON object on stdout, for scripts that read only stdout. The
/// human report still goes to stderr.
pub fn report_json(e: &vault::Error) {
    // Nothing else can be said when even that fails (a full disk behind `>`).
    let _ = super::json::print(&json_error(e));
}

/// The `{"error": …}` document of a run a signal ended: kind `interrupted`, and the exit
/// code the process ends with (128 + the signal).
pub fn report_json_interrupted(signal: i32, message: &str, hint: Option<String>) {
    let doc = serde_json::json!({
        "error": {
            "kind": "interrupted",
            "message": message,
            "causes": [],
            "hint": hint,
            "exit_code": vault::interrupt::exit_code(signal),
        }
    });
    let _ = super::json::print(&doc);
}

/// The `{"error": …}` object for `e`.
pub fn json_error(e: &vault::Error) -> serde_json::Value {
    let mut causes = Vec::new();
    let mut source = e.source();
    if matches!(
        e,
        vault::Error::Io(vault::error::IoError { .. }) | vault::Error::RolledBack { .. }
    ) {
        source = source.and_then(|s| s.source());
    }
    while let Some(s) = source {
        causes.push(s.to_string());
        source = s.source();
    }
    json_error_value(e.exit_code(), &e.to_string(), causes, e.hint())
}

/// `{"error": {"kind", "message", "causes", "hint", "exit_code"}}` on stdout.
pub fn print_json_error(
    code: vault::ExitCode,
    message: &str,
    causes: Vec<String>,
    hint: Option<String>,
) {
    let _ = super::json::print(&json_error_value(code, message, causes, hint));
}

fn json_error_value(
    code: vault::ExitCode,
    message: &str,
    causes: Vec<String>,
    hint: Option<String>,
) -> serde_json::Value {
    serde_json::json!({
        "error": {
            "kind": code.name(),
            "message": message,
            "causes": causes,
            "hint": hint,
            "exit_code": code as u8,
        }
    })
}

use std::path::PathBuf;

use age_core::secrecy::SecretString;
use clap::Args;

/// Passphrase flags shared by the commands that need one. There is deliberately no flag that
/// takes the passphrase itself: argv is visible to every user of the machine.
#[derive(Debug, Args)]
pub struct PassphraseArgs {
    /// Read the passphrase from the first line of FILE (for automation) instead of the terminal.
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
}

/// The passphrase from a file, or `None` when it should be asked for interactively.
pub fn passphrase_source(a: &PassphraseArgs) -> vault::Result<Option<SecretString>> {
    match &a.passphrase_file {
        Some(p) => vault::prompt::from_file(p).map(Some),
        None if vault::prompt::has_tty() => Ok(None),
        None => Err(vault::Error::Prompt(
            "there is no terminal to ask on".into(),
        )),
    }
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
