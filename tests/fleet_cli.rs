//! One bundle for a fleet, through the command line, with fake sysfs trees standing in for
//! the machines (`--sysfs-root`; tests/qemu_fleet.rs boots real ones): `host identify`,
//! `host add --identity`, `pack`, and `unlock` choosing the host this machine is, the host
//! menu on a real pseudo-terminal, and what is refused.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::vault_in as vault;
use common::{fake_machine as machine, text};
use expectrl::{Eof, Session};

const UUID_A: &str = "6f1c2a4e-8d3b-4c5a-9e7f-0a1b2c3d4e5f";
const UUID_B: &str = "0b7d6e2a-5c4f-4b3a-8e1d-9f8a7b6c5d4e";
const MAC_A: &str = "00:00:5e:00:53:01";
const MAC_B: &str = "00:00:5e:00:53:02";

struct Fleet {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    alpha: PathBuf,
    beta: PathBuf,
    bundle: PathBuf,
}

impl Fleet {
    /// Two machines identified, added with their identities, packed into one bundle.
    fn new() -> Fleet {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        std::fs::write(dir.join("shared"), "for every host\n").unwrap();
        std::fs::write(
            dir.join("vault.toml"),
            "version = 1\n# the fleet\n[[entry]]\nsource = \"shared\"\ntarget = \"/etc/shared\"\n",
        )
        .unwrap();
        std::fs::write(dir.join("pw"), "fleet passphrase\n").unwrap();
        let alpha = machine(&dir, "alpha", UUID_A, "ALPHA-0001", MAC_A);
        let beta = machine(&dir, "beta", UUID_B, "BETA-0002", MAC_B);
        for (name, sys) in [("alpha", &alpha), ("beta", &beta)] {
            let o = vault(
                &dir,
                &["host", "identify", "--sysfs-root", sys.to_str().unwrap()],
            );
            let id = common::ok(o);
            std::fs::write(dir.join(format!("{name}.id")), id).unwrap();
            let o = vault(
                &dir,
                &["host", "add", name, "--identity", &format!("{name}.id")],
            );
            let out = common::ok(o);
            assert!(out.contains("identity    product UUID"), "{out}");
        }
        let o = vault(
            &dir,
            &[
                &["pack", "-o", "fleet.bundle", "--passphrase-file", "pw"][..],
                common::FAST_KDF,
            ]
            .concat(),
        );
        common::ok(o);
        let bundle = dir.join("fleet.bundle");
        Fleet {
            _tmp: tmp,
            dir,
            alpha,
            beta,
            bundle,
        }
    }

    /// `vault unlock` on the machine whose sysfs is `sys`, into a fresh root `mnt-LABEL`.
    fn unlock(&self, sys: &Path, label: &str, extra: &[&str]) -> (Output, PathBuf) {
        self.unlock_bundle(&self.bundle, sys, label, extra)
    }

    fn unlock_bundle(
        &self,
        bundle: &Path,
        sys: &Path,
        label: &str,
        extra: &[&str],
    ) -> (Output, PathBuf) {
        let mnt = self.dir.join(format!("mnt-{label}"));
        std::fs::create_dir(&mnt).unwrap();
        let mut args = vec![
            "unlock",
            bundle.to_str().unwrap(),
            "--root",
            mnt.to_str().unwrap(),
            "--root-not-mountpoint",
            "--passphrase-file",
            "pw",
            "--sysfs-root",
            sys.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        (vault(&self.dir, &args), mnt)
    }

    fn host_key(&self, host: &str) -> Vec<u8> {
        std::fs::read(self.dir.join(format!("hosts/{host}/ssh_host_ed25519_key"))).unwrap()
    }
}

#[test]
fn each_machine_places_its_own_hosts_files() {
    let f = Fleet::new();
    let toml = std::fs::read_to_string(f.dir.join("vault.toml")).unwrap();
    assert!(toml.contains("# the fleet\n"), "comments are kept: {toml}");
    assert!(toml.contains("[hosts.alpha.identity]"), "{toml}");
    assert!(
        toml.contains(&format!("product_uuid = \"{UUID_A}\"")),
        "{toml}"
    );
    // The identifiers travel only inside the encrypted payload.
    let bundle = std::fs::read(&f.bundle).unwrap();
    for clear in [UUID_A, UUID_B, "ALPHA-0001", MAC_A, "alpha"] {
        assert!(
            !bundle.windows(clear.len()).any(|w| w == clear.as_bytes()),
            "{clear} is in clear in the bundle"
        );
    }
    for (sys, host, other) in [(&f.alpha, "alpha", "beta"), (&f.beta, "beta", "alpha")] {
        let (o, mnt) = f.unlock(sys, host, &[]);
        let out = text(&o);
        assert!(o.status.success(), "{out}");
        assert!(
            out.contains(&format!(
                "vault: this machine is \"{host}\" (product UUID, product serial and the MAC of eth0 match); placing its 3 files (identity read from {}, not /sys)",
                sys.display()
            )),
            "{out}"
        );
        let key = std::fs::read(mnt.join("etc/ssh/ssh_host_ed25519_key")).unwrap();
        assert_eq!(key, f.host_key(host));
        assert_ne!(key, f.host_key(other));
        assert!(mnt.join("etc/shared").exists());
    }
}

#[test]
fn no_match_junk_and_a_given_host() {
    let f = Fleet::new();
    // An unknown machine, with no terminal: refused, with the hosts and why; nothing placed.
    let gamma = machine(
        &f.dir,
        "gamma",
        "1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9",
        "GAMMA-3",
        "00:00:5e:00:53:03",
    );
    let (o, mnt) = f.unlock(&gamma, "gamma", &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("several hosts (alpha, beta) and no host's recorded identity matches this machine; say which one")
            && text(&o).contains("--host NAME"),
        "{}",
        text(&o)
    );
    assert_eq!(std::fs::read_dir(&mnt).unwrap().count(), 0);

    // A board that reports placeholders: nothing of it is recorded, and it matches nothing,
    // even where a host (edited by hand) records the same placeholders.
    let junk = machine(
        &f.dir,
        "junk",
        "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF",
        "To be filled by O.E.M.",
        "52:54:00:12:34:56",
    );
    let o = vault(
        &f.dir,
        &["host", "identify", "--sysfs-root", junk.to_str().unwrap()],
    );
    assert!(o.status.success());
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        !stdout.contains("\nproduct_uuid =") && stdout.contains("macs = []"),
        "{stdout}"
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("product_uuid \"ffffffff-ffff-ffff-ffff-ffffffffffff\": a placeholder"),
        "{err}"
    );
    assert!(err.contains("locally administered"), "{err}");
    assert!(
        err.contains("nothing read identifies this machine"),
        "{err}"
    );
    // `host add --identity` with nothing usable is refused before anything is written.
    std::fs::write(f.dir.join("junk.id"), &*o.stdout).unwrap();
    let before = common::snapshot(&f.dir);
    let o = vault(&f.dir, &["host", "add", "delta", "--identity", "junk.id"]);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert!(text(&o).contains("holds no identifier"), "{}", text(&o));
    common::assert_same(&before, &common::snapshot(&f.dir), "a refused host add");

    let toml = f.dir.join("vault.toml");
    let mut t = std::fs::read_to_string(&toml).unwrap();
    t.push_str("[hosts.junky]\n[hosts.junky.identity]\nproduct_uuid = \"ffffffff-ffff-ffff-ffff-ffffffffffff\"\nproduct_serial = \"To be filled by O.E.M.\"\nmacs = [\"52:54:00:12:34:56\"]\n[[hosts.junky.entry]]\nsource = \"shared\"\ntarget = \"/etc/junky\"\n");
    std::fs::write(&toml, t).unwrap();
    let o = vault(
        &f.dir,
        &[
            &["pack", "-o", "junk.bundle", "--passphrase-file", "pw"][..],
            common::FAST_KDF,
        ]
        .concat(),
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("warning: host junky: the product UUID \"ffffffff-ffff-ffff-ffff-ffffffffffff\" in [hosts.junky.identity] is a placeholder many machines report: it never identifies a machine"),
        "{}",
        text(&o)
    );
    let (o, mnt) = f.unlock_bundle(&f.dir.join("junk.bundle"), &junk, "junk", &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("no host's recorded identity matches"),
        "{}",
        text(&o)
    );
    assert_eq!(std::fs::read_dir(&mnt).unwrap().count(), 0);

    // --host always wins; a host whose identity disagrees is placed, with a warning.
    let (o, mnt) = f.unlock(&f.alpha, "given", &["--host", "beta"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("warning: placing host \"beta\" (as --host says), but product UUID differs, product serial differs and none of its MAC addresses is on this machine"),
        "{}",
        text(&o)
    );
    assert_eq!(
        std::fs::read(mnt.join("etc/ssh/ssh_host_ed25519_key")).unwrap(),
        f.host_key("beta")
    );
}

#[test]
fn a_shared_identifier_is_refused_naming_both_hosts() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(d.join("key"), "k\n").unwrap();
    // Cloned virtual machines: one product UUID, two hosts.
    std::fs::write(
        d.join("vault.toml"),
        format!("version = 1\n[hosts.web1]\n[hosts.web1.identity]\nproduct_uuid = \"{UUID_A}\"\n[[hosts.web1.entry]]\nsource = \"key\"\ntarget = \"/k\"\n[hosts.web2]\n[hosts.web2.identity]\nproduct_uuid = \"{}\"\n[[hosts.web2.entry]]\nsource = \"key\"\ntarget = \"/k\"\n", UUID_A.to_uppercase()),
    )
    .unwrap();
    std::fs::write(d.join("pw"), "pw words\n").unwrap();
    let o = vault(
        d,
        &[&["pack", "--passphrase-file", "pw"][..], common::FAST_KDF].concat(),
    );
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert!(
        text(&o).contains(&format!(
            "line 9: hosts web1 and web2 both record the product UUID \"{UUID_A}\""
        )),
        "{}",
        text(&o)
    );
    assert!(!d.join("vault.bundle").exists());

    // `host add --identity` with an identifier another host records: refused before any key
    // is generated or any file changed.
    std::fs::write(
        d.join("vault.toml"),
        format!("version = 1\n[hosts.web1]\n[hosts.web1.identity]\nmacs = [\"{MAC_A}\"]\n"),
    )
    .unwrap();
    std::fs::write(
        d.join("web2.id"),
        format!("macs = [\n    \"{}\", # eth0\n]\n", MAC_A.to_uppercase()),
    )
    .unwrap();
    let before = common::snapshot(d);
    let o = vault(d, &["host", "add", "web2", "--identity", "web2.id"]);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert!(
        text(&o).contains(&format!(
            "hosts web1 and web2 both record the MAC address \"{MAC_A}\""
        )),
        "{}",
        text(&o)
    );
    common::assert_same(&before, &common::snapshot(d), "a refused host add");
}

#[test]
fn a_replaced_board_is_recorded_again() {
    let f = Fleet::new();
    // The new board: another UUID and serial, the same network card.
    let new_board = machine(
        &f.dir,
        "alpha2",
        UUID_B.replace('0', "1").as_str(),
        "ALPHA-NEW",
        MAC_A,
    );
    let (o, _) = f.unlock(&new_board, "before", &["--dry-run"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let id = common::ok(vault(
        &f.dir,
        &[
            "host",
            "identify",
            "--sysfs-root",
            new_board.to_str().unwrap(),
        ],
    ));
    std::fs::write(f.dir.join("alpha.id"), id).unwrap();
    let out = common::ok(vault(
        &f.dir,
        &["host", "add", "alpha", "--identity", "alpha.id"],
    ));
    // Only the identity changed: the host key stays.
    assert!(!out.contains("host key"), "{out}");
    let toml = std::fs::read_to_string(f.dir.join("vault.toml")).unwrap();
    assert_eq!(toml.matches("[hosts.alpha.identity]").count(), 1, "{toml}");
    assert!(
        toml.contains("ALPHA-NEW") && !toml.contains("ALPHA-0001"),
        "{toml}"
    );
    common::ok(vault(
        &f.dir,
        &[
            &[
                "pack",
                "-o",
                "fleet.bundle",
                "--force",
                "--passphrase-file",
                "pw",
            ][..],
            common::FAST_KDF,
        ]
        .concat(),
    ));
    let (o, _) = f.unlock(&new_board, "after", &["--dry-run"]);
    assert!(
        text(&o).contains("this machine is \"alpha\"")
            && text(&o).contains("would place its 3 files"),
        "{}",
        text(&o)
    );
}

/// No match on a terminal: the host menu, which takes a number (and says so when it gets
/// something else), then places the chosen host's files.
#[test]
fn the_host_menu_on_a_terminal() {
    let f = Fleet::new();
    let gamma = machine(
        &f.dir,
        "gamma",
        "1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9",
        "GAMMA-3",
        "00:00:5e:00:53:03",
    );
    let mnt = f.dir.join("mnt-menu");
    std::fs::create_dir(&mnt).unwrap();
    let mut cmd = Command::new(common::vault_bin());
    cmd.current_dir(&f.dir).args([
        "unlock",
        f.bundle.to_str().unwrap(),
        "--root",
        mnt.to_str().unwrap(),
        "--root-not-mountpoint",
        "--passphrase-file",
        "pw",
        "--sysfs-root",
        gamma.to_str().unwrap(),
    ]);
    let mut s = Session::spawn(cmd).expect("spawn in a pty");
    s.set_expect_timeout(Some(Duration::from_secs(60)));
    s.expect("no host's recorded identity matches this machine; which host is this machine?")
        .unwrap();
    s.expect("1) alpha  (product UUID differs, product serial differs and none of its MAC addresses is on this machine)").unwrap();
    s.expect("Host number (1-2): ").unwrap();
    s.send_line("fleet passphrase").unwrap();
    s.expect("that is not a number from 1 to 2").unwrap();
    s.expect("Host number (1-2): ").unwrap();
    s.send_line("2").unwrap();
    s.expect(Eof).unwrap();
    match s.get_process().wait().unwrap() {
        expectrl::WaitStatus::Exited(_, 0) => {}
        other => panic!("vault ended with {other:?}"),
    }
    assert_eq!(
        std::fs::read(mnt.join("etc/ssh/ssh_host_ed25519_key")).unwrap(),
        f.host_key("beta")
    );
}
