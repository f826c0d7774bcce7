//! TODO
pub mod systemd;
