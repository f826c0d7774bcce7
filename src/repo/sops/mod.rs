//! sops files and their `.sops.yaml`.
//!
//! - [`config`]: the creation rules of `.sops.yaml`, read.
//! - [`splice`], [`rule_choice`]: adding and removing a host's recipient in `.sops.yaml` as text
//!   (comments, anchors and order kept).
//! - [`format`]: the stores (YAML, JSON, dotenv, INI) with [`yaml`], [`json`] and [`flat`];
//!   [`entries`]: the age entries of their metadata.

pub mod config;
pub mod entries;
mod flat;
pub mod format;
mod json;
pub mod rule_choice;
pub mod splice;
mod yaml;
