//! Tests of `archive::write`: the archive it streams from files is the one `tar` writes.

use super::*;
use crate::archive::Item;
use crate::manifest::Stage;

fn item(kind: Kind, target: &str, data: Option<&[u8]>) -> Item {
    Item {
        host: None,
        stage: Stage::Root,
        kind,
        target: target.into(),
        mode: if kind == Kind::Dir { 0o755 } else { 0o640 },
        uid: 1,
        gid: 2,
        size: data.map_or(0, |d| d.len() as u64),
        sha256: data.map(|d| hex::encode(Sha256::digest(d))),
    }
}

/// The tar the `tar` crate's own builder writes for `manifest` and `contents`.
fn reference(manifest: &BundleManifest, contents: &[Option<Vec<u8>>]) -> Vec<u8> {
    let json = serde_json::to_vec_pretty(manifest).unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = regular_header(json.len() as u64, 0o600, 0, 0);
    b.append_data(&mut h, MANIFEST_NAME, json.as_slice())
        .unwrap();
    for (item, data) in manifest.items.iter().zip(contents) {
        let mut h = match item.kind {
            Kind::Dir => dir_header(item),
            Kind::File => regular_header(item.size, item.mode, item.uid, item.gid),
        };
        let data = data.as_deref().unwrap_or_default();
        b.append_data(&mut h, item.archive_path(), data).unwrap();
    }
    b.into_inner().unwrap()
}

/// Files streamed through the reused buffer give exactly the archive `tar::Builder`
/// writes, whatever their size against the buffer and tar's blocks, with a name long
/// enough for the GNU extension entry; so do contents written from memory.
#[test]
fn streamed_files_make_the_archive_tar_writes() {
    let t = tempfile::tempdir().unwrap();
    let long = format!("/srv/{}/key", "d".repeat(150));
    let header_room = IO_BUF - BLOCK;
    let sizes = [
        0,
        1,
        BLOCK,
        BLOCK + 1,
        header_room - BLOCK,
        header_room,
        header_room + 1,
        IO_BUF,
        3 * IO_BUF + 7,
    ];
    let mut items = vec![item(Kind::Dir, "/srv", None)];
    let mut contents = vec![None];
    let mut sources = vec![None];
    for (i, &n) in sizes.iter().enumerate() {
        let data: Vec<u8> = (0..n).map(|j| (j * 31 + i) as u8).collect();
        let target = match i {
            3 => long.clone(),
            _ => format!("/srv/f{i}"),
        };
        let path = t.path().join(format!("f{i}"));
        std::fs::write(&path, &data).unwrap();
        items.push(item(Kind::File, &target, Some(&data)));
        contents.push(Some(data));
        sources.push(Some(path));
    }
    let manifest = BundleManifest {
        format: crate::archive::FORMAT,
        created_by: "t".into(),
        hosts: vec![],
        items,
        recovery_recipients: Vec::new(),
        identities: Default::default(),
    };
    let expected = reference(&manifest, &contents);
    let one_thread = Compression {
        level: 3,
        threads: 0,
    };
    let seen = std::cell::Cell::new(0);
    let streamed = write(Vec::new(), &manifest, &sources, one_thread, &|n| {
        seen.set(seen.get() + n)
    })
    .unwrap();
    assert!(zstd::decode_all(streamed.as_slice()).unwrap() == expected);
    assert_eq!(seen.get(), sizes.iter().sum::<usize>() as u64);
    let in_memory: Vec<Option<&[u8]>> = contents.iter().map(|c| c.as_deref()).collect();
    let written = write_contents(Vec::new(), &manifest, &in_memory, one_thread).unwrap();
    assert!(zstd::decode_all(written.as_slice()).unwrap() == expected);
}

/// A file shorter than when it was hashed is reported as changed, settled or not.
#[test]
fn a_file_that_shrank_is_reported_as_changed() {
    let t = tempfile::tempdir().unwrap();
    let path = t.path().join("k");
    std::fs::write(&path, b"secret two\n").unwrap();
    let file = File::open(&path).unwrap();
    let stamp = Stamp::of(&file).unwrap();
    let manifest = BundleManifest {
        format: crate::archive::FORMAT,
        created_by: "t".into(),
        hosts: vec![],
        items: vec![item(Kind::File, "/k", Some(b"secret two\n"))],
        recovery_recipients: Vec::new(),
        identities: Default::default(),
    };
    std::fs::write(&path, b"secret\n").unwrap();
    for settled in [None, Some(stamp)] {
        let e = write_checked(
            Vec::new(),
            &manifest,
            &[Some(path.clone())],
            &[settled],
            Compression::default(),
            &|_| {},
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("changed while vault was packing"),
            "{e}"
        );
    }
}
