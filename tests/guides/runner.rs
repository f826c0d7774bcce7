//! Runs one guide: its blocks in order, on the workstation shell or the booted installer, as
//! the directives before each block say (tests/guides/markup.rs).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::installer::{self, Attach, Installer, Medium};
use super::markup::{self, Block, Directive};
use super::shell::{Answers, Shell};
use super::{
    common, first_line, parse, prompted, repo, say, worlds, COMMAND_TIMEOUT, GUIDES, LUKS,
    PASSPHRASE,
};

struct Loop {
    dev: String,
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
    }
}

/// The backing file of the reader's USB stick, in the scratch folder.
const STICK: &str = "stick.raw";
/// What of the scratch folder makes a guide's world: the reader's home, the shell's folder and
/// variables, the stick.
const WORLD: &[&str] = &["home", ".cwd", ".exports", STICK];

/// What a replay of a guide left.
struct World {
    dir: tempfile::TempDir,
    /// The scratch folder it ran in.
    from: String,
    names: Vec<String>,
    /// The last stick or image written, and whether it is the stick.
    medium: Option<(Medium, bool)>,
    printed: BTreeMap<&'static str, String>,
    attach_command: Option<String>,
}

static WORLDS: std::sync::Mutex<BTreeMap<String, World>> = std::sync::Mutex::new(BTreeMap::new());

/// `names` from folder `from` into folder `to`, as they are (sparse files stay sparse).
fn copy(from: &Path, names: &[&str], to: &Path) {
    let o = Command::new("cp")
        .args(["-a", "--reflink=auto", "--sparse=always"])
        .args(names.iter().map(|n| from.join(n)))
        .arg(to)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "cp {names:?} into {}: {}",
        to.display(),
        String::from_utf8_lossy(&o.stderr)
    );
}

pub struct Runner {
    scratch: tempfile::TempDir,
    shell: Shell,
    loops: Vec<Loop>,
    medium: Option<Medium>,
    installer: Option<Installer>,
    /// The target disk of the last installer session.
    last_target: Option<PathBuf>,
    replayed: BTreeSet<String>,
    /// Blocks a `first` ran before their turn: (guide, line).
    ran_early: BTreeSet<(String, usize)>,
    /// For each `paste` placeholder, the value last printed in this run.
    printed: BTreeMap<&'static str, String>,
    /// The `on the installer:` command the last `vault attach` printed.
    attach_command: Option<String>,
    /// Installer boots so far.
    pub boots: usize,
    pub skipped: Vec<String>,
}

pub fn tools() -> bool {
    if !rustix::process::geteuid().is_root() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the guide tests run as root in CI"
        );
        say("SKIP: the guide tests need root (loop devices)");
        return false;
    }
    [
        "qemu-system-x86_64",
        "qemu-img",
        "xorriso",
        "mkfs.ext4",
        "debugfs",
        "busybox",
        "cpio",
        "losetup",
        "sudo",
        "git",
        "ssh-keygen",
        "sops",
        "age",
        "age-keygen",
        "nix",
        "nix-instantiate",
        "lsblk",
    ]
    .iter()
    .all(|t| common::require_tool(t).is_some())
}

impl Runner {
    pub fn new() -> Runner {
        let scratch = tempfile::tempdir().unwrap();
        let bin = scratch.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::os::unix::fs::symlink(common::vault_bin(), bin.join("vault")).unwrap();
        let sops_dir = common::require_tool("sops")
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .into_iter();
        let dirs: Vec<PathBuf> = std::iter::once(bin).chain(sops_dir).collect();
        let shell = Shell::new(
            scratch.path(),
            &dirs,
            Answers {
                passphrase: PASSPHRASE.into(),
                luks: LUKS.into(),
            },
        );
        Runner {
            scratch,
            shell,
            loops: Vec::new(),
            medium: None,
            installer: None,
            last_target: None,
            replayed: BTreeSet::new(),
            ran_early: BTreeSet::new(),
            printed: BTreeMap::new(),
            attach_command: None,
            boots: 0,
            skipped: Vec::new(),
        }
    }

    /// A loop device over a 256 MiB file: the reader's USB stick (empty, or as a copied world
    /// left it).
    fn stick(&mut self) -> String {
        if let Some(l) = self.loops.first() {
            return l.dev.clone();
        }
        let backing = self.scratch.path().join(STICK);
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&backing)
            .unwrap()
            .set_len(256 << 20)
            .unwrap();
        let o = Command::new("losetup")
            .args(["-f", "--show"])
            .arg(&backing)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "losetup: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let dev = String::from_utf8_lossy(&o.stdout).trim().to_owned();
        self.loops.push(Loop { dev: dev.clone() });
        dev
    }

    /// Nothing has run yet: what a replay leaves is then the guide's world alone.
    fn fresh(&self) -> bool {
        self.medium.is_none()
            && self.printed.is_empty()
            && std::fs::read_dir(&self.shell.home)
                .map(|mut d| d.next().is_none())
                .unwrap_or(false)
    }

    /// Keeps what the replay of `guide` left, for the next guide of this test process that
    /// builds on it: the replay is the same every time, and each guide gets its own copy.
    fn keep(&mut self, guide: &str) {
        let dir = tempfile::tempdir().unwrap();
        let scratch = self.scratch.path();
        let names: Vec<&str> = WORLD
            .iter()
            .copied()
            .filter(|n| scratch.join(n).exists())
            .collect();
        copy(scratch, &names, dir.path());
        let medium = self.medium.clone().map(|m| {
            let on_stick = self
                .loops
                .first()
                .is_some_and(|l| m.path == Path::new(&l.dev));
            (m, on_stick)
        });
        let mut kept = WORLDS.lock().unwrap_or_else(|e| e.into_inner());
        kept.insert(
            guide.to_owned(),
            World {
                dir,
                from: scratch.to_str().unwrap().to_owned(),
                names: names.iter().map(|n| n.to_string()).collect(),
                medium,
                printed: self.printed.clone(),
                attach_command: self.attach_command.clone(),
            },
        );
    }

    /// Starts from a copy of what a replay of `guide` left, if one was kept and nothing has
    /// run here yet.
    fn restore(&mut self, guide: &str) -> bool {
        if !self.fresh() {
            return false;
        }
        let kept = WORLDS.lock().unwrap_or_else(|e| e.into_inner());
        let Some(w) = kept.get(guide) else {
            return false;
        };
        let scratch = self.scratch.path().to_owned();
        let names: Vec<&str> = w.names.iter().map(String::as_str).collect();
        copy(w.dir.path(), &names, &scratch);
        // The shell's folder and exported variables name the scratch folder they ran in.
        let to = scratch.to_str().unwrap();
        for f in [".cwd", ".exports"] {
            let path = scratch.join(f);
            if let Ok(text) = std::fs::read_to_string(&path) {
                std::fs::write(&path, text.replace(&w.from, to)).unwrap();
            }
        }
        self.printed = w.printed.clone();
        self.attach_command = w.attach_command.clone();
        self.medium = w.medium.clone().map(|(m, on_stick)| {
            let path = if on_stick {
                PathBuf::from(self.stick())
            } else {
                PathBuf::from(m.path.to_str().unwrap().replace(&w.from, to))
            };
            Medium { path, ..m }
        });
        true
    }

    fn end_installer(&mut self) {
        if let Some(i) = self.installer.take() {
            let target = i.target.clone();
            let up = i.up();
            i.power_off();
            say(&format!(
                "installer powered off, {up:.0} s after it started"
            ));
            self.last_target = Some(target);
        }
    }

    fn expand(&self, p: &str) -> PathBuf {
        match p.strip_prefix("~/") {
            Some(rest) => self.shell.home.join(rest),
            None => self.shell.cwd().join(p),
        }
    }

    pub fn run_guide(&mut self, guide: &str, replay: bool) {
        let blocks = parse(guide);
        let prompted = prompted(&blocks);
        for b in &blocks {
            self.block(guide, &blocks, b, prompted, replay);
        }
        if !replay {
            self.end_installer();
        }
    }

    fn block(&mut self, guide: &str, blocks: &[Block], b: &Block, prompted: bool, replay: bool) {
        let at = format!("{guide}:{}", b.line);
        for d in &b.directives {
            match d {
                Directive::After(other) => {
                    let g = GUIDES
                        .iter()
                        .find(|x| x.ends_with(other.as_str()))
                        .expect("a known guide");
                    if self.replayed.insert(g.to_string()) {
                        if self.restore(g) {
                            say(&format!(
                                "{at}: first the world the workstation blocks of {g} left (run once in this test process, copied)"
                            ));
                        } else {
                            say(&format!("{at}: first the workstation blocks of {g}"));
                            let fresh = self.fresh();
                            self.run_guide(g, true);
                            if fresh {
                                self.keep(g);
                            }
                        }
                    }
                }
                Directive::First(id, _) => {
                    for other in blocks.iter().filter(|x| x.id() == Some(id.as_str())) {
                        if self.ran_early.insert((guide.to_owned(), other.line)) {
                            self.exec(guide, other, prompted, replay);
                        }
                    }
                }
                Directive::Provide(names, r) => {
                    if !replay {
                        self.skipped
                            .push(format!("{at}: provided {} — {r}", names.join(", ")));
                    }
                    for n in names {
                        worlds::apply(n, &self.shell.home, &self.shell.cwd());
                    }
                }
                _ => {}
            }
        }
        if self.ran_early.contains(&(guide.to_owned(), b.line)) {
            return; // ran before the block that needed it
        }
        self.exec(guide, b, prompted, replay);
    }

    fn exec(&mut self, guide: &str, b: &Block, prompted: bool, replay: bool) {
        let at = format!("{guide}:{}", b.line);
        for d in &b.directives {
            match d {
                Directive::File(p) => {
                    std::fs::write(self.expand(p), self.pasted(&at, b, &b.text)).unwrap()
                }
                Directive::Append(p) => {
                    let path = self.expand(p);
                    let mut text = std::fs::read_to_string(&path).unwrap();
                    text.push('\n');
                    text.push_str(&self.pasted(&at, b, &b.text));
                    std::fs::write(&path, text).unwrap();
                }
                Directive::InsertAfter(p, line) => {
                    let path = self.expand(p);
                    let text = std::fs::read_to_string(&path).unwrap();
                    let mut lines: Vec<&str> = text.lines().collect();
                    let at_line =
                        lines
                            .iter()
                            .position(|l| l.trim() == line)
                            .unwrap_or_else(|| {
                                panic!(
                                    "{at}: {} has no line `{line}` to insert after:\n{text}",
                                    path.display()
                                )
                            });
                    let block = self.pasted(&at, b, &b.text);
                    lines.insert(at_line + 1, block.trim_end());
                    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
                }
                _ => {}
            }
        }
        if !b.is_shell() {
            return;
        }
        if let Some(r) = b.skip_reason() {
            if !replay {
                self.skipped
                    .push(format!("{at}: skipped `{}` — {r}", first_line(b)));
            }
            return;
        }
        if let Some((name, r)) = b.stand_in() {
            if !replay {
                self.skipped.push(format!(
                    "{at}: stand-in {name} for `{}` — {r}",
                    first_line(b)
                ));
            }
            self.stand_in(name, replay);
            return;
        }
        let commands = markup::commands(b, prompted);
        if b.installer() {
            if !replay {
                self.on_installer(&at, b, &commands);
            }
            return;
        }
        let extra: Vec<(String, String)> = b
            .directives
            .iter()
            .filter_map(|d| match d {
                Directive::Env(k, v, _) => Some((k.clone(), v.clone())),
                _ => None,
            })
            .collect();
        let source_tree = b
            .directives
            .iter()
            .any(|d| matches!(d, Directive::InSourceTree(_)));
        let back = self.shell.cwd();
        if source_tree {
            self.shell.set_cwd(&repo());
        }
        let last = commands.len().saturating_sub(1);
        for (n, c) in commands.iter().enumerate() {
            if let Some((progs, r)) = b.skipped_programs() {
                if progs.iter().any(|p| p == c.program()) {
                    if !replay {
                        self.skipped
                            .push(format!("{guide}:{}: not run `{}` — {r}", c.line, c.text));
                    }
                    continue;
                }
            }
            let mut text = self.pasted(&at, b, &c.text);
            if text.contains("/dev/sdX") {
                let dev = self.stick();
                text = text.replace("/dev/sdX", &dev);
            }
            say(&format!("{guide}:{}: $ {text}", c.line));
            let ran = self.shell.run(&text, &extra, COMMAND_TIMEOUT);
            let want = if n == last { b.expected_exit() } else { 0 };
            assert_eq!(
                ran.code, want,
                "{guide}:{}: `{text}` exited with {} (the guide expects {want}); it printed:\n{}",
                c.line, ran.code, ran.output
            );
            check_shown(guide, c, &ran.output);
            self.remember_printed(&ran.output);
            self.track_medium(&text, &ran.cwd);
        }
        if source_tree {
            self.shell.set_cwd(&back);
        }
    }

    /// A new stick or image ends the installer session booted from the previous one.
    fn track_medium(&mut self, cmd: &str, cwd: &Path) {
        let words: Vec<&str> = cmd.split_whitespace().collect();
        let after = |flag: &str| {
            words
                .iter()
                .position(|w| *w == flag)
                .and_then(|i| words.get(i + 1))
                .map(|w| w.to_string())
        };
        let medium = if words.contains(&"attach") && words.iter().any(|w| w.ends_with("vault")) {
            after("-o").or_else(|| after("--output")).map(|o| Medium {
                path: cwd.join(o),
                attach: if words.contains(&"--iso-file") {
                    Attach::Cd
                } else {
                    Attach::Usb
                },
            })
        } else if words.contains(&"dd") {
            words
                .iter()
                .find_map(|w| w.strip_prefix("of="))
                .map(|dev| Medium {
                    path: PathBuf::from(dev),
                    attach: Attach::Usb,
                })
        } else {
            None
        };
        if let Some(m) = medium {
            self.end_installer();
            self.medium = Some(m);
        }
    }

    fn boot(&mut self, attach: Option<Attach>) {
        self.end_installer();
        let mut m = self
            .medium
            .clone()
            .expect("the guide wrote a stick or image before booting it");
        if let Some(a) = attach {
            m.attach = a;
        }
        say(&format!(
            "booting {} ({:?}) in QEMU",
            m.path.display(),
            m.attach
        ));
        let started = std::time::Instant::now();
        self.installer = Some(Installer::boot(&m, self.scratch.path(), PASSPHRASE));
        self.boots += 1;
        say(&format!(
            "booted: its shell after {:.0} s",
            started.elapsed().as_secs_f64()
        ));
    }

    fn on_installer(&mut self, at: &str, b: &Block, commands: &[markup::Command]) {
        if self.installer.is_none() {
            self.boot(None);
        }
        for c in commands {
            if let Some((progs, r)) = b.skipped_programs() {
                if progs.iter().any(|p| p == c.program()) {
                    self.skipped.push(format!(
                        "{at} (line {}): not run `{}` — {r}",
                        c.line, c.text
                    ));
                    continue;
                }
            }
            let text = self.pasted(at, b, &c.text);
            if b.pastes().any(|p| p == "SHA256") && text.contains("sha256sum -c") {
                let printed = self
                    .attach_command
                    .as_deref()
                    .unwrap_or_else(|| panic!("{at}: no `vault attach` printed a command to type"));
                assert!(
                    text.starts_with(printed),
                    "{at} (line {}): the guide's command is not the one `vault attach` printed:\n  guide:   {text}\n  printed: {printed}",
                    c.line
                );
            }
            say(&format!("{at} (line {}): installer# {text}", c.line));
            let i = self.installer.as_mut().expect("booted");
            let (code, output) = i.run(&text);
            assert_eq!(
                code, 0,
                "{at} (line {}): `{text}` exited with {code} on the installer; the console showed:\n{output}",
                c.line
            );
            check_shown(at, c, &output);
        }
    }

    /// `text` with each placeholder this block pastes replaced by the value printed last.
    fn pasted(&self, at: &str, b: &Block, text: &str) -> String {
        let mut out = text.to_owned();
        for p in b.pastes() {
            if out.contains(p) {
                let v = self
                    .printed
                    .get(p)
                    .unwrap_or_else(|| panic!("{at}: nothing printed a value for {p} before"));
                out = out.replace(p, v);
            }
        }
        out
    }

    /// Keeps what a reader could copy from `output` (markup::PASTES), and the command a
    /// `vault attach` printed for the installer.
    fn remember_printed(&mut self, output: &str) {
        for (name, re) in markup::PASTES {
            let re = regex::Regex::new(re).unwrap();
            if let Some(v) = re.captures_iter(output).last() {
                self.printed.insert(name, v[1].to_owned());
            }
        }
        if let Some(cmd) = output
            .lines()
            .rev()
            .find_map(|l| l.trim().strip_prefix("on the installer: "))
        {
            self.attach_command = Some(cmd.to_owned());
        }
    }

    fn stand_in(&mut self, name: &str, replay: bool) {
        match name {
            // QEMU as the guide starts it needs KVM and a display: the same image, attached
            // the same way, headless under TCG.
            "boot-virtio" if !replay => {
                self.medium = Some(Medium {
                    path: self.shell.cwd().join("installer.img"),
                    attach: Attach::Virtio,
                });
                self.boot(None);
            }
            "boot-virtio" => {}
            // The installed system's host key is the one in the secrets folder.
            "same-host-key" if !replay => {
                self.end_installer();
                let target = self.last_target.clone().expect("an installer session ran");
                let placed = installer::target_file(&target, "/etc/ssh/ssh_host_ed25519_key.pub")
                    .expect("the host key's .pub was placed on the target");
                let mine = std::fs::read(
                    self.shell
                        .home
                        .join("install-secrets/hosts/laptop/ssh_host_ed25519_key.pub"),
                )
                .unwrap();
                assert_eq!(
                    placed, mine,
                    "the installed laptop has the host key of the secrets folder"
                );
            }
            "same-host-key" => {}
            other => worlds::apply(other, &self.shell.home, &self.shell.cwd()),
        }
    }
}

/// Every line the guide shows after a command appears in what it printed.
fn check_shown(at: &str, c: &markup::Command, output: &str) {
    for shown in &c.expected {
        assert!(
            output
                .lines()
                .any(|l| markup::shown_matches(shown, l.trim())),
            "{at}: after `{}` the guide shows\n  {shown}\nbut it printed:\n{output}",
            c.text
        );
    }
}
