//! What the keys and updates are to the programs that consume them: `sbsign` and `sbverify`
//! as lanzaboote calls them (also on the layout `vault unlock` placed), and efitools'
//! `cert-to-efi-sig-list` and `sign-efi-sig-list`, whose output every `.auth` vault writes
//! equals byte for byte.

use super::*;
use vault::secure_boot::auth;

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

    // A second rotation forbids both retired keys, even when the first one's private key was
    // deleted (it leaked: only its certificate is needed, for dbx).
    std::fs::remove_file(retired[0].join("db.key")).unwrap();
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
