//! Adding (and removing) a host's recipient in `.sops.yaml` by splicing text, so the user's
//! comments, anchors and order survive: an anchor `- &NAME age1…` after the last item of the
//! top-level `keys:` list, and an alias `- *NAME` after the last item of each chosen creation
//! rule's `age` list (in every key group, for rules with `key_groups`). The file only gains
//! lines. The result is parsed again and checked before anyone writes it.

use regex::Regex;

use super::config::{content, filler, first_document, parse_first, SopsConfig};
use super::rule_choice::{rule_list, verdicts};
pub use super::rule_choice::{Choice, RuleVerdict};

fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// Whether `line` is the key `key:` (at any indent, or after `- `) with nothing but an
/// optional comment after the colon.
fn is_block_key(line: &str, key: &str) -> bool {
    let t = content(line).trim_start();
    let t = t.strip_prefix("- ").map(str::trim_start).unwrap_or(t);
    match t.strip_prefix(key).and_then(|r| r.strip_prefix(':')) {
        Some(rest) => {
            let rest = rest.trim();
            rest.is_empty() || rest.starts_with('#')
        }
        None => false,
    }
}

/// Column where a key begins on `line` (after `- ` for the first key of a list item).
fn key_column(line: &str) -> usize {
    let i = indent(line);
    let rest = &line[i..];
    match rest.strip_prefix("- ") {
        Some(r) => i + 2 + (r.len() - r.trim_start().len()),
        None => i,
    }
}

/// The block sequence below the key on line `k`: its item indent and the last line that
/// belongs to it. None if the key's value is not a block sequence.
fn sequence_after(lines: &[&str], k: usize) -> Option<(usize, usize)> {
    let kc = key_column(lines[k]);
    let first = (k + 1..lines.len()).find(|&i| !filler(lines[i]))?;
    let item_indent = indent(lines[first]);
    if item_indent < kc || !lines[first][item_indent..].starts_with("- ") {
        return None;
    }
    let mut last = first;
    for (i, line) in lines.iter().enumerate().skip(first + 1) {
        if filler(line) {
            continue;
        }
        let ind = indent(line);
        if ind > item_indent || (ind == item_indent && line[ind..].starts_with("- ")) {
            last = i;
        } else {
            break;
        }
    }
    Some((item_indent, last))
}

/// The line range of each item of the block sequence under top-level `key`.
fn items_of_top(lines: &[&str], key: &str) -> Option<(usize, Vec<(usize, usize)>)> {
    let k = lines
        .iter()
        .position(|l| indent(l) == 0 && is_block_key(l, key))?;
    let (item_indent, last) = sequence_after(lines, k)?;
    let starts: Vec<usize> = (k + 1..=last)
        .filter(|&i| indent(lines[i]) == item_indent && lines[i][item_indent..].starts_with("- "))
        .collect();
    let ranges = starts
        .iter()
        .enumerate()
        .map(|(n, &s)| (s, starts.get(n + 1).map_or(last + 1, |&e| e)))
        .collect();
    Some((k, ranges))
}

/// The anchors of the `- &NAME …` items of the top-level `keys:` list (the named keys).
fn anchors(text: &str) -> Vec<String> {
    let re = Regex::new(r"^[ \t]*-[ \t]+&([^\s]+)").expect("static regex");
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let Some((_, items)) = items_of_top(&lines, "keys") else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|&(start, _)| re.captures(content(lines[start])))
        .map(|c| c[1].to_string())
        .collect()
}

/// The value of the `- &name VALUE` item of the top-level `keys:` list, if `name` is one of
/// its anchors: the recipient the file registers for that host.
pub fn anchored(text: &str, name: &str) -> Option<String> {
    let (head, _) = first_document(text);
    let re = Regex::new(&format!(
        r"^[ \t]*-[ \t]+&{}[ \t]+([^\s#]+)",
        regex::escape(name)
    ))
    .ok()?;
    let lines: Vec<&str> = head.split_inclusive('\n').collect();
    let (_, items) = items_of_top(&lines, "keys")?;
    items
        .iter()
        .find_map(|&(start, _)| re.captures(content(lines[start])))
        .map(|c| c[1].trim_matches(['"', '\'']).to_string())
}

/// The line ending the file uses (`\r\n` if any line has one).
fn eol_of(text: &str) -> &'static str {
    if text.contains("\r\n") {
        "\r\n"
    } else {
        "\n"
    }
}

/// The `[…]` of a one-line flow list after `age:` on `line`: byte offsets of `[` and `]`.
fn flow_list(line: &str) -> Option<(usize, usize)> {
    let c = content(line);
    let at = c.find("age:")? + 4;
    let open = at + (c[at..].len() - c[at..].trim_start().len());
    if !c[open..].starts_with('[') {
        return None;
    }
    // Aliases and age1 keys hold no `]`: the first one closes the list.
    let close = open + c[open..].find(']')?;
    let after = c[close + 1..].trim();
    (close > open && (after.is_empty() || after.starts_with('#'))).then_some((open, close))
}

/// Adds `recipient` as `&name` to `keys:` and `*name` to the creation rules `choice` picks.
/// Returns the new text and what was decided for every rule. Only the first YAML document
/// (the one sops reads) is edited; CRLF files get CRLF lines.
pub fn add_recipient(
    text: &str,
    name: &str,
    recipient: &str,
    choice: Choice,
) -> Result<(String, Vec<RuleVerdict>), String> {
    let (head, tail) = first_document(text);
    let doc = parse_first(text)?;
    let eol = eol_of(text);
    let anchor = Regex::new(&format!(r"[&*]{}(\s|$|,|\])", regex::escape(name)))
        .map_err(|e| e.to_string())?;
    if anchor.is_match(head) {
        return Err(format!("already has an anchor or alias named {name}; remove the host first (`vault host remove {name}`)"));
    }
    if head.contains(recipient) {
        return Err(format!("already lists {recipient}"));
    }
    let lines: Vec<&str> = head.split_inclusive('\n').collect();
    // (insert after line index, text)
    let mut inserts: Vec<(usize, String)> = Vec::new();
    // (line index, its new text): one-line flow lists gain `, *name` in place.
    let mut replaced: Vec<(usize, String)> = Vec::new();

    let (rules_line, rule_ranges) = items_of_top(&lines, "creation_rules")
        .ok_or("no creation_rules: list (block style) to add the host to")?;
    let keys_line = match items_of_top(&lines, "keys") {
        Some((k, ranges)) => {
            let (s, e) = *ranges.last().ok_or("keys: is empty")?;
            let ind = indent(lines[s]);
            let last = (s..e).rev().find(|&i| !filler(lines[i])).unwrap_or(s);
            inserts.push((
                last,
                format!("{}- &{name} {recipient}{eol}", " ".repeat(ind)),
            ));
            k
        }
        None => {
            if lines
                .iter()
                .any(|l| indent(l) == 0 && content(l).starts_with("keys:"))
            {
                return Err(
                    "keys: is not a block list (`keys:` then `  - &name age1…` lines); make it one"
                        .into(),
                );
            }
            // No keys list yet: start one at the top, after a leading `---` if any.
            let at = lines
                .iter()
                .position(|l| !filler(l))
                .filter(|&i| content(lines[i]).trim() == "---");
            let line = format!("keys:{eol}  - &{name} {recipient}{eol}");
            match at {
                Some(i) => inserts.push((i, line)),
                None => inserts.push((usize::MAX, line)),
            }
            0
        }
    };
    if keys_line > rules_line {
        return Err("keys: comes after creation_rules:, so an alias in a rule would precede its anchor; move keys: above creation_rules:".into());
    }

    let verdicts = verdicts(&doc, anchors(head), name, choice)?;
    if verdicts.len() != rule_ranges.len() {
        return Err("cannot line up creation_rules with their text; use one `- path_regex: …` item per rule".into());
    }
    if !verdicts.iter().any(|v| v.joined) {
        return Err(match choice {
            Choice::Matching(rules) => format!(
                "no creation rule's path_regex matches --rule {}; the rules are:{}",
                rules
                    .iter()
                    .map(|r| format!("{:?}", r.as_str()))
                    .collect::<Vec<_>>()
                    .join(", "),
                rule_list(&verdicts)
            ),
            Choice::SharedAndOwn { .. } => format!(
                "every creation rule names another host, none is shared or names {name}; choose with --rule REGEX:{}",
                rule_list(&verdicts)
            ),
        });
    }
    let mut changed = Vec::new();
    for ((s, e), verdict) in rule_ranges.iter().zip(&verdicts) {
        if !verdict.joined {
            continue;
        }
        let rule_no = verdict.number;
        let rule_lines: Vec<usize> = (*s..*e).collect();
        let kg = rule_lines
            .iter()
            .copied()
            .find(|&i| is_block_key(lines[i], "key_groups"));
        let age_keys: Vec<usize> = match kg {
            Some(k) => {
                let (gi, last) = sequence_after(&lines, k).ok_or(format!(
                    "creation rule {rule_no}: key_groups is not a block list"
                ))?;
                let starts: Vec<usize> = (k + 1..=last)
                    .filter(|&i| indent(lines[i]) == gi && lines[i][gi..].starts_with("- "))
                    .collect();
                let mut ks = Vec::new();
                for (g, &gs) in starts.iter().enumerate() {
                    let ge = starts.get(g + 1).map_or(last + 1, |&x| x);
                    let a = (gs..ge)
                        .find(|&i| key_column(lines[i]) == gi + 2 && is_age_key(lines[i]))
                        .ok_or(format!(
                            "creation rule {rule_no}, key group {}: no `age:` list",
                            g + 1
                        ))?;
                    ks.push(a);
                }
                ks
            }
            None => {
                let col = key_column(lines[*s]);
                let a = rule_lines
                    .iter()
                    .copied()
                    .find(|&i| key_column(lines[i]) == col && is_age_key(lines[i]));
                match a {
                    Some(a) => vec![a],
                    None => {
                        // No age list at all (e.g. pgp only): add one.
                        let last = (*s..*e).rev().find(|&i| !filler(lines[i])).unwrap_or(*s);
                        let pad = " ".repeat(col);
                        inserts.push((last, format!("{pad}age:{eol}{pad}  - *{name}{eol}")));
                        changed.push(rule_no);
                        continue;
                    }
                }
            }
        };
        for a in age_keys {
            if let Some((open, close)) = flow_list(lines[a]) {
                let line = lines[a];
                let c = content(line);
                let inner = c[open + 1..close].trim();
                let new = if inner.is_empty() {
                    format!("{}[*{name}]{}", &c[..open], &c[close + 1..])
                } else {
                    format!("{}, *{name}{}", c[..close].trim_end(), &c[close..])
                };
                replaced.push((a, format!("{new}{}", &line[c.len()..])));
                continue;
            }
            if !is_block_key(lines[a], "age") {
                return Err(format!(
                    "creation rule {rule_no}: `age` is a single value or a flow list across lines ({}); write it as a list, one recipient per `- ` line (or `[*a, *b]` on one line), so vault can add one without rewriting it",
                    content(lines[a]).trim()
                ));
            }
            let (ind, last) = sequence_after(&lines, a).ok_or(format!(
                "creation rule {rule_no}: `age:` has no list items below it"
            ))?;
            inserts.push((last, format!("{}- *{name}{eol}", " ".repeat(ind))));
        }
        changed.push(rule_no);
    }

    inserts.sort_by_key(|(i, _)| *i);
    let mut out = String::new();
    if let Some((_, t)) = inserts.iter().find(|(i, _)| *i == usize::MAX) {
        out.push_str(t);
    }
    for (i, line) in lines.iter().enumerate() {
        match replaced.iter().find(|(j, _)| *j == i) {
            Some((_, new)) => out.push_str(new),
            None => out.push_str(line),
        }
        if !line.ends_with('\n') && inserts.iter().any(|(j, _)| *j == i) {
            out.push_str(eol);
        }
        for (_, t) in inserts.iter().filter(|(j, _)| *j == i) {
            out.push_str(t);
        }
    }
    out.push_str(tail);
    verify(&out, recipient, &changed)?;
    Ok((out, verdicts))
}

fn is_age_key(line: &str) -> bool {
    let t = content(line).trim_start();
    let t = t.strip_prefix("- ").map(str::trim_start).unwrap_or(t);
    t.starts_with("age:")
}

/// The spliced text must parse, and the changed rules must now list the recipient.
fn verify(text: &str, recipient: &str, changed: &[usize]) -> Result<(), String> {
    let cfg = SopsConfig::parse(std::path::Path::new(".sops.yaml"), text)
        .map_err(|e| format!("the edited file would not parse ({e}); left unchanged"))?;
    for &n in changed {
        let rule = cfg.rules.get(n - 1).ok_or("rule count changed")?;
        if !rule.groups.iter().all(|g| g.iter().any(|r| r == recipient)) {
            return Err(format!("internal error: rule {n} does not list the recipient after editing; left unchanged"));
        }
    }
    Ok(())
}

/// Removes what [`add_recipient`] adds for `name`: the `- &name …` and `- *name` lines, and
/// `*name` from one-line flow lists. Returns the new text and how many were removed.
pub fn remove_recipient(text: &str, name: &str) -> Result<(String, usize), String> {
    let (head, tail) = first_document(text);
    let esc = regex::escape(name);
    let ours =
        Regex::new(&format!(r"^\s*- (&{esc} \S+|\*{esc})\s*(#.*)?$")).map_err(|e| e.to_string())?;
    // In a flow list: `*name` with its comma, wherever it stands.
    let flow = [
        (format!(r"\[\s*\*{esc}\s*\]"), "[]"),
        (format!(r"\[\s*\*{esc}\s*,\s*"), "["),
        (format!(r"\s*,\s*\*{esc}(\s*[,\]])"), "$1"),
    ]
    .map(|(re, with)| Regex::new(&re).map(|r| (r, with)));
    let lines: Vec<&str> = head.split_inclusive('\n').collect();
    let mut drop: Vec<bool> = lines.iter().map(|l| ours.is_match(content(l))).collect();
    let mut removed = drop.iter().filter(|d| **d).count();
    let mut rewritten: Vec<Option<String>> = vec![None; lines.len()];
    for (i, line) in lines.iter().enumerate() {
        if !is_age_key(line) || flow_list(line).is_none() {
            continue;
        }
        let mut new = line.to_string();
        for f in &flow {
            let (re, with) = f.as_ref().map_err(|e| e.to_string())?;
            if re.is_match(&new) {
                new = re.replace(&new, *with).into_owned();
                removed += 1;
            }
        }
        if new != *line {
            rewritten[i] = Some(new);
        }
    }
    // An `age:` list whose every item was ours (vault created it for a rule without one) goes
    // too; a list the user left empty is not touched.
    for i in 0..lines.len() {
        if !is_block_key(lines[i], "age") {
            continue;
        }
        if let Some((ind, last)) = sequence_after(&lines, i) {
            let mut items = (i + 1..=last)
                .filter(|&j| indent(lines[j]) == ind && lines[j][ind..].starts_with("- "));
            if items.all(|j| drop[j]) {
                drop[i] = true;
            }
        }
    }
    let mut out: String = lines
        .iter()
        .zip(&drop)
        .zip(&rewritten)
        .filter(|((_, d), _)| !**d)
        .map(|((l, _), r)| r.as_deref().unwrap_or(l))
        .collect();
    // Anything else still naming the anchor would now be a dangling alias.
    if Regex::new(&format!(r"[&*]{esc}(\s|$|,|\])"))
        .map_err(|e| e.to_string())?
        .is_match(&out)
    {
        return Err(format!(
            "{name} is still used in a form vault did not write; edit the file by hand"
        ));
    }
    out.push_str(tail);
    // Age lists emptied by the removal (`age:` with nothing under it) would parse as null.
    SopsConfig::parse(std::path::Path::new(".sops.yaml"), &out)
        .map_err(|e| format!("the edited file would not parse ({e}); left unchanged"))?;
    Ok((out, removed))
}

#[cfg(test)]
#[path = "splice_tests.rs"]
mod tests;
