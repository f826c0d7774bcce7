//! Booting the test installer in QEMU (TCG): building its ISO (`scripts/mkiso-test`) and the
//! target disk, the guest's serial console, and reading the target back with `debugfs`.
//! Shared by tests/qemu_boot.rs and tests/qemu_fleet.rs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn tools() -> bool {
    [
        "qemu-system-x86_64",
        "xorriso",
        "debugfs",
        "mkfs.ext4",
        "busybox",
        "cpio",
        "modprobe",
    ]
    .iter()
    .all(|t| super::require_tool(t).is_some())
        && Path::new("/usr/lib/ISOLINUX/isohdpfx.bin").exists()
}

pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The static vault, built (or found up to date) by `scripts/build-static`.
pub fn static_vault() -> PathBuf {
    if let Some(p) = std::env::var_os("VAULT_STATIC_BIN") {
        return PathBuf::from(p);
    }
    let out = run(&mut Command::new(repo().join("scripts/build-static")));
    PathBuf::from(
        out.lines()
            .last()
            .expect("build-static prints the path")
            .trim(),
    )
}

/// Builds the installer ISO whose init runs `vault <cmd>` for each of `cmds`.
pub fn make_iso(dir: &Path, name: &str, cmds: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let mut c = Command::new(repo().join("scripts/mkiso-test"));
    c.arg("--vault").arg(static_vault()).arg("--out").arg(&out);
    for cmd in cmds {
        c.arg("--cmd").arg(cmd);
    }
    run(&mut c);
    out.join("installer.iso")
}

pub fn make_target(dir: &Path, name: &str) -> PathBuf {
    let t = dir.join(name);
    let f = std::fs::File::create(&t).unwrap();
    f.set_len(32 << 20).unwrap();
    drop(f);
    run(Command::new("mkfs.ext4")
        .args(["-q", "-L", "target"])
        .arg(&t));
    t
}

#[allow(unused_imports)]
pub use super::guest::Guest;

#[derive(Clone, Copy)]
pub enum Firmware {
    Bios,
    Uefi,
}

#[derive(Clone, Copy)]
pub enum Attach {
    Virtio,
    Usb,
    /// An IDE CD-ROM (BIOS only): no partitions, only the ISO9660 tree.
    Cd,
}

pub fn qemu_args(
    dir: &Path,
    stick: &Path,
    target: &Path,
    fw: Firmware,
    how: Attach,
) -> Vec<String> {
    let mut a: Vec<String> = [
        "-accel",
        "tcg",
        "-m",
        "512",
        "-display",
        "none",
        "-serial",
        "stdio",
        "-monitor",
        "none",
        "-no-reboot",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    match fw {
        Firmware::Bios => a.extend(["-machine".into(), "pc".into()]),
        Firmware::Uefi => {
            let vars = dir.join("OVMF_VARS.fd");
            std::fs::copy("/usr/share/OVMF/OVMF_VARS_4M.fd", &vars).unwrap();
            a.extend([
                "-machine".into(),
                "q35".into(),
                "-drive".into(),
                "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd"
                    .into(),
                "-drive".into(),
                format!("if=pflash,format=raw,unit=1,file={}", vars.display()),
            ]);
        }
    }
    match how {
        Attach::Virtio => a.extend([
            "-drive".into(),
            format!("file={},format=raw,if=virtio,readonly=on", stick.display()),
        ]),
        Attach::Cd => a.extend([
            "-drive".into(),
            format!(
                "file={},format=raw,media=cdrom,readonly=on",
                stick.display()
            ),
            "-boot".into(),
            "d".into(),
        ]),
        Attach::Usb => a.extend([
            "-device".into(),
            "qemu-xhci".into(),
            "-drive".into(),
            format!(
                "file={},format=raw,if=none,id=stick,readonly=on",
                stick.display()
            ),
            "-device".into(),
            "usb-storage,drive=stick,bootindex=0".into(),
        ]),
    }
    a.extend([
        "-drive".into(),
        format!("file={},format=raw,if=virtio", target.display()),
    ]);
    a
}

/// One guest at a time: on a 2-core CI machine parallel TCG guests only make each slower and
/// the timings meaningless.
pub static ONE_GUEST: Mutex<()> = Mutex::new(());

/// One entry of the target tree as debugfs sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub dir: bool,
}

/// Every path in the ext4 image, walked with `debugfs -R 'ls -p'` (no mount).
pub fn walk_target(img: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    let mut todo = vec!["/".to_string()];
    while let Some(dir) = todo.pop() {
        let listing = run(Command::new("debugfs")
            .arg("-R")
            .arg(format!("ls -p \"{dir}\""))
            .arg(img));
        for line in listing.lines() {
            // /inode/mode/uid/gid/name/size/
            let f: Vec<&str> = line.split('/').collect();
            if f.len() < 7 || f[5] == "." || f[5] == ".." || f[5].is_empty() {
                continue;
            }
            let mode = u32::from_str_radix(f[2], 8).unwrap();
            let path = if dir == "/" {
                format!("/{}", f[5])
            } else {
                format!("{dir}/{}", f[5])
            };
            let node = Node {
                mode: mode & 0o7777,
                uid: f[3].parse().unwrap(),
                gid: f[4].parse().unwrap(),
                dir: mode & 0o170000 == 0o040000,
            };
            if node.dir {
                todo.push(path.clone());
            }
            out.insert(path, node);
        }
    }
    out
}

pub fn debugfs_cat(img: &Path, path: &str) -> Vec<u8> {
    let out = Command::new("debugfs")
        .arg("-R")
        .arg(format!("cat \"{path}\""))
        .arg(img)
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout
}
