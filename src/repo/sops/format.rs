//! The stores of sops files (YAML, JSON and binary, dotenv, INI): reading their age entries and
//! splicing new ones in, each store as sops writes it.

use std::path::Path;

use super::entries::Groups;
use super::{flat, json, yaml};

/// The store a sops file uses, by extension, as sops decides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    /// JSON, and sops's "binary" files (a JSON document with a `data` key).
    Json,
    Dotenv,
    Ini,
}

impl Format {
    pub fn of(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some("yaml" | "yml") => Format::Yaml,
            Some("env") => Format::Dotenv,
            Some("ini") => Format::Ini,
            _ => Format::Json,
        }
    }

    /// The file's age entries, or `None` if it is not a sops-encrypted file of this format.
    pub fn read(self, text: &str) -> Result<Option<Groups>, String> {
        match self {
            Format::Yaml => yaml::read(text),
            Format::Json => json::read(text),
            Format::Dotenv => flat::read(text, flat::Flavor::Dotenv),
            Format::Ini => flat::read(text, flat::Flavor::Ini),
        }
    }

    pub fn write(self, text: &str, groups: &Groups) -> Result<String, String> {
        match self {
            Format::Yaml => yaml::write(text, groups),
            Format::Json => json::write(text, groups),
            Format::Dotenv => flat::write(text, groups, flat::Flavor::Dotenv),
            Format::Ini => flat::write(text, groups, flat::Flavor::Ini),
        }
    }

    /// Whether two versions differ only in their age entries.
    pub fn same_apart_from_age(self, a: &str, b: &str) -> Result<bool, String> {
        match self {
            Format::Yaml => yaml::same_apart_from_age(a, b),
            Format::Json => json::same_apart_from_age(a, b),
            Format::Dotenv => Ok(flat::same_apart_from_age(a, b, flat::Flavor::Dotenv)),
            Format::Ini => Ok(flat::same_apart_from_age(a, b, flat::Flavor::Ini)),
        }
    }
}
