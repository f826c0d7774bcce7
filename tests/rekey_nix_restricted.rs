//! A collaborator's `secrets.nix` or `keys.nix` is evaluated by Debian's real `nix-instantiate`
//! (2.8) in restricted mode: it may import files of the secrets folder (`import ./keys.nix`),
//! but reading a file outside it (the admin's `~/.ssh/id_ed25519`, by absolute path, `~/`,
//! `<nixpath>` or a link) and fetching a URL (sending it out) fail, for `vault rekey --check`
//! and for the keys file `vault host add` edits, also when the admin's nix.conf turns on
//! flakes. Nothing secret reaches the output.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{ok, snapshot, text, write_identity};

const SECRET: &str = "TOPSECRET-the-admins-private-key";

struct Repo {
    _t: tempfile::TempDir,
    root: PathBuf,
    home: PathBuf,
    secrets: PathBuf,
    admin: String,
}

impl Repo {
    fn vault(&self, args: &[&str]) -> Output {
        Command::new(common::vault_bin())
            .args(args)
            .current_dir(&self.root)
            .env("HOME", &self.home)
            // A search path the admin set for their own use: not the repository's to read.
            .env("NIX_PATH", format!("home={}", self.home.display()))
            // Nix reads the admin's configuration from $HOME/.config/nix/nix.conf.
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("NIX_CONFIG")
            .env_remove("NIX_USER_CONF_FILES")
            .env_remove("SOPS_AGE_KEY_FILE")
            .output()
            .unwrap()
    }

    fn rules(&self, text: &str) {
        std::fs::write(self.secrets.join("secrets.nix"), text).unwrap();
    }

    fn key_path(&self) -> String {
        self.home.join(".ssh/id_ed25519").display().to_string()
    }
}

/// `secrets/a.age` encrypted to the admin; `secrets/keys.nix` naming the admin; the admin's
/// SSH "key" in `home/.ssh`.
fn setup() -> Option<Repo> {
    common::require_tool("nix-instantiate")?;
    let t = tempfile::tempdir().unwrap();
    let root = t.path().to_path_buf();
    let home = root.join("home");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::write(home.join(".ssh/id_ed25519"), SECRET).unwrap();
    let secrets = root.join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    let admin = write_identity(&root.join("admin.txt"));
    let to = [vault::keys::age::recipients::parse(&admin).unwrap()];
    let bytes = vault::keys::age::crypt::encrypt(b"db password\n", &to, false).unwrap();
    std::fs::write(secrets.join("a.age"), bytes).unwrap();
    std::fs::write(
        secrets.join("keys.nix"),
        format!("{{ admin = \"{admin}\"; }}\n"),
    )
    .unwrap();
    std::fs::write(
        root.join("vault.toml"),
        "version = 1\n\n[secrets]\nagenix_rules = \"secrets/secrets.nix\"\n\
         agenix_keys = \"secrets/keys.nix\"\n",
    )
    .unwrap();
    Some(Repo {
        _t: t,
        root,
        home,
        secrets,
        admin,
    })
}

/// The usual layout evaluates: `secrets.nix` imports `./keys.nix` (a rekey, then a check
/// that finds the file current).
#[test]
fn importing_the_repositorys_own_files_works() {
    let Some(r) = setup() else { return };
    r.rules("let keys = import ./keys.nix; in { \"a.age\".publicKeys = [ keys.admin ]; }\n");
    ok(r.vault(&["rekey", "-i", "admin.txt"]));
    ok(r.vault(&["rekey", "--check", "-i", "admin.txt"]));
    // The same rule written out: still current.
    r.rules(&format!(
        "{{ \"a.age\".publicKeys = [ \"{}\" ]; }}\n",
        r.admin
    ));
    ok(r.vault(&["rekey", "--check", "-i", "admin.txt"]));
}

/// Reading the admin's key from `secrets.nix`, four ways: refused by the evaluation (exit 1,
/// "restricted mode" or not on the search path), the key's text never printed, the repo
/// unchanged.
#[test]
fn reading_a_file_outside_the_repository_fails() {
    let Some(r) = setup() else { return };
    std::os::unix::fs::symlink(r.home.join(".ssh/id_ed25519"), r.secrets.join("link")).unwrap();
    let before = snapshot(&r.secrets);
    for read in [
        r.key_path(),
        "~/.ssh/id_ed25519".to_owned(),
        "<home/.ssh/id_ed25519>".to_owned(),
        "./link".to_owned(),
    ] {
        // The file's name carries what was read: any success would show it.
        r.rules(&format!(
            "let k = import ./keys.nix; in {{ \"${{builtins.readFile {read}}}\".publicKeys = [ k.admin ]; }}\n"
        ));
        for args in [
            &["rekey", "--check", "-i", "admin.txt"][..],
            &["rekey", "-i", "admin.txt"][..],
        ] {
            let o = r.vault(args);
            let t = text(&o);
            assert_eq!(o.status.code(), Some(1), "{read} {args:?}: {t}");
            assert!(
                !t.contains(SECRET),
                "{read} {args:?}: the key was read: {t}"
            );
            assert!(
                t.contains("restricted mode") || t.contains("search path"),
                "{read} {args:?}: {t}"
            );
        }
        let mut after = snapshot(&r.secrets);
        after.remove(&r.secrets.join("secrets.nix"));
        let mut want = before.clone();
        want.remove(&r.secrets.join("secrets.nix"));
        common::assert_same(&after, &want, "the repo changed");
    }
}

/// `secrets.nix` itself a link out of the repository: evaluating it would make its target's
/// folder readable; the link is not followed.
#[test]
fn a_secrets_nix_that_links_out_of_the_repository_is_refused() {
    let Some(r) = setup() else { return };
    std::fs::write(
        r.home.join(".ssh/rules.nix"),
        format!(
            "{{ \"${{builtins.readFile ./id_ed25519}}\".publicKeys = [ \"{}\" ]; }}\n",
            r.admin
        ),
    )
    .unwrap();
    std::os::unix::fs::symlink(r.home.join(".ssh/rules.nix"), r.secrets.join("secrets.nix"))
        .unwrap();
    let o = r.vault(&["rekey", "--check", "-i", "admin.txt"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(!t.contains(SECRET), "the key was read: {t}");
    assert!(t.contains("restricted mode"), "{t}");
}

/// A loopback HTTP server that counts the connections it gets and answers each with 404.
fn server() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            counted.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        }
    });
    (port, hits)
}

/// Fetching from `secrets.nix` (`fetchurl`, `fetchTarball`, an `import` of a fetched file):
/// the evaluation fails before any connection is made.
#[test]
fn fetching_a_url_fails_without_a_connection() {
    let Some(r) = setup() else { return };
    let (port, hits) = server();
    for fetch in [
        format!(
            "builtins.fetchurl \"http://127.0.0.1:{port}/k?${{builtins.hashString \"sha256\" (builtins.readFile ./keys.nix)}}\""
        ),
        format!("builtins.fetchTarball \"http://127.0.0.1:{port}/t.tar.gz\""),
        format!("import (builtins.fetchurl \"http://127.0.0.1:{port}/x.nix\")"),
    ] {
        r.rules(&format!(
            "let k = import ./keys.nix; in builtins.seq ({fetch}) {{ \"a.age\".publicKeys = [ k.admin ]; }}\n"
        ));
        let o = r.vault(&["rekey", "--check", "-i", "admin.txt"]);
        let t = text(&o);
        assert_eq!(hits.load(Ordering::SeqCst), 0, "{fetch}: nix connected: {t}");
        assert_eq!(o.status.code(), Some(1), "{fetch}: {t}");
        assert!(t.contains("restricted mode"), "{fetch}: {t}");
    }
}

/// An admin whose own nix.conf turns on flakes, as most flake users' does: Nix 2.8's restricted
/// mode does not check `builtins.fetchTree { type = "path"; }` (it copies any folder into the
/// world-readable store and reads it there) and `allowed-uris` does not cover
/// `builtins.fetchClosure` (it connects to any binary cache) nor the `github` fetcher's
/// `host`. The evaluation gets none of them: neither the key nor a connection.
#[test]
fn an_admin_nix_conf_with_flakes_gives_the_repository_no_fetcher() {
    let Some(r) = setup() else { return };
    let conf = r.home.join(".config/nix");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("nix.conf"),
        "experimental-features = nix-command flakes fetch-closure\n",
    )
    .unwrap();
    let (port, hits) = server();
    let ssh = r.home.join(".ssh");
    let before = snapshot(&r.secrets);
    for expr in [
        // Read, the key would be in nix's error message, which vault prints.
        format!(
            "builtins.throw (builtins.readFile ((builtins.fetchTree {{ type = \"path\"; path = \"{}\"; }}) + \"/id_ed25519\"))",
            ssh.display()
        ),
        format!(
            "builtins.seq (builtins.fetchClosure {{ fromStore = \"http://127.0.0.1:{port}\"; \
             fromPath = /nix/store/00000000000000000000000000000000-x; }}) \"x\""
        ),
    ] {
        r.rules(&format!(
            "let k = import ./keys.nix; in {{ \"${{{expr}}}\".publicKeys = [ k.admin ]; }}\n"
        ));
        let o = r.vault(&["rekey", "--check", "-i", "admin.txt"]);
        let t = text(&o);
        assert!(!t.contains(SECRET), "{expr}: the key was read: {t}");
        assert_eq!(hits.load(Ordering::SeqCst), 0, "{expr}: nix connected: {t}");
        assert_eq!(o.status.code(), Some(1), "{expr}: {t}");
        let mut after = snapshot(&r.secrets);
        after.remove(&r.secrets.join("secrets.nix"));
        let mut want = before.clone();
        want.remove(&r.secrets.join("secrets.nix"));
        common::assert_same(&after, &want, "the repo changed");
    }
}

/// A `PATH` with no absolute entry (`.`, `:`, empty): left empty, it would make every program
/// vault runs resolve in the current folder (an empty `PATH` is the current folder to
/// `execvp`), where a repository's own `nix-instantiate` waits. It never runs.
#[test]
fn a_path_without_absolute_entries_runs_nothing_from_the_repository() {
    let Some(r) = setup() else { return };
    r.rules("let k = import ./keys.nix; in { \"a.age\".publicKeys = [ k.admin ]; }\n");
    let marker = r.root.join("ran");
    // Shell builtins only: the script runs with the same empty PATH.
    let fake = format!("#!/bin/sh\necho ran >> '{}'\nexit 1\n", marker.display());
    for dir in [&r.root, &r.secrets] {
        let p = dir.join("nix-instantiate");
        std::fs::write(&p, &fake).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    for path in [".", ":", "", "secrets"] {
        let o = Command::new(common::vault_bin())
            .args(["rekey", "--check", "-i", "admin.txt"])
            .current_dir(&r.root)
            .env("HOME", &r.home)
            .env("PATH", path)
            .output()
            .unwrap();
        let t = text(&o);
        assert!(!o.status.success(), "PATH={path:?}: {t}");
        assert!(
            !marker.exists(),
            "PATH={path:?}: the repository's nix-instantiate ran: {t}"
        );
    }
}

/// `vault host add` evaluates the keys file it edited: a hostile one that reads the admin's
/// key fails (nothing written), while one that imports a file of its own folder is evaluated
/// there and takes the new host.
#[test]
fn the_keys_file_host_add_edits_is_evaluated_restricted_in_its_folder() {
    let Some(r) = setup() else { return };
    let keys = r.secrets.join("keys.nix");
    std::fs::write(
        &keys,
        format!(
            "{{\n  admin = \"{}\";\n  leak = builtins.readFile {};\n}}\n",
            r.admin,
            r.key_path()
        ),
    )
    .unwrap();
    let toml = std::fs::read(r.root.join("vault.toml")).unwrap();
    let before = std::fs::read(&keys).unwrap();
    let o = r.vault(&["host", "add", "web1"]);
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(!t.contains(SECRET), "the key was read: {t}");
    assert!(t.contains("restricted mode"), "{t}");
    assert_eq!(std::fs::read(&keys).unwrap(), before);
    assert_eq!(std::fs::read(r.root.join("vault.toml")).unwrap(), toml);
    assert!(!r.root.join("hosts/web1").exists());

    std::fs::write(
        r.secrets.join("admins.nix"),
        format!("{{ admin = \"{}\"; }}\n", r.admin),
    )
    .unwrap();
    std::fs::write(&keys, "import ./admins.nix // {\n  role = \"ops\";\n}\n").unwrap();
    let o = r.vault(&["host", "add", "web1"]);
    assert!(o.status.success(), "{}", text(&o));
    let edited = std::fs::read_to_string(&keys).unwrap();
    assert!(edited.contains("web1 = \"ssh-ed25519 "), "{edited}");
    assert!(Path::new(&r.root.join("hosts/web1/ssh_host_ed25519_key")).exists());
}
