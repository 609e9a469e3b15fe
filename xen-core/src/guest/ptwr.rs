//! Writable page tables (reference §9.7): decoding the instruction a guest used to write a
//! read-only L1 page-table entry, so the hypervisor can validate the new entry and perform the
//! write on the guest's behalf.
//!
//! Only the forms a kernel uses to store a page-table entry are recognised: `mov reg, mem`,
//! `mov imm32, mem`, `cmpxchg reg, mem` and `xchg reg, mem`, 4 or 8 bytes wide. Anything else
//! is left to fault into the guest.

/// What the instruction writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteKind {
    /// `mov %reg, mem`.
    Reg(u8),
    /// `mov $imm, mem` (the immediate, sign-extended to the operand size).
    Imm(u64),
    /// `cmpxchg %reg, mem`: stores `reg` if `mem == rax`, else loads `mem` into `rax`.
    Cmpxchg(u8),
    /// `xchg %reg, mem`: swaps.
    Xchg(u8),
}

/// A decoded page-table write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PteWrite {
    /// Instruction length in bytes.
    pub len: usize,
    /// Operand size: 4 or 8 bytes.
    pub size: u8,
    /// What is written.
    pub kind: WriteKind,
}

/// Bytes of ModRM, SIB and displacement after the opcode, for a memory operand; `None` for a
/// register operand or truncated input.
fn modrm_len(bytes: &[u8]) -> Option<usize> {
    let modrm = *bytes.first()?;
    let md = modrm >> 6;
    let rm = modrm & 7;
    if md == 3 {
        return None;
    }
    let mut n = 1;
    if rm == 4 {
        let sib = *bytes.get(1)?;
        n += 1;
        if md == 0 && sib & 7 == 5 {
            n += 4;
        }
    } else if md == 0 && rm == 5 {
        n += 4;
    }
    n += match md {
        1 => 1,
        2 => 4,
        _ => 0,
    };
    (bytes.len() >= n).then_some(n)
}

/// Decodes a page-table write at the start of `bytes`.
pub fn decode(bytes: &[u8]) -> Option<PteWrite> {
    let mut i = 0;
    loop {
        match *bytes.get(i)? {
            // lock, segment overrides
            0xf0 | 0x26 | 0x2e | 0x36 | 0x3e | 0x64 | 0x65 => i += 1,
            // operand-size (16-bit) and address-size overrides: not a PTE write
            0x66 | 0x67 => return None,
            _ => break,
        }
        if i >= 15 {
            return None;
        }
    }
    let mut rex = 0u8;
    if let Some(&b) = bytes.get(i)
        && (0x40..=0x4f).contains(&b)
    {
        rex = b;
        i += 1;
    }
    let size = if rex & 8 != 0 { 8 } else { 4 };
    let reg_of = |modrm: u8| ((modrm >> 3) & 7) | (((rex >> 2) & 1) << 3);
    let op = *bytes.get(i)?;
    let (kind, len) = match op {
        0x89 | 0x87 => {
            let modrm = *bytes.get(i + 1)?;
            let m = modrm_len(bytes.get(i + 1..)?)?;
            let reg = reg_of(modrm);
            let kind = if op == 0x89 {
                WriteKind::Reg(reg)
            } else {
                WriteKind::Xchg(reg)
            };
            (kind, i + 1 + m)
        }
        0xc7 => {
            let modrm = *bytes.get(i + 1)?;
            if (modrm >> 3) & 7 != 0 {
                return None;
            }
            let m = modrm_len(bytes.get(i + 1..)?)?;
            let at = i + 1 + m;
            let imm = i32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?);
            let imm = if size == 8 {
                imm as i64 as u64
            } else {
                u64::from(imm as u32)
            };
            (WriteKind::Imm(imm), at + 4)
        }
        0x0f if bytes.get(i + 1) == Some(&0xb1) => {
            let modrm = *bytes.get(i + 2)?;
            let m = modrm_len(bytes.get(i + 2..)?)?;
            (WriteKind::Cmpxchg(reg_of(modrm)), i + 2 + m)
        }
        _ => return None,
    };
    (len <= 15).then_some(PteWrite { len, size, kind })
}

/// Merges a `size`-byte value written at byte `offset` (0–7) of an 8-byte entry.
pub fn merge(old: u64, offset: u64, size: u8, value: u64) -> u64 {
    if size == 8 {
        return value;
    }
    let shift = (offset % 8) * 8;
    (old & !(0xffff_ffff << shift)) | ((value & 0xffff_ffff) << shift)
}

/// The `size`-byte part of an entry at byte `offset`.
pub fn part(entry: u64, offset: u64, size: u8) -> u64 {
    if size == 8 {
        entry
    } else {
        (entry >> ((offset % 8) * 8)) & 0xffff_ffff
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(b: &[u8]) -> Option<(usize, u8, WriteKind)> {
        decode(b).map(|w| (w.len, w.size, w.kind))
    }

    #[test]
    fn movs() {
        // mov %rax, (%rdi)
        assert_eq!(d(&[0x48, 0x89, 0x07]), Some((3, 8, WriteKind::Reg(0))));
        // mov %r9, 0x10(%rsi)
        assert_eq!(
            d(&[0x4c, 0x89, 0x4e, 0x10]),
            Some((4, 8, WriteKind::Reg(9)))
        );
        // mov %ecx, (%rax,%rbx,8)
        assert_eq!(d(&[0x89, 0x0c, 0xd8]), Some((3, 4, WriteKind::Reg(1))));
        // mov %rdx, 0x12345678(%rip)
        assert_eq!(
            d(&[0x48, 0x89, 0x15, 0x78, 0x56, 0x34, 0x12]),
            Some((7, 8, WriteKind::Reg(2)))
        );
        // mov %rax, 0x100(%rbp) (disp32)
        assert_eq!(
            d(&[0x48, 0x89, 0x85, 0, 1, 0, 0]),
            Some((7, 8, WriteKind::Reg(0)))
        );
        // mov %rax, (,%rcx,8) with SIB base 5 and mod 0: disp32
        assert_eq!(
            d(&[0x48, 0x89, 0x04, 0xcd, 0, 0, 0, 0]),
            Some((8, 8, WriteKind::Reg(0)))
        );
        // movq $-1, (%rdi): sign-extended
        assert_eq!(
            d(&[0x48, 0xc7, 0x07, 0xff, 0xff, 0xff, 0xff]),
            Some((7, 8, WriteKind::Imm(u64::MAX)))
        );
        // movl $1, 8(%rdi)
        assert_eq!(
            d(&[0xc7, 0x47, 0x08, 1, 0, 0, 0]),
            Some((7, 4, WriteKind::Imm(1)))
        );
    }

    #[test]
    fn atomics() {
        // lock cmpxchg %rdx, (%rdi)
        assert_eq!(
            d(&[0xf0, 0x48, 0x0f, 0xb1, 0x17]),
            Some((5, 8, WriteKind::Cmpxchg(2)))
        );
        // xchg %rax, (%rdi)
        assert_eq!(d(&[0x48, 0x87, 0x07]), Some((3, 8, WriteKind::Xchg(0))));
    }

    #[test]
    fn not_pte_writes() {
        assert_eq!(d(&[0x48, 0x89, 0xc7]), None, "register destination");
        assert_eq!(d(&[0x66, 0x89, 0x07]), None, "16-bit");
        assert_eq!(d(&[0x48, 0x8b, 0x07]), None, "a load");
        assert_eq!(d(&[0x48, 0xc7, 0x47]), None, "truncated");
        assert_eq!(d(&[0xc7, 0x0f, 0, 0, 0, 0]), None, "c7 /1 is not mov");
        assert_eq!(d(&[]), None);
    }

    #[test]
    fn merging_halves() {
        let old = 0x1111_2222_3333_4444;
        assert_eq!(merge(old, 0, 4, 0xaaaa_bbbb), 0x1111_2222_aaaa_bbbb);
        assert_eq!(merge(old, 4, 4, 0xaaaa_bbbb), 0xaaaa_bbbb_3333_4444);
        assert_eq!(merge(old, 0, 8, 5), 5);
        assert_eq!(part(old, 4, 4), 0x1111_2222);
        assert_eq!(part(old, 0, 8), old);
    }
}
