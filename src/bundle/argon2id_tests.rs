//! Unit tests of the Argon2id passphrase stanza (src/bundle/argon2id.rs).
use super::*;
use age::Identity as _;

use crate::bundle::test_util::FAST;

fn key() -> FileKey {
    FileKey::new(Box::new([7u8; 16]))
}

#[test]
fn wrap_unwrap_round_trip_and_wrong_passphrase() {
    let pass = SecretString::from("correct horse".to_owned());
    let stanza = wrap_with_salt(&pass, &[1; 16], FAST, &key()).unwrap();
    let limits = KdfLimits::for_this_machine();
    let got = Identity::new(pass, limits)
        .unwrap_stanza(&stanza)
        .unwrap()
        .unwrap();
    assert_eq!(got.expose_secret(), &[7u8; 16]);
    let wrong = Identity::new(SecretString::from("nope".to_owned()), limits);
    assert!(wrong.unwrap_stanza(&stanza).is_none());
}

#[test]
fn refuses_two_passphrase_stanzas_and_bad_args() {
    let pass = SecretString::from("p".to_owned());
    let s = wrap_with_salt(&pass, &[1; 16], FAST, &key()).unwrap();
    let id = Identity::new(pass, KdfLimits::for_this_machine());
    let copy = |s: &Stanza| Stanza {
        tag: s.tag.clone(),
        args: s.args.clone(),
        body: s.body.clone(),
    };
    assert!(matches!(
        id.unwrap_stanzas(&[copy(&s), copy(&s)]),
        Some(Err(DecryptError::InvalidHeader))
    ));
    // One passphrase stanza among others opens.
    let other = Stanza {
        tag: "X25519".into(),
        args: vec!["x".into()],
        body: vec![0; 32],
    };
    let opened = id.unwrap_stanzas(&[other, copy(&s)]).unwrap().unwrap();
    assert_eq!(opened.expose_secret(), key().expose_secret());
    // A body of the wrong length, or parameters beyond the limits (here 65 passes of 64 KiB,
    // cheap to derive), are a damaged header before any derivation, not a wrong passphrase.
    let mut short = copy(&s);
    short.body.pop();
    let mut beyond = copy(&s);
    beyond.args[2] = "65".into();
    for bad in [short, beyond] {
        assert!(
            matches!(
                id.unwrap_stanza(&bad),
                Some(Err(DecryptError::InvalidHeader))
            ),
            "{:?} {}",
            bad.args,
            bad.body.len()
        );
    }
    for args in [
        vec!["AQEBAQEBAQEBAQEBAQEBAQ", "064", "1", "1"], // leading zero
        vec!["AQEBAQEBAQEBAQEBAQEBAR", "64", "1", "1"],  // non-canonical base64
        vec!["AQEBAQEBAQEBAQEBAQEBAQ", "64", "1"],       // missing p
        vec!["AQEBAQEBAQEBAQEBAQEBAQ", "64", "+1", "1"], // sign
        vec!["AQEBAQEBAQEBAQEBAQEBAQ", "99999999999", "1", "1"], // overflow
    ] {
        let mut bad = copy(&s);
        bad.args = args.into_iter().map(String::from).collect();
        assert!(
            matches!(
                id.unwrap_stanza(&bad),
                Some(Err(DecryptError::InvalidHeader))
            ),
            "{:?}",
            bad.args
        );
    }
}

#[test]
fn untrusted_limits() {
    let limits = KdfLimits {
        max_m_kib: 2048,
        max_t: 4,
        max_p: 2,
        max_work: 4096,
        mem_available: Some(1 << 30),
    };
    assert!(KdfParams {
        m_kib: 1024,
        t: 4,
        p: 2
    }
    .check_untrusted(&limits)
    .is_ok());
    assert!(KdfParams {
        m_kib: 2049,
        t: 1,
        p: 1
    }
    .check_untrusted(&limits)
    .is_err());
    assert!(KdfParams {
        m_kib: 64,
        t: 5,
        p: 1
    }
    .check_untrusted(&limits)
    .is_err());
    assert!(KdfParams {
        m_kib: 64,
        t: 1,
        p: 3
    }
    .check_untrusted(&limits)
    .is_err());
    assert!(KdfParams {
        m_kib: 64,
        t: 0,
        p: 1
    }
    .check_untrusted(&limits)
    .is_err());
    assert!(KdfParams {
        m_kib: 8,
        t: 1,
        p: 2
    }
    .check_untrusted(&limits)
    .is_err());
    let small = KdfLimits {
        mem_available: Some(32 << 20),
        ..KdfLimits::for_this_machine()
    };
    let e = KdfParams::DEFAULT.check_untrusted(&small).unwrap_err();
    assert!(e.contains("available"), "{e}");
    // The memory asked for plus 64 MiB for the rest of the unlock must be available: exact.
    let params = KdfParams {
        m_kib: 16 * 1024,
        t: 1,
        p: 1,
    };
    let with = |bytes: u64| KdfLimits {
        mem_available: Some(bytes),
        ..KdfLimits::for_this_machine()
    };
    assert_eq!(params.check_untrusted(&with((16 + 64) << 20)), Ok(()));
    let e = params
        .check_untrusted(&with(((16 + 64) << 20) - 1))
        .unwrap_err();
    assert_eq!(
        e,
        "16 MiB of memory, but this machine has only 79 MiB available"
    );
    // Memory and passes each within their caps, their product (the work) not.
    assert!(KdfParams {
        m_kib: 1024,
        t: 4,
        p: 1
    }
    .check_untrusted(&limits)
    .is_ok());
    let e = KdfParams {
        m_kib: 1025,
        t: 4,
        p: 1,
    }
    .check_untrusted(&limits)
    .unwrap_err();
    assert!(e.contains("4100 KiB × passes"), "{e}");
}

/// Within the memory and pass caps, 4 GiB with 64 passes would cost minutes a try: the
/// work cap refuses it, and everything vault writes fits.
#[test]
fn the_work_budget() {
    let limits = KdfLimits {
        mem_available: None,
        ..KdfLimits::for_this_machine()
    };
    let e = KdfParams {
        m_kib: MAX_M_KIB,
        t: 64,
        p: 4,
    }
    .check_untrusted(&limits)
    .unwrap_err();
    assert_eq!(
        e,
        "4 GiB of memory with 64 passes, a work of 256 GiB × passes (at most 16 GiB × \
         passes allowed, for example 4 GiB with 4 passes)"
    );
    for ok in [
        KdfParams::DEFAULT,
        KdfParams::STRONG,
        KdfParams {
            m_kib: MAX_M_KIB,
            t: 4,
            p: 4,
        },
        KdfParams {
            m_kib: 1024 * 1024,
            t: 16,
            p: 4,
        },
    ] {
        assert_eq!(ok.check_untrusted(&limits), Ok(()), "{ok:?}");
    }
    for over in [(MAX_M_KIB, 5), (1024 * 1024, 17), (1024 * 1024 + 1, 16)] {
        let params = KdfParams {
            m_kib: over.0,
            t: over.1,
            p: 4,
        };
        assert!(params.check_untrusted(&limits).is_err(), "{params:?}");
    }
}

/// The presets: the default is 1 GiB with 3 passes and 4 lanes; the strong one costs twice
/// the default's work per guess (2 GiB, same passes), as `pack --strong` promises.
#[test]
fn the_presets() {
    assert_eq!(
        (
            KdfParams::DEFAULT.m_kib,
            KdfParams::DEFAULT.t,
            KdfParams::DEFAULT.p
        ),
        (1024 * 1024, 3, 4)
    );
    assert_eq!(KdfParams::STRONG.m_kib, 2 * 1024 * 1024);
    assert_eq!(KdfParams::STRONG.work(), 2 * KdfParams::DEFAULT.work());
}

/// Argon2's work memory is wiped after a derivation: none of the passphrase-derived blocks
/// survive in the allocation that is freed.
#[test]
fn the_work_memory_is_wiped() {
    let pass = SecretString::from("correct horse".to_owned());
    let params = KdfParams {
        m_kib: 256,
        t: 2,
        p: 2,
    };
    let argon2 = params.argon2().unwrap();
    let mut memory = vec![Block::default(); argon2.params().block_count()];
    let key = derive_key_in(&argon2, &pass, &[3; SALT_LEN], &mut memory).unwrap();
    assert_eq!(key, derive_key(&pass, &[3; SALT_LEN], params).unwrap());
    assert_eq!(memory.len(), 256);
    assert!(memory.iter().all(|b| b.as_ref().iter().all(|&w| w == 0)));
}

/// Sizes are printed exactly: one KiB over the cap is not "4096 MiB".
#[test]
fn exact_sizes_in_messages() {
    let limits = KdfLimits {
        mem_available: None,
        ..KdfLimits::for_this_machine()
    };
    let e = KdfParams {
        m_kib: MAX_M_KIB + 1,
        t: 1,
        p: 1,
    }
    .check_untrusted(&limits)
    .unwrap_err();
    assert_eq!(e, "4194305 KiB of memory (at most 4 GiB allowed)");
    assert_eq!(kib(1536), "1536 KiB");
    assert_eq!(kib(2048), "2 MiB");
    assert_eq!(kib(262_144), "256 MiB");
    assert_eq!(kib(262_145), "262145 KiB");
    assert_eq!(kib(1024 * 1024), "1 GiB");
    assert_eq!(kib(1536 * 1024), "1536 MiB");
}

/// `MemAvailable` is read from `/proc/meminfo` in bytes: a whole number of KiB, no more than
/// `MemTotal`, and on any machine that runs the tests more than 1 % of it.
#[test]
fn mem_available_is_in_bytes() {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let total_kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    let avail = mem_available().expect("MemAvailable on Linux");
    assert_eq!(avail % 1024, 0);
    assert!(avail <= total_kib * 1024, "{avail} > {total_kib} KiB");
    assert!(avail > total_kib * 1024 / 100, "{avail} of {total_kib} KiB");
    assert!(KdfLimits::for_this_machine().mem_available.is_some());
}

/// The stanza's decimals are canonical: digits only, no leading zero, at most `u32::MAX`
/// (ten digits). "0" is a decimal; zero passes or lanes are refused later, by the limits.
#[test]
fn stanza_decimals_are_canonical() {
    let salt = "AAAAAAAAAAAAAAAAAAAAAA";
    let args = |m: &str| [salt.to_owned(), m.to_owned(), "3".into(), "4".into()];
    for (m, want) in [
        ("0", Some(0)),
        ("7", Some(7)),
        ("1048576", Some(1024 * 1024)),
        ("4294967295", Some(u32::MAX)),
        ("4294967296", None),
        ("10000000000", None),
        ("00", None),
        ("07", None),
        ("", None),
        ("+7", None),
        ("7 ", None),
    ] {
        assert_eq!(parse_args(&args(m)).map(|(_, p)| p.m_kib), want, "{m:?}");
    }
}
