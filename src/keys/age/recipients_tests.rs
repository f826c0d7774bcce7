//! Tests of the recipient table (src/rekey/recipients.rs).

use super::*;
use std::io::{Read, Write};

fn roundtrip(recipient: &Recipient, identity: &dyn age::Identity) -> Vec<u8> {
    let enc =
        age::Encryptor::with_recipients(std::iter::once(recipient.as_ref() as &dyn age::Recipient))
            .unwrap();
    let mut out = Vec::new();
    let mut w = enc.wrap_output(&mut out).unwrap();
    w.write_all(b"secret").unwrap();
    w.finish().unwrap();
    let dec = age::Decryptor::new(&out[..]).unwrap();
    let mut plain = Vec::new();
    dec.decrypt(std::iter::once(identity))
        .unwrap()
        .read_to_end(&mut plain)
        .unwrap();
    plain
}

#[test]
fn x25519_stanzas_open_with_age_identities() {
    for _ in 0..50 {
        let id = age::x25519::Identity::generate();
        let s = id.to_public().to_string();
        assert!(Tabled::x25519(&s).unwrap().is_some(), "tabled, not age's");
        assert_eq!(roundtrip(&parse(&s).unwrap(), &id), b"secret");
    }
}

#[test]
fn ssh_ed25519_stanzas_open_with_age_identities() {
    for _ in 0..20 {
        let key = ssh_key::PrivateKey::random(&mut rand::rngs::OsRng, ssh_key::Algorithm::Ed25519)
            .unwrap();
        let public = key.public_key().to_openssh().unwrap();
        let private = key.to_openssh(ssh_key::LineEnding::LF).unwrap();
        let id = age::ssh::Identity::from_buffer(private.as_bytes(), None).unwrap();
        let rest = public.strip_prefix("ssh-ed25519 ").unwrap();
        assert!(
            Tabled::ssh_ed25519(rest).unwrap().is_some(),
            "tabled, not age's"
        );
        let r = parse(&public).unwrap();
        let stanzas = r.wrap_file_key(&FileKey::new(Box::new([7; 16]))).unwrap().0;
        assert_eq!(stanzas[0].tag, "ssh-ed25519");
        assert_eq!(roundtrip(&r, &id), b"secret");
    }
}

#[test]
fn table_agrees_with_the_ladder_on_many_scalars() {
    let id = age::x25519::Identity::generate();
    let s = id.to_public().to_string();
    let t = Tabled::x25519(&s).unwrap().unwrap();
    let (_, data, _) = bech32::decode(&s).unwrap();
    let u: Vec<u8> = bech32::FromBase32::from_base32(&data).unwrap();
    let u: [u8; 32] = u.try_into().unwrap();
    for _ in 0..500 {
        let mut k = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut k);
        assert_eq!(*t.shared(&k), MontgomeryPoint(u).mul_clamped(k).to_bytes());
    }
}

fn hex32(h: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&h[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

fn age1(u: &[u8; 32]) -> String {
    bech32::encode(
        "age",
        bech32::ToBase32::to_base32(&u.to_vec()),
        bech32::Variant::Bech32,
    )
    .unwrap()
}

fn ssh_line(key: &[u8; 32]) -> String {
    let mut blob = b"\0\0\0\x0bssh-ed25519\0\0\0\x20".to_vec();
    blob.extend_from_slice(key);
    format!("ssh-ed25519 {} test@low-order", STANDARD.encode(&blob))
}

/// The small-order X25519 public keys: the u-coordinates of libsodium's blocklist
/// (`has_small_order`, crypto_scalarmult/curve25519/ref10/x25519_ref10.c; the same points
/// Wycheproof's x25519_test.json flags `LowOrderPublic`/`ZeroSharedSecret`), little-endian.
/// 0, 1 and the two order-8 points are canonical; p - 1 is the order-2 point of the twist;
/// p and p + 1 are non-canonical encodings of 0 and 1 (`NonCanonicalPublic`).
const SMALL_ORDER_U: [&str; 7] = [
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
];

#[test]
fn every_encoding_of_a_small_order_x25519_key_is_refused() {
    let mut n = 0;
    for h in SMALL_ORDER_U {
        // Each as written, and with bit 255 set, which X25519 ignores (Wycheproof's
        // "public key with the most significant bit set" cases).
        for high in [0u8, 0x80] {
            let mut u = hex32(h);
            u[31] |= high;
            let mut k = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut k);
            assert_eq!(
                MontgomeryPoint(u).mul_clamped(k).to_bytes(),
                [0; 32],
                "{h} (+{high:#x}) is not of small order"
            );
            let s = age1(&u);
            assert!(
                s.parse::<age::x25519::Recipient>().is_ok(),
                "age itself accepts {s}"
            );
            let err = parse(&s).err().unwrap_or_else(|| panic!("{s} accepted"));
            assert!(err.contains("low-order"), "{err}");
            n += 1;
        }
    }
    assert_eq!(n, 14);
}

/// The eight points of small order on edwards25519, canonically encoded (the torsion
/// subgroup as listed in Chalkias et al., "Taming the many EdDSAs", 2020, and as
/// curve25519-dalek's `EIGHT_TORSION`; Wycheproof's eddsa tests use the same encodings).
const EIGHT_TORSION: [&str; 8] = [
    "0100000000000000000000000000000000000000000000000000000000000000",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "0000000000000000000000000000000000000000000000000000000000000080",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
];

#[test]
fn every_encoding_of_a_small_order_ssh_ed25519_key_is_refused() {
    // The canonical encodings, plus every non-canonical one age's decoder accepts: the sign
    // bit flipped (x = 0 for y = ±1, so -x = x) and y + p for y < 19.
    let mut encodings = Vec::new();
    let mut points = Vec::new();
    for h in EIGHT_TORSION {
        let e = hex32(h);
        let p = CompressedEdwardsY(e).decompress().unwrap();
        assert!(p.is_small_order(), "{h}");
        points.push(p.compress());
        let mut flipped = e;
        flipped[31] ^= 0x80;
        encodings.extend([e, flipped]);
        let y_small = e[31] & 0x7f == 0 && e[1..31].iter().all(|b| *b == 0) && e[0] < 19;
        if y_small {
            let mut plus_p =
                hex32("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f");
            plus_p[0] += e[0];
            let mut plus_p_flipped = plus_p;
            plus_p_flipped[31] |= 0x80;
            encodings.extend([plus_p, plus_p_flipped]);
        }
    }
    points.sort_by_key(|c| c.to_bytes());
    points.dedup();
    assert_eq!(points.len(), 8, "eight distinct torsion points");
    let mut n = 0;
    let mut non_canonical = 0;
    for e in encodings {
        let Some(p) = CompressedEdwardsY(e).decompress() else {
            continue;
        };
        assert!(p.is_small_order());
        let line = ssh_line(&e);
        assert!(
            line.parse::<age::ssh::Recipient>().is_ok(),
            "age itself accepts {line}"
        );
        let err = parse(&line)
            .err()
            .unwrap_or_else(|| panic!("{line} accepted"));
        assert!(err.contains("low-order"), "{err}");
        n += 1;
        non_canonical += usize::from(p.compress().to_bytes() != e);
    }
    assert!(
        n >= 14 && non_canonical >= 6,
        "{n} encodings, {non_canonical} non-canonical"
    );
}

/// The C2SP/CCTV age vectors (`x25519*`, in ../shared/fixtures/cctv-age) run through the
/// table: the stanza's share taken as the point and the vector's identity as the scalar
/// gives `X25519(identity, share)`, the secret age's identity computes. A share age refuses
/// as low-order must be refused; every other share must unwrap exactly the vector's file key
/// where age succeeds, and nothing where age finds no match.
#[test]
fn cctv_x25519_vectors_through_the_table() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/cctv-age/testdata");
    let Ok(rd) = std::fs::read_dir(&dir) else {
        eprintln!("SKIP: {} not present", dir.display());
        return;
    };
    let mut names: Vec<String> = rd
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("x25519"))
        .collect();
    names.sort();
    let (mut opened, mut refused, mut no_match) = (0, 0, 0);
    for name in &names {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let split = bytes.windows(2).position(|w| w == b"\n\n").unwrap();
        let head = std::str::from_utf8(&bytes[..split]).unwrap();
        let file = &bytes[split + 2..];
        let field = |k: &str| {
            head.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}: ")))
                .map(str::to_string)
        };
        let expect = field("expect").unwrap();
        let file_key = field("file key").unwrap();
        let identity = field("identity").unwrap();
        let (_, data, _) = bech32::decode(&identity.to_lowercase()).unwrap();
        let sk: Vec<u8> = bech32::FromBase32::from_base32(&data).unwrap();
        let sk: [u8; 32] = sk.try_into().unwrap();
        let pk = EdwardsPoint::mul_base_clamped(sk)
            .to_montgomery()
            .to_bytes();
        let text = String::from_utf8_lossy(file);
        let lines: Vec<&str> = text.lines().collect();
        // What age does with the whole file.
        let id: age::x25519::Identity = identity.parse().unwrap();
        let age_opens = age::Decryptor::new(file)
            .and_then(|d| {
                d.decrypt(std::iter::once(&id as &dyn age::Identity))
                    .map(drop)
            })
            .is_ok();
        let mut table_key = None;
        let mut table_refused = false;
        for (i, l) in lines.iter().enumerate() {
            // Only well-formed stanzas reach a recipient; the parse errors are age's.
            let Some(share) = l.strip_prefix("-> X25519 ") else {
                continue;
            };
            let (Ok(share), Some(Ok(body))) = (
                STANDARD_NO_PAD.decode(share),
                lines.get(i + 1).map(|b| STANDARD_NO_PAD.decode(b)),
            ) else {
                continue;
            };
            let (Ok(share), 32) = (<[u8; 32]>::try_from(share), body.len()) else {
                continue;
            };
            match Tabled::x25519(&age1(&share)) {
                Err(why) => {
                    assert!(why.contains("low-order"), "{name}: {why}");
                    table_refused = true;
                }
                Ok(None) => panic!("{name}: share on the twist"),
                Ok(Some(t)) => {
                    let shared = t.shared(&sk);
                    let mut salt = [0u8; 64];
                    salt[..32].copy_from_slice(&share);
                    salt[32..].copy_from_slice(&pk);
                    let key = hkdf(&salt, X25519_LABEL, &shared[..]);
                    if let Ok(k) = age_core::primitives::aead_decrypt(&key, 16, &body) {
                        table_key = Some(k);
                    }
                }
            }
        }
        let hex: String = table_key
            .as_ref()
            .map(|k| k.iter().map(|b| format!("{b:02x}")).collect())
            .unwrap_or_default();
        match expect.as_str() {
            "success" => {
                assert!(age_opens, "{name}");
                assert_eq!(hex, file_key, "{name}: the table unwraps the file key");
                opened += 1;
            }
            _ if name.contains("low_order") || name.contains("identity") => {
                assert!(!age_opens && table_refused && table_key.is_none(), "{name}");
                refused += 1;
            }
            _ => {
                assert!(!age_opens, "{name}");
                if expect == "no match" {
                    assert!(table_key.is_none(), "{name}: the table unwrapped a key");
                    no_match += 1;
                }
            }
        }
    }
    assert!(
        opened >= 3 && refused == 2 && no_match >= 2,
        "{opened} {refused} {no_match}"
    );
}

#[test]
fn points_on_the_twist_fall_back_to_age() {
    // Half of all u are on the quadratic twist, where no Edwards point (and no table)
    // exists; age's ladder handles them.
    let mut found = 0;
    for small in 2u8..60 {
        let mut u = [0u8; 32];
        u[0] = small;
        if MontgomeryPoint(u).to_edwards(0).is_some() {
            continue;
        }
        found += 1;
        let s = bech32::encode(
            "age",
            bech32::ToBase32::to_base32(&u),
            bech32::Variant::Bech32,
        )
        .unwrap();
        assert!(Tabled::x25519(&s).unwrap().is_none());
        let r = parse(&s).unwrap();
        assert_eq!(
            r.wrap_file_key(&FileKey::new(Box::new([7; 16]))).unwrap().0[0].tag,
            "X25519"
        );
    }
    assert!(found > 0);
}

#[test]
fn the_cache_returns_one_recipient_per_string() {
    let id = age::x25519::Identity::generate();
    let s = id.to_public().to_string();
    let rs = Recipients::default();
    let a = rs.get(&s).unwrap();
    let b = rs.get(&format!(" {s}\n")).unwrap();
    assert!(Arc::ptr_eq(&a, &b));
}

#[test]
fn non_canonical_encodings_of_a_point_use_its_table() {
    // u = 9 (the base point) written as 9 + p, and with bit 255 set: X25519 reads both as 9,
    // so both get the table of 9, and the shared secret is the ladder's on the bytes as
    // written (age's).
    let mut nine = [0u8; 32];
    nine[0] = 9;
    let mut plus_p = [0xffu8; 32];
    plus_p[0] = 0xed + 9;
    plus_p[31] = 0x7f;
    let mut high = nine;
    high[31] |= 0x80;
    for raw in [nine, plus_p, high] {
        let s = age1(&raw);
        let t = Tabled::x25519(&s)
            .unwrap()
            .unwrap_or_else(|| panic!("{s}: no table"));
        assert_eq!(t.salt_pk, raw);
        let mut k = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut k);
        assert_eq!(
            *t.shared(&k),
            MontgomeryPoint(raw).mul_clamped(k).to_bytes()
        );
        assert_eq!(
            *t.shared(&k),
            MontgomeryPoint(nine).mul_clamped(k).to_bytes()
        );
    }
}

#[test]
fn all_parses_every_string_in_order() {
    let ids: Vec<_> = (0..3).map(|_| age::x25519::Identity::generate()).collect();
    let list: Vec<String> = ids.iter().map(|i| i.to_public().to_string()).collect();
    let rs = Recipients::default();
    let got = rs.all(&list).unwrap();
    assert_eq!(got.len(), 3);
    for (r, id) in got.iter().zip(&ids) {
        // Each opens with its own identity only: the order is kept.
        assert_eq!(roundtrip(r, id), b"secret");
    }
    assert!(rs.all(&[list[0].clone(), "age1nope".into()]).is_err());
}

#[test]
fn the_fuzz_hook_gives_the_tables_secret() {
    // `table_shared_secret` is what the differential fuzz target compares with age: it must
    // be the table's X25519 for table keys, `None` on the twist, `Err` for refused keys.
    let id = age::x25519::Identity::generate();
    let s = id.to_public().to_string();
    let (_, data, _) = bech32::decode(&s).unwrap();
    let u: Vec<u8> = bech32::FromBase32::from_base32(&data).unwrap();
    let u: [u8; 32] = u.try_into().unwrap();
    let mut k = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut k);
    assert_eq!(
        table_shared_secret(&s, &k).unwrap(),
        Some(MontgomeryPoint(u).mul_clamped(k).to_bytes())
    );
    let mut twist = [0u8; 32];
    twist[0] = (2u8..60)
        .find(|b| {
            let mut t = [0u8; 32];
            t[0] = *b;
            MontgomeryPoint(t).to_edwards(0).is_none()
        })
        .unwrap();
    assert_eq!(table_shared_secret(&age1(&twist), &k).unwrap(), None);
    assert!(table_shared_secret(&age1(&[0; 32]), &k).is_err());
}

#[test]
fn plugin_recipients_name_the_program_they_need() {
    let data = bech32::ToBase32::to_base32(&[7u8; 33]);
    let s = bech32::encode("age1nosuchplugin", data, bech32::Variant::Bech32).unwrap();
    let e = parse(&s).err().unwrap();
    assert!(e.contains("age-plugin-nosuchplugin"), "{e}");
    assert!(e.contains("not on PATH") && e.contains(&s), "{e}");
    // A plain X25519 key is never taken for a plugin's.
    let x = age::x25519::Identity::generate().to_public().to_string();
    assert!(parse(&x).is_ok());
}
