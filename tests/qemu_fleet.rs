//! One stick for a fleet, in real virtual machines: the same installer image, with one bundle
//! of three hosts, booted as four machines that differ only in their SMBIOS product UUID and
//! serial (`-smbios type=1,…`) and their network card's MAC address. On each, the guest runs
//! `vault host identify` (the real kernel's sysfs) and then `vault unlock` with no `--host`:
//! the two known machines place their own host's files with no question; a third, unknown
//! machine gets the host menu (the test picks a host); a machine reporting placeholder values
//! (an all-FF UUID, "To be filled by O.E.M.", QEMU's locally administered default MAC) matches
//! nothing, not even the host that records those same placeholders, and gets the menu too.

mod common;

use std::path::Path;
use std::process::Command;

use common::qemu::{
    debugfs_cat, make_iso, make_target, qemu_args, run, tools, walk_target, Attach, Firmware,
    Guest, ONE_GUEST,
};
use vault::identity::text;
use vault::manifest::identity::Identity;

const PASSPHRASE: &str = "fleet test passphrase";

/// A machine: what QEMU tells the guest about itself.
struct Machine {
    label: &'static str,
    uuid: &'static str,
    serial: &'static str,
    mac: &'static str,
}

const ALPHA: Machine = Machine {
    label: "alpha",
    uuid: "6f1c2a4e-8d3b-4c5a-9e7f-0a1b2c3d4e5f",
    serial: "ALPHA-0001",
    // RFC 7042's documentation range: universally administered, unicast.
    mac: "00:00:5e:00:53:01",
};
const BETA: Machine = Machine {
    label: "beta",
    uuid: "0b7d6e2a-5c4f-4b3a-8e1d-9f8a7b6c5d4e",
    serial: "BETA-0002",
    mac: "00:00:5e:00:53:02",
};
const GAMMA: Machine = Machine {
    label: "gamma",
    uuid: "1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9",
    serial: "GAMMA-0003",
    mac: "00:00:5e:00:53:03",
};
const JUNK: Machine = Machine {
    label: "junk",
    uuid: "ffffffff-ffff-ffff-ffff-ffffffffffff",
    serial: "To be filled by O.E.M.",
    mac: "52:54:00:12:34:56",
};

impl Machine {
    fn qemu_args(&self) -> Vec<String> {
        [
            "-smbios",
            &format!("type=1,uuid={},serial={}", self.uuid, self.serial),
            "-nic",
            "none",
            "-netdev",
            "user,id=n0,restrict=on",
            "-device",
            &format!("virtio-net-pci,mac={},netdev=n0", self.mac),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// What `vault host identify` must print on it.
    fn identity(&self) -> Identity {
        Identity {
            product_uuid: Some(self.uuid.into()),
            product_serial: Some(self.serial.into()),
            macs: vec![self.mac.into()],
            ..Identity::default()
        }
    }
}

/// The fleet's workspace: hosts alpha and beta with their machines' identities, and junky,
/// which records the junk machine's placeholders (as if typed by hand). Every host places
/// its own /etc/fleet/host; /etc/fleet/shared goes everywhere.
fn pack(dir: &Path) -> std::path::PathBuf {
    let mut toml = String::from(
        "version = 1\n[[entry]]\nsource = \"shared\"\ntarget = \"/etc/fleet/shared\"\nmode = \"0644\"\n",
    );
    std::fs::write(dir.join("shared"), "every machine\n").unwrap();
    for (host, m) in [("alpha", &ALPHA), ("beta", &BETA), ("junky", &JUNK)] {
        std::fs::write(dir.join(host), format!("{host}\n")).unwrap();
        toml.push_str(&format!(
            "[hosts.{host}]\n[hosts.{host}.identity]\nproduct_uuid = \"{}\"\nproduct_serial = \"{}\"\nmacs = [\"{}\"]\n[[hosts.{host}.entry]]\nsource = \"{host}\"\ntarget = \"/etc/fleet/host\"\nmode = \"0644\"\n",
            m.uuid, m.serial, m.mac
        ));
    }
    std::fs::write(dir.join("vault.toml"), toml).unwrap();
    std::fs::write(dir.join("pass"), format!("{PASSPHRASE}\n")).unwrap();
    let bundle = dir.join("fleet.bundle");
    run(Command::new(common::vault_bin())
        .current_dir(dir)
        .args(["pack", "-o", "fleet.bundle", "--passphrase-file", "pass"])
        .args(common::FAST_KDF));
    bundle
}

/// The identify file the guest printed: the lines between its command and its exit, without
/// vault's messages on stderr.
fn identify_output(console: &str) -> String {
    console
        .split("vault-e2e: running vault host identify")
        .nth(1)
        .and_then(|r| r.split("vault-e2e: vault exited with").next())
        .unwrap_or("")
        .replace('\r', "")
        .lines()
        .filter(|l| !l.starts_with("vault: ") && !l.starts_with('['))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Boots `m` from `stick` onto a fresh target; `menu`: the answers typed at the host menu
/// (none: no menu is expected). Returns the console transcript and the target image.
fn boot(dir: &Path, stick: &Path, m: &Machine, menu: &[&str]) -> (String, std::path::PathBuf) {
    let target = make_target(dir, &format!("{}.img", m.label));
    let mut args = qemu_args(dir, stick, &target, Firmware::Bios, Attach::Virtio);
    args.extend(m.qemu_args());
    let _one = ONE_GUEST.lock().unwrap_or_else(|e| e.into_inner());
    let mut g = Guest::boot(&args);
    g.wait_for("vault-e2e: running vault unlock", 1);
    g.wait_for("Passphrase for ", 1);
    g.type_line(PASSPHRASE);
    for (i, answer) in menu.iter().enumerate() {
        g.wait_for("Host number (1-3): ", i + 1);
        g.type_line(answer);
    }
    let started = g.started;
    let t = g.wait_exit();
    eprintln!(
        "{}: powered off after {:.1} s",
        m.label,
        started.elapsed().as_secs_f64()
    );
    (t, target)
}

/// What the guest placed under /etc/fleet, and nothing else on the target.
fn placed(img: &Path) -> Vec<(String, Vec<u8>)> {
    walk_target(img)
        .into_iter()
        .filter(|(p, n)| !n.dir && !p.starts_with("/lost+found"))
        .map(|(p, _)| {
            let c = debugfs_cat(img, &p);
            (p, c)
        })
        .collect()
}

fn host_files(host: &str) -> Vec<(String, Vec<u8>)> {
    vec![
        ("/etc/fleet/host".into(), format!("{host}\n").into_bytes()),
        ("/etc/fleet/shared".into(), b"every machine\n".to_vec()),
    ]
}

#[test]
fn one_stick_recognises_each_machine() {
    if !tools() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let bundle = pack(dir);
    let iso = make_iso(dir, "iso", &["host identify", "unlock --root /mnt"]);
    let stick = dir.join("stick.img");
    run(Command::new(common::vault_bin())
        .args(["attach", "--no-binary", "--image"])
        .arg(&iso)
        .arg("--bundle")
        .arg(&bundle)
        .arg("-o")
        .arg(&stick));

    // The two known machines: each its own host, no question asked.
    for (m, host) in [(&ALPHA, "alpha"), (&BETA, "beta")] {
        let (t, target) = boot(dir, &stick, m, &[]);
        let id = identify_output(&t);
        assert_eq!(
            text::parse(&id).unwrap_or_else(|e| panic!("{e}: {id}\nconsole:\n{t}")),
            m.identity(),
            "{}: identify printed\n{id}",
            m.label
        );
        assert!(id.contains(&format!("\"{}\", # eth0", m.mac)), "{id}");
        assert!(
            t.contains(&format!(
                "vault: this machine is \"{host}\" (product UUID, product serial and the MAC of eth0 match); placing its 2 files"
            )),
            "{}: console:\n{t}",
            m.label
        );
        assert!(!t.contains("Host number"), "{t}");
        assert!(t.contains("vault-e2e: vault exited with 0"), "{t}");
        assert_eq!(placed(&target), host_files(host), "{}", m.label);
    }

    // An unknown machine: the menu, where the user says which host it is.
    let (t, target) = boot(dir, &stick, &GAMMA, &["2"]);
    assert!(
        t.contains(
            "vault: no host's recorded identity matches this machine; which host is this machine?"
        ),
        "{t}"
    );
    assert!(t.contains("1) alpha  (product UUID differs"), "{t}");
    assert_eq!(placed(&target), host_files("beta"));

    // Placeholders: nothing recorded from them, nothing matched by them, not even junky.
    let (t, target) = boot(dir, &stick, &JUNK, &["none", "of", "these"]);
    let id = identify_output(&t);
    assert_eq!(text::parse(&id).unwrap(), Identity::default(), "{id}");
    for junk in [
        // Linux itself hides an all-FF (or all-zero) SMBIOS UUID: no product_uuid at all.
        "left out product_uuid: not reported by this machine",
        "product_serial \"To be filled by O.E.M.\": a placeholder",
        "interface eth0 \"52:54:00:12:34:56\": locally administered",
    ] {
        assert!(t.contains(junk), "{junk}: console:\n{t}");
    }
    assert!(
        t.contains("3) junky  (only placeholder values recorded)"),
        "{t}"
    );
    assert!(t.contains("no host was chosen"), "{t}");
    assert!(t.contains("vault-e2e: vault exited with 1"), "{t}");
    assert_eq!(placed(&target), Vec::new());
}
