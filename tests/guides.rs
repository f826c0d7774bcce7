//! The README and every guide in docs/guide/ run as a reader would run them: each shell block
//! in order, in a scratch home folder, its prompts answered on a real terminal, its output
//! compared with the lines the guide shows after a command (`…` stands for anything). Sticks
//! are loop devices (`/dev/sdX` in a guide is one); the installer is booted in QEMU from the
//! stick or image the guide wrote, and the commands the guide runs there are typed on its
//! serial console. A command that stops working as typed, or prints something else than the
//! guide shows, fails this test.
//!
//! What cannot run here is marked in the guide itself, with the reason, in an HTML comment
//! before the block (tests/guides/markup.rs lists the directives); each test prints what it
//! skipped and why, and `every_guide_block_is_run_or_marked` prints the whole list.
//!
//! Runs as root (loop devices); elsewhere it skips, and in CI (`CI=true`) fails, as a missing
//! tool does.

mod common;

#[path = "guides/installer.rs"]
mod installer;
#[path = "guides/markup.rs"]
mod markup;
#[path = "guides/runner.rs"]
mod runner;
#[path = "guides/shell.rs"]
mod shell;
#[path = "guides/worlds.rs"]
mod worlds;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use markup::{Block, Directive};
use runner::Runner;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Five random words: what the guides tell the reader to choose.
const PASSPHRASE: &str = "tundra melon vortex quill saffron";
const LUKS: &str = "orbit canyon felt lantern";
/// One command, at most: a `scripts/build-static` from scratch is a release build.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2400);

/// The guides in the order docs/guide/README.md gives, and the README.
const GUIDES: &[&str] = &[
    "README.md",
    "docs/guide/first-stick.md",
    "docs/guide/disko-luks.md",
    "docs/guide/add-host.md",
    "docs/guide/qemu.md",
    "docs/guide/secure-boot.md",
    "docs/guide/recovery.md",
    "docs/guide/fleet.md",
];

/// Writes past the test harness's capture: the list of skipped blocks belongs in every log.
/// Each line carries the seconds since the first one: where the time of a run goes.
fn say(text: &str) {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let t = START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_secs();
    let _ = writeln!(std::io::stderr(), "[{t:>5} s] {text}");
}

fn parse(guide: &str) -> Vec<Block> {
    let text = std::fs::read_to_string(repo().join(guide)).unwrap();
    markup::parse(&text).unwrap_or_else(|e| panic!("{guide}: {e}"))
}

/// Guides write `$ ` and `# ` prompts; the README writes bare commands.
fn prompted(blocks: &[Block]) -> bool {
    blocks
        .iter()
        .any(|b| b.is_shell() && b.text.lines().any(|l| l.starts_with("$ ")))
}

fn first_line(b: &Block) -> String {
    b.text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_owned()
}

/// The skip list for a guide: (line, first command, reason), and whether every shell block
/// is either run or marked.
fn skipped_blocks(guide: &str) -> Vec<String> {
    let mut out = Vec::new();
    for b in parse(guide) {
        let what = first_line(&b);
        if let Some(r) = b.skip_reason() {
            out.push(format!("{guide}:{}: skipped `{what}` — {r}", b.line));
        }
        if let Some((n, r)) = b.stand_in() {
            out.push(format!(
                "{guide}:{}: stand-in {n} for `{what}` — {r}",
                b.line
            ));
        }
        if let Some((p, r)) = b.skipped_programs() {
            out.push(format!(
                "{guide}:{}: not run: {} — {r}",
                b.line,
                p.join(", ")
            ));
        }
        for d in &b.directives {
            match d {
                Directive::Provide(n, r) => out.push(format!(
                    "{guide}:{}: provided {} — {r}",
                    b.line,
                    n.join(", ")
                )),
                Directive::InSourceTree(r) => {
                    out.push(format!("{guide}:{}: in the source tree — {r}", b.line))
                }
                Directive::Env(k, v, r) => out.push(format!("{guide}:{}: {k}={v} — {r}", b.line)),
                Directive::First(id, r) => {
                    out.push(format!("{guide}:{}: block {id} first — {r}", b.line))
                }
                Directive::Paste(p, r) => out.push(format!("{guide}:{}: pasted {p} — {r}", b.line)),
                _ => {}
            }
        }
    }
    out
}

/// Cheap, and runs everywhere: every guide parses, every directive is known and carries its
/// reason, every `id` a `first` names exists. Prints what the guide runs skip or replace.
#[test]
fn every_guide_block_is_run_or_marked() {
    let mut all = Vec::new();
    for g in GUIDES {
        let blocks = parse(g);
        let ids: BTreeSet<&str> = blocks.iter().filter_map(|b| b.id()).collect();
        for b in &blocks {
            for d in &b.directives {
                match d {
                    Directive::First(id, _) => {
                        assert!(ids.contains(id.as_str()), "{g}:{}: no block {id}", b.line)
                    }
                    Directive::After(other) => assert!(
                        GUIDES.iter().any(|x| x.ends_with(other.as_str())),
                        "{g}:{}: no guide {other}",
                        b.line
                    ),
                    Directive::File(_) | Directive::Append(_) | Directive::InsertAfter(..) => {
                        assert!(
                            !b.is_shell(),
                            "{g}:{}: file/append/insert-after is for non-shell blocks",
                            b.line
                        )
                    }
                    Directive::Paste(p, _) => assert!(
                        b.text.contains(p.as_str()),
                        "{g}:{}: pastes {p}, which the block does not hold",
                        b.line
                    ),
                    _ => {}
                }
            }
            if b.is_shell() && b.skip_reason().is_none() && b.stand_in().is_none() {
                assert!(
                    !markup::commands(b, prompted(&blocks)).is_empty(),
                    "{g}:{}: a shell block with no command",
                    b.line
                );
            }
        }
        all.extend(skipped_blocks(g));
    }
    say("guide blocks not run as typed, and why:");
    for l in &all {
        say(&format!("  {l}"));
    }
}

/// docs/guide/README.md lists every guide in docs/guide/, and the tests run them all, in the
/// order it gives.
#[test]
fn the_guide_index_lists_every_guide() {
    let index = std::fs::read_to_string(repo().join("docs/guide/README.md")).unwrap();
    let link = regex::Regex::new(r"\]\(([a-z0-9-]+\.md)\)").unwrap();
    let listed: Vec<String> = link
        .captures_iter(&index)
        .map(|c| format!("docs/guide/{}", &c[1]))
        .collect();
    let mut on_disk: Vec<String> = std::fs::read_dir(repo().join("docs/guide"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md") && n != "README.md")
        .map(|n| format!("docs/guide/{n}"))
        .collect();
    on_disk.sort();
    let mut sorted = listed.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, on_disk, "docs/guide/README.md lists {listed:?}");
    assert_eq!(
        GUIDES[1..].to_vec(),
        listed,
        "the tests run the guides in the index's order"
    );
    let numbers: Vec<&str> = index
        .lines()
        .filter_map(|l| l.split_once(". [").map(|(n, _)| n))
        .collect();
    let want: Vec<String> = (1..=numbers.len()).map(|n| n.to_string()).collect();
    assert_eq!(numbers, want, "the index numbers its guides 1, 2, 3, …");
}

/// One guide at a time: they boot QEMU guests and derive 1 GiB keys.
static ONE: Mutex<()> = Mutex::new(());

fn run(guide: &str) {
    if !runner::tools() {
        return;
    }
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let started = std::time::Instant::now();
    let mut r = Runner::new();
    r.run_guide(guide, false);
    say(&format!(
        "{guide}: passed in {:.0} s ({} installer boot(s)); every block ran as typed, except:",
        started.elapsed().as_secs_f64(),
        r.boots
    ));
    for s in &r.skipped {
        say(&format!("  {s}"));
    }
}

#[test]
fn readme() {
    run("README.md");
}

#[test]
fn first_stick() {
    run("docs/guide/first-stick.md");
}

#[test]
fn disko_luks() {
    run("docs/guide/disko-luks.md");
}

#[test]
fn add_host() {
    run("docs/guide/add-host.md");
}

#[test]
fn qemu() {
    run("docs/guide/qemu.md");
}

#[test]
fn secure_boot() {
    run("docs/guide/secure-boot.md");
}

#[test]
fn recovery() {
    run("docs/guide/recovery.md");
}

#[test]
fn fleet() {
    run("docs/guide/fleet.md");
}
