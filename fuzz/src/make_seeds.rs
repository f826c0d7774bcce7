//! `cargo run --bin make-seeds` (in fuzz/): writes small seed corpora for each target.
use std::path::Path;

use vault::archive::{write, BundleManifest, Item, Kind};
use vault::manifest::Stage;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let put = |target: &str, name: &str, data: &[u8]| {
        let d = root.join(target);
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(d.join(name), data).expect("write seed");
    };

    // header: a real bundle's first bytes.
    let mut b = Vec::new();
    let mut w = vault::bundle::encrypt(
        &mut b,
        "seed".to_owned().into(),
        vault::bundle::KdfParams {
            m_kib: 8,
            t: 1,
            p: 1,
        },
    )
    .expect("encrypt");
    std::io::Write::write_all(&mut w, b"payload").expect("write");
    w.finish().expect("finish");
    put("header", "bundle", &b);
    put("header", "sample", include_bytes!("../seeds/header-sample"));

    // manifest: the template and the example.
    put(
        "manifest",
        "template.toml",
        vault::manifest::TEMPLATE.as_bytes(),
    );
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../keys-example/vault.toml");
    if let Ok(t) = std::fs::read(example) {
        put("manifest", "example.toml", &t);
    }

    // walker: an honest payload with a directory and two files.
    let dir = std::env::temp_dir().join(format!("vault-seeds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let files = [("a", b"alpha\n".as_slice()), ("b", b"".as_slice())];
    let mut items = vec![Item {
        host: Some("h".into()),
        stage: Stage::Root,
        kind: Kind::Dir,
        target: "/etc/ssh".into(),
        mode: 0o755,
        uid: 0,
        gid: 0,
        size: 0,
        sha256: None,
    }];
    let mut sources = vec![None];
    for (name, data) in files {
        let p = dir.join(name);
        std::fs::write(&p, data).expect("write");
        use sha2_hex::hex_sha256;
        items.push(Item {
            kind: Kind::File,
            target: format!("/etc/ssh/{name}"),
            mode: 0o600,
            size: data.len() as u64,
            sha256: Some(hex_sha256(data)),
            stage: if name == "b" {
                Stage::Disk
            } else {
                Stage::Root
            },
            ..items[0].clone()
        });
        if name == "b" {
            items.last_mut().expect("pushed").target = "/tmp/disko-password".into();
        }
        sources.push(Some(p));
    }
    let m = BundleManifest {
        format: 1,
        created_by: "seed".into(),
        hosts: vec!["h".into()],
        items,
        recovery_recipients: Vec::new(),
        identities: Default::default(),
    };
    let payload = write::write(
        Vec::new(),
        &m,
        &sources,
        write::Compression {
            level: 1,
            threads: 0,
        },
        &|_| {},
    )
    .expect("payload");
    put("walker", "honest", &payload);
    // The tar layer itself (the target also wraps its input in a zstd frame), and a payload
    // with a GNU long name (a target over 100 bytes).
    let tar = zstd::decode_all(payload.as_slice()).expect("decode");
    put("walker", "honest-tar", &tar);
    let mut long = m.clone();
    long.items.truncate(2);
    long.items[1].target = format!("/etc/ssh/{}", "l".repeat(150));
    let payload = write::write(
        Vec::new(),
        &long,
        &sources[..2],
        write::Compression {
            level: 1,
            threads: 0,
        },
        &|_| {},
    )
    .expect("payload");
    put("walker", "long-name", &payload);
    put(
        "walker",
        "long-name-tar",
        &zstd::decode_all(payload.as_slice()).expect("decode"),
    );
    let _ = std::fs::remove_dir_all(&dir);

    // recipient: a point (32 bytes) then an ephemeral scalar (32 bytes). The small-order
    // u-coordinates and their encodings (p and p + 1 for 0 and 1, bit 255 set), an ordinary
    // key, and the identity point (y = 1) with its sign bit set.
    let mut points: Vec<[u8; 32]> = Vec::new();
    let mut u8_order = [0u8; 32];
    u8_order[..31].copy_from_slice(&[
        0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4,
        0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49,
        0xb8,
    ]);
    points.push(u8_order);
    for low in [0u8, 1, 9] {
        let mut u = [0u8; 32];
        u[0] = low;
        points.push(u);
    }
    for low in [0xecu8, 0xed, 0xee] {
        let mut u = [0xffu8; 32];
        u[0] = low;
        u[31] = 0x7f;
        points.push(u);
    }
    let mut identity_signed = [0u8; 32];
    identity_signed[0] = 1;
    identity_signed[31] = 0x80;
    points.push(identity_signed);
    for (i, p) in points.iter().enumerate() {
        let mut seed = p.to_vec();
        seed.extend_from_slice(&[0x5a; 32]);
        put("recipient", &format!("point-{i}"), &seed);
        seed[31] |= 0x80;
        put("recipient", &format!("point-{i}-high-bit"), &seed);
    }
}

mod sha2_hex {
    pub fn hex_sha256(data: &[u8]) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(data))
    }
}
