//! What the vault process does to itself at start (docs/SECURITY.md, "Core dumps"): no core
//! dump, whatever the shell's `ulimit -c` and the kernel's `core_pattern`, and not dumpable
//! (no debugger attaches, no `/proc/PID/mem` for other processes of the user); while the tool
//! itself still reads its own `/proc/self` files and runs under a tracer that started it.

mod common;

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{ok, vault_bin, vault_in, FAST_KDF};
use expectrl::{Eof, Session, WaitStatus};

const NOBODY: u32 = 65534;

/// A bundle of one host key, packed with `pw` (fast KDF), in `d`.
fn bundle(d: &Path) {
    std::fs::write(d.join("host_key"), "the host's private key\n").unwrap();
    std::fs::write(d.join("pw"), "old passphrase\n").unwrap();
    std::fs::write(
        d.join("vault.toml"),
        "version = 1\n[hosts.box]\n[[hosts.box.entry]]\nsource = \"host_key\"\n\
         target = \"/etc/ssh/ssh_host_ed25519_key\"\nmode = \"0600\"\n",
    )
    .unwrap();
    let mut args = vec![
        "pack",
        "-o",
        "b.bundle",
        "--passphrase-file",
        "pw",
        "--no-config-check",
    ];
    args.extend_from_slice(FAST_KDF);
    ok(vault_in(d, &args));
}

/// The `Max core file size` line of /proc/PID/limits.
fn core_limit(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/limits"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap()
        .to_owned()
}

/// SIGQUIT (what Ctrl-\ sends) to `repack` waiting at its new-passphrase prompt, when the
/// whole decrypted payload is in memory, under `ulimit -c unlimited`: it ends vault, and no
/// core is written (the kernel's wait status says none was dumped, whatever `core_pattern` is;
/// with a `core_pattern` naming a file, none appears in the folder). The signal is sent with
/// kill(2): at the prompt itself the terminal is raw and Ctrl-\ is a character, but any time
/// vault works with the terminal cooked (deriving the key, writing) it is this signal.
#[test]
fn sigquit_during_repack_writes_no_core() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    bundle(d);
    let mut cmd = Command::new("sh");
    cmd.current_dir(d)
        .args(["-c", "ulimit -c unlimited && exec \"$0\" \"$@\""])
        .arg(vault_bin())
        .args([
            "repack",
            "b.bundle",
            "--old-passphrase-file",
            "pw",
            "-o",
            "new.bundle",
        ]);
    let mut s = Session::spawn(cmd).expect("spawn in a pty");
    s.set_expect_timeout(Some(Duration::from_secs(120)));
    s.expect("New passphrase for").unwrap();
    let pid = s.get_process().pid().as_raw();
    let limit = core_limit(pid);
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid).unwrap(),
        rustix::process::Signal::QUIT,
    )
    .unwrap();
    let _ = s.expect(Eof);
    let status = s.get_process().wait().expect("wait");
    let WaitStatus::Signaled(_, signal, dumped) = status else {
        panic!("vault was not ended by SIGQUIT: {status:?}");
    };
    assert_eq!(format!("{signal:?}"), "SIGQUIT", "{status:?}");
    let cores: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("core"))
        .collect();
    assert!(
        !dumped,
        "the kernel dumped a core ({limit}; files: {cores:?})"
    );
    assert!(cores.is_empty(), "core files: {cores:?}");
    assert!(
        limit.split_whitespace().filter(|w| *w == "0").count() == 2,
        "RLIMIT_CORE is not 0/0: {limit}"
    );
    assert!(!d.join("new.bundle").exists());
}

/// A bundle folder that `nobody` owns, if this test runs as root (and nobody can run vault).
fn as_nobody() -> Option<tempfile::TempDir> {
    if !rustix::process::geteuid().is_root() {
        eprintln!("SKIP: running vault as another user needs root");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    bundle(dir.path());
    for e in walkdir::WalkDir::new(dir.path()) {
        let p = e.unwrap().into_path();
        std::os::unix::fs::chown(&p, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    // The test binary's folder must be reachable for nobody.
    let exe = std::fs::metadata(vault_bin()).unwrap();
    if exe.mode() & 0o001 == 0 {
        eprintln!("SKIP: nobody cannot run {}", vault_bin().display());
        return None;
    }
    Some(dir)
}

/// vault, started as `nobody` and waiting at a passphrase prompt, is not dumpable: the kernel
/// gives its /proc/PID files to root (a dumpable process's belong to its own user); answered,
/// it lists the bundle as always.
#[test]
fn vault_is_not_dumpable() {
    let Some(dir) = as_nobody() else { return };
    let d = dir.path();
    let mut cmd = Command::new(vault_bin());
    cmd.current_dir(d)
        .args(["inspect", "b.bundle", "-p"])
        .uid(NOBODY)
        .gid(NOBODY)
        .env("HOME", d);
    let mut s = Session::spawn(cmd).expect("spawn in a pty");
    s.set_expect_timeout(Some(Duration::from_secs(120)));
    s.expect("Passphrase for").unwrap();
    let pid = s.get_process().pid().as_raw();
    let status = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&status).unwrap();
    let uid_line = text.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(uid_line.contains(&NOBODY.to_string()), "{uid_line}");
    let owner = std::fs::metadata(&status).unwrap().uid();
    assert_eq!(
        owner, 0,
        "{status} belongs to uid {owner}: the process is dumpable"
    );
    assert!(core_limit(pid).contains(" 0 "), "{}", core_limit(pid));
    s.send_line("old passphrase").unwrap();
    let listed = String::from_utf8_lossy(s.expect(Eof).unwrap().as_bytes()).into_owned();
    assert!(listed.contains("/etc/ssh/ssh_host_ed25519_key"), "{listed}");
    match s.get_process().wait().expect("wait") {
        WaitStatus::Exited(_, 0) => {}
        other => panic!("inspect failed: {other:?}: {listed}"),
    }
}

/// Under `strace` (a tracer that started vault keeps tracing it), as `nobody`: the commands
/// that read vault's own /proc/self files (the mount table for the `--root` check, the
/// executable for discovery) reach the same verdicts as without the tracer, and no /proc/self
/// access is refused.
#[test]
fn strace_still_traces_vault_and_proc_self_reads_work() {
    let Some(strace) = common::require_tool("strace") else {
        return;
    };
    let Some(dir) = as_nobody() else { return };
    let d = dir.path();
    let root = d.join("root");
    std::fs::create_dir(&root).unwrap();
    std::os::unix::fs::chown(&root, Some(NOBODY), Some(NOBODY)).unwrap();
    let root = root.to_string_lossy().into_owned();
    // unlock BUNDLE --root DIR: DIR is no mount point (read from /proc/self/mountinfo): exit 6.
    // unlock without BUNDLE: discovery (stat of /proc/self/exe), nothing found as nobody.
    let runs: [&[&str]; 2] = [
        &[
            "unlock",
            "b.bundle",
            "--root",
            &root,
            "--dry-run",
            "--passphrase-file",
            "pw",
        ],
        &[
            "unlock",
            "--root",
            &root,
            "--root-not-mountpoint",
            "--dry-run",
            "--passphrase-file",
            "pw",
        ],
    ];
    let mut seen_proc_self = 0;
    for (n, args) in runs.iter().enumerate() {
        let plain = Command::new(vault_bin())
            .current_dir(d)
            .args(*args)
            .uid(NOBODY)
            .gid(NOBODY)
            .output()
            .unwrap();
        let trace = d.join(format!("trace{n}"));
        let traced = Command::new(&strace)
            .current_dir(d)
            .args(["-f", "-qq", "-e", "trace=%file", "-o"])
            .arg(&trace)
            .arg(vault_bin())
            .args(*args)
            .uid(NOBODY)
            .gid(NOBODY)
            .output()
            .unwrap();
        assert_eq!(
            plain.status.code(),
            traced.status.code(),
            "{args:?}: {}\n---\n{}",
            String::from_utf8_lossy(&plain.stderr),
            String::from_utf8_lossy(&traced.stderr)
        );
        assert_eq!(plain.stderr, traced.stderr, "{args:?}");
        let lines = std::fs::read_to_string(&trace).unwrap();
        for l in lines.lines().filter(|l| l.contains("/proc/self")) {
            seen_proc_self += 1;
            assert!(
                !l.contains("EACCES") && !l.contains("EPERM"),
                "{args:?}: {l}"
            );
        }
    }
    assert!(seen_proc_self >= 2, "no /proc/self access was traced");
}
