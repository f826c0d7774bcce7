//! The installer module's vault-unlock script, as NixOS would run it, run for real: rendered
//! through the stand-in NixOS (nix/tests/eval-module.nix), then executed by bash with a fake
//! `vault` (a small script) in place of the package, through a pipe and through a pty. What is
//! checked is what the user sees and types: the arguments vault receives, the console, the
//! journal (the script's standard error), and that every printed hint works as typed.
mod common;
#[path = "nix_files/support.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use expectrl::{Eof, Session};
use support::{nix_eval, repo};

/// A scratch folder with a [`fake_vault`] in `mode`; None (skip) without nix-instantiate.
fn with_fake_vault(mode: &str) -> Option<tempfile::TempDir> {
    common::require_tool("nix-instantiate")?;
    let dir = tempfile::tempdir().unwrap();
    fake_vault(dir.path(), mode);
    Some(dir)
}

/// What the script wrote to its standard error, the journal.
fn read_journal(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("journal")).unwrap()
}

/// Asserts that `text` contains every one of `needles`.
fn contains_all(text: &str, needles: &[&str]) {
    for needle in needles {
        assert!(text.contains(needle), "{needle:?} not in:\n{text}");
    }
}

/// A fake vault at `dir/bin/vault`. It records its argv in `dir/argv`, then, by `dir/mode`:
/// `ok` succeeds, `ask` asks for a passphrase on /dev/tty (right: "right"), `hang` waits for
/// input for ever, `fail` fails as after three wrong passphrases.
fn fake_vault(dir: &Path, mode: &str) {
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    let script = r#"#!/bin/bash
d=$(dirname "$0")/..
printf '%s\n' "$@" > "$d/argv"
case $(cat "$d/mode") in
ok) echo "vault: placed 1 file"; exit 0 ;;
ask)
    printf 'Passphrase: ' > /dev/tty
    IFS= read -rs pw < /dev/tty
    printf '\n' > /dev/tty
    if [ "$pw" = right ]; then echo "vault: placed 1 file"; exit 0; fi
    echo "vault: wrong passphrase (after 1 try)" >&2
    exit 3 ;;
hang) read -r _ < /dev/tty; exit 0 ;;
fail) echo "vault: wrong passphrase (after 3 tries)" >&2; exit 3 ;;
esac
"#;
    let bin = dir.join("bin/vault");
    std::fs::write(&bin, script).unwrap();
    std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(dir.join("mode"), mode).unwrap();
}

/// The scripts of eval-module.nix's scenarios, with vault at `vault_out` and coreutils and
/// util-linux (`timeout`, `mountpoint`) from /usr.
fn scripts(vault_out: &Path) -> BTreeMap<String, String> {
    eval_attr(vault_out, "scripts")
}

/// An attribute of eval-module.nix's result, as JSON.
fn eval_attr<T: serde::de::DeserializeOwned>(vault_out: &Path, attr: &str) -> T {
    let store = tempfile::tempdir().unwrap();
    let vault_out = serde_json::to_string(&vault_out.to_str().unwrap()).unwrap();
    let o = nix_eval(
        &repo(),
        &store.path().join("store"),
        &format!("(import ./nix/tests/eval-module.nix {{ vaultOut = {vault_out}; toolsOut = \"/usr\"; }}).{attr}"),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let _ = Command::new("chmod")
        .args(["-R", "u+w"])
        .arg(store.path())
        .status();
    serde_json::from_slice(&o.stdout).unwrap()
}

struct Run {
    code: i32,
    console: String,
    journal: String,
}

/// Runs `script` as systemd would (no terminal here), standard error to a file standing in for
/// the journal. `strict`: with nounset and pipefail too (systemd.enableStrictShellChecks).
fn run(dir: &Path, script: &str, strict: bool) -> Run {
    let file = dir.join("script");
    let text = if strict {
        script.replacen("set -e\n", "set -euo pipefail\n", 1)
    } else {
        script.to_string()
    };
    std::fs::write(&file, text).unwrap();
    let journal = dir.join("journal");
    let o = Command::new("bash")
        .arg(&file)
        .env("RUNTIME_DIRECTORY", runtime_dir(dir))
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(&journal).unwrap())
        .output()
        .unwrap();
    Run {
        code: o.status.code().unwrap_or(-1),
        console: String::from_utf8_lossy(&o.stdout).into_owned(),
        journal: std::fs::read_to_string(&journal).unwrap(),
    }
}

fn argv(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("argv"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The first hint `sudo vault SUB …` in `text` (up to the end of its line), run through bash
/// with `sudo` standing in as a function: the words vault would get when the user types it.
fn hint_args(text: &str, sub: &str) -> Vec<String> {
    let needle = format!("sudo vault {sub}");
    let line = text
        .lines()
        .find_map(|l| l.find(&needle).map(|i| &l[i..]))
        .unwrap_or_else(|| panic!("no `{needle}` hint in:\n{text}"));
    let o = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "sudo() {{ [ \"$1\" = vault ] || exit 9; shift; printf '%s\\n' \"$@\"; }}; {line}"
        ))
        .output()
        .unwrap();
    assert!(o.status.success(), "hint `{line}` does not run");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn the_rendered_command_gives_vault_exactly_the_configured_arguments() {
    let Some(dir) = with_fake_vault("ok") else {
        return;
    };
    let d = dir.path();
    let s = scripts(d);
    for (scenario, want, next) in [
        (
            "default",
            strs(&["unlock", "--stage", "disk"]),
            Some(strs(&["place", "--root", "/mnt"])),
        ),
        (
            "host-and-bundle",
            strs(&[
                "unlock",
                "--stage",
                "disk",
                "--host",
                "it's me",
                "/iso/my bundle;$(x)\\n",
            ]),
            Some(strs(&["place", "--root", "/mnt"])),
        ),
        (
            "stage-all",
            strs(&["unlock", "--root", "/", "--host", "laptop"]),
            None,
        ),
    ] {
        for strict in [false, true] {
            let r = run(d, &s[scenario], strict);
            assert_eq!(r.code, 0, "{scenario}: {}{}", r.console, r.journal);
            assert_eq!(argv(d), want, "{scenario}");
            // The retry hint, announced first, gives vault the same arguments.
            assert_eq!(hint_args(&r.console, "unlock"), want, "{scenario}");
            if let Some(next) = &next {
                assert_eq!(&hint_args(&r.console, "place"), next, "{scenario}");
                assert!(
                    r.journal.contains("disk-stage files are in place"),
                    "{scenario}"
                );
            } else {
                assert!(r.journal.contains("every file is in place under /"));
            }
            assert!(r.console.contains("vault: placed 1 file"), "{}", r.console);
        }
    }
}

#[test]
fn stage_all_with_the_target_not_mounted_asks_nothing_and_says_what_to_do() {
    let Some(dir) = with_fake_vault("ok") else {
        return;
    };
    let d = dir.path();
    let r = run(d, &scripts(d)["stage-all-unmounted"], false);
    assert_eq!(r.code, 0, "{}", r.console);
    assert!(!d.join("argv").exists(), "vault ran");
    assert!(
        r.console.contains("/nonexistent/target dir is not mounted"),
        "{}",
        r.console
    );
    assert_eq!(
        hint_args(&r.console, "unlock"),
        strs(&["unlock", "--root", "/nonexistent/target dir"])
    );
    assert!(r.journal.contains("is not mounted"), "{}", r.journal);
}

/// systemd's RuntimeDirectory= for the unit (/run/vault-unlock on the installer).
fn runtime_dir(dir: &Path) -> PathBuf {
    let run = dir.join("run");
    std::fs::create_dir_all(&run).unwrap();
    run
}

fn pty(dir: &Path, script: &str) -> Session {
    std::fs::write(dir.join("script"), script).unwrap();
    let mut c = Command::new("bash");
    c.env("RUNTIME_DIRECTORY", runtime_dir(dir));
    c.arg("-c").arg(format!(
        "exec bash {} 2>{}",
        dir.join("script").display(),
        dir.join("journal").display()
    ));
    common::pty::session(c)
}

#[test]
fn on_a_terminal_a_wrong_passphrase_ends_with_the_sudo_hint_on_the_console_and_in_the_journal() {
    let Some(dir) = with_fake_vault("ask") else {
        return;
    };
    let d = dir.path();
    let script = scripts(d)["default"].clone();

    let mut s = pty(d, &script);
    s.expect("Passphrase: ").unwrap();
    s.send_line("hunter2-wrong").unwrap();
    s.expect("vault: wrong passphrase").unwrap();
    s.expect("exit code 3").unwrap();
    s.expect("sudo vault unlock --stage disk").unwrap();
    s.expect(Eof).unwrap();
    assert_eq!(common::pty::exit_code(&mut s), 3);
    let journal = read_journal(d);
    contains_all(
        &journal,
        &[
            "vault: wrong passphrase",
            "exit code 3",
            "sudo vault unlock --stage disk",
        ],
    );
    assert!(
        !journal.contains("hunter2"),
        "the passphrase reached the journal"
    );

    let mut s = pty(d, &script);
    s.expect("Passphrase: ").unwrap();
    s.send_line("right").unwrap();
    s.expect("sudo vault place --root /mnt").unwrap();
    s.expect(Eof).unwrap();
    assert_eq!(common::pty::exit_code(&mut s), 0);
    let journal = read_journal(d);
    contains_all(&journal, &["disk-stage files are in place"]);
    assert!(
        !journal.contains("right"),
        "the passphrase reached the journal"
    );
}

#[test]
fn with_no_answer_the_prompt_gives_up_after_the_timeout_with_the_hint() {
    let Some(dir) = with_fake_vault("hang") else {
        return;
    };
    let d = dir.path();
    let mut s = pty(d, &scripts(d)["short-timeout"]);
    s.expect("no passphrase within 1 seconds").unwrap();
    s.expect("sudo vault unlock --stage disk").unwrap();
    s.expect(Eof).unwrap();
    assert_eq!(common::pty::exit_code(&mut s), 0);
    contains_all(&read_journal(d), &["no passphrase within 1 seconds"]);
}

/// vault's own hints for live-system commands: with `sudo` when the reader is not in a root
/// shell of their own (run from a unit, as on the installer console, or under sudo).
#[test]
fn vault_hints_say_sudo_when_run_from_a_unit_or_under_sudo() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("staging");
    std::fs::create_dir(&empty).unwrap();
    let place = |env: &[(&str, &str)]| {
        // On PATH, as on the installer: the hints then name it `vault`.
        let bin_dir = common::vault_bin().parent().unwrap().to_path_buf();
        let path = std::env::join_paths(std::iter::once(bin_dir).chain(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        )))
        .unwrap();
        let mut c = Command::new(common::vault_bin());
        c.args(["place", "--root-not-mountpoint", "--root"])
            .arg(dir.path())
            .arg("--staging-dir")
            .arg(&empty)
            .env("PATH", path)
            .env_remove("SUDO_USER")
            .env_remove("INVOCATION_ID");
        for (k, v) in env {
            c.env(k, v);
        }
        let o = c.output().unwrap();
        assert!(!o.status.success());
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    for env in [[("INVOCATION_ID", "0123")], [("SUDO_USER", "nixos")]] {
        let err = place(&env);
        assert!(
            err.contains("`sudo vault unlock --stage disk`"),
            "{env:?}: {err}"
        );
    }
    let err = place(&[]);
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false);
    assert_eq!(
        err.contains("`sudo vault unlock --stage disk`"),
        !is_root,
        "{err}"
    );
}

/// As the installer's console user (not root), a live-system command that is refused for
/// lack of permission says to use sudo.
#[test]
fn as_a_normal_user_permission_errors_say_sudo() {
    let Some(runuser) = common::require_tool("runuser") else {
        return;
    };
    if !rustix::process::geteuid().is_root() {
        eprintln!("SKIP: needs root to run vault as another user");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let bundle = dir.path().join("b.bundle");
    std::fs::write(&bundle, "x").unwrap();
    // Readable by root only, like a device node.
    std::fs::set_permissions(&bundle, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let staging = dir.path().join("staging");
    std::fs::create_dir(&staging).unwrap();
    for args in [
        vec![
            "unlock".into(),
            "--root-not-mountpoint".into(),
            "--root".into(),
            dir.path().display().to_string(),
            bundle.display().to_string(),
        ],
        vec![
            "unlock".into(),
            "--stage".into(),
            "disk".into(),
            "--staging-dir".into(),
            staging.join("area").display().to_string(),
            "x".into(),
        ],
    ] {
        let o = std::process::Command::new(&runuser)
            .args(["-u", "nobody", "--"])
            .arg(common::vault_bin())
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?}: {err}");
        assert!(err.contains("sudo"), "{args:?}: {err}");
    }
}

/// The console's getty disallocates it when it starts (TTYVTDisallocate=yes in getty@ and
/// autovt@), wiping what the unit printed there. The result is kept in the unit's runtime
/// directory, which /etc/issue.d/vault-unlock.issue links to: the real agetty shows it above
/// the login prompt, and the login shell of that console prints it after the login.
#[test]
fn the_result_is_still_on_the_console_after_the_getty_clears_it() {
    let Some(dir) = with_fake_vault("ok") else {
        return;
    };
    let d = dir.path();
    let r = run(d, &scripts(d)["default"], true);
    assert_eq!(r.code, 0, "{}{}", r.console, r.journal);
    let result = runtime_dir(d).join("result");
    let kept = std::fs::read_to_string(&result).unwrap();
    assert!(kept.contains("disk-stage files are in place"), "{kept}");
    assert_eq!(
        hint_args(&kept, "place"),
        strs(&["place", "--root", "/mnt"])
    );
    // A failure is kept too (and replaces the last result), a bundle path with a backslash
    // as it is.
    fake_vault(d, "fail");
    let r = run(d, &scripts(d)["host-and-bundle"], false);
    assert_eq!(r.code, 3);
    let kept = std::fs::read_to_string(&result).unwrap();
    assert!(kept.contains("exit code"), "{kept}");
    assert!(!kept.contains("disk-stage files are in place"), "{kept}");
    // Shown long after the console was cleared (and after a later `sudo vault unlock` by
    // hand): it says that it is the boot's result and where vault's own messages are.
    assert!(
        kept.starts_with("vault-unlock.service at boot:\n"),
        "{kept}"
    );
    contains_all(&kept, &["journalctl -u vault-unlock"]);
    let retry = strs(&[
        "unlock",
        "--stage",
        "disk",
        "--host",
        "it's me",
        "/iso/my bundle;$(x)\\n",
    ]);
    assert_eq!(hint_args(&kept, "unlock"), retry);
    let issue = runtime_dir(d).join("issue");

    // After the login: the login shell's hook, on the unit's console (NixOS's
    // /run/vault-unlock/issue replaced by this test's file).
    let hook: String = eval_attr(d, "loginShellInit");
    let hook = hook.replace("/run/vault-unlock/result", result.to_str().unwrap());
    for (tty, shown) in [("/dev/tty1", true), ("/dev/pts/3", false)] {
        let o = Command::new("bash")
            .arg("-c")
            .arg(format!("tty() {{ echo {tty}; }}\n{hook}"))
            .output()
            .unwrap();
        assert!(o.status.success());
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).contains("To try again, run:"),
            shown,
            "{tty}"
        );
    }

    // Before it: agetty shows /etc/issue.d/*.issue after /etc/issue (in a mount namespace of
    // its own, with a tmpfs on /etc laid out as NixOS does it).
    let (Some(agetty), Some(unshare), Some(script)) = (
        common::require_tool("agetty"),
        common::require_tool("unshare"),
        common::require_tool("script"),
    ) else {
        return;
    };
    if !rustix::process::geteuid().is_root() {
        eprintln!("SKIP: agetty in a mount namespace needs root");
        return;
    }
    let inner = format!(
        "mount -t tmpfs vault-test /etc && printf 'Welcome\\n' > /etc/issue && mkdir /etc/issue.d && ln -s {} /etc/issue.d/vault-unlock.issue && {} --show-issue",
        issue.display(),
        agetty.display()
    );
    let o = Command::new(script)
        .args(["-qec"])
        .arg(format!(
            "{} -m sh -c {}",
            unshare.display(),
            shell_quote(&inner)
        ))
        .arg("/dev/null")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&o.stdout).replace('\r', "");
    assert!(o.status.success(), "{shown}");
    contains_all(&shown, &["Welcome", "To try again, run:"]);
    // agetty reads backslashes as escapes: the issue file doubles them, so the hint shown is
    // the one that works.
    assert_eq!(hint_args(&shown, "unlock"), retry, "{shown}");
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// With systemd.enableStrictShellChecks, NixOS builds the script with writeShellApplication,
/// which runs shellcheck on it: host names and paths holding ' or $( must not fail it.
#[test]
fn strict_shell_checks_pass_shellcheck() {
    let (Some(_), Some(shellcheck)) = (
        common::require_tool("nix-instantiate"),
        common::require_tool("shellcheck"),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let strict: BTreeMap<String, String> = eval_attr(dir.path(), "strictScripts");
    assert!(
        strict["host-and-bundle"].contains("'\\''"),
        "the scenario lost its quote"
    );
    for (scenario, text) in &strict {
        assert!(text.contains("set -o nounset\n"), "{scenario}");
        let file = dir.path().join(format!("{scenario}.sh"));
        std::fs::write(&file, text).unwrap();
        let o = Command::new(&shellcheck).arg(&file).output().unwrap();
        assert!(
            o.status.success(),
            "{scenario}: {}",
            String::from_utf8_lossy(&o.stdout)
        );
    }
}
