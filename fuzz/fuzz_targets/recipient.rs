//! Differential: vault's recipient table (src/rekey/recipients.rs) against x25519-dalek, the
//! ladder age computes with, on arbitrary 32-byte points, as an `age1…` key and as an
//! `ssh-ed25519` key. For each: vault refuses it exactly when age would wrap with an all-zero
//! shared secret (a point of small order, in any encoding), a key age refuses is refused, and
//! otherwise the table's shared secret equals the ladder's (or, on the twist, age's own
//! recipient wraps, without panicking).
#![no_main]
use base64::Engine as _;
use bech32::ToBase32 as _;
use libfuzzer_sys::fuzz_target;

use vault::keys::age::recipients::{parse, table_shared_secret};

const SSH_ED25519_LABEL: &[u8] = b"age-encryption.org/v1/ssh-ed25519";

fn wraps(s: &str) {
    let r = parse(s).expect("accepted");
    let key = age_core::format::FileKey::new(Box::new([7; 16]));
    r.wrap_file_key(&key).expect("wraps");
}

fuzz_target!(|data: &[u8]| {
    let Some((point, rest)) = data.split_first_chunk::<32>() else {
        return;
    };
    let mut esk = [0u8; 32];
    esk[..rest.len().min(32)].copy_from_slice(&rest[..rest.len().min(32)]);
    let point = *point;

    // As an age1 key: age accepts any 32 bytes; X25519 masks bit 255 and reduces mod p.
    let s = bech32::encode("age", point.to_base32(), bech32::Variant::Bech32).expect("bech32");
    assert!(s.parse::<age::x25519::Recipient>().is_ok());
    let ladder = x25519_dalek::x25519(esk, point);
    // Small order: the ladder gives zero for every scalar, this one and the fixed one.
    let small = x25519_dalek::x25519([0; 32], point) == [0; 32];
    match table_shared_secret(&s, &esk) {
        Err(why) => assert!(small && why.contains("low-order"), "{s} refused: {why}"),
        Ok(t) => {
            assert!(!small && ladder != [0; 32], "{s} accepted");
            match t {
                Some(secret) => assert_eq!(secret, ladder, "{s}"),
                None => wraps(&s),
            }
        }
    }

    // As an ssh-ed25519 key: the same 32 bytes as a compressed Edwards point.
    let mut blob = b"\0\0\0\x0bssh-ed25519\0\0\0\x20".to_vec();
    blob.extend_from_slice(&point);
    let line = format!(
        "ssh-ed25519 {}",
        base64::engine::general_purpose::STANDARD.encode(&blob)
    );
    let age_accepts = line.parse::<age::ssh::Recipient>().is_ok();
    let ours = table_shared_secret(&line, &esk);
    if !age_accepts {
        assert!(ours.is_err(), "{line} accepted, age refuses it");
        return;
    }
    let ed = curve25519_dalek::edwards::CompressedEdwardsY(point)
        .decompress()
        .expect("age decompressed it");
    let pk = ed.to_montgomery().to_bytes();
    let tweak = age_core::primitives::hkdf(&blob, SSH_ED25519_LABEL, &[]);
    // age: X25519(tweak, X25519(esk, pk)).
    let ladder = x25519_dalek::x25519(tweak, x25519_dalek::x25519(esk, pk));
    match ours {
        Err(why) => assert!(
            ed.is_small_order() && why.contains("low-order"),
            "{line} refused: {why}"
        ),
        Ok(Some(secret)) => {
            assert!(!ed.is_small_order() && ladder != [0; 32], "{line} accepted");
            assert_eq!(secret, ladder, "{line}");
        }
        Ok(None) => panic!("{line}: an ssh-ed25519 key age accepts is always tabled or refused"),
    }
});
