//! The docs and the generated completions and man pages against the binary's own clap
//! definitions: every subcommand and every long flag `--help` shows is documented in
//! docs/CLI.md under that subcommand's heading, and appears in what `vault completions` and
//! `vault man` print.

mod common;

use std::collections::BTreeMap;

use clap::CommandFactory;

#[allow(dead_code, unused_imports)]
#[path = "../src/cli/mod.rs"]
mod cli;

/// Every visible command below the top one, by path ("pack", "host add"), with its visible
/// long flags (`--help` and `--version` left out: clap adds them everywhere).
fn commands() -> BTreeMap<String, Vec<String>> {
    fn walk(cmd: &clap::Command, path: &str, out: &mut BTreeMap<String, Vec<String>>) {
        for sub in cmd.get_subcommands() {
            if sub.is_hide_set() || sub.get_name() == "help" {
                continue;
            }
            let p = format!("{path} {}", sub.get_name()).trim().to_owned();
            let flags = sub
                .get_arguments()
                .filter(|a| !a.is_hide_set() && !a.is_global_set())
                .filter_map(|a| a.get_long())
                .filter(|l| *l != "help" && *l != "version")
                .map(|l| format!("--{l}"))
                .collect();
            out.insert(p.clone(), flags);
            walk(sub, &p, out);
        }
    }
    let mut cmd = cli::Cli::command();
    cmd.build();
    let mut out = BTreeMap::new();
    walk(&cmd, "", &mut out);
    out
}

/// docs/CLI.md's "### `vault …`" sections, by command path.
fn doc_sections() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/CLI.md"))
        .expect("docs/CLI.md");
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("### `vault ") {
            let name = rest.split('`').next().unwrap_or("").to_owned();
            current = Some(name.clone());
            out.entry(name).or_default();
            continue;
        }
        if line.starts_with("## ") || line.starts_with("### ") {
            current = None;
        }
        if let Some(c) = &current {
            let s = out.get_mut(c).unwrap();
            s.push_str(line);
            s.push('\n');
        }
    }
    out
}

#[test]
fn every_command_and_flag_is_documented_in_cli_md() {
    let sections = doc_sections();
    let mut missing = Vec::new();
    for (cmd, flags) in commands() {
        let Some(section) = sections.get(&cmd) else {
            // A group (`vault host`) is documented by its subcommands' sections.
            if cli::Cli::command()
                .get_subcommands()
                .any(|s| s.get_name() == cmd && s.has_subcommands())
            {
                continue;
            }
            missing.push(format!("no \"### `vault {cmd}`\" section"));
            continue;
        };
        for f in flags {
            // As a word: `--force` must not be satisfied by `--force-x`.
            let found = section.match_indices(&f).any(|(i, _)| {
                !section[i + f.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '-')
            });
            if !found {
                missing.push(format!("vault {cmd} {f}"));
            }
        }
    }
    let global =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/CLI.md")).unwrap();
    for f in ["--quiet", "--json"] {
        if !global.contains(f) {
            missing.push(f.to_owned());
        }
    }
    assert!(
        missing.is_empty(),
        "not in docs/CLI.md:\n{}",
        missing.join("\n")
    );
    // Sections for commands that no longer exist are drift too.
    let known = commands();
    let stale: Vec<&String> = sections
        .keys()
        .filter(|s| !known.contains_key(*s))
        .collect();
    assert!(
        stale.is_empty(),
        "docs/CLI.md documents unknown commands: {stale:?}"
    );
}

#[test]
fn completions_and_man_pages_mention_every_subcommand() {
    let cmds = commands();
    let leaf_names: Vec<String> = cmds
        .keys()
        .map(|c| c.rsplit(' ').next().unwrap().to_owned())
        .collect();
    for shell in ["bash", "zsh", "fish"] {
        let out = common::ok(common::vault_in(
            std::path::Path::new("."),
            &["completions", shell],
        ));
        assert!(out.len() > 1000, "{shell}: {out}");
        for name in &leaf_names {
            assert!(
                out.contains(name.as_str()),
                "{shell} completions lack {name}"
            );
        }
        // Flags too, e.g. pack's.
        assert!(
            out.contains("weak-kdf"),
            "{shell} completions lack pack's flags"
        );
    }
    let page = common::ok(common::vault_in(std::path::Path::new("."), &["man"]));
    assert!(page.contains(".TH"), "{page}");
    for top in cmds.keys().filter(|c| !c.contains(' ')) {
        assert!(page.contains(top.as_str()), "vault.1 lacks {top}");
    }

    let dir = tempfile::tempdir().unwrap();
    common::ok(common::vault_in(dir.path(), &["man", "--out-dir", "pages"]));
    for cmd in cmds.keys() {
        let file = dir
            .path()
            .join(format!("pages/vault-{}.1", cmd.replace(' ', "-")));
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(text.contains(".TH"), "{}", file.display());
        // A group's page lists its subcommands (`vault-host.1`: add, list, remove).
        for child in cmds
            .keys()
            .filter_map(|c| c.strip_prefix(&format!("{cmd} ")))
        {
            assert!(text.contains(child), "{} lacks {child}", file.display());
        }
    }
    assert!(dir.path().join("pages/vault.1").metadata().unwrap().len() > 0);
}
