//! One bundle for a fleet, through the command line, with fake sysfs trees standing in for
//! the machines (`--sysfs-root`; tests/qemu_fleet.rs boots real ones): `host identify`,
//! `host add --identity`, `pack`, and `unlock` choosing the host this machine is, the host
//! menu on a real pseudo-terminal, and what is refused.

mod common;

use common::fleet::{Fleet, MAC_A, UUID_A, UUID_B};
use common::pty::exit_code;
use common::vault_in as vault;
use common::{fake_machine as machine, text};
use expectrl::Eof;

/// Hosts alpha and beta, each identified on its machine, and a file for every host.
fn fleet() -> Fleet {
    Fleet::new(
        "version = 1\n# the fleet\n[[entry]]\nsource = \"shared\"\ntarget = \"/etc/shared\"\n",
        &["alpha", "beta"],
    )
}

#[test]
fn each_machine_places_its_own_hosts_files() {
    let f = fleet();
    let toml = std::fs::read_to_string(f.dir.join("vault.toml")).unwrap();
    assert!(toml.contains("# the fleet\n"), "comments are kept: {toml}");
    assert!(toml.contains("[hosts.alpha.identity]"), "{toml}");
    assert!(
        toml.contains(&format!("product_uuid = \"{UUID_A}\"")),
        "{toml}"
    );
    // The identifiers travel only inside the encrypted payload.
    let bundle = std::fs::read(&f.bundle).unwrap();
    for clear in [UUID_A, UUID_B, "ALPHA-0001", MAC_A, "alpha"] {
        assert!(
            !bundle.windows(clear.len()).any(|w| w == clear.as_bytes()),
            "{clear} is in clear in the bundle"
        );
    }
    for (sys, host, other) in [(&f.alpha, "alpha", "beta"), (&f.beta, "beta", "alpha")] {
        let (o, mnt) = f.unlock(sys, host, &[]);
        let out = text(&o);
        assert!(o.status.success(), "{out}");
        assert!(
            out.contains(&format!(
                "vault: this machine is \"{host}\" (product UUID, product serial and the MAC of eth0 match); placing its 3 files (identity read from {}, not /sys)",
                sys.display()
            )),
            "{out}"
        );
        let key = std::fs::read(mnt.join("etc/ssh/ssh_host_ed25519_key")).unwrap();
        assert_eq!(key, f.host_key(host));
        assert_ne!(key, f.host_key(other));
        assert!(mnt.join("etc/shared").exists());
    }
}

#[test]
fn no_match_junk_and_a_given_host() {
    let f = fleet();
    // An unknown machine, with no terminal: refused, with the hosts and why; nothing placed.
    let gamma = f.gamma();
    let (o, mnt) = f.unlock(&gamma, "gamma", &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("several hosts (alpha, beta) and no host's recorded identity matches this machine; say which one")
            && text(&o).contains("--host NAME"),
        "{}",
        text(&o)
    );
    assert_eq!(std::fs::read_dir(&mnt).unwrap().count(), 0);

    // A board that reports placeholders: nothing of it is recorded, and it matches nothing,
    // even where a host (edited by hand) records the same placeholders.
    let junk = machine(
        &f.dir,
        "junk",
        "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF",
        "To be filled by O.E.M.",
        "52:54:00:12:34:56",
    );
    let o = f.vault(&["host", "identify", "--sysfs-root", junk.to_str().unwrap()]);
    assert!(o.status.success());
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        !stdout.contains("\nproduct_uuid =") && stdout.contains("macs = []"),
        "{stdout}"
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("product_uuid \"ffffffff-ffff-ffff-ffff-ffffffffffff\": a placeholder"),
        "{err}"
    );
    assert!(err.contains("locally administered"), "{err}");
    assert!(
        err.contains("nothing read identifies this machine"),
        "{err}"
    );
    // `host add --identity` with nothing usable is refused before anything is written.
    std::fs::write(f.dir.join("junk.id"), &*o.stdout).unwrap();
    let before = common::snapshot(&f.dir);
    let o = f.vault(&["host", "add", "delta", "--identity", "junk.id"]);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert!(text(&o).contains("holds no identifier"), "{}", text(&o));
    common::assert_same(&before, &common::snapshot(&f.dir), "a refused host add");

    let toml = f.dir.join("vault.toml");
    let mut t = std::fs::read_to_string(&toml).unwrap();
    t.push_str("[hosts.junky]\n[hosts.junky.identity]\nproduct_uuid = \"ffffffff-ffff-ffff-ffff-ffffffffffff\"\nproduct_serial = \"To be filled by O.E.M.\"\nmacs = [\"52:54:00:12:34:56\"]\n[[hosts.junky.entry]]\nsource = \"shared\"\ntarget = \"/etc/junky\"\n");
    std::fs::write(&toml, t).unwrap();
    let o = f.vault(
        &[
            &["pack", "-o", "junk.bundle", "--passphrase-file", "pw"][..],
            common::FAST_KDF,
        ]
        .concat(),
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("warning: host junky: the product UUID \"ffffffff-ffff-ffff-ffff-ffffffffffff\" in [hosts.junky.identity] is a placeholder many machines report: it never identifies a machine"),
        "{}",
        text(&o)
    );
    let (o, mnt) = f.unlock_bundle(&f.dir.join("junk.bundle"), &junk, "junk", &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("no host's recorded identity matches"),
        "{}",
        text(&o)
    );
    assert_eq!(std::fs::read_dir(&mnt).unwrap().count(), 0);

    // --host always wins; a host whose identity disagrees is placed, with a warning.
    let (o, mnt) = f.unlock(&f.alpha, "given", &["--host", "beta"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("warning: placing host \"beta\" (as --host says), but product UUID differs, product serial differs and none of its MAC addresses is on this machine"),
        "{}",
        text(&o)
    );
    f.placed(&mnt, "beta");
}

#[test]
fn a_shared_identifier_is_refused_naming_both_hosts() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(d.join("key"), "k\n").unwrap();
    // Cloned virtual machines: one product UUID, two hosts.
    std::fs::write(
        d.join("vault.toml"),
        format!("version = 1\n[hosts.web1]\n[hosts.web1.identity]\nproduct_uuid = \"{UUID_A}\"\n[[hosts.web1.entry]]\nsource = \"key\"\ntarget = \"/k\"\n[hosts.web2]\n[hosts.web2.identity]\nproduct_uuid = \"{}\"\n[[hosts.web2.entry]]\nsource = \"key\"\ntarget = \"/k\"\n", UUID_A.to_uppercase()),
    )
    .unwrap();
    std::fs::write(d.join("pw"), "pw words\n").unwrap();
    let o = vault(
        d,
        &[&["pack", "--passphrase-file", "pw"][..], common::FAST_KDF].concat(),
    );
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert!(
        text(&o).contains(&format!(
            "line 9: hosts web1 and web2 both record the product UUID \"{UUID_A}\""
        )),
        "{}",
        text(&o)
    );
    assert!(!d.join("vault.bundle").exists());

    // `host add --identity` with an identifier another host records: refused before any key
    // is generated or any file changed.
    std::fs::write(
        d.join("vault.toml"),
        format!("version = 1\n[hosts.web1]\n[hosts.web1.identity]\nmacs = [\"{MAC_A}\"]\n"),
    )
    .unwrap();
    std::fs::write(
        d.join("web2.id"),
        format!("macs = [\n    \"{}\", # eth0\n]\n", MAC_A.to_uppercase()),
    )
    .unwrap();
    let before = common::snapshot(d);
    let o = vault(d, &["host", "add", "web2", "--identity", "web2.id"]);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert!(
        text(&o).contains(&format!(
            "hosts web1 and web2 both record the MAC address \"{MAC_A}\""
        )),
        "{}",
        text(&o)
    );
    common::assert_same(&before, &common::snapshot(d), "a refused host add");
}

#[test]
fn a_replaced_board_is_recorded_again() {
    let f = fleet();
    // The new board: another UUID and serial, the same network card.
    let new_board = machine(
        &f.dir,
        "alpha2",
        UUID_B.replace('0', "1").as_str(),
        "ALPHA-NEW",
        MAC_A,
    );
    let (o, _) = f.unlock(&new_board, "before", &["--dry-run"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = f.identify_and_add("alpha", &new_board);
    // Only the identity changed: the host key stays.
    assert!(!out.contains("host key"), "{out}");
    let toml = std::fs::read_to_string(f.dir.join("vault.toml")).unwrap();
    assert_eq!(toml.matches("[hosts.alpha.identity]").count(), 1, "{toml}");
    assert!(
        toml.contains("ALPHA-NEW") && !toml.contains("ALPHA-0001"),
        "{toml}"
    );
    f.pack(&["--force"]);
    let (o, _) = f.unlock(&new_board, "after", &["--dry-run"]);
    assert!(
        text(&o).contains("this machine is \"alpha\"")
            && text(&o).contains("would place its 3 files"),
        "{}",
        text(&o)
    );
}

/// No match on a terminal: the host menu, which takes a number (and says so when it gets
/// something else), then places the chosen host's files.
#[test]
fn the_host_menu_on_a_terminal() {
    let f = fleet();
    let gamma = f.gamma();
    let mnt = f.mnt("menu");
    let mut s = f.unlock_on_terminal(&gamma, &mnt);
    s.expect("no host's recorded identity matches this machine; which host is this machine?")
        .unwrap();
    s.expect("1) alpha  (product UUID differs, product serial differs and none of its MAC addresses is on this machine)").unwrap();
    s.expect("Host number (1-2): ").unwrap();
    s.send_line("fleet passphrase").unwrap();
    s.expect("that is not a number from 1 to 2").unwrap();
    s.expect("Host number (1-2): ").unwrap();
    s.send_line("2").unwrap();
    s.expect(Eof).unwrap();
    assert_eq!(exit_code(&mut s), 0);
    f.placed(&mnt, "beta");
}
