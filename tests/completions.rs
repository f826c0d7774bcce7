//! `vault completions`: the scripts offer what `--help` shows, and never the hidden options
//! that exist for tests (`--disk-root`, `--staging-dir`, `--staging-memory`,
//! `--test-file-as-device`).

mod common;

use common::{ok, vault_in as vault};

const HIDDEN: &[&str] = &[
    "disk-root",
    "staging-dir",
    "staging-memory",
    "test-file-as-device",
];

#[test]
fn completions_leave_out_hidden_options() {
    let tmp = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = ok(vault(tmp.path(), &["completions", shell]));
        for h in HIDDEN {
            assert!(!script.contains(h), "{shell} completion offers --{h}");
        }
        // What is shown still is there, global flags and positional values included.
        for shown in [
            "root-not-mountpoint",
            "passphrase-file",
            "quiet",
            "from-existing",
        ] {
            assert!(script.contains(shown), "{shell} completion lacks --{shown}");
        }
    }
}
