//! Discovery on the installer: the names of files it found on the installer media are
//! untrusted (whoever made the stick chose them), so they are printed escaped, never raw, and
//! in JSON as they are (an array of bytes when they are not UTF-8). With several bundles,
//! `vault unlock` asks which one, on a real terminal: without echo, Enter taking the one on
//! the installer's own medium, and an answer that is not a listed number (a passphrase typed
//! too early) never shown.
//!
//! Each scene runs in a private mount namespace with a tmpfs on `/iso`; the scenes take turns,
//! since they share the `/iso` folder they mount on.

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use common::{text, vault_bin};
use expectrl::{Eof, Regex, Session};

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// `/iso` holding `files` (name bytes, contents) under `/iso/vault`, for commands run in a
/// private mount namespace. `/iso` is created for the scene and removed when it is dropped.
struct Scene {
    src: tempfile::TempDir,
    unshare: &'static str,
    _turn: MutexGuard<'static, ()>,
}

impl Scene {
    fn new(files: &[(&[u8], &[u8])]) -> Option<Scene> {
        static TURN: Mutex<()> = Mutex::new(());
        let turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
        if !is_root() || Path::new("/iso").exists() {
            eprintln!("SKIP: needs root and no /iso on this machine");
            return None;
        }
        let Some(unshare) = ["/usr/bin/unshare", "/bin/unshare"]
            .into_iter()
            .find(|p| Path::new(p).exists())
        else {
            eprintln!("SKIP: unshare not found");
            return None;
        };
        let src = tempfile::tempdir().unwrap();
        for (name, data) in files {
            std::fs::write(src.path().join(OsStr::from_bytes(name)), data).unwrap();
        }
        std::fs::create_dir("/iso").unwrap();
        Some(Scene {
            src,
            unshare,
            _turn: turn,
        })
    }

    /// `sh -c script` in the namespace, with `$V` the vault binary.
    fn command(&self, script: &str) -> Command {
        let full = format!(
            "set -e\nmount -t tmpfs tmpfs /iso\nmkdir /iso/vault\ncp -a {src}/. /iso/vault/\n\
             V={vault}\n{script}",
            src = self.src.path().display(),
            vault = vault_bin().display(),
        );
        let mut c = Command::new(self.unshare);
        c.args(["--mount", "--propagation", "private", "sh", "-c", &full]);
        c
    }

    /// stdout, then stderr, of `script`.
    fn run(&self, script: &str) -> (Vec<u8>, String) {
        let o = self.command(script).output().unwrap();
        (o.stdout.clone(), text(&o))
    }
}

impl Drop for Scene {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir("/iso");
    }
}

const EVIL: &[u8] = b"evil\x1b]0;owned\x07\x1b[2J.bundle";

const UNLOCK: &str =
    "$V unlock --dry-run --root /iso --root-not-mountpoint --passphrase-file /iso/vault/pw </dev/null || true\n";

fn bundle() -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/small.bundle")).unwrap()
}

const PASSPHRASE: &str = "vault test vector";

#[test]
fn found_file_names_are_printed_escaped() {
    let b = bundle();
    // One bundle: `detach --discover` lists it, `unlock` says "Found a bundle: …" and then
    // refuses the wrong passphrase.
    let Some(scene) = Scene::new(&[(EVIL, &b), (b"pw", b"wrong\n")]) else {
        return;
    };
    let (_, out) = scene.run(&format!("$V detach --discover || true\n{UNLOCK}"));
    drop(scene);
    assert!(!out.contains('\x1b') && !out.contains('\x07'), "{out:?}");
    assert!(out.contains(r"evil\x1b]0;owned\x07\x1b[2J.bundle"), "{out}");
    assert!(out.contains("Found a bundle: "), "{out}");

    // Two bundles and no terminal: the refusal lists both.
    let Some(scene) = Scene::new(&[(EVIL, &b), (b"plain.bundle", &b), (b"pw", b"wrong\n")]) else {
        return;
    };
    let (_, out) = scene.run(UNLOCK);
    assert!(!out.contains('\x1b') && !out.contains('\x07'), "{out:?}");
    assert!(out.contains("plain.bundle"), "{out}");
    assert!(out.contains(r"evil\x1b]0;owned\x07\x1b[2J.bundle"), "{out}");
}

#[test]
fn discover_json_gives_a_name_that_is_not_utf8_as_its_bytes() {
    let b = bundle();
    let Some(scene) = Scene::new(&[(b"odd\xff.bundle", &b)]) else {
        return;
    };
    let (stdout, out) = scene.run("$V detach --discover --json");
    let line = String::from_utf8(stdout).unwrap_or_else(|e| panic!("{e}: {out}"));
    let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {out}"));
    let want: serde_json::Value = b"/iso/vault/odd\xff.bundle".iter().copied().collect();
    assert_eq!(v[0]["path"], want, "{v}");
    assert_eq!(v.as_array().map(Vec::len), Some(1), "{v}");
}

#[test]
fn choosing_among_two_bundles_on_a_terminal_shows_nothing_typed() {
    let b = bundle();
    let Some(scene) = Scene::new(&[(b"bundle", &b), (b"other.bundle", &b)]) else {
        return;
    };
    // A console echoes what is typed; the pty starts without echo, so turn it on first.
    let cmd =
        scene.command("stty echo\nexec $V unlock --dry-run --root /iso --root-not-mountpoint");
    let mut s = Session::spawn(cmd).expect("spawn in a pty");
    s.set_expect_timeout(Some(Duration::from_secs(60)));
    // The old prompt, or the new one.
    let question = || Regex(r"Which one \(1-2\)\? |Number \(1-2[^:]*: ");
    let first = s.expect(question()).unwrap();
    let intro = String::from_utf8_lossy(first.before()).into_owned();
    assert!(intro.contains("/iso/vault/bundle"), "{intro}");
    assert!(intro.contains("/iso/vault/other.bundle"), "{intro}");
    // The user expected the passphrase prompt and types the passphrase.
    s.send_line(PASSPHRASE).unwrap();
    let again = s.expect(question()).unwrap();
    let shown = String::from_utf8_lossy(again.before()).into_owned();
    assert!(
        !shown.contains(PASSPHRASE),
        "the answer was echoed: {shown:?}"
    );
    assert!(shown.contains("not one of the numbers 1-2"), "{shown}");
    // A number that is not listed is not shown back either.
    s.send_line("7").unwrap();
    let again = s.expect(question()).unwrap();
    let shown = String::from_utf8_lossy(again.before()).into_owned();
    assert!(!shown.contains('7'), "{shown:?}");
    // Enter alone takes the installer's own bundle, listed first; the passphrase comes next.
    s.send_line("").unwrap();
    s.expect("Passphrase for /iso/vault/bundle").unwrap();
    s.send_line(PASSPHRASE).unwrap();
    let rest = s.expect(Eof).unwrap();
    let rest = String::from_utf8_lossy(rest.as_bytes()).into_owned();
    assert!(rest.contains("would create"), "{rest}");
    assert!(!rest.contains(PASSPHRASE), "{rest}");
    match s.get_process().wait().unwrap() {
        expectrl::WaitStatus::Exited(_, code) => assert_eq!(code, 0, "{rest}"),
        other => panic!("{other:?}: {rest}"),
    }
}

#[test]
fn three_wrong_answers_name_the_bundles_to_choose_from() {
    let b = bundle();
    let Some(scene) = Scene::new(&[(b"bundle", &b), (b"other.bundle", &b)]) else {
        return;
    };
    let cmd = scene.command("exec $V unlock --dry-run --root /iso --root-not-mountpoint");
    let mut s = Session::spawn(cmd).expect("spawn in a pty");
    s.set_expect_timeout(Some(Duration::from_secs(60)));
    for answer in ["x", "0", "3"] {
        s.expect(Regex(r"Which one \(1-2\)\? |Number \(1-2[^:]*: "))
            .unwrap();
        s.send_line(answer).unwrap();
    }
    let rest = s.expect(Eof).unwrap();
    let rest = String::from_utf8_lossy(rest.as_bytes()).into_owned();
    assert!(rest.contains("no bundle chosen"), "{rest}");
    // On a terminal: no advice to run in one.
    assert!(!rest.contains("run in a terminal"), "{rest}");
    assert!(rest.contains("vault unlock /iso/vault/bundle"), "{rest}");
    match s.get_process().wait().unwrap() {
        expectrl::WaitStatus::Exited(_, code) => assert_eq!(code, 1, "{rest}"),
        other => panic!("{other:?}: {rest}"),
    }
}
