//! `vault host add/list/remove` edge cases: adopting an existing key, refusing what it cannot
//! do without touching anything, `--rule` selection.

mod common;

use std::path::Path;

use common::vault_in as vault;

const SOPS_YAML: &str = "keys:\n  - &admin age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\ncreation_rules:\n  - path_regex: web/.*\n    age:\n      - *admin\n  - path_regex: db/.*\n    age:\n      - *admin\n";

fn setup(dir: &Path, sops_yaml: &str) {
    std::fs::write(dir.join(".sops.yaml"), sops_yaml).unwrap();
    std::fs::write(
        dir.join("vault.toml"),
        "version = 1 # keep me\n[secrets]\nsops_config = \".sops.yaml\"\n",
    )
    .unwrap();
}

#[test]
fn adopt_existing_key_with_rule_selection() {
    let Some(fx) = common::fixtures("sops-nix") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    setup(dir, SOPS_YAML);
    let o = vault(
        dir,
        &[
            "host",
            "add",
            "db1",
            "--rule",
            "^db/",
            "--from-existing",
            fx.join("ssh-ed25519-key").to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The recipient sops-nix's test files list for this key.
    let r = "age1a8pk4akrdamj7nvqy3zywgtny8dxz7t5xzu7u8v9mhrayp9freqsqatyrs";
    let toml = std::fs::read_to_string(dir.join("vault.toml")).unwrap();
    assert!(toml.contains(&format!("age_recipient = \"{r}\"")), "{toml}");
    assert!(toml.starts_with("version = 1 # keep me\n"));
    let cfg = std::fs::read_to_string(dir.join(".sops.yaml")).unwrap();
    assert_eq!(
        cfg,
        SOPS_YAML
            .replace("  - &admin age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\n", &format!("  - &admin age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\n  - &db1 {r}\n"))
            .replace("db/.*\n    age:\n      - *admin\n", "db/.*\n    age:\n      - *admin\n      - *db1\n"),
        "only the db rule gets the alias"
    );
    // The adopted copy is the same key, 0600.
    let copy = dir.join("hosts/db1/ssh_host_ed25519_key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let o = vault(
        dir,
        &["keys", "convert", "--public", copy.to_str().unwrap()],
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), r);

    // Listed; a second add of the same host is refused.
    let o = vault(dir, &["host", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["name"], "db1");
    assert_eq!(v[0]["key_present"], true);
    let o = vault(dir, &["host", "add", "db1"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("already has a host key"));

    // remove --delete-keys takes the key files too.
    let o = vault(dir, &["host", "remove", "db1", "--delete-keys"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!copy.exists());
    assert_eq!(
        std::fs::read_to_string(dir.join(".sops.yaml")).unwrap(),
        SOPS_YAML
    );
}

#[test]
fn refusal_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // `age` as a scalar alias cannot gain a recipient by adding a line.
    let scalar = "keys:\n  - &admin age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\ncreation_rules:\n  - path_regex: .*\n    age: *admin\n";
    setup(dir, scalar);
    let toml_before = std::fs::read_to_string(dir.join("vault.toml")).unwrap();
    let o = vault(dir, &["host", "add", "web1"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(5), "{err}");
    assert!(
        err.contains("creation rule 1") && err.contains("list"),
        "{err}"
    );
    assert!(err.contains(".sops.yaml"), "names the file: {err}");
    assert!(!dir.join("hosts").exists(), "no key written on refusal");
    assert_eq!(
        std::fs::read_to_string(dir.join(".sops.yaml")).unwrap(),
        scalar
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("vault.toml")).unwrap(),
        toml_before
    );

    // A bad host name is refused before anything else.
    let o = vault(dir, &["host", "add", "Web_1!"]);
    assert_eq!(o.status.code(), Some(5));
}

/// `vault host remove` on the file `vault init` writes keeps its comments: the commented
/// `[secrets]` block and the field explanations sit right above the first host table.
#[test]
fn remove_keeps_the_comments_of_an_init_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let o = vault(dir, &["init"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let init = std::fs::read_to_string(dir.join("vault.toml")).unwrap();
    for args in [&["host", "add", "web1"][..], &["host", "add", "db1"]] {
        let o = vault(dir, args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    // The hosts in the file now, removed one after the other (init's own included).
    let o = vault(dir, &["host", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap().to_string())
        .collect();
    assert!(names.len() >= 2, "{names:?}");
    let init_hosts: Vec<&String> = names.iter().filter(|n| init.contains(n.as_str())).collect();
    for n in &names {
        let o = vault(dir, &["host", "remove", n]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let after = std::fs::read_to_string(dir.join("vault.toml")).unwrap();
    // Every comment line of the init file survives, except those about a removed host's own
    // entries.
    for line in init.lines().filter(|l| l.trim_start().starts_with('#')) {
        if init_hosts.iter().any(|h| line.contains(h.as_str())) {
            continue;
        }
        assert!(
            after.lines().any(|l| l == line),
            "lost comment {line:?}; the file is now:\n{after}"
        );
    }
    assert!(after.contains("# [secrets]") && after.contains("#   source  file or directory"));
    // And it is still a valid manifest.
    let o = vault(dir, &["host", "list"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// A keys file without agenix rules vault knows of would leave the agenix files unrekeyed:
/// `host add` and `rekey` say so instead of "nothing to do".
#[test]
fn agenix_keys_without_rules_is_pointed_out() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    setup(dir, SOPS_YAML);
    std::fs::create_dir(dir.join("keys")).unwrap();
    std::fs::write(dir.join("keys/keys.nix"), "{\n}\n").unwrap();
    let o = vault(
        dir,
        &["host", "add", "web1", "--agenix-keys", "keys/keys.nix"],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("agenix_rules"), "host add: {err}");
    let o = vault(dir, &["rekey", "--check"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("agenix_rules"), "rekey: {err}");
}

/// What a `host add` killed by SIGKILL after its first edits leaves (its undo record, the new
/// key pair, an edited `vault.toml` and `.sops.yaml`) is undone by the next `host add`, which
/// then adds the host in full.
#[test]
fn a_killed_host_adds_record_is_undone_by_the_next() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = std::fs::canonicalize(tmp.path()).unwrap();
    setup(&dir, SOPS_YAML);
    let toml = std::fs::read_to_string(dir.join("vault.toml")).unwrap();
    let bytes = |p: &Path| p.as_os_str().to_str().unwrap().as_bytes().to_vec();
    // A dead writer's record: PID 1 with a RUN whose lock no one holds.
    let record = serde_json::json!({
        "created": [bytes(&dir.join("hosts/web1/ssh_host_ed25519_key")),
                    bytes(&dir.join("hosts/web1/ssh_host_ed25519_key.pub"))],
        "dirs": [bytes(&dir.join("hosts")), bytes(&dir.join("hosts/web1"))],
        "restore": [[bytes(&dir.join("vault.toml")), toml],
                    [bytes(&dir.join(".sops.yaml")), SOPS_YAML]],
    });
    let name = ".vault-host-add.vault-1-0000000000000007-0.tmp";
    std::fs::write(dir.join(name), record.to_string()).unwrap();
    std::fs::create_dir_all(dir.join("hosts/web1")).unwrap();
    std::fs::write(dir.join("hosts/web1/ssh_host_ed25519_key"), "half a key").unwrap();
    std::fs::write(
        dir.join("vault.toml"),
        format!("{toml}[hosts.web1]\nssh_host_key = \"hosts/web1/ssh_host_ed25519_key\"\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join(".sops.yaml"),
        format!("{SOPS_YAML}# half edited\n"),
    )
    .unwrap();

    let o = vault(&dir, &["host", "add", "web1"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("undid an interrupted earlier `vault host add`"),
        "{err}"
    );
    assert!(!dir.join(name).exists(), "the record is removed");
    let key = std::fs::read_to_string(dir.join("hosts/web1/ssh_host_ed25519_key")).unwrap();
    assert!(key.contains("OPENSSH PRIVATE KEY"), "a new key: {key}");
    let now = std::fs::read_to_string(dir.join("vault.toml")).unwrap();
    assert_eq!(now.matches("[hosts.web1]").count(), 1, "{now}");
    assert!(now.starts_with(&toml), "{now}");
    let cfg = std::fs::read_to_string(dir.join(".sops.yaml")).unwrap();
    assert!(
        !cfg.contains("half edited") && cfg.contains("&web1"),
        "{cfg}"
    );
    assert!(
        common::leftovers(&dir).is_empty(),
        "{:?}",
        common::leftovers(&dir)
    );
}
