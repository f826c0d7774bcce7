//! The strict header reader: any bytes, never a panic; what parses is self-consistent.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = vault::bundle::header::parse(data) {
        assert!(h.len <= data.len());
        assert!(h.len <= vault::bundle::header::MAX_HEADER_LEN);
        assert!(h.stanza_count >= 1);
        // Reading a prefix that holds the whole header gives the same answer.
        assert_eq!(vault::bundle::header::parse(&data[..h.len]).ok(), Some(h));
    }
});
