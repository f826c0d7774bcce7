//! The test vectors of docs/FORMAT.md §6, recomputed, and checked to still be in the document.

use std::io::Read;
use std::path::Path;

use age_core::format::FileKey;
use age_core::secrecy::SecretString;
use base64::prelude::{Engine, BASE64_STANDARD, BASE64_STANDARD_NO_PAD};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use vault::bundle::argon2id::{derive_key, wrap_with_salt, KdfParams, SALT_LABEL};
use vault::bundle::{KdfLimits, Locked};

const SALT: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
const PARAMS: KdfParams = KdfParams {
    m_kib: 8192,
    t: 2,
    p: 2,
};

fn doc() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/FORMAT.md")).unwrap()
}

fn assert_documented(doc: &str, what: &str, value: &str) {
    assert!(
        doc.contains(value),
        "docs/FORMAT.md must state the {what}: {value}"
    );
}

#[test]
fn stanza_vector() {
    let pass = SecretString::from("vault test vector".to_owned());
    let file_key = FileKey::new(Box::new(core::array::from_fn(|i| 0xf0 + i as u8)));
    let mut salt_input = SALT_LABEL.to_vec();
    salt_input.extend_from_slice(&SALT);
    let key = derive_key(&pass, &SALT, PARAMS).unwrap();
    let stanza = wrap_with_salt(&pass, &SALT, PARAMS, &file_key).unwrap();
    let line = format!("-> {} {}", stanza.tag, stanza.args.join(" "));
    let body = BASE64_STANDARD_NO_PAD.encode(&stanza.body);
    println!(
        "salt input {}\nwrap key {}\n{line}\nbody {body}",
        hex::encode(&salt_input),
        hex::encode(&key[..])
    );
    let doc = doc();
    assert_documented(&doc, "Argon2id salt input", &hex::encode(&salt_input));
    assert_documented(&doc, "wrap key", &hex::encode(&key[..]));
    assert_documented(&doc, "stanza line", &line);
    assert_documented(&doc, "stanza body", &body);
}

#[test]
fn whole_bundle_vector() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    let bytes = std::fs::read(root.join("small.bundle")).unwrap();
    let info = vault::bundle::header::parse(&bytes).unwrap();
    let pass = vault::prompt::from_file(&root.join("small/passphrase")).unwrap();
    let limits = KdfLimits::for_this_machine();
    let locked = Locked::open(bytes.as_slice(), Path::new("small.bundle")).unwrap();
    let key = locked
        .try_passphrase(&pass, &limits)
        .unwrap()
        .expect("passphrase opens the vector");
    let file_key = *key.expose();

    let hk = Hkdf::<Sha256>::new(Some(&[]), &file_key);
    let mut mac_key = [0u8; 32];
    hk.expand(b"header", &mut mac_key).unwrap();
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&mac_key).unwrap();
    mac.update(&bytes[..info.len - 1 - 44]); // up to and including "---"
    let header_mac = mac.finalize().into_bytes();
    let header_mac_b64 = BASE64_STANDARD_NO_PAD.encode(header_mac);
    assert_eq!(
        &bytes[info.len - 44..info.len - 1],
        header_mac_b64.as_bytes(),
        "MAC line"
    );

    let nonce = &bytes[info.len..info.len + 16];
    let mut payload_key = [0u8; 32];
    Hkdf::<Sha256>::new(Some(nonce), &file_key)
        .expand(b"payload", &mut payload_key)
        .unwrap();

    let mut payload = Vec::new();
    locked
        .decrypt(key)
        .unwrap()
        .read_to_end(&mut payload)
        .unwrap();
    let manifest = vault::unlock::inspect(
        Locked::open(bytes.as_slice(), Path::new("b"))
            .and_then(|l| {
                let k = l.try_passphrase(&pass, &limits)?.unwrap();
                l.decrypt(k)
            })
            .unwrap(),
        Path::new("b"),
        &Default::default(),
    )
    .unwrap();
    let item = &manifest.items[0];

    let values = [
        ("header length", info.len.to_string()),
        ("file key", hex::encode(file_key)),
        ("header MAC key", hex::encode(mac_key)),
        ("header MAC", header_mac_b64),
        ("payload nonce", hex::encode(nonce)),
        ("payload key", hex::encode(payload_key)),
        ("payload SHA-256", hex::encode(Sha256::digest(&payload))),
        ("item SHA-256", item.sha256.clone().unwrap()),
        ("bundle base64", BASE64_STANDARD.encode(&bytes)),
    ];
    for (k, v) in &values {
        println!("{k}: {v}");
    }
    assert_eq!(item.target, "/etc/ssh/example.pub");
    assert_eq!(item.mode, 0o644);
    let doc = doc();
    let doc_flat: String = doc.split_whitespace().collect();
    for (what, v) in &values {
        assert_documented(
            if *what == "bundle base64" {
                &doc_flat
            } else {
                &doc
            },
            what,
            v,
        );
    }
}
