//! Recovery recipients through the real binary: a bundle packed with `--recovery-recipient`
//! (keys made by the real `age-keygen` and `ssh-keygen`) opens without its passphrase with
//! `vault inspect -i` and `vault repack`, and the repacked bundle unlocks with the new
//! passphrase only. A recovery stanza swapped by someone without the file key (spliced from
//! the real `age`'s output for the attacker's own key) is refused by the passphrase and by
//! the attacker's key alike. A bundle a forger made for the victim's recovery key (whose public
//! half is no secret) opens with it, but is never called verified without saying that this
//! proves nothing about who made it; `repack` carries over none of the forger's choices
//! (recovery recipients, Argon2id settings) and `repack -m` names every item that differs from
//! the victim's own sources.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{ok, vault_bin, FAST_KDF};

/// Cheap Argon2id settings for the bundles `repack` writes (it takes none from the bundle).
const REPACK_KDF: &[&str] = common::CHEAP_KDF;

struct Tools {
    age: PathBuf,
}

fn tools() -> Option<Tools> {
    let age = common::require_tool("age")?;
    common::require_tool("age-keygen")?;
    common::require_tool("ssh-keygen")?;
    Some(Tools { age })
}

const HOST_KEY: &[u8] = b"-----BEGIN OPENSSH PRIVATE KEY-----\nnot a real key\n";
const SHARED: &[u8] = b"machine github.com login deploy password hunter2\n";

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("host_key"), HOST_KEY).unwrap();
        std::fs::write(d.join("shared"), SHARED).unwrap();
        std::fs::write(
            d.join("vault.toml"),
            r#"version = 1

[[entry]]
source = "shared"
target = "/root/.git-credentials"
mode = "0640"
owner = "0:100"

[hosts.box]

[[hosts.box.entry]]
source = "host_key"
target = "/etc/ssh/ssh_host_ed25519_key"
mode = "0600"
"#,
        )
        .unwrap();
        std::fs::write(d.join("old-pw"), "old passphrase\n").unwrap();
        std::fs::write(d.join("new-pw"), "new passphrase\n").unwrap();
        Fixture { dir }
    }

    fn p(&self, rel: &str) -> String {
        self.dir.path().join(rel).to_string_lossy().into_owned()
    }

    /// vault in the fixture's folder; `repack` gets [`REPACK_KDF`] unless it names its own.
    fn vault(&self, args: &[&str]) -> Output {
        let mut args = args.to_vec();
        if args.first() == Some(&"repack") && !args.iter().any(|a| a.starts_with("--kdf")) {
            args.extend_from_slice(REPACK_KDF);
        }
        self.vault_as_given(&args)
    }

    /// vault in the fixture's folder with exactly `args`.
    fn vault_as_given(&self, args: &[&str]) -> Output {
        Command::new(vault_bin())
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("run vault")
    }

    /// An X25519 identity from the real `age-keygen`: its recipient.
    fn age_key(&self, name: &str) -> String {
        let run = |flag: &str| common::ok(self.age_keygen(flag, name));
        run("-o");
        run("-y").trim().to_owned()
    }

    /// `age-keygen FLAG FILE`, FILE in the fixture's folder.
    fn age_keygen(&self, flag: &str, name: &str) -> Output {
        Command::new("age-keygen")
            .args([flag, &self.p(name)])
            .output()
            .unwrap()
    }

    /// An unprotected ed25519 key from the real `ssh-keygen`: its public key line.
    fn ssh_key(&self, name: &str) -> String {
        common::ok(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", "admin@laptop", "-f"])
                .arg(self.p(name))
                .output()
                .unwrap(),
        );
        std::fs::read_to_string(self.p(&format!("{name}.pub")))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// `b.bundle`, packed with a recovery recipient whose key is `recovery.txt`: the recipient.
    fn packed_for_recovery(&self) -> String {
        let recipient = self.age_key("recovery.txt");
        self.pack("b.bundle", &["--recovery-recipient", &recipient]);
        recipient
    }

    /// `pack -o OUT` of the fixture's vault.toml to the old passphrase, then `extra`.
    fn pack(&self, out: &str, extra: &[&str]) {
        ok(self.vault(&[&pack_args(out), extra].concat()));
    }

    /// `repack BUNDLE -i KEY -o OUT` to the new passphrase, then `extra`.
    fn repack(&self, bundle: &str, key: &str, out: &str, extra: &[&str]) -> Output {
        let args = ["repack", bundle, "-i", key, "-o", out];
        let to = ["--passphrase-file", "new-pw", "--weak-passphrase"];
        self.vault(&[&args[..], &to, extra].concat())
    }

    /// A real unlock into a fresh root (`--staging-memory 0`: the streamed path, files
    /// written to temporaries as they are verified).
    fn unlock(&self, bundle: &str, pw: &str, streamed: bool) -> (Output, PathBuf) {
        let root = tempfile::tempdir_in(self.dir.path()).unwrap().keep();
        let live = tempfile::tempdir_in(self.dir.path()).unwrap().keep();
        let mut args = vec![
            "unlock".to_owned(),
            bundle.to_owned(),
            "--root".into(),
            root.to_string_lossy().into_owned(),
            "--root-not-mountpoint".into(),
            "--disk-root".into(),
            live.to_string_lossy().into_owned(),
            "--passphrase-file".into(),
            pw.into(),
        ];
        if streamed {
            args.extend(["--staging-memory".into(), "0".into()]);
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        (self.vault(&refs), root)
    }

    /// [`Fixture::unlock`] succeeds and places the two items.
    fn unlock_placed(&self, bundle: &str, pw: &str, streamed: bool) {
        let (o, root) = self.unlock(bundle, pw, streamed);
        ok(o);
        assert_placed(&root);
    }
}

/// `pack -o OUT --passphrase-file old-pw` with cheap settings and no config check.
fn pack_args(out: &str) -> Vec<&str> {
    let mut args = vec!["pack", "-o", out, "--passphrase-file", "old-pw"];
    args.push("--no-config-check");
    args.extend_from_slice(FAST_KDF);
    args
}

/// The two items, placed under `root` with their bytes and modes.
fn assert_placed(root: &Path) {
    let key = root.join("etc/ssh/ssh_host_ed25519_key");
    let shared = root.join("root/.git-credentials");
    assert_eq!(std::fs::read(&key).unwrap(), HOST_KEY);
    assert_eq!(std::fs::read(&shared).unwrap(), SHARED);
    assert_eq!(std::fs::metadata(&key).unwrap().mode() & 0o7777, 0o600);
    assert_eq!(std::fs::metadata(&shared).unwrap().mode() & 0o7777, 0o640);
    if rustix::process::geteuid().is_root() {
        assert_eq!(std::fs::metadata(&shared).unwrap().gid(), 100);
    }
}

/// Forget the passphrase: the age-keygen key opens the bundle (`inspect -i` lists every
/// item), `repack -i` writes one that unlocks with the new passphrase (memory and streamed
/// paths) and not the old, and keeps the recovery recipient unless told otherwise.
#[test]
fn an_x25519_recovery_key_inspects_and_repacks_without_the_passphrase() {
    let Some(t) = tools() else { return };
    let f = Fixture::new();
    let recipient = f.packed_for_recovery();

    // The passphrase still unlocks the bundle that carries a recovery stanza, both paths.
    for streamed in [false, true] {
        f.unlock_placed("b.bundle", "old-pw", streamed);
    }

    // The stanza is plain age: the real age and rage open the payload (zstd) with the key.
    for tool in [Some(t.age.clone()), common::require_tool("rage")]
        .into_iter()
        .flatten()
    {
        let payload = common::run_decrypt(
            &tool,
            &f.dir.path().join("b.bundle"),
            &f.dir.path().join("recovery.txt"),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", tool.display()));
        assert!(
            payload.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]),
            "{}",
            tool.display()
        );
    }

    let listed = ok(f.vault(&["inspect", "b.bundle", "-i", "recovery.txt"]));
    assert!(
        listed.contains("proves nothing about who made it"),
        "{listed}"
    );
    assert!(listed.contains("/etc/ssh/ssh_host_ed25519_key"), "{listed}");
    assert!(listed.contains("/root/.git-credentials"), "{listed}");
    assert!(
        listed.contains(&format!("recovery: {recipient}")),
        "{listed}"
    );

    // The bundle's own recovery recipients are not carried over unasked: refused, each named.
    let o = f.repack("b.bundle", "recovery.txt", "new.bundle", &[]);
    let said = common::exits(&o, 6);
    assert!(said.contains(&recipient), "{said}");
    assert!(!f.dir.path().join("new.bundle").exists());
    let o = f.repack(
        "b.bundle",
        "recovery.txt",
        "new.bundle",
        &["--recovery-recipient", &recipient],
    );
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    let out = ok(o);
    assert!(out.contains("1 recovery recipient"), "{out}");
    assert!(
        err.contains(&format!("recovery recipient: {recipient}")),
        "{err}"
    );
    for streamed in [false, true] {
        f.unlock_placed("new.bundle", "new-pw", streamed);
    }
    let (o, root) = f.unlock("new.bundle", "old-pw", false);
    common::exits(&o, 3);
    assert!(std::fs::read_dir(&root).unwrap().next().is_none());
    // The recovery recipient was given again: its key opens the new bundle too.
    ok(f.vault(&["inspect", "new.bundle", "-i", "recovery.txt"]));

    // Without -i, repack takes the bundle's passphrase: the old one is wrong now (exit 3).
    let o = f.vault(&[
        "repack",
        "new.bundle",
        "--old-passphrase-file",
        "old-pw",
        "-o",
        "again.bundle",
        "--passphrase-file",
        "new-pw",
        "--weak-passphrase",
    ]);
    common::exits(&o, 3);
    assert!(!f.dir.path().join("again.bundle").exists());

    // --no-recovery drops it: the key no longer opens the result.
    ok(f.vault(&[
        "repack",
        "new.bundle",
        "--old-passphrase-file",
        "new-pw",
        "-o",
        "bare.bundle",
        "--passphrase-file",
        "old-pw",
        "--weak-passphrase",
        "--no-recovery",
    ]));
    let o = f.vault(&["inspect", "bare.bundle", "-i", "recovery.txt"]);
    common::exits(&o, 3);
    f.unlock_placed("bare.bundle", "old-pw", false);
}

/// An SSH recovery key from a recipients file (comments skipped, as age's -R): the private
/// key opens the bundle; repack with --recovery-recipient replaces it.
#[test]
fn an_ssh_recovery_key_from_a_recipients_file_opens_and_can_be_replaced() {
    let Some(_) = tools() else { return };
    let f = Fixture::new();
    let ssh = f.ssh_key("id_admin");
    std::fs::write(
        f.dir.path().join("recovery.txt"),
        format!("# admins who can recover a bundle\n\n{ssh}\n"),
    )
    .unwrap();
    f.pack("b.bundle", &["--recovery-recipients-file", "recovery.txt"]);
    let listed = ok(f.vault(&["inspect", "b.bundle", "-i", "id_admin", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(v["items"].as_array().unwrap().len(), 2, "{listed}");
    assert_eq!(v["recovery_recipients"][0], ssh.as_str());

    let age_recipient = f.age_key("new-recovery.txt");
    ok(f.repack(
        "b.bundle",
        "id_admin",
        "new.bundle",
        &["--recovery-recipient", &age_recipient],
    ));
    ok(f.vault(&["inspect", "new.bundle", "-i", "new-recovery.txt"]));
    let o = f.vault(&["inspect", "new.bundle", "-i", "id_admin"]);
    common::exits(&o, 3);
}

/// A key that has no stanza in the bundle: exit 3, naming the bundle and the key; a bundle
/// without recovery recipients the same.
#[test]
fn a_key_the_bundle_was_not_packed_for_is_a_clear_error() {
    let Some(_) = tools() else { return };
    let f = Fixture::new();
    let recipient = f.age_key("recovery.txt");
    f.age_key("other.txt");
    f.pack("b.bundle", &["--recovery-recipient", &recipient]);
    f.pack("plain.bundle", &[]);
    for bundle in ["b.bundle", "plain.bundle"] {
        let o = f.vault(&["inspect", bundle, "-i", "other.txt"]);
        common::exits(&o, 3);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(bundle)
                && err.contains("other.txt")
                && err.contains("none of the identities"),
            "{err}"
        );
        let o = f.repack(bundle, "other.txt", "x.bundle", &[]);
        common::exits(&o, 3);
        assert!(!f.dir.path().join("x.bundle").exists());
    }
}

/// The recovery stanza replaced by one the real `age` wrote for the attacker's own key (the
/// MAC line kept: the attacker cannot compute a new one). The passphrase unlock refuses it
/// (exit 4, header MAC) and places nothing; the attacker's key opens the stanza but the file
/// key it yields fails the MAC too; the victim's key finds no stanza.
#[test]
fn a_swapped_recovery_stanza_is_refused() {
    let Some(t) = tools() else { return };
    let f = Fixture::new();
    let victim = f.age_key("recovery.txt");
    let attacker = f.age_key("attacker.txt");
    f.pack("b.bundle", &["--recovery-recipient", &victim]);

    std::fs::write(f.dir.path().join("dummy"), b"x").unwrap();
    common::ok(
        Command::new(&t.age)
            .args(["-r", &attacker, "-o", &f.p("dummy.age"), &f.p("dummy")])
            .output()
            .unwrap(),
    );
    let theirs = std::fs::read(f.p("dummy.age")).unwrap();
    let their_stanza = x25519_stanza(&theirs);

    let bundle = std::fs::read(f.p("b.bundle")).unwrap();
    let ours = x25519_stanza(&bundle);
    let at = bundle
        .windows(ours.len())
        .position(|w| w == ours.as_slice())
        .unwrap();
    let mut forged = bundle[..at].to_vec();
    forged.extend_from_slice(&their_stanza);
    forged.extend_from_slice(&bundle[at + ours.len()..]);
    assert_ne!(forged, bundle);
    std::fs::write(f.p("forged.bundle"), &forged).unwrap();

    for streamed in [false, true] {
        let (o, root) = f.unlock("forged.bundle", "old-pw", streamed);
        let said = common::exits(&o, 4);
        assert!(said.contains("header MAC"), "{said}");
        assert!(std::fs::read_dir(&root).unwrap().next().is_none());
    }
    let o = f.vault(&["inspect", "forged.bundle", "-i", "attacker.txt"]);
    let said = common::exits(&o, 4);
    assert!(said.contains("header MAC"), "{said}");
    assert!(!said.contains("/etc/ssh"), "{said}");
    let o = f.repack("forged.bundle", "attacker.txt", "x.bundle", &[]);
    common::exits(&o, 4);
    assert!(!f.dir.path().join("x.bundle").exists());
    let o = f.vault(&["inspect", "forged.bundle", "-i", "recovery.txt"]);
    common::exits(&o, 3);
}

/// The `-> X25519 …` line and its body line in an age header.
fn x25519_stanza(file: &[u8]) -> Vec<u8> {
    let start = file
        .windows(10)
        .position(|w| w == b"-> X25519 ")
        .expect("an X25519 stanza");
    let rest = &file[start..];
    let first = rest.iter().position(|&b| b == b'\n').unwrap() + 1;
    let second = rest[first..].iter().position(|&b| b == b'\n').unwrap() + 1;
    rest[..first + second].to_vec()
}

/// Refusals that leave nothing behind: a plugin recipient (named, not yet supported), a
/// small-order point, the input bundle as the output, an existing output without --force.
#[test]
fn bad_recovery_recipients_and_outputs_are_refused_before_writing() {
    let Some(_) = tools() else { return };
    let f = Fixture::new();
    let args = pack_args("b.bundle");
    let plugin = "age1yubikey1qwt50d05nh5vutpdzmlg5wn80xq5negm4uj9ghv0snvdd3yysf5yw3rhl3t";
    let zero = bech32::encode(
        "age",
        bech32::ToBase32::to_base32(&[0u8; 32].to_vec()),
        bech32::Variant::Bech32,
    )
    .unwrap();
    let zero = zero.as_str();
    for (bad, says) in [
        (plugin, "age-plugin-yubikey"),
        (zero, "low-order"),
        ("hello", "hello"),
    ] {
        let mut a = args.clone();
        a.extend(["--recovery-recipient", bad]);
        let o = f.vault(&a);
        let said = common::exits(&o, 6);
        assert!(said.contains(says), "{said}");
        assert!(said.contains("--recovery-recipient #1"), "{said}");
        assert!(!f.dir.path().join("b.bundle").exists());
    }
    std::fs::write(f.p("r.txt"), format!("# ok\n{zero}\n")).unwrap();
    let mut a = args.clone();
    a.extend(["--recovery-recipients-file", "r.txt"]);
    let o = f.vault(&a);
    let said = common::exits(&o, 6);
    assert!(said.contains("r.txt, line 2"), "{said}");

    f.packed_for_recovery();
    let before = std::fs::read(f.p("b.bundle")).unwrap();
    for (out, force) in [("b.bundle", true), ("b.bundle", false)] {
        let mut a = vec![
            "repack",
            "b.bundle",
            "-i",
            "recovery.txt",
            "-o",
            out,
            "--passphrase-file",
            "new-pw",
            "--weak-passphrase",
        ];
        if force {
            a.push("--force");
        }
        let o = f.vault(&a);
        common::exits(&o, 6);
    }
    std::fs::write(f.p("taken"), b"keep").unwrap();
    let o = f.repack("b.bundle", "recovery.txt", "taken", &[]);
    let said = common::exits(&o, 6);
    assert!(said.contains("--force"), "{said}");
    assert_eq!(std::fs::read(f.p("taken")).unwrap(), b"keep");
    assert_eq!(std::fs::read(f.p("b.bundle")).unwrap(), before);
}

/// `repack --manifest`: the updated vault.toml decides targets, modes, owners and the item
/// set; a source file that exists gives the contents, a missing one is taken from the bundle
/// (same host and target); bundle items the manifest leaves out are listed as dropped; an
/// entry with neither a source nor a bundle item is an error naming its line.
#[test]
fn repack_with_an_updated_manifest_takes_missing_sources_from_the_bundle() {
    let Some(_) = tools() else { return };
    let f = Fixture::new();
    let recipient = f.packed_for_recovery();
    let d = f.dir.path();
    // The host key's source is gone; the shared file changed; a new file appears.
    std::fs::remove_file(d.join("host_key")).unwrap();
    std::fs::write(d.join("shared"), b"rotated\n").unwrap();
    std::fs::write(d.join("extra"), b"extra\n").unwrap();
    let host = r#"
[hosts.box]

[[hosts.box.entry]]
source = "host_key"
target = "/etc/ssh/ssh_host_ed25519_key"
mode = "0400"
"#;
    std::fs::write(
        d.join("v2.toml"),
        format!(
            "version = 1\nrecovery_recipients = [\"{recipient}\"]\n\n[[entry]]\nsource = \"shared\"\ntarget = \"/root/.git-credentials\"\nmode = \"0600\"\n\n[[entry]]\nsource = \"extra\"\ntarget = \"/etc/extra\"\n{host}"
        ),
    )
    .unwrap();
    let repack = |manifest: &str, out: &str| {
        f.repack("b.bundle", "recovery.txt", out, &["--manifest", manifest])
    };
    let o = repack("v2.toml", "new.bundle");
    ok(o);
    let (o, root) = f.unlock("new.bundle", "new-pw", false);
    ok(o);
    let key = root.join("etc/ssh/ssh_host_ed25519_key");
    assert_eq!(std::fs::read(&key).unwrap(), HOST_KEY);
    assert_eq!(std::fs::metadata(&key).unwrap().mode() & 0o7777, 0o400);
    let shared = root.join("root/.git-credentials");
    assert_eq!(std::fs::read(&shared).unwrap(), b"rotated\n");
    assert_eq!(std::fs::metadata(&shared).unwrap().mode() & 0o7777, 0o600);
    assert_eq!(std::fs::read(root.join("etc/extra")).unwrap(), b"extra\n");
    // The recovery recipient of v2.toml.
    ok(f.vault(&["inspect", "new.bundle", "-i", "recovery.txt"]));

    // A source of the manifest is never the output, --force or not.
    let o = f.repack(
        "b.bundle",
        "recovery.txt",
        "shared",
        &["--force", "--manifest", "v2.toml"],
    );
    let said = common::exits(&o, 6);
    assert!(said.contains("source"), "{said}");
    assert_eq!(std::fs::read(d.join("shared")).unwrap(), b"rotated\n");

    // Only the host's entry: the shared item is dropped, and said so.
    std::fs::write(d.join("v3.toml"), format!("version = 1\n{host}")).unwrap();
    let o = repack("v3.toml", "host-only.bundle");
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    ok(o);
    assert!(err.contains("dropped: /root/.git-credentials"), "{err}");
    let json_args = [
        "repack",
        "b.bundle",
        "-i",
        "recovery.txt",
        "-o",
        "host-only.json.bundle",
        "--passphrase-file",
        "new-pw",
        "--weak-passphrase",
        "--manifest",
        "v3.toml",
        "--json",
    ];
    let v: serde_json::Value = serde_json::from_str(&ok(f.vault(&json_args))).unwrap();
    assert_eq!(
        v["dropped"],
        serde_json::json!([{ "host": null, "target": "/root/.git-credentials" }])
    );

    // A missing source with no bundle item: exit 5, the line named, nothing written.
    std::fs::write(
        d.join("v4.toml"),
        format!(
            "version = 1\n{host}\n[[hosts.box.entry]]\nsource = \"gone\"\ntarget = \"/etc/gone\"\n"
        ),
    )
    .unwrap();
    let o = repack("v4.toml", "x.bundle");
    common::exits(&o, 5);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("line 10") && err.contains("/etc/gone"),
        "{err}"
    );
    assert!(!d.join("x.bundle").exists());
}

/// `recovery_recipients` in vault.toml: every pack wraps to them, the flag adds to them; a
/// bad one is an invalid manifest (exit 5) naming its line.
#[test]
fn recovery_recipients_in_vault_toml_and_flags_add_up() {
    let Some(_) = tools() else { return };
    let f = Fixture::new();
    let age = f.age_key("recovery.txt");
    let ssh = f.ssh_key("id_admin");
    let path = f.dir.path().join("vault.toml");
    let original = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        original.replacen(
            "version = 1\n",
            &format!("version = 1\nrecovery_recipients = [\"{age}\"]\n"),
            1,
        ),
    )
    .unwrap();
    f.pack("b.bundle", &["--recovery-recipient", &ssh]);
    let v: serde_json::Value = serde_json::from_str(&ok(
        f.vault(&["inspect", "b.bundle", "-i", "id_admin", "--json"])
    ))
    .unwrap();
    assert_eq!(v["recovery_recipients"], serde_json::json!([age, ssh]));
    ok(f.vault(&["inspect", "b.bundle", "-i", "recovery.txt"]));

    std::fs::write(
        &path,
        original.replacen(
            "version = 1\n",
            "version = 1\nrecovery_recipients = [\"age1yubikey1qwt50d05nh5vutpdzmlg5wn80xq5negm4uj9ghv0snvdd3yysf5yw3rhl3t\"]\n",
            1,
        ),
    )
    .unwrap();
    let o = f.vault(&pack_args("c.bundle"));
    // A hardware key's recipient is read from vault.toml; packing needs its plugin, and
    // names it (none is installed here).
    common::exits(&o, 6);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("recovery recipient 1") && err.contains("install age-plugin-yubikey"),
        "{err}"
    );
    assert!(!f.dir.path().join("c.bundle").exists());
}

/// In a real pseudo-terminal, `repack -i` asks for the new passphrase twice without echo;
/// the bundle it writes unlocks with what was typed.
#[test]
fn repack_asks_for_the_new_passphrase_on_the_terminal() {
    use expectrl::Eof;
    let Some(_) = tools() else { return };
    let f = Fixture::new();
    f.packed_for_recovery();
    let mut cmd = Command::new(vault_bin());
    cmd.current_dir(f.dir.path())
        .args([
            "repack",
            "b.bundle",
            "-i",
            "recovery.txt",
            "-o",
            "typed.bundle",
            "--weak-passphrase",
            "--no-recovery",
        ])
        .args(REPACK_KDF);
    let mut s = common::pty::session(cmd);
    let mut seen = Vec::new();
    for (prompt, answer) in [
        ("New passphrase for", "typed new words"),
        ("Repeat it:", "typed new words"),
    ] {
        seen.extend_from_slice(s.expect(prompt).unwrap().as_bytes());
        s.send_line(answer).unwrap();
    }
    seen.extend_from_slice(s.expect(Eof).unwrap().as_bytes());
    let shown = String::from_utf8_lossy(&seen).into_owned();
    assert!(
        !shown.contains("typed new words"),
        "the passphrase was echoed: {shown}"
    );
    assert_eq!(common::pty::exit_code(&mut s), 0, "{shown}");
    std::fs::write(f.dir.path().join("typed-pw"), "typed new words\n").unwrap();
    f.unlock_placed("typed.bundle", "typed-pw", false);
}

/// `repack --manifest` with a directory entry whose source is gone: the bundle's directory
/// comes back with everything under it, with the manifest's `mode`, `file_mode` and owner, and
/// each item taken from the bundle unchecked is named (a forger's extra file under a
/// directory would be one of them), on stderr and in `--json`.
#[test]
fn repack_with_a_manifest_takes_a_missing_directory_from_the_bundle() {
    let Some(_) = tools() else { return };
    let f = Fixture::new();
    let d = f.dir.path();
    std::fs::create_dir_all(d.join("ssh/sub")).unwrap();
    std::fs::write(d.join("ssh/id_ed25519"), b"private\n").unwrap();
    std::fs::write(d.join("ssh/sub/known_hosts"), b"hosts\n").unwrap();
    let toml = |file_mode: &str| {
        format!(
            "version = 1\n\n[[entry]]\nsource = \"ssh\"\ntarget = \"/home/alice/.ssh\"\nmode = \"0700\"\nfile_mode = \"{file_mode}\"\n"
        )
    };
    std::fs::write(d.join("vault.toml"), toml("0600")).unwrap();
    f.packed_for_recovery();
    std::fs::remove_dir_all(d.join("ssh")).unwrap();
    std::fs::write(d.join("v2.toml"), toml("0400")).unwrap();
    let o = f.repack(
        "b.bundle",
        "recovery.txt",
        "new.bundle",
        &["--manifest", "v2.toml", "--json"],
    );
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    let v: serde_json::Value = serde_json::from_str(&ok(o)).unwrap();
    for target in [
        "/home/alice/.ssh",
        "/home/alice/.ssh/id_ed25519",
        "/home/alice/.ssh/sub",
        "/home/alice/.ssh/sub/known_hosts",
    ] {
        assert!(
            err.lines()
                .any(|l| l.starts_with(&format!("from the bundle: {target} ("))),
            "{target} not named: {err}"
        );
        assert!(
            v["differences"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| { d["target"] == target && d["kind"] == "from_bundle" }),
            "{target}: {v}"
        );
    }
    let (o, root) = f.unlock("new.bundle", "new-pw", false);
    ok(o);
    let ssh = root.join("home/alice/.ssh");
    assert_eq!(std::fs::metadata(&ssh).unwrap().mode() & 0o7777, 0o700);
    for (rel, bytes) in [
        ("id_ed25519", &b"private\n"[..]),
        ("sub/known_hosts", b"hosts\n"),
    ] {
        let p = ssh.join(rel);
        assert_eq!(std::fs::read(&p).unwrap(), bytes, "{rel}");
        assert_eq!(
            std::fs::metadata(&p).unwrap().mode() & 0o7777,
            0o400,
            "{rel}"
        );
    }
}

/// The forger's exploit. An attacker who knows only the victim's SSH *public* key packs their own
/// host key and `authorized_keys`, with the victim's key and their own age key as recovery
/// recipients, and swaps the stick. The victim's passphrase fails, as if forgotten; following
/// docs/guide/recovery.md the victim opens the bundle with their SSH key and repacks it.
/// vault says in words (and in `--json`) that a recovery key proves nothing about who made
/// the bundle, refuses to carry the bundle's recovery recipients over unasked (naming each),
/// and `repack -m` names every item that differs from the victim's sources: the attacker's
/// key never opens what the victim writes.
#[test]
fn a_bundle_forged_for_the_victims_recovery_key_is_not_trusted() {
    let Some(t) = tools() else { return };
    let f = Fixture::new();
    let victim = f.ssh_key("id_victim");
    f.pack("real.bundle", &["--recovery-recipient", &victim]);

    // The attacker, with files of their own and the victim's public key.
    let evil = f.dir.path().join("evil");
    std::fs::create_dir(&evil).unwrap();
    std::fs::write(evil.join("host_key"), b"ATTACKER'S HOST KEY\n").unwrap();
    std::fs::write(evil.join("authorized_keys"), b"ssh-ed25519 AAAA attacker\n").unwrap();
    std::fs::write(evil.join("pw"), "the attacker's own passphrase\n").unwrap();
    std::fs::write(
        evil.join("vault.toml"),
        "version = 1\n\n[hosts.box]\n\n[[hosts.box.entry]]\nsource = \"host_key\"\n\
         target = \"/etc/ssh/ssh_host_ed25519_key\"\nmode = \"0600\"\n\n\
         [[hosts.box.entry]]\nsource = \"authorized_keys\"\n\
         target = \"/root/.ssh/authorized_keys\"\nmode = \"0644\"\n",
    )
    .unwrap();
    let attacker = f.age_key("evil/attacker.txt");
    let mut args = vec![
        "pack",
        "-m",
        "evil/vault.toml",
        "-o",
        "forged.bundle",
        "--passphrase-file",
        "evil/pw",
        "--no-config-check",
        "--recovery-recipient",
        &victim,
        "--recovery-recipient",
        &attacker,
    ];
    args.extend_from_slice(FAST_KDF);
    ok(f.vault(&args));

    // The victim's passphrase does not open it: it looks forgotten.
    let o = f.vault(&["inspect", "forged.bundle", "--passphrase-file", "old-pw"]);
    common::exits(&o, 3);

    // Opened with the victim's recovery key: intact, and said to prove nothing about its maker.
    let listed = ok(f.vault(&["inspect", "forged.bundle", "-i", "id_victim"]));
    let first = listed.lines().next().unwrap_or_default();
    assert!(
        first.contains("proves nothing about who made it"),
        "{listed}"
    );
    assert!(
        listed.contains(&attacker),
        "its recipients listed: {listed}"
    );
    let v: serde_json::Value = serde_json::from_str(&ok(f.vault(&[
        "inspect",
        "forged.bundle",
        "-i",
        "id_victim",
        "--json",
    ])))
    .unwrap();
    assert_eq!(v["opened_with"], "recovery_key", "{v}");
    assert_eq!(v["maker_verified"], false, "{v}");
    assert!(
        v["warning"]
            .as_str()
            .is_some_and(|w| w.contains("proves nothing about who made it")),
        "{v}"
    );
    let v: serde_json::Value = serde_json::from_str(&ok(f.vault(&[
        "inspect",
        "real.bundle",
        "--passphrase-file",
        "old-pw",
        "--json",
    ])))
    .unwrap();
    assert_eq!(v["opened_with"], "passphrase", "{v}");
    assert_eq!(v["maker_verified"], true, "{v}");
    assert_eq!(v["warning"], serde_json::Value::Null, "{v}");

    // The guide's repack: the bundle's recovery recipients are not taken over unasked; each
    // is named, and nothing is written.
    let o = f.repack("forged.bundle", "id_victim", "new.bundle", &[]);
    common::exits(&o, 6);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&attacker) && err.contains(&victim), "{err}");
    assert!(err.contains("proves nothing about who made it"), "{err}");
    assert!(!f.dir.path().join("new.bundle").exists());

    // Given the victim's own recovery key: only it opens the result, and what is not kept
    // is listed before anything is written.
    let o = f.repack(
        "forged.bundle",
        "id_victim",
        "new.bundle",
        &["--recovery-recipient", &victim],
    );
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    ok(o);
    assert!(
        err.contains(&format!("recovery recipient: {victim}")),
        "{err}"
    );
    assert!(
        err.contains(&format!("not kept: recovery recipient {attacker}")),
        "{err}"
    );
    let o = f.vault(&["inspect", "new.bundle", "-i", "evil/attacker.txt"]);
    common::exits(&o, 3);
    assert!(common::run_decrypt(
        &t.age,
        &f.dir.path().join("new.bundle"),
        &f.dir.path().join("evil/attacker.txt")
    )
    .is_err());

    // repack -m with the victim's vault.toml: every difference from the sources is named.
    let o = f.repack(
        "forged.bundle",
        "id_victim",
        "m.bundle",
        &["-m", "vault.toml", "--json"],
    );
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    let v: serde_json::Value = serde_json::from_str(&ok(o)).unwrap();
    for (target, says) in [
        ("/etc/ssh/ssh_host_ed25519_key", "contents differ from"),
        ("/root/.ssh/authorized_keys", "not in"),
        ("/root/.git-credentials", "not in the bundle"),
    ] {
        assert!(
            err.lines().any(|l| l.contains(target) && l.contains(says)),
            "{target} {says}: {err}"
        );
    }
    let differences = v["differences"].as_array().unwrap();
    assert_eq!(differences.len(), 3, "{v}");
    assert_eq!(v["opened_with"], "recovery_key");
    assert_eq!(v["recovery_recipients"], serde_json::json!([]));
    let o = f.vault(&["inspect", "m.bundle", "-i", "evil/attacker.txt"]);
    common::exits(&o, 3);
    let o = f.vault(&["inspect", "m.bundle", "-i", "id_victim"]);
    common::exits(&o, 3);
    f.unlock_placed("m.bundle", "new-pw", false);
}

/// `repack` takes no Argon2id settings from the bundle: without flags the new bundle gets the
/// default (whatever the bundle had); settings `pack` would refuse need `--weak-kdf` here too.
#[test]
fn repack_takes_its_argon2id_settings_from_flags_not_the_bundle() {
    let Some(_) = tools() else { return };
    let f = Fixture::new();
    f.pack("b.bundle", &[]);
    let kdf = |bundle: &str| {
        let v: serde_json::Value =
            serde_json::from_str(&ok(f.vault(&["inspect", bundle, "--json"]))).unwrap();
        (
            v["kdf"]["memory_kib"].as_u64().unwrap(),
            v["kdf"]["iterations"].as_u64().unwrap(),
            v["kdf"]["parallelism"].as_u64().unwrap(),
        )
    };
    assert_eq!(kdf("b.bundle"), (8192, 1, 1));
    let base = [
        "repack",
        "b.bundle",
        "--old-passphrase-file",
        "old-pw",
        "--passphrase-file",
        "new-pw",
        "--weak-passphrase",
        "-o",
    ];
    let run = |out: &str, extra: &[&str]| {
        let mut a = base.to_vec();
        a.push(out);
        a.extend_from_slice(extra);
        f.vault_as_given(&a)
    };
    // No settings given: the default (a test pays for one 1 GiB derivation here).
    ok(run("default.bundle", &[]));
    assert_eq!(kdf("default.bundle"), (1 << 20, 3, 4));
    // Weaker than the default: refused without --weak-kdf, nothing written.
    let weak = [
        "--kdf-memory",
        "8",
        "--kdf-iterations",
        "1",
        "--kdf-parallelism",
        "1",
    ];
    let o = run("weak.bundle", &weak);
    let said = common::exits(&o, 6);
    assert!(said.contains("--weak-kdf"), "{said}");
    assert!(!f.dir.path().join("weak.bundle").exists());
    let mut with = weak.to_vec();
    with.push("--weak-kdf");
    ok(run("weak.bundle", &with));
    assert_eq!(kdf("weak.bundle"), (8192, 1, 1));
}
