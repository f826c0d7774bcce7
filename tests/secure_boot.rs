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

use common::{ok, require_tool, vault_bin};
use vault::secure_boot::auth;
use vault::secure_boot::layout::{self, Hierarchy};
use vault::secure_boot::{check_pair, Role};

#[path = "secure_boot/firmware.rs"]
mod firmware;

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

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
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
fn sbsign_with_the_db_key_verifies_with_db_pem_only() {
    if require_tool("sbsign").is_none() || require_tool("sbverify").is_none() {
        return;
    }
    let Some(bin) = efi_binary() else { return };
    let pki = pki(fleet());
    let t = tempfile::tempdir().unwrap();
    let signed = t.path().join("signed.efi");
    sbsign(
        &layout::key_file(&pki, Role::Db),
        &layout::cert_file(&pki, Role::Db),
        &bin,
        &signed,
    );
    assert!(sbverify(&layout::cert_file(&pki, Role::Db), &signed));
    assert!(!sbverify(&layout::cert_file(&pki, Role::Kek), &signed));
    assert!(!sbverify(&layout::cert_file(&pki, Role::Pk), &signed));
    assert!(
        !sbverify(&layout::cert_file(&pki, Role::Db), &bin),
        "unsigned"
    );
}

/// The `EFI_TIME` an `.auth` file starts with, as `sign-efi-sig-list -t` takes it.
fn timestamp_of(auth: &[u8]) -> String {
    let y = u16::from_le_bytes([auth[0], auth[1]]);
    format!(
        "{y:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        auth[2], auth[3], auth[4], auth[5], auth[6]
    )
}

/// What efitools makes of `certs` for `var`, signed by `signer`, with vault's time stamp.
fn efitools_auth(
    t: &Path,
    guid: &str,
    certs: &[PathBuf],
    var: &str,
    signer: (&Path, &Path),
    append: bool,
    vaults: &[u8],
) -> Vec<u8> {
    let mut esl = Vec::new();
    for (i, c) in certs.iter().enumerate() {
        let out = t.join(format!("{var}-{i}.esl"));
        let o = run(Command::new("cert-to-efi-sig-list")
            .arg("-g")
            .arg(guid)
            .arg(c)
            .arg(&out));
        assert!(o.status.success(), "{}", text(&o));
        esl.extend(std::fs::read(&out).unwrap());
    }
    let esl_path = t.join(format!("{var}.esl"));
    std::fs::write(&esl_path, &esl).unwrap();
    let out = t.join(format!("{var}-efitools.auth"));
    let mut cmd = Command::new("sign-efi-sig-list");
    cmd.env("TZ", "UTC");
    if append {
        cmd.arg("-a");
    }
    let o = run(cmd
        .arg("-t")
        .arg(timestamp_of(vaults))
        .arg("-k")
        .arg(signer.0)
        .arg("-c")
        .arg(signer.1)
        .arg(var)
        .arg(&esl_path)
        .arg(&out));
    assert!(o.status.success(), "{}", text(&o));
    // The signature list efitools made is the one vault signed.
    assert!(
        vaults.ends_with(&esl),
        "{var}: vault's content is not cert-to-efi-sig-list's"
    );
    std::fs::read(&out).unwrap()
}

#[test]
fn signature_lists_and_auth_files_equal_efitools_output() {
    if require_tool("cert-to-efi-sig-list").is_none() || require_tool("sign-efi-sig-list").is_none()
    {
        return;
    }
    let base = fleet();
    let pki = pki(base);
    let guid = std::fs::read_to_string(pki.join("GUID")).unwrap();
    let t = tempfile::tempdir().unwrap();
    let pair = |r: Role| (layout::key_file(&pki, r), layout::cert_file(&pki, r));
    for (var, role, signer) in [
        ("PK", Role::Pk, Role::Pk),
        ("KEK", Role::Kek, Role::Pk),
        ("db", Role::Db, Role::Kek),
    ] {
        let vaults = std::fs::read(sb_dir(base).join(format!("auth/{var}.auth"))).unwrap();
        let (k, c) = pair(signer);
        let theirs = efitools_auth(
            t.path(),
            &guid,
            &[layout::cert_file(&pki, role)],
            var,
            (&k, &c),
            false,
            &vaults,
        );
        assert_eq!(vaults.len(), theirs.len(), "{var}.auth: length");
        assert!(
            vaults == theirs,
            "{var}.auth differs from sign-efi-sig-list's"
        );
    }
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
    // A relative --pki-bundle is refused by the manifest's own rules, before any key is made.
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
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    common::assert_same(
        &mid,
        &common::snapshot(t.path()),
        "after a refused --pki-bundle",
    );
    assert!(!t.path().join("hosts/db2/secure-boot").exists());
}

#[test]
fn rotate_replaces_db_and_signs_the_updates_with_kek() {
    if require_tool("cert-to-efi-sig-list").is_none() || require_tool("sign-efi-sig-list").is_none()
    {
        return;
    }
    let t = fleet_copy();
    let base = t.path();
    let pki = pki(base);
    let old = Hierarchy::load(&pki).unwrap();
    let old_db_pem = std::fs::read(layout::cert_file(&pki, Role::Db)).unwrap();
    let untouched: Vec<(PathBuf, Vec<u8>)> = [
        pki.join("GUID"),
        layout::key_file(&pki, Role::Pk),
        layout::cert_file(&pki, Role::Pk),
        layout::key_file(&pki, Role::Kek),
        layout::cert_file(&pki, Role::Kek),
    ]
    .into_iter()
    .map(|p| {
        let b = std::fs::read(&p).unwrap();
        (p, b)
    })
    .collect();
    let manifest_before = std::fs::read(base.join("vault.toml")).unwrap();

    let out = ok(vault(
        base,
        &["host", "add", HOST, "--secure-boot", "--rotate"],
    ));
    assert!(
        out.contains("db-add.auth") && out.contains("dbx-add.auth"),
        "{out}"
    );
    for (p, b) in &untouched {
        assert_eq!(&std::fs::read(p).unwrap(), b, "{} changed", p.display());
    }
    assert_eq!(
        std::fs::read(base.join("vault.toml")).unwrap(),
        manifest_before
    );
    let new = Hierarchy::load(&pki).unwrap();
    assert_ne!(new.db.cert_der(), old.db.cert_der());
    assert_eq!(mode(&layout::key_file(&pki, Role::Db)), 0o600);
    assert_eq!(mode(&pki.join("keys/db")), 0o700);
    // The old pair is kept under retired/.
    let retired: Vec<PathBuf> = std::fs::read_dir(sb_dir(base).join("retired"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(retired.len(), 1);
    assert_eq!(
        std::fs::read(retired[0].join("db.pem")).unwrap(),
        old_db_pem
    );
    assert_eq!(mode(&retired[0].join("db.key")), 0o600);
    assert!(check_pair(&retired[0].join("db.pem"), &retired[0].join("db.key")).unwrap());

    // The updates are efitools' own, byte for byte.
    let guid = std::fs::read_to_string(pki.join("GUID")).unwrap();
    let auth = sb_dir(base).join("auth");
    let kek = (
        layout::key_file(&pki, Role::Kek),
        layout::cert_file(&pki, Role::Kek),
    );
    let scratch = tempfile::tempdir().unwrap();
    let db_add = std::fs::read(auth.join("db-add.auth")).unwrap();
    let theirs = efitools_auth(
        scratch.path(),
        &guid,
        &[layout::cert_file(&pki, Role::Db)],
        "db",
        (&kek.0, &kek.1),
        true,
        &db_add,
    );
    assert!(
        db_add == theirs,
        "db-add.auth differs from sign-efi-sig-list -a"
    );
    let dbx_add = std::fs::read(auth.join("dbx-add.auth")).unwrap();
    let theirs = efitools_auth(
        scratch.path(),
        &guid,
        &[retired[0].join("db.pem")],
        "dbx",
        (&kek.0, &kek.1),
        true,
        &dbx_add,
    );
    assert!(
        dbx_add == theirs,
        "dbx-add.auth differs from sign-efi-sig-list -a"
    );
    let db = std::fs::read(auth.join("db.auth")).unwrap();
    let theirs = efitools_auth(
        scratch.path(),
        &guid,
        &[layout::cert_file(&pki, Role::Db)],
        "db",
        (&kek.0, &kek.1),
        false,
        &db,
    );
    assert!(db == theirs, "db.auth after rotation");

    // A second rotation forbids both retired keys.
    ok(vault(
        base,
        &["host", "add", HOST, "--secure-boot", "--rotate"],
    ));
    let mut retired: Vec<PathBuf> = std::fs::read_dir(sb_dir(base).join("retired"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    retired.sort();
    assert_eq!(retired.len(), 2);
    let dbx_add = std::fs::read(auth.join("dbx-add.auth")).unwrap();
    let theirs = efitools_auth(
        scratch.path(),
        &guid,
        &[retired[1].join("db.pem"), retired[0].join("db.pem")],
        "dbx",
        (&kek.0, &kek.1),
        true,
        &dbx_add,
    );
    assert!(dbx_add == theirs, "dbx-add.auth of two retired keys");
    let _ = auth::DBX;
}

#[test]
fn placed_layout_is_what_lanzaboote_signs_with() {
    if require_tool("sbsign").is_none() {
        return;
    }
    let Some(bin) = efi_binary() else { return };
    let t = fleet_copy();
    let base = t.path();
    let pw = base.join("pw");
    std::fs::write(&pw, "example passphrase\n").unwrap();
    let bundle = base.join("b.vault");
    let mut args = vec!["pack", "--passphrase-file", "pw", "-o", "b.vault"];
    args.extend_from_slice(common::FAST_KDF);
    ok(vault(base, &args));
    let mnt = base.join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    ok(vault(
        base,
        &[
            "unlock",
            bundle.to_str().unwrap(),
            "--host",
            HOST,
            "--root",
            "mnt",
            "--root-not-mountpoint",
            "--passphrase-file",
            "pw",
        ],
    ));
    let placed = mnt.join("var/lib/sbctl");
    assert_eq!(mode(&placed), 0o700);
    for role in Role::ALL {
        for p in [
            layout::key_file(&placed, role),
            layout::cert_file(&placed, role),
        ] {
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
        assert_eq!(mode(&placed.join("keys").join(role.name())), 0o700);
    }
    assert_eq!(mode(&placed.join("keys")), 0o700);
    assert_eq!(
        std::fs::read(placed.join("GUID")).unwrap(),
        std::fs::read(pki(base).join("GUID")).unwrap()
    );
    // lanzaboote's defaults: privateKeyFile and publicKeyFile under pkiBundle/keys/db/.
    let (key, cert) = (placed.join("keys/db/db.key"), placed.join("keys/db/db.pem"));
    let signed = base.join("signed.efi");
    sbsign(&key, &cert, &bin, &signed);
    assert!(sbverify(&cert, &signed));
    assert!(!sbverify(&placed.join("keys/KEK/KEK.pem"), &signed));
    assert!(check_pair(&cert, &key).unwrap());
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
