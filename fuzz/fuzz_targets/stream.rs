//! vault's parallel STREAM reader against age's own: a valid payload, damaged as the input
//! says (cut, bit flips, bytes appended, chunks swapped, replayed or dropped), must give the
//! same plaintext or the same kind of error from both, whatever the batch size.
#![no_main]
use std::io::Read;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vault::bundle::{self, stream, KdfLimits, KdfParams, Locked};

const CHUNK: usize = stream::CHUNK;
const SEALED: usize = stream::SEALED;
const SIZES: [usize; 8] = [
    0,
    1,
    CHUNK - 1,
    CHUNK,
    CHUNK + 1,
    2 * CHUNK,
    3 * CHUNK + 7,
    4 * CHUNK,
];

struct Sealed {
    bytes: Vec<u8>,
    /// Where the STREAM starts (after the header and the 16-byte nonce).
    start: usize,
    file_key: [u8; 16],
}

fn sealed() -> &'static [Sealed] {
    static ALL: OnceLock<Vec<Sealed>> = OnceLock::new();
    ALL.get_or_init(|| {
        SIZES
            .iter()
            .map(|&size| {
                let plain: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
                let mut bytes = Vec::new();
                let cheap = KdfParams {
                    m_kib: 8,
                    t: 1,
                    p: 1,
                };
                let mut w = bundle::encrypt(&mut bytes, "fuzz".to_owned().into(), cheap).unwrap();
                std::io::Write::write_all(&mut w, &plain).unwrap();
                w.finish().unwrap();
                let locked = Locked::open(&bytes[..], "fuzz".as_ref()).unwrap();
                let key = locked
                    .try_passphrase(&"fuzz".to_owned().into(), &KdfLimits::for_this_machine())
                    .unwrap()
                    .unwrap();
                Sealed {
                    start: locked.info().len + 16,
                    file_key: *key.expose(),
                    bytes,
                }
            })
            .collect()
    })
}

fn outcome(r: &mut dyn Read) -> Result<Vec<u8>, std::io::ErrorKind> {
    let mut out = Vec::new();
    r.read_to_end(&mut out).map(|_| out).map_err(|e| e.kind())
}

fuzz_target!(|data: &[u8]| {
    let [pick, batch, ops @ ..] = data else {
        return;
    };
    let s = &sealed()[*pick as usize % SIZES.len()];
    let mut bytes = s.bytes.clone();
    for op in ops.chunks_exact(4).take(8) {
        // Positions near chunk boundaries are where the rules live.
        let chunk = (op[1] % 6) as usize;
        let at = (s.start + chunk * SEALED).saturating_add_signed(op[2] as i8 as isize);
        let at = at.clamp(s.start, bytes.len());
        let whole = |i: usize| {
            let a = s.start + i * SEALED;
            (a + SEALED <= bytes.len()).then_some(a..a + SEALED)
        };
        match op[0] % 6 {
            0 => bytes.truncate(at),
            1 if at < bytes.len() => bytes[at] ^= op[3] | 1,
            2 => bytes.extend(std::iter::repeat(op[3]).take(op[3] as usize % 40)),
            3 => {
                if let (Some(a), Some(b)) = (whole(chunk), whole(chunk + 1)) {
                    let first: Vec<u8> = bytes[a.clone()].to_vec();
                    bytes.copy_within(b.clone(), a.start);
                    bytes[b].copy_from_slice(&first);
                }
            }
            4 => {
                if let Some(a) = whole(chunk) {
                    let copy: Vec<u8> = bytes[a.clone()].to_vec();
                    bytes.splice(a.end..a.end, copy);
                }
            }
            5 => {
                if let Some(a) = whole(chunk) {
                    bytes.drain(a);
                }
            }
            _ => {}
        }
    }
    let id = bundle::argon2id::UnwrappedKey::new(s.file_key);
    let mut theirs = age::Decryptor::new_buffered(&bytes[..])
        .unwrap()
        .decrypt(std::iter::once(&id as &dyn age::Identity))
        .unwrap();
    let payload_key =
        age_core::primitives::hkdf(&bytes[s.start - 16..s.start], b"payload", &s.file_key);
    let mut ours = stream::ParallelReader::with_batch(
        &payload_key,
        &bytes[s.start..],
        1 + *batch as usize % 4,
        2,
    );
    assert_eq!(outcome(&mut ours), outcome(&mut theirs));
});
