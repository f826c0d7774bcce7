//! Which host is this machine? Every host with a recorded identity is scored against what
//! the machine says about itself; exactly one host at or above [`THRESHOLD`], with nothing
//! conflicting, is chosen. None or several: the caller asks (the host menu), never guesses.
//!
//! Scoring (docs/guide/fleet.md). Only values that are not [`junk`](crate::manifest::identity::junk) on both
//! sides are compared.
//!
//! | identifier | agrees | disagrees |
//! |---|---|---|
//! | product UUID | 4 | conflict |
//! | product serial | 3 | conflict |
//! | board serial | 3 | conflict |
//! | MAC address | 2 for each interface | conflict when the host records MACs, the machine has some, and none is shared |
//! | disk serial or WWN | 1, however many disks | never a conflict (disks are replaced, and an install often gets a new one) |
//!
//! A host with a conflict is never chosen, whatever else agrees: a machine whose product UUID
//! differs from the one recorded is another machine, even if a network card moved into it.
//! Disks count at most 1, so a disk alone (one moved from an old machine) never chooses a
//! host; any one of the others does.

use super::Reading;
use crate::manifest::identity::{Identity, Kind};

/// The score a host needs.
pub const THRESHOLD: u32 = 2;

/// Points for one agreeing identifier of `kind`.
pub fn weight(kind: Kind) -> u32 {
    match kind {
        Kind::ProductUuid => 4,
        Kind::ProductSerial | Kind::BoardSerial => 3,
        Kind::Mac => 2,
        Kind::Disk => 1,
    }
}

/// How one host compares with this machine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// What agrees, as messages name it ("product UUID", "the MAC of eth0").
    pub matched: Vec<String>,
    /// What disagrees ("product UUID differs").
    pub conflicts: Vec<String>,
    pub score: u32,
    /// Whether the host records anything usable at all.
    pub recorded: bool,
    /// Whether all it records is placeholders.
    pub placeholders: bool,
}

impl Verdict {
    /// Whether this host may be chosen.
    pub fn is_match(&self) -> bool {
        self.conflicts.is_empty() && self.score >= THRESHOLD
    }

    /// One line for the host menu.
    pub fn summary(&self) -> String {
        if self.placeholders {
            "only placeholder values recorded".into()
        } else if !self.recorded {
            "no identity recorded".into()
        } else if !self.conflicts.is_empty() {
            join(&self.conflicts)
        } else if self.matched.is_empty() {
            "nothing recorded agrees with this machine".into()
        } else if !self.is_match() {
            format!("only {} agrees, too little on its own", join(&self.matched))
        } else {
            format!("{} {}", join(&self.matched), agree(self.matched.len()))
        }
    }
}

fn agree(n: usize) -> &'static str {
    if n == 1 {
        "matches"
    } else {
        "match"
    }
}

/// `a`, `a and b`, `a, b and c`.
pub fn join(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// Compares a host's recorded identity with the machine's reading.
pub fn score(recorded: &Identity, machine: &Reading) -> Verdict {
    let (rec, _) = recorded.without_junk();
    let (live, _) = machine.identity.without_junk();
    let mut v = Verdict {
        recorded: !rec.is_empty(),
        placeholders: rec.is_empty() && !recorded.is_empty(),
        ..Verdict::default()
    };
    for (kind, r, m) in [
        (Kind::ProductUuid, &rec.product_uuid, &live.product_uuid),
        (
            Kind::ProductSerial,
            &rec.product_serial,
            &live.product_serial,
        ),
        (Kind::BoardSerial, &rec.board_serial, &live.board_serial),
    ] {
        if let (Some(r), Some(m)) = (r, m) {
            if kind.key_of(r) == kind.key_of(m) {
                v.matched.push(kind.describe().to_owned());
                v.score += weight(kind);
            } else {
                v.conflicts.push(format!("{} differs", kind.describe()));
            }
        }
    }
    let mut shared_mac = false;
    for mac in &live.macs {
        if rec.macs.contains(mac) {
            shared_mac = true;
            let iface = machine.labels.get(mac).map_or(mac.as_str(), String::as_str);
            v.matched
                .push(format!("the MAC of {}", crate::escape::escape(iface)));
            v.score += weight(Kind::Mac);
        }
    }
    if !rec.macs.is_empty() && !live.macs.is_empty() && !shared_mac {
        v.conflicts
            .push("none of its MAC addresses is on this machine".into());
    }
    let mut disk_matched = false;
    for d in &live.disks {
        if rec.disks.iter().any(|r| r.eq_ignore_ascii_case(d)) {
            let label = machine.labels.get(d).map_or(d.as_str(), String::as_str);
            let disk = label.split(' ').next().unwrap_or(label);
            let text = format!("the disk {}", crate::escape::escape(disk));
            if !v.matched.contains(&text) {
                v.matched.push(text);
            }
            disk_matched = true;
        }
    }
    if disk_matched {
        v.score += weight(Kind::Disk);
    }
    v
}

/// The outcome of matching every host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Exactly one host matches.
    One(String, Verdict),
    /// No host matches: why, in words.
    None(String),
    /// Several hosts match.
    Several(Vec<String>),
}

/// Scores `hosts` (name and recorded identity, `None` when none is recorded) against
/// `machine`, in their order; returns each verdict and the outcome.
pub fn decide<'a>(
    hosts: impl IntoIterator<Item = (&'a str, Option<&'a Identity>)>,
    machine: &Reading,
) -> (Vec<(String, Verdict)>, Outcome) {
    let verdicts: Vec<(String, Verdict)> = hosts
        .into_iter()
        .map(|(h, id)| {
            (
                h.to_owned(),
                id.map(|id| score(id, machine)).unwrap_or_default(),
            )
        })
        .collect();
    let matching: Vec<&(String, Verdict)> = verdicts.iter().filter(|(_, v)| v.is_match()).collect();
    let outcome = match matching.as_slice() {
        [(h, v)] => Outcome::One(h.clone(), v.clone()),
        [] if verdicts.iter().all(|(_, v)| !v.recorded) => {
            Outcome::None("no host of this bundle has an identity recorded".into())
        }
        [] => Outcome::None("no host's recorded identity matches this machine".into()),
        several => Outcome::Several(several.iter().map(|(h, _)| h.clone()).collect()),
    };
    (verdicts, outcome)
}
