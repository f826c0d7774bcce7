//! Rows of the campaign beyond placement: `host add`, `rekey` (agenix) and `attach`, run by
//! `more_commands_that_write_survive_kills_at_random_points` (docs/TESTING.md, "Kill points").

use super::*;

const SOPS_YAML: &str = "keys:\n  - &admin age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\ncreation_rules:\n  - path_regex: secrets/.*\n    age:\n      - *admin\n";

pub(super) fn host_scene(sc: &Scene) {
    std::fs::write(sc.s.path(".sops.yaml"), SOPS_YAML).unwrap();
    std::fs::write(
        sc.s.path("vault.toml"),
        "version = 1\n[secrets]\nsops_config = \".sops.yaml\"\n",
    )
    .unwrap();
}

pub(super) fn host_add(sc: &Scene) -> Command {
    sc.vault(&["host", "add", "web1"])
}

/// `web1` is in vault.toml and .sops.yaml, with its key beside them, listed by `host list`.
fn host_added(sc: &Scene) -> Result<(), String> {
    let toml = std::fs::read_to_string(sc.s.path("vault.toml")).unwrap();
    let sops = std::fs::read_to_string(sc.s.path(".sops.yaml")).unwrap();
    let key = sc.s.path("hosts/web1/ssh_host_ed25519_key");
    if !toml.contains("[hosts.web1]") || !sops.contains("web1") || !key.is_file() {
        return Err(format!("web1 is not complete:\n{toml}\n{sops}"));
    }
    let o = sc.vault(&["host", "list"]).output().unwrap();
    (o.status.success() && text(&o).contains("web1"))
        .then_some(())
        .ok_or_else(|| text(&o))
}

/// An agenix repo of 200 files encrypted to `old.txt`'s key, whose rules add a second key.
fn rekey_scene(sc: &Scene) {
    use secrecy::ExposeSecret;
    let repo = sc.s.path("repo");
    std::fs::create_dir(&repo).unwrap();
    let old = age::x25519::Identity::generate();
    let new = age::x25519::Identity::generate();
    std::fs::write(
        sc.s.path("old.txt"),
        format!("{}\n", old.to_string().expose_secret()),
    )
    .unwrap();
    let (o, n) = (old.to_public().to_string(), new.to_public().to_string());
    let r: age::x25519::Recipient = o.parse().unwrap();
    for i in 0..200 {
        let enc =
            age::Encryptor::with_recipients(std::iter::once(&r as &dyn age::Recipient)).unwrap();
        let mut out = Vec::new();
        let mut w = enc.wrap_output(&mut out).unwrap();
        std::io::Write::write_all(&mut w, format!("secret {i}\n").as_bytes()).unwrap();
        w.finish().unwrap();
        std::fs::write(repo.join(format!("s{i}.age")), out).unwrap();
    }
    std::fs::write(
        repo.join("secrets.nix"),
        "let k = import ./keys.nix; in builtins.listToAttrs (builtins.genList (i: { name = \"s${toString i}.age\"; value.publicKeys = k; }) 200)\n",
    )
    .unwrap();
    std::fs::write(repo.join("keys.nix"), format!("[ \"{o}\" \"{n}\" ]\n")).unwrap();
    std::fs::write(
        sc.s.path("vault.toml"),
        "version = 1\n[secrets]\nagenix_rules = \"repo/secrets.nix\"\n",
    )
    .unwrap();
}

fn rekey(sc: &Scene) -> Command {
    sc.vault(&["rekey", "-i", "old.txt"])
}

fn rekeyed(sc: &Scene) -> Result<(), String> {
    let o = sc
        .vault(&["rekey", "--check", "-i", "old.txt"])
        .output()
        .unwrap();
    o.status.success().then_some(()).ok_or_else(|| text(&o))
}

/// An isohybrid installer image (32 MiB of contents, so that copying it takes a while).
pub(super) fn attach_scene(sc: &Scene) {
    write_bundle(sc);
    let tree = sc.s.path("tree");
    std::fs::create_dir_all(tree.join("isolinux")).unwrap();
    std::fs::copy(
        "/usr/lib/ISOLINUX/isolinux.bin",
        tree.join("isolinux/isolinux.bin"),
    )
    .unwrap();
    std::fs::write(tree.join("blob"), noise(32 << 20, 9)).unwrap();
    let o = Command::new("xorriso")
        .args([
            "-as",
            "mkisofs",
            "-iso-level",
            "3",
            "-volid",
            "nixos-minimal",
        ])
        .args([
            "-eltorito-boot",
            "isolinux/isolinux.bin",
            "-eltorito-catalog",
            "isolinux/boot.cat",
        ])
        .args(["-no-emul-boot", "-boot-load-size", "4", "-boot-info-table"])
        .args([
            "-isohybrid-mbr",
            "/usr/lib/ISOLINUX/isohdpfx.bin",
            "-r",
            "-o",
        ])
        .arg(sc.s.path("installer.iso"))
        .arg(&tree)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    std::fs::create_dir_all(sc.s.path("out")).unwrap();
}

pub(super) fn attach(sc: &Scene) -> Command {
    sc.vault(&[
        "attach",
        "--no-binary",
        "--image",
        "installer.iso",
        "--bundle",
        "b.vault",
        "-o",
        "out/stick.img",
    ])
}

/// The image in `out/` (and nothing else there) carries the bundle: `vault inspect` opens it.
fn attached(sc: &Scene) -> Result<(), String> {
    let names: Vec<String> = std::fs::read_dir(sc.s.path("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    if names != ["stick.img"] {
        return Err(format!("out/ holds {names:?}"));
    }
    let o = sc
        .vault(&["inspect", "out/stick.img", "--passphrase-file", "pw"])
        .output()
        .unwrap();
    o.status.success().then_some(()).ok_or_else(|| text(&o))
}

/// Rows for the commands outside placement that write: host add, rekey, attach (the smaller
/// workstation commands are in `small_rows.rs`).
pub(super) const MORE_ROWS: &[Row] = &[
    Row {
        name: "host add",
        stages: false,
        needs: &[],
        setup: host_scene,
        command: host_add,
        complete: host_added,
        finished: host_added,
        finish: |sc| again_unless(sc, host_added, host_add),
    },
    Row {
        name: "rekey (agenix)",
        stages: false,
        needs: &["nix-instantiate"],
        setup: rekey_scene,
        command: rekey,
        complete: rekeyed,
        finished: rekeyed,
        finish: |sc| again_unless(sc, rekeyed, rekey),
    },
    Row {
        name: "attach",
        stages: false,
        needs: &["xorriso"],
        setup: attach_scene,
        command: attach,
        complete: attached,
        finished: attached,
        finish: |sc| again_unless(sc, attached, attach),
    },
];
