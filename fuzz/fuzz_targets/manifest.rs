//! The vault.toml parser and validator: any text, never a panic; every accepted target
//! passes the same check unlock applies to a bundle's manifest.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(m) = vault::manifest::Manifest::from_str(Path::new("/ws/vault.toml"), text) {
        let all = m
            .shared
            .iter()
            .chain(m.hosts.values().flat_map(|h| h.entries.iter()));
        for e in all {
            assert!(
                vault::manifest::check_target(&e.target).is_ok(),
                "{}",
                e.target
            );
            assert!(e.mode.is_none_or(|m| m <= vault::manifest::MAX_MODE));
            assert!(e.uid <= vault::manifest::MAX_ID && e.gid <= vault::manifest::MAX_ID);
        }
    }
    // The in-bundle manifest (JSON) comes from untrusted bundles: parse and validate.
    if let Ok(m) = serde_json::from_slice::<vault::archive::BundleManifest>(data) {
        if m.validate(&vault::archive::Limits::default()).is_ok() {
            for i in &m.items {
                assert!(i.uid <= vault::manifest::MAX_ID && i.gid <= vault::manifest::MAX_ID);
                assert!(!i.target.chars().any(char::is_control), "{:?}", i.target);
            }
        }
    }
});
