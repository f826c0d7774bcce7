//! The verifying archive walker over arbitrary decrypted bytes (zstd(tar)): never a panic,
//! never unbounded memory (long-name and PAX entries are bounded before they are read); what
//! it accepts is a manifest that validates.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

use vault::archive::read::{walk, Discard};
use vault::archive::Limits;

fuzz_target!(|data: &[u8]| {
    // Small limits keep each run fast; the checks are the same as with the defaults.
    let limits = Limits {
        max_manifest_bytes: 1 << 20,
        max_items: 1000,
        max_item_bytes: 1 << 20,
        max_total_bytes: 4 << 20,
    };
    if let Ok(m) = walk(data, Path::new("fuzz"), &limits, None, &mut Discard) {
        assert!(m.validate(&limits).is_ok());
    }
    // Also uncompressed: the tar layer directly behind a trivial zstd frame.
    if data.len() < 64 * 1024 {
        if let Ok(z) = zstd::encode_all(data, 1) {
            if let Ok(m) = walk(z.as_slice(), Path::new("fuzz"), &limits, None, &mut Discard) {
                assert!(m.validate(&limits).is_ok());
            }
        }
    }
});
