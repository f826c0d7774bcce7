//! Which `.sops.yaml` creation rules a new host joins: the rules `--rule` picks, or by default
//! the shared rules and the host's own, never one that names another host. The policy only;
//! `config_splice` edits the text.

use regex::Regex;

/// Which creation rules a new host joins.
#[derive(Debug, Clone, Copy)]
pub enum Choice<'a> {
    /// The rules whose `path_regex` matches one of these (`--rule`), whatever they name.
    Matching(&'a [Regex]),
    /// The shared rules and the host's own: every rule except those whose `path_regex` names
    /// another host (one of these names, or another anchor of `keys:`) and not this one.
    SharedAndOwn { other_hosts: &'a [String] },
}

/// What [`add_recipient`] decided for one creation rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleVerdict {
    /// 1-based, in file order.
    pub number: usize,
    /// The rule's `path_regex` as written (empty if it has none: it matches every file).
    pub path_regex: String,
    pub joined: bool,
    /// Why: "names web1", "shared", "names server1", "matches --rule", …
    pub why: String,
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// Whether `path_regex` names `name` as a whole word (a folder or file name part), as written
/// or with its dots escaped; ASCII case is ignored.
pub fn names(path_regex: &str, name: &str) -> bool {
    let hay = path_regex.to_ascii_lowercase();
    let name = name.to_ascii_lowercase();
    [name.clone(), name.replace('.', "\\.")].iter().any(|v| {
        hay.match_indices(v.as_str()).any(|(i, m)| {
            !hay[..i].chars().next_back().is_some_and(is_word)
                && !hay[i + m.len()..].chars().next().is_some_and(is_word)
        })
    })
}

/// What `choice` decides for each creation rule of `doc`; `anchors` are the named keys of
/// its `keys:` list (other hosts, unless one is `name`).
pub fn verdicts(
    doc: &serde_norway::Value,
    anchors: Vec<String>,
    name: &str,
    choice: Choice,
) -> Result<Vec<RuleVerdict>, String> {
    let parsed_rules = doc
        .get("creation_rules")
        .and_then(|r| r.as_sequence())
        .ok_or("no creation_rules list")?;
    let mut others: Vec<String> = match choice {
        Choice::SharedAndOwn { other_hosts } => other_hosts.to_vec(),
        Choice::Matching(_) => Vec::new(),
    };
    others.extend(anchors);
    others.retain(|o| o != name);
    let mut out = Vec::new();
    for (n, parsed) in parsed_rules.iter().enumerate() {
        let regex = parsed
            .get("path_regex")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string();
        let (joined, why) = match choice {
            Choice::Matching(rules) => {
                if rules.iter().any(|r| r.is_match(&regex)) {
                    (true, "matches --rule".to_string())
                } else {
                    (false, "not chosen by --rule".to_string())
                }
            }
            Choice::SharedAndOwn { .. } => {
                if names(&regex, name) {
                    (true, format!("names {name}"))
                } else if let Some(o) = others.iter().find(|o| names(&regex, o)) {
                    (false, format!("names {o}"))
                } else {
                    (true, "shared".to_string())
                }
            }
        };
        out.push(RuleVerdict {
            number: n + 1,
            path_regex: regex,
            joined,
            why,
        });
    }
    Ok(out)
}

/// The rules, one line each, for an error that lists them.
pub fn rule_list(v: &[RuleVerdict]) -> String {
    v.iter()
        .map(|r| {
            let rx = if r.path_regex.is_empty() {
                "(no path_regex: every file)"
            } else {
                r.path_regex.as_str()
            };
            format!("\n  rule {}: {rx}", r.number)
        })
        .collect()
}
