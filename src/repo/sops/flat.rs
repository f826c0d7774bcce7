//! sops dotenv and INI files, whose metadata is flattened into keys such as
//! `sops_age__list_0__map_enc` (dotenv) or `age__list_0__map_enc` in a `[sops]` section (INI),
//! with newlines written as `\n`. The age lines are replaced; all other lines stay as they are.

use std::collections::BTreeMap;

use super::entries::{AgeEntry, Groups};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flavor {
    Dotenv,
    Ini,
}

/// More key groups than a sops file has in practice (each group is one Shamir share; sops
/// writes a handful). A larger index is damage or hostility, refused before anything is
/// allocated for it.
const MAX_KEY_GROUPS: usize = 256;

/// A metadata line: its flattened key (without the dotenv `sops_` prefix) and value.
fn meta_kv(line: &str, flavor: Flavor, in_sops: bool) -> Option<(&str, &str)> {
    let line = line.trim_end_matches(['\n', '\r']);
    match flavor {
        Flavor::Dotenv => {
            let (k, v) = line.split_once('=')?;
            Some((k.strip_prefix("sops_")?, v))
        }
        Flavor::Ini => {
            if !in_sops {
                return None;
            }
            let (k, v) = line.split_once('=')?;
            Some((k.trim(), v.trim_start()))
        }
    }
}

/// `(group, index, field)` of an age key, `group` None without key groups.
fn age_key(k: &str) -> Option<(Option<usize>, usize, &str)> {
    let (group, rest) = match k.strip_prefix("key_groups__list_") {
        Some(r) => {
            let (g, rest) = r.split_once("__map_")?;
            (Some(g.parse().ok()?), rest)
        }
        None => (None, k),
    };
    let rest = rest.strip_prefix("age__list_")?;
    let (i, field) = rest.split_once("__map_")?;
    Some((group, i.parse().ok()?, field))
}

/// Walks the lines, telling for each whether it is in the INI `[sops]` section.
fn lines_with_section(text: &str) -> Vec<(&str, bool)> {
    let mut in_sops = false;
    text.split_inclusive('\n')
        .map(|l| {
            let t = l.trim();
            if t.starts_with('[') && t.ends_with(']') {
                in_sops = t == "[sops]";
            }
            (l, in_sops)
        })
        .collect()
}

fn is_age_line(line: &str, flavor: Flavor, in_sops: bool) -> bool {
    meta_kv(line, flavor, in_sops).is_some_and(|(k, _)| age_key(k).is_some())
}

pub(super) fn read(text: &str, flavor: Flavor) -> Result<Option<Groups>, String> {
    let mut has_meta = false;
    let mut group_count = 0usize;
    let mut grouped = false;
    let mut map: BTreeMap<(usize, usize), (Option<String>, Option<String>)> = BTreeMap::new();
    for (line, in_sops) in lines_with_section(text) {
        let Some((k, v)) = meta_kv(line, flavor, in_sops) else {
            continue;
        };
        if k == "mac" || k == "version" {
            has_meta = true;
        }
        if let Some(r) = k.strip_prefix("key_groups__list_") {
            grouped = true;
            let g = r.split_once("__").map_or(r, |(g, _)| g);
            match g.parse::<usize>() {
                Ok(g) if g < MAX_KEY_GROUPS => group_count = group_count.max(g + 1),
                _ => {
                    return Err(format!(
                        "key group {:?} is not an index below {MAX_KEY_GROUPS}",
                        g.chars().take(24).collect::<String>()
                    ))
                }
            }
        }
        if let Some((g, i, field)) = age_key(k) {
            let slot = map.entry((g.unwrap_or(0), i)).or_default();
            let v = v.replace("\\n", "\n");
            match field {
                "recipient" => slot.0 = Some(v),
                "enc" => slot.1 = Some(v),
                _ => {}
            }
        }
    }
    if !has_meta {
        return Ok(None);
    }
    let mut groups: Groups = vec![Vec::new(); if grouped { group_count } else { 1 }];
    for ((g, _), (r, e)) in map {
        let (Some(recipient), Some(enc)) = (r, e) else {
            return Err("an age entry lacks its recipient or enc".into());
        };
        groups
            .get_mut(g)
            .ok_or("age entry of an unknown key group")?
            .push(AgeEntry { recipient, enc });
    }
    Ok(Some(groups))
}

pub(super) fn same_apart_from_age(a: &str, b: &str, flavor: Flavor) -> bool {
    let rest = |t: &str| -> Vec<String> {
        lines_with_section(t)
            .into_iter()
            .filter(|(l, s)| !is_age_line(l, flavor, *s))
            .map(|(l, _)| l.to_string())
            .collect()
    };
    rest(a) == rest(b)
}

pub(super) fn write(text: &str, groups: &Groups, flavor: Flavor) -> Result<String, String> {
    let lines = lines_with_section(text);
    let grouped = lines.iter().any(|(l, s)| {
        meta_kv(l, flavor, *s).is_some_and(|(k, _)| k.starts_with("key_groups__list_"))
    });
    let mut keys: Vec<(String, String)> = Vec::new();
    for (g, entries) in groups.iter().enumerate() {
        for (i, e) in entries.iter().enumerate() {
            let prefix = if grouped {
                format!("key_groups__list_{g}__map_age__list_{i}__map_")
            } else {
                format!("age__list_{i}__map_")
            };
            keys.push((format!("{prefix}enc"), e.enc.replace('\n', "\\n")));
            keys.push((format!("{prefix}recipient"), e.recipient.clone()));
        }
    }
    // sops 3.9+ writes metadata sorted by key.
    keys.sort();
    // INI aligns `=` to the longest key of the section; keep the file's current width.
    let width = lines
        .iter()
        .filter(|(_, s)| *s)
        .filter_map(|(l, _)| l.find(" = "))
        .max()
        .unwrap_or(0);
    let render = |k: &str, v: &str| match flavor {
        Flavor::Dotenv => format!("sops_{k}={v}\n"),
        Flavor::Ini => format!("{k:<width$} = {v}\n"),
    };
    let new: String = keys.iter().map(|(k, v)| render(k, v)).collect();
    let first_age = lines.iter().position(|(l, s)| is_age_line(l, flavor, *s));
    let insert_at = match first_age {
        Some(i) => i,
        None => match flavor {
            Flavor::Dotenv => lines
                .iter()
                .position(|(l, _)| l.starts_with("sops_lastmodified="))
                .unwrap_or(lines.len()),
            Flavor::Ini => {
                let last = lines
                    .iter()
                    .rposition(|(_, s)| *s)
                    .ok_or("no [sops] section")?;
                last + 1
            }
        },
    };
    let mut out = String::new();
    for (n, (l, s)) in lines.iter().enumerate() {
        if n == insert_at {
            out.push_str(&new);
        }
        if !is_age_line(l, flavor, *s) {
            out.push_str(l);
        }
    }
    if insert_at >= lines.len() {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&new);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dotenv(group: &str) -> String {
        format!(
            "A=ENC[AES256_GCM,data:x,iv:y,tag:z,type:str]\n\
             sops_key_groups__list_{group}__map_age__list_0__map_enc=-----BEGIN AGE ENCRYPTED FILE-----\\n-----END AGE ENCRYPTED FILE-----\\n\n\
             sops_key_groups__list_{group}__map_age__list_0__map_recipient=age1xyz\n\
             sops_mac=ENC[AES256_GCM,data:m,iv:i,tag:t,type:str]\n\
             sops_version=3.9.0\n"
        )
    }

    #[test]
    fn a_huge_key_group_index_is_refused_not_allocated() {
        for group in [
            usize::MAX.to_string(),
            (1usize << 40).to_string(),
            MAX_KEY_GROUPS.to_string(),
            "99999999999999999999999999".into(),
            "x".into(),
        ] {
            for flavor in [Flavor::Dotenv, Flavor::Ini] {
                let text = match flavor {
                    Flavor::Dotenv => dotenv(&group),
                    Flavor::Ini => format!("[sops]\n{}", dotenv(&group).replace("sops_", "")),
                };
                let err = read(&text, flavor).unwrap_err();
                assert!(err.contains("key group"), "{err}");
            }
        }
        let g = read(&dotenv("3"), Flavor::Dotenv).unwrap().unwrap();
        assert_eq!(g.len(), 4);
        assert_eq!(g[3][0].recipient, "age1xyz");
    }
}
