//! `--json` on failure: one JSON error object on stdout (kind, message, hint, exit code), for
//! scripts that read only stdout; the human report stays on stderr.

mod common;

use std::path::Path;

use common::vault_in;
use serde_json::Value;

fn json_error(d: &Path, args: &[&str]) -> Value {
    let o = vault_in(d, args);
    let stdout = String::from_utf8_lossy(&o.stdout);
    let v: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "{args:?}: stdout is not one JSON object ({e}):\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&o.stderr)
        )
    });
    let code = o.status.code().unwrap();
    assert_ne!(code, 0, "{args:?} succeeded");
    assert_eq!(v["error"]["exit_code"], code, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{v}"
    );
    assert!(
        !o.stderr.is_empty(),
        "the human report still goes to stderr"
    );
    v
}

#[test]
fn failures_with_json_print_a_json_error_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("pw"), "correct horse battery staple\n").unwrap();

    let v = json_error(d, &["pack", "--json", "--passphrase-file", "pw"]);
    assert_eq!(v["error"]["kind"], "failure", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("vault.toml"),
        "{v}"
    );

    std::fs::write(d.join("vault.toml"), "version = 1\n[[entry]]\nsource = 3\n").unwrap();
    let v = json_error(d, &["pack", "--json", "--passphrase-file", "pw"]);
    assert_eq!(v["error"]["kind"], "bad_manifest", "{v}");
    assert_eq!(v["error"]["exit_code"], 5, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("line 3"),
        "{v}"
    );
    assert!(v["error"]["hint"].is_string(), "{v}");

    // A command line clap refuses.
    let v = json_error(d, &["pack", "--json", "--level", "99"]);
    assert_eq!(v["error"]["kind"], "usage", "{v}");
    assert_eq!(v["error"]["exit_code"], 2, "{v}");

    let v = json_error(d, &["inspect", "--json", "pw"]);
    assert_eq!(v["error"]["kind"], "bad_bundle", "{v}");
}

#[test]
fn failures_without_json_print_nothing_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let o = vault_in(dir.path(), &["pack", "--passphrase-file", "pw"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
}

#[test]
fn discover_json_with_nothing_found_prints_an_empty_list() {
    let dir = tempfile::tempdir().unwrap();
    // Skipped where this machine really carries a bundle (an installer).
    let o = vault_in(dir.path(), &["detach", "--discover"]);
    if o.status.success() {
        eprintln!("SKIP: this machine has a bundle to discover");
        return;
    }
    let o = vault_in(dir.path(), &["detach", "--discover", "--json"]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "[]",
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(0));
}
