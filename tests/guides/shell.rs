//! The workstation side of a guide: each command runs in bash in a fresh pseudo-terminal (so
//! vault asks on a real terminal), in the folder and with the exported variables the previous
//! commands left, as in one interactive shell. Prompts are answered as the reader would.

use std::path::{Path, PathBuf};
use std::time::Duration;

use expectrl::{Any, Eof, Regex, Session};

/// What the reader types at each prompt a guide command shows.
pub struct Answers {
    /// The bundle passphrase (new and existing).
    pub passphrase: String,
    /// The LUKS passphrase of disko-luks.md.
    pub luks: String,
}

/// Prompts and the answer to each (by index into [`PROMPTS`]).
const PROMPTS: &[&str] = &[
    r"New passphrase for [^\n]*: ",
    r"Repeat it: ",
    r"Passphrase for [^\n]*: ",
    r"LUKS passphrase: ",
];

impl Answers {
    fn answer(&self, prompt: usize) -> &str {
        match prompt {
            0..=2 => &self.passphrase,
            _ => &self.luks,
        }
    }
}

pub struct Shell {
    /// The scratch folder; `home` is `$HOME` inside it.
    pub home: PathBuf,
    cwd: PathBuf,
    state: PathBuf,
    pub env: Vec<(String, String)>,
    pub answers: Answers,
}

/// What one command did.
pub struct Ran {
    pub code: i32,
    pub output: String,
    /// The folder it ended in.
    pub cwd: PathBuf,
}

impl Shell {
    pub fn new(scratch: &Path, path_dirs: &[PathBuf], answers: Answers) -> Shell {
        let home = scratch.join("home");
        std::fs::create_dir_all(&home).unwrap();
        let tmp = scratch.join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let cwd = scratch.join(".cwd");
        std::fs::write(&cwd, home.to_str().unwrap()).unwrap();
        let mut path: Vec<PathBuf> = path_dirs.to_vec();
        path.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        let path = std::env::join_paths(path).unwrap().into_string().unwrap();
        // The reader's Rust toolchain stays where it is when HOME moves (scripts/build-static).
        let real_home = PathBuf::from(std::env::var_os("HOME").unwrap_or_default());
        let rustup =
            std::env::var_os("RUSTUP_HOME").map_or(real_home.join(".rustup"), PathBuf::from);
        let cargo = std::env::var_os("CARGO_HOME").map_or(real_home.join(".cargo"), PathBuf::from);
        let env = [
            ("RUSTUP_HOME", rustup.to_str().unwrap()),
            ("CARGO_HOME", cargo.to_str().unwrap()),
            ("HOME", home.to_str().unwrap()),
            ("PATH", &path),
            ("USER", "root"),
            ("LANG", "C.UTF-8"),
            ("TERM", "dumb"),
            ("NO_COLOR", "1"),
            ("TMPDIR", tmp.to_str().unwrap()),
            // Edits a guide shows as a file block are applied by the test; `$EDITOR FILE`
            // itself changes nothing.
            ("EDITOR", "true"),
            ("GIT_AUTHOR_NAME", "Guide Reader"),
            ("GIT_AUTHOR_EMAIL", "reader@example.org"),
            ("GIT_COMMITTER_NAME", "Guide Reader"),
            ("GIT_COMMITTER_EMAIL", "reader@example.org"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Shell {
            home,
            cwd,
            state: scratch.join(".exports"),
            env,
            answers,
        }
    }

    /// The folder the last command ended in.
    pub fn cwd(&self) -> PathBuf {
        PathBuf::from(std::fs::read_to_string(&self.cwd).unwrap().trim())
    }

    pub fn set_cwd(&self, dir: &Path) {
        std::fs::write(&self.cwd, dir.to_str().unwrap()).unwrap();
    }

    /// Runs `cmd` as a line typed into the reader's shell; `extra` adds variables for it only.
    pub fn run(&mut self, cmd: &str, extra: &[(String, String)], timeout: Duration) -> Ran {
        let script = format!(
            "[ -f {state} ] && . {state} 2>/dev/null\ncd \"$(cat {cwd})\" || exit 99\n{cmd}\n__gt_rc=$?\npwd > {cwd}\nexport -p > {state}\nexit $__gt_rc\n",
            state = self.state.display(),
            cwd = self.cwd.display(),
        );
        let mut c = std::process::Command::new("bash");
        c.args(["--noprofile", "--norc", "-c", &script]);
        c.env_clear();
        for (k, v) in self.env.iter().chain(extra) {
            c.env(k, v);
        }
        let mut p = Session::spawn(c).expect("spawn bash in a pty");
        p.set_expect_timeout(Some(timeout));
        let prompts: Vec<regex::Regex> = PROMPTS
            .iter()
            .map(|r| regex::Regex::new(r).unwrap())
            .collect();
        let mut seen = Vec::new();
        loop {
            let needles: Vec<Box<dyn expectrl::Needle>> =
                vec![Box::new(Regex(PROMPTS.join("|"))), Box::new(Eof)];
            let found = match p.expect(Any::boxed(needles)) {
                Ok(f) => f,
                Err(e) => panic!(
                    "`{cmd}`: {e} (no prompt and no end within {timeout:?}); it printed:\n{}",
                    String::from_utf8_lossy(&seen)
                ),
            };
            seen.extend_from_slice(found.as_bytes());
            let hit = String::from_utf8_lossy(found.get(0).unwrap_or(b"")).into_owned();
            match prompts.iter().position(|r| r.is_match(&hit)) {
                Some(i) if !hit.is_empty() => {
                    let a = self.answers.answer(i).to_owned();
                    p.send_line(a).unwrap();
                }
                _ => break,
            }
        }
        let code = match p.get_process().wait().expect("wait") {
            expectrl::WaitStatus::Exited(_, code) => code,
            other => panic!("`{cmd}` did not exit normally: {other:?}"),
        };
        Ran {
            code,
            output: clean(&String::from_utf8_lossy(&seen)),
            cwd: self.cwd(),
        }
    }
}

/// Terminal output as text lines: no carriage returns, no ANSI escape sequences.
pub fn clean(s: &str) -> String {
    let ansi = regex::Regex::new(r"\x1b\[[0-9;?]*[A-Za-z]").unwrap();
    ansi.replace_all(s, "").replace('\r', "")
}
