//! `vault host add --secure-boot`: the keys, certificates and signed updates it writes, checked
//! by the programs that consume them (openssl, sbsign/sbverify as lanzaboote calls them,
//! efitools' cert-to-efi-sig-list and sign-efi-sig-list) and by the firmware itself: OVMF in
//! Secure Boot mode under QEMU, with vault's keys enrolled, decides what boots.
//!
//! The keys of one host are generated once per run (three RSA-4096 keys take a while) and
//! copied for the tests that change them.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use common::{ok, require_tool, text, vault_bin};
use vault::secure_boot::layout::{self, Hierarchy};
use vault::secure_boot::{check_pair, Role};

#[path = "secure_boot/firmware.rs"]
mod firmware;
#[path = "secure_boot/hostile.rs"]
mod hostile;
#[path = "secure_boot/linux.rs"]
mod linux;
#[path = "secure_boot/qemu.rs"]
mod qemu;
#[path = "secure_boot/refusals.rs"]
mod refusals;
#[path = "secure_boot/tools.rs"]
mod tools;

const HOST: &str = "web1";

fn vault(dir: &Path, args: &[&str]) -> Output {
    Command::new(vault_bin())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run vault")
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// A workstation folder (`vault init`) with host `web1` and its Secure Boot keys, made once.
fn fleet() -> &'static Path {
    static FLEET: OnceLock<PathBuf> = OnceLock::new();
    FLEET.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("secure-boot");
        std::fs::create_dir_all(&root).unwrap();
        // Folders of earlier runs (their process is gone) go first.
        for e in std::fs::read_dir(&root).unwrap().flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = n.strip_prefix("fleet-") {
                if !Path::new(&format!("/proc/{pid}")).exists() {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let dir = root.join(format!("fleet-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        ok(vault(&dir, &["init", "."]));
        let out = ok(vault(&dir, &["host", "add", HOST, "--secure-boot"]));
        assert!(
            out.contains("boot.lanzaboote.pkiBundle = \"/var/lib/sbctl\";"),
            "{out}"
        );
        dir
    })
}

/// A copy of [`fleet`] to change.
fn fleet_copy() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let o = run(Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", fleet().display()))
        .arg(t.path()));
    assert!(o.status.success(), "{}", text(&o));
    t
}

fn sb_dir(base: &Path) -> PathBuf {
    base.join(layout::host_dir_rel(HOST))
}

fn pki(base: &Path) -> PathBuf {
    base.join(layout::pki_rel(HOST))
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn openssl(args: &[&str]) -> String {
    let o = run(Command::new("openssl").args(args));
    assert!(o.status.success(), "openssl {args:?}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A PE binary to sign: systemd-boot, which lanzaboote installs and signs too.
fn efi_binary() -> Option<PathBuf> {
    let p = PathBuf::from("/usr/lib/systemd/boot/efi/systemd-bootx64.efi");
    if p.is_file() {
        return Some(p);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "{} is missing; scripts/test installs systemd-boot-efi",
            p.display()
        );
    }
    eprintln!("SKIP: {} not found (systemd-boot-efi)", p.display());
    None
}

/// `sbsign` as lanzaboote's lzbt calls it.
fn sbsign(key: &Path, cert: &Path, from: &Path, to: &Path) {
    let o = run(Command::new("sbsign")
        .arg("--key")
        .arg(key)
        .arg("--cert")
        .arg(cert)
        .arg(from)
        .arg("--output")
        .arg(to));
    assert!(o.status.success(), "sbsign: {}", text(&o));
}

/// `sbverify` as lanzaboote's lzbt calls it.
fn sbverify(cert: &Path, file: &Path) -> bool {
    run(Command::new("sbverify").arg("--cert").arg(cert).arg(file))
        .status
        .success()
}

#[test]
fn host_add_writes_sbctls_layout_with_its_modes() {
    let base = fleet();
    let pki = pki(base);
    // sbctl reads GUID with uuid.ParseBytes; it writes the lowercase form without a newline.
    let guid = std::fs::read_to_string(pki.join("GUID")).unwrap();
    assert_eq!(guid.len(), 36, "{guid:?}");
    assert_eq!(guid, guid.trim().to_lowercase());
    assert_eq!(&guid[14..15], "4", "a version 4 UUID: {guid}");
    for d in [
        sb_dir(base),
        pki.clone(),
        pki.join("keys"),
        pki.join("keys/PK"),
        pki.join("keys/KEK"),
        pki.join("keys/db"),
        sb_dir(base).join("auth"),
    ] {
        assert_eq!(mode(&d), 0o700, "{}", d.display());
    }
    for role in Role::ALL {
        let key = layout::key_file(&pki, role);
        let cert = layout::cert_file(&pki, role);
        assert_eq!(mode(&key), 0o600, "{}", key.display());
        assert_eq!(mode(&cert), 0o644, "{}", cert.display());
        let k = std::fs::read_to_string(&key).unwrap();
        assert!(
            k.starts_with("-----BEGIN PRIVATE KEY-----\n"),
            "PKCS#8 PEM as sbctl reads it"
        );
        let c = cert.to_str().unwrap();
        let t = openssl(&["x509", "-in", c, "-noout", "-text"]);
        assert!(t.contains("Public-Key: (4096 bit)"), "{t}");
        assert!(
            t.contains("Signature Algorithm: sha256WithRSAEncryption"),
            "{t}"
        );
        let cn = format!("CN = {HOST} {}", role.description());
        assert!(t.contains(&format!("Subject: {cn}")), "{t}");
        assert!(t.contains(&format!("Issuer: {cn}")), "self-signed: {t}");
        // Self-signed: the certificate verifies against itself.
        openssl(&["verify", "-CAfile", c, "-partial_chain", c]);
        // Valid five years from now, to the second (sbctl: AddDate(5, 0, 0)).
        let start = openssl(&["x509", "-in", c, "-noout", "-startdate"]);
        let end = openssl(&["x509", "-in", c, "-noout", "-enddate"]);
        let year = |s: &str| -> i32 { s.split_whitespace().nth(3).unwrap().parse().unwrap() };
        assert_eq!(year(&end) - year(&start), 5, "{start} {end}");
        assert_eq!(
            start.split_whitespace().take(3).collect::<Vec<_>>()[1..],
            end.split_whitespace().take(3).collect::<Vec<_>>()[1..],
        );
        // The key is the certificate's (openssl's own view).
        let from_key = openssl(&["pkey", "-in", key.to_str().unwrap(), "-pubout"]);
        let from_cert = openssl(&["x509", "-in", c, "-noout", "-pubkey"]);
        assert_eq!(from_key, from_cert, "{role:?}");
    }
    // vault.toml places the whole layout, 0700 directory and 0600 files.
    let m: toml::Value =
        toml::from_str(&std::fs::read_to_string(base.join("vault.toml")).unwrap()).unwrap();
    let entries = m["hosts"][HOST]["entry"].as_array().unwrap();
    let e = entries
        .iter()
        .find(|e| e["target"].as_str() == Some("/var/lib/sbctl"))
        .expect("an entry for /var/lib/sbctl");
    assert_eq!(e["source"].as_str(), Some("hosts/web1/secure-boot/pki"));
    assert_eq!(e["mode"].as_str(), Some("0700"));
    assert_eq!(e["file_mode"].as_str(), Some("0600"));
}

#[test]
fn certificate_matches_key_is_told_apart() {
    let base = fleet();
    let pki = pki(base);
    for role in Role::ALL {
        assert!(check_pair(
            &layout::cert_file(&pki, role),
            &layout::key_file(&pki, role)
        )
        .unwrap());
    }
    assert!(!check_pair(
        &layout::cert_file(&pki, Role::Db),
        &layout::key_file(&pki, Role::Kek)
    )
    .unwrap());
    assert!(!check_pair(
        &layout::cert_file(&pki, Role::Pk),
        &layout::key_file(&pki, Role::Db)
    )
    .unwrap());

    // Keys openssl made, in both PEM forms sbsign accepts.
    let t = tempfile::tempdir().unwrap();
    let p = |n: &str| t.path().join(n).to_string_lossy().into_owned();
    openssl(&[
        "req",
        "-new",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=other/",
        "-keyout",
        &p("o.key"),
        "-out",
        &p("o.pem"),
        "-days",
        "1",
    ]);
    openssl(&[
        "rsa",
        "-in",
        &p("o.key"),
        "-traditional",
        "-out",
        &p("o-pkcs1.key"),
    ]);
    assert!(std::fs::read_to_string(p("o-pkcs1.key"))
        .unwrap()
        .starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    assert!(check_pair(Path::new(&p("o.pem")), Path::new(&p("o.key"))).unwrap());
    assert!(check_pair(Path::new(&p("o.pem")), Path::new(&p("o-pkcs1.key"))).unwrap());
    assert!(!check_pair(Path::new(&p("o.pem")), &layout::key_file(&pki, Role::Db)).unwrap());
    assert!(!check_pair(
        &layout::cert_file(&pki, Role::Db),
        Path::new(&p("o-pkcs1.key"))
    )
    .unwrap());

    // What is not a key or certificate is an error naming the file, not a "no".
    std::fs::write(p("junk"), "hello\n").unwrap();
    let e = check_pair(Path::new(&p("junk")), Path::new(&p("o.key"))).unwrap_err();
    assert!(e.to_string().contains("junk"), "{e}");
    let e = check_pair(Path::new(&p("o.pem")), Path::new(&p("o.pem"))).unwrap_err();
    assert!(e.to_string().contains("not an RSA private key"), "{e}");
    openssl(&["genpkey", "-algorithm", "ed25519", "-out", &p("ed.key")]);
    let e = check_pair(Path::new(&p("o.pem")), Path::new(&p("ed.key"))).unwrap_err();
    assert!(e.to_string().contains("ed.key"), "{e}");
    let e = check_pair(Path::new(&p("missing.pem")), Path::new(&p("o.key"))).unwrap_err();
    assert!(e.to_string().contains("missing.pem"), "{e}");
}

#[test]
fn host_add_refuses_what_it_cannot_do_and_changes_nothing() {
    let t = fleet_copy();
    let before = common::snapshot(t.path());
    // Keys exist: without --rotate, refused.
    let o = vault(t.path(), &["host", "add", HOST, "--secure-boot"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("--rotate"), "{}", text(&o));
    common::assert_same(
        &before,
        &common::snapshot(t.path()),
        "after a refused --secure-boot",
    );
    // A host without keys cannot be rotated.
    ok(vault(t.path(), &["host", "add", "db2"]));
    let mid = common::snapshot(t.path());
    let o = vault(
        t.path(),
        &["host", "add", "db2", "--secure-boot", "--rotate"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("vault host add db2 --secure-boot"),
        "{}",
        text(&o)
    );
    common::assert_same(
        &mid,
        &common::snapshot(t.path()),
        "after a refused --rotate",
    );
    // A relative --pki-bundle is refused by the manifest's own rules, before any key is made
    // (a bad command line: refusals.rs has the others).
    let o = vault(
        t.path(),
        &[
            "host",
            "add",
            "db2",
            "--secure-boot",
            "--pki-bundle",
            "var/lib/sbctl",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    common::assert_same(
        &mid,
        &common::snapshot(t.path()),
        "after a refused --pki-bundle",
    );
    assert!(!t.path().join("hosts/db2/secure-boot").exists());
}

#[test]
fn an_existing_host_gets_only_the_secure_boot_keys_where_asked() {
    let t = tempfile::tempdir().unwrap();
    let base = t.path();
    ok(vault(base, &["init", "."]));
    ok(vault(base, &["host", "add", "db2"]));
    let key = base.join("hosts/db2/ssh_host_ed25519_key");
    let before = std::fs::read(&key).unwrap();
    let out = ok(vault(
        base,
        &[
            "host",
            "add",
            "db2",
            "--secure-boot",
            "--pki-bundle",
            "/persist/var/lib/sbctl",
        ],
    ));
    assert!(
        out.contains("boot.lanzaboote.pkiBundle = \"/persist/var/lib/sbctl\";"),
        "{out}"
    );
    assert_eq!(
        std::fs::read(&key).unwrap(),
        before,
        "the SSH host key was replaced"
    );
    let m = vault::manifest::Manifest::load(&base.join("vault.toml")).unwrap();
    let targets: Vec<&str> = m.entries_for("db2").map(|e| e.target.as_str()).collect();
    assert_eq!(
        targets,
        [
            "/etc/ssh/ssh_host_ed25519_key",
            "/etc/ssh/ssh_host_ed25519_key.pub",
            "/persist/var/lib/sbctl"
        ]
    );
    assert!(Hierarchy::load(&base.join("hosts/db2/secure-boot/pki")).is_ok());
}

#[test]
fn a_killed_runs_leftover_is_removed_by_the_next_run() {
    let t = fleet_copy();
    let base = t.path();
    // What a SIGKILL during the write leaves: a temporary folder whose writer is gone.
    let stale = base.join("hosts/web1/.secure-boot.vault-999999999-0123456789abcdef.tmp");
    std::fs::create_dir_all(stale.join("pki/keys/db")).unwrap();
    std::fs::write(stale.join("pki/keys/db/db.key"), "half written").unwrap();
    let o = vault(base, &["host", "add", HOST, "--secure-boot", "--rotate"]);
    ok(o.clone());
    assert!(!stale.exists(), "the leftover is still there");
    assert!(
        text(&o).contains("left by an interrupted run"),
        "{}",
        text(&o)
    );
    // Nothing else of that pattern, and the rotation itself happened.
    let left: Vec<String> = std::fs::read_dir(base.join("hosts/web1"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".vault-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(sb_dir(base).join("auth/db-add.auth").is_file());
}
