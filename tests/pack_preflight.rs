//! `vault pack` checks, with each host's private key, that the host can open the sops
//! secrets meant for it, using files written by the real `sops`.

mod common;

use std::path::Path;
use std::process::Command;

use common::{require_tool, vault_bin, FAST_KDF};

fn run(cmd: &mut Command) -> std::process::Output {
    cmd.output().expect("run")
}

fn recipient_of(key: &Path) -> String {
    let o = run(Command::new(vault_bin())
        .args(["keys", "convert", "--public"])
        .arg(key));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap().trim().to_owned()
}

fn sops_encrypt(sops: &Path, dir: &Path, name: &str, recipient: &str) {
    std::fs::write(dir.join("secrets").join(name), "password: hunter2\n").unwrap();
    let o = run(Command::new(sops).current_dir(dir.join("secrets")).args([
        "--encrypt",
        "--age",
        recipient,
        "--in-place",
        name,
    ]));
    assert!(
        o.status.success(),
        "sops: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn pack_reports_and_refuses_secrets_a_host_cannot_open() {
    let Some(sops) = require_tool("sops") else {
        return;
    };
    let Some(keygen) = require_tool("ssh-keygen") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("secrets")).unwrap();
    for k in ["host", "other"] {
        let o = run(Command::new(&keygen)
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(d.join(k)));
        assert!(o.status.success());
    }
    let host = recipient_of(&d.join("host"));
    let other = recipient_of(&d.join("other"));
    std::fs::write(
        d.join("secrets/.sops.yaml"),
        format!("creation_rules:\n  - path_regex: .*\\.yaml$\n    age: {host}\n"),
    )
    .unwrap();
    sops_encrypt(&sops, d, "good.yaml", &host);
    std::fs::write(
        d.join("vault.toml"),
        "version = 1\n[secrets]\nsops_config = \"secrets/.sops.yaml\"\n[hosts.web]\nssh_host_key = \"host\"\n\
         [[hosts.web.entry]]\nsource = \"host\"\ntarget = \"/etc/ssh/ssh_host_ed25519_key\"\n",
    )
    .unwrap();
    std::fs::write(d.join("pw"), "a passphrase\n").unwrap();
    let pack = || {
        let mut c = Command::new(vault_bin());
        c.args(["pack", "-m"])
            .arg(d.join("vault.toml"))
            .arg("-o")
            .arg(d.join("b"));
        c.arg("--passphrase-file").arg(d.join("pw")).args(FAST_KDF);
        c
    };
    let o = run(&mut pack());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("host web can decrypt 1 of 1"), "{err}");

    // A file the rule says is for the host, but encrypted to someone else: stale.
    std::fs::remove_file(d.join("b")).unwrap();
    sops_encrypt(&sops, d, "stale.yaml", &other);
    let o = run(&mut pack());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(6), "{err}");
    assert!(
        err.contains("stale.yaml") && err.contains("vault rekey"),
        "{err}"
    );
    assert!(!d.join("b").exists(), "no bundle when the preflight fails");
    let o = run(pack().arg("--no-preflight"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
