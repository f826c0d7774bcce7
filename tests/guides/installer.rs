//! The installer side of a guide: the stick or image the guide wrote, booted in QEMU (TCG)
//! with an empty ext4 target disk that the test installer mounts at /mnt, and the guide's
//! commands typed on its serial console (a root shell, with a `sudo` that runs its
//! arguments, as the live system's passwordless one).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::common::guest::Guest;

/// How the medium is attached: as the stick the guide writes, a plain disk, or a CD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attach {
    Usb,
    Virtio,
    Cd,
}

#[derive(Debug, Clone)]
pub struct Medium {
    /// An image file or a loop device.
    pub path: PathBuf,
    pub attach: Attach,
}

pub struct Installer {
    guest: Guest,
    pub target: PathBuf,
    /// Console offset up to which output belongs to earlier commands.
    read: usize,
    passphrase: String,
}

/// Whole boots, with a key derivation of 1 GiB emulated: a loaded 2-core machine needs time.
const TIMEOUT: Duration = Duration::from_secs(1500);

fn run(cmd: &mut Command) {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        o.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

impl Installer {
    /// Boots `medium`. Answers the passphrase prompt of a vault the installer starts by itself
    /// (the installer module's automatic unlock), then waits for the shell.
    pub fn boot(medium: &Medium, dir: &Path, passphrase: &str) -> Installer {
        let target = dir.join(format!(
            "target-{}.img",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let f = std::fs::File::create(&target).unwrap();
        f.set_len(64 << 20).unwrap();
        drop(f);
        run(Command::new("mkfs.ext4")
            .args(["-q", "-L", "target"])
            .arg(&target));
        let m = medium.path.display();
        // 3 GiB: the default Argon2id takes 1 GiB, checked against the memory available.
        let mut args: Vec<String> = [
            "-accel",
            "tcg",
            "-machine",
            "pc",
            "-m",
            "3072",
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
        match medium.attach {
            Attach::Usb => args.extend([
                "-device".into(),
                "qemu-xhci".into(),
                "-drive".into(),
                format!("file={m},format=raw,if=none,id=stick,readonly=on"),
                "-device".into(),
                "usb-storage,drive=stick,bootindex=0".into(),
            ]),
            Attach::Virtio => args.extend([
                "-drive".into(),
                format!("file={m},format=raw,if=virtio,readonly=on"),
            ]),
            Attach::Cd => args.extend([
                "-drive".into(),
                format!("file={m},format=raw,media=cdrom,readonly=on"),
                "-boot".into(),
                "d".into(),
            ]),
        }
        args.extend([
            "-drive".into(),
            format!("file={},format=raw,if=virtio", target.display()),
        ]);
        let mut guest = Guest::boot(&args);
        guest.timeout = TIMEOUT;
        let mut i = Installer {
            guest,
            target,
            read: 0,
            passphrase: passphrase.to_owned(),
        };
        let ready = regex::Regex::new("vault-e2e: shell ready").unwrap();
        let prompt = regex::Regex::new(r"Passphrase for [^\n]*:").unwrap();
        loop {
            let (which, end) = i.guest.wait_any(&[&ready, &prompt], i.read);
            i.read = end;
            if which == 0 {
                break;
            }
            let p = i.passphrase.clone();
            i.guest.type_line(&p);
        }
        i
    }

    /// Types `cmd` at the shell, answers passphrase prompts, and returns its exit code and
    /// what the console showed meanwhile.
    pub fn run(&mut self, cmd: &str) -> (i32, String) {
        let start = self.read;
        // The marker runs once the command ended; the arithmetic keeps the typed line's echo
        // from matching it. The shell reads the whole `{ …; }` before running it, so nothing
        // typed is left for a passphrase prompt to read. `sudo -i` starts a shell that reads
        // the marker itself.
        if cmd.trim() == "sudo -i" {
            self.guest.type_line(cmd);
            std::thread::sleep(Duration::from_secs(1));
            self.guest.type_line("echo \"gt-rc-0-$((6*7))\"");
        } else {
            self.guest
                .type_line(&format!("{{ {cmd}\n}}; echo \"gt-rc-$?-$((6*7))\""));
        }
        let done = regex::Regex::new(r"gt-rc-(\d+)-42").unwrap();
        let prompt = regex::Regex::new(r"Passphrase for [^\n]*:").unwrap();
        loop {
            let (which, end) = self.guest.wait_any(&[&done, &prompt], self.read);
            let text = self.guest.transcript();
            if which == 0 {
                let code = done
                    .captures(&text[self.read..end])
                    .and_then(|c| c[1].parse().ok())
                    .unwrap_or(-1);
                self.read = end;
                return (code, super::shell::clean(&text[start..end]));
            }
            self.read = end;
            let p = self.passphrase.clone();
            self.guest.type_line(&p);
        }
    }

    /// Seconds since qemu started.
    pub fn up(&self) -> f64 {
        self.guest.started.elapsed().as_secs_f64()
    }

    /// Leaves every shell (the installer powers off, unmounting /mnt) and returns the
    /// console transcript.
    pub fn power_off(mut self) -> String {
        for _ in 0..4 {
            if self.guest.child.try_wait().unwrap().is_some() {
                break;
            }
            self.guest.type_line("exit");
            std::thread::sleep(Duration::from_millis(500));
        }
        self.guest.wait_exit()
    }
}

/// The ext4 target's file at `path`, read with debugfs (no mount).
pub fn target_file(img: &Path, path: &str) -> Option<Vec<u8>> {
    let o = Command::new("debugfs")
        .arg("-R")
        .arg(format!("cat \"{path}\""))
        .arg(img)
        .output()
        .unwrap();
    (o.status.success() && !o.stdout.is_empty()).then_some(o.stdout)
}
