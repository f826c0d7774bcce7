//! `vault host identify` from what it cannot read (no root) and from a nixos-facter report,
//! through the command line (tests/fleet_cli.rs covers the rest of a fleet).

mod common;

use std::process::Command;

use common::vault_in as vault;
use common::{fake_machine as machine, text};

const UUID_A: &str = "6f1c2a4e-8d3b-4c5a-9e7f-0a1b2c3d4e5f";
const MAC_A: &str = "00:00:5e:00:53:01";

#[test]
fn a_facter_report_records_the_disks_and_says_what_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let report = serde_json::json!({
        "version": 1,
        "hardware": {
            "disk": [{
                "class_list": ["disk", "nvme", "block_device"],
                "serial": "S4EWNF0M123456",
                "unix_device_name": "/dev/nvme0n1",
                "unix_device_names": ["/dev/disk/by-id/nvme-eui.0025388b91b2b4a1", "/dev/nvme0n1"]
            }],
            "network_interface": [{"sub_class": {"name": "Ethernet"}}]
        }
    });
    std::fs::write(d.join("facter.json"), report.to_string()).unwrap();
    std::fs::write(d.join("vault.toml"), "version = 1\n").unwrap();
    let o = vault(d, &["host", "identify", "--from-facter", "facter.json"]);
    let out = common::ok(o.clone());
    assert!(
        out.contains("\"S4EWNF0M123456\", # nvme0n1 serial"),
        "{out}"
    );
    assert!(
        out.contains("\"eui.0025388b91b2b4a1\", # nvme0n1 WWN"),
        "{out}"
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("left out product_uuid: nixos-facter leaves it out of its report on purpose"),
        "{err}"
    );
    assert!(
        err.contains(
            "left out macs: the report lists 1 network interface(s) but not their addresses"
        ),
        "{err}"
    );
    std::fs::write(d.join("box.id"), out).unwrap();
    common::ok(vault(d, &["host", "add", "box", "--identity", "box.id"]));
    let toml = std::fs::read_to_string(d.join("vault.toml")).unwrap();
    assert!(
        toml.contains("disks = [\"S4EWNF0M123456\", \"eui.0025388b91b2b4a1\"]"),
        "{toml}"
    );
    // Not a report: named, exit 5.
    std::fs::write(d.join("bad.json"), "{\"version\": 1}").unwrap();
    let o = vault(d, &["host", "identify", "--from-facter", "bad.json"]);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert!(
        text(&o).contains("bad.json: not a nixos-facter report"),
        "{}",
        text(&o)
    );
}

/// Without root the DMI values are unreadable (as on a real machine, where they are 0400):
/// `host identify` says so and what to run, and still reads what it can.
#[test]
fn identify_without_root_says_what_it_cannot_read() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let sys = machine(d, "m", UUID_A, "M-0001", MAC_A);
    for f in ["product_uuid", "product_serial"] {
        std::fs::set_permissions(
            sys.join("class/dmi/id").join(f),
            std::fs::Permissions::from_mode(0o000),
        )
        .unwrap();
    }
    let args = ["host", "identify", "--sysfs-root", sys.to_str().unwrap()];
    // root reads anything: run as nobody.
    let o = if rustix::process::geteuid().is_root() {
        if common::require_tool("setpriv").is_none() {
            return;
        }
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(common::vault_bin())
            .args(args)
            .current_dir("/")
            .output()
            .unwrap()
    } else {
        vault(d, &args)
    };
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{err}");
    for f in ["product_uuid", "product_serial"] {
        assert!(
            err.contains(&format!("vault: left out {f}: cannot read /sys/class/dmi/id/{f}: permission denied (only root can: run `sudo vault host identify`)")),
            "{err}"
        );
    }
    assert!(out.contains(&format!("\"{MAC_A}\", # eth0")), "{out}");
    assert!(!out.contains("\nproduct_uuid ="), "{out}");
}

/// A bad host name with `--identity` is said to be the name (as without it), not a fault of
/// `vault.toml` to fix; nothing is written.
#[test]
fn a_bad_host_name_with_an_identity_is_blamed_on_the_name() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(d.join("vault.toml"), "version = 1\n").unwrap();
    std::fs::write(
        d.join("m.id"),
        format!("product_uuid = \"{UUID_A}\"\nmacs = [\"{MAC_A}\"]\n"),
    )
    .unwrap();
    let before = common::snapshot(d);
    for name in ["Web1", "x]y", "../etc"] {
        let o = vault(d, &["host", "add", name, "--identity", "m.id"]);
        assert_eq!(o.status.code(), Some(5), "{}", text(&o));
        assert!(
            text(&o).contains("use a hostname-like name") && !text(&o).contains("fix the file"),
            "{name}: {}",
            text(&o)
        );
        common::assert_same(&before, &common::snapshot(d), "a refused host add");
    }
}
