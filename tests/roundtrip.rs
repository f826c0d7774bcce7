//! The shipped example through the real binary: pack, inspect, unlock into a scratch root.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{text, vault_bin, FAST_KDF};

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("keys-example")
}

fn vault(args: &[&str]) -> Output {
    Command::new(vault_bin())
        .args(args)
        .output()
        .expect("run vault")
}

/// `pack -m MANIFEST -o OUT --passphrase-file PW`.
fn pack_args<'a>(manifest: &'a Path, out: &'a Path, pw: &'a Path) -> Vec<&'a str> {
    let s = |p: &'a Path| p.to_str().unwrap();
    vec![
        "pack",
        "-m",
        s(manifest),
        "-o",
        s(out),
        "--passphrase-file",
        s(pw),
    ]
}

/// [`pack_args`] with cheap KDF settings; succeeds.
fn pack(manifest: &Path, out: &Path, pw: &Path) {
    let o = vault(&[pack_args(manifest, out, pw), FAST_KDF.to_vec()].concat());
    assert!(o.status.success(), "{}", text(&o));
}

struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "example passphrase\n").unwrap();
        std::fs::create_dir(dir.path().join("mnt")).unwrap();
        std::fs::create_dir(dir.path().join("live")).unwrap();
        Scratch { dir }
    }
    fn p(&self, rel: &str) -> String {
        self.dir.path().join(rel).to_string_lossy().into_owned()
    }
    fn pack(&self) -> String {
        let out = self.p("example.bundle");
        let pw = self.p("pw");
        pack(
            &example().join("vault.toml"),
            Path::new(&out),
            Path::new(&pw),
        );
        out
    }
    /// How many entries the folder `rel` holds.
    fn entries(&self, rel: &str) -> usize {
        std::fs::read_dir(self.dir.path().join(rel))
            .unwrap()
            .count()
    }
    fn unlock(&self, bundle: &str, host: &str, extra: &[&str]) -> Output {
        let (pw, mnt, live) = (self.p("pw"), self.p("mnt"), self.p("live"));
        let mut args = vec![
            "unlock",
            bundle,
            "--host",
            host,
            "--root",
            &mnt,
            "--root-not-mountpoint",
            "--disk-root",
            &live,
            "--passphrase-file",
            &pw,
        ];
        args.extend_from_slice(extra);
        vault(&args)
    }
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// (target, source relative to keys-example, mode, uid, gid)
const LAPTOP: &[(&str, &str, u32, u32, u32)] = &[
    ("mnt/root/.ssh/id_ed25519", "shared/deploy_key", 0o600, 0, 0),
    (
        "mnt/root/.git-credentials",
        "shared/git-credentials",
        0o600,
        0,
        0,
    ),
    (
        "mnt/home/alice/.ssh/id_ed25519",
        "shared/alice-ssh/id_ed25519",
        0o600,
        1000,
        100,
    ),
    (
        "mnt/home/alice/.ssh/config",
        "shared/alice-ssh/config",
        0o600,
        1000,
        100,
    ),
    (
        "mnt/home/alice/.ssh/authorized_keys",
        "shared/alice-ssh/authorized_keys",
        0o600,
        1000,
        100,
    ),
    (
        "mnt/etc/ssh/ssh_host_ed25519_key",
        "hosts/laptop/ssh_host_ed25519_key",
        0o600,
        0,
        0,
    ),
    (
        "mnt/etc/ssh/ssh_host_ed25519_key.pub",
        "hosts/laptop/ssh_host_ed25519_key.pub",
        0o644,
        0,
        0,
    ),
    (
        "mnt/var/lib/sops-nix/key.txt",
        "hosts/laptop/sops-age-key.txt",
        0o600,
        0,
        0,
    ),
    (
        "live/tmp/disko-password",
        "hosts/laptop/disko-password",
        0o600,
        0,
        0,
    ),
];

fn check_placed(s: &Scratch, files: &[(&str, &str, u32, u32, u32)]) {
    for (target, source, mode, uid, gid) in files {
        let got = s.dir.path().join(target);
        let meta = std::fs::symlink_metadata(&got).unwrap_or_else(|e| panic!("{target}: {e}"));
        assert!(meta.file_type().is_file(), "{target} is not a regular file");
        assert_eq!(
            std::fs::read(&got).unwrap(),
            std::fs::read(example().join(source)).unwrap(),
            "{target}"
        );
        assert_eq!(meta.mode() & 0o7777, *mode, "{target} mode");
        if is_root() {
            assert_eq!((meta.uid(), meta.gid()), (*uid, *gid), "{target} owner");
        }
    }
}

fn mode_of(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

#[test]
fn example_round_trip_laptop() {
    let s = Scratch::new();
    let bundle = s.pack();
    assert_eq!(mode_of(Path::new(&bundle)), 0o600, "bundle file mode");
    let o = s.unlock(&bundle, "laptop", &[]);
    assert!(o.status.success(), "{}", text(&o));
    check_placed(&s, LAPTOP);
    // Directory entry with its own mode and owner; parents vault had to create are 0755.
    let ssh = s.dir.path().join("mnt/home/alice/.ssh");
    assert_eq!(mode_of(&ssh), 0o700);
    if is_root() {
        assert_eq!(std::fs::metadata(&ssh).unwrap().uid(), 1000);
    }
    assert_eq!(mode_of(&s.dir.path().join("mnt/etc")), 0o755);
    assert_eq!(mode_of(&s.dir.path().join("mnt/var/lib/sops-nix")), 0o755);
    // Nothing of the other host, no temporaries.
    assert!(!s.dir.path().join("mnt/etc/age").exists());
    let all: Vec<_> = walkdir::WalkDir::new(s.dir.path().join("mnt"))
        .into_iter()
        .map(|e| e.unwrap())
        .collect();
    assert!(
        all.iter()
            .all(|e| !e.file_name().to_string_lossy().contains(".vault-")),
        "temporaries left"
    );
    assert_eq!(
        all.iter().filter(|e| e.file_type().is_file()).count(),
        9,
        "exactly the laptop's root files"
    );
}

#[test]
fn example_round_trip_server_root_stage_only() {
    let s = Scratch::new();
    let bundle = s.pack();
    let o = s.unlock(&bundle, "server", &["--stage", "root"]);
    assert!(o.status.success(), "{}", text(&o));
    let key = s.dir.path().join("mnt/etc/age/server.agekey");
    assert_eq!(
        std::fs::read(&key).unwrap(),
        std::fs::read(example().join("hosts/server/server.agekey")).unwrap()
    );
    assert_eq!(mode_of(&key), 0o400);
    assert!(!s.dir.path().join("mnt/var/lib/sops-nix").exists());
    assert_eq!(s.entries("live"), 0);
}

#[test]
fn dry_run_writes_nothing_and_json_reports_the_plan() {
    let s = Scratch::new();
    let bundle = s.pack();
    let o = s.unlock(&bundle, "laptop", &["--dry-run", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["host"], "laptop");
    assert_eq!(v["dry_run"], true);
    assert_eq!(v["items"].as_array().unwrap().len(), 11);
    assert!(v["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["action"] == "create"));
    assert_eq!(s.entries("mnt"), 0);
    assert_eq!(s.entries("live"), 0);
}

#[test]
fn existing_files_are_refused_then_replaced_without_copies() {
    let s = Scratch::new();
    let bundle = s.pack();
    std::fs::create_dir_all(s.dir.path().join("mnt/etc/ssh")).unwrap();
    std::fs::write(
        s.dir.path().join("mnt/etc/ssh/ssh_host_ed25519_key"),
        "old key",
    )
    .unwrap();
    let o = s.unlock(&bundle, "laptop", &[]);
    assert_eq!(o.status.code(), Some(6), "{}", text(&o));
    assert!(
        text(&o).contains("ssh_host_ed25519_key exists") && text(&o).contains("--force"),
        "{}",
        text(&o)
    );
    assert_eq!(
        std::fs::read(s.dir.path().join("mnt/etc/ssh/ssh_host_ed25519_key")).unwrap(),
        b"old key"
    );
    assert!(
        !s.dir.path().join("mnt/root").exists(),
        "nothing placed on refusal"
    );

    let o = s.unlock(&bundle, "laptop", &["--force"]);
    assert!(o.status.success(), "{}", text(&o));
    check_placed(&s, LAPTOP);
    // Replaced, with no copy of the old file kept beside it.
    let names: Vec<_> = std::fs::read_dir(s.dir.path().join("mnt/etc/ssh"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("ssh_host_ed25519_key") && !n.ends_with(".pub"))
        .collect();
    assert_eq!(names, vec!["ssh_host_ed25519_key".to_owned()]);
}

#[test]
fn host_must_be_chosen_and_known() {
    let s = Scratch::new();
    let bundle = s.pack();
    let (pw, mnt) = (s.p("pw"), s.p("mnt"));
    let o = vault(&[
        "unlock",
        &bundle,
        "--root",
        &mnt,
        "--root-not-mountpoint",
        "--passphrase-file",
        &pw,
    ]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("laptop, server") && text(&o).contains("--host"),
        "{}",
        text(&o)
    );
    let o = s.unlock(&bundle, "desktop", &[]);
    assert!(
        text(&o).contains("host desktop is not in this bundle"),
        "{}",
        text(&o)
    );
    assert_eq!(s.entries("mnt"), 0);
}

#[test]
fn root_must_be_a_mount_point_unless_told() {
    let s = Scratch::new();
    let bundle = s.pack();
    let (pw, mnt) = (s.p("pw"), s.p("mnt"));
    let o = vault(&[
        "unlock",
        &bundle,
        "--host",
        "laptop",
        "--root",
        &mnt,
        "--passphrase-file",
        &pw,
    ]);
    assert_eq!(o.status.code(), Some(6), "{}", text(&o));
    assert!(
        text(&o).contains("not a mount point") && text(&o).contains("--root-not-mountpoint"),
        "{}",
        text(&o)
    );
}

#[test]
fn inspect_without_and_with_passphrase() {
    let s = Scratch::new();
    let bundle = s.pack();
    let o = vault(&["inspect", &bundle, "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["kdf"]["memory_kib"], 8 * 1024);
    assert!(
        v.get("items").is_none(),
        "no contents without the passphrase"
    );
    let pw = s.p("pw");
    let o = vault(&["inspect", &bundle, "--passphrase-file", &pw, "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["hosts"], serde_json::json!(["laptop", "server"]));
    let items = v["items"].as_array().unwrap();
    let key = items
        .iter()
        .find(|i| i["target"] == "/etc/age/server.agekey")
        .unwrap();
    assert_eq!(key["mode"], 0o400);
    assert_eq!(key["host"], "server");
    assert_eq!(key["sha256"].as_str().unwrap().len(), 64);
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("AGE-SECRET-KEY"),
        "inspect must not print contents"
    );
}

#[test]
fn pack_errors_name_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "x-passphrase\n").unwrap();
    let cases = [
        ("version = 1\n[[entry]]\nsource = \"missing\"\ntarget = \"/etc/x\"\n", "line 2: source", "does not exist"),
        ("version = 1\n[[entry]]\nsource = \"pw\"\ntarget = \"/etc/x\"\nmode = \"999\"\n", "line 2", "octal"),
        (
            "version = 1\n[[entry]]\nsource = \"pw\"\ntarget = \"/x\"\n[[entry]]\nsource = \"pw\"\ntarget = \"/x\"\n",
            "line 5",
            "already placed by the entry on line 2",
        ),
    ];
    for (toml, a, b) in cases {
        let m = dir.path().join("vault.toml");
        std::fs::write(&m, toml).unwrap();
        let out = dir.path().join("out.bundle");
        let o = vault(&pack_args(&m, &out, &pw));
        assert_eq!(o.status.code(), Some(5), "{}", text(&o));
        let t = text(&o);
        assert!(
            t.contains("vault.toml") && t.contains(a) && t.contains(b),
            "{t}"
        );
        assert!(!out.exists(), "no bundle on error");
    }
}

/// The template lists no file (see tests/pack_cli.rs); with one entry added, it packs.
#[test]
fn init_writes_a_manifest_that_packs() {
    let dir = tempfile::tempdir().unwrap();
    let o = vault(&["init", dir.path().to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let again = vault(&["init", dir.path().to_str().unwrap()]);
    assert_eq!(
        again.status.code(),
        Some(6),
        "init must not overwrite: {}",
        text(&again)
    );
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "x-passphrase\n").unwrap();
    let m = dir.path().join("vault.toml");
    let mut manifest = std::fs::read_to_string(&m).unwrap();
    manifest.push_str("\n[[entry]]\nsource = \"pw\"\ntarget = \"/etc/example\"\n");
    std::fs::write(&m, manifest).unwrap();
    let out = dir.path().join("b");
    pack(&m, &out, &pw);
}

#[test]
fn a_hosts_directory_keeps_its_mode_around_a_shared_file() {
    // The shared entry comes first in vault.toml, the host's directory holding it later: pack
    // puts the directory first, so it is created 0700 before the file goes in.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("pw"), "x-passphrase\n").unwrap();
    std::fs::write(d.join("known_hosts"), "github.com ssh-ed25519 AAAA\n").unwrap();
    std::fs::create_dir(d.join("ssh")).unwrap();
    std::fs::write(d.join("ssh/id_ed25519"), "key\n").unwrap();
    std::fs::write(
        d.join("vault.toml"),
        "version = 1\n\
         [[entry]]\nsource = \"known_hosts\"\ntarget = \"/root/.ssh/known_hosts\"\nmode = \"0644\"\n\
         [[entry]]\nsource = \"known_hosts\"\ntarget = \"/etc/x/y/z\"\n\
         [[entry]]\nsource = \"ssh\"\ntarget = \"/etc/x\"\nmode = \"0750\"\n\
         [hosts.h]\n\
         [[hosts.h.entry]]\nsource = \"ssh\"\ntarget = \"/root/.ssh\"\nmode = \"0700\"\n",
    )
    .unwrap();
    let out = d.join("b.vault");
    let (m, pw) = (d.join("vault.toml"), d.join("pw"));
    pack(&m, &out, &pw);
    let s = Scratch::new();
    std::fs::write(s.p("pw"), "x-passphrase\n").unwrap();
    let o = s.unlock(out.to_str().unwrap(), "h", &[]);
    assert!(o.status.success(), "{}", text(&o));
    let mnt = Path::new(&s.p("mnt")).to_path_buf();
    assert_eq!(mode_of(&mnt.join("root/.ssh")), 0o700);
    assert_eq!(mode_of(&mnt.join("root/.ssh/known_hosts")), 0o644);
    assert_eq!(mode_of(&mnt.join("etc/x")), 0o750);
    assert_eq!(
        std::fs::read(mnt.join("etc/x/y/z")).unwrap(),
        b"github.com ssh-ed25519 AAAA\n"
    );
}
