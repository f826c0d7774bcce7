//! sops YAML files: reading the age entries, and splicing new ones into the text exactly as
//! sops 3.x writes them (4-space indent; `enc` as a literal block). Only the lines of the `age`
//! lists change; everything else stays byte for byte.

use super::entries::{groups_from_meta, strip_age, AgeEntry, Groups};

type Value = serde_norway::Value;

fn parse(text: &str) -> Result<Value, String> {
    serde_norway::from_str(text).map_err(|e| format!("invalid YAML: {e}"))
}

fn meta_json(doc: &Value) -> Option<Result<serde_json::Value, String>> {
    let meta = doc.as_mapping()?.get("sops")?;
    if !meta.is_mapping() || (meta.get("mac").is_none() && meta.get("version").is_none()) {
        return None;
    }
    Some(serde_json::to_value(meta).map_err(|e| format!("unreadable sops metadata: {e}")))
}

pub(super) fn read(text: &str) -> Result<Option<Groups>, String> {
    // A YAML file that does not parse, or has no sops block, is not a sops file.
    let Ok(doc) = parse(text) else {
        return Ok(None);
    };
    match meta_json(&doc) {
        None => Ok(None),
        Some(meta) => groups_from_meta(&meta?).map(Some),
    }
}

pub(super) fn same_apart_from_age(a: &str, b: &str) -> Result<bool, String> {
    let strip = |t: &str| -> Result<(Value, serde_json::Value), String> {
        let mut doc = parse(t)?;
        let mut meta = meta_json(&doc).ok_or("no sops metadata")??;
        strip_age(&mut meta);
        if let Some(m) = doc.as_mapping_mut() {
            m.remove("sops");
        }
        Ok((doc, meta))
    };
    Ok(strip(a)? == strip(b)?)
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

fn blank(line: &str) -> bool {
    line.trim().is_empty()
}

/// First line after `start` that is not blank and indented at most `key_indent`.
fn block_end(lines: &[&str], start: usize, key_indent: usize) -> usize {
    (start + 1..lines.len())
        .find(|&i| !blank(lines[i]) && indent(lines[i]) <= key_indent)
        .unwrap_or(lines.len())
}

/// The items of an age list whose key sits at column `base`.
fn render_items(base: usize, entries: &[AgeEntry]) -> String {
    let pad = |n: usize| " ".repeat(n);
    let mut s = String::new();
    for e in entries {
        s.push_str(&format!("{}- recipient: {}\n", pad(base + 4), e.recipient));
        let (style, body) = match e.enc.strip_suffix('\n') {
            Some(b) => ("|", b),
            None => ("|-", e.enc.as_str()),
        };
        s.push_str(&format!("{}enc: {style}\n", pad(base + 6)));
        for l in body.split('\n') {
            if l.is_empty() {
                s.push('\n');
            } else {
                s.push_str(&format!("{}{l}\n", pad(base + 8)));
            }
        }
    }
    s
}

struct Edit {
    start: usize,
    end: usize,
    text: String,
}

pub(super) fn write(text: &str, groups: &Groups) -> Result<String, String> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let key = |l: &str, k: &str| l.trim_end_matches(['\n', '\r']).starts_with(k);
    let s0 = lines
        .iter()
        .position(|l| key(l, "sops:"))
        .ok_or("no top-level sops: block")?;
    let s1 = block_end(&lines, s0, 0);
    let mut edits = Vec::new();
    let kg = (s0 + 1..s1).find(|&i| key(lines[i], "    key_groups:"));
    match kg {
        None => {
            let [entries] = groups.as_slice() else {
                return Err(
                    "the file has no key_groups but more than one group was asked for".into(),
                );
            };
            let age = (s0 + 1..s1).find(|&i| key(lines[i], "    age:"));
            let new = if entries.is_empty() {
                String::new()
            } else {
                format!("    age:\n{}", render_items(4, entries))
            };
            match age {
                Some(a) => edits.push(Edit {
                    start: a,
                    end: block_end(&lines, a, 4),
                    text: new,
                }),
                None => {
                    let at = (s0 + 1..s1)
                        .find(|&i| key(lines[i], "    lastmodified:"))
                        .unwrap_or(s1);
                    edits.push(Edit {
                        start: at,
                        end: at,
                        text: new,
                    });
                }
            }
        }
        Some(k) => {
            let kend = block_end(&lines, k, 4);
            let starts: Vec<usize> = (k + 1..kend)
                .filter(|&i| indent(lines[i]) == 8 && lines[i][8..].starts_with("- "))
                .collect();
            if starts.len() != groups.len() {
                return Err(format!(
                    "found {} key groups in the text, expected {}",
                    starts.len(),
                    groups.len()
                ));
            }
            for (g, &gs) in starts.iter().enumerate() {
                let ge = starts.get(g + 1).copied().unwrap_or(kend);
                let entries = &groups[g];
                if entries.is_empty() {
                    return Err(format!("key group {} would have no age entries", g + 1));
                }
                let items = render_items(10, entries);
                let on_dash = lines[gs][8..].starts_with("- age:");
                let own = (gs + 1..ge)
                    .find(|&i| indent(lines[i]) == 10 && lines[i][10..].starts_with("age:"));
                if on_dash {
                    edits.push(Edit {
                        start: gs,
                        end: block_end(&lines, gs, 10),
                        text: format!("        - age:\n{items}"),
                    });
                } else if let Some(a) = own {
                    edits.push(Edit {
                        start: a,
                        end: block_end(&lines, a, 10),
                        text: format!("          age:\n{items}"),
                    });
                } else {
                    edits.push(Edit {
                        start: ge,
                        end: ge,
                        text: format!("          age:\n{items}"),
                    });
                }
            }
        }
    }
    Ok(apply(&lines, edits))
}

fn apply(lines: &[&str], mut edits: Vec<Edit>) -> String {
    edits.sort_by_key(|e| e.start);
    let mut out = String::new();
    let mut i = 0;
    for e in edits {
        out.extend(lines[i..e.start].iter().copied());
        out.push_str(&e.text);
        i = e.end;
    }
    out.extend(lines[i..].iter().copied());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "a: ENC[x]\nsops:\n    kms: []\n    age:\n        - recipient: age1one\n          enc: |\n            -----BEGIN AGE ENCRYPTED FILE-----\n            abc\n            -----END AGE ENCRYPTED FILE-----\n    lastmodified: \"2020\"\n    mac: ENC[m]\n    version: 3.7.1\n";

    #[test]
    fn round_trip_is_identity() {
        let groups = read(FILE).unwrap().unwrap();
        assert_eq!(groups[0][0].recipient, "age1one");
        assert_eq!(write(FILE, &groups).unwrap(), FILE);
    }

    #[test]
    fn adds_an_entry_and_nothing_else() {
        let mut groups = read(FILE).unwrap().unwrap();
        groups[0].push(AgeEntry {
            recipient: "age1two".into(),
            enc: "-----BEGIN AGE ENCRYPTED FILE-----\ndef\n-----END AGE ENCRYPTED FILE-----\n"
                .into(),
        });
        let out = write(FILE, &groups).unwrap();
        assert_eq!(read(&out).unwrap().unwrap(), groups);
        assert!(same_apart_from_age(FILE, &out).unwrap());
        assert!(
            out.contains("        - recipient: age1two\n          enc: |\n            def\n")
                || out.contains("            def\n")
        );
    }
}
