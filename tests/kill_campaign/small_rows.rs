//! Rows of the campaign for the workstation commands that write a few files or one copy:
//! `init`, `keys convert -o`, `host remove`, `host add --initrd-ssh` and `--identity` to a known
//! host, and `detach -o`, run by
//! `workstation_commands_that_write_survive_kills_at_random_points` (docs/TESTING.md, "Kill
//! points"). Their runs are short, so most kill points fall in startup or after the exit; the
//! rows still hold them to the same promises as the long ones.

use std::os::unix::fs::PermissionsExt;

use super::more_rows::{attach, attach_scene, host_add, host_scene};
use super::*;

/// The names in `dir` of the scene, or why they are not exactly `want`.
fn holds_only(sc: &Scene, dir: &str, want: &[&str]) -> Result<(), String> {
    let mut names: Vec<String> = std::fs::read_dir(sc.s.path(dir))
        .map_err(|e| format!("{dir}: {e}"))?
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    (names == want)
        .then_some(())
        .ok_or(format!("{dir}/ holds {names:?}"))
}

fn mode(sc: &Scene, rel: &str) -> u32 {
    std::fs::metadata(sc.s.path(rel))
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

fn init_cmd(sc: &Scene) -> Command {
    sc.vault(&["init", "cfg"])
}

fn init_force(sc: &Scene) -> Command {
    sc.vault(&["init", "--force"])
}

/// `rel` holds `vault init`'s template, and its folder nothing else.
fn template_at(sc: &Scene, dir: &str) -> Result<(), String> {
    if dir != "." {
        holds_only(sc, dir, &["vault.toml"])?;
    }
    let rel = format!("{dir}/vault.toml");
    (std::fs::read_to_string(sc.s.path(&rel)).ok().as_deref() == Some(vault::manifest::TEMPLATE))
        .then_some(())
        .ok_or(format!("{rel} is not the template"))
}

/// A `vault.toml` of the user's own, which `init --force` replaces.
fn own_manifest(sc: &Scene) {
    std::fs::write(sc.s.path("vault.toml"), "version = 1\n# my notes\n").unwrap();
}

/// An ed25519 key (`key`, `key.pub`) to convert.
fn key_scene(sc: &Scene) {
    let k = vault::keys::HostKey::generate("root@k").unwrap();
    k.write_pair(&sc.s.path("key"), &sc.s.path("key.pub"))
        .unwrap();
}

/// The same, and an older key at the output, readable by others (`--force` replaces it).
fn older_key_scene(sc: &Scene) {
    key_scene(sc);
    std::fs::create_dir(sc.s.path("keys")).unwrap();
    std::fs::set_permissions(sc.s.path("keys"), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(sc.s.path("keys/host.age"), "an older key\n").unwrap();
    std::fs::set_permissions(
        sc.s.path("keys/host.age"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
}

fn convert(sc: &Scene) -> Command {
    sc.vault(&["keys", "convert", "key", "-o", "keys/host.age"])
}

fn convert_force(sc: &Scene) -> Command {
    sc.vault(&["keys", "convert", "key", "-o", "keys/host.age", "--force"])
}

/// `keys/` (0700) holds only `host.age` (0600): the key's age identity.
fn converted(sc: &Scene) -> Result<(), String> {
    use secrecy::ExposeSecret;
    holds_only(sc, "keys", &["host.age"])?;
    let key = vault::keys::HostKey::load(
        &sc.s.path("key"),
        &vault::keys::passphrase::Source::from_option(None),
    )
    .unwrap();
    let want = format!("{}\n", key.age_identity().unwrap().expose_secret());
    let got = std::fs::read_to_string(sc.s.path("keys/host.age")).unwrap_or_default();
    let modes = (mode(sc, "keys"), mode(sc, "keys/host.age"));
    (got == want && modes == (0o700, 0o600))
        .then_some(())
        .ok_or(format!(
            "keys/host.age is not the identity with modes 0700/0600 ({:o}, {:o})",
            modes.0, modes.1
        ))
}

/// A host `web1` added by `vault host add` (vault.toml, .sops.yaml, its key pair).
fn added_host(sc: &Scene) {
    host_scene(sc);
    let o = host_add(sc).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
}

fn host_remove(sc: &Scene) -> Command {
    sc.vault(&["host", "remove", "web1"])
}

fn host_remove_keys(sc: &Scene) -> Command {
    sc.vault(&["host", "remove", "web1", "--delete-keys"])
}

/// `web1` is in neither vault.toml nor .sops.yaml, `host list` works without it, and the
/// run's undo record is gone (a run killed after its last edit leaves it for the next run).
fn host_removed(sc: &Scene) -> Result<(), String> {
    let left = leftovers(sc.s.dir.path());
    if !left.is_empty() {
        return Err(format!("left behind: {left:?}"));
    }
    let toml = std::fs::read_to_string(sc.s.path("vault.toml")).unwrap();
    let sops = std::fs::read_to_string(sc.s.path(".sops.yaml")).unwrap();
    if toml.contains("web1") || sops.contains("web1") {
        return Err(format!("web1 is still there:\n{toml}\n{sops}"));
    }
    let o = sc.vault(&["host", "list"]).output().unwrap();
    o.status.success().then_some(()).ok_or_else(|| text(&o))
}

/// The same, and its key files gone (the folder `host add` made may stay).
fn host_removed_with_keys(sc: &Scene) -> Result<(), String> {
    host_removed(sc)?;
    holds_only(sc, "hosts/web1", &[])
}

fn initrd_add(sc: &Scene) -> Command {
    sc.vault(&["host", "add", "web1", "--initrd-ssh"])
}

/// `web1` has its initrd key pair, placed by an entry of vault.toml, and no undo record is
/// left.
fn initrd_added(sc: &Scene) -> Result<(), String> {
    let left = leftovers(sc.s.dir.path());
    if !left.is_empty() {
        return Err(format!("left behind: {left:?}"));
    }
    holds_only(
        sc,
        "hosts/web1",
        &[
            "initrd_ssh_host_ed25519_key",
            "initrd_ssh_host_ed25519_key.pub",
            "ssh_host_ed25519_key",
            "ssh_host_ed25519_key.pub",
        ],
    )?;
    let toml = std::fs::read_to_string(sc.s.path("vault.toml")).unwrap();
    toml.contains("/etc/secrets/initrd/ssh_host_ed25519_key")
        .then_some(())
        .ok_or(format!("no initrd entry:\n{toml}"))
}

/// `web1` known, and what `vault host identify` printed on its machine in `web1.id`.
fn identity_scene(sc: &Scene) {
    added_host(sc);
    std::fs::write(
        sc.s.path("web1.id"),
        "product_uuid = \"6f1c2a4e-8d3b-4c5a-9e7f-0a1b2c3d4e5f\"\nmacs = [\"00:00:5e:00:53:01\"]\n",
    )
    .unwrap();
}

fn identity_add(sc: &Scene) -> Command {
    sc.vault(&["host", "add", "web1", "--identity", "web1.id"])
}

/// vault.toml records `web1`'s identity, and no temporary is left beside it.
fn identity_added(sc: &Scene) -> Result<(), String> {
    let left = leftovers(sc.s.dir.path());
    if !left.is_empty() {
        return Err(format!("left behind: {left:?}"));
    }
    let toml = std::fs::read_to_string(sc.s.path("vault.toml")).unwrap();
    (toml.contains("[hosts.web1.identity]")
        && toml.contains("6f1c2a4e-8d3b-4c5a-9e7f-0a1b2c3d4e5f"))
    .then_some(())
    .ok_or(format!("no identity recorded:\n{toml}"))
}

/// The attach row's image with the bundle (`out/stick.img`), and an empty `plain/`.
fn detach_scene(sc: &Scene) {
    attach_scene(sc);
    let o = attach(sc).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    std::fs::create_dir(sc.s.path("plain")).unwrap();
}

/// The same, and another image at the output (`--force` replaces it).
fn detach_force_scene(sc: &Scene) {
    detach_scene(sc);
    std::fs::write(sc.s.path("plain/installer.iso"), noise(1 << 20, 7)).unwrap();
}

fn detach(sc: &Scene) -> Command {
    sc.vault(&[
        "detach",
        "--image",
        "out/stick.img",
        "-o",
        "plain/installer.iso",
    ])
}

fn detach_force(sc: &Scene) -> Command {
    let mut c = detach(sc);
    c.arg("--force");
    c
}

/// `plain/` holds only the installer image, byte for byte as it was before `attach`.
fn detached(sc: &Scene) -> Result<(), String> {
    holds_only(sc, "plain", &["installer.iso"])?;
    let same = std::fs::read(sc.s.path("plain/installer.iso")).ok()
        == std::fs::read(sc.s.path("installer.iso")).ok();
    same.then_some(())
        .ok_or("plain/installer.iso is not the original image".into())
}

pub(super) const SMALL_ROWS: &[Row] = &[
    Row {
        name: "init",
        stages: false,
        needs: &[],
        setup: |_| {},
        command: init_cmd,
        complete: |sc| template_at(sc, "cfg"),
        finished: |sc| template_at(sc, "cfg"),
        finish: |sc| again_unless(sc, |sc| template_at(sc, "cfg"), init_cmd),
    },
    Row {
        name: "init --force over the user's vault.toml",
        stages: false,
        needs: &[],
        setup: own_manifest,
        command: init_force,
        complete: |sc| template_at(sc, "."),
        finished: |sc| template_at(sc, "."),
        finish: |sc| vec![init_force(sc).stdin(Stdio::null()).output().unwrap()],
    },
    Row {
        name: "keys convert -o (a new folder)",
        stages: false,
        needs: &[],
        setup: key_scene,
        command: convert,
        complete: converted,
        finished: converted,
        finish: |sc| again_unless(sc, converted, convert),
    },
    Row {
        name: "keys convert -o --force",
        stages: false,
        needs: &[],
        setup: older_key_scene,
        command: convert_force,
        complete: converted,
        finished: converted,
        finish: |sc| vec![convert_force(sc).stdin(Stdio::null()).output().unwrap()],
    },
    Row {
        name: "host remove",
        stages: false,
        needs: &[],
        setup: added_host,
        command: host_remove,
        complete: host_removed,
        finished: host_removed,
        finish: |sc| again_unless(sc, host_removed, host_remove),
    },
    Row {
        name: "host remove --delete-keys",
        stages: false,
        needs: &[],
        setup: added_host,
        command: host_remove_keys,
        complete: host_removed_with_keys,
        finished: host_removed_with_keys,
        finish: |sc| again_unless(sc, host_removed_with_keys, host_remove_keys),
    },
    Row {
        name: "host add --initrd-ssh to a known host",
        stages: false,
        needs: &[],
        setup: added_host,
        command: initrd_add,
        complete: initrd_added,
        finished: initrd_added,
        finish: |sc| again_unless(sc, initrd_added, initrd_add),
    },
    Row {
        name: "host add --identity to a known host",
        stages: false,
        needs: &[],
        setup: identity_scene,
        command: identity_add,
        complete: identity_added,
        finished: identity_added,
        finish: |sc| again_unless(sc, identity_added, identity_add),
    },
    Row {
        name: "detach -o",
        stages: false,
        needs: &["xorriso"],
        setup: detach_scene,
        command: detach,
        complete: detached,
        finished: detached,
        finish: |sc| again_unless(sc, detached, detach),
    },
    Row {
        name: "detach -o --force over another image",
        stages: false,
        needs: &["xorriso"],
        setup: detach_force_scene,
        command: detach_force,
        complete: detached,
        finished: detached,
        finish: |sc| again_unless(sc, detached, detach_force),
    },
];
