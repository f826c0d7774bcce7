//! A sops file whose age entry for the given identity is damaged is reported as damaged, with
//! the file and the entry, not as "no identity opens it"; and `vault rekey --json` reports a
//! real run and a dry run as JSON.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;

use common::{ok, vault_in as vault};

/// A repo with one sops file encrypted by the real sops to `admin`, and a rule that now also
/// lists a second recipient, so the file is stale.
fn repo(dir: &Path) -> Option<std::path::PathBuf> {
    let sops = common::require_tool("sops")?;
    let admin_key = dir.join("admin.txt");
    let admin = common::write_identity(&admin_key);
    let other = common::write_identity(&dir.join("other.txt"));
    std::fs::write(
        dir.join(".sops.yaml"),
        format!("creation_rules:\n  - path_regex: .*\\.yaml$\n    age: {admin}\n"),
    )
    .unwrap();
    std::fs::write(dir.join("app.yaml"), "password: hunter2\n").unwrap();
    let o = Command::new(sops)
        .args(["-e", "-i", "app.yaml"])
        .current_dir(dir)
        .env("HOME", dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::write(
        dir.join(".sops.yaml"),
        format!("creation_rules:\n  - path_regex: .*\\.yaml$\n    age: {admin},{other}\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("vault.toml"),
        "version = 1\n[secrets]\nsops_config = \".sops.yaml\"\n",
    )
    .unwrap();
    Some(admin_key)
}

/// The armored age file `enc` with one character of its recipient stanza's body changed
/// (still valid base64): the wrapped key no longer opens, the rest parses.
fn damage(enc: &str) -> String {
    let mut bin = Vec::new();
    age::armor::ArmoredReader::new(enc.as_bytes())
        .read_to_end(&mut bin)
        .unwrap();
    let text = String::from_utf8_lossy(&bin).into_owned();
    let body_start = text.find("-> X25519 ").unwrap();
    let body_line = text[body_start..].find('\n').unwrap() + body_start + 1;
    let c = bin[body_line];
    bin[body_line] = if c == b'A' { b'B' } else { b'A' };
    let mut w =
        age::armor::ArmoredWriter::wrap_output(Vec::new(), age::armor::Format::AsciiArmor).unwrap();
    w.write_all(&bin).unwrap();
    String::from_utf8(w.finish().unwrap()).unwrap()
}

#[test]
fn a_damaged_entry_is_called_damaged() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let Some(admin_key) = repo(dir) else {
        return;
    };
    let file = dir.join("app.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let doc: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    let enc = doc["sops"]["age"][0]["enc"].as_str().unwrap().to_string();
    let bad = damage(&enc);
    let (old_line, new_line) = enc
        .lines()
        .zip(bad.lines())
        .find(|(a, b)| a != b)
        .expect("the damage shows in the armor");
    let damaged = text.replacen(old_line, new_line, 1);
    assert_ne!(damaged, text);
    std::fs::write(&file, &damaged).unwrap();

    let o = vault(dir, &["rekey", "-i", admin_key.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("app.yaml"), "names the file: {err}");
    assert!(err.contains("damaged"), "says it is damaged: {err}");
    assert!(
        err.contains("age entry 1 (recipient") && err.contains(admin_key.to_str().unwrap()),
        "says where, and whose entry: {err}"
    );
    assert!(!err.contains("no identity given opens it"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        damaged,
        "nothing changed"
    );
}

#[test]
fn json_for_a_real_rekey_and_a_dry_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let Some(admin_key) = repo(dir) else {
        return;
    };
    let dry = ok(vault(dir, &["rekey", "--dry-run", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&dry).expect("dry run prints JSON");
    assert_eq!(v[0]["status"], "stale", "{v}");
    assert_eq!(v[0]["kind"], "sops", "{v}");

    let out = ok(vault(
        dir,
        &["rekey", "--json", "-i", admin_key.to_str().unwrap()],
    ));
    let v: serde_json::Value = serde_json::from_str(&out).expect("a real rekey prints JSON");
    let items = v.as_array().expect("a list of files");
    assert_eq!(items.len(), 1, "{v}");
    assert_eq!(items[0]["status"], "rekeyed", "{v}");
    assert!(
        items[0]["path"].as_str().unwrap().ends_with("app.yaml"),
        "{v}"
    );

    // Nothing left to do: still JSON, every file current.
    let out = ok(vault(
        dir,
        &["rekey", "--json", "-i", admin_key.to_str().unwrap()],
    ));
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON when nothing to do");
    assert_eq!(v[0]["status"], "current", "{v}");
}
