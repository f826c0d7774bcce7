//! `vault host add --from-existing` for a host the secrets repo already knows (a reinstall
//! that keeps the identity, a secrets folder rebuilt from the running hosts): the same key is
//! adopted without touching `.sops.yaml` or the agenix keys file; another key under the same
//! name is refused with the way out, and that way out works.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::vault_in as vault;

fn ssh_keygen(path: &Path) {
    let o = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "root@server1", "-f"])
        .arg(path)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

struct Repo {
    _tmp: tempfile::TempDir,
    /// The fresh secrets folder (`vault init`), with `keys/` holding server1's keys.
    ws: PathBuf,
    sops: PathBuf,
    keys: PathBuf,
    /// server1's key as it runs today, and its recipient.
    key: PathBuf,
    recipient: String,
}

/// A nix-config whose `.sops.yaml` and `keys.nix` already register server1's running key,
/// and a fresh secrets folder beside it.
fn repo() -> Option<Repo> {
    common::require_tool("ssh-keygen")?;
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("install-secrets");
    let cfg = tmp.path().join("nix-config");
    std::fs::create_dir_all(ws.join("keys")).unwrap();
    std::fs::create_dir_all(&cfg).unwrap();
    let key = ws.join("keys/server1");
    ssh_keygen(&key);
    let o = vault(&ws, &["keys", "convert", "--public", key.to_str().unwrap()]);
    let recipient = common::ok(o).trim().to_owned();
    let public = std::fs::read_to_string(ws.join("keys/server1.pub")).unwrap();
    let public: Vec<&str> = public.split_whitespace().take(2).collect();
    let sops = cfg.join(".sops.yaml");
    std::fs::write(
        &sops,
        format!(
            "keys:\n  - &admin age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\n  - &server1 {recipient} # the running host\ncreation_rules:\n  - path_regex: secrets/[^/]+\\.yaml$\n    age:\n      - *admin\n      - *server1\n"
        ),
    )
    .unwrap();
    let keys = cfg.join("keys.nix");
    std::fs::write(
        &keys,
        format!(
            "{{\n  admin = \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIL0idNvgGiucWgup/mP78zyC23uFjYq0evcWdjGQUaBH\";\n  server1 = \"{}\";\n}}\n",
            public.join(" ")
        ),
    )
    .unwrap();
    common::ok(vault(&ws, &["init"]));
    Some(Repo {
        _tmp: tmp,
        ws,
        sops,
        keys,
        key,
        recipient,
    })
}

fn add(r: &Repo, key: &Path) -> Output {
    vault(
        &r.ws,
        &[
            "host",
            "add",
            "server1",
            "--from-existing",
            key.to_str().unwrap(),
            "--sops-config",
            r.sops.to_str().unwrap(),
            "--agenix-keys",
            r.keys.to_str().unwrap(),
        ],
    )
}

#[test]
fn adopting_a_registered_host_with_its_own_key_changes_nothing_there() {
    let Some(r) = repo() else { return };
    let sops_before = std::fs::read(&r.sops).unwrap();
    let keys_before = std::fs::read(&r.keys).unwrap();
    let o = add(&r, &r.key);
    assert!(
        o.status.success(),
        "exit {:?}: {}",
        o.status.code(),
        err(&o)
    );
    assert_eq!(std::fs::read(&r.sops).unwrap(), sops_before, ".sops.yaml");
    assert_eq!(std::fs::read(&r.keys).unwrap(), keys_before, "keys.nix");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("already registered"),
        "says why nothing was added: {out}"
    );
    // vault.toml has the host, with the adopted key and its recipient.
    let m = vault::manifest::Manifest::load(&r.ws.join("vault.toml")).unwrap();
    assert_eq!(
        m.hosts["server1"].age_recipient.as_deref(),
        Some(r.recipient.as_str())
    );
    let copy = r.ws.join("hosts/server1/ssh_host_ed25519_key");
    assert_eq!(
        std::fs::read(&copy).unwrap(),
        std::fs::read(&r.key).unwrap()
    );
}

#[test]
fn another_key_under_a_registered_name_is_refused_with_a_way_out_that_works() {
    let Some(r) = repo() else { return };
    let other = r.ws.join("keys/new");
    ssh_keygen(&other);
    let sops_before = std::fs::read(&r.sops).unwrap();
    let keys_before = std::fs::read(&r.keys).unwrap();
    let toml_before = std::fs::read(r.ws.join("vault.toml")).unwrap();
    let o = add(&r, &other);
    assert_eq!(o.status.code(), Some(6), "{}", err(&o));
    let e = err(&o);
    assert!(e.contains("server1") && e.contains(&r.recipient), "{e}");
    assert!(
        e.contains("vault host remove server1"),
        "names the next step: {e}"
    );
    assert_eq!(std::fs::read(&r.sops).unwrap(), sops_before);
    assert_eq!(std::fs::read(&r.keys).unwrap(), keys_before);
    assert_eq!(std::fs::read(r.ws.join("vault.toml")).unwrap(), toml_before);
    assert!(!r.ws.join("hosts/server1").exists());

    // The step it names: server1 is not in vault.toml, but its lines elsewhere go.
    let o = vault(
        &r.ws,
        &[
            "host",
            "remove",
            "server1",
            "--sops-config",
            r.sops.to_str().unwrap(),
            "--agenix-keys",
            r.keys.to_str().unwrap(),
        ],
    );
    assert!(
        o.status.success(),
        "exit {:?}: {}",
        o.status.code(),
        err(&o)
    );
    let sops = std::fs::read_to_string(&r.sops).unwrap();
    assert!(
        !sops.contains("server1") && !sops.contains(&r.recipient),
        "{sops}"
    );
    assert!(!std::fs::read_to_string(&r.keys)
        .unwrap()
        .contains("server1"));
    assert_eq!(std::fs::read(r.ws.join("vault.toml")).unwrap(), toml_before);
    // Then the new key goes in.
    let o = add(&r, &other);
    assert!(
        o.status.success(),
        "exit {:?}: {}",
        o.status.code(),
        err(&o)
    );
    assert!(std::fs::read_to_string(&r.sops)
        .unwrap()
        .contains("- &server1 age1"));
}

#[test]
fn removing_a_host_nobody_knows_is_still_not_found() {
    let Some(r) = repo() else { return };
    let o = vault(
        &r.ws,
        &[
            "host",
            "remove",
            "server9",
            "--sops-config",
            r.sops.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(err(&o).contains("server9"), "{}", err(&o));
}
