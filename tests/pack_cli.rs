//! `vault pack` from the command line: what it refuses to overwrite, what it warns about, and
//! how it reports a bad `vault.toml`. Runs the real binary on real files.

mod common;

use std::path::Path;
use std::process::Output;

use common::{vault_in, FAST_KDF};

const PASS: &str = "correct horse battery staple\n";

/// A folder with a manifest for host `laptop` (one key file) and a passphrase file.
fn setup(d: &Path) {
    std::fs::create_dir_all(d.join("hosts/laptop")).unwrap();
    std::fs::write(d.join("hosts/laptop/key"), "host key\n").unwrap();
    std::fs::write(d.join("pw"), PASS).unwrap();
    std::fs::write(
        d.join("vault.toml"),
        "version = 1\n[hosts.laptop]\n[[hosts.laptop.entry]]\nsource = \"hosts/laptop/key\"\ntarget = \"/etc/ssh/ssh_host_ed25519_key\"\n",
    )
    .unwrap();
}

fn pack(d: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["pack", "--passphrase-file", "pw"];
    args.extend_from_slice(FAST_KDF);
    args.extend_from_slice(extra);
    vault_in(d, &args)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn pack_refuses_an_existing_output_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d);
    std::fs::write(d.join("old.bundle"), "precious").unwrap();
    let o = pack(d, &["-o", "old.bundle"]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("old.bundle") && e.contains("--force"), "{e}");
    assert_eq!(std::fs::read(d.join("old.bundle")).unwrap(), b"precious");

    common::ok(pack(d, &["-o", "old.bundle", "--force"]));
    assert_ne!(std::fs::read(d.join("old.bundle")).unwrap(), b"precious");
}

#[test]
fn pack_never_writes_over_its_manifest_or_a_source_even_with_force() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d);
    std::fs::write(d.join("shared"), "a shared file\n").unwrap();
    std::fs::create_dir(d.join("tree")).unwrap();
    std::fs::write(d.join("tree/inner"), "inside a directory entry\n").unwrap();
    let mut m = std::fs::read_to_string(d.join("vault.toml")).unwrap();
    m.push_str("[[hosts.laptop.entry]]\nsource = \"tree\"\ntarget = \"/srv/tree\"\n");
    std::fs::write(d.join("vault.toml"), m).unwrap();
    // A second name for the key: compared by inode, not by path.
    std::fs::hard_link(d.join("hosts/laptop/key"), d.join("alias")).unwrap();
    let before = common::snapshot(d);
    for (out, what) in [
        ("vault.toml", "manifest"),
        ("./hosts/../vault.toml", "manifest"),
        ("hosts/laptop/key", "source"),
        ("alias", "source"),
        ("tree/inner", "source"),
        ("pw", "passphrase"),
    ] {
        for force in [false, true] {
            let mut extra = vec!["-o", out];
            if force {
                extra.push("--force");
            }
            let o = pack(d, &extra);
            assert_eq!(o.status.code(), Some(6), "-o {out}: {}", stderr(&o));
            assert!(stderr(&o).contains(what), "-o {out}: {}", stderr(&o));
        }
    }
    common::assert_same(&before, &common::snapshot(d), "after refused packs");
}

fn manifest_error(d: &Path, toml: &str) -> String {
    std::fs::write(d.join("vault.toml"), toml).unwrap();
    let o = pack(d, &["-o", "x.bundle"]);
    assert_eq!(o.status.code(), Some(5), "{toml}\n{}", stderr(&o));
    assert!(!d.join("x.bundle").exists());
    stderr(&o)
}

/// Their messages (line and column) are in tests/cmd/manifest.md; here: no bundle is written.
#[test]
fn an_invalid_manifest_writes_no_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d);
    let head =
        "version = 1\n[hosts.laptop]\n[[hosts.laptop.entry]]\nsource = \"hosts/laptop/key\"\n";
    for tail in [
        "target = \"/k\"\ncolour = \"red\"\n",
        "target = 42\n",
        "target = \"/k\n",
    ] {
        manifest_error(d, &format!("{head}{tail}"));
    }
}

#[test]
fn an_unreadable_source_is_named_by_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d);
    let key = d.join("hosts/laptop/key");
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    let mut args: Vec<&str> = vec!["pack", "--passphrase-file", "pw", "-o", "x.bundle"];
    args.extend_from_slice(FAST_KDF);
    // root reads anything: run as nobody, in a folder nobody may use.
    let o = if rustix::process::geteuid().is_root() {
        if common::require_tool("setpriv").is_none() {
            return;
        }
        std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        for f in ["vault.toml", "pw"] {
            std::fs::set_permissions(
                d.join(f),
                std::os::unix::fs::PermissionsExt::from_mode(0o644),
            )
            .unwrap();
        }
        std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(common::vault_bin())
            .args(&args)
            .current_dir(d)
            .output()
            .unwrap()
    } else {
        vault_in(d, &args)
    };
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(5), "{e}");
    assert!(
        e.contains("line 3") && e.contains("hosts/laptop/key") && e.contains("permissions"),
        "{e}"
    );
    assert!(!d.join("x.bundle").exists());
}

#[test]
fn init_then_host_add_packs_only_that_host() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("pw"), PASS).unwrap();
    common::ok(vault_in(d, &["init"]));
    // The template alone selects nothing: pack says so instead of writing an empty bundle.
    let o = pack(d, &["-o", "empty.bundle"]);
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert!(stderr(&o).contains("nothing to pack"), "{}", stderr(&o));
    assert!(!d.join("empty.bundle").exists());

    common::ok(vault_in(d, &["host", "add", "laptop"]));
    let o = pack(d, &["-o", "laptop.bundle", "--json"]);
    let out: serde_json::Value = serde_json::from_str(&common::ok(o)).unwrap();
    assert_eq!(out["hosts"], serde_json::json!(["laptop"]), "{out}");
}

/// The refusal's message and exit code: tests/cmd/manifest.md.
#[test]
fn init_over_an_existing_manifest_leaves_it_alone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("vault.toml"), "mine").unwrap();
    let o = vault_in(d, &["init"]);
    assert!(!o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read(d.join("vault.toml")).unwrap(), b"mine");
}

#[test]
fn pack_warns_about_a_host_without_entries_and_a_passphrase_with_a_newline() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d);
    std::fs::write(d.join("disko-password"), "hunter2 hunter2\n").unwrap();
    std::fs::write(d.join("deploy_key"), "a key ends in a newline\n").unwrap();
    let mut m = std::fs::read_to_string(d.join("vault.toml")).unwrap();
    m.push_str(concat!(
        "[[hosts.laptop.entry]]\nsource = \"disko-password\"\ntarget = \"/tmp/disko-password\"\nstage = \"disk\"\n",
        "[[hosts.laptop.entry]]\nsource = \"deploy_key\"\ntarget = \"/run/keys/deploy_key\"\nstage = \"disk\"\n",
        "[hosts.myhost]\n",
    ));
    std::fs::write(d.join("vault.toml"), m).unwrap();
    let o = pack(d, &[]);
    common::ok(o.clone());
    let e = stderr(&o);
    assert!(e.contains("warning: host myhost has no entries"), "{e}");
    assert!(e.contains("disko-password") && e.contains("newline"), "{e}");
    assert!(!e.contains("deploy_key"), "{e}");

    // Without the newline and without the empty host: no warning.
    std::fs::write(d.join("disko-password"), "hunter2 hunter2").unwrap();
    let o = pack(d, &["--host", "laptop", "--force"]);
    common::ok(o.clone());
    assert!(
        !stderr(&o).contains("warning: host") && !stderr(&o).contains("newline"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn weak_kdf_settings_need_weak_kdf() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d);
    let base = ["pack", "--passphrase-file", "pw", "-o", "w.bundle"];
    let run = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        vault_in(d, &args)
    };
    // Contradictory flags, less memory or fewer passes than the default: their refusals are in
    // tests/cmd/usage.md and tests/cmd/manifest.md.
    // A calibration capped below the default memory (a 128 MiB installer gets 64 MiB).
    let o = run(&["--kdf-calibrate", "0.05", "--target-memory", "128"]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("weaker than the default"),
        "{}",
        stderr(&o)
    );
    assert!(!d.join("w.bundle").exists());
    // Accepted when asked for, with the reason printed (the test passphrase is weak as well).
    let o = run(&[
        "--kdf-memory",
        "64",
        "--kdf-iterations",
        "1",
        "--weak-kdf",
        "--weak-passphrase",
    ]);
    common::ok(o.clone());
    assert!(
        stderr(&o).contains("warning: weak Argon2id"),
        "{}",
        stderr(&o)
    );
}

/// A long calibration on a small installer would need more passes than an unlocking vault
/// accepts (64): calibration stops at the cap and says so, and the bundle opens.
#[test]
fn a_calibration_past_the_pass_cap_is_capped_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d);
    // 64 MiB: one pass is a few hundredths of a second, so 30 s would be hundreds of passes.
    let o = vault_in(
        d,
        &[
            "pack",
            "--passphrase-file",
            "pw",
            "-o",
            "c.bundle",
            "--weak-kdf",
            "--weak-passphrase",
            "--kdf-calibrate",
            "30",
            "--target-memory",
            "128",
        ],
    );
    common::ok(o.clone());
    let e = stderr(&o);
    assert!(e.contains("t=64,"), "{e}");
    assert!(e.contains("capped at 64 passes"), "{e}");
    let o = vault_in(d, &["inspect", "c.bundle", "--passphrase-file", "pw"]);
    common::ok(o);
}

#[test]
fn an_output_that_appears_while_packing_is_not_replaced_without_force() {
    // The up-front check cannot see a file created after it: the final rename must refuse to
    // replace one too. The temporary appears before the key derivation (a second or so here),
    // so a file written as soon as it shows up is there long before the rename.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d);
    let child = std::process::Command::new(common::vault_bin())
        .current_dir(d)
        .args(["pack", "--passphrase-file", "pw", "-o", "late.bundle"])
        .args(["--weak-kdf", "--weak-passphrase", "--kdf-memory", "256"])
        .args(["--kdf-iterations", "4", "--kdf-parallelism", "1"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let temp_seen = loop {
        let seen = std::fs::read_dir(d).unwrap().flatten().any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".late.bundle.vault-")
        });
        if seen || started.elapsed() > std::time::Duration::from_secs(60) {
            break seen;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    };
    assert!(temp_seen, "pack never created its temporary");
    std::fs::write(d.join("late.bundle"), "written meanwhile").unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(stderr(&o).contains("late.bundle"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(d.join("late.bundle")).unwrap(),
        b"written meanwhile"
    );
    let left: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().contains(".vault-"))
        .collect();
    assert!(left.is_empty(), "temporaries left: {left:?}");
}
