//! A host's identity as recorded: the identifiers (DMI product UUID and serials, permanent MAC
//! addresses, disk serials and WWNs) that `vault.toml` keeps under `[hosts.NAME.identity]` and a
//! bundle carries in its manifest, normalized and checked. Reading them from a running machine
//! and matching them is done by the fleet operations above this layer (`src/identity/`).
//!
//! [`junk`] is the one list of values that identify nothing.

pub mod junk;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::escape::Escaped;

/// Longest identifier value (a SCSI T10 identifier holds vendor, model and serial).
pub const MAX_VALUE_LEN: usize = 256;
/// Most MAC addresses, and most disk identifiers, one host may record.
pub const MAX_LIST: usize = 64;

/// The kinds of identifier, strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    ProductUuid,
    ProductSerial,
    BoardSerial,
    Mac,
    Disk,
}

impl Kind {
    /// The key in `vault.toml` and in the identify file.
    pub fn key(self) -> &'static str {
        match self {
            Kind::ProductUuid => "product_uuid",
            Kind::ProductSerial => "product_serial",
            Kind::BoardSerial => "board_serial",
            Kind::Mac => "macs",
            Kind::Disk => "disks",
        }
    }

    /// As messages name it.
    pub fn describe(self) -> &'static str {
        match self {
            Kind::ProductUuid => "product UUID",
            Kind::ProductSerial => "product serial",
            Kind::BoardSerial => "board serial",
            Kind::Mac => "MAC address",
            Kind::Disk => "disk identifier",
        }
    }

    /// Normalizes a value of this kind, or says why it is not one.
    pub fn normalize(self, v: &str) -> Result<String, String> {
        match self {
            Kind::ProductUuid => normalize_uuid(v),
            Kind::Mac => normalize_mac(v),
            _ => normalize_serial(v),
        }
    }

    /// Why a normalized value of this kind identifies nothing ([`junk`]), or `None`.
    pub fn junk(self, v: &str) -> Option<&'static str> {
        let placeholder = "a placeholder many machines report";
        match self {
            Kind::ProductUuid => junk::uuid_is_junk(v).then_some(placeholder),
            Kind::Mac => junk::mac_is_junk(v),
            _ => junk::serial_is_junk(v).then_some(placeholder),
        }
    }

    /// The form two values are compared in: serials and disk identifiers without case.
    pub(crate) fn key_of(self, v: &str) -> String {
        match self {
            Kind::ProductUuid | Kind::Mac => v.to_owned(),
            _ => v.to_ascii_uppercase(),
        }
    }
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, lowercase.
pub fn normalize_uuid(v: &str) -> Result<String, String> {
    let u = v.trim().to_ascii_lowercase();
    let ok = u.len() == 36
        && u.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        });
    ok.then_some(u)
        .ok_or_else(|| format!("\"{}\" is not a UUID", Escaped(short(v))))
}

/// Six two-digit hex octets, `:` (or `-`) between them; written lowercase with `:`.
pub fn normalize_mac(v: &str) -> Result<String, String> {
    let t = v.trim().to_ascii_lowercase().replace('-', ":");
    let parts: Vec<&str> = t.split(':').collect();
    let ok = parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
    ok.then_some(t).ok_or_else(|| {
        format!(
            "\"{}\" is not a MAC address (aa:bb:cc:dd:ee:ff)",
            Escaped(short(v))
        )
    })
}

/// Trimmed, runs of spaces made one, 1 to [`MAX_VALUE_LEN`] bytes of printable ASCII.
pub fn normalize_serial(v: &str) -> Result<String, String> {
    let s = v.split_ascii_whitespace().collect::<Vec<_>>().join(" ");
    if s.is_empty() || s.len() > MAX_VALUE_LEN || !s.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        return Err(format!(
            "\"{}\" is not an identifier (1 to {MAX_VALUE_LEN} printable ASCII characters)",
            Escaped(short(v))
        ));
    }
    Ok(s)
}

fn short(v: &str) -> &str {
    let mut end = v.len().min(80);
    while !v.is_char_boundary(end) {
        end -= 1;
    }
    &v[..end]
}

/// The identifiers recorded for one host: in `vault.toml` as `[hosts.NAME.identity]`, in the
/// bundle's `vault.json` as `identities.NAME` (docs/FORMAT.md §5). Values are normalized.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// Required in JSON (`null` when not recorded), as every field.
    #[serde(deserialize_with = "Option::deserialize")]
    pub product_uuid: Option<String>,
    #[serde(deserialize_with = "Option::deserialize")]
    pub product_serial: Option<String>,
    #[serde(deserialize_with = "Option::deserialize")]
    pub board_serial: Option<String>,
    pub macs: Vec<String>,
    pub disks: Vec<String>,
}

/// An identity as written in TOML (`vault.toml`, the identify file): every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdentity {
    product_uuid: Option<String>,
    product_serial: Option<String>,
    board_serial: Option<String>,
    #[serde(default)]
    macs: Vec<String>,
    #[serde(default)]
    disks: Vec<String>,
}

impl Identity {
    /// Checks and normalizes what a user wrote; errors name the key.
    pub fn from_raw(raw: RawIdentity) -> Result<Identity, String> {
        let one = |kind: Kind, v: Option<String>| -> Result<Option<String>, String> {
            v.map(|v| {
                kind.normalize(&v)
                    .map_err(|e| format!("{}: {e}", kind.key()))
            })
            .transpose()
        };
        let list = |kind: Kind, vs: Vec<String>| -> Result<Vec<String>, String> {
            let mut out: Vec<String> = Vec::new();
            for v in vs {
                let v = kind
                    .normalize(&v)
                    .map_err(|e| format!("{}: {e}", kind.key()))?;
                if !out.iter().any(|o| kind.key_of(o) == kind.key_of(&v)) {
                    out.push(v);
                }
            }
            Ok(out)
        };
        let id = Identity {
            product_uuid: one(Kind::ProductUuid, raw.product_uuid)?,
            product_serial: one(Kind::ProductSerial, raw.product_serial)?,
            board_serial: one(Kind::BoardSerial, raw.board_serial)?,
            macs: list(Kind::Mac, raw.macs)?,
            disks: list(Kind::Disk, raw.disks)?,
        };
        id.check_lengths()?;
        Ok(id)
    }

    /// The rules a bundle's identity must meet (untrusted input): every value in its
    /// normalized form, lists bounded and without repeats.
    pub fn validate(&self) -> Result<(), String> {
        self.check_lengths()?;
        let mut seen = std::collections::BTreeSet::new();
        for (kind, v) in self.values() {
            match kind.normalize(v) {
                Ok(n) if n == v => {}
                Ok(_) => return Err(format!("{} \"{}\" is not normalized", kind.key(), v)),
                Err(e) => return Err(format!("{}: {e}", kind.key())),
            }
            if !seen.insert((kind, kind.key_of(v))) {
                return Err(format!("{} lists \"{v}\" twice", kind.key()));
            }
        }
        Ok(())
    }

    fn check_lengths(&self) -> Result<(), String> {
        for (kind, n) in [(Kind::Mac, self.macs.len()), (Kind::Disk, self.disks.len())] {
            if n > MAX_LIST {
                return Err(format!("{}: {n} values (at most {MAX_LIST})", kind.key()));
            }
        }
        Ok(())
    }

    /// Every recorded value with its kind, strongest kinds first.
    pub fn values(&self) -> impl Iterator<Item = (Kind, &str)> {
        [
            (Kind::ProductUuid, &self.product_uuid),
            (Kind::ProductSerial, &self.product_serial),
            (Kind::BoardSerial, &self.board_serial),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_deref().map(|v| (k, v)))
        .chain(self.macs.iter().map(|v| (Kind::Mac, v.as_str())))
        .chain(self.disks.iter().map(|v| (Kind::Disk, v.as_str())))
    }

    /// The values that can identify a machine (not [`junk`]).
    pub fn usable(&self) -> impl Iterator<Item = (Kind, &str)> {
        self.values().filter(|(k, v)| k.junk(v).is_none())
    }

    pub fn is_empty(&self) -> bool {
        self.values().next().is_none()
    }

    /// This identity without its [`junk`] values, and those values with why each is junk.
    pub fn without_junk(&self) -> (Identity, Vec<(Kind, String, &'static str)>) {
        let mut dropped = Vec::new();
        let mut keep = |kind: Kind, v: &String| match kind.junk(v) {
            Some(why) => {
                dropped.push((kind, v.clone(), why));
                false
            }
            None => true,
        };
        let clean = Identity {
            product_uuid: self
                .product_uuid
                .clone()
                .filter(|v| keep(Kind::ProductUuid, v)),
            product_serial: self
                .product_serial
                .clone()
                .filter(|v| keep(Kind::ProductSerial, v)),
            board_serial: self
                .board_serial
                .clone()
                .filter(|v| keep(Kind::BoardSerial, v)),
            macs: self
                .macs
                .iter()
                .filter(|v| keep(Kind::Mac, v))
                .cloned()
                .collect(),
            disks: self
                .disks
                .iter()
                .filter(|v| keep(Kind::Disk, v))
                .cloned()
                .collect(),
        };
        (clean, dropped)
    }
}

/// One identifier two hosts both record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shared {
    pub kind: Kind,
    pub value: String,
    pub first: String,
    pub second: String,
}

impl std::fmt::Display for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "hosts {} and {} both record the {} \"{}\"; an identifier two hosts share cannot tell them apart (cloned virtual machines share product UUIDs, some boards share serials): remove it from the host it does not belong to",
            self.first,
            self.second,
            self.kind.describe(),
            Escaped(&self.value)
        )
    }
}

/// Refuses an identifier (other than [`junk`], which never matches anyway) that two hosts
/// record.
pub fn check_unique<'a>(
    hosts: impl IntoIterator<Item = (&'a str, &'a Identity)>,
) -> Result<(), Shared> {
    let mut seen: BTreeMap<(Kind, String), &str> = BTreeMap::new();
    for (host, id) in hosts {
        for (kind, v) in id.usable() {
            if let Some(first) = seen.insert((kind, kind.key_of(v)), host) {
                if first != host {
                    return Err(Shared {
                        kind,
                        value: v.to_owned(),
                        first: first.to_owned(),
                        second: host.to_owned(),
                    });
                }
            }
        }
    }
    Ok(())
}
