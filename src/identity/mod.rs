//! Machine identity: what a machine says about itself (DMI product UUID and serials, the
//! permanent MAC addresses of its network cards, its disks' serials and WWNs), recorded per
//! host in `vault.toml` (`[hosts.NAME.identity]`) and carried inside the encrypted bundle, so
//! that `vault unlock` on a stick carrying a fleet can tell which host this machine is.
//!
//! - [`sysfs`] reads a running machine (`vault host identify`, and `vault unlock`);
//! - [`facter`] reads what a nixos-facter report has of the same;
//! - [`text`] is the file `host identify` prints and `host add --identity` reads;
//! - [`matching`] scores every host against the machine and picks one, or none;
//! - [`choose`] is the host choice at unlock that uses it;
//! - [`record`] writes an identity into `vault.toml`.
//!
//! docs/guide/fleet.md describes all of it for users; docs/FORMAT.md §5 the bundle's field.

pub mod choose;
pub mod facter;
#[doc(hidden)]
pub mod fake;
pub mod matching;
pub mod record;
pub mod sysfs;
pub mod text;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::manifest::identity::Identity;

/// The identities `vault.toml` records for `hosts` (those with one), as a bundle carries them.
pub fn of_hosts(m: &crate::manifest::Manifest, hosts: &[String]) -> BTreeMap<String, Identity> {
    hosts
        .iter()
        .filter_map(|h| Some((h.clone(), m.hosts.get(h)?.identity.clone()?)))
        .filter(|(_, id)| !id.is_empty())
        .collect()
}

/// One thing `host identify` left out, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Note {
    pub what: String,
    pub why: String,
}

/// What a source (sysfs, a facter report) says about a machine: the identifiers found, a
/// label for each (the interface or disk it came from), and what was left out.
#[derive(Debug, Clone, Default)]
pub struct Reading {
    pub identity: Identity,
    /// Value → where it was found (`eth0`, `nvme0n1 serial`).
    pub labels: BTreeMap<String, String>,
    pub notes: Vec<Note>,
}

#[cfg(test)]
mod tests;
