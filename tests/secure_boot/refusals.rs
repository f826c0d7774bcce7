//! What `host add --secure-boot` refuses, and what a killed run leaves: a bad `--pki-bundle`
//! changes nothing (not even a new host's SSH key), a `--pki-bundle` that contradicts the
//! entry `vault.toml` has is not silently dropped, a run killed between writing the entry
//! and renaming the keys into place is completed by the next run, a rotation of a folder
//! that is a link to elsewhere happens there, never copying the keys beside the link, and a
//! `GUID` file sbctl could not read is not rotated as if it were fine.

use super::*;

/// A fresh `vault init` folder (no host yet).
fn empty_repo() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    ok(vault(t.path(), &["init", "."]));
    t
}

#[test]
fn a_bad_pki_bundle_changes_nothing_not_even_a_new_hosts_ssh_key() {
    let t = empty_repo();
    let before = common::snapshot(t.path());
    for bad in [
        "var/lib/sbctl",
        "/var/lib/../sbctl",
        "/var/lib/sbctl/",
        "/var/lib/sb\tctl",
        "/nix/store",
        "/nix/store/0000000000000000000000000000000-sbctl",
        "/var/lib/sb\"ctl",
        "/var/lib/sb\\ctl",
        "/var/lib/sb${x}ctl",
        "/var/lib/sb'ctl",
        "/var/lib/sb`x`ctl",
    ] {
        let o = vault(
            t.path(),
            &["host", "add", "web2", "--secure-boot", "--pki-bundle", bad],
        );
        let out = text(&o);
        assert_eq!(o.status.code(), Some(2), "{bad:?}: {out}");
        assert!(out.contains("--pki-bundle"), "{bad:?}: {out}");
        assert!(
            !out.contains('\t'),
            "{bad:?}: a control character printed raw: {out}"
        );
        common::assert_same(
            &before,
            &common::snapshot(t.path()),
            &format!("after --pki-bundle {bad:?}"),
        );
    }
}

#[test]
fn a_pki_bundle_other_than_the_entrys_is_refused_and_the_guides_new_hierarchy_works() {
    let t = fleet_copy();
    let base = t.path();
    // docs/guide/secure-boot.md, "KEK or PK leaked": the old folder moved away, then new keys.
    let old = base.join("old-web1-secure-boot");
    std::fs::rename(sb_dir(base), &old).unwrap();
    let before = common::snapshot(base);
    let o = vault(
        base,
        &[
            "host",
            "add",
            HOST,
            "--secure-boot",
            "--pki-bundle",
            "/persist/var/lib/sbctl",
        ],
    );
    let out = text(&o);
    assert_eq!(o.status.code(), Some(5), "{out}");
    assert!(
        out.contains("/var/lib/sbctl") && out.contains("/persist/var/lib/sbctl"),
        "{out}"
    );
    common::assert_same(
        &before,
        &common::snapshot(base),
        "after a contradicting --pki-bundle",
    );
    // Without the flag, the entry vault.toml has is kept and the new keys are made.
    let manifest = std::fs::read(base.join("vault.toml")).unwrap();
    let out = ok(vault(base, &["host", "add", HOST, "--secure-boot"]));
    assert!(
        out.contains("boot.lanzaboote.pkiBundle = \"/var/lib/sbctl\";"),
        "{out}"
    );
    assert_eq!(std::fs::read(base.join("vault.toml")).unwrap(), manifest);
    let new = Hierarchy::load(&pki(base)).unwrap();
    let gone = Hierarchy::load(&old.join("pki")).unwrap();
    assert_ne!(new.pk.cert_der(), gone.pk.cert_der());
    assert_ne!(new.guid, gone.guid);
}

/// Runs `vault args` in `dir` under strace, killed (SIGKILL) as it enters `syscall`.
pub(super) fn killed_at(dir: &Path, syscall: &str, args: &[&str]) -> Output {
    run(Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null", "-e"])
        .arg(format!("inject={syscall}:signal=SIGKILL"))
        .arg(vault_bin())
        .args(args)
        .current_dir(dir))
}

#[test]
fn a_run_killed_between_the_entry_and_the_keys_is_completed_by_the_next() {
    if require_tool("strace").is_none() {
        return;
    }
    // `rename`: vault.toml replaced (std::fs::rename); `renameat2`: the keys' folder renamed
    // into place (RENAME_NOREPLACE). Whichever comes second, a kill at it leaves one without
    // the other.
    for syscall in ["rename", "renameat2"] {
        let t = empty_repo();
        let base = t.path();
        ok(vault(base, &["host", "add", "db2"]));
        let o = killed_at(base, syscall, &["host", "add", "db2", "--secure-boot"]);
        assert!(
            !o.status.success(),
            "{syscall}: the run was not killed: {}",
            text(&o)
        );
        let out = ok(vault(base, &["host", "add", "db2", "--secure-boot"]));
        assert!(
            out.contains("boot.lanzaboote.pkiBundle = \"/var/lib/sbctl\";"),
            "{syscall}: {out}"
        );
        let m = vault::manifest::Manifest::load(&base.join("vault.toml")).unwrap();
        let placing: Vec<_> = m
            .entries_for("db2")
            .filter(|e| e.target == "/var/lib/sbctl")
            .collect();
        assert_eq!(placing.len(), 1, "{syscall}: {placing:?}");
        assert_eq!(placing[0].source, base.join("hosts/db2/secure-boot/pki"));
        Hierarchy::load(&base.join("hosts/db2/secure-boot/pki"))
            .unwrap_or_else(|e| panic!("{syscall}: {e}"));
        let left: Vec<String> = std::fs::read_dir(base.join("hosts/db2"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".vault-"))
            .collect();
        assert!(left.is_empty(), "{syscall}: {left:?}");
    }
}

#[test]
fn a_linked_secure_boot_folder_is_rotated_where_it_points() {
    let t = fleet_copy();
    let base = t.path();
    // The keys kept outside the repository (an encrypted volume, a private store), linked in.
    let store = tempfile::tempdir().unwrap();
    let real = store.path().join("web1-secure-boot");
    std::fs::rename(sb_dir(base), &real).unwrap();
    std::os::unix::fs::symlink(&real, sb_dir(base)).unwrap();
    let old = Hierarchy::load(&real.join("pki")).unwrap();

    ok(vault(
        base,
        &["host", "add", HOST, "--secure-boot", "--rotate"],
    ));
    let link = std::fs::symlink_metadata(sb_dir(base)).unwrap();
    assert!(
        link.file_type().is_symlink(),
        "the link was replaced by a folder of keys in the repository"
    );
    assert_eq!(std::fs::read_link(sb_dir(base)).unwrap(), real);
    assert_eq!(mode(&real), 0o700);
    let new = Hierarchy::load(&real.join("pki")).unwrap();
    assert_ne!(
        new.db.cert_der(),
        old.db.cert_der(),
        "the db key was not replaced"
    );
    assert_eq!(new.kek.cert_der(), old.kek.cert_der());
    let retired: Vec<PathBuf> = std::fs::read_dir(real.join("retired"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(retired.len(), 1, "{retired:?}");
    assert_eq!(
        vault::secure_boot::keys::load_certificate_der(&retired[0].join("db.pem")).unwrap(),
        old.db.cert_der()
    );
    assert!(real.join("auth/dbx-add.auth").is_file());
    // Nothing of it beside the link, and no temporaries on either side.
    let names = |d: &Path| -> Vec<String> {
        std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    assert!(
        !names(&base.join("hosts/web1"))
            .iter()
            .any(|n| n.contains(".vault-")),
        "{:?}",
        names(&base.join("hosts/web1"))
    );
    assert_eq!(names(store.path()), ["web1-secure-boot"]);
}

#[test]
fn a_guid_file_sbctl_cannot_read_is_refused_by_the_rotation() {
    let t = fleet_copy();
    let base = t.path();
    let guid = pki(base).join("GUID");
    let good = std::fs::read_to_string(&guid).unwrap();
    // What `uuidgen > GUID` or an editor leaves: sbctl's uuid.ParseBytes refuses 37 bytes.
    for bad in [
        format!("{good}\n"),
        format!(" {good}"),
        good.replace('-', " "),
    ] {
        std::fs::write(&guid, &bad).unwrap();
        let before = common::snapshot(base);
        let o = vault(base, &["host", "add", HOST, "--secure-boot", "--rotate"]);
        let out = text(&o);
        assert_eq!(o.status.code(), Some(5), "{bad:?}: {out}");
        assert!(
            out.contains("GUID") && out.contains("sbctl"),
            "{bad:?}: {out}"
        );
        common::assert_same(&before, &common::snapshot(base), &format!("{bad:?}"));
    }
    // The forms sbctl reads: braces, urn:uuid:, upper case.
    for fine in [
        format!("{{{good}}}"),
        format!("urn:uuid:{good}"),
        good.to_uppercase(),
    ] {
        std::fs::write(&guid, &fine).unwrap();
        assert!(Hierarchy::load(&pki(base)).is_ok(), "{fine:?}");
    }
}
