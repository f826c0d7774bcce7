//! The identify file: what `vault host identify` prints and `vault host add --identity` reads.
//! It is TOML, the same keys as `[hosts.NAME.identity]` in `vault.toml`, with a comment naming
//! where each value came from and one per thing left out, so it can also be pasted under that
//! table. Format (docs/guide/fleet.md):
//!
//! ```text
//! # vault host identify: read from /sys
//! product_uuid = "6f1c2a4e-8d3b-4c5a-9e7f-0a1b2c3d4e5f"
//! product_serial = "ALPHA-0001"
//! macs = [
//!     "00:00:5e:00:53:01", # eth0
//! ]
//! disks = []
//! # left out: board_serial: not reported by this machine (...)
//! ```

use std::path::Path;

use super::Reading;
use crate::escape::escape;
use crate::manifest::identity::{Identity, RawIdentity};

/// Largest identify file read.
pub const MAX_FILE: u64 = 1 << 20;

/// The file for `reading`, which came from `source` (`/sys`, a report's path).
pub fn render(reading: &Reading, source: &str) -> String {
    let id = &reading.identity;
    let mut out = format!(
        "# vault host identify: read from {}\n# Record it with `vault host add NAME --identity FILE` (docs/guide/fleet.md).\n",
        escape(source)
    );
    let quote = |v: &str| toml_edit::Value::from(v).to_string();
    let label = |v: &str| match reading.labels.get(v) {
        Some(l) => format!(" # {}", escape(l)),
        None => String::new(),
    };
    for (key, v) in [
        ("product_uuid", &id.product_uuid),
        ("product_serial", &id.product_serial),
        ("board_serial", &id.board_serial),
    ] {
        if let Some(v) = v {
            out.push_str(&format!("{key} = {}{}\n", quote(v), label(v)));
        }
    }
    for (key, list) in [("macs", &id.macs), ("disks", &id.disks)] {
        if list.is_empty() {
            out.push_str(&format!("{key} = []\n"));
            continue;
        }
        out.push_str(&format!("{key} = [\n"));
        for v in list {
            out.push_str(&format!("    {},{}\n", quote(v), label(v)));
        }
        out.push_str("]\n");
    }
    for n in &reading.notes {
        out.push_str(&format!(
            "# left out: {}: {}\n",
            escape(&n.what),
            escape(&n.why)
        ));
    }
    out
}

/// Reads an identify file (or any TOML with those keys); errors say what is wrong, without
/// naming the file (the caller does).
pub fn parse(text: &str) -> Result<Identity, String> {
    let raw: RawIdentity = toml::from_str(text).map_err(|e| {
        let msg = e.message().trim().to_owned();
        match e.span() {
            Some(s) => format!(
                "line {}: {msg}",
                text[..s.start.min(text.len())].matches('\n').count() + 1
            ),
            None => msg,
        }
    })?;
    Identity::from_raw(raw)
}

/// Reads and parses an identify file. Errors name it; nothing has been changed when they
/// happen (exit 5, as for any file the user wrote).
pub fn read_file(path: &Path) -> Result<Identity, crate::hosts::Error> {
    use std::io::Read as _;
    let bad = |message: String| crate::hosts::Error::Edit {
        path: path.into(),
        message,
    };
    let io = |source| {
        crate::hosts::Error::Io(crate::error::IoError {
            action: "cannot read",
            path: path.into(),
            source,
        })
    };
    let f = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    f.take(MAX_FILE + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(bad(format!(
            "larger than {} KiB: not an identify file (`vault host identify > FILE` writes one)",
            MAX_FILE >> 10
        )));
    }
    let text =
        String::from_utf8(bytes).map_err(|_| bad("not UTF-8 text: not an identify file".into()))?;
    parse(&text).map_err(bad)
}
