//! What a sops age entry's `enc` holds against what its `recipient:` label says.
//!
//! sops and vault write one single-recipient age file per recipient. An entry whose `enc`
//! holds anything else — a stanza for a second key beside the labelled one, or a stanza of
//! another type than the label calls for (a hardware key's entry relabelled as a host's) — is
//! not what the label says, and its key group counts as stale, to be re-wrapped whole. What
//! this cannot see: an X25519 stanza names nobody, so one relabelled X25519 entry looks like
//! any other (docs/REKEY.md, "sops files").

use crate::escape::escape;
use crate::keys::age::header;

use crate::repo::sops::entries::AgeEntry;

/// Why the first entry of `group` that does not fit its label does not, if one does not.
pub(crate) fn group_mismatch(group: &[AgeEntry]) -> Option<String> {
    group.iter().find_map(entry_mismatch)
}

/// Grease aside, an entry must hold: for an `age1…` label exactly one `X25519` stanza; for an
/// SSH key exactly one stanza of its type with its tag; for a plugin's `age1<name>1…` one or
/// more stanzas, none of age's own types (a plugin may write several, of types it chooses).
fn entry_mismatch(e: &AgeEntry) -> Option<String> {
    let label = e.recipient.trim();
    let name = escape(short(label)).into_owned();
    let stanzas = match header::stanzas(e.enc.as_bytes()) {
        Ok(s) => s,
        Err(why) => return Some(format!("its age entry for {name} is unreadable: {why}")),
    };
    let kinds: Vec<&header::Stanza> = stanzas
        .iter()
        .filter(|s| !header::is_grease(&s.kind))
        .collect();
    let wrong = |s: &header::Stanza| {
        format!(
            "its age entry for {name} holds a stanza of type {}",
            escape(short(&s.kind))
        )
    };
    if label.parse::<age::plugin::Recipient>().is_ok() {
        if kinds.is_empty() {
            return Some(format!("its age entry for {name} holds no stanza"));
        }
        return kinds
            .iter()
            .find(|s| {
                matches!(
                    s.kind.as_str(),
                    "X25519" | "ssh-ed25519" | "ssh-rsa" | "scrypt"
                )
            })
            .map(|s| wrong(s));
    }
    let [one] = kinds.as_slice() else {
        return Some(format!(
            "its age entry for {name} holds {} stanzas, not one",
            kinds.len()
        ));
    };
    let fits = if label.starts_with("ssh-") {
        header::ssh_tag(label)
            .is_some_and(|(kind, tag)| one.kind == kind && one.args.first() == Some(&tag))
    } else {
        one.kind == "X25519"
    };
    (!fits).then(|| wrong(one))
}

fn short(s: &str) -> &str {
    match s.char_indices().nth(24) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn armored(to: &[&str]) -> String {
        let to: Vec<_> = to
            .iter()
            .map(|r| crate::keys::age::recipients::parse(r).unwrap())
            .collect();
        String::from_utf8(crate::keys::age::crypt::encrypt(b"data key", &to, true).unwrap())
            .unwrap()
    }

    fn entry(recipient: &str, enc: String) -> AgeEntry {
        AgeEntry {
            recipient: recipient.into(),
            enc,
        }
    }

    const SSH: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsKLqeplhpW+uObz5dvMgjz1OxfM/XXUB+VHtZ6isGN host";

    /// The same class as a removed hardware key in agenix: an entry that still wraps the data
    /// key to a key the rule dropped (beside the labelled one), or a dropped key's entry put
    /// under a kept recipient's label, makes its group stale.
    #[test]
    fn an_entry_that_holds_more_than_its_recipient_is_stale() {
        let host = age::x25519::Identity::generate().to_public().to_string();
        let other = age::x25519::Identity::generate().to_public().to_string();
        assert_eq!(group_mismatch(&[entry(&host, armored(&[&host]))]), None);
        assert_eq!(group_mismatch(&[entry(SSH, armored(&[SSH]))]), None);

        let two = group_mismatch(&[entry(&host, armored(&[&host, &other]))]).unwrap();
        assert!(two.contains("holds 2 stanzas, not one"), "{two}");
        let ssh_as_x = group_mismatch(&[entry(&host, armored(&[SSH]))]).unwrap();
        assert!(
            ssh_as_x.contains("stanza of type ssh-ed25519"),
            "{ssh_as_x}"
        );
        let x_as_ssh = group_mismatch(&[entry(SSH, armored(&[&host]))]).unwrap();
        assert!(x_as_ssh.contains("stanza of type X25519"), "{x_as_ssh}");

        // A hardware key's entry: the plugin's own stanza types, never age's.
        let yk = "age1yubikey1qwt50d05nh5vutpdzmlg5wn80xq5negm4uj9ghv0snvdd3yysf5yw3rhl3t";
        let header = |kinds: &[&str]| {
            let mut h = String::from("age-encryption.org/v1\n");
            for k in kinds {
                h.push_str(&format!("-> {k} AAAA\nAAAA\n"));
            }
            h.push_str("--- AAAA\n");
            h
        };
        assert_eq!(group_mismatch(&[entry(yk, header(&["piv-p256"]))]), None);
        assert_eq!(
            group_mismatch(&[entry(yk, header(&["piv-p256", "x-grease"]))]),
            None
        );
        let x_as_yk = group_mismatch(&[entry(yk, header(&["piv-p256", "X25519"]))]).unwrap();
        assert!(x_as_yk.contains("stanza of type X25519"), "{x_as_yk}");
        let yk_as_host = group_mismatch(&[
            entry(&other, armored(&[&other])),
            entry(&host, header(&["piv-p256"])),
        ])
        .unwrap();
        assert!(
            yk_as_host.contains("stanza of type piv-p256"),
            "{yk_as_host}"
        );
        let damaged = group_mismatch(&[entry(&host, "not age".into())]).unwrap();
        assert!(damaged.contains("unreadable"), "{damaged}");
    }
}
