//! A bundle of one host on a machine that contradicts the host's recorded identity (the wrong
//! stick in the wrong machine): vault knows this is another machine, so it does not place
//! the host's SSH host key there unasked. With no terminal it refuses; `--host` places it
//! with a warning; on a terminal the host menu asks. A machine that agrees, or that reports
//! nothing to compare, gets the host as always.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::vault_in as vault;
use common::{fake_machine as machine, text};
use expectrl::{Eof, Session};

struct Single {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    /// The machine host alpha was identified on.
    alpha: PathBuf,
    /// Another machine.
    beta: PathBuf,
    bundle: PathBuf,
}

impl Single {
    /// Host alpha, identified on its machine, packed alone.
    fn new() -> Single {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        std::fs::write(dir.join("vault.toml"), "version = 1\n").unwrap();
        std::fs::write(dir.join("pw"), "single passphrase\n").unwrap();
        let alpha = machine(
            &dir,
            "alpha",
            "6f1c2a4e-8d3b-4c5a-9e7f-0a1b2c3d4e5f",
            "ALPHA-0001",
            "00:00:5e:00:53:01",
        );
        let beta = machine(
            &dir,
            "beta",
            "0b7d6e2a-5c4f-4b3a-8e1d-9f8a7b6c5d4e",
            "BETA-0002",
            "00:00:5e:00:53:02",
        );
        let id = common::ok(vault(
            &dir,
            &["host", "identify", "--sysfs-root", alpha.to_str().unwrap()],
        ));
        std::fs::write(dir.join("alpha.id"), id).unwrap();
        common::ok(vault(
            &dir,
            &["host", "add", "alpha", "--identity", "alpha.id"],
        ));
        common::ok(vault(
            &dir,
            &[
                &["pack", "-o", "alpha.bundle", "--passphrase-file", "pw"][..],
                common::FAST_KDF,
            ]
            .concat(),
        ));
        let bundle = dir.join("alpha.bundle");
        Single {
            _tmp: tmp,
            dir,
            alpha,
            beta,
            bundle,
        }
    }

    fn args(&self, sys: &Path, mnt: &Path) -> Vec<String> {
        [
            "unlock",
            self.bundle.to_str().unwrap(),
            "--root",
            mnt.to_str().unwrap(),
            "--root-not-mountpoint",
            "--passphrase-file",
            "pw",
            "--sysfs-root",
            sys.to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec()
    }

    /// `vault unlock` (no terminal) on the machine whose sysfs is `sys`, into `mnt-LABEL`.
    fn unlock(&self, sys: &Path, label: &str, extra: &[&str]) -> (Output, PathBuf) {
        let mnt = self.dir.join(format!("mnt-{label}"));
        std::fs::create_dir(&mnt).unwrap();
        let mut args = self.args(sys, &mnt);
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        (vault(&self.dir, &args), mnt)
    }

    fn host_key(&self) -> Vec<u8> {
        std::fs::read(self.dir.join("hosts/alpha/ssh_host_ed25519_key")).unwrap()
    }
}

#[test]
fn a_single_host_on_another_machine_is_not_placed_unasked() {
    let s = Single::new();
    let (o, mnt) = s.unlock(&s.beta, "other", &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("this bundle's only host, alpha, records an identity this machine contradicts (product UUID differs"),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("--host NAME"), "{}", text(&o));
    assert_eq!(std::fs::read_dir(&mnt).unwrap().count(), 0);
    // -q silences warnings, not this.
    let (o, mnt) = s.unlock(&s.beta, "other-quiet", &["-q"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(std::fs::read_dir(&mnt).unwrap().count(), 0);

    // --host always wins, with a warning.
    let (o, mnt) = s.unlock(&s.beta, "given", &["--host", "alpha"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o)
            .contains("warning: placing host \"alpha\" (as --host says), but product UUID differs"),
        "{}",
        text(&o)
    );
    assert_eq!(
        std::fs::read(mnt.join("etc/ssh/ssh_host_ed25519_key")).unwrap(),
        s.host_key()
    );

    // Its own machine, and a machine that reports nothing to compare: placed, not a word.
    let blank = s.dir.join("sys-blank");
    vault::identity::fake::FakeSysfs::new(&blank).unwrap();
    for (sys, label) in [(&s.alpha, "own"), (&blank, "blank")] {
        let (o, mnt) = s.unlock(sys, label, &[]);
        assert!(
            o.status.success() && !text(&o).contains("warning"),
            "{label}: {}",
            text(&o)
        );
        assert_eq!(
            std::fs::read(mnt.join("etc/ssh/ssh_host_ed25519_key")).unwrap(),
            s.host_key()
        );
    }
}

/// On a terminal: the host menu, with the one host and why it does not fit; the user's
/// number places it.
#[test]
fn a_single_host_that_does_not_fit_is_asked_on_a_terminal() {
    let s = Single::new();
    let mnt = s.dir.join("mnt-menu");
    std::fs::create_dir(&mnt).unwrap();
    let mut cmd = Command::new(common::vault_bin());
    cmd.current_dir(&s.dir).args(s.args(&s.beta, &mnt));
    let mut p = Session::spawn(cmd).expect("spawn in a pty");
    p.set_expect_timeout(Some(Duration::from_secs(60)));
    p.expect("this bundle's only host, alpha, records an identity this machine contradicts")
        .unwrap();
    p.expect("which host is this machine?").unwrap();
    p.expect("1) alpha  (product UUID differs").unwrap();
    p.expect("Host number (1-1): ").unwrap();
    p.send_line("1").unwrap();
    p.expect(Eof).unwrap();
    match p.get_process().wait().unwrap() {
        expectrl::WaitStatus::Exited(_, 0) => {}
        other => panic!("vault ended with {other:?}"),
    }
    assert_eq!(
        std::fs::read(mnt.join("etc/ssh/ssh_host_ed25519_key")).unwrap(),
        s.host_key()
    );
}
