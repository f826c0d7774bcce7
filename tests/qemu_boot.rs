//! End to end, in a real virtual machine: a tiny isohybrid installer image (built by
//! `scripts/mkiso-test` the way nixpkgs builds its ISOs) carrying a bundle attached by
//! `vault attach`, booted in `qemu-system-x86_64 -accel tcg`. The guest's initramfs mounts the
//! ISO at /iso and the target disk (ext4, label "target") at /mnt and runs the static vault on
//! the serial console. The test types a wrong passphrase, expects the retry message, types the
//! right one, and then reads the target disk image with `debugfs`: every root-stage entry of
//! the example manifest with its content, mode and owner, and nothing else.

mod common;

use common::guest::Guest;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

const PASSPHRASE: &str = "correct horse battery staple";
const HOST: &str = "laptop";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tools() -> bool {
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
    .all(|t| common::require_tool(t).is_some())
        && Path::new("/usr/lib/ISOLINUX/isohdpfx.bin").exists()
}

fn run(cmd: &mut Command) -> String {
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
fn static_vault() -> PathBuf {
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

struct Fixture {
    dir: tempfile::TempDir,
    bundle: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let pass = dir.path().join("pass");
    std::fs::write(&pass, format!("{PASSPHRASE}\n")).unwrap();
    let bundle = dir.path().join("example.vault");
    run(Command::new(common::vault_bin())
        .args(["pack", "-m"])
        .arg(repo().join("keys-example/vault.toml"))
        .arg("-o")
        .arg(&bundle)
        .arg("--passphrase-file")
        .arg(&pass)
        .args(common::FAST_KDF));
    Fixture { dir, bundle }
}

/// Builds the installer ISO whose init runs `vault <cmd>` for each of `cmds`.
fn make_iso(dir: &Path, name: &str, cmds: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let mut c = Command::new(repo().join("scripts/mkiso-test"));
    c.arg("--vault").arg(static_vault()).arg("--out").arg(&out);
    for cmd in cmds {
        c.arg("--cmd").arg(cmd);
    }
    run(&mut c);
    out.join("installer.iso")
}

fn make_target(dir: &Path, name: &str) -> PathBuf {
    let t = dir.join(name);
    let f = std::fs::File::create(&t).unwrap();
    f.set_len(32 << 20).unwrap();
    drop(f);
    run(Command::new("mkfs.ext4")
        .args(["-q", "-L", "target"])
        .arg(&t));
    t
}

#[derive(Clone, Copy)]
enum Firmware {
    Bios,
    Uefi,
}

#[derive(Clone, Copy)]
enum Attach {
    Virtio,
    Usb,
    /// An IDE CD-ROM (BIOS only): no partitions, only the ISO9660 tree.
    Cd,
}

fn qemu_args(dir: &Path, stick: &Path, target: &Path, fw: Firmware, how: Attach) -> Vec<String> {
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
static ONE_GUEST: Mutex<()> = Mutex::new(());

/// Boots, answers the prompts, returns the console transcript.
fn boot_and_unlock(args: Vec<String>, label: &str) -> String {
    let _one = ONE_GUEST.lock().unwrap_or_else(|e| e.into_inner());
    let mut g = Guest::boot(&args);
    g.wait_for("vault-e2e: running vault unlock", 1);
    let t_prompt = g.wait_for("Passphrase for ", 1);
    g.type_line("not the passphrase");
    g.wait_for("wrong passphrase, try again (attempt 2 of 3)", 1);
    g.wait_for("Passphrase for ", 2);
    g.type_line(PASSPHRASE);
    let started = g.started;
    let t = g.wait_exit();
    eprintln!(
        "{label}: prompt after {:.1} s, powered off after {:.1} s",
        t_prompt.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    let after_unlock = t
        .split("vault-e2e: running vault unlock")
        .nth(1)
        .unwrap_or("");
    assert!(
        after_unlock.contains("vault-e2e: vault exited with 0"),
        "{label}: vault unlock failed; console:\n{t}"
    );
    t
}

/// One entry of the target tree as debugfs sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    mode: u32,
    uid: u32,
    gid: u32,
    dir: bool,
}

/// Every path in the ext4 image, walked with `debugfs -R 'ls -p'` (no mount).
fn walk_target(img: &Path) -> BTreeMap<String, Node> {
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

fn debugfs_cat(img: &Path, path: &str) -> Vec<u8> {
    let out = Command::new("debugfs")
        .arg("-R")
        .arg(format!("cat \"{path}\""))
        .arg(img)
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout
}

/// Root-stage files the example manifest gives `HOST`: target → (content, mode, uid, gid),
/// and the directories it names with their modes.
type Expected = (
    BTreeMap<String, (Vec<u8>, u32, u32, u32)>,
    BTreeMap<String, (u32, u32, u32)>,
);

fn expected() -> Expected {
    let base = repo().join("keys-example");
    let text = std::fs::read_to_string(base.join("vault.toml")).unwrap();
    let doc: toml::Value = toml::from_str(&text).unwrap();
    let mut entries: Vec<toml::Value> = doc
        .get("entry")
        .and_then(|e| e.as_array())
        .cloned()
        .unwrap_or_default();
    if let Some(h) = doc
        .get("hosts")
        .and_then(|h| h.get(HOST))
        .and_then(|h| h.get("entry"))
        .and_then(|e| e.as_array())
    {
        entries.extend(h.iter().cloned());
    }
    let mut files = BTreeMap::new();
    let mut dirs = BTreeMap::new();
    let oct = |v: Option<&toml::Value>| {
        v.and_then(|v| v.as_str())
            .map(|s| u32::from_str_radix(s, 8).unwrap())
    };
    for e in entries {
        if e.get("stage").and_then(|s| s.as_str()) == Some("disk") {
            continue;
        }
        let src = base.join(e["source"].as_str().unwrap());
        let target = e["target"].as_str().unwrap().to_string();
        let mode = oct(e.get("mode")).unwrap();
        let owner = e.get("owner").and_then(|o| o.as_str()).unwrap_or("0:0");
        let (uid, gid) = owner.split_once(':').unwrap();
        let (uid, gid): (u32, u32) = (uid.parse().unwrap(), gid.parse().unwrap());
        if src.is_dir() {
            dirs.insert(target.clone(), (mode, uid, gid));
            let file_mode = oct(e.get("file_mode"));
            for f in std::fs::read_dir(&src).unwrap() {
                let f = f.unwrap();
                let m = file_mode
                    .unwrap_or_else(|| f.metadata().unwrap().permissions().mode() & 0o7777);
                files.insert(
                    format!("{target}/{}", f.file_name().to_string_lossy()),
                    (std::fs::read(f.path()).unwrap(), m, uid, gid),
                );
            }
        } else {
            files.insert(target, (std::fs::read(&src).unwrap(), mode, uid, gid));
        }
    }
    (files, dirs)
}

/// The target holds exactly the root-stage entries: content, mode, owner; every other path is
/// `lost+found` (from mkfs) or a parent directory of an entry.
fn check_target(img: &Path, label: &str) {
    let tree = walk_target(img);
    let (files, dirs) = expected();
    for (path, (content, mode, uid, gid)) in &files {
        let n = tree
            .get(path)
            .unwrap_or_else(|| panic!("{label}: {path} missing on the target; tree: {tree:#?}"));
        assert!(!n.dir, "{label}: {path} is a directory");
        assert_eq!(
            (n.mode, n.uid, n.gid),
            (*mode, *uid, *gid),
            "{label}: mode/owner of {path}"
        );
        assert_eq!(
            &debugfs_cat(img, path),
            content,
            "{label}: content of {path}"
        );
    }
    for (path, (mode, uid, gid)) in &dirs {
        let n = &tree[path];
        assert!(n.dir);
        assert_eq!(
            (n.mode, n.uid, n.gid),
            (*mode, *uid, *gid),
            "{label}: {path}"
        );
    }
    let mut allowed: BTreeSet<String> = files.keys().chain(dirs.keys()).cloned().collect();
    for p in files.keys().chain(dirs.keys()) {
        let mut a = Path::new(p);
        while let Some(parent) = a.parent() {
            allowed.insert(parent.display().to_string());
            a = parent;
        }
    }
    for path in tree.keys() {
        assert!(
            allowed.contains(path) || path.starts_with("/lost+found"),
            "{label}: unexpected {path} on the target"
        );
        if !files.contains_key(path) {
            assert!(tree[path].dir, "{label}: unexpected file {path}");
        }
    }
}

/// Partition mode: `vault attach --image`, and `vault unlock` with no FILE finds the bundle
/// partition on the disk holding /iso. BIOS, as a virtio disk and as a USB stick.
#[test]
fn bios_partition_mode_virtio_and_usb() {
    if !tools() {
        return;
    }
    let fx = fixture();
    let dir = fx.dir.path();
    let iso = make_iso(
        dir,
        "iso",
        &[
            "detach --discover",
            &format!("unlock --root /mnt --host {HOST}"),
        ],
    );
    let stick = dir.join("stick.img");
    run(Command::new(common::vault_bin())
        .args(["attach", "--no-binary", "--image"])
        .arg(&iso)
        .arg("--bundle")
        .arg(&fx.bundle)
        .arg("-o")
        .arg(&stick));
    for (how, disk, label) in [
        (Attach::Virtio, "vda", "bios-virtio"),
        (Attach::Usb, "sda", "bios-usb"),
    ] {
        let target = make_target(dir, &format!("{label}.img"));
        let t = boot_and_unlock(qemu_args(dir, &stick, &target, Firmware::Bios, how), label);
        // Discovery found the bundle partition (slot 3) on the disk holding /iso, first.
        let listed = t
            .split("vault-e2e: running vault detach --discover")
            .nth(1)
            .and_then(|r| r.lines().nth(1))
            .unwrap_or("");
        assert!(
            listed.starts_with(&format!("/dev/{disk}3 (on the installer disk {disk})")),
            "{label}: discovery listed {listed:?}; console:\n{t}"
        );
        check_target(&target, label);
    }
}

/// ISO-file mode: `vault attach --iso-file`, the guest names /iso/vault/bundle explicitly.
#[test]
fn bios_iso_file_mode() {
    if !tools() {
        return;
    }
    let fx = fixture();
    let dir = fx.dir.path();
    let iso = make_iso(
        dir,
        "iso",
        &[&format!(
            "unlock /iso/vault/bundle --root /mnt --host {HOST}"
        )],
    );
    let stick = dir.join("stick.iso");
    run(Command::new(common::vault_bin())
        .args(["attach", "--no-binary", "--iso-file", "--image"])
        .arg(&iso)
        .arg("--bundle")
        .arg(&fx.bundle)
        .arg("-o")
        .arg(&stick));
    let target = make_target(dir, "target.img");
    boot_and_unlock(
        qemu_args(dir, &stick, &target, Firmware::Bios, Attach::Virtio),
        "bios-iso-file",
    );
    check_target(&target, "bios-iso-file");
}

/// UEFI (OVMF, q35): the same partition-mode stick boots through the EFI El Torito image.
#[test]
fn uefi_partition_mode() {
    if !tools() || common::require_tool("grub-mkstandalone").is_none() {
        return;
    }
    if !Path::new("/usr/share/OVMF/OVMF_CODE_4M.fd").exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "ovmf is not installed"
        );
        eprintln!("SKIP: no OVMF firmware");
        return;
    }
    let fx = fixture();
    let dir = fx.dir.path();
    let iso = make_iso(
        dir,
        "iso",
        &[
            "detach --discover",
            &format!("unlock --root /mnt --host {HOST}"),
        ],
    );
    let stick = dir.join("stick.img");
    run(Command::new(common::vault_bin())
        .args(["attach", "--no-binary", "--image"])
        .arg(&iso)
        .arg("--bundle")
        .arg(&fx.bundle)
        .arg("-o")
        .arg(&stick));
    let target = make_target(dir, "target.img");
    let t = boot_and_unlock(
        qemu_args(dir, &stick, &target, Firmware::Uefi, Attach::Virtio),
        "uefi-virtio",
    );
    assert!(t.contains("/dev/vda3 (on the installer disk vda)"), "{t}");
    check_target(&target, "uefi-virtio");
}

/// `vault attach --device` on a real block device in the guest (a second "stick", /dev/vdc,
/// holding a small isohybrid ISO): refused while not removable, refused while mounted, then
/// written; the kernel re-reads the table (BLKRRPART) so /dev/vdc3 appears and discovery lists
/// it. Afterwards the host reads the bundle back from the disk image.
#[test]
fn bios_device_mode_in_the_guest() {
    if !tools() {
        return;
    }
    let fx = fixture();
    let dir = fx.dir.path();
    // The second stick: an isohybrid ISO with its own label, plus 4 MiB of room.
    let tree = dir.join("stick2-tree");
    std::fs::create_dir_all(tree.join("isolinux")).unwrap();
    std::fs::copy(
        "/usr/lib/ISOLINUX/isolinux.bin",
        tree.join("isolinux/isolinux.bin"),
    )
    .unwrap();
    let stick2 = dir.join("stick2.img");
    run(Command::new("xorriso")
        .args([
            "-as",
            "mkisofs",
            "-iso-level",
            "3",
            "-volid",
            "second-stick",
        ])
        .args(["-eltorito-boot", "isolinux/isolinux.bin"])
        .args(["-eltorito-catalog", "isolinux/boot.cat", "-no-emul-boot"])
        .args(["-boot-load-size", "4", "-boot-info-table"])
        .args([
            "-isohybrid-mbr",
            "/usr/lib/ISOLINUX/isohdpfx.bin",
            "-r",
            "-o",
        ])
        .arg(&stick2)
        .arg(&tree));
    let iso_len = std::fs::metadata(&stick2).unwrap().len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&stick2)
        .unwrap();
    f.set_len(iso_len + (4 << 20)).unwrap();
    drop(f);

    let attach = "attach --no-binary --device /dev/vdc --bundle /bundle.vault --yes";
    let mut c = Command::new(repo().join("scripts/mkiso-test"));
    c.arg("--vault")
        .arg(static_vault())
        .arg("--out")
        .arg(dir.join("iso"))
        .arg("--file")
        .arg(format!("{}=/bundle.vault", fx.bundle.display()));
    for cmd in [
        attach.to_string(),
        "sh:mkdir -p /tmp/s && mount -t iso9660 -o ro /dev/vdc /tmp/s".into(),
        format!("{attach} --yes-not-removable"),
        "sh:umount /tmp/s".into(),
        format!("{attach} --yes-not-removable"),
        "sh:grep -c vdc3 /proc/partitions".into(),
        "detach --discover".into(),
    ] {
        c.arg("--cmd").arg(cmd);
    }
    run(&mut c);
    let iso = dir.join("iso/installer.iso");
    let target = make_target(dir, "target.img");
    let mut args = qemu_args(dir, &iso, &target, Firmware::Bios, Attach::Virtio);
    args.extend([
        "-drive".into(),
        format!("file={},format=raw,if=virtio", stick2.display()),
    ]);
    let _one = ONE_GUEST.lock().unwrap_or_else(|e| e.into_inner());
    let g = Guest::boot(&args);
    let started = g.started;
    let t = g.wait_exit();
    eprintln!(
        "bios-device: powered off after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let step = |n: usize| -> String {
        t.split("vault-e2e: running ")
            .nth(n)
            .unwrap_or_else(|| panic!("step {n} missing; console:\n{t}"))
            .to_string()
    };
    assert!(
        step(1).contains("is not a removable device") && step(1).contains("exited with 6"),
        "{t}"
    );
    assert!(
        step(3).contains("is in use: /dev/vdc is mounted at /tmp/s")
            && step(3).contains("exited with 6"),
        "{t}"
    );
    assert!(step(5).contains("exited with 0"), "{t}");
    assert!(
        step(6).contains("\n1\r\n") || step(6).contains("\n1\n"),
        "{t}"
    );
    assert!(step(7).contains("/dev/vdc3 ("), "{t}");
    drop(_one);
    // What the guest wrote: the bundle, found by the host in the stick's image.
    let src = vault::media::open_source(&stick2).unwrap();
    assert_eq!(src.offset, iso_len.div_ceil(1 << 20) << 20);
    let mut got = Vec::new();
    std::io::Read::read_to_end(&mut src.reader(), &mut got).unwrap();
    assert_eq!(got, std::fs::read(&fx.bundle).unwrap());
}

/// An installer like the official NixOS ISO: built with the same xorriso flags but with no
/// vault in its initramfs (`mkiso-test --no-vault`), so the guest gives a root shell.
fn make_official_iso(dir: &Path) -> PathBuf {
    let out = dir.join("official");
    run(Command::new(repo().join("scripts/mkiso-test"))
        .arg("--no-vault")
        .arg("--out")
        .arg(&out));
    out.join("installer.iso")
}

/// Boots a stick made from the official-style ISO, types the command the guide shows, a wrong
/// then the right passphrase, then asks the carried vault what discovery finds.
fn boot_official(args: Vec<String>, label: &str, disk: &str) -> String {
    boot_official_with(
        args,
        label,
        vault::media::carry::RUN_COMMAND,
        "/run/vault-bin/vault",
        &format!("/dev/{disk}3 (on the installer disk {disk})"),
    )
}

/// As [`boot_official`], with the command typed (`--host` is added), the carried binary's path
/// for discovery, and what discovery must list first.
fn boot_official_with(
    args: Vec<String>,
    label: &str,
    command: &str,
    binary: &str,
    first: &str,
) -> String {
    let _one = ONE_GUEST.lock().unwrap_or_else(|e| e.into_inner());
    let mut g = Guest::boot(&args);
    g.wait_for("vault-e2e: shell ready", 1);
    // Proof that the installer has no vault of its own (the arithmetic keeps the typed echo
    // from matching).
    g.type_line("command -v vault || echo no-vault-$((40+2))");
    g.wait_for("no-vault-42", 1);
    g.type_line(&format!("{command} --host {HOST}"));
    let t_prompt = g.wait_for("Passphrase for ", 1);
    g.type_line("not the passphrase");
    g.wait_for("wrong passphrase, try again (attempt 2 of 3)", 1);
    g.wait_for("Passphrase for ", 2);
    g.type_line(PASSPHRASE);
    g.wait_for("Unlocked ", 1);
    g.type_line("echo vault-rc-$?");
    g.wait_for("vault-rc-0", 1);
    g.type_line(&format!(
        "{binary} detach --discover; echo discovered-$((1+1))"
    ));
    g.wait_for("discovered-2", 1);
    g.type_line("exit");
    let started = g.started;
    let t = g.wait_exit();
    eprintln!(
        "{label}: prompt after {:.1} s, powered off after {:.1} s",
        t_prompt.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    // The carried vault found the bundle on its own stick first.
    // The console echoes a line typed early twice (the tty, then the shell): the listing is
    // the first path line after the last echo (the shell's echo starts with its prompt "/ #").
    let listed = t
        .rsplit("detach --discover; echo discovered-$((1+1))")
        .next()
        .and_then(|r| {
            r.lines()
                .find(|l| l.starts_with('/') && !l.starts_with("/ #"))
        })
        .unwrap_or("");
    assert!(
        listed.starts_with(first),
        "{label}: discovery listed {listed:?}; console:\n{t}"
    );
    t
}

fn have_ovmf() -> bool {
    if Path::new("/usr/share/OVMF/OVMF_CODE_4M.fd").exists()
        && common::require_tool("grub-mkstandalone").is_some()
    {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "ovmf or grub-efi-amd64-bin is not installed"
    );
    eprintln!("SKIP: no OVMF firmware or grub-mkstandalone");
    false
}

/// The official-ISO route: `vault attach --image` on an installer without vault carries the
/// static vault; booted as a USB stick under SeaBIOS and under OVMF, the guide's command
/// unlocks offline and places the files.
#[test]
fn official_iso_usb_bios_and_uefi() {
    if !tools() || !have_ovmf() {
        return;
    }
    let fx = fixture();
    let dir = fx.dir.path();
    let iso = make_official_iso(dir);
    let stick = dir.join("stick.img");
    let out = run(Command::new(common::vault_bin())
        .args(["attach", "--vault-binary"])
        .arg(static_vault())
        .arg("--image")
        .arg(&iso)
        .arg("--bundle")
        .arg(&fx.bundle)
        .arg("-o")
        .arg(&stick));
    assert!(out.contains(vault::media::carry::RUN_COMMAND), "{out}");
    for (fw, label) in [
        (Firmware::Bios, "official-bios-usb"),
        (Firmware::Uefi, "official-uefi-usb"),
    ] {
        let target = make_target(dir, &format!("{label}.img"));
        boot_official(
            qemu_args(dir, &stick, &target, fw, Attach::Usb),
            label,
            "sda",
        );
        check_target(&target, label);
    }
}

/// `vault attach --device` onto a stick that already holds the official-style ISO (a file
/// standing in for the stick), then the same boot under SeaBIOS.
#[test]
fn official_iso_written_stick_attach_device_bios() {
    if !tools() {
        return;
    }
    let fx = fixture();
    let dir = fx.dir.path();
    let iso = make_official_iso(dir);
    let stick = dir.join("stick.img");
    std::fs::copy(&iso, &stick).unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&stick)
        .unwrap();
    f.set_len(std::fs::metadata(&iso).unwrap().len() + (64 << 20))
        .unwrap();
    drop(f);
    run(Command::new(common::vault_bin())
        .args(["attach", "--test-file-as-device", "--yes", "--vault-binary"])
        .arg(static_vault())
        .arg("--device")
        .arg(&stick)
        .arg("--bundle")
        .arg(&fx.bundle));
    let target = make_target(dir, "target.img");
    boot_official(
        qemu_args(dir, &stick, &target, Firmware::Bios, Attach::Usb),
        "official-device-bios-usb",
        "sda",
    );
    check_target(&target, "official-device-bios-usb");
}

/// `vault attach --iso-file` on the official-style ISO, booted as a CD-ROM (no partitions): the
/// binary at /iso/vault/vault runs from the ISO tree (Rock Ridge mode 0755) and finds
/// /iso/vault/bundle.
#[test]
fn official_iso_file_mode_as_cd_bios() {
    if !tools() {
        return;
    }
    let fx = fixture();
    let dir = fx.dir.path();
    let iso = make_official_iso(dir);
    let cd = dir.join("cd.iso");
    let out = run(Command::new(common::vault_bin())
        .args(["attach", "--iso-file", "--vault-binary"])
        .arg(static_vault())
        .arg("--image")
        .arg(&iso)
        .arg("--bundle")
        .arg(&fx.bundle)
        .arg("-o")
        .arg(&cd));
    let command = "sudo /iso/vault/vault unlock";
    assert!(out.contains(command), "{out}");
    let target = make_target(dir, "target.img");
    boot_official_with(
        qemu_args(dir, &cd, &target, Firmware::Bios, Attach::Cd),
        "official-cd-bios",
        command,
        "/iso/vault/vault",
        "/iso/vault/bundle",
    );
    check_target(&target, "official-cd-bios");
}
