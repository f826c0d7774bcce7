//! A bundle cut at every 64 KiB STREAM chunk boundary and one byte either side, and a flipped
//! bit in every byte of the header (each of its lines) and the payload nonce: each fails
//! with a clear error (exit 3 for a damaged passphrase stanza, which reads as a wrong
//! passphrase, exit 4 otherwise) and the target is untouched.

mod hostile;

use hostile::*;

/// age STREAM: 64 KiB of plaintext plus a 16-byte Poly1305 tag per chunk.
const CHUNK: usize = 64 * 1024 + 16;

/// ~400 KiB of incompressible contents, so the payload spans several chunks.
fn big_bundle() -> Vec<u8> {
    // xorshift: zstd cannot shrink it.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let noise: Vec<u8> = (0..400 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    honest(vec![
        (file_item("/var/lib/blob", &noise), Some(noise.clone())),
        (
            file_item("/etc/ssh/ssh_host_ed25519_key", b"k"),
            Some(b"k".to_vec()),
        ),
    ])
}

#[test]
fn the_uncut_bundle_unlocks() {
    let s = Scratch::new();
    let o = s.unlock(&big_bundle(), &[]);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn cut_at_every_chunk_boundary_and_one_byte_either_side() {
    let b = big_bundle();
    let header = vault::bundle::header::parse(&b).unwrap().len;
    let start = header + 16;
    let chunks = (b.len() - start).div_ceil(CHUNK);
    assert!(chunks >= 5, "only {chunks} chunks");
    let s = Scratch::new();
    let mut cuts = vec![];
    for k in 0..=chunks {
        for delta in [-1i64, 0, 1] {
            let at = (start + k * CHUNK) as i64 + delta;
            if at > 0 && (at as usize) < b.len() {
                cuts.push(at as usize);
            }
        }
    }
    cuts.extend([b.len() - 1, header, header + 8]);
    for at in cuts {
        s.expect_refused(
            &format!("cut at {at} of {}", b.len()),
            &b[..at],
            &[],
            4,
            "tampered with",
        );
    }
}

#[test]
fn a_flipped_bit_in_any_header_byte_or_the_nonce() {
    let b = big_bundle();
    let header = vault::bundle::header::parse(&b).unwrap().len;
    let s = Scratch::new();
    let lines = b[..header].split(|&c| c == b'\n').count() - 1;
    assert!(lines >= 4, "version, stanza, body, grease..., MAC: {lines}");
    for at in 0..header + 16 {
        let mut v = b.clone();
        v[at] ^= 0x01;
        let before = s.state();
        let o = s.unlock(&v, &[]);
        let err = String::from_utf8_lossy(&o.stderr);
        let line = b[..at.min(header)].iter().filter(|&&c| c == b'\n').count() + 1;
        let what = format!("bit flip at byte {at} (header line {line})");
        assert!(
            matches!(o.status.code(), Some(3) | Some(4)),
            "{what}: exit {:?}: {err}",
            o.status.code()
        );
        assert!(err.contains("hint:"), "{what}: {err}");
        assert_eq!(s.state(), before, "{what}: target changed");
    }
}
