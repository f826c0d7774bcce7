//! A bundle cut at every 64 KiB STREAM chunk boundary and one byte either side, and a flipped
//! bit in every byte of the header (each of its lines) and the payload nonce: each fails
//! with a clear error (exit 3 for a damaged passphrase stanza, which reads as a wrong
//! passphrase, exit 4 otherwise) and the target is untouched.

mod common;
mod hostile;

use hostile::*;

/// age STREAM: 64 KiB of plaintext plus a 16-byte Poly1305 tag per chunk.
const CHUNK: usize = 64 * 1024 + 16;

/// ~400 KiB of incompressible contents, so the payload spans several chunks.
fn big_bundle() -> Vec<u8> {
    let noise = common::incompressible(400 * 1024);
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

/// A payload reader that returns `EINTR` before every read, then a few bytes at a time; or,
/// with `fail`, one other error partway through.
struct Flaky<'a> {
    data: &'a [u8],
    interrupt: bool,
    fail_at: Option<usize>,
    read: usize,
}

impl std::io::Read for Flaky<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.interrupt = !self.interrupt;
        if self.interrupt {
            return Err(std::io::ErrorKind::Interrupted.into());
        }
        if self.fail_at.is_some_and(|at| self.read >= at) {
            self.fail_at = None;
            return Err(std::io::Error::other("device error"));
        }
        let n = buf.len().min(self.data.len()).min(7);
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        self.read += n;
        Ok(n)
    }
}

/// A read interrupted by a signal is read again, in both walkers (up to the last byte after
/// the archive's end); any other read error, once, fails the walk: never retried into a pass.
#[test]
fn interrupted_reads_are_retried_and_other_read_errors_fail_the_walk() {
    use vault::archive::read::{buffered, walk, walk_pipelined, Discard};
    let items = [
        (file_item("/etc/a", b"alpha"), Some(b"alpha".to_vec())),
        (file_item("/etc/b", &[9; 3000]), Some(vec![9; 3000])),
    ];
    let m = manifest(items.iter().map(|(i, _)| i.clone()).collect());
    let members: Vec<Member> = items
        .iter()
        .map(|(i, d)| Member::for_item(i, d.as_deref().unwrap_or(b"")))
        .collect();
    // Trailing zeros after the end-of-archive marker, as some tar writers leave.
    let tar = tar_bytes_ending(&manifest_json(&m), &members, &[0; 4096]);
    let payload = zstd_bytes(&tar);
    let limits = vault::archive::Limits::default();
    let name = std::path::Path::new("b");
    let flaky = |fail_at| Flaky {
        data: &payload,
        interrupt: false,
        fail_at,
        read: 0,
    };
    let walked = walk(flaky(None), name, &limits, None, &mut Discard).unwrap();
    assert_eq!(walked.items.len(), 2);
    let walked = walk_pipelined(buffered(flaky(None)), name, &limits, None, &mut Discard).unwrap();
    assert_eq!(walked.items.len(), 2);
    for at in [0, payload.len() / 2, payload.len()] {
        let e = walk(flaky(Some(at)), name, &limits, None, &mut Discard).unwrap_err();
        assert!(e.to_string().contains("device error"), "at {at}: {e}");
        let e = walk_pipelined(buffered(flaky(Some(at))), name, &limits, None, &mut Discard)
            .unwrap_err();
        assert!(e.to_string().contains("device error"), "at {at}: {e}");
    }
}
