//! `--json`: every run prints exactly one JSON document on stdout, one line of printable
//! ASCII; on failure the error object (kind, message, hint, exit code), for scripts that read
//! only stdout, while the human report stays on stderr. Paths that are not UTF-8 are arrays
//! of their bytes.

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::vault_in;
use serde_json::Value;

// The error object of each kind (failure, usage, bad_manifest, bad_bundle, wrong_passphrase)
// and the human report beside it: tests/cmd/*.md.

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

/// Runs vault with `args` in `d` and checks that stdout is exactly one JSON document on one
/// line of printable ASCII; on failure, that it is the error object for the exit code.
fn one_document(d: &Path, args: &[&OsStr]) -> (i32, Value) {
    let o = Command::new(common::vault_bin())
        .args(args)
        .current_dir(d)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    let code = o
        .status
        .code()
        .unwrap_or_else(|| panic!("{args:?}: killed\n{stderr}"));
    assert!(
        stdout.ends_with('\n') && stdout.lines().count() == 1,
        "{args:?} (exit {code}): not one line on stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        o.stdout[..o.stdout.len() - 1]
            .iter()
            .all(|b| (0x20..0x7f).contains(b)),
        "{args:?}: not printable ASCII: {stdout:?}"
    );
    // from_str refuses anything after the document.
    let v: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{args:?} (exit {code}): {e}\n{stdout}\nstderr:\n{stderr}"));
    if code != 0 {
        assert_eq!(
            v["error"]["exit_code"], code,
            "{args:?}: {v}\nstderr:\n{stderr}"
        );
    }
    (code, v)
}

fn os<'a>(args: &[&'a str]) -> Vec<&'a OsStr> {
    args.iter().map(|a| OsStr::new(*a)).collect()
}

/// A folder with a one-host vault.toml, its key file, two passphrase files and a packed
/// bundle `b.bundle`.
fn workdir(d: &Path) {
    std::fs::write(d.join("key"), "host key\n").unwrap();
    std::fs::write(
        d.join("vault.toml"),
        "version = 1\n[hosts.h]\n[[hosts.h.entry]]\nsource = \"key\"\ntarget = \"/etc/ssh/key\"\n",
    )
    .unwrap();
    std::fs::write(d.join("pw"), "correct horse battery staple\n").unwrap();
    std::fs::write(d.join("pw2"), "another horse battery staple\n").unwrap();
    std::fs::write(d.join("wrong"), "not it\n").unwrap();
    std::fs::create_dir(d.join("mnt")).unwrap();
    let mut args = vec!["pack", "-o", "b.bundle", "--passphrase-file", "pw"];
    args.extend(common::FAST_KDF);
    common::ok(vault_in(d, &args));
}

/// A small isohybrid installer image, as nixpkgs makes them (`-isohybrid-mbr`).
fn iso(d: &Path) -> Option<PathBuf> {
    common::isohybrid(d, "nixos-minimal-25.05-x86_64", "installer.iso")
}

#[test]
fn every_json_command_prints_exactly_one_document() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    workdir(d);
    let weak = common::FAST_KDF.join(" ");
    // (arguments, succeeds)
    let mut runs: Vec<(String, bool)> =
        vec![
        (format!("pack -o p.bundle --passphrase-file pw {weak} --json"), true),
        ("pack -m missing.toml -o q.bundle --passphrase-file pw --json".into(), false),
        ("inspect b.bundle --json".into(), true),
        ("inspect b.bundle --passphrase-file pw --json".into(), true),
        ("inspect b.bundle --passphrase-file wrong --json".into(), false),
        ("inspect pw --json".into(), false),
        (
            "repack b.bundle -o r.bundle --old-passphrase-file pw --passphrase-file pw2 \
             --weak-passphrase --json"
                .into(),
            true,
        ),
        (
            "repack b.bundle -o s.bundle --old-passphrase-file wrong --passphrase-file pw2 --json"
                .into(),
            false,
        ),
        (
            "unlock b.bundle --root mnt --root-not-mountpoint --passphrase-file pw --json".into(),
            true,
        ),
        (
            "unlock b.bundle --root mnt --root-not-mountpoint --passphrase-file wrong --json"
                .into(),
            false,
        ),
        ("detach --image missing.img --json".into(), false),
        ("host list --json".into(), true),
        ("host list -m missing.toml --json".into(), false),
        ("rekey --json".into(), false),
        ("rekey -m missing.toml --check --json".into(), false),
        ("attach --image missing.iso --bundle b.bundle -o x.img --json".into(), false),
        ("pack --level 99 --json".into(), false),
        ("detach --discover --json".into(), true),
    ];
    if iso(d).is_some() {
        runs.extend([
            (
                "attach --image installer.iso --bundle b.bundle -o a.img --no-binary --json".into(),
                true,
            ),
            ("detach --image a.img --json".into(), true),
            ("detach --image a.img -o plain.img --json".into(), true),
            ("inspect a.img --json".into(), true),
            (
                "attach --image installer.iso --bundle b.bundle -o a.img --no-binary --json".into(),
                false,
            ),
        ]);
    }
    for (args, succeeds) in &runs {
        let args: Vec<&str> = args.split_whitespace().collect();
        let (code, v) = one_document(d, &os(&args));
        assert_eq!(code == 0, *succeeds, "{args:?}: exit {code}: {v}");
    }
}

/// A repo whose only sops file (encrypted by the real sops) is stale: its rule lists a second
/// recipient.
fn stale_repo(d: &Path) -> Option<String> {
    let sops = common::require_tool("sops")?;
    let admin = common::write_identity(&d.join("admin.txt"));
    let other = common::write_identity(&d.join("other.txt"));
    let rule = |age: &str| format!("creation_rules:\n  - path_regex: .*\\.yaml$\n    age: {age}\n");
    std::fs::write(d.join(".sops.yaml"), rule(&admin)).unwrap();
    std::fs::write(d.join("app.yaml"), "password: hunter2\n").unwrap();
    let o = Command::new(sops)
        .args(["-e", "-i", "app.yaml"])
        .current_dir(d)
        .env("HOME", d)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::write(d.join(".sops.yaml"), rule(&format!("{admin},{other}"))).unwrap();
    std::fs::write(
        d.join("vault.toml"),
        "version = 1\n[secrets]\nsops_config = \".sops.yaml\"\n",
    )
    .unwrap();
    Some(other)
}

#[test]
fn rekey_check_with_stale_files_prints_one_document_with_whole_recipients() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let Some(added) = stale_repo(d) else {
        return;
    };
    let (code, v) = one_document(d, &os(&["rekey", "--check", "--json"]));
    assert_eq!(code, 8, "{v}");
    assert_eq!(v["error"]["kind"], "stale", "{v}");
    let files = v["files"].as_array().expect("the files beside the error");
    assert_eq!(files.len(), 1, "{v}");
    assert_eq!(files[0]["status"], "stale", "{v}");
    // The recipient the rule adds, whole: a script can act on it.
    let why = files[0]["why"].as_str().unwrap();
    assert!(why.contains(&format!("+{added}")), "{why}");
    // A dry run is a success: the plain list.
    let (code, v) = one_document(d, &os(&["rekey", "--dry-run", "--json"]));
    assert_eq!(code, 0, "{v}");
    assert_eq!(v[0]["status"], "stale", "{v}");
    // And the human line names it whole too.
    let o = vault_in(d, &["rekey", "--check"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains(&added));
}

/// A name that is not UTF-8 (Linux allows any bytes but `/` and NUL): `stem` + 0xFF.
fn odd(d: &Path, stem: &str) -> PathBuf {
    let mut b = stem.as_bytes().to_vec();
    b.push(0xff);
    d.join(OsStr::from_bytes(&b))
}

fn bytes_of(p: &Path) -> Value {
    p.as_os_str().as_bytes().iter().copied().collect()
}

#[test]
fn paths_that_are_not_utf8_are_arrays_of_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    workdir(d);
    let out = odd(d, "out");
    let mut args = os(&["pack", "--passphrase-file", "pw", "--json", "-o"]);
    args.push(out.as_os_str());
    args.extend(os(common::FAST_KDF));
    let (code, v) = one_document(d, &args);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["output"], bytes_of(&out), "{v}");

    let mut args = os(&["inspect", "--json"]);
    args.push(out.as_os_str());
    let (code, v) = one_document(d, &args);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["bundle"], bytes_of(&out), "{v}");

    // repack writes, then reports: the report must not fail after the write.
    let again = odd(d, "again");
    let mut args = os(&["repack", "b.bundle", "--old-passphrase-file", "pw"]);
    args.extend(os(&[
        "--passphrase-file",
        "pw2",
        "--weak-passphrase",
        "--json",
        "-o",
    ]));
    args.push(again.as_os_str());
    let (code, v) = one_document(d, &args);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["output"], bytes_of(&again), "{v}");
    assert!(again.exists());

    let root = odd(d, "root");
    std::fs::create_dir(&root).unwrap();
    let mut args = os(&["unlock", "b.bundle", "--root-not-mountpoint"]);
    args.extend(os(&["--passphrase-file", "pw", "--json", "--root"]));
    args.push(root.as_os_str());
    let (code, v) = one_document(d, &args);
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        v["items"][0]["path"],
        bytes_of(&root.join("etc/ssh/key")),
        "{v}"
    );
    assert_eq!(v["items"][0]["target"], "/etc/ssh/key", "{v}");

    if iso(d).is_none() {
        return;
    }
    let img = odd(d, "img");
    let mut args = os(&["attach", "--image", "installer.iso", "--bundle", "b.bundle"]);
    args.extend(os(&["--no-binary", "--json", "-o"]));
    args.push(img.as_os_str());
    let (code, v) = one_document(d, &args);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["output"], bytes_of(&img), "{v}");

    let mut args = os(&["detach", "--json", "--image"]);
    args.push(img.as_os_str());
    let (code, v) = one_document(d, &args);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["image"], bytes_of(&img), "{v}");
    assert!(v["partition"].is_object(), "{v}");
}
