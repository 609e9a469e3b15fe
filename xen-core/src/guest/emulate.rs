//! Decoding the privileged instructions a PV guest still executes (trap-and-emulate).
//!
//! A guest kernel runs in ring 3, so `cpuid` (behind the forced-emulation prefix or CPUID
//! faulting), control- and debug-register moves, MSR accesses, port I/O, `cli`/`sti`, `int $n`
//! and a few others trap with #GP or #UD. The runtime fetches the bytes at the faulting RIP and
//! this decoder says what they are; anything it does not recognise is forwarded to the guest as
//! the original exception, as Xen does.

/// Longest x86 instruction.
pub const MAX_INSN: usize = 15;

/// Operand size of an I/O instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoSize {
    /// 8 bits (`al`).
    Byte,
    /// 16 bits (`ax`).
    Word,
    /// 32 bits (`eax`).
    Dword,
}

impl IoSize {
    /// Bytes transferred.
    pub fn bytes(self) -> u8 {
        match self {
            IoSize::Byte => 1,
            IoSize::Word => 2,
            IoSize::Dword => 4,
        }
    }
}

/// Where an I/O instruction's port number comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Port {
    /// An immediate byte.
    Imm(u8),
    /// The `dx` register.
    Dx,
}

/// A decoded instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `cpuid`.
    Cpuid,
    /// `rdmsr`.
    Rdmsr,
    /// `wrmsr`.
    Wrmsr,
    /// `rdtsc`.
    Rdtsc,
    /// `rdtscp`.
    Rdtscp,
    /// `mov %crN, %reg` (reg is a GPR number 0–15).
    MovFromCr {
        /// Control register.
        cr: u8,
        /// Destination GPR.
        gpr: u8,
    },
    /// `mov %reg, %crN`.
    MovToCr {
        /// Control register.
        cr: u8,
        /// Source GPR.
        gpr: u8,
    },
    /// `mov %drN, %reg`.
    MovFromDr {
        /// Debug register.
        dr: u8,
        /// Destination GPR.
        gpr: u8,
    },
    /// `mov %reg, %drN`.
    MovToDr {
        /// Debug register.
        dr: u8,
        /// Source GPR.
        gpr: u8,
    },
    /// `clts`.
    Clts,
    /// `wbinvd` (or `invd`).
    Wbinvd,
    /// `hlt`.
    Hlt,
    /// `cli`.
    Cli,
    /// `sti`.
    Sti,
    /// `in` to `al/ax/eax`.
    In(IoSize, Port),
    /// `out` from `al/ax/eax`.
    Out(IoSize, Port),
    /// `int $n` (the two-byte form).
    IntN(u8),
    /// `int3` (one byte).
    Int3,
    /// `into`.
    Into,
    /// `int1` / `icebp`.
    Int1,
    /// `xsetbv`.
    Xsetbv,
}

/// A decoded instruction and its length in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    /// What it is.
    pub op: Op,
    /// How many bytes it takes (prefixes included).
    pub len: usize,
}

/// Decodes the instruction at the start of `bytes`; `None` if it is not one the hypervisor
/// emulates (or the bytes run out).
pub fn decode(bytes: &[u8]) -> Option<Insn> {
    let mut i = 0;
    let mut opsize16 = false;
    let mut rex = 0u8;
    // Legacy prefixes, then an optional REX prefix right before the opcode.
    loop {
        let b = *bytes.get(i)?;
        match b {
            0x66 => opsize16 = true,
            0x67 | 0xf0 | 0xf2 | 0xf3 | 0x26 | 0x2e | 0x36 | 0x3e | 0x64 | 0x65 => {}
            _ => break,
        }
        i += 1;
        if i >= MAX_INSN {
            return None;
        }
    }
    if let Some(&b) = bytes.get(i)
        && (0x40..=0x4f).contains(&b)
    {
        rex = b;
        i += 1;
    }
    let r = |rex: u8| (rex >> 2) & 1;
    let bb = |rex: u8| rex & 1;
    let done = |op: Op, len: usize| (len <= MAX_INSN).then_some(Insn { op, len });
    let wide = if opsize16 {
        IoSize::Word
    } else {
        IoSize::Dword
    };
    let b0 = *bytes.get(i)?;
    match b0 {
        0xf4 => done(Op::Hlt, i + 1),
        0xfa => done(Op::Cli, i + 1),
        0xfb => done(Op::Sti, i + 1),
        0xcc => done(Op::Int3, i + 1),
        0xce => done(Op::Into, i + 1),
        0xf1 => done(Op::Int1, i + 1),
        0xcd => done(Op::IntN(*bytes.get(i + 1)?), i + 2),
        0xe4 => done(Op::In(IoSize::Byte, Port::Imm(*bytes.get(i + 1)?)), i + 2),
        0xe5 => done(Op::In(wide, Port::Imm(*bytes.get(i + 1)?)), i + 2),
        0xe6 => done(Op::Out(IoSize::Byte, Port::Imm(*bytes.get(i + 1)?)), i + 2),
        0xe7 => done(Op::Out(wide, Port::Imm(*bytes.get(i + 1)?)), i + 2),
        0xec => done(Op::In(IoSize::Byte, Port::Dx), i + 1),
        0xed => done(Op::In(wide, Port::Dx), i + 1),
        0xee => done(Op::Out(IoSize::Byte, Port::Dx), i + 1),
        0xef => done(Op::Out(wide, Port::Dx), i + 1),
        0x0f => {
            let b1 = *bytes.get(i + 1)?;
            match b1 {
                0xa2 => done(Op::Cpuid, i + 2),
                0x32 => done(Op::Rdmsr, i + 2),
                0x30 => done(Op::Wrmsr, i + 2),
                0x31 => done(Op::Rdtsc, i + 2),
                0x06 => done(Op::Clts, i + 2),
                0x08 | 0x09 => done(Op::Wbinvd, i + 2),
                0x01 => match *bytes.get(i + 2)? {
                    0xf9 => done(Op::Rdtscp, i + 3),
                    0xd1 => done(Op::Xsetbv, i + 3),
                    _ => None,
                },
                0x20..=0x23 => {
                    // mov to/from control/debug registers: always register-direct
                    // (the mod field is ignored by the CPU).
                    let modrm = *bytes.get(i + 2)?;
                    let n = ((modrm >> 3) & 7) | (r(rex) << 3);
                    let gpr = (modrm & 7) | (bb(rex) << 3);
                    let op = match b1 {
                        0x20 => Op::MovFromCr { cr: n, gpr },
                        0x22 => Op::MovToCr { cr: n, gpr },
                        0x21 => Op::MovFromDr { dr: n, gpr },
                        _ => Op::MovToDr { dr: n, gpr },
                    };
                    done(op, i + 3)
                }
                _ => None,
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(bytes: &[u8]) -> Option<(Op, usize)> {
        decode(bytes).map(|i| (i.op, i.len))
    }

    #[test]
    fn simple_opcodes() {
        assert_eq!(d(&[0x0f, 0xa2]), Some((Op::Cpuid, 2)));
        assert_eq!(d(&[0x0f, 0x32]), Some((Op::Rdmsr, 2)));
        assert_eq!(d(&[0x0f, 0x30, 0x90]), Some((Op::Wrmsr, 2)));
        assert_eq!(d(&[0xf4]), Some((Op::Hlt, 1)));
        assert_eq!(d(&[0xfa]), Some((Op::Cli, 1)));
        assert_eq!(d(&[0x0f, 0x06]), Some((Op::Clts, 2)));
        assert_eq!(d(&[0xcd, 0x80]), Some((Op::IntN(0x80), 2)));
        assert_eq!(d(&[0xcc]), Some((Op::Int3, 1)));
        assert_eq!(d(&[0x0f, 0x01, 0xf9]), Some((Op::Rdtscp, 3)));
        assert_eq!(d(&[0x90]), None);
        assert_eq!(d(&[0x0f, 0x0b]), None, "ud2 alone is not emulated");
    }

    #[test]
    fn control_registers_with_rex() {
        // mov %cr3, %rax
        assert_eq!(
            d(&[0x0f, 0x20, 0xd8]),
            Some((Op::MovFromCr { cr: 3, gpr: 0 }, 3))
        );
        // mov %cr0, %r12 (REX.B)
        assert_eq!(
            d(&[0x41, 0x0f, 0x20, 0xc4]),
            Some((Op::MovFromCr { cr: 0, gpr: 12 }, 4))
        );
        // mov %rbx, %cr8 (REX.R)
        assert_eq!(
            d(&[0x44, 0x0f, 0x22, 0xc3]),
            Some((Op::MovToCr { cr: 8, gpr: 3 }, 4))
        );
        // mov %dr7, %rcx
        assert_eq!(
            d(&[0x0f, 0x21, 0xf9]),
            Some((Op::MovFromDr { dr: 7, gpr: 1 }, 3))
        );
    }

    #[test]
    fn port_io_sizes_and_prefixes() {
        assert_eq!(
            d(&[0xe4, 0x61]),
            Some((Op::In(IoSize::Byte, Port::Imm(0x61)), 2))
        );
        assert_eq!(d(&[0x66, 0xed]), Some((Op::In(IoSize::Word, Port::Dx), 2)));
        assert_eq!(d(&[0xef]), Some((Op::Out(IoSize::Dword, Port::Dx), 1)));
        assert_eq!(
            d(&[0xe6, 0x80]),
            Some((Op::Out(IoSize::Byte, Port::Imm(0x80)), 2))
        );
        // Segment and lock prefixes are skipped and counted.
        assert_eq!(d(&[0x2e, 0x3e, 0xfa]), Some((Op::Cli, 3)));
    }

    #[test]
    fn truncated_and_overlong_input() {
        assert_eq!(d(&[]), None);
        assert_eq!(d(&[0x0f]), None);
        assert_eq!(d(&[0xcd]), None);
        assert_eq!(d(&[0x0f, 0x20]), None);
        assert_eq!(d(&[0x66; 20]), None);
        let mut long = vec![0x66u8; 14];
        long.extend([0x0f, 0xa2]);
        assert_eq!(d(&long), None, "more than 15 bytes is not an instruction");
    }
}
