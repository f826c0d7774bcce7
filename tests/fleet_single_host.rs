//! A bundle of one host on a machine that contradicts the host's recorded identity (the wrong
//! stick in the wrong machine): vault knows this is another machine, so it does not place
//! the host's SSH host key there unasked. With no terminal it refuses; `--host` places it
//! with a warning; on a terminal the host menu asks. A machine that agrees, or that reports
//! nothing to compare, gets the host as always.

mod common;

use common::fleet::Fleet;
use common::pty::exit_code;
use common::text;
use expectrl::Eof;

/// Host alpha, identified on its machine, packed alone.
fn single() -> Fleet {
    Fleet::new("version = 1\n", &["alpha"])
}

#[test]
fn a_single_host_on_another_machine_is_not_placed_unasked() {
    let s = single();
    let (o, mnt) = s.unlock(&s.beta, "other", &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("this bundle's only host, alpha, records an identity this machine contradicts (product UUID differs"),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("--host NAME"), "{}", text(&o));
    assert_eq!(std::fs::read_dir(&mnt).unwrap().count(), 0);
    // -q silences warnings, not this.
    let (o, mnt) = s.unlock(&s.beta, "other-quiet", &["-q"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(std::fs::read_dir(&mnt).unwrap().count(), 0);

    // --host always wins, with a warning.
    let (o, mnt) = s.unlock(&s.beta, "given", &["--host", "alpha"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o)
            .contains("warning: placing host \"alpha\" (as --host says), but product UUID differs"),
        "{}",
        text(&o)
    );
    s.placed(&mnt, "alpha");

    // Its own machine, and a machine that reports nothing to compare: placed, not a word.
    let blank = s.dir.join("sys-blank");
    vault::identity::fake::FakeSysfs::new(&blank).unwrap();
    for (sys, label) in [(&s.alpha, "own"), (&blank, "blank")] {
        let (o, mnt) = s.unlock(sys, label, &[]);
        assert!(
            o.status.success() && !text(&o).contains("warning"),
            "{label}: {}",
            text(&o)
        );
        s.placed(&mnt, "alpha");
    }
}

/// On a terminal: the host menu, with the one host and why it does not fit; the user's
/// number places it.
#[test]
fn a_single_host_that_does_not_fit_is_asked_on_a_terminal() {
    let s = single();
    let mnt = s.mnt("menu");
    let mut p = s.unlock_on_terminal(&s.beta, &mnt);
    p.expect("this bundle's only host, alpha, records an identity this machine contradicts")
        .unwrap();
    p.expect("which host is this machine?").unwrap();
    p.expect("1) alpha  (product UUID differs").unwrap();
    p.expect("Host number (1-1): ").unwrap();
    p.send_line("1").unwrap();
    p.expect(Eof).unwrap();
    assert_eq!(exit_code(&mut p), 0);
    s.placed(&mnt, "alpha");
}
