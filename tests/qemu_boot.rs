//! End to end, in a real virtual machine: a tiny isohybrid installer image (built by
//! `scripts/mkiso-test` the way nixpkgs builds its ISOs) carrying a bundle attached by
//! `vault attach`, booted in `qemu-system-x86_64 -accel tcg`. The guest's initramfs mounts the
//! ISO at /iso and the target disk (ext4, label "target") at /mnt and runs the static vault on
//! the serial console. The test types a wrong passphrase, expects the retry message, types the
//! right one, and then reads the target disk image with `debugfs`: every root-stage entry of
//! the example manifest with its content, mode and owner, and nothing else.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::qemu::{
    debugfs_cat, make_iso, make_target, qemu_args, repo, run, static_vault, tools, walk_target,
    Attach, Firmware, Guest, ONE_GUEST,
};

const PASSPHRASE: &str = "correct horse battery staple";
const HOST: &str = "laptop";

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

impl Fixture {
    /// `vault attach FLAGS --image IMAGE --bundle BUNDLE -o OUT`: what it printed.
    fn attach(&self, flags: &[&str], image: &Path, out: &Path) -> String {
        run(Command::new(common::vault_bin())
            .arg("attach")
            .args(flags)
            .arg("--image")
            .arg(image)
            .arg("--bundle")
            .arg(&self.bundle)
            .arg("-o")
            .arg(out))
    }

    /// [`Fixture::attach`] carrying the static vault (`--vault-binary`).
    fn attach_carrying(&self, flags: &[&str], image: &Path, out: &Path) -> String {
        let bin = static_vault();
        let flags = [flags, &["--vault-binary", bin.to_str().unwrap()]].concat();
        self.attach(&flags, image, out)
    }
}

/// The test installer, running `detach --discover` and then `unlock` without a FILE.
fn discovering_iso(dir: &Path) -> PathBuf {
    let unlock = format!("unlock --root /mnt --host {HOST}");
    make_iso(dir, "iso", &["detach --discover", &unlock])
}

/// The fixture and an installer like the official ISO (see [`make_official_iso`]).
fn official() -> (Fixture, PathBuf) {
    let fx = fixture();
    let iso = make_official_iso(fx.dir.path());
    (fx, iso)
}

/// [`official`], attached (carrying the static vault, with `flags`) to `dir/NAME`: the
/// fixture, that image, and the command attach printed for the installer.
fn official_attached(flags: &[&str], name: &str) -> (Fixture, PathBuf, String) {
    let (fx, iso) = official();
    let out = fx.dir.path().join(name);
    let printed = printed_command(&fx.attach_carrying(flags, &iso, &out));
    (fx, out, printed)
}

/// Makes `path` `by` bytes longer (zeros), as a stick larger than the image written to it.
fn grow(path: &Path, by: u64) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_len(f.metadata().unwrap().len() + by).unwrap();
}

/// At the passphrase prompt: a wrong passphrase, the retry message, then the right one.
/// Returns when the first prompt appeared.
fn wrong_then_right(g: &mut Guest) -> std::time::Duration {
    let t_prompt = g.wait_for("Passphrase for ", 1);
    g.type_line("not the passphrase");
    g.wait_for("wrong passphrase, try again (attempt 2 of 3)", 1);
    g.wait_for("Passphrase for ", 2);
    g.type_line(PASSPHRASE);
    t_prompt
}

/// Boots, answers the prompts, returns the console transcript.
fn boot_and_unlock(args: Vec<String>, label: &str) -> String {
    let _one = ONE_GUEST.lock().unwrap_or_else(|e| e.into_inner());
    let mut g = Guest::boot(&args);
    g.wait_for("vault-e2e: running vault unlock", 1);
    let t_prompt = wrong_then_right(&mut g);
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
    let iso = discovering_iso(dir);
    let stick = dir.join("stick.img");
    fx.attach(&["--no-binary"], &iso, &stick);
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
    fx.attach(&["--no-binary", "--iso-file"], &iso, &stick);
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
    let iso = discovering_iso(dir);
    let stick = dir.join("stick.img");
    fx.attach(&["--no-binary"], &iso, &stick);
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
    let stick2 = common::isohybrid(dir, "second-stick", "stick2.img").expect("xorriso");
    let iso_len = std::fs::metadata(&stick2).unwrap().len();
    grow(&stick2, 4 << 20);

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

/// The command `vault attach` printed for the installer (the line "on the installer: …").
fn printed_command(attach_stdout: &str) -> String {
    attach_stdout
        .lines()
        .find_map(|l| l.strip_prefix("on the installer: "))
        .unwrap_or_else(|| panic!("attach printed no command: {attach_stdout}"))
        .to_owned()
}

/// SHA-256 of a file, as `sha256sum` prints it.
fn sha256_hex(p: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(p).unwrap()))
}

/// Boots a stick made from the official-style ISO, types `command` (what attach printed, the
/// command the guide shows), a wrong then the right passphrase, then asks the carried vault
/// what discovery finds.
fn boot_official(args: Vec<String>, label: &str, disk: &str, command: &str) -> String {
    boot_official_with(
        args,
        label,
        command,
        vault::media::carry::RUN_PATH,
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
    let t_prompt = wrong_then_right(&mut g);
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
    let (fx, stick, command) = official_attached(&[], "stick.img");
    let dir = fx.dir.path();
    // The command checks the SHA-256 of the binary it runs, the one attach carried.
    assert_eq!(
        command,
        vault::media::carry::run_command(&sha256_hex(&static_vault()))
    );
    for (fw, label) in [
        (Firmware::Bios, "official-bios-usb"),
        (Firmware::Uefi, "official-uefi-usb"),
    ] {
        let target = make_target(dir, &format!("{label}.img"));
        let t = boot_official(
            qemu_args(dir, &stick, &target, fw, Attach::Usb),
            label,
            "sda",
            &command,
        );
        assert!(
            t.contains(&format!("{}: OK", vault::media::carry::RUN_PATH)),
            "{t}"
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
    let (fx, iso) = official();
    let dir = fx.dir.path();
    let stick = dir.join("stick.img");
    std::fs::copy(&iso, &stick).unwrap();
    grow(&stick, 64 << 20);
    let out = run(Command::new(common::vault_bin())
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
        &printed_command(&out),
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
    let (fx, cd, command) = official_attached(&["--iso-file"], "cd.iso");
    let dir = fx.dir.path();
    assert_eq!(
        command,
        vault::media::carry::iso_run_command(&sha256_hex(&static_vault()))
    );
    let target = make_target(dir, "target.img");
    boot_official_with(
        qemu_args(dir, &cd, &target, Firmware::Bios, Attach::Cd),
        "official-cd-bios",
        &command,
        "/iso/vault/vault",
        "/iso/vault/bundle",
    );
    check_target(&target, "official-cd-bios");
}

/// A stick whose carried binary is not the one attach put there (one byte changed after
/// attach, as a second device labelled VAULT-BIN would present another binary): the command
/// attach printed, typed into the live system's shell, refuses it before it runs, so no
/// passphrase is asked and nothing is placed.
#[test]
fn official_iso_binary_with_another_hash_is_not_run_bios() {
    if !tools() {
        return;
    }
    let (fx, stick, command) = official_attached(&[], "stick.img");
    let dir = fx.dir.path();
    let carried = vault::media::inspect_image(&stick).unwrap().binary.unwrap();
    // A byte in the middle of the binary's data: it would still run.
    let at = carried.offset + carried.len / 2;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .read(true)
        .open(&stick)
        .unwrap();
    let mut b = [0u8; 1];
    std::os::unix::fs::FileExt::read_exact_at(&f, &mut b, at).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[b[0] ^ 0x20], at).unwrap();
    drop(f);
    assert_eq!(
        vault::media::inspect_image(&stick)
            .unwrap()
            .binary
            .unwrap()
            .matches_record,
        Some(false)
    );
    let target = make_target(dir, "target.img");
    let args = qemu_args(dir, &stick, &target, Firmware::Bios, Attach::Usb);
    let _one = ONE_GUEST.lock().unwrap_or_else(|e| e.into_inner());
    let mut g = Guest::boot(&args);
    g.wait_for("vault-e2e: shell ready", 1);
    g.type_line(&format!("{command} --host {HOST}; echo check-rc-$?"));
    g.wait_for(&format!("{}: FAILED", vault::media::carry::RUN_PATH), 1);
    // The echo of the typed line holds "check-rc-$?", never "check-rc-1".
    g.wait_for("check-rc-1", 1);
    g.type_line("exit");
    let t = g.wait_exit();
    assert!(
        !t.contains("Passphrase for "),
        "the binary ran; console:\n{t}"
    );
    let placed: Vec<String> = walk_target(&target)
        .into_keys()
        .filter(|p| !p.starts_with("/lost+found"))
        .collect();
    assert!(placed.is_empty(), "placed {placed:?}; console:\n{t}");
}
