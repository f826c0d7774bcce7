//! Two-step installs: `vault unlock --stage disk` places the disk entries and keeps the root
//! entries in a RAM-backed staging area; `vault place` places them without the passphrase and
//! wipes the area; `vault wipe` discards it. Run as root (CI is): the tests mount their own
//! ramfs for the hidden `--staging-dir`, and one runs the default `/run/vault` path inside a
//! private mount namespace.

mod common;
mod hostile;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};

use hostile::*;

/// The ramfs a test stages into; None (skip, with a message) when not root.
fn ram() -> Option<common::Ramfs> {
    common::Ramfs::new()
}

/// `unshare`, for the tests that use the real `/run/vault` in a private mount namespace;
/// None (skip, with a message) when not root, when `/run/vault` exists or without unshare.
fn unshare() -> Option<&'static str> {
    if !rustix::process::geteuid().is_root() || Path::new("/run/vault").exists() {
        eprintln!("SKIP: needs root and no existing /run/vault");
        return None;
    }
    let found = ["/usr/bin/unshare", "/bin/unshare"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    if found.is_none() {
        eprintln!("SKIP: unshare not found");
    }
    found
}

/// Runs the shell `script` in a private mount namespace; removes the `/run/vault` it left.
fn in_namespace(unshare: &str, script: &str) -> Output {
    let o = Command::new(unshare)
        .args(["--mount", "--propagation", "private", "sh", "-c", script])
        .output()
        .unwrap();
    let _ = std::fs::remove_dir("/run/vault");
    o
}

fn items() -> Vec<(vault::archive::Item, Option<Vec<u8>>)> {
    vec![
        (
            disk_item("/tmp/disko-password", b"luks pass"),
            Some(b"luks pass".to_vec()),
        ),
        // Staged as 0 (directory), 1 and 2 (files).
        (dir_item("/root/.ssh"), None),
        (
            file_item("/root/.ssh/id_ed25519", b"deploy key\n"),
            Some(b"deploy key\n".to_vec()),
        ),
        (
            vault::archive::Item {
                mode: 0o640,
                uid: 1000,
                gid: 100,
                ..file_item("/etc/ssh/ssh_host_ed25519_key", b"host key\n")
            },
            Some(b"host key\n".to_vec()),
        ),
    ]
}

fn vault(args: &[&str], staging: &Path) -> Output {
    Command::new(vault_bin())
        .args(args)
        .arg("--staging-dir")
        .arg(staging)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

fn place(s: &Scratch, staging: &Path, extra: &[&str]) -> Output {
    let mnt = s.mnt();
    let mut args = vec![
        "place",
        "--root",
        mnt.to_str().unwrap(),
        "--root-not-mountpoint",
    ];
    args.extend_from_slice(extra);
    vault(&args, staging)
}

/// `unlock --stage disk` of `bundle` with `staging` as the area, and `extra` flags.
fn stage_disk_with(s: &Scratch, bundle: &[u8], staging: &Path, extra: &[&str]) -> Output {
    let args = [
        "--stage",
        "disk",
        "--staging-dir",
        staging.to_str().unwrap(),
    ];
    s.unlock(bundle, &[&args[..], extra].concat())
}

fn stage_disk(s: &Scratch, bundle: &[u8], staging: &Path) -> Output {
    stage_disk_with(s, bundle, staging, &[])
}

/// [`items`] staged into `ram`: succeeds; what it printed.
fn staged(s: &Scratch, ram: &common::Ramfs) -> String {
    common::exits(&stage_disk(s, &honest(items()), &ram.path), 0)
}

#[test]
fn stage_disk_then_place_without_the_passphrase() {
    let Some(ram) = ram() else { return };
    let s = Scratch::new();
    let mnt_before = snapshot(&s.mnt());
    let said = staged(&s, &ram);
    assert!(said.contains("vault place"), "{said}");
    // Disk entries placed; root entries not yet.
    assert_eq!(
        std::fs::read(s.path("live/tmp/disko-password")).unwrap(),
        b"luks pass"
    );
    assert_eq!(
        snapshot(&s.mnt()),
        mnt_before,
        "root stage placed too early"
    );
    let staged = ram.path.join("staged");
    let m = std::fs::metadata(&staged).unwrap();
    assert_eq!(m.permissions().mode() & 0o777, 0o700);
    assert_eq!(std::fs::read(staged.join("1")).unwrap(), b"deploy key\n");

    // The passphrase file is gone: place must not need it (stdin is /dev/null too).
    std::fs::remove_file(s.path("pw")).unwrap();
    let o = place(&s, &ram.path, &[]);
    common::exits(&o, 0);
    assert_eq!(
        std::fs::read(s.path("mnt/root/.ssh/id_ed25519")).unwrap(),
        b"deploy key\n"
    );
    let k = std::fs::metadata(s.path("mnt/etc/ssh/ssh_host_ed25519_key")).unwrap();
    assert_eq!(k.mode() & 0o7777, 0o640);
    assert_eq!((k.uid(), k.gid()), (1000, 100));
    assert_eq!(
        std::fs::metadata(s.path("mnt/root/.ssh")).unwrap().mode() & 0o7777,
        0o755
    );
    // Wiped: nothing left in the area.
    assert_eq!(std::fs::read_dir(&ram.path).unwrap().count(), 0);
    // A second place has nothing to do.
    let o = place(&s, &ram.path, &[]);
    let said = common::exits(&o, 6);
    assert!(said.contains("nothing is staged"), "{said}");
}

#[test]
fn wipe_discards_the_staged_bundle() {
    let Some(ram) = ram() else { return };
    let s = Scratch::new();
    staged(&s, &ram);
    // Staging twice is refused, before the passphrase; a dry run reaches the same verdict.
    let o = stage_disk(&s, &honest(items()), &ram.path);
    let said = common::exits(&o, 6);
    assert!(said.contains("already staged"), "{said}");
    let o = stage_disk_with(&s, &honest(items()), &ram.path, &["--dry-run"]);
    let said = common::exits(&o, 6);
    assert!(said.contains("already staged"), "{said}");
    let o = vault(&["wipe"], &ram.path);
    let said = common::exits(&o, 0);
    assert!(said.contains("Wiped"), "{said}");
    assert_eq!(std::fs::read_dir(&ram.path).unwrap().count(), 0);
    let before = s.state();
    let o = place(&s, &ram.path, &[]);
    common::exits(&o, 6);
    assert_eq!(s.state(), before);
    let o = vault(&["wipe"], &ram.path);
    assert!(text(&o).contains("Nothing was staged"), "{}", text(&o));
}

#[test]
fn a_disk_backed_staging_area_is_refused() {
    let s = Scratch::new();
    // The scratch directory is on the build machine's disk (not tmpfs/ramfs).
    let disk = s.path("staging");
    let fs_is_ram = {
        std::fs::create_dir(&disk).unwrap();
        vault::staging::check_ram_backed(&disk).is_ok()
    };
    if fs_is_ram {
        eprintln!("SKIP: the scratch directory is on tmpfs here");
        return;
    }
    let before = s.state();
    let o = stage_disk(&s, &honest(items()), &disk);
    let said = common::exits(&o, 6);
    assert!(said.contains("not on ramfs or tmpfs"), "{said}");
    assert!(said.contains("hint:"), "{said}");
    assert_eq!(
        s.state(),
        before,
        "disk entries placed although staging was refused"
    );
    assert_eq!(std::fs::read_dir(&disk).unwrap().count(), 0);
}

#[test]
fn a_modified_staging_area_is_refused_at_place() {
    let Some(ram) = ram() else { return };
    let s = Scratch::new();
    staged(&s, &ram);
    std::fs::write(ram.path.join("staged/2"), b"evil key\n").unwrap();
    let before = s.state();
    let o = place(&s, &ram.path, &[]);
    let said = common::exits(&o, 4);
    assert!(said.contains("does not match its SHA-256"), "{said}");
    assert_eq!(
        s.state(),
        before,
        "a file was placed from a modified staging area"
    );
    // Staging area kept for inspection / wipe.
    assert!(ram.path.join("staged/manifest.json").exists());
}

#[test]
fn place_refuses_existing_files_and_keeps_the_staged_copy() {
    let Some(ram) = ram() else { return };
    let s = Scratch::new();
    staged(&s, &ram);
    std::fs::write(s.path("mnt/etc/ssh/ssh_host_ed25519_key"), b"old").unwrap();
    let before = s.state();
    let o = place(&s, &ram.path, &[]);
    let said = common::exits(&o, 6);
    assert!(said.contains("exists"), "{said}");
    assert_eq!(s.state(), before);
    let o = place(&s, &ram.path, &["--force"]);
    common::exits(&o, 0);
    assert_eq!(
        std::fs::read(s.path("mnt/etc/ssh/ssh_host_ed25519_key")).unwrap(),
        b"host key\n"
    );
    assert!(
        !format!("{:?}", s.state()).contains("backup"),
        "a copy was kept"
    );
    assert_eq!(std::fs::read_dir(&ram.path).unwrap().count(), 0);
}

#[test]
fn a_hostile_bundle_stages_nothing() {
    let Some(ram) = ram() else { return };
    let s = Scratch::new();
    // The last item's contents do not match: the walk fails after the root items were copied
    // into the incoming area, which must be wiped.
    let mut its = items();
    let last = its.len() - 1;
    its[last].1 = Some(b"HOST key\n".to_vec());
    let b = honest(its);
    let before = s.state();
    let o = stage_disk(&s, &b, &ram.path);
    common::exits(&o, 4);
    assert_eq!(s.state(), before);
    assert_eq!(std::fs::read_dir(&ram.path).unwrap().count(), 0);
}

#[test]
fn an_owner_chown_cannot_take_is_refused_before_staging() {
    // A root-stage item with uid 4294967295 used to stage fine and panic in `vault place`,
    // leaving the secrets in the area.
    let Some(ram) = ram() else { return };
    let s = Scratch::new();
    let mut its = items();
    its[2].0.uid = u32::MAX;
    let before = s.state();
    let o = stage_disk(&s, &honest(its), &ram.path);
    let said = common::exits(&o, 4);
    assert!(said.contains("uid 4294967295 is out of range"), "{said}");
    assert_eq!(s.state(), before);
    assert_eq!(std::fs::read_dir(&ram.path).unwrap().count(), 0);
}

#[test]
fn the_default_area_is_a_fresh_ramfs_under_run() {
    // The real default path, /run/vault, in a private mount namespace so the ramfs vault
    // mounts there cannot outlive the test or meet another run.
    let Some(unshare) = unshare() else { return };
    let s = Scratch::new();
    std::fs::write(s.path("b.vault"), honest(items())).unwrap();
    let script = format!(
        "set -e\n\
         V={vault}\n\
         $V unlock {b} --stage disk --root {mnt} --root-not-mountpoint --disk-root {live} --passphrase-file {pw}\n\
         stat -f -c %T /run/vault\n\
         stat -c %a /run/vault\n\
         $V place --root {mnt} --root-not-mountpoint </dev/null\n\
         if mountpoint -q /run/vault; then echo still-mounted; else echo unmounted; fi\n",
        vault = vault_bin().display(),
        b = s.path("b.vault").display(),
        mnt = s.mnt().display(),
        live = s.live().display(),
        pw = s.path("pw").display(),
    );
    let o = in_namespace(unshare, &script);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("\nramfs\n700\n"), "{out}");
    assert!(out.contains("unmounted"), "{out}");
    assert_eq!(
        std::fs::read(s.path("mnt/root/.ssh/id_ed25519")).unwrap(),
        b"deploy key\n"
    );
}

#[test]
fn the_disk_stage_can_be_run_again_after_wipe() {
    // docs/guide/disko-luks.md: `vault wipe`, then `vault unlock --stage disk` again.
    let Some(ram) = ram() else { return };
    let s = Scratch::new();
    let b = honest(items());
    let o = stage_disk(&s, &b, &ram.path);
    common::exits(&o, 0);
    let placed = s.state();
    let o = vault(&["wipe"], &ram.path);
    common::exits(&o, 0);
    for extra in [&[][..], &["--force"][..]] {
        let o = stage_disk_with(&s, &b, &ram.path, extra);
        let said = text(&o);
        assert!(o.status.success(), "{extra:?}: {said}");
        assert!(said.contains("in place"), "{said}");
        assert_eq!(s.state(), placed, "{extra:?}: a copy or a change was left");
        let o = vault(&["wipe"], &ram.path);
        common::exits(&o, 0);
    }
}

#[test]
fn a_refused_run_unmounts_the_ramfs_it_mounted() {
    // A hostile bundle (exit 4) and a wrong passphrase (exit 3) after vault mounted its ramfs
    // at /run/vault: nothing is staged, so nothing stays mounted. In a private mount namespace.
    let Some(unshare) = unshare() else { return };
    let s = Scratch::new();
    let mut its = items();
    let last = its.len() - 1;
    its[last].1 = Some(b"HOST key\n".to_vec());
    std::fs::write(s.path("hostile.vault"), honest(its)).unwrap();
    std::fs::write(s.path("b.vault"), honest(items())).unwrap();
    std::fs::write(s.path("wrong"), "not the passphrase\n").unwrap();
    let script = format!(
        "V={vault}\n\
         run() {{ $V unlock $1 --stage disk --root {mnt} --root-not-mountpoint --disk-root {live} --passphrase-file $2 </dev/null; echo exit=$?; \
         if mountpoint -q /run/vault; then echo still-mounted; else echo unmounted; fi; }}\n\
         run {hostile} {pw}\n\
         run {b} {wrong}\n",
        vault = vault_bin().display(),
        hostile = s.path("hostile.vault").display(),
        b = s.path("b.vault").display(),
        wrong = s.path("wrong").display(),
        mnt = s.mnt().display(),
        live = s.live().display(),
        pw = s.path("pw").display(),
    );
    let o = in_namespace(unshare, &script);
    let out = text(&o);
    assert!(
        out.contains("exit=4\nunmounted\nexit=3\nunmounted\n"),
        "{out}"
    );
}
