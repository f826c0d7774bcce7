//! Progress bars, through a real pseudo-terminal: `pack`, `unlock` and `rekey` draw one on a
//! terminal, and draw nothing with `--quiet` or when stderr is not a terminal.
//!
//! `VAULT_PROGRESS_DELAY_MS=0` takes away the "only once the work takes a moment" delay, so
//! whether a bar appears does not depend on how fast this machine is.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::vault_bin;
use expectrl::{Eof, Session};

/// Runs `cmd` in a pty to the end; returns everything it drew and its exit code.
fn run_in_pty(mut cmd: Command) -> (String, i32) {
    cmd.env("VAULT_PROGRESS_DELAY_MS", "0");
    let mut s = Session::spawn(cmd).expect("spawn in a pty");
    s.set_expect_timeout(Some(Duration::from_secs(120)));
    let out = s.expect(Eof).unwrap();
    // Eof matches the whole output: it is in as_bytes(), not before().
    let shown = String::from_utf8_lossy(out.as_bytes()).into_owned();
    let code = match s.get_process().wait().expect("wait") {
        expectrl::WaitStatus::Exited(_, code) => code,
        other => panic!("vault did not exit normally: {other:?}"),
    };
    (shown, code)
}

/// The same command through `sh`, with stderr sent to `log` (stdout stays on the pty).
fn with_stderr_to(cmd: &Command, log: &Path) -> Command {
    let mut line = String::from("exec");
    for part in std::iter::once(cmd.get_program()).chain(cmd.get_args()) {
        line.push_str(&format!(" '{}'", part.to_string_lossy()));
    }
    line.push_str(&format!(" 2>'{}'", log.display()));
    let mut sh = Command::new("sh");
    sh.args(["-c", &line]);
    if let Some(dir) = cmd.get_current_dir() {
        sh.current_dir(dir);
    }
    sh
}

/// The three cases for one command: on a terminal `marker` is drawn; with `--quiet`, or with
/// stderr sent to a file, it is drawn nowhere. `cmd(quiet, run)` builds the command for run
/// 0, 1, 2 (each may need its own output). Returns what the terminal showed in each run.
fn drawn_only_on_a_terminal(
    d: &Path,
    marker: &str,
    mut cmd: impl FnMut(bool, usize) -> Command,
) -> [String; 3] {
    let (on_tty, code) = run_in_pty(cmd(false, 0));
    assert_eq!(code, 0, "{on_tty}");
    assert!(
        on_tty.contains(marker),
        "{marker:?} not drawn on a terminal:\n{on_tty}"
    );

    let (quiet, code) = run_in_pty(cmd(true, 1));
    assert_eq!(code, 0, "{quiet}");
    assert!(!quiet.contains(marker), "--quiet drew {marker:?}:\n{quiet}");

    let log = d.join("stderr.log");
    let (piped, code) = run_in_pty(with_stderr_to(&cmd(false, 2), &log));
    assert_eq!(code, 0, "{piped}");
    let err = std::fs::read_to_string(&log).unwrap();
    assert!(
        !piped.contains(marker) && !err.contains(marker),
        "{marker:?} drawn with stderr not a terminal:\n{piped}\n{err}"
    );
    [on_tty, quiet, piped]
}

/// A manifest with one 24 MiB file, and the passphrase file.
fn payload(d: &Path) {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let bytes: Vec<u8> = (0..24 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(d.join("mirror.bin"), bytes).unwrap();
    std::fs::write(
        d.join("vault.toml"),
        "version = 1\n[hosts.h]\n[[hosts.h.entry]]\nsource = \"mirror.bin\"\ntarget = \"/srv/mirror.bin\"\n",
    )
    .unwrap();
    std::fs::write(d.join("pw"), "correct horse battery staple\n").unwrap();
}

fn pack_cmd(d: &Path, out: &str, quiet: bool) -> Command {
    let mut c = Command::new(vault_bin());
    c.current_dir(d)
        .args([
            "pack",
            "-m",
            "vault.toml",
            "-o",
            out,
            "--passphrase-file",
            "pw",
        ])
        .args(common::FAST_KDF);
    if quiet {
        c.arg("--quiet");
    }
    c
}

fn unlock_cmd(d: &Path, bundle: &str, root: &str, quiet: bool) -> Command {
    std::fs::create_dir(d.join(root)).unwrap();
    let mut c = Command::new(vault_bin());
    c.current_dir(d).args([
        "unlock",
        bundle,
        "--root",
        root,
        "--root-not-mountpoint",
        "--passphrase-file",
        "pw",
    ]);
    if quiet {
        c.arg("--quiet");
    }
    c
}

const PACK_BAR: &str = "packing [";
const UNLOCK_SPINNER: &str = "verifying and placing";

#[test]
fn pack_and_unlock_draw_progress_only_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    payload(d);

    let [on_tty, _, _] = drawn_only_on_a_terminal(d, PACK_BAR, |quiet, run| {
        pack_cmd(d, &format!("{run}.vault"), quiet)
    });
    assert!(on_tty.contains("ETA"), "{on_tty}");
    for run in 0..3 {
        assert!(
            std::fs::metadata(d.join(format!("{run}.vault")))
                .unwrap()
                .len()
                > 24 << 20
        );
    }

    drawn_only_on_a_terminal(d, UNLOCK_SPINNER, |quiet, run| {
        unlock_cmd(d, "0.vault", &format!("r{run}"), quiet)
    });
    for run in 0..3 {
        assert_eq!(
            std::fs::read(d.join(format!("r{run}/srv/mirror.bin"))).unwrap(),
            std::fs::read(d.join("mirror.bin")).unwrap()
        );
    }
}

#[test]
fn rekey_draws_progress_only_on_a_terminal() {
    let Some(age_bin) = common::require_tool("age") else {
        return;
    };
    if common::require_tool("nix-instantiate").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let old = common::write_identity(&d.join("old.txt"));
    let new = common::write_identity(&d.join("new.txt"));
    let repo = d.join("repo");
    std::fs::create_dir(&repo).unwrap();
    let mut rules = String::from("let k = import ./keys.nix; in {\n");
    for i in 0..20 {
        let f = repo.join(format!("s{i}.age"));
        let o = Command::new(&age_bin)
            .args(["-e", "-r", &old, "-o"])
            .arg(&f)
            .arg(d.join("old.txt"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        rules.push_str(&format!("  \"s{i}.age\".publicKeys = k;\n"));
    }
    rules.push_str("}\n");
    std::fs::write(repo.join("secrets.nix"), rules).unwrap();
    std::fs::write(
        d.join("vault.toml"),
        "version = 1\n[secrets]\nagenix_rules = \"repo/secrets.nix\"\n",
    )
    .unwrap();
    let rekey = |quiet: bool| {
        let mut c = Command::new(vault_bin());
        c.current_dir(d).args(["rekey", "-i", "old.txt"]);
        if quiet {
            c.arg("--quiet");
        }
        c
    };
    let keys = |list: &[&str]| {
        let quoted: Vec<String> = list.iter().map(|k| format!("\"{k}\"")).collect();
        std::fs::write(repo.join("keys.nix"), format!("[ {} ]\n", quoted.join(" "))).unwrap();
    };
    // Every run has work: the recipient list changes between runs.
    let shown = drawn_only_on_a_terminal(d, "rekeying [", |quiet, run| {
        if run == 1 {
            keys(&[&old]);
        } else {
            keys(&[&old, &new]);
        }
        rekey(quiet)
    });
    assert!(
        shown[0].contains("rekeyed") && shown[2].contains("rekeyed"),
        "{shown:?}"
    );
}

/// A pack of a few bytes draws no bar, even when its key derivation alone outlasts the delay:
/// the delay counts from the first byte packed, not from before the derivation.
#[test]
fn a_tiny_pack_draws_no_bar_however_long_its_kdf_takes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("tiny"), "7 bytes").unwrap();
    std::fs::write(
        d.join("vault.toml"),
        "version = 1\n[[entry]]\nsource = \"tiny\"\ntarget = \"/etc/tiny\"\n",
    )
    .unwrap();
    std::fs::write(d.join("pw"), "correct horse battery staple\n").unwrap();
    let mut c = Command::new(vault_bin());
    c.env_remove("VAULT_PROGRESS_DELAY_MS");
    // 256 MiB with many passes: several times the 0.4 s delay on any machine.
    c.current_dir(d).args([
        "pack",
        "--passphrase-file",
        "pw",
        "--weak-passphrase",
        "--weak-kdf",
        "--kdf-memory",
        "256",
        "--kdf-iterations",
        "12",
    ]);
    let mut s = Session::spawn(c).expect("spawn in a pty");
    s.set_expect_timeout(Some(Duration::from_secs(300)));
    let out = s.expect(Eof).unwrap();
    let shown = String::from_utf8_lossy(out.as_bytes()).into_owned();
    assert!(shown.contains("Packed 1 file"), "{shown}");
    assert!(!shown.contains(PACK_BAR), "a bar for 7 bytes:\n{shown}");
}
