//! `--json` output: exactly one document per run, on one line of printable ASCII
//! (`vault::escape::json`). A command prints its result with [`print`]; when it fails, `main`
//! prints the error object unless the command already printed a document that carries the
//! error with its result (`pack`'s configuration check, `rekey --check`'s stale files).

use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

static PRINTED: AtomicBool = AtomicBool::new(false);

/// Prints `value` as the run's document. A second document is never printed (and would be a
/// bug: debug builds stop on it).
pub fn print<T: Serialize + ?Sized>(value: &T) -> vault::Result<()> {
    let line = vault::escape::json::to_line(value).map_err(|e| {
        vault::Error::Io(vault::error::IoError {
            action: "cannot write the result as JSON to",
            path: "standard output".into(),
            source: std::io::Error::other(e),
        })
    })?;
    if PRINTED.swap(true, Ordering::SeqCst) {
        debug_assert!(false, "a second JSON document: {line}");
        return Ok(());
    }
    println!("{line}");
    Ok(())
}

/// Whether this run printed its document.
pub fn printed() -> bool {
    PRINTED.load(Ordering::SeqCst)
}
