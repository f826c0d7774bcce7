//! The C2SP/CCTV age vectors for the payload (`stream_*`), through vault's own decrypt path.
//!
//! Each vector is an age file for an X25519 identity, with its file key given. vault opens only
//! bundles, so the test gives each one a vault header instead (the vault stanza wrapping the
//! same file key, MACed with it, as FORMAT.md §1 allows a key holder to), keeps the nonce and
//! STREAM byte for byte, and runs `Locked::open` → `try_passphrase` → `decrypt` → read. The
//! vector's verdict and the hash of all plaintext released before any failure must match.

mod common;

use std::io::Read;
use std::path::Path;

use age_core::format::FileKey;
use age_core::secrecy::SecretString;
use base64::prelude::{Engine, BASE64_STANDARD_NO_PAD};
use hmac::Mac;
use sha2::{Digest, Sha256};
use vault::bundle::argon2id::{wrap_with_salt, KdfParams};
use vault::bundle::{KdfLimits, Locked};

const CHEAP: KdfParams = KdfParams {
    m_kib: 8,
    t: 1,
    p: 1,
};

struct Vector {
    expect: String,
    payload_sha256: Option<String>,
    file_key: [u8; 16],
    /// The age file, decompressed.
    age: Vec<u8>,
}

fn parse(raw: &[u8]) -> Vector {
    let split = raw
        .windows(2)
        .position(|w| w == b"\n\n")
        .expect("textual header");
    let text = std::str::from_utf8(&raw[..split]).unwrap();
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}: ")))
            .map(str::to_owned)
    };
    let body = &raw[split + 2..];
    let age = if field("compressed").as_deref() == Some("zlib") {
        let mut out = Vec::new();
        flate2::read::ZlibDecoder::new(body)
            .read_to_end(&mut out)
            .unwrap();
        out
    } else {
        body.to_vec()
    };
    Vector {
        expect: field("expect").unwrap(),
        payload_sha256: field("payload"),
        file_key: hex::decode(field("file key").unwrap())
            .unwrap()
            .try_into()
            .unwrap(),
        age,
    }
}

/// The vector's age file with a vault header for the same file key.
fn as_bundle(v: &Vector) -> Vec<u8> {
    // The age header ends with the line "--- <43 characters>\n".
    let mac_line = v
        .age
        .windows(5)
        .position(|w| w == b"\n--- ")
        .expect("MAC line")
        + 1;
    let rest = &v.age[mac_line + 4 + 43 + 1..];
    let stanza = wrap_with_salt(
        &SecretString::from("cctv".to_owned()),
        &[5; 16],
        CHEAP,
        &FileKey::new(Box::new(v.file_key)),
    )
    .unwrap();
    let mut out = format!(
        "age-encryption.org/v1\n-> {} {}\n{}\n---",
        stanza.tag,
        stanza.args.join(" "),
        BASE64_STANDARD_NO_PAD.encode(&stanza.body)
    )
    .into_bytes();
    let mut mac_key = [0u8; 32];
    hkdf::Hkdf::<Sha256>::new(Some(&[]), &v.file_key)
        .expand(b"header", &mut mac_key)
        .unwrap();
    let mut mac = <hmac::Hmac<Sha256> as Mac>::new_from_slice(&mac_key).unwrap();
    mac.update(&out);
    out.push(b' ');
    out.extend_from_slice(
        BASE64_STANDARD_NO_PAD
            .encode(mac.finalize().into_bytes())
            .as_bytes(),
    );
    out.push(b'\n');
    out.extend_from_slice(rest);
    out
}

/// What vault makes of `bundle`: the plaintext released, and whether it failed (and where).
fn unlock(bundle: &[u8]) -> (Vec<u8>, Result<(), String>) {
    let name = Path::new("vector");
    let locked = match Locked::open(bundle, name) {
        Ok(l) => l,
        Err(e) => return (Vec::new(), Err(format!("open: {e}"))),
    };
    let key = locked
        .try_passphrase(
            &SecretString::from("cctv".to_owned()),
            &KdfLimits::for_this_machine(),
        )
        .expect("KDF")
        .expect("the passphrase opens the vault stanza");
    let mut payload = match locked.decrypt(key) {
        Ok(p) => p,
        Err(e) => return (Vec::new(), Err(format!("decrypt: {e}"))),
    };
    let mut out = Vec::new();
    let r = payload.read_to_end(&mut out);
    (out, r.map(|_| ()).map_err(|e| format!("payload: {e}")))
}

#[test]
fn stream_vectors_through_vaults_decrypt_path() {
    let Some(dir) = common::fixtures("cctv-age/testdata") else {
        return;
    };
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("stream_"))
        .collect();
    names.sort();
    assert!(names.len() >= 20, "the stream_* vectors: {names:?}");
    for name in &names {
        let v = parse(&std::fs::read(dir.join(name)).unwrap());
        let (released, result) = unlock(&as_bundle(&v));
        match v.expect.as_str() {
            "success" => assert!(result.is_ok(), "{name}: {result:?}"),
            "payload failure" => {
                let e = result.expect_err(name);
                assert!(e.starts_with("payload: "), "{name}: {e}");
            }
            // A missing or short nonce: the file ends before the payload.
            "header failure" => {
                let e = result.expect_err(name);
                assert!(e.contains("truncated"), "{name}: {e}");
                continue;
            }
            other => panic!("{name}: unexpected expect: {other}"),
        }
        assert_eq!(
            Some(hex::encode(Sha256::digest(&released))),
            v.payload_sha256,
            "{name}: the plaintext released before the verdict"
        );
    }
}
