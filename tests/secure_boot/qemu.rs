//! OVMF with Secure Boot (`OVMF_CODE_4M.secboot.fd`, SMM, a secure pflash) under QEMU TCG,
//! driven through its serial console: FAT images to boot, a boot that stops when the log
//! says enough, the boot manager's verdict per disk, and variable updates written by the
//! firmware's own `SetVariable` from the UEFI shell (`dmpstore -l`).

use std::io::{Read, Write};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use vault::secure_boot::auth;
use vault::secure_boot::efi::EfiTime;

use super::*;

pub const CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd";
pub const SETUP_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";
/// Generous: TCG on a shared, busy machine. A boot here takes 15–40 s.
pub const LIMIT: Duration = Duration::from_secs(240);

/// Every tool these tests need, or `false` (skip; in CI a missing one fails).
pub fn tools(extra: &[&str]) -> bool {
    let mut all = true;
    for t in ["qemu-system-x86_64", "mkfs.vfat", "mcopy", "mmd", "sbsign"]
        .iter()
        .chain(extra)
    {
        all &= require_tool(t).is_some();
    }
    for f in [CODE, SETUP_VARS] {
        if !Path::new(f).is_file() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{f} is missing; scripts/test installs ovmf"
            );
            eprintln!("SKIP: {f} not found (ovmf)");
            all = false;
        }
    }
    all && efi_binary().is_some()
}

/// A FAT image at `img` holding `files` (path inside, bytes): 8 MiB, more if they need it.
pub fn fat(img: &Path, files: &[(&str, Vec<u8>)]) {
    let kib = files.iter().map(|(_, b)| b.len() / 1024 + 4).sum::<usize>() * 5 / 4 + 1024;
    let o = run(Command::new("mkfs.vfat")
        .arg("-C")
        .arg(img)
        .arg(kib.max(8192).to_string()));
    assert!(o.status.success(), "mkfs.vfat: {}", text(&o));
    let scratch = tempfile::tempdir().unwrap();
    for (i, (dest, bytes)) in files.iter().enumerate() {
        let mut dir = String::new();
        for part in dest.split('/').collect::<Vec<_>>().split_last().unwrap().1 {
            dir = format!("{dir}/{part}");
            // An existing folder is fine; mmd says so and fails.
            let _ = run(Command::new("mmd")
                .arg("-i")
                .arg(img)
                .arg(format!("::{dir}")));
        }
        let src = scratch.path().join(i.to_string());
        std::fs::write(&src, bytes).unwrap();
        let o = run(Command::new("mcopy")
            .arg("-i")
            .arg(img)
            .arg(&src)
            .arg(format!("::/{dest}")));
        assert!(o.status.success(), "mcopy {dest}: {}", text(&o));
    }
}

/// Serial output without terminal control sequences and carriage returns.
pub fn clean(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => {
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for d in chars.by_ref() {
                        if ('\x40'..='\x7e').contains(&d) {
                            break;
                        }
                    }
                } else {
                    chars.next();
                }
            }
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// Boots OVMF with `vars` (changed in place, as a machine's flash) and `disks` (boot order as
/// given, at PCI slots 5, 6, 7, …) until `done` says so, the machine powers off, or [`LIMIT`].
/// Returns the serial console's text and how long it took.
pub fn boot(vars: &Path, disks: &[&Path], done: impl Fn(&str) -> bool) -> (String, Duration) {
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(["-machine", "q35,smm=on", "-accel", "tcg", "-m", "256"])
        .args(["-global", "driver=cfi.pflash01,property=secure,value=on"])
        .arg("-drive")
        .arg(format!(
            "if=pflash,format=raw,unit=0,readonly=on,file={CODE}"
        ))
        .arg("-drive")
        .arg(format!(
            "if=pflash,format=raw,unit=1,file={}",
            vars.display()
        ))
        .args([
            "-display", "none", "-serial", "stdio", "-net", "none", "-monitor", "none",
        ]);
    for (i, d) in disks.iter().enumerate() {
        cmd.arg("-drive")
            .arg(format!("if=none,id=d{i},format=raw,file={}", d.display()))
            .arg("-device")
            .arg(format!(
                "virtio-blk-pci,drive=d{i},bootindex={},addr={:#x}",
                i + 1,
                5 + i
            ));
    }
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start qemu-system-x86_64");
    let mut stdout = child.stdout.take().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut raw = Vec::new();
    let mut skipped_countdown = false;
    loop {
        let left = LIMIT.saturating_sub(started.elapsed());
        match rx.recv_timeout(left.min(Duration::from_secs(1))) {
            Ok(chunk) => raw.extend(chunk),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) if left.is_zero() => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        let log = clean(&raw);
        // The shell waits 5 s before startup.nsh unless a key (not ESC) is pressed.
        if !skipped_countdown && log.contains("to skip startup.nsh") {
            let _ = stdin.write_all(b" ");
            skipped_countdown = true;
        }
        if done(&log) {
            break;
        }
    }
    let took = started.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    drop(rx);
    let _ = reader.join();
    (clean(&raw), took)
}

#[derive(Debug, PartialEq)]
pub enum Verdict {
    Started,
    Refused(String),
}

/// What the boot manager did with the disk at PCI slot `slot`, from its own log line.
pub fn verdict(log: &str, slot: usize) -> Option<Verdict> {
    let at = format!("Pci({slot:#X},0x0)");
    log.lines().filter(|l| l.contains(&at)).find_map(|l| {
        if l.contains("BdsDxe: starting") {
            Some(Verdict::Started)
        } else if l.contains("BdsDxe: failed to load") {
            Some(Verdict::Refused(
                l.rsplit(": ").next().unwrap_or("").trim().to_string(),
            ))
        } else {
            None
        }
    })
}

/// Three boot disks: the EFI binary unsigned, signed by `other` (key, cert), signed by `db`.
pub fn verdict_disks(t: &Path, other: (&Path, &Path), db: (&Path, &Path)) -> Vec<PathBuf> {
    let bin = efi_binary().unwrap();
    let signed_other = t.join("other.efi");
    let signed_db = t.join("db.efi");
    sbsign(other.0, other.1, &bin, &signed_other);
    sbsign(db.0, db.1, &bin, &signed_db);
    let mut disks = Vec::new();
    for (name, file) in [
        ("unsigned", bin),
        ("other", signed_other),
        ("db", signed_db),
    ] {
        let img = t.join(format!("{name}.img"));
        fat(
            &img,
            &[("EFI/BOOT/BOOTX64.EFI", std::fs::read(&file).unwrap())],
        );
        disks.push(img);
    }
    disks
}

/// Boots the three [`verdict_disks`] with `vars`: the firmware must refuse the first two and
/// start the third.
pub fn assert_enforces(vars: &Path, disks: &[PathBuf], what: &str) {
    let refs: Vec<&Path> = disks.iter().map(PathBuf::as_path).collect();
    let (log, took) = boot(vars, &refs, |l| {
        verdict(l, 7).is_some() || l.contains("Shell>")
    });
    eprintln!("{what}: verdict boot took {:.1} s", took.as_secs_f64());
    for l in log.lines().filter(|l| l.contains("BdsDxe:")) {
        eprintln!("  {l}");
    }
    assert_eq!(
        verdict(&log, 5),
        Some(Verdict::Refused("Access Denied".into())),
        "{what}: the unsigned binary must be refused\n{log}"
    );
    assert_eq!(
        verdict(&log, 6),
        Some(Verdict::Refused("Access Denied".into())),
        "{what}: the binary signed with another key must be refused\n{log}"
    );
    assert_eq!(
        verdict(&log, 7),
        Some(Verdict::Started),
        "{what}: the binary signed with the db key must start\n{log}"
    );
}

pub fn setup_mode_vars(t: &Path) -> PathBuf {
    let vars = t.join("vars.fd");
    std::fs::copy(SETUP_VARS, &vars).unwrap();
    vars
}

pub fn pair(pki: &Path, role: Role) -> (PathBuf, PathBuf) {
    (layout::key_file(pki, role), layout::cert_file(pki, role))
}

/// The variables in an OVMF variable store (read by virt-fw-vars), by name.
pub fn firmware_variables(vars: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let json = vars.with_extension("json");
    let o = run(Command::new("virt-fw-vars")
        .arg("--input")
        .arg(vars)
        .arg("--output-json")
        .arg(&json));
    assert!(o.status.success(), "virt-fw-vars: {}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    v["variables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["name"].as_str().unwrap().to_string(),
                hex::decode(x["data"].as_str().unwrap()).unwrap(),
            )
        })
        .collect()
}

/// The firmware's PK, KEK and db are exactly the host's signature lists (its certificates,
/// owned by its GUID).
pub fn assert_holds_vaults_keys(vars: &Path, h: &Hierarchy, what: &str) {
    let got = firmware_variables(vars);
    for (name, role) in [("PK", Role::Pk), ("KEK", Role::Kek), ("db", Role::Db)] {
        assert!(
            got.get(name) == Some(&h.signature_list(role)),
            "{what}: the firmware's {name} is not the host's signature list"
        );
    }
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// CRC-32 (IEEE 802.3), as the firmware's `CalculateCrc32`.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A file `dmpstore -l` loads: one variable, written with `SetVariable(name, vendor,
/// NV|BS|RT|AT [|APPEND], update)`, so the firmware authenticates `update` (an `.auth` file).
pub fn dmpstore_file(var: auth::Variable, update: &[u8], append: bool) -> Vec<u8> {
    let name: Vec<u8> = var
        .name
        .encode_utf16()
        .chain([0])
        .flat_map(u16::to_le_bytes)
        .collect();
    let attrs = auth::ATTRIBUTES | if append { auth::APPEND_WRITE } else { 0 };
    let mut rec = Vec::new();
    rec.extend((name.len() as u32).to_le_bytes());
    rec.extend((update.len() as u32).to_le_bytes());
    rec.extend(&name);
    rec.extend(var.vendor.bytes());
    rec.extend(attrs.to_le_bytes());
    rec.extend(update);
    let crc = crc32(&rec);
    rec.extend(crc.to_le_bytes());
    rec
}

pub fn time_of(update: &[u8]) -> EfiTime {
    EfiTime {
        year: u16::from_le_bytes([update[0], update[1]]),
        month: update[2],
        day: update[3],
        hour: update[4],
        minute: update[5],
        second: update[6],
    }
}

/// Runs `steps` (file name on the ESP, its contents, whether the firmware must accept it) with
/// `dmpstore -l` from the UEFI shell, each preceded by an `echo` marker, and asserts the
/// firmware's answer to each. The machine powers off at the end.
pub fn shell_enrol(vars: &Path, t: &Path, steps: &[(&str, Vec<u8>, bool)], what: &str) {
    let mut script = String::from("fs0:\r\n");
    let mut files: Vec<(&str, Vec<u8>)> = Vec::new();
    for (name, bytes, _) in steps {
        script.push_str(&format!("echo STEP {name}\r\ndmpstore -all -l {name}\r\n"));
        files.push((name, bytes.clone()));
    }
    script.push_str("echo STEP end\r\nreset -s\r\n");
    files.push(("startup.nsh", script.into_bytes()));
    let esp = t.join("shell.img");
    fat(&esp, &files);
    let (log, took) = boot(vars, &[&esp], |l| l.contains("STEP end"));
    eprintln!("{what}: shell boot took {:.1} s", took.as_secs_f64());
    assert!(
        log.contains("STEP end"),
        "{what}: the script did not finish\n{log}"
    );
    let parts: Vec<&str> = log.split("STEP ").collect();
    for (name, _, accept) in steps {
        // The shell shows each command line, then its output: the echo's output is the last.
        let part = parts
            .iter()
            .rfind(|p| p.starts_with(&format!("{name}\n")))
            .unwrap_or_else(|| panic!("{what}: no output for {name}\n{log}"));
        assert!(
            part.contains("Load and set variables from file"),
            "{what}: dmpstore did not read {name}\n{part}"
        );
        let refused = part.contains("Failed to set variable");
        let answer = part
            .lines()
            .find(|l| l.contains("Failed to set variable"))
            .unwrap_or("written");
        eprintln!("  dmpstore -l {name}: {answer}");
        if *accept {
            assert!(!refused, "{what}: the firmware refused {name}\n{part}");
        } else {
            assert!(
                refused && part.contains("Security Violation"),
                "{what}: the firmware accepted {name}, signed by the wrong key\n{part}"
            );
        }
    }
}
