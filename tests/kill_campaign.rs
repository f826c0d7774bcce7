//! Kill-at-random-points: every command that writes, run for real and hit by SIGKILL, SIGINT,
//! SIGTERM or SIGHUP at a random moment of its run, then checked, run again and checked once
//! more. What must hold at every kill point:
//!
//! - no false success: exit 0 only with the work complete;
//! - a caught signal (exit 128 + n) or a refusal leaves the target as it was;
//! - after the rerun (or the sweep the rerun does), nothing of vault's is left (no decrypted
//!   temporary, no displaced original, no staging folder) and the target is complete.
//!
//! The campaign is a table ([`ROWS`]): each row says how to set a scene up, what the command
//! is, what "as it was" and "complete" mean for it, and how to finish the work after a kill.
//! The budget is fixed: `VAULT_KILL_POINTS` kills per row (default 16), each at a point drawn
//! from a seeded generator over the span of an uninterrupted run of that row (measured
//! first, so the points cover startup, the key derivation, the writes and the commit alike).
//! The count of kill points run is printed (docs/TESTING.md records it).

mod common;
mod hostile;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use common::{leftovers, noise, Ramfs, FAST_KDF};

use hostile::*;

#[path = "kill_campaign/more_rows.rs"]
mod more_rows;
use more_rows::MORE_ROWS;

#[path = "kill_campaign/small_rows.rs"]
mod small_rows;
use small_rows::SMALL_ROWS;

/// A scene: a scratch installer (and workstation), a staging area when the row needs one.
struct Scene {
    s: Scratch,
    ram: Option<Ramfs>,
}

impl Scene {
    fn staging(&self) -> &Path {
        &self
            .ram
            .as_ref()
            .expect("a row that stages has a ramfs")
            .path
    }

    fn vault(&self, args: &[&str]) -> Command {
        let mut c = Command::new(vault_bin());
        c.args(args).current_dir(self.s.dir.path());
        c
    }

    /// Everything under the scratch folder and in the staging area, with types, modes,
    /// owners and contents (directory sizes left out: a folder that held temporaries stays
    /// larger).
    fn state(&self) -> BTreeMap<String, String> {
        let mut all = snapshot(self.s.dir.path());
        if let Some(r) = &self.ram {
            for (k, v) in snapshot(&r.path) {
                all.insert(format!("staging{k}"), v);
            }
        }
        for v in all.values_mut() {
            if v.starts_with("dir ") {
                if let Some((kept, _)) = v.rsplit_once(' ') {
                    *v = kept.to_owned();
                }
            }
        }
        all
    }
}

/// One command of the campaign.
struct Row {
    name: &'static str,
    /// Whether the row needs a ramfs staging area (root).
    stages: bool,
    /// External tools the scene needs (a row without them is skipped, and fails in CI).
    needs: &'static [&'static str],
    /// Prepares the scene (untimed).
    setup: fn(&Scene),
    /// The command to kill.
    command: fn(&Scene) -> Command,
    /// Whether the scene holds the command's complete result, right after it exited 0.
    complete: fn(&Scene) -> Result<(), String>,
    /// Whether the scene is as it must be after [`Row::finish`].
    finished: fn(&Scene) -> Result<(), String>,
    /// Finishes the work after a kill: the same command again, or what the guide says next.
    /// Returns the outputs, each of which must be a success or an honest refusal.
    finish: fn(&Scene) -> Vec<Output>,
}

fn items() -> Vec<(vault::archive::Item, Option<Vec<u8>>)> {
    let mut v = vec![
        (
            disk_item("/tmp/disko-password", b"luks pass"),
            Some(b"luks pass".to_vec()),
        ),
        (dir_item("/var/lib/mirror"), None),
    ];
    for i in 0..24u32 {
        let d = noise(256 << 10, i + 1);
        v.push((
            file_item(&format!("/var/lib/mirror/part{i:02}"), &d),
            Some(d),
        ));
    }
    for i in 0..200u32 {
        let d = format!("small file {i}\n").repeat(40).into_bytes();
        v.push((file_item(&format!("/etc/many/f{i:03}"), &d), Some(d)));
    }
    v.push((
        file_item("/etc/ssh/ssh_host_ed25519_key", b"host key\n"),
        Some(b"host key\n".to_vec()),
    ));
    v
}

/// Whether every item of `stage` is in its root with its bytes.
fn placed(sc: &Scene, stage: vault::manifest::Stage) -> Result<(), String> {
    let root = match stage {
        vault::manifest::Stage::Root => sc.s.mnt(),
        vault::manifest::Stage::Disk => sc.s.live(),
    };
    for (i, d) in items().iter().filter(|(i, _)| i.stage == stage) {
        let p = root.join(&i.target[1..]);
        let ok = match d {
            Some(d) => std::fs::read(&p).ok().as_ref() == Some(d),
            None => p.is_dir(),
        };
        if !ok {
            return Err(format!("{} is not placed", p.display()));
        }
    }
    Ok(())
}

fn all_placed(sc: &Scene) -> Result<(), String> {
    placed(sc, vault::manifest::Stage::Root)?;
    placed(sc, vault::manifest::Stage::Disk)
}

fn area_empty(sc: &Scene) -> Result<(), String> {
    let left: Vec<_> = std::fs::read_dir(sc.staging()).unwrap().collect();
    left.is_empty()
        .then_some(())
        .ok_or(format!("the staging area holds {left:?}"))
}

fn area_empty_and_all_placed(sc: &Scene) -> Result<(), String> {
    all_placed(sc)?;
    area_empty(sc)
}

fn unlock_args<'a>(sc: &'a Scene, extra: &[&'a str]) -> Command {
    let mut c = sc.vault(&[
        "unlock",
        "b.vault",
        "--root-not-mountpoint",
        "--passphrase-file",
        "pw",
    ]);
    c.arg("--root")
        .arg(sc.s.mnt())
        .arg("--disk-root")
        .arg(sc.s.live())
        .args(extra);
    c
}

fn write_bundle(sc: &Scene) {
    std::fs::write(sc.s.path("b.vault"), honest(items())).unwrap();
}

fn olds(sc: &Scene) {
    write_bundle(sc);
    std::fs::create_dir_all(sc.s.path("mnt/etc/many")).unwrap();
    for i in 0..200 {
        std::fs::write(
            sc.s.path(&format!("mnt/etc/many/f{i:03}")),
            format!("original {i}\n"),
        )
        .unwrap();
    }
}

fn staged(sc: &Scene) {
    write_bundle(sc);
    let o = unlock_args(sc, &["--stage", "disk", "--staging-dir"])
        .arg(sc.staging())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
}

fn pack_scene(sc: &Scene) {
    let src = sc.s.path("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..24u32 {
        std::fs::write(src.join(format!("part{i:02}")), noise(256 << 10, i + 1)).unwrap();
    }
    std::fs::write(
        sc.s.path("vault.toml"),
        "version = 1\n[hosts.h]\n[[hosts.h.entry]]\nsource = \"src\"\ntarget = \"/var/lib/mirror\"\n",
    )
    .unwrap();
    std::fs::create_dir_all(sc.s.path("out")).unwrap();
}

fn pack_cmd(sc: &Scene) -> Command {
    let mut c = sc.vault(&[
        "pack",
        "-m",
        "vault.toml",
        "-o",
        "out/b.vault",
        "--passphrase-file",
        "pw",
        "--no-config-check",
    ]);
    c.args(FAST_KDF);
    c
}

/// The bundle in `out/`, verified by `vault inspect`, and nothing else there.
fn bundle_in_out(sc: &Scene) -> Result<(), String> {
    let names: Vec<String> = std::fs::read_dir(sc.s.path("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    if names != ["b.vault"] {
        return Err(format!("out/ holds {names:?}"));
    }
    let pw = if sc.s.path("pw2").exists() {
        "pw2"
    } else {
        "pw"
    };
    let o = sc
        .vault(&["inspect", "out/b.vault", "--passphrase-file", pw])
        .output()
        .unwrap();
    o.status.success().then_some(()).ok_or_else(|| text(&o))
}

fn repack_scene(sc: &Scene) {
    write_bundle(sc);
    std::fs::write(sc.s.path("pw2"), "another test passphrase\n").unwrap();
    std::fs::create_dir_all(sc.s.path("out")).unwrap();
}

fn repack_cmd(sc: &Scene) -> Command {
    // The new bundle keeps the old one's (cheap) key derivation settings.
    sc.vault(&[
        "repack",
        "b.vault",
        "-o",
        "out/b.vault",
        "--old-passphrase-file",
        "pw",
        "--passphrase-file",
        "pw2",
        "--weak-passphrase",
    ])
}

/// The same command once more, unless its result is already there (pack and repack refuse
/// an existing output).
fn again_unless(
    sc: &Scene,
    done: fn(&Scene) -> Result<(), String>,
    cmd: fn(&Scene) -> Command,
) -> Vec<Output> {
    if done(sc).is_ok() {
        return Vec::new();
    }
    vec![cmd(sc).stdin(Stdio::null()).output().unwrap()]
}

const ROWS: &[Row] = &[
    Row {
        name: "unlock, streamed",
        stages: false,
        needs: &[],
        setup: write_bundle,
        command: |sc| unlock_args(sc, &["--staging-memory", "0"]),
        complete: all_placed,
        finished: all_placed,
        finish: |sc| {
            vec![unlock_args(sc, &["--staging-memory", "0"])
                .output()
                .unwrap()]
        },
    },
    Row {
        name: "unlock, in memory",
        stages: false,
        needs: &[],
        setup: write_bundle,
        command: |sc| unlock_args(sc, &[]),
        complete: all_placed,
        finished: all_placed,
        finish: |sc| vec![unlock_args(sc, &[]).output().unwrap()],
    },
    Row {
        name: "unlock --force over existing files",
        stages: false,
        needs: &[],
        setup: olds,
        command: |sc| unlock_args(sc, &["--force", "--staging-memory", "0"]),
        complete: all_placed,
        finished: all_placed,
        finish: |sc| {
            vec![unlock_args(sc, &["--force", "--staging-memory", "0"])
                .output()
                .unwrap()]
        },
    },
    Row {
        name: "unlock --stage disk",
        stages: true,
        needs: &[],
        setup: write_bundle,
        command: |sc| {
            let mut c = unlock_args(sc, &["--stage", "disk", "--staging-dir"]);
            c.arg(sc.staging());
            c
        },
        complete: |sc| {
            placed(sc, vault::manifest::Stage::Disk)?;
            sc.staging()
                .join("staged/manifest.json")
                .exists()
                .then_some(())
                .ok_or("nothing staged".into())
        },
        finished: area_empty_and_all_placed,
        finish: |sc| {
            let mut out = Vec::new();
            if !sc.staging().join("staged").exists() {
                let mut c = unlock_args(sc, &["--stage", "disk", "--staging-dir"]);
                out.push(c.arg(sc.staging()).output().unwrap());
            }
            let mut c = sc.vault(&["place", "--root-not-mountpoint", "--staging-dir"]);
            c.arg(sc.staging()).arg("--root").arg(sc.s.mnt());
            out.push(c.stdin(Stdio::null()).output().unwrap());
            out
        },
    },
    Row {
        name: "place",
        stages: true,
        needs: &[],
        setup: staged,
        command: |sc| {
            let mut c = sc.vault(&["place", "--root-not-mountpoint", "--staging-dir"]);
            c.arg(sc.staging()).arg("--root").arg(sc.s.mnt());
            c
        },
        complete: area_empty_and_all_placed,
        finished: area_empty_and_all_placed,
        finish: |sc| {
            let mut c = sc.vault(&["place", "--root-not-mountpoint", "--staging-dir"]);
            c.arg(sc.staging()).arg("--root").arg(sc.s.mnt());
            vec![c.stdin(Stdio::null()).output().unwrap()]
        },
    },
    Row {
        name: "wipe",
        stages: true,
        needs: &[],
        setup: staged,
        command: |sc| {
            let mut c = sc.vault(&["wipe", "--staging-dir"]);
            c.arg(sc.staging());
            c
        },
        complete: area_empty,
        finished: area_empty,
        finish: |sc| {
            let mut c = sc.vault(&["wipe", "--staging-dir"]);
            vec![c.arg(sc.staging()).output().unwrap()]
        },
    },
    Row {
        name: "pack",
        stages: false,
        needs: &[],
        setup: pack_scene,
        command: pack_cmd,
        complete: bundle_in_out,
        finished: bundle_in_out,
        finish: |sc| again_unless(sc, bundle_in_out, pack_cmd),
    },
    Row {
        name: "repack",
        stages: false,
        needs: &[],
        setup: repack_scene,
        command: repack_cmd,
        complete: bundle_in_out,
        finished: bundle_in_out,
        finish: |sc| again_unless(sc, bundle_in_out, repack_cmd),
    },
];

/// Nothing of vault's left under the scene's trees: temporaries, displaced originals,
/// staging folders.
fn nothing_left(sc: &Scene) -> Result<(), String> {
    let mut left: Vec<PathBuf> = leftovers(sc.s.dir.path());
    if let Some(r) = &sc.ram {
        left.extend(
            std::fs::read_dir(&r.path)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| !p.ends_with("staged")),
        );
    }
    left.is_empty()
        .then_some(())
        .ok_or(format!("left behind: {left:?}"))
}

fn new_scene(row: &Row) -> Option<Scene> {
    for t in row.needs {
        common::require_tool(t)?;
    }
    let ram = match row.stages {
        true => Some(Ramfs::new()?),
        false => None,
    };
    let sc = Scene {
        s: Scratch::new(),
        ram,
    };
    (row.setup)(&sc);
    Some(sc)
}

const SIGNALS: [rustix::process::Signal; 4] = [
    rustix::process::Signal::KILL,
    rustix::process::Signal::INT,
    rustix::process::Signal::TERM,
    rustix::process::Signal::HUP,
];

/// Runs `row` once without a kill; its wall time spans the kill points.
fn span(row: &Row) -> Option<Duration> {
    let sc = new_scene(row)?;
    let t = Instant::now();
    let o = (row.command)(&sc).stdin(Stdio::null()).output().unwrap();
    let took = t.elapsed();
    assert!(
        o.status.success(),
        "{}: an uninterrupted run failed: {}",
        row.name,
        text(&o)
    );
    (row.complete)(&sc).unwrap_or_else(|e| panic!("{}: uninterrupted, yet {e}", row.name));
    Some(took)
}

/// One kill point: the verdicts, or what broke a promise.
fn kill_once(
    row: &Row,
    at: Duration,
    sig: rustix::process::Signal,
) -> Result<&'static str, String> {
    let Some(sc) = new_scene(row) else {
        return Ok("skipped");
    };
    let before = sc.state();
    let mut child = (row.command)(&sc)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(at);
    let _ = rustix::process::kill_process(rustix::process::Pid::from_child(&child), sig);
    let _ = child.try_wait();
    let o = child.wait_with_output().unwrap();
    let out = text(&o);
    let verdict = match o.status.code() {
        Some(0) => {
            (row.complete)(&sc).map_err(|e| format!("exit 0, but {e}\n{out}"))?;
            nothing_left(&sc).map_err(|e| format!("exit 0, but {e}\n{out}"))?;
            "finished"
        }
        Some(c) if c > 128 => {
            let after = sc.state();
            if after != before {
                let changed: Vec<&String> = after
                    .keys()
                    .chain(before.keys())
                    .filter(|k| after.get(*k) != before.get(*k))
                    .collect();
                return Err(format!("exit {c}, but these changed: {changed:?}\n{out}"));
            }
            "rolled back"
        }
        Some(c) => return Err(format!("exit {c}\n{out}")),
        None => "killed",
    };
    for o in (row.finish)(&sc) {
        let ok = o.status.success()
            || (o.status.code() == Some(6) && text(&o).contains("nothing is staged"));
        if !ok {
            return Err(format!(
                "after a kill ({verdict}), finishing failed: {}\n{out}",
                text(&o)
            ));
        }
    }
    (row.finished)(&sc).map_err(|e| format!("after a kill ({verdict}) and a rerun: {e}\n{out}"))?;
    nothing_left(&sc).map_err(|e| format!("after a kill ({verdict}) and a rerun: {e}\n{out}"))?;
    Ok(verdict)
}

fn campaign(rows: &[Row]) {
    let points: u64 = std::env::var("VAULT_KILL_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    let mut failures = Vec::new();
    let mut total = 0;
    for (r, row) in rows.iter().enumerate() {
        let Some(span) = span(row) else { continue };
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed_0000 + r as u64);
        let mut seen: BTreeMap<&str, u32> = BTreeMap::new();
        for _ in 0..points {
            let at = span.mul_f64(rng.gen_range(0.0..1.1));
            let sig = SIGNALS[rng.gen_range(0..SIGNALS.len())];
            total += 1;
            match kill_once(row, at, sig) {
                Ok(v) => *seen.entry(v).or_default() += 1,
                Err(e) => {
                    let e = format!("{}: {sig:?} at {at:?}: {e}", row.name);
                    eprintln!("BROKEN: {e}");
                    failures.push(e);
                }
            }
        }
        eprintln!(
            "{}: span {span:?}, {points} kill points: {seen:?}",
            row.name
        );
    }
    eprintln!("{total} kill points");
    assert!(
        failures.is_empty(),
        "{} broken promises:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn every_command_that_writes_survives_kills_at_random_points() {
    campaign(ROWS);
}

/// The commands outside placement that write: host add, rekey (agenix), attach.
#[test]
fn more_commands_that_write_survive_kills_at_random_points() {
    campaign(MORE_ROWS);
}

/// The workstation commands that write a few files or one copy: init, keys convert -o, host
/// remove, detach -o.
#[test]
fn workstation_commands_that_write_survive_kills_at_random_points() {
    campaign(SMALL_ROWS);
}
