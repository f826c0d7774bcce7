//! ELF headers, as far as telling whether a file is a statically linked executable for an
//! architecture NixOS installers exist for.

/// CPU architectures NixOS installers exist for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }
    pub fn from_name(s: &str) -> Option<Arch> {
        let s = s.to_ascii_lowercase();
        if s.contains("x86_64") || s.contains("x86-64") || s.contains("amd64") {
            Some(Arch::X86_64)
        } else if s.contains("aarch64") || s.contains("arm64") {
            Some(Arch::Aarch64)
        } else {
            None
        }
    }
}

/// Why a file is not a static executable vault can carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not an executable of a known architecture; the reason.
    Not(String),
    /// It needs a program interpreter (it is dynamically linked).
    Dynamic,
}

/// The architecture of a statically linked ELF executable; refuses anything else.
pub fn static_arch(b: &[u8]) -> Result<Arch, Refusal> {
    let bad = |why: &str| Refusal::Not(why.into());
    if b.len() < 64 || &b[..4] != b"\x7fELF" {
        return Err(bad("it is not an ELF executable"));
    }
    if b[4] != 2 || b[5] != 1 {
        return Err(bad("it is not a 64-bit little-endian ELF file"));
    }
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
    let e_type = u16_at(16);
    if e_type != 2 && e_type != 3 {
        return Err(bad("it is not an ELF executable (wrong e_type)"));
    }
    let arch = match u16_at(18) {
        62 => Arch::X86_64,
        183 => Arch::Aarch64,
        m => {
            return Err(bad(&format!(
                "its machine type {m} is neither x86_64 nor aarch64"
            )))
        }
    };
    let phoff = u64::from_le_bytes(b[32..40].try_into().unwrap_or_default());
    let phentsize = u64::from(u16_at(54));
    let phnum = u64::from(u16_at(56));
    if phentsize < 56 || phnum == 0 {
        return Err(bad("it has no program headers"));
    }
    for i in 0..phnum {
        let off = phoff
            .checked_add(i * phentsize)
            .and_then(|o| usize::try_from(o).ok())
            .filter(|o| o.checked_add(4).is_some_and(|e| e <= b.len()))
            .ok_or_else(|| bad("its program headers lie outside the file"))?;
        let p_type = u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]]);
        // PT_INTERP: the program needs a loader (ld-linux), i.e. it is dynamically linked.
        if p_type == 3 {
            return Err(Refusal::Dynamic);
        }
    }
    Ok(arch)
}
