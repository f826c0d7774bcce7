//! Decrypting a bundle's payload: age's STREAM (docs/FORMAT.md §3), a batch of chunks at a
//! time on every core.
//!
//! age's own reader decrypts one 64 KiB chunk after another on the calling thread, which was
//! most of an unlock of large files (ChaCha20-Poly1305 at ≈ 650 MB/s per core here). The
//! chunks are independent (each has its own nonce), so this reader reads up to [`BATCH`]
//! sealed chunks and opens them in parallel. It keeps age's rules exactly:
//!
//! - a chunk is the final one only if the input ends right after it; it must carry the
//!   `last` flag, and it may be empty only if it is the first chunk;
//! - a full-size chunk followed by the end of input is tried as non-final first (as age
//!   does): if that succeeds, the stream was cut after it and reading fails as truncated;
//! - input that ends before a final chunk is `UnexpectedEof`, a chunk that does not open is
//!   `InvalidData`; plaintext of the chunks before a failing one is delivered first, as a
//!   sequential reader would, and the error repeats on every later read.
//!
//! `tests` below compare it with age's `StreamReader` on every kind of damage.

use std::io::{self, Read};

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce, Tag};
use rayon::prelude::*;
use zeroize::Zeroizing;

/// Plaintext bytes per chunk.
pub const CHUNK: usize = 64 * 1024;
const TAG: usize = 16;
/// Ciphertext bytes per full chunk.
pub const SEALED: usize = CHUNK + TAG;
/// Chunks opened per batch (1 MiB): enough to keep every core busy, small enough to keep
/// unlock's memory independent of the payload.
pub const BATCH: usize = 16;

/// The plaintext of a STREAM read from `inner`.
pub struct ParallelReader<R> {
    inner: R,
    aead: ChaCha20Poly1305,
    /// Index of the first chunk in `sealed`.
    next_chunk: u64,
    /// Chunks per batch: [`BATCH`], smaller in tests.
    batch: usize,
    /// Threads that open a batch's chunks; `None`: this one, in order.
    pool: Option<rayon::ThreadPool>,
    /// Sealed input: up to `batch` chunks and one byte more, to see whether more follows.
    sealed: Vec<u8>,
    filled: usize,
    plain: Zeroizing<Vec<u8>>,
    pos: usize,
    /// The final chunk has been opened.
    done: bool,
    /// Reported once `plain` is drained, and on every read after.
    failed: Option<(io::ErrorKind, &'static str)>,
}

impl<R: Read> ParallelReader<R> {
    /// Decrypts with one thread per core. (On 2 cores, where unlock's walker and writer keep
    /// the cores busy anyway, this measured the same as one thread: docs/BENCHMARKS.md.)
    pub fn new(payload_key: &[u8; 32], inner: R) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::with_batch(payload_key, inner, BATCH, cores)
    }

    /// With `batch` chunks per batch (at least 1) opened by `threads` threads (0 or 1: this
    /// one). Tests and the fuzz target use small batches, so batch boundaries fall within a
    /// few chunks, and two threads.
    #[doc(hidden)]
    pub fn with_batch(payload_key: &[u8; 32], inner: R, batch: usize, threads: usize) -> Self {
        let batch = batch.max(1);
        // Without a pool (the system refused a thread), decryption is sequential: slower, same
        // result.
        let pool = (threads > 1)
            .then(|| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .ok()
            })
            .flatten();
        ParallelReader {
            pool,
            inner,
            aead: ChaCha20Poly1305::new(Key::from_slice(payload_key)),
            next_chunk: 0,
            batch,
            sealed: vec![0; batch * SEALED + 1],
            filled: 0,
            plain: Zeroizing::new(Vec::with_capacity(batch * CHUNK)),
            pos: 0,
            done: false,
            failed: None,
        }
    }

    /// Reads the next batch and opens it into `plain`.
    fn next_batch(&mut self) -> io::Result<()> {
        while self.filled < self.sealed.len() {
            match self.inner.read(&mut self.sealed[self.filled..]) {
                Ok(0) => break,
                Ok(n) => self.filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let at_end = self.filled < self.sealed.len();
        if self.filled == 0 {
            // Only possible before the first chunk: a batch that is not at the end always
            // leaves its extra byte for the next one.
            self.failed = Some((io::ErrorKind::UnexpectedEof, TRUNCATED));
            return Ok(());
        }
        let (count, used) = if at_end {
            (self.filled.div_ceil(SEALED), self.filled)
        } else {
            (self.batch, self.batch * SEALED)
        };
        let final_len = used - (count - 1) * SEALED;
        let plain_len = (count - 1) * CHUNK + final_len.saturating_sub(TAG);
        self.plain.clear();
        self.plain.resize(plain_len, 0);
        self.pos = 0;

        // Every chunk as non-final first; only a short chunk at the end is final for sure.
        let short_final = at_end && final_len < SEALED;
        let first = self.next_chunk;
        let aead = &self.aead;
        // One output slice per chunk, the final one possibly empty (which `chunks_mut` would
        // not yield).
        let mut outs = Vec::with_capacity(count);
        let mut rest = &mut self.plain[..];
        for _ in 0..count {
            let (out, tail) = rest.split_at_mut(CHUNK.min(rest.len()));
            outs.push(out);
            rest = tail;
        }
        let work = |(i, (sealed, out)): (usize, (&[u8], &mut [u8]))| {
            let last = short_final && i == count - 1;
            open(aead, first + i as u64, last, sealed, out)
        };
        let sealed = &self.sealed[..used];
        let opened: Vec<bool> = match &self.pool {
            Some(pool) => pool.install(|| {
                sealed
                    .par_chunks(SEALED)
                    .zip(outs)
                    .enumerate()
                    .map(work)
                    .collect()
            }),
            None => sealed
                .chunks(SEALED)
                .zip(outs)
                .enumerate()
                .map(work)
                .collect(),
        };
        // Plaintext up to the first chunk that failed; a failure stops the stream there.
        if let Some(bad) = opened.iter().position(|ok| !ok) {
            let is_final = at_end && bad == count - 1;
            let retried = is_final
                && !short_final
                && open(
                    aead,
                    first + bad as u64,
                    true,
                    &self.sealed[bad * SEALED..used],
                    &mut self.plain[bad * CHUNK..],
                );
            if !retried {
                self.plain.truncate(bad * CHUNK);
                self.failed = Some((io::ErrorKind::InvalidData, BAD_CHUNK));
                return Ok(());
            }
            self.done = true;
        } else if at_end {
            if short_final {
                self.done = true;
            } else {
                // A full chunk that opened as non-final, then nothing: cut after it.
                self.failed = Some((io::ErrorKind::UnexpectedEof, TRUNCATED));
            }
        }
        if self.done && final_len == TAG && first + (count as u64) > 1 {
            self.plain.truncate((count - 1) * CHUNK);
            self.done = false;
            self.failed = Some((io::ErrorKind::InvalidData, EMPTY_LAST));
            return Ok(());
        }
        self.next_chunk = first + count as u64;
        // Keep the byte read past this batch.
        self.sealed.copy_within(used..self.filled, 0);
        self.filled -= used;
        Ok(())
    }
}

const TRUNCATED: &str = "age file is truncated";
const BAD_CHUNK: &str = "decryption error";
const EMPTY_LAST: &str = "last STREAM chunk is empty";

/// Opens chunk `index` into `out` (its plaintext length). False if it does not authenticate.
fn open(aead: &ChaCha20Poly1305, index: u64, last: bool, sealed: &[u8], out: &mut [u8]) -> bool {
    if sealed.len() < TAG || sealed.len() - TAG != out.len() {
        return false;
    }
    let mut nonce = [0u8; 12];
    nonce[3..11].copy_from_slice(&index.to_be_bytes());
    nonce[11] = u8::from(last);
    let (body, tag) = sealed.split_at(sealed.len() - TAG);
    out.copy_from_slice(body);
    aead.decrypt_in_place_detached(Nonce::from_slice(&nonce), b"", out, Tag::from_slice(tag))
        .is_ok()
}

impl<R: Read> Read for ParallelReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.pos < self.plain.len() {
                let n = buf.len().min(self.plain.len() - self.pos);
                buf[..n].copy_from_slice(&self.plain[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            if let Some((kind, what)) = self.failed {
                return Err(io::Error::new(kind, what));
            }
            if self.done || buf.is_empty() {
                return Ok(0);
            }
            self.next_batch()?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use age_core::secrecy::SecretString;

    use crate::bundle::{argon2id, test_util::seal, KdfLimits, Locked};

    /// A bundle written by age's own StreamWriter, the offset of its STREAM, its file key.
    fn bundle_of(plain: &[u8]) -> (Vec<u8>, usize, [u8; 16]) {
        let out = seal(plain);
        let locked = Locked::open(&out[..], "t".as_ref()).unwrap();
        let key = locked
            .try_passphrase(
                &SecretString::from("pw".to_owned()),
                &KdfLimits::for_this_machine(),
            )
            .unwrap()
            .unwrap();
        let start = locked.info().len + 16;
        drop(locked);
        (out, start, *key.expose())
    }

    /// What age's StreamReader makes of `bytes`: the plaintext, or the kind of error.
    fn with_age(bytes: &[u8], file_key: &[u8; 16]) -> Result<Vec<u8>, io::ErrorKind> {
        let id = argon2id::UnwrappedKey(Zeroizing::new(*file_key));
        let mut r = age::Decryptor::new_buffered(bytes)
            .unwrap()
            .decrypt(std::iter::once(&id as &dyn age::Identity))
            .unwrap();
        let mut out = Vec::new();
        r.read_to_end(&mut out).map(|_| out).map_err(|e| e.kind())
    }

    fn with_ours(
        bytes: &[u8],
        start: usize,
        file_key: &[u8; 16],
        batch: usize,
    ) -> Result<Vec<u8>, io::ErrorKind> {
        let key = age_core::primitives::hkdf(&bytes[start - 16..start], b"payload", file_key);
        let mut r = ParallelReader::with_batch(&key, &bytes[start..], batch, 2);
        let mut out = Vec::new();
        let got = r.read_to_end(&mut out).map(|_| out).map_err(|e| e.kind());
        if let Err(kind) = got {
            // The error sticks.
            assert_eq!(r.read(&mut [0; 8]).map_err(|e| e.kind()), Err(kind));
        }
        got
    }

    fn noise(len: usize) -> Vec<u8> {
        let mut x: u32 = 0x1234_5678;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    }

    /// Offsets worth damaging: around every chunk boundary, and the ends.
    fn interesting(len: usize) -> Vec<usize> {
        let mut at = vec![0, 1, len.saturating_sub(1), len];
        for b in (0..=len).step_by(SEALED) {
            for d in [0isize, -17, -16, -1, 1, 15, 16, 17] {
                let o = b as isize + d;
                if o >= 0 && o as usize <= len {
                    at.push(o as usize);
                }
            }
        }
        at.sort();
        at.dedup();
        at
    }

    /// Truncated, flipped, extended and reordered versions of `good`'s STREAM.
    fn damaged(good: &[u8], start: usize) -> Vec<(String, Vec<u8>)> {
        let stream_len = good.len() - start;
        let mut cases = Vec::new();
        for at in interesting(stream_len) {
            cases.push((format!("cut at {at}"), good[..start + at].to_vec()));
            if at < stream_len {
                let mut flipped = good.to_vec();
                flipped[start + at] ^= 0x40;
                cases.push((format!("flip at {at}"), flipped));
            }
        }
        for extra in [1, 16, 17, SEALED, SEALED + 3] {
            let mut longer = good.to_vec();
            longer.extend(noise(extra));
            cases.push((format!("{extra} bytes appended"), longer));
        }
        if stream_len >= 2 * SEALED {
            let mut swapped = good.to_vec();
            let (a, b) = swapped[start..].split_at_mut(SEALED);
            a.swap_with_slice(&mut b[..SEALED]);
            cases.push(("first two chunks swapped".into(), swapped));
        }
        cases
    }

    /// Batches of 1, 2 and 3 chunks put every batch boundary within a few chunks.
    #[test]
    fn agrees_with_age_on_every_size_and_every_damage() {
        for size in [
            0,
            1,
            CHUNK - 1,
            CHUNK,
            CHUNK + 1,
            2 * CHUNK - 1,
            2 * CHUNK,
            2 * CHUNK + 1,
            3 * CHUNK,
            4 * CHUNK + 5,
        ] {
            let plain = noise(size);
            let (good, start, fk) = bundle_of(&plain);
            assert_eq!(with_age(&good, &fk), Ok(plain.clone()), "size {size}");
            let cases = damaged(&good, start);
            for batch in [1, 2, 3] {
                assert_eq!(with_ours(&good, start, &fk, batch), Ok(plain.clone()));
                for (what, bytes) in &cases {
                    let ours = with_ours(bytes, start, &fk, batch);
                    let age = with_age(bytes, &fk);
                    assert_eq!(ours, age, "size {size}, batch {batch}, {what}");
                }
            }
        }
    }

    #[test]
    fn full_batches_agree_with_age() {
        let plain = noise(BATCH * CHUNK + 1);
        let (good, start, fk) = bundle_of(&plain);
        assert_eq!(with_ours(&good, start, &fk, BATCH), Ok(plain));
        let stream_len = good.len() - start;
        for at in [
            BATCH * SEALED - 1,
            BATCH * SEALED,
            BATCH * SEALED + 1,
            stream_len - 1,
        ] {
            let cut = &good[..start + at];
            assert_eq!(
                with_ours(cut, start, &fk, BATCH),
                with_age(cut, &fk),
                "cut at {at}"
            );
            let mut flipped = good.clone();
            flipped[start + at] ^= 1;
            let f = &flipped[..];
            assert_eq!(
                with_ours(f, start, &fk, BATCH),
                with_age(f, &fk),
                "flip at {at}"
            );
        }
    }

    /// age's writer never ends a stream with an empty chunk after data, but a forger with the
    /// key could; age refuses it, and so must we.
    #[test]
    fn an_empty_final_chunk_after_data_is_refused() {
        let (good, start, fk) = bundle_of(&noise(CHUNK));
        let key = age_core::primitives::hkdf(&good[start - 16..start], b"payload", &fk);
        let aead = ChaCha20Poly1305::new(Key::from_slice(&key));
        let seal_chunk = |index: u64, last: bool, plain: &[u8]| {
            let mut nonce = [0u8; 12];
            nonce[3..11].copy_from_slice(&index.to_be_bytes());
            nonce[11] = u8::from(last);
            let mut body = plain.to_vec();
            let tag = aead
                .encrypt_in_place_detached(Nonce::from_slice(&nonce), b"", &mut body)
                .unwrap();
            body.extend_from_slice(&tag);
            body
        };
        let mut forged = good[..start].to_vec();
        forged.extend(seal_chunk(0, false, &noise(CHUNK)));
        forged.extend(seal_chunk(1, true, b""));
        assert_eq!(with_age(&forged, &fk), Err(io::ErrorKind::InvalidData));
        for batch in [1, 2, BATCH] {
            assert_eq!(
                with_ours(&forged, start, &fk, batch),
                Err(io::ErrorKind::InvalidData)
            );
        }
        // The same two chunks with data in the last one are fine.
        let mut fine = good[..start].to_vec();
        fine.extend(seal_chunk(0, false, &noise(CHUNK)));
        fine.extend(seal_chunk(1, true, b"x"));
        assert_eq!(with_ours(&fine, start, &fk, 1), with_age(&fine, &fk));
        assert!(with_age(&fine, &fk).is_ok());
    }

    #[test]
    fn small_reads_see_the_same_bytes() {
        let plain = noise(3 * CHUNK + 5);
        let (good, start, fk) = bundle_of(&plain);
        let key = age_core::primitives::hkdf(&good[start - 16..start], b"payload", &fk);
        let mut r = ParallelReader::new(&key, &good[start..]);
        let mut out = Vec::new();
        let mut buf = [0u8; 7];
        loop {
            let n = r.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        assert_eq!(out, plain);
    }
}
