//! The firmware decides. OVMF built with Secure Boot (`OVMF_CODE_4M.secboot.fd`, SMM, a
//! secure pflash) runs under QEMU with vault's keys enrolled in its variable store, and its
//! boot manager loads three disks in turn: the same EFI binary (systemd-boot) unsigned,
//! signed with another key (the host's KEK, which the firmware knows but not as db), and
//! signed with the host's db key. Its own log line for each says what it did:
//! `BdsDxe: failed to load … Access Denied` or `BdsDxe: starting …`.
//!
//! The keys get into the variable store three ways:
//! - `virt-fw-vars --set-pk/--add-kek/--add-db` with vault's certificates;
//! - vault's own `.auth` files, written by the firmware's `SetVariable` from the UEFI shell
//!   (`dmpstore -l`) in the order PK, KEK, db, so each signature is checked by the firmware
//!   (PK self-signed in setup mode, KEK against the new PK, db against the new KEK), with
//!   wrongly signed updates in between that it must refuse;
//! - systemd-boot's own enrolment (`secure-boot-enroll force`, `loader/keys/auto/`), the
//!   path lanzaboote's autoEnrollKeys uses.
//!
//! And `--rotate`'s `db-add.auth` and `dbx-add.auth`, applied in user mode (signed by KEK),
//! make the firmware boot the new db key's signature and refuse the old one's.

use vault::secure_boot::auth;
use vault::secure_boot::KeyPair;

use super::qemu::*;
use super::*;

#[test]
fn firmware_with_vaults_certificates_boots_only_what_db_signed() {
    if !tools(&["virt-fw-vars"]) {
        return;
    }
    let pki = pki(fleet());
    let t = tempfile::tempdir().unwrap();
    let guid = std::fs::read_to_string(pki.join("GUID")).unwrap();
    let vars = t.path().join("vars.fd");
    let o = run(Command::new("virt-fw-vars")
        .args(["--input", SETUP_VARS, "--output"])
        .arg(&vars)
        .args(["--set-pk", &guid])
        .arg(layout::cert_file(&pki, Role::Pk))
        .args(["--add-kek", &guid])
        .arg(layout::cert_file(&pki, Role::Kek))
        .args(["--add-db", &guid])
        .arg(layout::cert_file(&pki, Role::Db))
        .arg("--secure-boot"));
    assert!(o.status.success(), "virt-fw-vars: {}", text(&o));
    let (kek, db) = (pair(&pki, Role::Kek), pair(&pki, Role::Db));
    let disks = verdict_disks(t.path(), (&kek.0, &kek.1), (&db.0, &db.1));
    assert_enforces(&vars, &disks, "virt-fw-vars enrolment");
}

#[test]
fn firmware_enrols_vaults_auth_files_checking_each_signature() {
    if !tools(&[]) {
        return;
    }
    let base = fleet();
    let pki = pki(base);
    let h = Hierarchy::load(&pki).unwrap();
    let read = |n: &str| std::fs::read(sb_dir(base).join("auth").join(n)).unwrap();
    let (pk, kek, db) = (read("PK.auth"), read("KEK.auth"), read("db.auth"));
    let time = time_of(&kek);
    // The same updates, signed one level too low: the firmware must refuse them.
    let kek_by_kek =
        auth::signed_update(auth::KEK, &h.signature_list(Role::Kek), time, false, &h.kek).unwrap();
    let db_by_db =
        auth::signed_update(auth::DB, &h.signature_list(Role::Db), time, false, &h.db).unwrap();
    let t = tempfile::tempdir().unwrap();
    let vars = setup_mode_vars(t.path());
    shell_enrol(
        &vars,
        t.path(),
        &[
            ("PK.var", dmpstore_file(auth::PK, &pk, false), true),
            (
                "KEKbad.var",
                dmpstore_file(auth::KEK, &kek_by_kek, false),
                false,
            ),
            ("KEK.var", dmpstore_file(auth::KEK, &kek, false), true),
            (
                "dbbad.var",
                dmpstore_file(auth::DB, &db_by_db, false),
                false,
            ),
            ("db.var", dmpstore_file(auth::DB, &db, false), true),
        ],
        ".auth enrolment",
    );
    if require_tool("virt-fw-vars").is_some() {
        assert_holds_vaults_keys(&vars, &h, ".auth enrolment");
    }
    let (kek_pair, db_pair) = (pair(&pki, Role::Kek), pair(&pki, Role::Db));
    let disks = verdict_disks(
        t.path(),
        (&kek_pair.0, &kek_pair.1),
        (&db_pair.0, &db_pair.1),
    );
    assert_enforces(&vars, &disks, ".auth enrolment");
}

#[test]
fn systemd_boot_enrols_vaults_auth_files_as_lanzaboote_has_it_do() {
    if !tools(&[]) {
        return;
    }
    let base = fleet();
    let pki = pki(base);
    let read = |n: &str| std::fs::read(sb_dir(base).join("auth").join(n)).unwrap();
    let t = tempfile::tempdir().unwrap();
    let (kek_pair, db_pair) = (pair(&pki, Role::Kek), pair(&pki, Role::Db));
    let loader = t.path().join("sd-boot.efi");
    sbsign(&db_pair.0, &db_pair.1, &efi_binary().unwrap(), &loader);
    // lanzaboote's loader.conf with autoEnrollKeys: `secure-boot-enroll force`.
    let esp = t.path().join("esp.img");
    fat(
        &esp,
        &[
            ("EFI/BOOT/BOOTX64.EFI", std::fs::read(&loader).unwrap()),
            (
                "loader/loader.conf",
                b"timeout 1\nsecure-boot-enroll force\n".to_vec(),
            ),
            ("loader/keys/auto/PK.auth", read("PK.auth")),
            ("loader/keys/auto/KEK.auth", read("KEK.auth")),
            ("loader/keys/auto/db.auth", read("db.auth")),
        ],
    );
    let vars = setup_mode_vars(t.path());
    // systemd-boot counts down, enrols, resets; the firmware then starts the signed loader
    // again, now in user mode.
    let (log, took) = boot(&vars, &[&esp], |l| {
        l.matches("BdsDxe: starting").count() >= 2 || l.contains("Failed to write")
    });
    eprintln!("systemd-boot enrolment took {:.1} s", took.as_secs_f64());
    assert!(
        log.contains("Enrolling secure boot keys from directory: \\loader\\keys\\auto"),
        "{log}"
    );
    assert!(
        !log.contains("Failed to write"),
        "systemd-boot could not enrol:\n{log}"
    );
    assert!(log.matches("BdsDxe: starting").count() >= 2, "{log}");
    if require_tool("virt-fw-vars").is_some() {
        assert_holds_vaults_keys(
            &vars,
            &Hierarchy::load(&pki).unwrap(),
            "systemd-boot enrolment",
        );
    }
    let disks = verdict_disks(
        t.path(),
        (&kek_pair.0, &kek_pair.1),
        (&db_pair.0, &db_pair.1),
    );
    assert_enforces(&vars, &disks, "systemd-boot enrolment");
}

#[test]
fn firmware_takes_the_rotation_updates_from_kek_and_forbids_the_old_db_key() {
    if !tools(&["virt-fw-vars"]) {
        return;
    }
    // The machine as enrolled before the rotation.
    let work = fleet_copy();
    let base = work.path();
    let pki = pki(base);
    let t = tempfile::tempdir().unwrap();
    let old_db = (t.path().join("old-db.key"), t.path().join("old-db.pem"));
    std::fs::copy(layout::key_file(&pki, Role::Db), &old_db.0).unwrap();
    std::fs::copy(layout::cert_file(&pki, Role::Db), &old_db.1).unwrap();
    let guid = std::fs::read_to_string(pki.join("GUID")).unwrap();
    let vars = t.path().join("vars.fd");
    // User mode (a PK: every update of db and dbx must be signed by a KEK), with image
    // checks off for now: in user mode OVMF refuses to start its own shell.
    let o = run(Command::new("virt-fw-vars")
        .args(["--input", SETUP_VARS, "--output"])
        .arg(&vars)
        .args(["--set-pk", &guid])
        .arg(layout::cert_file(&pki, Role::Pk))
        .args(["--add-kek", &guid])
        .arg(layout::cert_file(&pki, Role::Kek))
        .args(["--add-db", &guid])
        .arg(&old_db.1)
        .args(["--set-false", "SecureBootEnable"]));
    assert!(o.status.success(), "virt-fw-vars: {}", text(&o));

    ok(vault(
        base,
        &["host", "add", HOST, "--secure-boot", "--rotate"],
    ));
    let read = |n: &str| std::fs::read(sb_dir(base).join("auth").join(n)).unwrap();
    let (db_add, dbx_add) = (read("db-add.auth"), read("dbx-add.auth"));
    let h = Hierarchy::load(&pki).unwrap();
    let old = KeyPair::load(Role::Db, &old_db.0, &old_db.1).unwrap();
    // The new db certificate signed by the old db key: not a KEK, so refused.
    let db_add_by_db = auth::signed_update(
        auth::DB,
        &h.signature_list(Role::Db),
        time_of(&db_add),
        true,
        &old,
    )
    .unwrap();
    shell_enrol(
        &vars,
        t.path(),
        &[
            (
                "dbbad.var",
                dmpstore_file(auth::DB, &db_add_by_db, true),
                false,
            ),
            ("dbadd.var", dmpstore_file(auth::DB, &db_add, true), true),
            ("dbxadd.var", dmpstore_file(auth::DBX, &dbx_add, true), true),
        ],
        "rotation",
    );
    // db gained the new certificate and kept the old (and whatever else it held); dbx
    // forbids the old.
    let got = firmware_variables(&vars);
    assert!(
        contains(&got["db"], h.db.cert_der()),
        "the new db certificate is not in db"
    );
    assert!(
        contains(&got["db"], old.cert_der()),
        "db lost the old certificate"
    );
    assert!(
        contains(&got["dbx"], old.cert_der()),
        "the old db certificate is not in dbx"
    );
    let o = run(Command::new("virt-fw-vars")
        .arg("--inplace")
        .arg(&vars)
        .args(["--set-true", "SecureBootEnable"]));
    assert!(o.status.success(), "virt-fw-vars: {}", text(&o));
    // Unsigned, signed with the old (now forbidden) db key, signed with the new one.
    let new_db = pair(&pki, Role::Db);
    let disks = verdict_disks(t.path(), (&old_db.0, &old_db.1), (&new_db.0, &new_db.1));
    assert_enforces(&vars, &disks, "rotation");
}
