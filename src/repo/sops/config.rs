//! `.sops.yaml`, read: its creation rules as rekey and host add need them, from the first YAML
//! document only (the one sops reads).

use std::path::{Path, PathBuf};

use regex::Regex;

use crate::repo::Error;

/// A creation rule, reduced to what rekey needs.
#[derive(Debug, Clone)]
pub struct Rule {
    pub index: usize,
    pub path_regex: Option<Regex>,
    /// Age recipients per key group.
    pub groups: Vec<Vec<String>>,
}

/// A parsed `.sops.yaml`.
#[derive(Debug, Clone)]
pub struct SopsConfig {
    pub path: PathBuf,
    pub dir: PathBuf,
    pub rules: Vec<Rule>,
}

impl SopsConfig {
    pub fn load(path: &Path) -> Result<SopsConfig, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io("cannot read", path, e))?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<SopsConfig, Error> {
        let cfg = |m: String| Error::config(path, m);
        // Only the first YAML document counts, as for sops.
        let doc = parse_first(text).map_err(cfg)?;
        let rules = doc
            .get("creation_rules")
            .and_then(|r| r.as_sequence())
            .ok_or_else(|| cfg("no creation_rules list".into()))?;
        let mut out = Vec::new();
        for (index, r) in rules.iter().enumerate() {
            let n = index + 1;
            let path_regex = match r.get("path_regex") {
                None | Some(serde_norway::Value::Null) => None,
                Some(v) => {
                    let s = v.as_str().ok_or_else(|| {
                        cfg(format!("creation rule {n}: path_regex is not a string"))
                    })?;
                    Some(Regex::new(s).map_err(|e| {
                        cfg(format!(
                            "creation rule {n}: path_regex {s:?} is invalid: {e}"
                        ))
                    })?)
                }
            };
            let groups =
                match r.get("key_groups").filter(|v| !v.is_null()) {
                    Some(kg) => kg
                        .as_sequence()
                        .ok_or_else(|| cfg(format!("creation rule {n}: key_groups is not a list")))?
                        .iter()
                        .map(|g| recipients(g.get("age")))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|m| cfg(format!("creation rule {n}: {m}")))?,
                    None => vec![recipients(r.get("age"))
                        .map_err(|m| cfg(format!("creation rule {n}: {m}")))?],
                };
            out.push(Rule {
                index: n,
                path_regex,
                groups,
            });
        }
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Ok(SopsConfig {
            path: path.to_path_buf(),
            dir,
            rules: out,
        })
    }

    /// The first rule matching `rel` (a path relative to the config's folder, `/`-separated).
    pub fn rule_for(&self, rel: &str) -> Option<&Rule> {
        self.rules
            .iter()
            .find(|r| r.path_regex.as_ref().is_none_or(|re| re.is_match(rel)))
    }
}

/// `age:` as a comma-separated string or a list (of strings that may hold commas too).
fn recipients(v: Option<&serde_norway::Value>) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |s: &str| {
        for r in s.split(',').map(str::trim).filter(|r| !r.is_empty()) {
            if !out.iter().any(|o| o == r) {
                out.push(r.to_string());
            }
        }
    };
    match v {
        None | Some(serde_norway::Value::Null) => {}
        Some(serde_norway::Value::String(s)) => add(s),
        Some(serde_norway::Value::Sequence(items)) => {
            for i in items {
                add(i.as_str().ok_or("an age recipient is not a string")?);
            }
        }
        Some(_) => return Err("age must be a string or a list of strings".into()),
    }
    Ok(out)
}

/// The text of the first YAML document (what sops reads) and the rest, from the `---` or
/// `...` line that ends it.
pub fn first_document(text: &str) -> (&str, &str) {
    let mut offset = 0;
    let mut started = false;
    for line in text.split_inclusive('\n') {
        let c = content(line);
        let marker = c == "---" || c.starts_with("--- ");
        if (marker && started) || c == "..." {
            return (&text[..offset], &text[offset..]);
        }
        if marker || (!filler(line) && !c.starts_with('%')) {
            started = true;
        }
        offset += line.len();
    }
    (text, "")
}

/// The first document of a YAML text, parsed.
pub fn parse_first(text: &str) -> Result<serde_norway::Value, String> {
    serde_norway::from_str(first_document(text).0).map_err(|e| format!("invalid YAML: {e}"))
}

/// Blank or comment-only.
pub(super) fn filler(line: &str) -> bool {
    let t = line.trim();
    t.is_empty() || t.starts_with('#')
}

pub(super) fn content(line: &str) -> &str {
    line.trim_end_matches(['\n', '\r'])
}
