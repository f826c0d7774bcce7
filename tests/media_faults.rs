//! Faults of the machine while vault reads or writes installer media, for real: a small tmpfs
//! as the output's filesystem (too little room; a sparse 1 TiB input that fits only if its
//! holes stay holes), real signals to a running `vault attach` (SIGINT, SIGTERM, SIGHUP roll
//! back; what SIGKILL leaves the next run removes), and real I/O errors: a loop device whose
//! backing file lives on an ext4 that was shut down (`EXT4_IOC_SHUTDOWN`), so every read
//! of the device fails with EIO, as a failing stick does. No device-mapper needed. These tests
//! need root (mounts, loop devices); without it they skip, in CI they fail.

mod common;
mod media_common;

use std::fs;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use media_common::*;

fn root() -> bool {
    let ok = rustix::process::geteuid().is_root();
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI runs as root"
        );
        eprintln!("SKIP: needs root");
    }
    ok
}

/// An installer image with `data` MiB of written (not sparse) bytes after its ISO.
fn big_image(dir: &Path, iso: &Path, data: u64) -> PathBuf {
    let img = dir.join(format!("big-{data}.iso"));
    fs::copy(iso, &img).unwrap();
    let f = fs::OpenOptions::new().append(true).open(&img).unwrap();
    let chunk = vec![0x5Au8; 1 << 20];
    for _ in 0..data {
        std::io::Write::write_all(&mut &f, &chunk).unwrap();
    }
    img
}

/// A 1 TiB image that is almost all hole: the ISO, then 4 KiB of data at 1 GiB. With the
/// output on a 32 MiB tmpfs, attach succeeds only by copying holes as holes; the output keeps
/// the data at the same offset and stays sparse.
#[test]
fn holes_are_copied_as_holes() {
    if !root() {
        return;
    }
    let Some((dir, iso, b)) = scene(3000) else {
        return;
    };
    let d = dir.path();
    let img = d.join("sparse.img");
    fs::copy(&iso, &img).unwrap();
    let f = fs::OpenOptions::new().write(true).open(&img).unwrap();
    f.write_all_at(&[0xA5; 4096], 1 << 30).unwrap();
    f.set_len(1 << 40).unwrap();
    drop(f);
    let Some(small) = common::Tmpfs::new("size=32m") else {
        return;
    };
    let out = small.path.join("stick.img");
    common::ok(attach(&img, &b, &out, &[]));
    let meta = fs::metadata(&out).unwrap();
    assert!(meta.len() > 1 << 40, "{}", meta.len());
    assert!(
        meta.blocks() * 512 < 16 << 20,
        "{} bytes allocated",
        meta.blocks() * 512
    );
    let mut got = [0u8; 4096];
    fs::File::open(&out)
        .unwrap()
        .read_exact_at(&mut got, 1 << 30)
        .unwrap();
    assert_eq!(got, [0xA5; 4096]);
    let src = vault::media::open_source(&out).unwrap();
    assert_eq!(src.offset, 1u64 << 40);
    // detach -o keeps the holes too, and gives back the input byte for byte where it has data.
    let plain = small.path.join("plain.img");
    common::ok(vault(&["detach", "--image", s(&out), "-o", s(&plain)]));
    assert!(fs::metadata(&plain).unwrap().blocks() * 512 < 16 << 20);
}

/// Not enough room for the data: refused before anything is written (exit 6), the output's
/// folder as it was.
#[test]
fn too_little_room_is_refused_before_writing() {
    if !root() {
        return;
    }
    let Some((dir, iso, b)) = scene(3000) else {
        return;
    };
    let d = dir.path();
    let img = big_image(d, &iso, 48);
    let Some(small) = common::Tmpfs::new("size=32m") else {
        return;
    };
    let out = small.path.join("stick.img");
    let err = failed_with(attach(&img, &b, &out, &[]), 6, "not enough free space in");
    assert!(err.contains(s(&small.path)), "{err}");
    assert_eq!(fs::read_dir(&small.path).unwrap().count(), 0);
    failed_with(
        attach(&img, &b, &out, &["--iso-file"]),
        6,
        "not enough free space in",
    );
    assert_eq!(fs::read_dir(&small.path).unwrap().count(), 0);
}

/// Starts `vault attach` copying `img` and waits until its temporary exists in `dir`: the
/// child, or `None` if it finished first (the machine was faster than the test looked).
fn attach_until_temp(img: &Path, b: &Path, dir: &Path, out: &Path) -> Option<std::process::Child> {
    let mut child = Command::new(common::vault_bin())
        .args([
            "attach",
            "--no-binary",
            "--image",
            s(img),
            "--bundle",
            s(b),
            "-o",
            s(out),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    loop {
        if !temporaries(dir).is_empty() {
            return Some(child);
        }
        if child.try_wait().unwrap().is_some() {
            let _ = fs::remove_file(out);
            return None;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// SIGINT, SIGTERM and SIGHUP while `attach` copies: exit 128 + n, the temporary removed, no
/// output. SIGKILL leaves the temporary; the next attach into the folder removes it and says
/// so.
#[test]
fn signals_during_attach_leave_nothing_behind() {
    if !root() {
        return;
    }
    let Some((dir, iso, b)) = scene(3000) else {
        return;
    };
    let d = dir.path();
    let outdir = d.join("out");
    fs::create_dir(&outdir).unwrap();
    let out = outdir.join("stick.img");
    let mut size = 256;
    let mut img = big_image(d, &iso, size);
    for sig in [
        rustix::process::Signal::INT,
        rustix::process::Signal::TERM,
        rustix::process::Signal::HUP,
        rustix::process::Signal::KILL,
    ] {
        let child = loop {
            match attach_until_temp(&img, &b, &outdir, &out) {
                Some(c) => break c,
                None => {
                    assert!(
                        size < 4096,
                        "attach always finished before a temporary was seen"
                    );
                    fs::remove_file(&img).unwrap();
                    size *= 4;
                    img = big_image(d, &iso, size);
                }
            }
        };
        rustix::process::kill_process(rustix::process::Pid::from_child(&child), sig).unwrap();
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        if sig == rustix::process::Signal::KILL {
            assert_eq!(temporaries(&outdir).len(), 1, "{err}");
        } else {
            assert_eq!(o.status.code(), Some(128 + sig.as_raw()), "{sig:?}: {err}");
            assert!(err.contains("interrupted by"), "{err}");
            assert!(
                temporaries(&outdir).is_empty(),
                "{sig:?} left {:?}",
                temporaries(&outdir)
            );
        }
        assert!(!out.exists());
    }
    // The next run (another output, same folder) removes what SIGKILL left.
    let left = temporaries(&outdir);
    let o = attach(&iso, &b, &outdir.join("next.img"), &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("note: removed") && err.contains(s(&left[0])),
        "{err}"
    );
    assert!(
        temporaries(&outdir).is_empty(),
        "{:?}",
        temporaries(&outdir)
    );
}

/// A stick whose reads fail with EIO: a loop device over a file on an ext4 that is then shut
/// down. The vault binary runs from the stick itself (an ext4 at its start, its pages cached),
/// as the carried vault does; the stick's MBR (in the sector ext4 leaves free) records a
/// bundle partition after the filesystem. Discovery must name the failing disk instead of
/// saying "no vault bundle found", and `inspect` of the device must name it and the cause.
/// (This kernel has no MBR partition support, so the partition is found through the disk's
/// table, as discovery does for a disk whose partitions the kernel did not expose.)
#[test]
fn an_io_error_on_the_stick_is_named() {
    if !root()
        || common::require_tool("losetup").is_none()
        || common::require_tool("mkfs.ext4").is_none()
        || common::require_tool("blockdev").is_none()
    {
        return;
    }
    let Some(scene) = FailingStick::new() else {
        return;
    };
    let o = Command::new(&scene.vault)
        .args(["detach", "--discover"])
        .output()
        .unwrap();
    let err = failed_with(o, 1, "Input/output error");
    assert!(
        err.contains(&format!(
            "cannot read {} (the stick vault runs from",
            scene.disk
        )),
        "{err}"
    );
    assert!(err.contains("dmesg"), "{err}");
    let o = Command::new(&scene.vault)
        .args(["inspect", &scene.disk])
        .output()
        .unwrap();
    let err = failed_with(o, 1, "Input/output error");
    assert!(
        err.contains(&format!("cannot read {}", scene.disk)),
        "{err}"
    );
    assert!(err.contains("dmesg"), "{err}");
}

/// The scene of [`an_io_error_on_the_stick_is_named`], taken down when dropped.
struct FailingStick {
    dir: tempfile::TempDir,
    disk: String,
    vault: PathBuf,
    mounted: bool,
}

/// Shuts down the ext4 filesystem holding `f`: every later read of it fails with EIO.
// SAFETY: EXT4_IOC_SHUTDOWN reads one u32 from the pointer it is given.
#[allow(unsafe_code)]
fn shut_down(f: &fs::File) {
    // EXT4_IOC_SHUTDOWN = _IOR('X', 125, __u32); 2 = EXT4_GOING_FLAGS_NOLOGFLUSH.
    const SHUTDOWN: rustix::ioctl::Opcode = rustix::ioctl::opcode::read::<u32>(b'X', 125);
    unsafe { rustix::ioctl::ioctl(f, rustix::ioctl::Setter::<SHUTDOWN, u32>::new(2)) }.unwrap();
}

fn sh(cmd: &str) -> bool {
    let o = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    if !o.status.success() {
        eprintln!("`{cmd}` failed: {}", String::from_utf8_lossy(&o.stderr));
    }
    o.status.success()
}

impl FailingStick {
    fn new() -> Option<FailingStick> {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_path_buf();
        for sub in ["a", "b", "bin"] {
            fs::create_dir(d.join(sub)).unwrap();
        }
        // The vault to run from the stick, without debug info to keep the stick small.
        let bin = d.join("bin/vault");
        fs::copy(common::vault_bin(), &bin).unwrap();
        let _ = Command::new("strip").arg("-g").arg(&bin).status();
        let fs_mib = fs::metadata(&bin).unwrap().len().div_ceil(1 << 20) + 16;
        let d_ = d.display();
        // Filesystem A holds the stick's backing file: an ext4 holding `vault`, then 1 MiB
        // for the bundle partition.
        let built = sh(&format!(
            "truncate -s {a}M {d_}/a.img && mkfs.ext4 -q {d_}/a.img && mount -o loop {d_}/a.img {d_}/a",
            a = fs_mib + 64
        ));
        let mut scene = FailingStick {
            dir,
            disk: String::new(),
            vault: d.join("b/vault"),
            mounted: built,
        };
        let stick = d.join("a/stick");
        if !built
            || !sh(&format!(
                "mkfs.ext4 -q -d {d_}/bin {} {fs_mib}M",
                stick.display()
            ))
        {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "the scene could not be built"
            );
            return None;
        }
        let f = fs::OpenOptions::new().write(true).open(&stick).unwrap();
        f.set_len((fs_mib + 1) << 20).unwrap();
        // ext4 leaves the first 1024 bytes alone: room for an MBR.
        let mut mbr = vec![0u8; 512];
        set_entry(&mut mbr, 3, 0xDA, (fs_mib * 2048) as u32, 2048);
        mbr[510] = 0x55;
        mbr[511] = 0xAA;
        f.write_all_at(&mbr, 0).unwrap();
        drop(f);
        let o = Command::new("losetup")
            .args(["--show", "-f"])
            .arg(&stick)
            .output()
            .unwrap();
        scene.disk = String::from_utf8_lossy(&o.stdout).trim().to_owned();
        if !o.status.success() || scene.disk.is_empty() {
            scene.disk.clear();
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "no loop device"
            );
            return None;
        }
        assert!(sh(&format!("mount -t ext4 -o ro {} {d_}/b", scene.disk)));
        // Every page of the binary in memory: it runs after the stick has failed.
        assert!(sh(&format!(
            "cat {d_}/b/vault >/dev/null && {d_}/b/vault --version"
        )));
        // Shut filesystem A down: every read of the stick's backing file fails with EIO.
        let a = fs::File::open(d.join("a")).unwrap();
        shut_down(&a);
        // Drop what is cached of the disk and not held by its mounted filesystem, so that
        // reading the bundle partition goes to the (failing) backing file.
        let _ = sh(&format!("blockdev --flushbufs {}", scene.disk));
        Some(scene)
    }
}

impl Drop for FailingStick {
    fn drop(&mut self) {
        let d = self.dir.path().display();
        if !self.disk.is_empty() {
            let _ = sh(&format!("umount -l {d}/b; losetup -d {}", self.disk));
        }
        if self.mounted {
            let _ = sh(&format!("umount -l {d}/a"));
        }
    }
}
