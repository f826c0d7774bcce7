//! The age entries of a sops file's metadata: one `recipient`/`enc` pair per recipient, per key
//! group, read from and compared in the JSON form every store converts to.

/// One `recipient`/`enc` pair of a sops file's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgeEntry {
    pub recipient: String,
    pub enc: String,
}

/// Age entries per key group (one group when the file has no `key_groups`).
pub type Groups = Vec<Vec<AgeEntry>>;

/// Age entries from a sops metadata object (JSON form; YAML converts to it).
pub(super) fn groups_from_meta(meta: &serde_json::Value) -> Result<Groups, String> {
    fn entries(v: Option<&serde_json::Value>) -> Result<Vec<AgeEntry>, String> {
        let Some(v) = v.filter(|v| !v.is_null()) else {
            return Ok(Vec::new());
        };
        let arr = v.as_array().ok_or("sops.age is not a list")?;
        arr.iter()
            .map(|e| {
                let field = |k: &str| {
                    e.get(k)
                        .and_then(|s| s.as_str())
                        .map(str::to_string)
                        .ok_or_else(|| format!("an age entry has no {k}"))
                };
                Ok(AgeEntry {
                    recipient: field("recipient")?,
                    enc: field("enc")?,
                })
            })
            .collect()
    }
    match meta.get("key_groups").filter(|v| !v.is_null()) {
        Some(kg) => kg
            .as_array()
            .ok_or("sops.key_groups is not a list")?
            .iter()
            .map(|g| entries(g.get("age")))
            .collect(),
        None => Ok(vec![entries(meta.get("age"))?]),
    }
}

/// Removes every `age` list from sops metadata (for comparing everything else).
pub(super) fn strip_age(meta: &mut serde_json::Value) {
    if let Some(m) = meta.as_object_mut() {
        m.remove("age");
        if let Some(groups) = m.get_mut("key_groups").and_then(|g| g.as_array_mut()) {
            for g in groups {
                if let Some(g) = g.as_object_mut() {
                    g.remove("age");
                }
            }
        }
    }
}
