//! The guides' test markup: HTML comments before a fenced block, invisible on GitHub and in
//! any Markdown viewer, readable in the source.
//!
//! ```text
//! <!-- guide-test: skip — why it cannot run here -->
//! ```
//!
//! One directive a comment; several comments may stand before one block. Each directive that
//! keeps something from running as typed carries its reason after ` — `. Directives:
//!
//! - `skip — R`: the block is not run.
//! - `skip-commands PROG… — R`: its commands that run PROG (after `sudo`) are not run.
//! - `installer`: the block is typed on the serial console of the installer booted in QEMU
//!   from the last stick or image the guide wrote.
//! - `stand-in NAME — R`: not run; the test does NAME instead (tests/guides/worlds.rs).
//! - `provide NAME… — R`: before the block, the test does NAME (a file the guide assumes).
//! - `file PATH`, `append PATH`: a non-shell block is written to (appended to) PATH: the
//!   edit the guide asks for.
//! - `exit N`: the block's commands end with exit code N (the first one that does not is a
//!   failure).
//! - `after GUIDE.md`: the workstation blocks of GUIDE run first, as this guide assumes.
//! - `in-source-tree — R`: runs in vault's source tree instead of the scratch folder.
//! - `env NAME=VALUE — R`: the block runs with this variable set.
//! - `id NAME` names a block (several blocks may share a name: they run as one group, in
//!   order); `first NAME — R` runs that group before this block (once).
//! - `paste PLACEHOLDER — R`: in this block, PLACEHOLDER stands for something the reader copies
//!   from what a command printed earlier in the guide; the test puts in the value printed in
//!   the same run ([`PASTES`] says which placeholder comes from where). A command with
//!   `SHA256` must also begin with the whole `on the installer:` command that `vault attach`
//!   printed: the guide shows the command attach prints, not another.
//! - `insert-after PATH LINE…`: a non-shell block is inserted into PATH after its first line
//!   equal to LINE (e.g. a top-level setting of `vault.toml`, which must come before its
//!   tables).

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Directive {
    Skip(String),
    SkipCommands(Vec<String>, String),
    Installer,
    StandIn(String, String),
    Provide(Vec<String>, String),
    File(String),
    Append(String),
    Exit(i32),
    After(String),
    InSourceTree(String),
    Env(String, String, String),
    Id(String),
    First(String, String),
    Paste(String, String),
    InsertAfter(String, String),
}

/// Placeholders a `paste` may name, and where the value comes from: the first group of the
/// last match in what a workstation command printed.
pub const PASTES: &[(&str, &str)] = &[
    // The carried vault's SHA-256, as `vault attach` prints it.
    ("SHA256", r"carried vault [^\n]*: sha256 ([0-9a-f]{64})"),
    // An age recipient on a line of its own, as `age-keygen -y` prints it.
    ("age1…", r"(?m)^(age1[02-9ac-hj-np-z]{58})\s*$"),
];

/// A fenced block of a guide, with the directives before it.
#[derive(Debug, Clone)]
pub struct Block {
    /// 1-based line of the opening fence.
    pub line: usize,
    pub lang: String,
    pub text: String,
    pub directives: Vec<Directive>,
}

impl Block {
    pub fn is_shell(&self) -> bool {
        self.lang == "sh"
    }

    pub fn skip_reason(&self) -> Option<&str> {
        self.directives.iter().find_map(|d| match d {
            Directive::Skip(r) => Some(r.as_str()),
            _ => None,
        })
    }

    pub fn stand_in(&self) -> Option<(&str, &str)> {
        self.directives.iter().find_map(|d| match d {
            Directive::StandIn(n, r) => Some((n.as_str(), r.as_str())),
            _ => None,
        })
    }

    pub fn installer(&self) -> bool {
        self.directives.contains(&Directive::Installer)
    }

    pub fn expected_exit(&self) -> i32 {
        self.directives
            .iter()
            .find_map(|d| match d {
                Directive::Exit(n) => Some(*n),
                _ => None,
            })
            .unwrap_or(0)
    }

    pub fn skipped_programs(&self) -> Option<(&[String], &str)> {
        self.directives.iter().find_map(|d| match d {
            Directive::SkipCommands(p, r) => Some((p.as_slice(), r.as_str())),
            _ => None,
        })
    }

    /// The placeholders this block pastes.
    pub fn pastes(&self) -> impl Iterator<Item = &str> {
        self.directives.iter().filter_map(|d| match d {
            Directive::Paste(p, _) => Some(p.as_str()),
            _ => None,
        })
    }

    pub fn id(&self) -> Option<&str> {
        self.directives.iter().find_map(|d| match d {
            Directive::Id(n) => Some(n.as_str()),
            _ => None,
        })
    }
}

fn reason_split(rest: &str) -> (String, Option<String>) {
    match rest.split_once(" — ") {
        Some((a, r)) => (a.trim().to_owned(), Some(r.trim().to_owned())),
        None => (rest.trim().to_owned(), None),
    }
}

fn directive(text: &str) -> Result<Directive, String> {
    let (head, reason) = reason_split(text);
    let mut words = head.split_whitespace();
    let name = words.next().ok_or("an empty directive")?;
    let args: Vec<String> = words.map(str::to_owned).collect();
    let need = |r: Option<String>| {
        r.filter(|r| !r.is_empty())
            .ok_or(format!("`{name}` needs a reason after ` — `"))
    };
    let one = |a: &[String]| match a {
        [x] => Ok(x.clone()),
        _ => Err(format!("`{name}` takes one argument")),
    };
    Ok(match name {
        "skip" => Directive::Skip(need(reason)?),
        "skip-commands" if !args.is_empty() => Directive::SkipCommands(args, need(reason)?),
        "installer" => Directive::Installer,
        "stand-in" => Directive::StandIn(one(&args)?, need(reason)?),
        "provide" if !args.is_empty() => Directive::Provide(
            args.iter()
                .map(|a| a.trim_end_matches(',').to_owned())
                .collect(),
            need(reason)?,
        ),
        "file" => Directive::File(one(&args)?),
        "append" => Directive::Append(one(&args)?),
        "exit" => Directive::Exit(one(&args)?.parse().map_err(|e| format!("exit: {e}"))?),
        "after" => Directive::After(one(&args)?),
        "in-source-tree" => Directive::InSourceTree(need(reason)?),
        "env" => {
            let (k, v) = one(&args)?
                .split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or("env takes NAME=VALUE")?;
            Directive::Env(k, v, need(reason)?)
        }
        "id" => Directive::Id(one(&args)?),
        "first" => Directive::First(one(&args)?, need(reason)?),
        "paste" => {
            let p = one(&args)?;
            if !PASTES.iter().any(|(n, _)| *n == p) {
                return Err(format!(
                    "paste: no placeholder {p} (tests/guides/markup.rs, PASTES)"
                ));
            }
            Directive::Paste(p, need(reason)?)
        }
        "insert-after" if args.len() >= 2 => {
            Directive::InsertAfter(args[0].clone(), args[1..].join(" "))
        }
        other => return Err(format!("unknown directive `{other}`")),
    })
}

/// Every fenced block of `doc` with its directives. Errors name the line.
pub fn parse(doc: &str) -> Result<Vec<Block>, String> {
    let mut blocks = Vec::new();
    let mut pending: Vec<Directive> = Vec::new();
    let mut lines = doc.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("<!-- guide-test:") {
            let body = rest.strip_suffix("-->").ok_or(format!(
                "line {}: a guide-test comment ends on its line",
                n + 1
            ))?;
            pending.push(directive(body.trim()).map_err(|e| format!("line {}: {e}", n + 1))?);
            continue;
        }
        if let Some(lang) = t.strip_prefix("```") {
            let indent = line.len() - line.trim_start().len();
            let mut text = String::new();
            for (_, l) in lines.by_ref() {
                if l.trim() == "```" {
                    break;
                }
                // Blocks inside list items are indented with the item.
                text.push_str(l.get(indent..).unwrap_or(l.trim_start()));
                text.push('\n');
            }
            blocks.push(Block {
                line: n + 1,
                lang: lang.trim().to_owned(),
                text,
                directives: std::mem::take(&mut pending),
            });
            continue;
        }
        if !t.is_empty() && !pending.is_empty() {
            return Err(format!(
                "line {}: guide-test directives must stand right before a fenced block",
                n + 1
            ));
        }
    }
    if !pending.is_empty() {
        return Err("guide-test directives at the end, before no block".into());
    }
    // A group is consecutive: a name used again after other blocks is a mistake.
    let mut seen = std::collections::BTreeSet::new();
    for (i, b) in blocks.iter().enumerate() {
        if let Some(id) = b.id() {
            let continues = i > 0 && blocks[i - 1].id() == Some(id);
            if !seen.insert(id) && !continues {
                return Err(format!(
                    "line {}: id {id} names blocks that are not consecutive",
                    b.line
                ));
            }
        }
    }
    Ok(blocks)
}

/// One command of a shell block, with the output lines the guide shows after it.
#[derive(Debug, Clone)]
pub struct Command {
    pub text: String,
    /// 1-based line in the guide.
    pub line: usize,
    pub expected: Vec<String>,
}

impl Command {
    /// The program it runs: the first word after `sudo` and variable assignments.
    pub fn program(&self) -> &str {
        self.text
            .split_whitespace()
            .find(|w| *w != "sudo" && !w.contains('='))
            .unwrap_or("")
    }
}

/// Whether bash sees `text` as a complete command (not ending inside a quote, a subshell
/// or after a `\`).
fn complete(text: &str) -> bool {
    if text.trim_end().ends_with('\\') {
        return false;
    }
    let o = std::process::Command::new("bash")
        .args(["-n", "-c", text])
        .output()
        .expect("bash");
    o.status.success() || !String::from_utf8_lossy(&o.stderr).contains("unexpected end of file")
}

/// The commands of a shell block. `prompted`: lines start with `$ ` (a user) or `# ` (root),
/// other lines are what the command prints; else every line that is not a comment is a
/// command (the README's style).
pub fn commands(block: &Block, prompted: bool) -> Vec<Command> {
    let mut out: Vec<Command> = Vec::new();
    let mut open = false;
    for (i, line) in block.text.lines().enumerate() {
        let lineno = block.line + 1 + i;
        if open {
            let c = out.last_mut().expect("an open command");
            c.text.push('\n');
            c.text.push_str(line);
            open = !complete(&c.text);
            continue;
        }
        let start = if prompted {
            line.strip_prefix("$ ").or_else(|| line.strip_prefix("# "))
        } else if line.trim().is_empty() || line.trim_start().starts_with('#') {
            None
        } else {
            Some(line)
        };
        match start {
            Some(cmd) => {
                out.push(Command {
                    text: cmd.to_owned(),
                    line: lineno,
                    expected: Vec::new(),
                });
                open = !complete(cmd);
            }
            None if prompted && !line.trim().is_empty() => {
                if let Some(c) = out.last_mut() {
                    c.expected.push(line.trim().to_owned());
                }
            }
            None => {}
        }
    }
    out
}

/// Whether `shown` (a line the guide shows, `…` standing for anything) matches `actual`.
pub fn shown_matches(shown: &str, actual: &str) -> bool {
    let mut rest = actual;
    for (i, part) in shown.split('…').enumerate() {
        let part = if i == 0 { part.trim_start() } else { part };
        if part.is_empty() {
            continue;
        }
        match rest.find(part) {
            Some(at) if i > 0 || at == 0 || actual[..at].trim().is_empty() => {
                rest = &rest[at + part.len()..]
            }
            _ => return false,
        }
    }
    shown.ends_with('…') || rest.trim().is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_lines_match_with_ellipses() {
        assert!(shown_matches(
            "carried vault 0.1.0 (x86_64): sha256 3f5c…",
            "carried vault 0.1.0 (x86_64): sha256 3f5cabcdef"
        ));
        assert!(!shown_matches(
            "carried vault 0.1.0 (x86_64): sha256 3f5c…",
            "carried vault 0.2.0 (x86_64): sha256 00"
        ));
        assert!(shown_matches(
            "host … can decrypt",
            "host server2 can decrypt"
        ));
        assert!(!shown_matches("a b", "a b c"));
    }
}
