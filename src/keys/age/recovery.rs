//! Recovery recipients as `vault.toml` and the command line give them: an `age1…` X25519
//! recipient, an OpenSSH public key line, or an age plugin recipient (a hardware key). pack and
//! repack wrap the bundle's file key to them; the manifest checks them when it is read.

/// A recovery recipient: the line as given (kept in the bundle's `vault.json`, so that
/// `vault repack` can wrap a new file key to it again) and age's recipient for it.
pub struct RecoveryRecipient {
    pub line: String,
    recipient: Box<dyn age::Recipient + Send + Sync>,
}

impl RecoveryRecipient {
    pub fn as_age(&self) -> &dyn age::Recipient {
        self.recipient.as_ref()
    }
}

impl std::fmt::Debug for RecoveryRecipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.line)
    }
}

/// Parses one recovery recipient: an `age1…` X25519 recipient, an OpenSSH public key line
/// (`ssh-ed25519 …`, `ssh-rsa …`), or an age plugin recipient (`age1yubikey1…`: a hardware
/// key, wrapped to by running its plugin). Points of small order are refused (no secret key opens
/// what is wrapped to them). `Err` is the reason, without the file or flag it came from.
pub fn parse_recovery_recipient(s: &str) -> std::result::Result<RecoveryRecipient, String> {
    let line = s.trim();
    if is_plugin_recipient(line) {
        // A hardware key's recipient: wrapped by its plugin (age-plugin-NAME on PATH), which
        // the parser finds now, so a missing one is named before anything is written.
        let recipient = super::recipients::parse(line)?;
        return Ok(RecoveryRecipient {
            line: line.to_owned(),
            recipient: Box::new(Shared(recipient)),
        });
    }
    // The rekey parser holds the small-order checks; its recipient is not needed here.
    super::recipients::parse(line)?;
    let recipient: Box<dyn age::Recipient + Send + Sync> = if line.starts_with("ssh-") {
        Box::new(
            line.parse::<age::ssh::Recipient>()
                .map_err(|e| format!("invalid SSH recipient {line:?}: {e:?}"))?,
        )
    } else {
        Box::new(
            line.parse::<age::x25519::Recipient>()
                .map_err(|e| format!("invalid age recipient {line:?}: {e}"))?,
        )
    };
    Ok(RecoveryRecipient {
        line: line.to_owned(),
        recipient,
    })
}

/// The recipient as `vault.toml` keeps it, checked as far as reading it goes: a plugin
/// recipient's program is looked for only when a bundle is packed, so a manifest naming a
/// hardware key loads on a machine without its plugin (for `vault rekey`, `vault host`).
pub fn checked_line(s: &str) -> std::result::Result<String, String> {
    let line = s.trim();
    if is_plugin_recipient(line) {
        line.parse::<age::plugin::Recipient>().map_err(|e| {
            format!(
                "invalid plugin recipient {}: {e}",
                crate::escape::escape(line)
            )
        })?;
        return Ok(line.to_owned());
    }
    parse_recovery_recipient(line).map(|r| r.line)
}

/// A recipient the rekey parser shares (`Arc`), owned here.
struct Shared(super::recipients::Recipient);

impl age::Recipient for Shared {
    fn wrap_file_key(
        &self,
        file_key: &age_core::format::FileKey,
    ) -> std::result::Result<
        (
            Vec<age_core::format::Stanza>,
            std::collections::HashSet<String>,
        ),
        age::EncryptError,
    > {
        self.0.wrap_file_key(file_key)
    }
}

/// `age1<plugin name>1<data>`: the bech32 prefix of a plugin recipient holds a second `1`.
fn is_plugin_recipient(s: &str) -> bool {
    s.strip_prefix("age1").is_some_and(|rest| {
        rest.split_once('1')
            .is_some_and(|(name, data)| !name.is_empty() && !data.is_empty())
            && !rest.contains(' ')
    }) && s.parse::<age::x25519::Recipient>().is_err()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_x25519_and_ssh_and_names_what_it_refuses() {
        let id = age::x25519::Identity::generate();
        let r = parse_recovery_recipient(&format!("  {}\n", id.to_public())).unwrap();
        assert_eq!(r.line, id.to_public().to_string());
        let ssh = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsKLqeplhpW+uObz5dvMgjz1OxfM/XXUB+VHtZ6isGN admin@laptop";
        assert_eq!(parse_recovery_recipient(ssh).unwrap().line, ssh);
        // A hardware key's recipient: read by the manifest without its plugin; packing
        // needs the plugin, and says which one when it is missing.
        let yk = "age1yubikey1qwt50d05nh5vutpdzmlg5wn80xq5negm4uj9ghv0snvdd3yysf5yw3rhl3t";
        assert_eq!(checked_line(&format!(" {yk}\n")).unwrap(), yk);
        if which::which("age-plugin-yubikey").is_err() {
            let e = parse_recovery_recipient(yk).unwrap_err();
            assert!(e.contains("age-plugin-yubikey"), "{e}");
        }
        assert!(checked_line("age1yubikey1notbech32").is_err());
        // The all-zero point: small order, refused by the rekey parser's check.
        let zero = bech32::encode(
            "age",
            bech32::ToBase32::to_base32(&[0u8; 32].to_vec()),
            bech32::Variant::Bech32,
        )
        .unwrap();
        let e = parse_recovery_recipient(&zero).unwrap_err();
        assert!(e.contains("low-order"), "{e}");
        assert!(parse_recovery_recipient("hello").is_err());
    }
}
