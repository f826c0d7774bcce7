//! Rendering shared by the subcommands.

use std::error::Error as _;

use vault::Hint;

/// Prints `error: ...`, its causes, and the hint, the way cargo does.
pub fn report(e: &vault::Error) {
    eprintln!("error: {e}");
    let mut source = e.source();
    // `Io`'s message already includes its source; print deeper causes only.
    if matches!(e, vault::Error::Io { .. } | vault::Error::RolledBack { .. }) {
        source = source.and_then(|s| s.source());
    }
    while let Some(s) = source {
        eprintln!("  caused by: {s}");
        source = s.source();
    }
    if let Some(h) = e.hint() {
        eprintln!("  hint: {h}");
    }
}
