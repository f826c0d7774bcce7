//! Hardware-key identities and recipients through a real age plugin: `age-plugin-vaulttest`
//! (tests/plugin, built with the `age-plugin` crate) holds a key, asks a PIN through the
//! plugin protocol, and counts its sessions and PIN requests in a file. vault answers the PIN
//! prompt on a real pseudo-terminal. Proves: a rekey of 500 agenix files asks the PIN once,
//! with an identity file and with `-j NAME`; the results open with the real `age` and `rage`
//! (through the same plugin); a plugin failing half way changes no byte; a missing plugin
//! program is one clear error naming it, and changes no byte.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use common::repo::SecretsRepo;
use common::{assert_same, snapshot, text};
use expectrl::{Eof, Session};

const PIN: &str = "4242";
const SEED: &str = "the key on the keychain";

/// The folder holding `age-plugin-vaulttest`, built once per test run (its own target folder:
/// the outer `cargo test` holds the lock of the main one).
fn plugin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let target = root.join("target/test-plugin");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let o = Command::new(cargo)
            .args(["build", "--quiet", "--locked", "--manifest-path"])
            .arg(root.join("tests/plugin/Cargo.toml"))
            .arg("--target-dir")
            .arg(&target)
            .output()
            .expect("run cargo");
        assert!(
            o.status.success(),
            "building tests/plugin failed:\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        target.join("debug")
    })
}

struct Repo {
    repo: SecretsRepo,
    counter: PathBuf,
    /// The plugin recipient (`age1vaulttest1…`).
    yk: String,
    age: PathBuf,
    rage: PathBuf,
}

impl std::ops::Deref for Repo {
    type Target = SecretsRepo;
    fn deref(&self) -> &SecretsRepo {
        &self.repo
    }
}

/// PATH with the plugin first (or without it).
fn path_with(plugin: bool) -> std::ffi::OsString {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if plugin {
        dirs.push(plugin_dir().to_path_buf());
    }
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(dirs).unwrap()
}

impl Repo {
    fn cmd(&self, program: &Path, plugin: bool) -> Command {
        let mut c = self.command(program);
        c.env("PATH", path_with(plugin))
            .env("VAULTTEST_COUNTER", &self.counter)
            .env("VAULTTEST_PIN", PIN)
            .env("VAULTTEST_DEFAULT_SEED", SEED);
        c
    }

    /// vault without a terminal: a PIN request fails (no TTY, no answering agent).
    fn vault(&self, args: &[&str], plugin: bool) -> Output {
        let mut c = self.cmd(&common::vault_bin(), plugin);
        c.args(args).output().unwrap()
    }

    /// vault on a pseudo-terminal, answering every PIN prompt; returns (exit code, prompts).
    fn vault_pty(&self, args: &[&str]) -> (i32, usize) {
        let mut c = self.cmd(&common::vault_bin(), true);
        c.args(args);
        let mut s = Session::spawn(c).expect("spawn in a pty");
        s.set_expect_timeout(Some(Duration::from_secs(600)));
        let mut prompts = 0;
        loop {
            match s.expect(expectrl::Regex(
                "PIN of the vaulttest key|rekeyed \\d+ secret files|nothing to do|error",
            )) {
                Ok(m) if String::from_utf8_lossy(m.as_bytes()).contains("PIN") => {
                    prompts += 1;
                    s.send_line(PIN).unwrap();
                }
                Ok(_) => break,
                Err(e) => panic!("vault on the pty: {e}"),
            }
        }
        let _ = s.expect(Eof);
        let code = match s.get_process().wait().expect("wait") {
            expectrl::WaitStatus::Exited(_, code) => code,
            other => panic!("vault did not exit normally: {other:?}"),
        };
        (code, prompts)
    }

    /// The counter lines of this kind (`identity-session`, `pin`, `recipient-session`).
    fn count(&self, kind: &str) -> usize {
        std::fs::read_to_string(&self.counter)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.split_whitespace().next() == Some(kind))
            .count()
    }

    fn reset_counter(&self) {
        let _ = std::fs::remove_file(&self.counter);
    }

    fn rules(&self, n: usize, keys: &str) {
        std::fs::write(
            self.secrets.join("secrets.nix"),
            format!(
                "let yk = \"{}\"; host = \"{}\"; admin = \"{}\"; in\n\
                 builtins.listToAttrs (builtins.genList (i: {{ name = \"s${{toString i}}.age\"; \
                 value.publicKeys = [ {keys} ]; }}) {n})\n",
                self.yk, self.host, self.admin
            ),
        )
        .unwrap();
    }
}

/// `n` agenix files, encrypted to the admin's X25519 key, whose rules name the admin.
fn setup(n: usize) -> Option<Repo> {
    let (Some(age), Some(rage), Some(_)) = (
        common::require_tool("age"),
        common::require_tool("rage"),
        common::require_tool("nix-instantiate"),
    ) else {
        return None;
    };
    let repo = SecretsRepo::new();
    let (root, secrets) = (repo.root.clone(), repo.secrets.clone());
    // The plugin's identity file, as `age-plugin-yubikey --identity` prints one.
    let o = Command::new(plugin_dir().join("age-plugin-vaulttest"))
        .args(["--keygen", SEED])
        .output()
        .unwrap();
    assert!(o.status.success());
    let idfile = String::from_utf8(o.stdout).unwrap();
    std::fs::write(root.join("yk.txt"), &idfile).unwrap();
    let yk = idfile
        .lines()
        .find_map(|l| l.strip_prefix("# recipient: "))
        .unwrap()
        .to_string();
    assert!(yk.starts_with("age1vaulttest1"), "{yk}");
    let to = [vault::keys::age::recipients::parse(&repo.admin).unwrap()];
    for i in 0..n {
        let bytes =
            vault::keys::age::crypt::encrypt(format!("secret {i}\n").as_bytes(), &to, false)
                .unwrap();
        std::fs::write(secrets.join(format!("s{i}.age")), bytes).unwrap();
    }
    repo.agenix_manifest();
    let r = Repo {
        repo,
        counter: root.join("counter"),
        yk,
        age,
        rage,
    };
    r.rules(n, "admin");
    Some(r)
}

/// Moves the files to the plugin recipient alone, with the admin's key (no PIN: wrapping).
fn to_hardware_key(r: &Repo, n: usize) {
    r.rules(n, "yk");
    let o = r.vault(&["rekey", "-i", "admin.txt"], true);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(r.count("recipient-session"), n, "one wrap per file");
    assert_eq!(r.count("identity-session"), 0);
    assert_eq!(r.count("pin"), 0);
    r.reset_counter();
}

fn decrypt_with(r: &Repo, tool: &Path, key: &str, file: &Path) -> Result<Vec<u8>, String> {
    let mut c = r.cmd(tool, true);
    c.env("VAULTTEST_NO_PIN", "1")
        .args(["-d", "-i"])
        .arg(r.root.join(key))
        .arg(file);
    common::stdout_or_stderr(&mut c)
}

#[test]
fn five_hundred_files_one_pin() {
    const N: usize = 500;
    let Some(r) = setup(N) else { return };
    to_hardware_key(&r, N);

    // A new host joins: every file must be opened with the hardware key.
    r.rules(N, "yk host");
    let (code, prompts) = r.vault_pty(&["rekey", "-i", "yk.txt"]);
    assert_eq!(code, 0);
    assert_eq!(prompts, 1, "the PIN is asked once");
    assert_eq!(
        r.count("identity-session"),
        1,
        "one plugin session for all files"
    );
    assert_eq!(r.count("pin"), 1);
    let lines = std::fs::read_to_string(&r.counter).unwrap();
    assert!(
        lines.contains(&format!("identity-session files={N}")),
        "{lines}"
    );

    // Open with the real age and rage, through the same plugin, and with the host's key.
    for i in [0, 1, 250, N - 1] {
        let f = r.secrets.join(format!("s{i}.age"));
        let want = format!("secret {i}\n").into_bytes();
        for tool in [&r.age, &r.rage] {
            assert_eq!(
                decrypt_with(&r, tool, "yk.txt", &f).unwrap(),
                want,
                "{tool:?} yk s{i}"
            );
            assert_eq!(
                decrypt_with(&r, tool, "host.txt", &f).unwrap(),
                want,
                "{tool:?} host s{i}"
            );
        }
    }

    // -j NAME (the plugin's default identity, as `age -j`; -j 1 stays the worker count): the
    // rekey record of every file
    // is verified with one session and one PIN, and nothing changes.
    r.reset_counter();
    let before = snapshot(&r.secrets);
    let (code, prompts) = r.vault_pty(&["rekey", "-j", "vaulttest", "-j", "1"]);
    assert_eq!(code, 0);
    assert_eq!(prompts, 1);
    assert_eq!(r.count("identity-session"), 1);
    assert_same(&snapshot(&r.secrets), &before, "an up-to-date repo changed");
}

#[test]
fn a_plugin_failing_half_way_changes_nothing() {
    const N: usize = 20;
    let Some(r) = setup(N) else { return };
    to_hardware_key(&r, N);
    r.rules(N, "yk host");
    let before = snapshot(&r.secrets);
    let mut c = r.cmd(&common::vault_bin(), true);
    c.env("VAULTTEST_FAIL_AFTER", "10")
        .env("VAULTTEST_NO_PIN", "1")
        .args(["rekey", "-i", "yk.txt"]);
    let o = c.output().unwrap();
    assert!(!o.status.success());
    let t = text(&o);
    assert!(t.contains("age-plugin-vaulttest"), "{t}");
    assert!(t.contains("unplugged"), "{t}");
    assert!(t.contains("nothing was changed"), "{t}");
    assert_eq!(r.count("identity-session"), 1, "no retry per file");
    assert_same(
        &snapshot(&r.secrets),
        &before,
        "a failed plugin changed files",
    );

    // A wrong PIN, typed on the terminal: the same.
    let mut c = r.cmd(&common::vault_bin(), true);
    c.args(["rekey", "-i", "yk.txt"]);
    let mut s = Session::spawn(c).expect("spawn in a pty");
    s.set_expect_timeout(Some(Duration::from_secs(120)));
    s.expect("PIN of the vaulttest key").unwrap();
    s.send_line("0000").unwrap();
    s.expect("wrong PIN").unwrap();
    let _ = s.expect(Eof);
    assert_same(&snapshot(&r.secrets), &before, "a wrong PIN changed files");
}

#[test]
fn a_missing_plugin_program_is_named_and_nothing_changes() {
    const N: usize = 3;
    let Some(r) = setup(N) else { return };
    to_hardware_key(&r, N);
    r.rules(N, "yk host");
    let before = snapshot(&r.secrets);

    // The identity's plugin is missing.
    let o = r.vault(&["rekey", "-i", "yk.txt"], false);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(t.contains("age-plugin-vaulttest"), "{t}");
    assert!(t.contains("yk.txt"), "{t}");
    assert!(t.contains("not on PATH"), "{t}");
    // So is --plugin's.
    let o = r.vault(&["rekey", "--plugin", "vaulttest"], false);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("install age-plugin-vaulttest"),
        "{}",
        text(&o)
    );
    assert_same(&snapshot(&r.secrets), &before, "changed without the plugin");

    // A recipient's plugin is missing: one error naming the program, the recipient and a
    // file that needs it, before anything is decrypted.
    std::fs::write(
        r.secrets.join("s0.age"),
        vault::keys::age::crypt::encrypt(
            b"x",
            &[vault::keys::age::recipients::parse(&r.host).unwrap()],
            false,
        )
        .unwrap(),
    )
    .unwrap();
    let before = snapshot(&r.secrets);
    let o = r.vault(&["rekey", "-i", "host.txt"], false);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(t.contains("age-plugin-vaulttest"), "{t}");
    assert!(t.contains(&r.yk), "{t}");
    assert!(t.contains("s0.age"), "{t}");
    assert_same(&snapshot(&r.secrets), &before, "changed without the plugin");
}

#[test]
fn a_mixed_identity_file_asks_the_plugin_only_for_what_needs_it() {
    const N: usize = 4;
    let Some(r) = setup(N) else { return };
    // One file with the admin's X25519 key and the plugin identity.
    let mut mixed = std::fs::read_to_string(r.root.join("admin.txt")).unwrap();
    mixed.push_str(&std::fs::read_to_string(r.root.join("yk.txt")).unwrap());
    let mut f = std::fs::File::create(r.root.join("mixed.txt")).unwrap();
    f.write_all(mixed.as_bytes()).unwrap();

    // The admin's key opens every file: no plugin session, no PIN.
    r.rules(N, "admin yk");
    let o = r.vault(&["rekey", "-i", "mixed.txt"], true);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(r.count("identity-session"), 0);
    assert_eq!(r.count("pin"), 0);

    // Files only the hardware key opens: one session, one PIN.
    r.rules(N, "yk");
    let o = r.vault(&["rekey", "-i", "mixed.txt"], true);
    assert!(o.status.success(), "{}", text(&o));
    r.reset_counter();
    r.rules(N, "yk host");
    let (code, prompts) = r.vault_pty(&["rekey", "-i", "mixed.txt"]);
    assert_eq!((code, prompts), (0, 1));
    assert_eq!(r.count("identity-session"), 1);
    for i in 0..N {
        let f = r.secrets.join(format!("s{i}.age"));
        assert_eq!(
            decrypt_with(&r, &r.age, "host.txt", &f).unwrap(),
            format!("secret {i}\n").into_bytes()
        );
    }
}

#[test]
fn sops_files_with_a_hardware_key_ask_the_pin_once() {
    const N: usize = 20;
    let Some(r) = setup(0) else { return };
    let Some(sops) = common::require_tool("sops") else {
        return;
    };
    let dir = r.root.join("repo");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(r.root.join("plain.yaml"), "password: hunter2\n").unwrap();
    for i in 0..N {
        let o = Command::new(&sops)
            .args([
                "-e",
                "--age",
                &r.admin,
                "--input-type",
                "yaml",
                "--output-type",
                "yaml",
            ])
            .arg(r.root.join("plain.yaml"))
            .current_dir(&r.root)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        std::fs::write(dir.join(format!("s{i}.yaml")), o.stdout).unwrap();
    }
    let rule = |keys: &str| {
        let list: String = keys.split(',').map(|k| format!("      - {k}\n")).collect();
        std::fs::write(
            dir.join(".sops.yaml"),
            format!("creation_rules:\n  - path_regex: .*\\.yaml$\n    age:\n{list}"),
        )
        .unwrap();
    };
    std::fs::write(
        r.root.join("vault.toml"),
        "version = 1\n\n[secrets]\nsops_config = \"repo/.sops.yaml\"\n",
    )
    .unwrap();

    // To the hardware key alone, with the admin's key: wrapping asks nothing.
    rule(&r.yk);
    let o = r.vault(&["rekey", "-i", "admin.txt"], true);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(r.count("recipient-session"), N);
    assert_eq!(r.count("pin"), 0);
    r.reset_counter();

    // A host joins: every data key is opened through one session.
    rule(&format!("{},{}", r.yk, r.host));
    let (code, prompts) = r.vault_pty(&["rekey", "-i", "yk.txt"]);
    assert_eq!((code, prompts), (0, 1));
    assert_eq!(r.count("identity-session"), 1);
    assert_eq!(r.count("pin"), 1);

    // `vault host add` next to a hardware-key recipient needs no key; the rekey after it asks
    // the PIN once more, for all files.
    let o = r.vault(&["host", "add", "server2"], false);
    assert!(o.status.success(), "{}", text(&o));
    let rules = std::fs::read_to_string(dir.join(".sops.yaml")).unwrap();
    assert!(
        rules.contains(&r.yk) && rules.contains("server2"),
        "{rules}"
    );
    r.reset_counter();
    let (code, prompts) = r.vault_pty(&["rekey", "-i", "yk.txt"]);
    assert_eq!((code, prompts), (0, 1));
    assert_eq!(r.count("identity-session"), 1);
    let o = r.vault(
        &["keys", "convert", "hosts/server2/ssh_host_ed25519_key"],
        false,
    );
    assert!(o.status.success(), "{}", text(&o));
    std::fs::write(r.root.join("server2.txt"), &o.stdout).unwrap();

    // The real sops opens them with either host's key.
    for (i, key) in [(0, "host.txt"), (N - 1, "host.txt"), (1, "server2.txt")] {
        let o = Command::new(&sops)
            .arg("-d")
            .arg(dir.join(format!("s{i}.yaml")))
            .env("SOPS_AGE_KEY_FILE", r.root.join(key))
            .env_remove("SOPS_AGE_KEY")
            .env("HOME", r.root.join("home"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        assert_eq!(String::from_utf8_lossy(&o.stdout), "password: hunter2\n");
    }
}

/// The `[Ask]` fields of the pending systemd-ask-password question with this id.
fn wait_for_question(id: &str) -> std::collections::HashMap<String, String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        for e in std::fs::read_dir("/run/systemd/ask-password")
            .into_iter()
            .flatten()
            .flatten()
        {
            if !e.file_name().to_string_lossy().starts_with("ask.") {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(e.path()) else {
                continue;
            };
            let fields: std::collections::HashMap<String, String> = text
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            if fields.get("Id").map(String::as_str) == Some(id) {
                return fields;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no question with Id={id} was asked"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn without_a_terminal_the_pin_goes_through_systemd_ask_password() {
    const N: usize = 5;
    if common::require_tool("systemd-ask-password").is_none() {
        return;
    }
    if !rustix::process::geteuid().is_root() {
        eprintln!("SKIP: answering systemd-ask-password needs root");
        return;
    }
    let Some(r) = setup(N) else { return };
    to_hardware_key(&r, N);
    r.rules(N, "yk host");
    let mut c = r.cmd(&common::vault_bin(), true);
    c.args(["rekey", "-i", "yk.txt"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    common::without_terminal(&mut c);
    let child = c.spawn().unwrap();
    let fields = wait_for_question("vault:plugin");
    assert!(
        fields["Message"].contains("PIN of the vaulttest key"),
        "{fields:?}"
    );
    assert_eq!(fields["Echo"], "0");
    std::os::unix::net::UnixDatagram::unbound()
        .unwrap()
        .send_to(format!("+{PIN}").as_bytes(), &fields["Socket"])
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("systemd-tty-ask-password-agent"),
        "{}",
        text(&o)
    );
    assert_eq!(r.count("identity-session"), 1);
    assert_eq!(r.count("pin"), 1);
    let f = r.secrets.join("s3.age");
    assert_eq!(
        decrypt_with(&r, &r.age, "host.txt", &f).unwrap(),
        b"secret 3\n".to_vec()
    );
}

/// A bundle's recovery recipient may be a hardware key: `pack --recovery-recipient
/// age1vaulttest1…` wraps through the plugin; `inspect -i` and `inspect -j NAME` open it with
/// one plugin session each; `repack -j NAME` gives a bundle that opens with the new
/// passphrase, still recoverable with the key.
#[test]
fn a_hardware_key_recovers_a_bundle() {
    let Some(r) = setup(0) else { return };
    std::fs::write(r.root.join("host_key"), "host key\n").unwrap();
    std::fs::write(
        r.root.join("bundle.toml"),
        "version = 1\n\n[hosts.box]\n\n[[hosts.box.entry]]\nsource = \"host_key\"\n\
         target = \"/etc/ssh/ssh_host_ed25519_key\"\nmode = \"0600\"\n",
    )
    .unwrap();
    std::fs::write(r.root.join("old-pw"), "old passphrase\n").unwrap();
    std::fs::write(r.root.join("new-pw"), "new passphrase\n").unwrap();
    let run = |args: &[&str]| {
        let mut c = r.cmd(&common::vault_bin(), true);
        // The test plugin then unwraps without asking (no terminal here).
        c.env("VAULTTEST_NO_PIN", "1").args(args);
        let o = c.output().unwrap();
        assert!(o.status.success(), "{args:?}: {}", text(&o));
        text(&o)
    };
    let mut pack = vec![
        "pack",
        "-m",
        "bundle.toml",
        "-o",
        "b.bundle",
        "--passphrase-file",
        "old-pw",
        "--recovery-recipient",
        &r.yk,
    ];
    pack.extend_from_slice(common::FAST_KDF);
    run(&pack);
    assert_eq!(r.count("recipient-session"), 1);
    r.reset_counter();

    for key in [&["-i", "yk.txt"][..], &["-j", "vaulttest"][..]] {
        let mut args = vec!["inspect", "b.bundle"];
        args.extend_from_slice(key);
        let listed = run(&args);
        assert!(listed.contains("/etc/ssh/ssh_host_ed25519_key"), "{listed}");
        assert!(listed.contains(&format!("recovery: {}", r.yk)), "{listed}");
        assert_eq!(r.count("identity-session"), 1, "{key:?}");
        r.reset_counter();
    }

    let mut repack = vec![
        "repack",
        "b.bundle",
        "-j",
        "vaulttest",
        "-o",
        "new.bundle",
        "--passphrase-file",
        "new-pw",
        "--recovery-recipient",
        &r.yk,
    ];
    repack.extend_from_slice(common::FAST_KDF);
    run(&repack);
    let listed = run(&["inspect", "new.bundle", "--passphrase-file", "new-pw"]);
    assert!(listed.contains("/etc/ssh/ssh_host_ed25519_key"), "{listed}");
    run(&["inspect", "new.bundle", "-i", "yk.txt"]);

    // A key that is not the recovery key: no stanza opens, exit 3, named.
    let mut c = r.cmd(&common::vault_bin(), true);
    c.env("VAULTTEST_NO_PIN", "1")
        .env("VAULTTEST_DEFAULT_SEED", "another key")
        .args(["inspect", "b.bundle", "-j", "vaulttest"]);
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("--plugin vaulttest"), "{}", text(&o));
}

/// An ed25519 key pair from the real `ssh-keygen` in the repo root: its public key line.
fn ssh_key(r: &Repo, name: &str) -> Option<String> {
    common::require_tool("ssh-keygen")?;
    let o = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "root@web1", "-f"])
        .arg(r.root.join(name))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let line = std::fs::read_to_string(r.root.join(format!("{name}.pub"))).unwrap();
    Some(line.trim().to_owned())
}

/// `n` rules listing exactly `keys`.
fn rules_of(r: &Repo, n: usize, keys: &[&str]) {
    let list: String = keys.iter().map(|k| format!("\"{k}\" ")).collect();
    std::fs::write(
        r.secrets.join("secrets.nix"),
        format!(
            "builtins.listToAttrs (builtins.genList (i: {{ name = \"s${{toString i}}.age\"; \
             value.publicKeys = [ {list}]; }}) {n})\n"
        ),
    )
    .unwrap();
}

/// A hardware key dropped from rules that keep only an SSH recipient (a lost YubiKey, an admin
/// who left): its stanza is one the rules do not name, so the files are stale — with the
/// host's key and without any identity — until rekeyed; afterwards the removed key no longer
/// opens them (the real `age`, through the plugin), the host's key does, and `--check` passes.
#[test]
fn a_removed_hardware_key_loses_access() {
    const N: usize = 2;
    let Some(r) = setup(N) else { return };
    let Some(host) = ssh_key(&r, "host_ssh") else {
        return;
    };
    rules_of(&r, N, &[&r.yk, &host]);
    let o = r.vault(&["rekey", "-i", "admin.txt"], true);
    assert!(o.status.success(), "{}", text(&o));
    let s0 = r.secrets.join("s0.age");
    assert_eq!(
        decrypt_with(&r, &r.age, "yk.txt", &s0).unwrap(),
        b"secret 0\n"
    );

    rules_of(&r, N, &[&host]);
    let before = snapshot(&r.secrets);
    for args in [
        &["rekey", "--check", "-i", "host_ssh"][..],
        &["rekey", "--check"][..],
        &["rekey", "--dry-run", "-i", "host_ssh"][..],
    ] {
        let o = r.vault(args, true);
        let t = text(&o);
        let want = if args.contains(&"--check") { 8 } else { 0 };
        assert_eq!(o.status.code(), Some(want), "{args:?}: {t}");
        assert!(t.contains("vaulttest"), "{args:?}: names the stanza: {t}");
        assert_eq!(t.matches("stale    agenix").count(), N, "{args:?}: {t}");
    }
    assert_same(&snapshot(&r.secrets), &before, "--check/--dry-run wrote");

    let o = r.vault(&["rekey", "-i", "host_ssh"], true);
    assert!(o.status.success(), "{}", text(&o));
    for i in 0..N {
        let f = r.secrets.join(format!("s{i}.age"));
        let e = decrypt_with(&r, &r.age, "yk.txt", &f);
        assert!(e.is_err(), "the removed key still opens s{i}");
        assert_eq!(
            common::run_decrypt(&r.age, &f, &r.root.join("host_ssh")).unwrap(),
            format!("secret {i}\n").into_bytes()
        );
    }
    let o = r.vault(&["rekey", "--check"], true);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

/// An empty entry in PATH (a leading or trailing `:`, `::`) or `.` would find
/// `age-plugin-vaulttest` in the current folder: in a secrets repo, the repo's own program,
/// run with the admin's keys. vault never runs it (its counter stays empty): the plugin is
/// "not on PATH", for a recipient and for `-j NAME`, and nothing changes.
#[test]
fn a_plugin_program_in_the_current_folder_never_runs() {
    let Some(r) = setup(1) else { return };
    std::fs::copy(
        plugin_dir().join("age-plugin-vaulttest"),
        r.root.join("age-plugin-vaulttest"),
    )
    .unwrap();
    r.rules(1, "yk");
    let before = snapshot(&r.secrets);
    let system = std::env::var("PATH").unwrap_or_default();
    for path in [
        format!(":{system}"),
        format!("{system}:"),
        format!("/nonexistent::{system}"),
        format!(".:{system}"),
    ] {
        for args in [
            &["rekey", "-i", "admin.txt"][..],
            &["rekey", "-j", "vaulttest"][..],
        ] {
            let mut c = r.cmd(&common::vault_bin(), false);
            c.env("PATH", &path).args(args);
            let o = c.output().unwrap();
            let t = text(&o);
            assert!(!o.status.success(), "PATH={path} {args:?}: {t}");
            assert!(t.contains("not on PATH"), "PATH={path} {args:?}: {t}");
            assert_eq!(
                std::fs::read_to_string(&r.counter).unwrap_or_default(),
                "",
                "PATH={path} {args:?}: the repository's plugin ran"
            );
        }
    }
    assert_same(&snapshot(&r.secrets), &before, "changed");
}

/// A plugin's yes/no question (`confirm`) is a yes only when answered with its yes word: "maybe"
/// or an empty line tells the plugin no (it then refuses, and nothing changes); "yes" lets the
/// rekey go on.
#[test]
fn a_plugin_question_means_no_unless_answered_yes() {
    const N: usize = 2;
    let Some(r) = setup(N) else { return };
    to_hardware_key(&r, N);
    r.rules(N, "yk host");
    let before = snapshot(&r.secrets);
    for (answer, yes) in [("maybe", false), ("", false), ("yes", true)] {
        r.reset_counter();
        let mut c = r.cmd(&common::vault_bin(), true);
        c.env("VAULTTEST_CONFIRM", "1")
            .env("VAULTTEST_NO_PIN", "1")
            .args(["rekey", "-i", "yk.txt"]);
        let mut s = Session::spawn(c).expect("spawn in a pty");
        s.set_expect_timeout(Some(Duration::from_secs(120)));
        s.expect("Use the vaulttest key?").unwrap();
        s.send_line(answer).unwrap();
        let shown = String::from_utf8_lossy(s.expect(Eof).unwrap().as_bytes()).into_owned();
        let code = match s.get_process().wait().expect("wait") {
            expectrl::WaitStatus::Exited(_, code) => code,
            other => panic!("vault did not exit normally: {other:?}"),
        };
        let counter = std::fs::read_to_string(&r.counter).unwrap_or_default();
        if yes {
            assert_eq!(code, 0, "{answer:?}: {shown}");
            assert!(counter.contains("confirm Ok(true)"), "{counter}");
        } else {
            assert_ne!(code, 0, "{answer:?} was taken as yes: {shown}");
            assert!(counter.contains("confirm Ok(false)"), "{counter}");
            assert!(shown.contains("not confirmed"), "{shown}");
            assert_same(&snapshot(&r.secrets), &before, "changed after a no");
        }
    }
}
