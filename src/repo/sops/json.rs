//! sops JSON (and binary) files: tab-indented as sops writes them; only the lines of the
//! `age` lists are replaced.

use super::entries::{groups_from_meta, strip_age, AgeEntry, Groups};

fn meta(doc: &serde_json::Value) -> Option<&serde_json::Value> {
    let m = doc.as_object()?.get("sops")?;
    (m.is_object() && (m.get("mac").is_some() || m.get("version").is_some())).then_some(m)
}

pub(super) fn read(text: &str) -> Result<Option<Groups>, String> {
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(text) else {
        return Ok(None);
    };
    match meta(&doc) {
        None => Ok(None),
        Some(m) => groups_from_meta(m).map(Some),
    }
}

pub(super) fn same_apart_from_age(a: &str, b: &str) -> Result<bool, String> {
    let strip = |t: &str| -> Result<serde_json::Value, String> {
        let mut doc: serde_json::Value =
            serde_json::from_str(t).map_err(|e| format!("invalid JSON: {e}"))?;
        if let Some(m) = doc.get_mut("sops") {
            strip_age(m);
        }
        Ok(doc)
    };
    Ok(strip(a)? == strip(b)?)
}

fn tabs(line: &str) -> usize {
    line.len() - line.trim_start_matches('\t').len()
}

fn body(line: &str) -> &str {
    line.trim()
}

fn render(depth: usize, entries: &[AgeEntry], comma: &str) -> Result<String, String> {
    let t = |n: usize| "\t".repeat(n);
    let js = |s: &str| serde_json::to_string(s).map_err(|e| e.to_string());
    let mut s = format!("{}\"age\": [\n", t(depth));
    for (i, e) in entries.iter().enumerate() {
        let sep = if i + 1 < entries.len() { "," } else { "" };
        s.push_str(&format!(
            "{}{{\n{}\"recipient\": {},\n{}\"enc\": {}\n{}}}{sep}\n",
            t(depth + 1),
            t(depth + 2),
            js(&e.recipient)?,
            t(depth + 2),
            js(&e.enc)?,
            t(depth + 1),
        ));
    }
    s.push_str(&format!("{}]{comma}\n", t(depth)));
    Ok(s)
}

/// The `"age"` key at `depth` in `lines[from..to]`: its line range and trailing comma.
fn find_age(
    lines: &[&str],
    from: usize,
    to: usize,
    depth: usize,
) -> Option<(usize, usize, &'static str)> {
    let a =
        (from..to).find(|&i| tabs(lines[i]) == depth && body(lines[i]).starts_with("\"age\":"))?;
    let end = if body(lines[a]).ends_with('[') {
        (a + 1..to).find(|&i| tabs(lines[i]) == depth && body(lines[i]).starts_with(']'))?
    } else {
        a
    };
    let comma = if body(lines[end]).ends_with(',') {
        ","
    } else {
        ""
    };
    Some((a, end + 1, comma))
}

pub(super) fn write(text: &str, groups: &Groups) -> Result<String, String> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let s0 = lines
        .iter()
        .position(|l| tabs(l) == 1 && body(l) == "\"sops\": {")
        .ok_or("no sops object as sops writes it (tab-indented)")?;
    let s1 = (s0 + 1..lines.len())
        .find(|&i| tabs(lines[i]) == 1 && body(lines[i]).starts_with('}'))
        .ok_or("unterminated sops object")?;
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    let kg = (s0 + 1..s1)
        .find(|&i| tabs(lines[i]) == 2 && body(lines[i]).starts_with("\"key_groups\": ["));
    match kg {
        None => {
            let [entries] = groups.as_slice() else {
                return Err(
                    "the file has no key_groups but more than one group was asked for".into(),
                );
            };
            match find_age(&lines, s0 + 1, s1, 2) {
                Some((a, b, comma)) => {
                    let new = if entries.is_empty() {
                        String::new()
                    } else {
                        render(2, entries, comma)?
                    };
                    edits.push((a, b, new));
                }
                None if entries.is_empty() => {}
                None => {
                    let at = (s0 + 1..s1)
                        .find(|&i| {
                            tabs(lines[i]) == 2 && body(lines[i]).starts_with("\"lastmodified\"")
                        })
                        .ok_or("no lastmodified key in the sops object")?;
                    edits.push((at, at, render(2, entries, ",")?));
                }
            }
        }
        Some(k) => {
            let kend = (k + 1..s1)
                .find(|&i| tabs(lines[i]) == 2 && body(lines[i]).starts_with(']'))
                .ok_or("unterminated key_groups")?;
            let starts: Vec<usize> = (k + 1..kend)
                .filter(|&i| tabs(lines[i]) == 3 && body(lines[i]) == "{")
                .collect();
            if starts.len() != groups.len() {
                return Err(format!(
                    "found {} key groups in the text, expected {}",
                    starts.len(),
                    groups.len()
                ));
            }
            for (g, &gs) in starts.iter().enumerate() {
                let ge = (gs + 1..kend)
                    .find(|&i| tabs(lines[i]) == 3 && body(lines[i]).starts_with('}'))
                    .ok_or("unterminated key group")?;
                if groups[g].is_empty() {
                    return Err(format!("key group {} would have no age entries", g + 1));
                }
                match find_age(&lines, gs + 1, ge, 4) {
                    Some((a, b, comma)) => edits.push((a, b, render(4, &groups[g], comma)?)),
                    None => {
                        return Err(format!(
                            "key group {} has no age list to extend; use `sops updatekeys`",
                            g + 1
                        ))
                    }
                }
            }
        }
    }
    edits.sort_by_key(|e| e.0);
    let mut out = String::new();
    let mut i = 0;
    for (a, b, new) in edits {
        out.extend(lines[i..a].iter().copied());
        out.push_str(&new);
        i = b;
    }
    out.extend(lines[i..].iter().copied());
    Ok(out)
}
