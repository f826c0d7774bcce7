//! In-process pieces of pack, unlock and rekey, one criterion group each:
//! `cargo bench --bench pieces [-- FILTER]`. End-to-end numbers against other tools come
//! from `scripts/bench`; these say where inside vault the time goes.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use age_core::secrecy::SecretString;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use vault::archive::read::{walk, Discard};
use vault::archive::write::Compression;
use vault::archive::Limits;
use vault::bundle::{self, KdfLimits, KdfParams, Locked};
use vault::place::{PlaceOptions, Placer};

const CHEAP: KdfParams = KdfParams {
    m_kib: 8 * 1024,
    t: 1,
    p: 1,
};
const MIB: usize = 1 << 20;

fn pass() -> SecretString {
    SecretString::from("bench passphrase".to_owned())
}

/// Incompressible bytes, without a random-number dependency.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

/// Source-like text that zstd compresses about 3×.
fn text(len: usize) -> Vec<u8> {
    let words = [
        "let", "in", "pkgs", "lib", "config", "services", "enable", "=", "true;", "{", "};",
        "mkIf", "options",
    ];
    let mut out = Vec::with_capacity(len + 16);
    let mut i = 7usize;
    while out.len() < len {
        i = i.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        out.extend_from_slice(words[(i >> 16) % words.len()].as_bytes());
        out.push(if (i >> 8).is_multiple_of(9) {
            b'\n'
        } else {
            b' '
        });
    }
    out.truncate(len);
    out
}

fn seal(plain: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = bundle::encrypt(&mut out, pass(), CHEAP).unwrap();
    w.write_all(plain).unwrap();
    w.finish().unwrap();
    out
}

/// Argon2id at the presets and the candidates between them. argon2's `parallel` feature
/// computes the p lanes on rayon's pool, one thread per core this process may use: run under
/// `taskset -c 0` and `taskset -c 0-1` to compare 1 and 2 cores (docs/BENCHMARKS.md).
fn argon2id(c: &mut Criterion) {
    let mut g = c.benchmark_group("argon2id");
    g.sample_size(10);
    let p4 = |m_mib: u32, t: u32| KdfParams {
        m_kib: m_mib * 1024,
        t,
        p: 4,
    };
    for (name, params) in [
        ("256MiB t3 p4", p4(256, 3)),
        ("512MiB t3 p4", p4(512, 3)),
        ("1GiB t2 p4", p4(1024, 2)),
        ("1GiB t3 p4", p4(1024, 3)),
        ("default", KdfParams::DEFAULT),
        ("strong", KdfParams::STRONG),
        ("cheap 8MiB t1 p1", CHEAP),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                bundle::argon2id::derive_key(&pass(), &[7u8; bundle::argon2id::SALT_LEN], params)
                    .unwrap()
            })
        });
    }
    g.finish();
}

fn stream(c: &mut Criterion) {
    let plain = noise(16 * MIB);
    let sealed = seal(&plain);
    let mut g = c.benchmark_group("stream");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(plain.len() as u64));
    g.bench_function("encrypt 16MiB", |b| {
        b.iter(|| {
            let mut w = bundle::encrypt(io::sink(), pass(), CHEAP).unwrap();
            w.write_all(&plain).unwrap();
            w.finish().unwrap();
        })
    });
    // The key is derived once: these measure the payload, not Argon2id.
    let file_key = *Locked::open(sealed.as_slice(), Path::new("b"))
        .unwrap()
        .try_passphrase(&pass(), &KdfLimits::for_this_machine())
        .unwrap()
        .unwrap()
        .expose();
    // age's StreamReader, as unlock uses it.
    g.bench_function("decrypt 16MiB", |b| {
        b.iter(|| {
            let locked = Locked::open(sealed.as_slice(), Path::new("b")).unwrap();
            let key = bundle::unwrapped_from_bytes(file_key);
            let mut p = locked.decrypt(key).unwrap();
            io::copy(&mut p, &mut io::sink()).unwrap();
        })
    });
    g.finish();
}

fn zstd_level3(c: &mut Criterion) {
    let mut g = c.benchmark_group("zstd");
    g.sample_size(10);
    for (name, data) in [("text", text(16 * MIB)), ("noise", noise(16 * MIB))] {
        g.throughput(Throughput::Bytes(data.len() as u64));
        g.bench_function(format!("compress -3 {name} 16MiB"), |b| {
            b.iter(|| zstd::encode_all(data.as_slice(), 3).unwrap())
        });
        let packed = zstd::encode_all(data.as_slice(), 3).unwrap();
        g.bench_function(format!("decompress {name} 16MiB"), |b| {
            b.iter(|| {
                io::copy(
                    &mut zstd::Decoder::new(packed.as_slice()).unwrap(),
                    &mut io::sink(),
                )
                .unwrap()
            })
        });
    }
    g.finish();
}

/// A folder of `n` files of `size` bytes and the vault.toml packing it.
fn tree(n: usize, size: usize) -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let body = text(size);
    for i in 0..n {
        std::fs::write(src.join(format!("f{i:05}")), &body).unwrap();
    }
    let toml = t.path().join("vault.toml");
    std::fs::write(
        &toml,
        format!(
            "version = 1\n[[entry]]\nsource = \"{}\"\ntarget = \"/data\"\nmode = \"0755\"\n",
            src.display()
        ),
    )
    .unwrap();
    (t, toml)
}

fn archive(c: &mut Criterion) {
    let (_t, toml) = tree(2000, 8 * 1024);
    let manifest = vault::manifest::Manifest::load(&toml).unwrap();
    let plan = vault::pack::plan(&manifest, &[]).unwrap();
    let single = Compression {
        level: 3,
        threads: 0,
    };
    let payload =
        vault::archive::write::write(Vec::new(), &plan.manifest, &plan.sources, single, &|_| {})
            .unwrap();
    let mut g = c.benchmark_group("archive");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(plan.total_bytes));
    g.bench_function("write 2000 files x 8KiB (1 thread)", |b| {
        b.iter(|| {
            vault::archive::write::write(Vec::new(), &plan.manifest, &plan.sources, single, &|_| {})
                .unwrap()
        })
    });
    g.bench_function("walk + verify 2000 files x 8KiB", |b| {
        b.iter(|| {
            walk(
                payload.as_slice(),
                Path::new("b"),
                &Limits::default(),
                None,
                &mut Discard,
            )
            .unwrap()
        })
    });
    g.finish();
}

fn place(c: &mut Criterion) {
    let body = text(8 * 1024);
    let opts = PlaceOptions {
        force: false,
        chown: false,
    };
    let mut g = c.benchmark_group("place");
    g.sample_size(10);
    g.throughput(Throughput::Elements(1000));
    // Includes the two syncfs of the commit, as unlock does.
    g.bench_function("1000 files x 8KiB + commit", |b| {
        b.iter_batched(
            || tempfile::tempdir().unwrap(),
            |root| {
                let mut p = Placer::new(root.path(), opts).unwrap();
                for i in 0..1000 {
                    p.file(
                        &format!("/d{}/f{i}", i / 50),
                        0o600,
                        0,
                        0,
                        &mut body.as_slice().take(body.len() as u64),
                    )
                    .unwrap();
                }
                p.commit().unwrap();
                root
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

/// Re-encrypting one agenix file to 10 `age1…` recipients: age's own recipients (a Montgomery
/// ladder per stanza) against vault's, which reuse a table of each recipient's point.
fn rekey_wrap(c: &mut Criterion) {
    let keys: Vec<String> = (0..10)
        .map(|_| age::x25519::Identity::generate().to_public().to_string())
        .collect();
    let age_own: Vec<Box<dyn age::Recipient>> = keys
        .iter()
        .map(|k| Box::new(k.parse::<age::x25519::Recipient>().unwrap()) as _)
        .collect();
    let tabled = vault::keys::age::Recipients::default().all(&keys).unwrap();
    let encrypt = |rs: &mut dyn Iterator<Item = &dyn age::Recipient>| {
        let mut out = Vec::new();
        let mut w = age::Encryptor::with_recipients(rs)
            .unwrap()
            .wrap_output(&mut out)
            .unwrap();
        w.write_all(b"a 64-byte secret, like the ones scripts/bench-rekey encrypts...")
            .unwrap();
        w.finish().unwrap();
        out
    };
    let mut g = c.benchmark_group("rekey_wrap");
    g.bench_function("age recipients, 10", |b| {
        b.iter(|| encrypt(&mut age_own.iter().map(|r| r.as_ref())))
    });
    g.bench_function("vault tabled recipients, 10", |b| {
        b.iter(|| encrypt(&mut tabled.iter().map(|r| r.as_ref() as &dyn age::Recipient)))
    });
    g.finish();
}

criterion_group!(
    benches,
    argon2id,
    stream,
    zstd_level3,
    archive,
    place,
    rekey_wrap
);
criterion_main!(benches);
