//! Recovery recipients: keys the bundle's file key is also wrapped to, so an admin who forgot
//! the passphrase can still open the bundle on the workstation (`vault inspect -i`,
//! `vault repack`). The installer never uses them: `vault unlock` takes the passphrase.

use std::path::Path;

use crate::keys::age::recovery::{parse_recovery_recipient, RecoveryRecipient};
use crate::{Error, Result};

/// What a bundle opened with a recovery key is, said wherever vault reports one: a recovery
/// stanza needs only the recipient's public key to write (docs/FORMAT.md §1).
pub const OPENED_WITH_RECOVERY_KEY: &str =
    "opened with a recovery key, which proves nothing about who made it";

/// Why, and what to check.
pub const RECOVERY_KEY_CAVEAT: &str = "anyone who has the recovery key's public half (an SSH public key is usually published) can make a bundle that opens with it, with contents and recovery recipients of their choosing; make sure the stick is yours and compare each item with your own copy (`vault repack -m vault.toml` names every difference) before using it";

/// The two together, for a warning or `--json`'s `warning`.
pub fn recovery_key_warning() -> String {
    format!("{OPENED_WITH_RECOVERY_KEY}: {RECOVERY_KEY_CAVEAT}")
}

/// Parses every recipient, refusing the first bad one with `origin(index)` naming where it
/// came from. Repeats are dropped (keeping the first).
pub fn parse_all(
    lines: &[String],
    origin: &dyn Fn(usize) -> String,
) -> Result<Vec<RecoveryRecipient>> {
    let mut out: Vec<RecoveryRecipient> = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let r = parse_recovery_recipient(l).map_err(|why| Error::Declined {
            why: format!("{}: {why}", origin(i)),
            hint: Some(
                "give an age1… recipient (`age-keygen -y KEY`), an SSH public key line (the .pub file's contents), or a hardware key's age1<plugin>1… recipient with its plugin on PATH"
                    .into(),
            ),
        })?;
        if !out.iter().any(|o| o.line == r.line) {
            out.push(r);
        }
    }
    if out.len() > crate::archive::MAX_RECOVERY_RECIPIENTS {
        return Err(Error::Declined {
            why: format!(
                "{} recovery recipients: at most {} are allowed",
                out.len(),
                crate::archive::MAX_RECOVERY_RECIPIENTS
            ),
            hint: None,
        });
    }
    Ok(out)
}

/// The recipients in a file, as age's `-R`: one per line; blank lines and lines starting
/// with `#` are skipped. Returns each with its line number.
pub fn read_recipients_file(path: &Path) -> Result<Vec<(usize, String)>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("cannot read", path, e))?;
    Ok(text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .map(|(n, l)| (n, l.to_owned()))
        .collect())
}
