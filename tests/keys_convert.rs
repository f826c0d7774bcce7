//! `vault keys convert` against ssh-to-age's own vectors and the files sops-nix encrypted with
//! the real sops; and a rekey decrypting with a passphrase-protected SSH key.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn vault(args: &[&str]) -> Output {
    Command::new(common::vault_bin())
        .args(args)
        .output()
        .expect("run vault")
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "vault failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn ssh_to_age_readme_vectors() {
    let Some(dir) = common::fixtures("ssh-to-age") else {
        return;
    };
    let secret = stdout(&vault(&["keys", "convert", p(&dir.join("id_ed25519"))]));
    assert_eq!(
        secret.trim(),
        "AGE-SECRET-KEY-1K3VN4N03PTHJWSJSCCMQCN33RY5FSKQPJ4KRRTG3JMQUYE0TUSEQEDH6V8"
    );
    let public = "age17044m9wgakla6pzftf4srtl3h5mcsr85jysgt5fg23zpnta8sfdqhzn452";
    let from_pub = stdout(&vault(&["keys", "convert", p(&dir.join("id_ed25519.pub"))]));
    assert_eq!(from_pub.trim(), public);
    let from_priv = stdout(&vault(&[
        "keys",
        "convert",
        "--public",
        p(&dir.join("id_ed25519")),
    ]));
    assert_eq!(from_priv.trim(), public);

    // ssh-keyscan output: one recipient per ed25519 line, RSA lines skipped.
    let scan = stdout(&vault(&["keys", "convert", p(&dir.join("keyscan.txt"))]));
    let lines: Vec<&str> = scan.lines().collect();
    assert_eq!(lines.len(), 2, "{scan}");
    assert!(lines.iter().all(|l| l.starts_with("age1")));
    assert_ne!(lines[0], lines[1]);
}

#[test]
fn passphrase_protected_key() {
    let Some(dir) = common::fixtures("ssh-to-age") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let pass = tmp.path().join("pass");
    // ssh-to-age's own test uses the passphrase "test" for this key.
    std::fs::write(&pass, "test\n").unwrap();
    let key = dir.join("id_ed25519_passphrase");
    let secret = stdout(&vault(&[
        "keys",
        "convert",
        "--passphrase-file",
        p(&pass),
        p(&key),
    ]));
    let id: age::x25519::Identity = secret.trim().parse().unwrap();
    let from_pub = stdout(&vault(&[
        "keys",
        "convert",
        p(&dir.join("id_ed25519_passphrase.pub")),
    ]));
    assert_eq!(id.to_public().to_string(), from_pub.trim());

    std::fs::write(&pass, "wrong\n").unwrap();
    let o = vault(&["keys", "convert", "--passphrase-file", p(&pass), p(&key)]);
    assert_eq!(o.status.code(), Some(3), "wrong passphrase exits 3");
    assert!(String::from_utf8_lossy(&o.stderr).contains("wrong passphrase"));
    assert!(o.stdout.is_empty(), "nothing printed on failure");
}

#[test]
fn sops_nix_files_open_with_converted_host_key() {
    let Some(dir) = common::fixtures("sops-nix") else {
        return;
    };
    let Some(sops) = common::require_tool("sops") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let secret = stdout(&vault(&[
        "keys",
        "convert",
        p(&dir.join("ssh-ed25519-key")),
    ]));
    let keyfile = tmp.path().join("keys.txt");
    std::fs::write(&keyfile, &secret).unwrap();
    let public = stdout(&vault(&[
        "keys",
        "convert",
        p(&dir.join("ssh-ed25519-key.pub")),
    ]));
    let mut opened = 0;
    for name in [
        "secrets.yaml",
        "secrets.json",
        "secrets.env",
        "secrets.ini",
        "secrets.bin",
    ] {
        let file = dir.join(name);
        // Only some fixture files have age recipients (the older ones are PGP-only); those
        // that do list the converted recipient...
        let text = std::fs::read_to_string(&file).unwrap();
        if !text.contains("age1") {
            eprintln!("{name}: no age recipients in this fixture, skipped");
            continue;
        }
        assert!(
            text.contains(public.trim()),
            "{name} does not list {public}"
        );
        opened += 1;
        // ...and the real sops opens the file (checking its MAC) with the converted identity.
        let mut cmd = Command::new(&sops);
        cmd.args(["-d"]);
        match name {
            "secrets.bin" => {
                cmd.args(["--input-type", "binary", "--output-type", "binary"]);
            }
            "secrets.env" => {
                cmd.args(["--input-type", "dotenv", "--output-type", "dotenv"]);
            }
            _ => {}
        }
        let o = cmd
            .arg(&file)
            .env("SOPS_AGE_KEY_FILE", &keyfile)
            .env_remove("SOPS_AGE_KEY")
            .env("HOME", tmp.path())
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "sops -d {name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(!o.stdout.is_empty());
    }
    assert!(
        opened >= 1,
        "secrets.yaml at least must list the converted key"
    );
}

#[test]
fn rekey_with_passphrase_protected_ssh_identity() {
    let Some(dir) = common::fixtures("ssh-to-age") else {
        return;
    };
    let Some(sops) = common::require_tool("sops") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let pass = root.join("pass");
    std::fs::write(&pass, "test\n").unwrap();
    let old = stdout(&vault(&[
        "keys",
        "convert",
        p(&dir.join("id_ed25519_passphrase.pub")),
    ]));
    let new_id = age::x25519::Identity::generate();
    let new_key = root.join("new.txt");
    {
        use secrecy::ExposeSecret;
        std::fs::write(
            &new_key,
            format!("{}\n", new_id.to_string().expose_secret()),
        )
        .unwrap();
    }
    let rule = |recips: &str| format!("creation_rules:\n  - age: {recips}\n");
    std::fs::write(root.join(".sops.yaml"), rule(old.trim())).unwrap();
    std::fs::write(root.join("s.yaml"), "password: hunter2\n").unwrap();
    let o = Command::new(&sops)
        .args(["-e", "-i", "s.yaml"])
        .current_dir(root)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::write(
        root.join(".sops.yaml"),
        rule(&format!("{},{}", old.trim(), new_id.to_public())),
    )
    .unwrap();
    std::fs::write(
        root.join("vault.toml"),
        "version = 1\n[secrets]\nsops_config = \".sops.yaml\"\n",
    )
    .unwrap();
    let o = vault(&[
        "rekey",
        "-m",
        p(&root.join("vault.toml")),
        "-i",
        p(&dir.join("id_ed25519_passphrase")),
        "--passphrase-file",
        p(&pass),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = Command::new(&sops)
        .args(["-d", "s.yaml"])
        .current_dir(root)
        .env("SOPS_AGE_KEY_FILE", &new_key)
        .env("HOME", root)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "password: hunter2\n");
}

/// `-o FILE` writes the age identity into a file created with mode 0600 whatever the umask (a
/// shell's `>` gives 0644 under umask 022, 0666 under 000), with missing folders made 0700;
/// an existing file is refused (exit 6) unless `--force`, which replaces it, still 0600; the
/// input key itself is never the output, `--force` or not.
#[test]
fn an_output_file_is_private_from_its_creation() {
    use std::os::unix::fs::PermissionsExt;
    let Some(dir) = common::fixtures("ssh-to-age") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("id_ed25519");
    std::fs::copy(dir.join("id_ed25519"), &key).unwrap();
    let out = tmp.path().join("config/sops/age/keys.txt");
    let run = |args: &[&str]| {
        Command::new("sh")
            .args(["-c", "umask 000 && exec \"$0\" \"$@\""])
            .arg(common::vault_bin())
            .args(["keys", "convert"])
            .args(args)
            .output()
            .unwrap()
    };
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    let secret = "AGE-SECRET-KEY-1K3VN4N03PTHJWSJSCCMQCN33RY5FSKQPJ4KRRTG3JMQUYE0TUSEQEDH6V8\n";

    let o = run(&[p(&key), "-o", p(&out)]);
    assert_eq!(stdout(&o), "", "the key went to stdout");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), secret);
    assert_eq!(mode(&out), 0o600);
    assert_eq!(mode(out.parent().unwrap()), 0o700);

    std::fs::write(&out, "an older key\n").unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = run(&[p(&key), "-o", p(&out)]);
    assert_eq!(
        o.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("--force"));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "an older key\n");

    stdout(&run(&[p(&key), "-o", p(&out), "--force"]));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), secret);
    assert_eq!(mode(&out), 0o600);

    let before = std::fs::read(&key).unwrap();
    for force in [false, true] {
        let mut args = vec![p(&key), "-o", p(&key)];
        if force {
            args.push("--force");
        }
        let o = run(&args);
        assert_eq!(
            o.status.code(),
            Some(6),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(std::fs::read(&key).unwrap(), before);
    }
}

/// The key given on standard input (`vault keys convert -o KEY --force < KEY`, or `-` for the
/// file) is the key being converted too: never replaced by its age form (an ed25519 seed
/// cannot be had back from it), `--force` or not.
#[test]
fn a_key_read_from_standard_input_is_never_replaced() {
    let Some(dir) = common::fixtures("ssh-to-age") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("id_ed25519");
    std::fs::copy(dir.join("id_ed25519"), &key).unwrap();
    let before = std::fs::read(&key).unwrap();
    for args in [&["-o"][..], &["-", "-o"][..]] {
        let o = Command::new(common::vault_bin())
            .args(["keys", "convert"])
            .args(args)
            .arg(&key)
            .arg("--force")
            .stdin(std::fs::File::open(&key).unwrap())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(6), "{args:?}: {err}");
        assert!(err.contains("the key being converted"), "{args:?}: {err}");
        assert_eq!(std::fs::read(&key).unwrap(), before, "{args:?}: replaced");
    }
}
