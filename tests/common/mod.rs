//! Shared by the integration tests. Each test file does `mod common;` and uses what it needs.
#![allow(dead_code)]

pub mod fleet;
pub mod guest;
pub mod pty;
pub mod qemu;
pub mod repo;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The real external tool `name` (age, rage, sops, nix-instantiate, qemu-system-x86_64, ...).
/// `scripts/test` installs them all. Outside CI a missing tool skips the test with a message;
/// in CI (`CI=true`) it fails, so a missing install step cannot hide.
pub fn require_tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    match found {
        Some(p) => Some(p),
        None if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("{name} is not installed; scripts/test installs it")
        }
        None => {
            eprintln!("SKIP: {name} not found on PATH (scripts/test installs it)");
            None
        }
    }
}

/// `../shared/fixtures/<sub>` (or `$VAULT_FIXTURES/<sub>`, for a copy of the tree elsewhere, as
/// cargo-mutants makes) if present; otherwise prints a skip message and returns None.
pub fn fixtures(sub: &str) -> Option<PathBuf> {
    let root = match std::env::var_os("VAULT_FIXTURES") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures"),
    };
    let p = root.join(sub);
    if p.exists() {
        Some(p)
    } else {
        eprintln!("SKIP: {} not present", p.display());
        None
    }
}

/// The vault binary built for this test run.
pub fn vault_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_vault"))
}

/// Cheap KDF flags for tests: the real Argon2id code path at a tiny cost. At that cost no test
/// passphrase passes the strength check, hence `--weak-passphrase`.
pub const FAST_KDF: &[&str] = &[
    "--weak-passphrase",
    "--weak-kdf",
    "--kdf-memory",
    "8",
    "--kdf-iterations",
    "1",
    "--kdf-parallelism",
    "1",
];

/// Starts `cmd` in a session of its own: no controlling terminal, so no `/dev/tty` to prompt
/// on, whatever terminal the test itself runs in.
// SAFETY: the pre_exec hook makes one async-signal-safe system call (setsid).
#[allow(unsafe_code)]
pub fn without_terminal(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    unsafe {
        cmd.pre_exec(|| {
            rustix::process::setsid()?;
            Ok(())
        })
    }
}

/// [`FAST_KDF`] without `--weak-passphrase`: for tests of the passphrase strength check, and
/// for `repack`, which takes no passphrase strength flag.
pub const CHEAP_KDF: &[&str] = match FAST_KDF.split_first() {
    Some((_, rest)) => rest,
    None => FAST_KDF,
};

/// A small isohybrid installer image as nixpkgs makes them (isolinux, `-isohybrid-mbr`),
/// volume label `volid`, written to `dir/name`. Skips (None) without xorriso or isolinux, as
/// [`require_tool`] does.
pub fn isohybrid(dir: &Path, volid: &str, name: &str) -> Option<PathBuf> {
    require_tool("xorriso")?;
    let tree = dir.join(format!("{name}.tree"));
    std::fs::create_dir_all(tree.join("isolinux")).unwrap();
    let isolinux = "/usr/lib/ISOLINUX/isolinux.bin";
    if std::fs::copy(isolinux, tree.join("isolinux/isolinux.bin")).is_err() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{isolinux} is missing; scripts/test installs isolinux"
        );
        eprintln!("SKIP: {isolinux} is missing (scripts/test installs isolinux)");
        return None;
    }
    std::fs::write(tree.join("README"), "test image\n").unwrap();
    let out = dir.join(name);
    let o = Command::new("xorriso")
        .args(["-as", "mkisofs", "-iso-level", "3", "-volid", volid])
        .args(["-eltorito-boot", "isolinux/isolinux.bin"])
        .args(["-eltorito-catalog", "isolinux/boot.cat"])
        .args(["-no-emul-boot", "-boot-load-size", "4", "-boot-info-table"])
        .args([
            "-isohybrid-mbr",
            "/usr/lib/ISOLINUX/isohdpfx.bin",
            "-r",
            "-o",
        ])
        .arg(&out)
        .arg(&tree)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    Some(out)
}

/// `n` incompressible bytes (xorshift64), so that zstd leaves a payload of many 64 KiB chunks.
pub fn incompressible(n: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// In `d`: a source `key`, a `vault.toml` placing it at `/k`, and an empty target root `mnt`.
pub fn one_file_manifest(d: &Path) {
    std::fs::write(d.join("key"), "k").unwrap();
    std::fs::write(
        d.join("vault.toml"),
        "version = 1\n[[entry]]\nsource = \"key\"\ntarget = \"/k\"\n",
    )
    .unwrap();
    std::fs::create_dir(d.join("mnt")).unwrap();
}

/// [`one_file_manifest`] packed (cheap KDF) into `d/b` with `passphrase`, which `d/pw` holds.
pub fn one_file_bundle(d: &Path, passphrase: &str) -> PathBuf {
    one_file_manifest(d);
    std::fs::write(d.join("pw"), format!("{passphrase}\n")).unwrap();
    ok(Command::new(vault_bin())
        .args([
            "pack",
            "-m",
            "vault.toml",
            "-o",
            "b",
            "--passphrase-file",
            "pw",
        ])
        .args(FAST_KDF)
        .current_dir(d)
        .output()
        .unwrap());
    d.join("b")
}

/// Runs the vault binary in `dir`.
pub fn vault_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(vault_bin())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run vault")
}

/// What a run printed, stdout then stderr, for messages and assertions that do not care which.
pub fn text(o: &Output) -> String {
    let mut t = String::from_utf8_lossy(&o.stdout).into_owned();
    t.push_str(&String::from_utf8_lossy(&o.stderr));
    t
}

/// Asserts success and returns stdout; on failure shows the exit code, stdout and stderr.
pub fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "failed ({:?}): {}{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Asserts that the run exited with `code` (showing what it printed otherwise); returns what
/// it printed, stdout then stderr.
pub fn exits(o: &Output, code: i32) -> String {
    let t = text(o);
    assert_eq!(o.status.code(), Some(code), "{t}");
    t
}

/// Every file under `dir` with its bytes.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| (e.path().to_path_buf(), std::fs::read(e.path()).unwrap()))
        .collect()
}

/// Asserts two snapshots are equal, naming the files that differ (not dumping bytes).
pub fn assert_same(a: &BTreeMap<PathBuf, Vec<u8>>, b: &BTreeMap<PathBuf, Vec<u8>>, what: &str) {
    let differ: Vec<&PathBuf> = a
        .keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .collect();
    assert!(differ.is_empty(), "{what}: {differ:?}");
}

/// A new X25519 identity written to `path` (the age key file format); returns its recipient.
pub fn write_identity(path: &Path) -> String {
    use secrecy::ExposeSecret;
    let id = age::x25519::Identity::generate();
    std::fs::write(path, format!("{}\n", id.to_string().expose_secret())).unwrap();
    id.to_public().to_string()
}

/// `tool -d -i key file` with the real `age` or `rage`: the plaintext, or its stderr.
pub fn run_decrypt(tool: &Path, file: &Path, key: &Path) -> Result<Vec<u8>, String> {
    stdout_or_stderr(Command::new(tool).args(["-d", "-i"]).arg(key).arg(file))
}

/// Runs `cmd`: its stdout if it succeeded, else its stderr as the error.
pub fn stdout_or_stderr(cmd: &mut Command) -> Result<Vec<u8>, String> {
    let o = cmd.output().unwrap();
    if o.status.success() {
        Ok(o.stdout)
    } else {
        Err(String::from_utf8_lossy(&o.stderr).into_owned())
    }
}

/// A tmpfs mounted with `options` (e.g. `size=1m`, `nr_inodes=700`) on a fresh folder, to run
/// out of space for real; unmounted when dropped. `None` (skip) when mounting is not permitted
/// outside CI; in CI, which runs as root, it must work.
pub struct Tmpfs {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl Tmpfs {
    pub fn new(options: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mnt");
        std::fs::create_dir(&path).unwrap();
        let o = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("{options},mode=0755"),
                "tmpfs",
            ])
            .arg(&path)
            .output()
            .unwrap();
        if !o.status.success() {
            let msg = String::from_utf8_lossy(&o.stderr);
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "cannot mount a tmpfs in CI: {msg}"
            );
            eprintln!("SKIP: cannot mount a tmpfs: {msg}");
            return None;
        }
        Some(Tmpfs { _dir: dir, path })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

/// An ext4 of `mib` MiB (made with `mkfs.ext4 -m 0 ARGS`) on a loop device, mounted on a
/// fresh folder; unmounted when dropped. `None` (skip) without root or the tools, outside CI.
pub struct Ext4 {
    dir: tempfile::TempDir,
}

impl Ext4 {
    pub fn new(mib: u64, args: &[&str]) -> Option<Ext4> {
        for t in ["mkfs.ext4", "mount", "umount", "fallocate"] {
            require_tool(t)?;
        }
        if !rustix::process::geteuid().is_root() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI runs as root"
            );
            eprintln!("SKIP: loop mounts need root");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("img");
        std::fs::File::create(&img)
            .unwrap()
            .set_len(mib << 20)
            .unwrap();
        let o = Command::new("mkfs.ext4")
            .args(["-q", "-F", "-m", "0"])
            .args(args)
            .arg(&img)
            .output()
            .unwrap();
        assert!(o.status.success(), "mkfs: {}", text(&o));
        std::fs::create_dir(dir.path().join("mnt")).unwrap();
        let o = Command::new("mount")
            .args(["-o", "loop"])
            .arg(&img)
            .arg(dir.path().join("mnt"))
            .output()
            .unwrap();
        assert!(o.status.success(), "mount: {}", text(&o));
        Some(Ext4 { dir })
    }

    pub fn mnt(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }

    /// Free bytes (for an unprivileged user: `f_bavail`).
    pub fn free(&self) -> u64 {
        let st = rustix::fs::statvfs(self.mnt()).unwrap();
        st.f_bavail * st.f_frsize
    }

    /// Fills the file system until exactly `left` bytes are free: a large filler, then a
    /// small one for what the first one's own bookkeeping made uncertain.
    pub fn fill_to(&self, left: u64) {
        for (i, margin) in [(0, 256 * 1024), (1, 0)] {
            let free = self.free();
            assert!(free >= left + margin, "{free} free, {left} wanted");
            if free == left {
                return;
            }
            let o = Command::new("fallocate")
                .arg("-l")
                .arg((free - left - margin).to_string())
                .arg(self.mnt().join(format!("filler{i}")))
                .output()
                .unwrap();
            assert!(o.status.success(), "fallocate: {}", text(&o));
        }
        assert_eq!(self.free(), left);
    }
}

impl Drop for Ext4 {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.mnt()).status();
    }
}

/// A fake machine's sysfs under `dir/sys-NAME`, for `--sysfs-root`: product UUID and serial,
/// `eth0` with `mac`, loopback, a disk without serial.
pub fn fake_machine(dir: &Path, name: &str, uuid: &str, serial: &str, mac: &str) -> PathBuf {
    use vault::identity::fake::{Bus, FakeSysfs};
    let root = dir.join(format!("sys-{name}"));
    let mut t = FakeSysfs::new(&root).unwrap();
    t.dmi("product_uuid", uuid).unwrap();
    t.dmi("product_serial", serial).unwrap();
    t.nic("eth0", mac, 0, Bus::Pci).unwrap();
    t.nic("lo", "00:00:00:00:00:00", 0, Bus::Virtual).unwrap();
    t.disk("vda", Bus::Pci, false, &[]).unwrap();
    root
}

/// A ramfs mounted (mode 0700) on a fresh folder, as the staging area of
/// `vault unlock --stage disk` must be; unmounted when dropped. Needs root: `None` (skip, with
/// a message) otherwise.
pub struct Ramfs {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl Ramfs {
    pub fn new() -> Option<Ramfs> {
        if !rustix::process::geteuid().is_root() {
            eprintln!("SKIP: needs root to mount a ramfs");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ram");
        std::fs::create_dir(&path).unwrap();
        let st = Command::new("mount")
            .args(["-t", "ramfs", "-o", "mode=0700", "ramfs"])
            .arg(&path)
            .status()
            .unwrap();
        assert!(st.success(), "mount ramfs");
        Some(Ramfs { _dir: dir, path })
    }
}

impl Drop for Ramfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

/// Every vault leftover under `dir` (any depth): temporaries (`….vault-….tmp`, and rekey's
/// `.vault-rekey-…`), displaced originals (`.vault-….was.NAME`), staging folders. Not vault's
/// own records (`.vault-rekey.json`).
pub fn leftovers(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| {
            let n = e.file_name().to_string_lossy();
            (n.contains(".vault-")
                && (n.ends_with(".tmp") || n.contains(".was.") || n.contains(".was-")))
                || n.contains(".vault-rekey-")
        })
        .map(|e| e.path().to_path_buf())
        .collect()
}

/// Incompressible bytes (xorshift32), so zstd cannot shrink the work a test relies on.
pub fn noise(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(n);
    out
}
