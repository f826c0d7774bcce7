//! Unit tests of the bundle layer (src/bundle/mod.rs): round trips, failures, extra stanzas.
use super::test_util::seal;
use super::*;

fn open(bytes: &[u8], pass: &str) -> Result<Vec<u8>> {
    let limits = KdfLimits::for_this_machine();
    let locked = Locked::open(bytes, Path::new("b"))?;
    let key = locked
        .try_passphrase(&SecretString::from(pass.to_owned()), &limits)?
        .ok_or(Error::WrongPassphrase { path: "b".into() })?;
    let mut out = Vec::new();
    locked
        .decrypt(key)?
        .read_to_end(&mut out)
        .map_err(|e| Error::Tampered {
            path: "b".into(),
            why: AuthFailure::of(&e)
                .map(|a| a.to_string())
                .unwrap_or(e.to_string()),
        })?;
    Ok(out)
}

#[test]
fn round_trip_and_failures() {
    let plain = vec![42u8; 200_000];
    let sealed = seal(&plain);
    assert!(looks_like_bundle(&sealed));
    // What a device or image holds when no bundle was attached.
    assert!(!looks_like_bundle(&[0; 4096]));
    assert!(!looks_like_bundle(b"\x7fELF\x02\x01\x01"));
    assert_eq!(open(&sealed, "pw").unwrap(), plain);
    assert!(matches!(
        open(&sealed, "PW"),
        Err(Error::WrongPassphrase { .. })
    ));
    // Truncated in the payload, in the header, flipped bits in the payload.
    let e = open(&sealed[..sealed.len() - 10], "pw").unwrap_err();
    assert!(
        e.to_string().contains("authentication") || e.to_string().contains("truncated"),
        "{e}"
    );
    let e = open(&sealed[..60], "pw").unwrap_err();
    assert!(matches!(e, Error::Tampered { .. }), "{e}");
    let mut flipped = sealed.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    assert!(matches!(open(&flipped, "pw"), Err(Error::Tampered { .. })));
    assert!(matches!(open(b"", "pw"), Err(Error::NotABundle { .. })));
    assert!(matches!(
        open(b"hello world, this is not age", "pw"),
        Err(Error::NotABundle { .. })
    ));
    // Shorter than the version line, and not a prefix of it: still not a bundle, not "truncated".
    assert!(matches!(
        open(b"hello", "pw"),
        Err(Error::NotABundle { .. })
    ));
}

/// A validly formed stanza asking for 4 GiB with 64 passes (minutes a try) is refused by
/// the work cap in `check_limits`, which runs before any derivation: the error is
/// `KdfTooExpensive`, not the wrong passphrase a derivation would end in.
#[test]
fn a_header_over_the_work_budget_is_refused_before_deriving() {
    let sealed = seal(b"x");
    let h = header::parse(&sealed).unwrap().len;
    let head = std::str::from_utf8(&sealed[..h]).unwrap();
    let crafted = head.replacen(" 64 1 1\n", " 4194304 64 4\n", 1);
    assert_ne!(crafted, head);
    let mut bytes = crafted.into_bytes();
    bytes.extend_from_slice(&sealed[h..]);
    let locked = Locked::open(&bytes[..], Path::new("b")).unwrap();
    assert_eq!(locked.info().kdf.work(), 4194304 * 64);
    let limits = KdfLimits {
        mem_available: None,
        ..KdfLimits::for_this_machine()
    };
    let e = locked
        .try_passphrase(&SecretString::from("pw".to_owned()), &limits)
        .err()
        .expect("refused");
    assert!(
        matches!(&e, Error::KdfTooExpensive { what, .. } if what.contains("passes allowed")),
        "{e}"
    );
}

/// What a key holder can do and a forger cannot: rebuild `bundle`'s header with `extra`
/// stanza lines after the passphrase stanza (in place of the grease), MACed with the file
/// key `file_key`; the nonce and payload are kept (they depend only on the file key).
fn reheader(bundle: &[u8], extra: &[u8], file_key: &[u8; 16]) -> Vec<u8> {
    use hmac::Mac as _;
    let len = header::parse(bundle).unwrap().len;
    let head = &bundle[..len];
    // Version line, the vault stanza's two lines.
    let stanza_end = head
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == b'\n')
        .nth(2)
        .unwrap()
        .0
        + 1;
    let mut out = head[..stanza_end].to_vec();
    assert!(out.ends_with(b"\n") && !head[stanza_end..].starts_with(b"-> vault"));
    out.extend_from_slice(extra);
    out.extend_from_slice(b"---");
    let mut mac_key = [0u8; 32];
    hkdf::Hkdf::<sha2::Sha256>::new(Some(&[]), file_key)
        .expand(b"header", &mut mac_key)
        .unwrap();
    let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(&mac_key).unwrap();
    mac.update(&out);
    let tag = mac.finalize().into_bytes();
    out.push(b' ');
    out.extend_from_slice(
        base64::Engine::encode(&base64::prelude::BASE64_STANDARD_NO_PAD, tag).as_bytes(),
    );
    out.push(b'\n');
    out.extend_from_slice(&bundle[len..]);
    out
}

/// `bundle` (sealed with "pw") opened, and its file key unwrapped with the passphrase.
fn unwrapped(bundle: &[u8]) -> (Locked<&[u8]>, Unwrapped) {
    let locked = Locked::open(bundle, Path::new("b")).unwrap();
    let key = locked
        .try_passphrase(
            &SecretString::from("pw".to_owned()),
            &KdfLimits::for_this_machine(),
        )
        .unwrap()
        .unwrap();
    (locked, key)
}

fn file_key_of(bundle: &[u8]) -> [u8; 16] {
    *unwrapped(bundle).1.expose()
}

/// A real X25519 stanza for `file_key`, as age writes it, and the identity that opens it.
fn x25519_stanza(file_key: &[u8; 16]) -> (Vec<u8>, age::x25519::Identity) {
    let id = age::x25519::Identity::generate();
    let (stanzas, _) =
        age::Recipient::wrap_file_key(&id.to_public(), &FileKey::new(Box::new(*file_key))).unwrap();
    let s = &stanzas[0];
    let mut text = format!("-> {} {}\n", s.tag, s.args.join(" "));
    let body = base64::Engine::encode(&base64::prelude::BASE64_STANDARD_NO_PAD, &s.body);
    text.push_str(&body);
    text.push('\n');
    assert!(body.len() < 64);
    (text.into_bytes(), id)
}

/// Other stanzas may accompany the passphrase stanza (docs/FORMAT.md §1): one written
/// with the file key opens, with the passphrase and, through age, with its own identity.
#[test]
fn an_extra_stanza_written_by_the_key_holder_opens() {
    let plain = vec![7u8; 100_000];
    let sealed = seal(&plain);
    let fk = file_key_of(&sealed);
    let (extra, id) = x25519_stanza(&fk);
    let with_extra = reheader(&sealed, &extra, &fk);
    assert_eq!(header::parse(&with_extra).unwrap().stanza_count, 2);
    assert_eq!(open(&with_extra, "pw").unwrap(), plain);
    let mut out = Vec::new();
    age::Decryptor::new_buffered(&with_extra[..])
        .unwrap()
        .decrypt(std::iter::once(&id as &dyn age::Identity))
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    assert_eq!(out, plain);
}

/// Without the passphrase there is no file key, so no header MAC: a stanza added (or one
/// swapped in for the grease) by anyone else is refused, however well-formed.
#[test]
fn an_extra_stanza_added_without_the_passphrase_is_refused() {
    let sealed = seal(b"secret");
    let len = header::parse(&sealed).unwrap().len;
    // The forger's own file key: the stanza is valid age, for a key that is not this one.
    let (extra, _) = x25519_stanza(&[9u8; 16]);
    let head = &sealed[..len];
    let mac_at = head.len() - MAC_LINE.len();
    for keep_grease in [true, false] {
        let stanza_end = head
            .iter()
            .enumerate()
            .filter(|(_, &b)| b == b'\n')
            .nth(2)
            .unwrap()
            .0
            + 1;
        let mut forged = head[..if keep_grease { mac_at } else { stanza_end }].to_vec();
        forged.extend_from_slice(&extra);
        forged.extend_from_slice(&head[mac_at..]);
        forged.extend_from_slice(&sealed[len..]);
        let e = open(&forged, "pw").unwrap_err();
        assert!(
            matches!(&e, Error::Tampered { why, .. } if why.contains("header MAC")),
            "{e}"
        );
    }
}

/// `encrypt_with_recovery` writes the passphrase stanza, then one stanza per recovery
/// recipient in order, then grease; each recovery identity unwraps the same file key as
/// the passphrase, and an identity with no stanza finds none.
#[test]
fn recovery_stanzas_follow_the_passphrase_stanza_and_yield_the_same_key() {
    let ids = [
        age::x25519::Identity::generate(),
        age::x25519::Identity::generate(),
    ];
    let (r0, r1) = (ids[0].to_public(), ids[1].to_public());
    let mut sealed = Vec::new();
    let mut w = encrypt_with_recovery(
        &mut sealed,
        SecretString::from("pw".to_owned()),
        super::test_util::FAST,
        &[&r0, &r1],
    )
    .unwrap();
    w.write_all(b"payload").unwrap();
    w.finish().unwrap();
    let locked = Locked::open(&sealed[..], Path::new("b")).unwrap();
    let tags: Vec<String> = locked.stanzas().map(|s| s.tag).collect();
    assert_eq!(tags.len(), 4, "{tags:?}");
    assert_eq!(&tags[..3], [argon2id::TAG, "X25519", "X25519"]);
    let fk = file_key_of(&sealed);
    for id in &ids {
        let key = locked.try_identities(&[id]).unwrap().expect("opens");
        assert_eq!(key.expose(), &fk);
    }
    let stranger = age::x25519::Identity::generate();
    assert!(locked.try_identities(&[&stranger]).unwrap().is_none());
    let key = locked.try_identities(&[&ids[1]]).unwrap().unwrap();
    let mut out = Vec::new();
    locked.decrypt(key).unwrap().read_to_end(&mut out).unwrap();
    assert_eq!(out, b"payload");
    assert_eq!(open(&sealed, "pw").unwrap(), b"payload");
}

/// A recovery stanza that is malformed for the identity tried (an X25519 stanza with an
/// extra argument) is reported as a damaged bundle, not as "no identity opens it"; and
/// `header_bytes` is the header as read, up to and including the MAC line.
#[test]
fn an_invalid_recovery_stanza_is_tampering_and_header_bytes_is_the_header() {
    let id = age::x25519::Identity::generate();
    let mut sealed = Vec::new();
    let mut w = encrypt_with_recovery(
        &mut sealed,
        SecretString::from("pw".to_owned()),
        super::test_util::FAST,
        &[&id.to_public()],
    )
    .unwrap();
    w.write_all(b"payload").unwrap();
    w.finish().unwrap();
    let len = header::parse(&sealed).unwrap().len;
    let locked = Locked::open(&sealed[..], Path::new("b")).unwrap();
    assert_eq!(locked.header_bytes(), &sealed[..len]);
    assert!(locked.header_bytes().starts_with(header::VERSION_LINE));
    assert!(locked.header_bytes().ends_with(b"\n"));
    assert!(locked.header_bytes().windows(5).any(|w| w == b"\n--- "));

    let text = std::str::from_utf8(&sealed[..len]).unwrap();
    let line_end = text.find("-> X25519 ").unwrap();
    let eol = line_end + text[line_end..].find('\n').unwrap();
    let mut bad = Vec::new();
    bad.extend_from_slice(&sealed[..eol]);
    bad.extend_from_slice(b" extra");
    bad.extend_from_slice(&sealed[eol..]);
    let locked = Locked::open(&bad[..], Path::new("b")).unwrap();
    let e = locked.try_identities(&[&id]).map(|_| ()).unwrap_err();
    assert!(matches!(e, Error::Tampered { .. }), "{e}");
    assert!(e.to_string().contains("invalid"), "{e}");
}

/// A payload that fails authentication says where, in released bytes, and what kind of
/// failure it was, through [`AuthFailure::of`] on the I/O error (what unlock reports).
#[test]
fn an_authentication_failure_names_its_position_and_kind() {
    let plain = vec![7u8; 200_000];
    let sealed = seal(&plain);
    let failure = |bundle: &[u8]| {
        let (locked, key) = unwrapped(bundle);
        let mut out = Vec::new();
        let e = locked
            .decrypt(key)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap_err();
        let a = AuthFailure::of(&e)
            .expect("an authentication failure")
            .clone();
        (a, out.len())
    };
    // The last chunk flipped: the three full 64 KiB chunks before it were released.
    let mut flipped = sealed.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    let (a, released) = failure(&flipped);
    assert_eq!(
        (a.position, a.kind),
        (3 * 65536, io::ErrorKind::InvalidData)
    );
    assert_eq!(released as u64, a.position);
    assert!(a.to_string().contains("at payload byte 196608"), "{a}");
    // Cut at a chunk boundary: the final chunk is missing.
    let header = header::parse(&sealed).unwrap().len;
    let cut = header + 16 + 2 * (65536 + 16);
    let (a, _) = failure(&sealed[..cut]);
    assert_eq!(a.kind, io::ErrorKind::UnexpectedEof, "{a}");
    assert!(AuthFailure::of(&io::Error::other("plain")).is_none());
}

/// A read error other than the end of the input, while age reads the header's nonce, is an
/// I/O error on the bundle, not a truncated bundle.
#[test]
fn a_read_error_after_the_header_is_an_io_error() {
    struct ThenFail<'a>(&'a [u8]);
    impl Read for ThenFail<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Err(io::Error::other("device error"));
            }
            let n = buf.len().min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    let sealed = seal(b"x");
    let header = header::parse(&sealed).unwrap().len;
    let (_, key) = unwrapped(&sealed);
    let locked = Locked::open(ThenFail(&sealed[..header]), Path::new("b")).unwrap();
    let e = locked.decrypt(key).map(drop).unwrap_err();
    assert!(matches!(e, Error::Io(crate::error::IoError { .. })), "{e}");
}

/// A recovery recipient (a plugin can return any stanza) whose stanza is a passphrase stanza,
/// vault's or age's scrypt, is refused: a second one would make the header invalid.
#[test]
fn a_recovery_recipient_returning_a_passphrase_stanza_is_refused() {
    struct Returns(&'static str);
    impl age::Recipient for Returns {
        fn wrap_file_key(
            &self,
            _: &FileKey,
        ) -> std::result::Result<(Vec<Stanza>, std::collections::HashSet<String>), age::EncryptError>
        {
            let stanza = Stanza {
                tag: self.0.to_owned(),
                args: vec![],
                body: vec![0; 32],
            };
            Ok((vec![stanza], Default::default()))
        }
    }
    let wrap = |r: &dyn age::Recipient| {
        encrypt_with_recovery(
            Vec::new(),
            SecretString::from("pw".to_owned()),
            super::test_util::FAST,
            &[r],
        )
        .map(drop)
    };
    assert!(wrap(&Returns("X25519")).is_ok());
    for tag in [argon2id::TAG, "scrypt"] {
        let e = wrap(&Returns(tag)).expect_err(tag);
        assert!(e.to_string().contains("other recipients"), "{tag}: {e}");
    }
}

const MAC_LINE: &[u8] = b"--- 0123456789012345678901234567890123456789012\n";

/// The whole header, MAC line included, is at most 16 KiB: a header of exactly 16384
/// bytes opens, one of 16385 is refused.
#[test]
fn the_header_limit_includes_the_mac_line() {
    let plain = b"at the limit".to_vec();
    let sealed = seal(&plain);
    let fk = file_key_of(&sealed);
    // One stanza `-> filler <arg>` with an empty body: arg_len + 12 bytes.
    let filler = |arg_len: usize| {
        let mut s = b"-> filler ".to_vec();
        s.extend(std::iter::repeat_n(b'a', arg_len));
        s.extend_from_slice(b"\n\n");
        s
    };
    let base = header::parse(&reheader(&sealed, &filler(1), &fk))
        .unwrap()
        .len;
    let arg_len = header::MAX_HEADER_LEN - base + 1;
    let at_limit = reheader(&sealed, &filler(arg_len), &fk);
    assert_eq!(header::parse(&at_limit).unwrap().len, 16384);
    assert_eq!(open(&at_limit, "pw").unwrap(), plain);
    let over = reheader(&sealed, &filler(arg_len + 1), &fk);
    assert_eq!(
        header::parse(&over),
        Err(HeaderError::Malformed("the header is larger than 16 KiB"))
    );
    let e = open(&over, "pw").unwrap_err();
    assert!(matches!(e, Error::Tampered { .. }), "{e}");
}
