//! `pack --kdf-calibrate`: Argon2id parameters that take a chosen time on this machine.

use age_core::secrecy::SecretString;

use crate::bundle::{self, KdfParams};
use crate::{Error, Result};

/// The outcome of [`calibrate_kdf`].
#[derive(Debug, Clone, Copy)]
pub struct Calibration {
    pub params: KdfParams,
    /// Seconds one derivation took on this machine with `params`.
    pub seconds: f64,
    /// The passes the target time called for, when more than an unlocking vault accepts
    /// ([`KdfLimits`]' pass and work caps): `params.t` is the cap, and `seconds` is short of
    /// the target.
    ///
    /// [`KdfLimits`]: bundle::argon2id::KdfLimits
    pub capped_from: Option<u32>,
    /// The target time called for less work than [`KdfParams::DEFAULT`]: memory and passes
    /// were raised to the default's, so the settings are never weaker than what `pack` uses
    /// without calibration (and refuses below).
    pub raised: bool,
}

/// Chooses Argon2id parameters whose derivation takes about `target_secs` on this machine:
/// the memory first (more memory is what makes a guess expensive on a GPU), up to
/// `max_m_kib`, then passes. Lanes stay at the default, so the key does not depend on the
/// unlocking machine's cores. Costs a few derivations (about 3× the target).
pub fn calibrate_kdf(target_secs: f64, max_m_kib: u32) -> Result<Calibration> {
    const MIN_M_KIB: u32 = 64 * 1024;
    let p = KdfParams::DEFAULT.p;
    let time = |params: KdfParams| -> Result<f64> {
        let start = std::time::Instant::now();
        let pass = SecretString::from("calibration".to_owned());
        bundle::argon2id::derive_key(&pass, &[0u8; bundle::argon2id::SALT_LEN], params).map_err(
            |e| Error::Refused {
                why: format!("Argon2id with {params:?} failed: {e}"),
                hint: Some("choose a smaller --target-memory".into()),
            },
        )?;
        Ok(start.elapsed().as_secs_f64())
    };
    let max_m = max_m_kib.max(MIN_M_KIB);
    let d = KdfParams::DEFAULT;
    // Never less memory than the default when the cap allows it.
    let floor_m = d.m_kib.min(max_m).max(MIN_M_KIB);
    // One pass at the largest memory allowed: the unit cost of a pass.
    let mut m = max_m;
    let one = time(KdfParams { m_kib: m, t: 1, p })?;
    let mut raised = false;
    let mut t = if one > target_secs {
        // Even one pass is too slow: less memory, one pass (time is linear in memory).
        let want = ((f64::from(m) * target_secs / one) as u32).clamp(MIN_M_KIB, max_m);
        m = want.max(floor_m);
        raised = m > want;
        1
    } else {
        ((target_secs / one).round() as u32).max(1)
    };
    // No less work per guess than the default either (memory × passes), whatever the time.
    let default_work = u64::from(d.m_kib) * u64::from(d.t);
    if m >= d.m_kib && u64::from(m / 1024 * 1024) * u64::from(t) < default_work {
        t = u32::try_from(default_work.div_ceil(u64::from(m / 1024 * 1024))).unwrap_or(u32::MAX);
        raised = true;
    }
    // Rounded to whole MiB, as the CLI shows it; no more passes than an unlocking vault
    // accepts, by its pass cap and its work cap (memory × passes).
    let m_kib = m / 1024 * 1024;
    let limits = bundle::argon2id::KdfLimits::for_this_machine();
    let max_t = limits
        .max_t
        .min(u32::try_from(limits.max_work / u64::from(m_kib)).unwrap_or(u32::MAX));
    let capped_from = (t > max_t).then_some(t);
    let t = t.min(max_t);
    let params = KdfParams { m_kib, t, p };
    let seconds = time(params)?;
    Ok(Calibration {
        params,
        seconds,
        capped_from,
        raised,
    })
}
