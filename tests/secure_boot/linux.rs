//! docs/guide/secure-boot.md's commands for a running Linux, run as written: Debian's kernel,
//! started by OVMF with Secure Boot (`qemu.rs`), runs an initramfs holding bash, efitools'
//! `efi-updatevar` and e2fsprogs' `chattr`; its init mounts efivarfs and runs the `$ ` lines of
//! the guide's blocks as root, in the folder holding the `.auth` files, stopping at the first
//! that fails. The firmware starts in setup mode with a vendor's KEK, db and dbx in place (as
//! "Reset to Setup Mode" leaves them), so the variables exist and Linux keeps them immutable.
//!
//! Then the firmware decides: its variables hold the host's PK and KEK, db the old and the new
//! db certificate (the vendor's replaced), dbx the old one (the vendor's entry kept), and it
//! refuses the old db key's signature and starts the new one's.

use std::os::unix::fs::PermissionsExt;

use super::qemu::*;
use super::*;

/// The `$ ` lines of each sh block in the section of docs/guide/secure-boot.md under `heading`
/// (up to the next heading of the same or a higher level).
fn guide_blocks(heading: &str) -> Vec<Vec<String>> {
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/guide/secure-boot.md"),
    )
    .unwrap();
    let level = heading.chars().take_while(|&c| c == '#').count();
    let start = doc
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("no {heading:?} in the guide"));
    let mut blocks = Vec::new();
    let mut current: Option<Vec<String>> = None;
    for line in doc[start + 1..].lines().skip(1) {
        let t = line.trim();
        let hashes = line.chars().take_while(|&c| c == '#').count();
        if current.is_none() && hashes > 0 && hashes <= level && line[hashes..].starts_with(' ') {
            break;
        }
        match (&mut current, t) {
            (None, "```sh") => current = Some(Vec::new()),
            (Some(_), "```") => blocks.push(current.take().unwrap()),
            (Some(b), t) => {
                if let Some(cmd) = t.strip_prefix("$ ") {
                    b.push(cmd.to_string());
                }
            }
            (None, _) => {}
        }
    }
    blocks
}

/// `lib` => `/usr/lib/…/lib.so (0x…)` and the loader line of `ldd program`.
fn shared_libraries(program: &Path) -> Vec<PathBuf> {
    let o = run(Command::new("ldd").arg(program));
    assert!(
        o.status.success(),
        "ldd {}: {}",
        program.display(),
        text(&o)
    );
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| {
            let p = l.split("=>").last()?.split_whitespace().next()?;
            p.starts_with('/').then(|| PathBuf::from(p))
        })
        .collect()
}

fn put(root: &Path, at: &str, bytes: &[u8], mode: u32) {
    let p = root.join(at.trim_start_matches('/'));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, bytes).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Debian's kernel and a module path of it, from /boot and /lib/modules.
fn kernel() -> Option<(PathBuf, String)> {
    let mut k: Vec<PathBuf> = std::fs::read_dir("/boot")
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().contains("/vmlinuz-"))
        .collect();
    k.sort();
    let k = k.pop()?;
    let version = k.to_string_lossy().rsplit("vmlinuz-").next()?.to_string();
    Some((k, version))
}

/// An initramfs (newc cpio) whose init runs `script` with bash, `files` (path, bytes) inside.
fn initramfs(t: &Path, version: &str, files: &[(String, Vec<u8>)], script: &str) -> Vec<u8> {
    let root = t.join("initramfs");
    let bin = |p: &Path| std::fs::read(p).unwrap();
    let mut programs = Vec::new();
    for name in ["bash", "efi-updatevar", "chattr"] {
        programs.push(require_tool(name).expect("checked by the caller"));
    }
    for p in &programs {
        let name = p.file_name().unwrap().to_str().unwrap();
        put(&root, &format!("/bin/{name}"), &bin(p), 0o755);
        for lib in shared_libraries(p) {
            put(&root, lib.to_str().unwrap(), &bin(&lib), 0o755);
        }
    }
    // efitools runs `system("mount -l > …")` (sh) to find efivarfs; busybox's mount has no -l.
    put(&root, "/bin/sh", &bin(&programs[0]), 0o755);
    let busybox = require_tool("busybox").expect("checked by the caller");
    put(&root, "/bin/busybox", &bin(&busybox), 0o755);
    for applet in ["insmod", "poweroff", "sed", "cat", "ls"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    put(
        &root,
        "/bin/mount",
        b"#!/bin/busybox sh\n\
          if [ \"$1\" = -l ]; then\n\
          exec /bin/busybox sed 's/^\\([^ ]*\\) \\([^ ]*\\) \\([^ ]*\\) \\([^ ]*\\).*/\\1 on \\2 type \\3 (\\4)/' /proc/mounts\n\
          fi\n\
          exec /bin/busybox mount \"$@\"\n",
        0o755,
    );
    let o = run(Command::new("modprobe").args(["-S", version, "--show-depends", "efivarfs"]));
    let ko = String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .find(|w| w.ends_with("efivarfs.ko"))
        .map(PathBuf::from)
        .expect("efivarfs.ko");
    put(&root, "/efivarfs.ko", &bin(&ko), 0o644);
    for (path, bytes) in files {
        put(&root, path, bytes, 0o644);
    }
    for d in ["proc", "sys", "dev", "tmp"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    put(&root, "/init", script.as_bytes(), 0o755);
    let out = t.join("initrd.img");
    let o = run(Command::new("sh")
        .arg("-c")
        .arg(format!(
            "find . | cpio -o -H newc --quiet > {}",
            out.display()
        ))
        .current_dir(&root));
    assert!(o.status.success(), "cpio: {}", text(&o));
    std::fs::read(out).unwrap()
}

/// The guest's init: each guide command, run by bash in its folder, between markers.
fn script(steps: &[(&str, Vec<String>)]) -> (String, Vec<String>) {
    let mut s = String::from(
        "#!/bin/bash\nexport PATH=/bin\n\
         mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev\n\
         insmod /efivarfs.ko\n\
         mount -t efivarfs efivarfs /sys/firmware/efi/efivars\n",
    );
    let mut all = Vec::new();
    for (dir, cmds) in steps {
        s.push_str(&format!("cd {dir}\n"));
        for cmd in cmds {
            let n = all.len();
            s.push_str(&format!(
                "echo 'GUIDE {n} start'\n{cmd}\nrc=$?\necho \"GUIDE {n} rc=$rc\"\n\
                 [ $rc = 0 ] || {{ echo 'GUIDE stopped'; poweroff -f; }}\n"
            ));
            all.push(cmd.clone());
        }
    }
    s.push_str("echo 'GUIDE done'\npoweroff -f\n");
    (s, all)
}

#[test]
fn the_guides_linux_commands_enrol_and_rotate_as_written() {
    let needed = [
        "virt-fw-vars",
        "efi-updatevar",
        "chattr",
        "bash",
        "busybox",
        "cpio",
        "modprobe",
        "ldd",
    ];
    if !tools(&needed) {
        return;
    }
    let Some((vmlinuz, version)) = kernel() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "no /boot/vmlinuz-*: scripts/test installs linux-image-amd64"
        );
        return;
    };
    let enrol = guide_blocks("### With vault's own `.auth` files (only your keys)");
    let rotation = guide_blocks("### The db key leaked (or is simply due for a change)");
    // The workstation's block first, then the machine's: step 1 (trust) and step 3 (forbid).
    assert_eq!(enrol.len(), 1, "{enrol:?}");
    assert_eq!(rotation.len(), 3, "{rotation:?}");
    assert!(enrol[0].last().unwrap().contains("PK.auth PK"), "{enrol:?}");
    assert!(rotation[1].iter().any(|c| c.contains("db-add.auth")));
    assert!(rotation[2].iter().any(|c| c.contains("dbx-add.auth")));

    // The host's keys, its enrolment files, then a rotation's updates.
    let work = fleet_copy();
    let base = work.path();
    let auth = sb_dir(base).join("auth");
    let mut files = Vec::new();
    for n in ["PK", "KEK", "db"] {
        files.push((
            format!("/root/enrol/{n}.auth"),
            std::fs::read(auth.join(format!("{n}.auth"))).unwrap(),
        ));
    }
    let old = Hierarchy::load(&pki(base)).unwrap();
    let t = tempfile::tempdir().unwrap();
    let old_db = (t.path().join("old-db.key"), t.path().join("old-db.pem"));
    std::fs::copy(layout::key_file(&pki(base), Role::Db), &old_db.0).unwrap();
    std::fs::copy(layout::cert_file(&pki(base), Role::Db), &old_db.1).unwrap();
    ok(vault(
        base,
        &["host", "add", HOST, "--secure-boot", "--rotate"],
    ));
    let new = Hierarchy::load(&pki(base)).unwrap();
    for n in ["db-add", "dbx-add"] {
        files.push((
            format!("/root/rotate/{n}.auth"),
            std::fs::read(auth.join(format!("{n}.auth"))).unwrap(),
        ));
    }

    // Setup mode, with a vendor's KEK, db and dbx already there.
    let vendor = t.path().join("vendor.pem");
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=vendor/",
        "-keyout",
        t.path().join("vendor.key").to_str().unwrap(),
        "-out",
        vendor.to_str().unwrap(),
        "-days",
        "1",
    ]);
    const VENDOR: &str = "77fa9abd-0359-4d32-bd60-28f4e78f784b";
    let vendor_hash = "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881";
    let vars = t.path().join("vars.fd");
    let o = run(Command::new("virt-fw-vars")
        .args(["--input", SETUP_VARS, "--output"])
        .arg(&vars)
        .args(["--add-kek", VENDOR])
        .arg(&vendor)
        .args(["--add-db", VENDOR])
        .arg(&vendor)
        .args(["--add-dbx-hash", VENDOR, vendor_hash]));
    assert!(o.status.success(), "virt-fw-vars: {}", text(&o));

    let (init, commands) = script(&[
        ("/root/enrol", enrol[0].clone()),
        ("/root/rotate", rotation[1].clone()),
        ("/root/rotate", rotation[2].clone()),
    ]);
    let initrd = initramfs(t.path(), &version, &files, &init);
    let esp = t.path().join("linux.img");
    fat(
        &esp,
        &[
            ("vmlinuz", std::fs::read(&vmlinuz).unwrap()),
            ("initrd.img", initrd),
            (
                "startup.nsh",
                b"fs0:\r\nvmlinuz console=ttyS0 initrd=\\initrd.img\r\n".to_vec(),
            ),
        ],
    );
    let (log, took) = boot(&vars, &[&esp], |l| {
        l.contains("GUIDE done") || l.contains("GUIDE stopped") || l.contains("Kernel panic")
    });
    eprintln!("Linux guest took {:.1} s", took.as_secs_f64());
    for (n, cmd) in commands.iter().enumerate() {
        let part = log
            .split(&format!("GUIDE {n} start"))
            .nth(1)
            .and_then(|p| p.split(&format!("GUIDE {n} rc=")).next())
            .unwrap_or_else(|| panic!("`{cmd}` did not run\n{log}"));
        let rc = log
            .split(&format!("GUIDE {n} rc="))
            .nth(1)
            .and_then(|r| r.lines().next())
            .unwrap_or("?");
        eprintln!("  $ {cmd}  -> {rc}");
        assert_eq!(rc, "0", "`{cmd}` failed as the guide has it:{part}");
    }
    assert!(log.contains("GUIDE done"), "{log}");

    // What the firmware now holds.
    let got = firmware_variables(&vars);
    assert!(got.get("PK") == Some(&new.signature_list(Role::Pk)), "PK");
    assert!(
        got.get("KEK") == Some(&new.signature_list(Role::Kek)),
        "KEK"
    );
    let vendor_der = vault::secure_boot::keys::load_certificate_der(&vendor).unwrap();
    assert!(!contains(&got["db"], &vendor_der), "the vendor's db stayed");
    assert!(
        contains(&got["db"], old.db.cert_der()),
        "db lost the old key"
    );
    assert!(
        contains(&got["db"], new.db.cert_der()),
        "db lacks the new key"
    );
    assert!(
        contains(&got["dbx"], old.db.cert_der()),
        "dbx lacks the old key"
    );
    assert!(
        contains(&got["dbx"], &hex::decode(vendor_hash).unwrap()),
        "dbx lost the vendor's entry"
    );
    // And what it starts: not the old db key's signature, the new one's.
    let new_db = pair(&pki(base), Role::Db);
    let disks = verdict_disks(t.path(), (&old_db.0, &old_db.1), (&new_db.0, &new_db.1));
    assert_enforces(&vars, &disks, "the guide's commands on Linux");
}
