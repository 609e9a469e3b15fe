//! One domain's event channels: the port table, the per-vCPU VIRQ bindings and where the
//! domain's event bits live.
//!
//! The table grows in chunks of [`PORT_CHUNK`] ports as ports are allocated and never
//! shrinks while the domain lives. A port is *valid* when it lies inside the table: valid but
//! free ports can be queried and unmasked, ports beyond the table are `-EINVAL` for every
//! operation. This is Xen's `port_is_valid()` with its allocation buckets (whose size Xen
//! derives from `sizeof(struct evtchn)`; guests cannot depend on it).

use super::delivery::{self, Target};
use crate::types::{DomId, Paddr, Port, VcpuRef};
use alloc::vec::Vec;
use hypercall_abi::errno::Errno;
use hypercall_abi::evtchn::{
    EVTCHN_2L_BITS_PER_WORD, EVTCHN_2L_NR_CHANNELS, NR_VIRQS, VIRQ_DEBUG, VIRQ_TIMER,
    VIRQ_XENOPROF, VIRQ_XENPMU,
};

/// Ports the table grows by: one bitmap word's worth.
pub const PORT_CHUNK: u32 = EVTCHN_2L_BITS_PER_WORD;
/// The highest port a 2-level domain can have (4095 on x86-64).
pub const MAX_PORT_2L: u32 = EVTCHN_2L_NR_CHANNELS - 1;

/// [`NR_VIRQS`] as an array length.
const VIRQ_SLOTS: usize = NR_VIRQS as usize;

/// Whether VIRQ `virq` (below [`NR_VIRQS`]) is global, bound once per domain on vCPU 0,
/// rather than per vCPU. On x86 every VIRQ is global except `VIRQ_TIMER`, `VIRQ_DEBUG`,
/// `VIRQ_XENOPROF` and `VIRQ_XENPMU`; that includes the unnamed numbers and the
/// architecture range (Xen's `virq_is_global()` and x86 `arch_virq_is_global()`).
pub const fn virq_is_global(virq: u32) -> bool {
    !matches!(virq, VIRQ_TIMER | VIRQ_DEBUG | VIRQ_XENOPROF | VIRQ_XENPMU)
}

/// What a port is bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortState {
    /// Not in use; may be allocated.
    Free,
    /// Never allocated (port 0).
    Reserved,
    /// Allocated, waiting for domain `remote` to bind to it.
    Unbound {
        /// The only domain that may bind to this port.
        remote: DomId,
    },
    /// Connected to `remote_port` of `remote` (possibly this same domain).
    Interdomain {
        /// The domain at the other end.
        remote: DomId,
        /// The port at the other end.
        remote_port: Port,
    },
    /// Bound to a VIRQ.
    Virq {
        /// The `VIRQ_*` number (below [`NR_VIRQS`]).
        virq: u32,
    },
    /// An IPI port within the domain.
    Ipi,
}

/// One port.
#[derive(Clone, Copy, Debug)]
pub(super) struct Channel {
    /// Its binding.
    pub state: PortState,
    /// The vCPU its events are delivered to (0 when free).
    pub notify_vcpu: u32,
}

impl Channel {
    /// A free port.
    const FREE: Channel = Channel {
        state: PortState::Free,
        notify_vcpu: 0,
    };
}

/// One vCPU's event state.
#[derive(Clone, Debug)]
pub(super) struct VcpuEvents {
    /// Where its `vcpu_info` is; `None` for vCPUs beyond the legacy slots that have not
    /// registered one (their events only set pending bits).
    pub vcpu_info: Option<Paddr>,
    /// The port bound to each VIRQ on this vCPU (global VIRQs: vCPU 0 only).
    pub virqs: [Option<Port>; VIRQ_SLOTS],
}

/// One domain's event channels.
#[derive(Clone, Debug)]
pub(super) struct DomainEvents {
    /// The shared_info frame holding the pending and mask bitmaps.
    pub shared_info: Paddr,
    /// May act on other domains' channels (the control domain).
    pub privileged: bool,
    /// The highest port that may be allocated.
    pub max_port: u32,
    /// The port table; its length is the number of valid ports.
    channels: Vec<Channel>,
    /// Per-vCPU state.
    pub vcpus: Vec<VcpuEvents>,
}

impl DomainEvents {
    /// A domain with one chunk of ports, port 0 reserved.
    pub fn new(shared_info: Paddr, privileged: bool, max_port: u32, nr_vcpus: u32) -> Self {
        let mut channels = Vec::new();
        channels.resize(PORT_CHUNK as usize, Channel::FREE);
        if let Some(first) = channels.first_mut() {
            first.state = PortState::Reserved;
        }
        let vcpus = (0..nr_vcpus)
            .map(|v| VcpuEvents {
                vcpu_info: delivery::default_vcpu_info(shared_info, v),
                virqs: [None; VIRQ_SLOTS],
            })
            .collect();
        DomainEvents {
            shared_info,
            privileged,
            max_port: max_port.min(MAX_PORT_2L),
            channels,
            vcpus,
        }
    }

    /// Number of valid ports (the table's length).
    pub fn valid_ports(&self) -> u32 {
        u32::try_from(self.channels.len()).unwrap_or(u32::MAX)
    }

    /// Port `port`, if valid.
    pub fn channel(&self, port: Port) -> Option<&Channel> {
        self.channels.get(usize::try_from(port.0).ok()?)
    }

    /// Port `port`, if valid.
    pub fn channel_mut(&mut self, port: Port) -> Option<&mut Channel> {
        self.channels.get_mut(usize::try_from(port.0).ok()?)
    }

    /// All valid ports with their channels, lowest first.
    pub fn channels(&self) -> impl Iterator<Item = (Port, &Channel)> {
        (0u32..)
            .zip(self.channels.iter())
            .map(|(p, c)| (Port(p), c))
    }

    /// Number of vCPUs.
    pub fn nr_vcpus(&self) -> u32 {
        u32::try_from(self.vcpus.len()).unwrap_or(u32::MAX)
    }

    /// vCPU `vcpu`, if it exists.
    pub fn vcpu(&self, vcpu: u32) -> Option<&VcpuEvents> {
        self.vcpus.get(usize::try_from(vcpu).ok()?)
    }

    /// vCPU `vcpu`, if it exists.
    pub fn vcpu_mut(&mut self, vcpu: u32) -> Option<&mut VcpuEvents> {
        self.vcpus.get_mut(usize::try_from(vcpu).ok()?)
    }

    /// The lowest free port not above `max_port`, growing the table by a chunk if every
    /// valid port is taken. The port stays free until the caller binds it.
    ///
    /// # Errors
    /// `ENOSPC` when every port up to `max_port` is in use.
    pub fn find_free_port(&mut self) -> Result<Port, Errno> {
        let limit = usize::try_from(self.max_port).map_err(|_| Errno::Enospc)?;
        if let Some(i) = self
            .channels
            .iter()
            .take(limit.saturating_add(1))
            .position(|c| c.state == PortState::Free)
        {
            return u32::try_from(i).map(Port).map_err(|_| Errno::Enospc);
        }
        let next = self.channels.len();
        if next > limit {
            return Err(Errno::Enospc);
        }
        let grown = next.saturating_add(PORT_CHUNK as usize);
        self.channels.resize(grown, Channel::FREE);
        u32::try_from(next).map(Port).map_err(|_| Errno::Enospc)
    }

    /// Frees a port: clears its pending bit and sends its notifications back to vCPU 0.
    pub fn free(&mut self, mem: &mut dyn super::EventMemory, port: Port) {
        delivery::clear_pending(mem, self.shared_info, port);
        if let Some(c) = self.channel_mut(port) {
            *c = Channel::FREE;
        }
    }

    /// Where events for vCPU `vcpu` of this domain (`dom`) go.
    pub fn target(&self, dom: DomId, vcpu: u32) -> Target {
        Target {
            v: VcpuRef { dom, vcpu },
            vcpu_info: self.vcpu(vcpu).and_then(|v| v.vcpu_info),
            shared_info: self.shared_info,
        }
    }

    /// The VIRQ table slot of `virq` on vCPU `vcpu`.
    pub fn virq_slot(&mut self, vcpu: u32, virq: u32) -> Option<&mut Option<Port>> {
        let slot = usize::try_from(virq).ok()?;
        self.vcpu_mut(vcpu)?.virqs.get_mut(slot)
    }

    /// The port bound to `virq` on vCPU `vcpu`.
    pub fn virq_port(&self, vcpu: u32, virq: u32) -> Option<Port> {
        let slot = usize::try_from(virq).ok()?;
        *self.vcpu(vcpu)?.virqs.get(slot)?
    }
}
