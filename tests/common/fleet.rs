//! A fleet bundle with fake machines (`--sysfs-root`), for the tests of how `unlock` chooses
//! the host a machine is (tests/fleet_cli.rs, tests/fleet_single_host.rs).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::{fake_machine, ok, vault_in as vault, FAST_KDF};

pub const UUID_A: &str = "6f1c2a4e-8d3b-4c5a-9e7f-0a1b2c3d4e5f";
pub const UUID_B: &str = "0b7d6e2a-5c4f-4b3a-8e1d-9f8a7b6c5d4e";
pub const MAC_A: &str = "00:00:5e:00:53:01";
pub const MAC_B: &str = "00:00:5e:00:53:02";

pub struct Fleet {
    _tmp: tempfile::TempDir,
    pub dir: PathBuf,
    /// Machine alpha's sysfs.
    pub alpha: PathBuf,
    /// Machine beta's sysfs.
    pub beta: PathBuf,
    pub bundle: PathBuf,
}

impl Fleet {
    /// Machines alpha and beta; `vault.toml` holding `toml` (which may place `shared`, a file
    /// for every host); each of `hosts` (alpha, beta) identified on its machine and added with
    /// that identity; packed into `fleet.bundle`.
    pub fn new(toml: &str, hosts: &[&str]) -> Fleet {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        std::fs::write(dir.join("shared"), "for every host\n").unwrap();
        std::fs::write(dir.join("vault.toml"), toml).unwrap();
        std::fs::write(dir.join("pw"), "fleet passphrase\n").unwrap();
        let alpha = fake_machine(&dir, "alpha", UUID_A, "ALPHA-0001", MAC_A);
        let beta = fake_machine(&dir, "beta", UUID_B, "BETA-0002", MAC_B);
        let fleet = Fleet {
            bundle: dir.join("fleet.bundle"),
            _tmp: tmp,
            dir,
            alpha,
            beta,
        };
        for name in hosts {
            let sys = if *name == "alpha" {
                &fleet.alpha
            } else {
                &fleet.beta
            };
            let out = fleet.identify_and_add(name, sys);
            assert!(out.contains("identity    product UUID"), "{out}");
        }
        fleet.pack(&[]);
        fleet
    }

    /// `host identify` on the machine `sys`, then `host add NAME --identity` with what it
    /// printed: what `host add` printed.
    pub fn identify_and_add(&self, name: &str, sys: &Path) -> String {
        let id = ok(self.vault(&["host", "identify", "--sysfs-root", sys.to_str().unwrap()]));
        std::fs::write(self.dir.join(format!("{name}.id")), id).unwrap();
        ok(self.vault(&["host", "add", name, "--identity", &format!("{name}.id")]))
    }

    /// `pack -o fleet.bundle` and `extra` flags; succeeds.
    pub fn pack(&self, extra: &[&str]) {
        let args = ["pack", "-o", "fleet.bundle", "--passphrase-file", "pw"];
        ok(self.vault(&[&args[..], FAST_KDF, extra].concat()));
    }

    /// vault in the fleet's folder.
    pub fn vault(&self, args: &[&str]) -> Output {
        vault(&self.dir, args)
    }

    /// A third machine, gamma, that no host records.
    pub fn gamma(&self) -> PathBuf {
        let uuid = "1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9";
        fake_machine(&self.dir, "gamma", uuid, "GAMMA-3", "00:00:5e:00:53:03")
    }

    /// A fresh, empty target root `mnt-LABEL`.
    pub fn mnt(&self, label: &str) -> PathBuf {
        let mnt = self.dir.join(format!("mnt-{label}"));
        std::fs::create_dir(&mnt).unwrap();
        mnt
    }

    /// The arguments of `vault unlock BUNDLE` into `mnt` on the machine whose sysfs is `sys`.
    pub fn unlock_args<'a>(&self, bundle: &'a Path, sys: &'a Path, mnt: &'a Path) -> Vec<&'a str> {
        let s = |p: &'a Path| p.to_str().unwrap();
        let mut args = vec![
            "unlock",
            s(bundle),
            "--root",
            s(mnt),
            "--root-not-mountpoint",
        ];
        args.extend(["--passphrase-file", "pw", "--sysfs-root", s(sys)]);
        args
    }

    /// `vault unlock` (no terminal) on the machine whose sysfs is `sys`, into a fresh root
    /// `mnt-LABEL`.
    pub fn unlock(&self, sys: &Path, label: &str, extra: &[&str]) -> (Output, PathBuf) {
        self.unlock_bundle(&self.bundle, sys, label, extra)
    }

    /// [`Fleet::unlock`] of another bundle.
    pub fn unlock_bundle(
        &self,
        bundle: &Path,
        sys: &Path,
        label: &str,
        extra: &[&str],
    ) -> (Output, PathBuf) {
        let mnt = self.mnt(label);
        let args = [self.unlock_args(bundle, sys, &mnt), extra.to_vec()].concat();
        (self.vault(&args), mnt)
    }

    /// The unlock on a pty, with the host menu.
    pub fn unlock_on_terminal(&self, sys: &Path, mnt: &Path) -> expectrl::Session {
        let mut cmd = Command::new(super::vault_bin());
        cmd.current_dir(&self.dir)
            .args(self.unlock_args(&self.bundle, sys, mnt));
        super::pty::session(cmd)
    }

    /// Host `host`'s SSH host key, as `host add` made it.
    pub fn host_key(&self, host: &str) -> Vec<u8> {
        std::fs::read(self.dir.join(format!("hosts/{host}/ssh_host_ed25519_key"))).unwrap()
    }

    /// Asserts that `host`'s key was placed under `mnt`.
    pub fn placed(&self, mnt: &Path, host: &str) {
        let key = std::fs::read(mnt.join("etc/ssh/ssh_host_ed25519_key")).unwrap();
        assert_eq!(key, self.host_key(host), "not {host}'s key");
    }
}
