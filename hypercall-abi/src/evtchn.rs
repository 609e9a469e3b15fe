//! Event channels: `event_channel_op` (hypercall 32) commands and argument structs, VIRQs, and
//! 2-level / FIFO constants (reference §10).

use crate::types::{DomidT, EvtchnPort};

/// `EVTCHNOP_bind_interdomain` (`evtchn_bind_interdomain`).
pub const EVTCHNOP_BIND_INTERDOMAIN: u32 = 0;
/// `EVTCHNOP_bind_virq` (`evtchn_bind_virq`).
pub const EVTCHNOP_BIND_VIRQ: u32 = 1;
/// `EVTCHNOP_bind_pirq` (`evtchn_bind_pirq`).
pub const EVTCHNOP_BIND_PIRQ: u32 = 2;
/// `EVTCHNOP_close` (`evtchn_close`).
pub const EVTCHNOP_CLOSE: u32 = 3;
/// `EVTCHNOP_send` (`evtchn_send`).
pub const EVTCHNOP_SEND: u32 = 4;
/// `EVTCHNOP_status` (`evtchn_status`).
pub const EVTCHNOP_STATUS: u32 = 5;
/// `EVTCHNOP_alloc_unbound` (`evtchn_alloc_unbound`).
pub const EVTCHNOP_ALLOC_UNBOUND: u32 = 6;
/// `EVTCHNOP_bind_ipi` (`evtchn_bind_ipi`).
pub const EVTCHNOP_BIND_IPI: u32 = 7;
/// `EVTCHNOP_bind_vcpu` (`evtchn_bind_vcpu`).
pub const EVTCHNOP_BIND_VCPU: u32 = 8;
/// `EVTCHNOP_unmask` (`evtchn_unmask`).
pub const EVTCHNOP_UNMASK: u32 = 9;
/// `EVTCHNOP_reset` (`evtchn_reset`).
pub const EVTCHNOP_RESET: u32 = 10;
/// `EVTCHNOP_init_control` (`evtchn_init_control`, FIFO ABI).
pub const EVTCHNOP_INIT_CONTROL: u32 = 11;
/// `EVTCHNOP_expand_array` (`evtchn_expand_array`, FIFO ABI).
pub const EVTCHNOP_EXPAND_ARRAY: u32 = 12;
/// `EVTCHNOP_set_priority` (`evtchn_set_priority`, FIFO ABI).
pub const EVTCHNOP_SET_PRIORITY: u32 = 13;
/// `EVTCHNOP_reset_cont`: Xen-internal continuation of reset.
pub const EVTCHNOP_RESET_CONT: u32 = 14;

code_enum! {
    /// `event_channel_op` commands.
    pub enum EvtchnCmd: u32 ["event_channel_op command"] {
        /// Connect to a remote unbound port.
        BindInterdomain = EVTCHNOP_BIND_INTERDOMAIN => "EVTCHNOP_bind_interdomain",
        /// Bind a VIRQ.
        BindVirq = EVTCHNOP_BIND_VIRQ => "EVTCHNOP_bind_virq",
        /// Bind a physical IRQ.
        BindPirq = EVTCHNOP_BIND_PIRQ => "EVTCHNOP_bind_pirq",
        /// Close a port.
        Close = EVTCHNOP_CLOSE => "EVTCHNOP_close",
        /// Notify.
        Send = EVTCHNOP_SEND => "EVTCHNOP_send",
        /// Query a port.
        Status = EVTCHNOP_STATUS => "EVTCHNOP_status",
        /// Allocate an unbound port.
        AllocUnbound = EVTCHNOP_ALLOC_UNBOUND => "EVTCHNOP_alloc_unbound",
        /// Bind an IPI.
        BindIpi = EVTCHNOP_BIND_IPI => "EVTCHNOP_bind_ipi",
        /// Re-target a port to another vCPU.
        BindVcpu = EVTCHNOP_BIND_VCPU => "EVTCHNOP_bind_vcpu",
        /// Unmask a port.
        Unmask = EVTCHNOP_UNMASK => "EVTCHNOP_unmask",
        /// Close all ports.
        Reset = EVTCHNOP_RESET => "EVTCHNOP_reset",
        /// Switch to FIFO.
        InitControl = EVTCHNOP_INIT_CONTROL => "EVTCHNOP_init_control",
        /// Add a FIFO event-array page.
        ExpandArray = EVTCHNOP_EXPAND_ARRAY => "EVTCHNOP_expand_array",
        /// FIFO priority.
        SetPriority = EVTCHNOP_SET_PRIORITY => "EVTCHNOP_set_priority",
        /// Internal continuation.
        ResetCont = EVTCHNOP_RESET_CONT => "EVTCHNOP_reset_cont",
    }
    try_from: [u64];
}

/// `EVTCHN_2L_NR_CHANNELS`: ports of the 2-level ABI on x86-64 (64 × 64).
pub const EVTCHN_2L_NR_CHANNELS: u32 = 4096;
/// Bits per 2-level bitmap word.
pub const EVTCHN_2L_BITS_PER_WORD: u32 = 64;

/// Word index and bit mask of `port` in the 2-level `evtchn_pending`/`evtchn_mask` arrays and the
/// matching `evtchn_pending_sel` bit (the word index). `None` past the 4096 ports.
#[must_use]
pub const fn evtchn_2l_position(port: EvtchnPort) -> Option<(usize, u64)> {
    if port >= EVTCHN_2L_NR_CHANNELS {
        return None;
    }
    let word = (port / EVTCHN_2L_BITS_PER_WORD) as usize;
    let bit = 1u64 << (port % EVTCHN_2L_BITS_PER_WORD);
    Some((word, bit))
}

/// `BIND_PIRQ__WILL_SHARE`: the PIRQ may be shared.
pub const BIND_PIRQ_WILL_SHARE: u32 = 1;

/// `evtchn_bind_interdomain` (12 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnBindInterdomain {
    /// IN: remote domain.
    pub remote_dom: DomidT,
    /// Padding; zero.
    pub _pad0: u16,
    /// IN: remote port (must be unbound and accept the caller).
    pub remote_port: EvtchnPort,
    /// OUT: the new local port.
    pub local_port: EvtchnPort,
}

assert_layout!(EvtchnBindInterdomain, size = 12, align = 4, {
    remote_dom: u16 = 0,
    _pad0: u16 = 2,
    remote_port: u32 = 4,
    local_port: u32 = 8,
});

/// `evtchn_bind_virq` (12 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnBindVirq {
    /// IN: `VIRQ_*`.
    pub virq: u32,
    /// IN: vCPU to notify.
    pub vcpu: u32,
    /// OUT: the new port.
    pub port: EvtchnPort,
}

assert_layout!(EvtchnBindVirq, size = 12, align = 4, {
    virq: u32 = 0,
    vcpu: u32 = 4,
    port: u32 = 8,
});

/// `evtchn_bind_pirq` (12 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnBindPirq {
    /// IN: physical IRQ.
    pub pirq: u32,
    /// IN: `BIND_PIRQ__WILL_SHARE`.
    pub flags: u32,
    /// OUT: the new port.
    pub port: EvtchnPort,
}

assert_layout!(EvtchnBindPirq, size = 12, align = 4, {
    pirq: u32 = 0,
    flags: u32 = 4,
    port: u32 = 8,
});

/// `evtchn_close` (4 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnClose {
    /// Port to close.
    pub port: EvtchnPort,
}

assert_layout!(EvtchnClose, size = 4, align = 4, { port: u32 = 0 });

/// `evtchn_send` (4 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnSend {
    /// Port to notify through.
    pub port: EvtchnPort,
}

assert_layout!(EvtchnSend, size = 4, align = 4, { port: u32 = 0 });

/// `EVTCHNSTAT_closed`: port not in use.
pub const EVTCHNSTAT_CLOSED: u32 = 0;
/// `EVTCHNSTAT_unbound`: waiting for a remote domain to bind.
pub const EVTCHNSTAT_UNBOUND: u32 = 1;
/// `EVTCHNSTAT_interdomain`: connected to a remote port.
pub const EVTCHNSTAT_INTERDOMAIN: u32 = 2;
/// `EVTCHNSTAT_pirq`: bound to a physical IRQ.
pub const EVTCHNSTAT_PIRQ: u32 = 3;
/// `EVTCHNSTAT_virq`: bound to a VIRQ.
pub const EVTCHNSTAT_VIRQ: u32 = 4;
/// `EVTCHNSTAT_ipi`: bound to an IPI.
pub const EVTCHNSTAT_IPI: u32 = 5;

code_enum! {
    /// `evtchn_status.status` values.
    pub enum EvtchnStat: u32 ["event channel status"] {
        /// Closed.
        Closed = EVTCHNSTAT_CLOSED => "EVTCHNSTAT_closed",
        /// Unbound.
        Unbound = EVTCHNSTAT_UNBOUND => "EVTCHNSTAT_unbound",
        /// Interdomain.
        Interdomain = EVTCHNSTAT_INTERDOMAIN => "EVTCHNSTAT_interdomain",
        /// PIRQ.
        Pirq = EVTCHNSTAT_PIRQ => "EVTCHNSTAT_pirq",
        /// VIRQ.
        Virq = EVTCHNSTAT_VIRQ => "EVTCHNSTAT_virq",
        /// IPI.
        Ipi = EVTCHNSTAT_IPI => "EVTCHNSTAT_ipi",
    }
    try_from: [u64];
}

/// `evtchn_status` (24 bytes).
///
/// The trailing union (8 bytes at offset 16) is kept as two words: `unbound.dom` and
/// `interdomain.dom` are the low 16 bits of `u[0]`, `interdomain.port` is `u[1]`, and `pirq` /
/// `virq` are `u[0]`. Use the accessors.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnStatus {
    /// IN: domain to query (`DOMID_SELF` or privileged).
    pub dom: DomidT,
    /// Padding; zero.
    pub _pad0: u16,
    /// IN: port to query.
    pub port: EvtchnPort,
    /// OUT: `EVTCHNSTAT_*`.
    pub status: u32,
    /// OUT: vCPU the port notifies.
    pub vcpu: u32,
    /// OUT: the per-status union, see above.
    pub u: [u32; 2],
}

assert_layout!(EvtchnStatus, size = 24, align = 4, {
    dom: u16 = 0,
    _pad0: u16 = 2,
    port: u32 = 4,
    status: u32 = 8,
    vcpu: u32 = 12,
    u: [u32; 2] = 16,
});

impl EvtchnStatus {
    /// `u.unbound.dom` (offset 16): the domain allowed to bind.
    #[must_use]
    pub const fn unbound_dom(&self) -> DomidT {
        (self.u[0] & 0xFFFF) as u16
    }

    /// `u.interdomain.{dom, port}` (offsets 16 and 20): the remote end.
    #[must_use]
    pub const fn interdomain(&self) -> (DomidT, EvtchnPort) {
        ((self.u[0] & 0xFFFF) as u16, self.u[1])
    }

    /// `u.pirq` (offset 16).
    #[must_use]
    pub const fn pirq(&self) -> u32 {
        self.u[0]
    }

    /// `u.virq` (offset 16).
    #[must_use]
    pub const fn virq(&self) -> u32 {
        self.u[0]
    }

    /// Fills the union for an unbound port.
    pub const fn set_unbound(&mut self, dom: DomidT) {
        self.u = [dom as u32, 0];
    }

    /// Fills the union for an interdomain port.
    pub const fn set_interdomain(&mut self, dom: DomidT, port: EvtchnPort) {
        self.u = [dom as u32, port];
    }

    /// Fills the union for a PIRQ or VIRQ port.
    pub const fn set_irq(&mut self, irq: u32) {
        self.u = [irq, 0];
    }
}

/// `evtchn_alloc_unbound` (8 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnAllocUnbound {
    /// IN: domain in which to allocate (`DOMID_SELF` unless privileged).
    pub dom: DomidT,
    /// IN: domain that may bind later.
    pub remote_dom: DomidT,
    /// OUT: the new port.
    pub port: EvtchnPort,
}

assert_layout!(EvtchnAllocUnbound, size = 8, align = 4, {
    dom: u16 = 0,
    remote_dom: u16 = 2,
    port: u32 = 4,
});

/// `evtchn_bind_ipi` (8 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnBindIpi {
    /// IN: vCPU to notify.
    pub vcpu: u32,
    /// OUT: the new port.
    pub port: EvtchnPort,
}

assert_layout!(EvtchnBindIpi, size = 8, align = 4, {
    vcpu: u32 = 0,
    port: u32 = 4,
});

/// `evtchn_bind_vcpu` (8 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnBindVcpu {
    /// Port to re-target.
    pub port: EvtchnPort,
    /// New vCPU.
    pub vcpu: u32,
}

assert_layout!(EvtchnBindVcpu, size = 8, align = 4, {
    port: u32 = 0,
    vcpu: u32 = 4,
});

/// `evtchn_unmask` (4 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnUnmask {
    /// Port to unmask.
    pub port: EvtchnPort,
}

assert_layout!(EvtchnUnmask, size = 4, align = 4, { port: u32 = 0 });

/// `evtchn_reset` (2 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnReset {
    /// Domain whose ports are closed.
    pub dom: DomidT,
}

assert_layout!(EvtchnReset, size = 2, align = 2, { dom: u16 = 0 });

/// `evtchn_init_control` (24 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnInitControl {
    /// IN: frame of the control block.
    pub control_gfn: u64,
    /// IN: byte offset of the control block in the frame.
    pub offset: u32,
    /// IN: vCPU the block belongs to.
    pub vcpu: u32,
    /// OUT: `EVTCHN_FIFO_LINK_BITS`.
    pub link_bits: u8,
    /// Padding; zero.
    pub _pad0: [u8; 7],
}

assert_layout!(EvtchnInitControl, size = 24, align = 8, {
    control_gfn: u64 = 0,
    offset: u32 = 8,
    vcpu: u32 = 12,
    link_bits: u8 = 16,
    _pad0: [u8; 7] = 17,
});

/// `evtchn_expand_array` (8 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnExpandArray {
    /// Frame of the new event-array page.
    pub array_gfn: u64,
}

assert_layout!(EvtchnExpandArray, size = 8, align = 8, { array_gfn: u64 = 0 });

/// `evtchn_set_priority` (8 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnSetPriority {
    /// Port.
    pub port: EvtchnPort,
    /// Priority 0 (highest) – 15.
    pub priority: u32,
}

assert_layout!(EvtchnSetPriority, size = 8, align = 4, {
    port: u32 = 0,
    priority: u32 = 4,
});

/// `evtchn_op` (28 bytes): argument of the old `event_channel_op_compat` (hypercall 16).
/// The union at offset 4 holds one of the original (4-byte aligned) argument structs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnOpCompat {
    /// `EVTCHNOP_*`.
    pub cmd: u32,
    /// The argument struct's bytes, as 32-bit words.
    pub u: [u32; 6],
}

assert_layout!(EvtchnOpCompat, size = 28, align = 4, {
    cmd: u32 = 0,
    u: [u32; 6] = 4,
});

// ---------------------------------------------------------------------------------------------
// VIRQs (reference §10.2)

/// `VIRQ_TIMER`: timer expiry (per-vCPU).
pub const VIRQ_TIMER: u32 = 0;
/// `VIRQ_DEBUG`: dump debug info (per-vCPU).
pub const VIRQ_DEBUG: u32 = 1;
/// `VIRQ_CONSOLE`: emergency console input (global, dom0).
pub const VIRQ_CONSOLE: u32 = 2;
/// `VIRQ_DOM_EXC`: a domain had an exceptional event (global, dom0).
pub const VIRQ_DOM_EXC: u32 = 3;
/// `VIRQ_TBUF`: trace buffers have data (global, dom0).
pub const VIRQ_TBUF: u32 = 4;
/// `VIRQ_DEBUGGER`: a domain paused for debugging (global, dom0).
pub const VIRQ_DEBUGGER: u32 = 6;
/// `VIRQ_XENOPROF`: profiling sample (per-vCPU).
pub const VIRQ_XENOPROF: u32 = 7;
/// `VIRQ_CON_RING`: console ring has data (global, dom0).
pub const VIRQ_CON_RING: u32 = 8;
/// `VIRQ_PCPU_STATE`: physical CPU state change (global, dom0).
pub const VIRQ_PCPU_STATE: u32 = 9;
/// `VIRQ_MEM_EVENT`: memory event (global, dom0).
pub const VIRQ_MEM_EVENT: u32 = 10;
/// `VIRQ_ARGO`: Argo message (global).
pub const VIRQ_ARGO: u32 = 11;
/// `VIRQ_ENOMEM`: hypervisor heap low (global, dom0).
pub const VIRQ_ENOMEM: u32 = 12;
/// `VIRQ_XENPMU`: PMU interrupt (per-vCPU).
pub const VIRQ_XENPMU: u32 = 13;
/// `VIRQ_ARCH_0`: first architecture-specific VIRQ.
pub const VIRQ_ARCH_0: u32 = 16;
/// `VIRQ_ARCH_7`: last architecture-specific VIRQ.
pub const VIRQ_ARCH_7: u32 = 23;
/// `VIRQ_MCA`: x86 machine check (`VIRQ_ARCH_0`; global, dom0).
pub const VIRQ_MCA: u32 = VIRQ_ARCH_0;
/// `NR_VIRQS`: VIRQ numbers are below this.
pub const NR_VIRQS: u32 = 24;

code_enum! {
    /// The named VIRQs (5 and 14–15 are unused; `VIRQ_ARCH_1..7` have no x86 meaning).
    pub enum Virq: u32 ["VIRQ"] {
        /// Timer.
        Timer = VIRQ_TIMER => "VIRQ_TIMER",
        /// Debug.
        Debug = VIRQ_DEBUG => "VIRQ_DEBUG",
        /// Emergency console.
        Console = VIRQ_CONSOLE => "VIRQ_CONSOLE",
        /// Domain exception.
        DomExc = VIRQ_DOM_EXC => "VIRQ_DOM_EXC",
        /// Trace buffers.
        Tbuf = VIRQ_TBUF => "VIRQ_TBUF",
        /// Debugger.
        Debugger = VIRQ_DEBUGGER => "VIRQ_DEBUGGER",
        /// Profiling.
        Xenoprof = VIRQ_XENOPROF => "VIRQ_XENOPROF",
        /// Console ring.
        ConRing = VIRQ_CON_RING => "VIRQ_CON_RING",
        /// pCPU state.
        PcpuState = VIRQ_PCPU_STATE => "VIRQ_PCPU_STATE",
        /// Memory event.
        MemEvent = VIRQ_MEM_EVENT => "VIRQ_MEM_EVENT",
        /// Argo.
        Argo = VIRQ_ARGO => "VIRQ_ARGO",
        /// Heap low.
        Enomem = VIRQ_ENOMEM => "VIRQ_ENOMEM",
        /// PMU.
        Xenpmu = VIRQ_XENPMU => "VIRQ_XENPMU",
        /// Machine check.
        Mca = VIRQ_MCA => "VIRQ_MCA",
    }
    try_from: [u64];
}

impl Virq {
    /// True for VIRQs bound once per vCPU; false for global ones (bound once, on vCPU 0).
    #[must_use]
    pub const fn is_per_vcpu(self) -> bool {
        matches!(
            self,
            Self::Timer | Self::Debug | Self::Xenoprof | Self::Xenpmu
        )
    }
}

// ---------------------------------------------------------------------------------------------
// FIFO ABI (reference §10.4)

/// `EVTCHN_FIFO_LINK_BITS`: width of the link field.
pub const EVTCHN_FIFO_LINK_BITS: u32 = 17;
/// `EVTCHN_FIFO_NR_CHANNELS`: ports of the FIFO ABI.
pub const EVTCHN_FIFO_NR_CHANNELS: u32 = 1 << EVTCHN_FIFO_LINK_BITS;
/// `EVTCHN_FIFO_PENDING`: event-word bit.
pub const EVTCHN_FIFO_PENDING: u32 = 31;
/// `EVTCHN_FIFO_MASKED`: event-word bit.
pub const EVTCHN_FIFO_MASKED: u32 = 30;
/// `EVTCHN_FIFO_LINKED`: event-word bit.
pub const EVTCHN_FIFO_LINKED: u32 = 29;
/// `EVTCHN_FIFO_BUSY`: event-word bit.
pub const EVTCHN_FIFO_BUSY: u32 = 28;
/// `EVTCHN_FIFO_LINK_MASK`: next-port field of an event word.
pub const EVTCHN_FIFO_LINK_MASK: u32 = (1 << EVTCHN_FIFO_LINK_BITS) - 1;
/// `EVTCHN_FIFO_PRIORITY_MAX`: highest priority.
pub const EVTCHN_FIFO_PRIORITY_MAX: u32 = 0;
/// `EVTCHN_FIFO_PRIORITY_DEFAULT`: default priority.
pub const EVTCHN_FIFO_PRIORITY_DEFAULT: u32 = 7;
/// `EVTCHN_FIFO_PRIORITY_MIN`: lowest priority.
pub const EVTCHN_FIFO_PRIORITY_MIN: u32 = 15;
/// `EVTCHN_FIFO_MAX_QUEUES`: queues per vCPU.
pub const EVTCHN_FIFO_MAX_QUEUES: usize = 16;
/// Event words per 4 KiB event-array page.
pub const EVTCHN_FIFO_EVENT_WORDS_PER_PAGE: u32 = 1024;

/// `evtchn_fifo_control_block` (72 bytes; reference §10.4).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnFifoControlBlock {
    /// Bitmap of non-empty queues.
    pub ready: u32,
    /// Reserved; zero.
    pub _rsvd: u32,
    /// Queue heads, one per priority.
    pub head: [u32; EVTCHN_FIFO_MAX_QUEUES],
}

assert_layout!(EvtchnFifoControlBlock, size = 72, align = 4, {
    ready: u32 = 0,
    _rsvd: u32 = 4,
    head: [u32; 16] = 8,
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_level_positions() {
        assert_eq!(evtchn_2l_position(0), Some((0, 1)));
        assert_eq!(evtchn_2l_position(65), Some((1, 2)));
        assert_eq!(evtchn_2l_position(4095), Some((63, 1 << 63)));
        assert_eq!(evtchn_2l_position(4096), None);
    }

    #[test]
    fn status_union_views() {
        let mut s = EvtchnStatus::default();
        s.set_interdomain(0, 17);
        assert_eq!(s.interdomain(), (0, 17));
        s.set_unbound(5);
        assert_eq!(s.unbound_dom(), 5);
        s.set_irq(0x33);
        assert_eq!((s.pirq(), s.virq()), (0x33, 0x33));
    }

    #[test]
    fn virq_decoding() {
        assert_eq!(Virq::try_from(0u32), Ok(Virq::Timer));
        assert_eq!(Virq::try_from(16u64), Ok(Virq::Mca));
        for unused in [5u32, 14, 15, 17, 24] {
            assert!(Virq::try_from(unused).is_err(), "{unused}");
        }
        assert!(Virq::Timer.is_per_vcpu() && !Virq::Console.is_per_vcpu());
        assert!(Virq::ALL.iter().all(|v| v.raw() < NR_VIRQS));
    }

    #[test]
    fn cmd_decoding() {
        assert_eq!(EvtchnCmd::try_from(4u64), Ok(EvtchnCmd::Send));
        assert!(EvtchnCmd::try_from(15u32).is_err());
        assert_eq!(EvtchnStat::try_from(5u32), Ok(EvtchnStat::Ipi));
    }
}
