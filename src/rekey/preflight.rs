//! `vault pack` preflight: can each host's own key open the secrets meant for it?

/// What one host can decrypt.
#[derive(Debug, Clone, Default)]
pub struct PreflightReport {
    pub host: String,
}

pub fn preflight(
    _manifest: &crate::manifest::Manifest,
    _hosts: &[String],
) -> Result<Vec<PreflightReport>, super::Error> {
    Ok(Vec::new())
}
