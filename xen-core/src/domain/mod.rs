//! Domains: kernel images, the initial layout, building, and the per-domain and per-vCPU
//! state the hypervisor keeps.

pub mod build;
pub mod image;
pub mod layout;
pub mod vcpu;

use crate::types::{DomId, Mfn};
use alloc::boxed::Box;
use alloc::vec::Vec;
use hypercall_abi::shared_info::XEN_LEGACY_MAX_VCPUS;
use vcpu::Vcpu;

/// How a domain is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    /// Running (or runnable).
    Running,
    /// Shut down by itself (or by the toolstack), for this `SHUTDOWN_*` code (Xen passes any
    /// 8-bit value through; [`hypercall_abi::sched::ShutdownReason`] names the known ones).
    Shutdown(u8),
    /// Crashed by the hypervisor.
    Crashed,
}

/// A domain.
#[derive(Debug)]
pub struct Domain {
    /// Its id.
    pub id: DomId,
    /// May control other domains (dom0).
    pub privileged: bool,
    /// Owns hardware: may map device memory and access I/O ports (dom0).
    pub hardware: bool,
    /// Its vCPUs.
    pub vcpus: Vec<Vcpu>,
    /// The shared_info frame (owned by the domain; the hypervisor holds a reference).
    pub shared_info: Mfn,
    /// Enabled `VMASST_TYPE_*` assists (bit per type).
    pub vm_assist: u64,
    /// Running, shut down or crashed.
    pub state: RunState,
    /// Why the hypervisor crashed the domain, if it did.
    pub crash_reason: Option<&'static str>,
    /// The code recorded by `SCHEDOP_shutdown_code` (the first one sticks); it replaces the
    /// reason of any later shutdown or crash, as in Xen.
    pub shutdown_code: Option<u8>,
    /// Pages allocated.
    pub tot_pages: u64,
    /// Most pages it may have.
    pub max_pages: u64,
    /// Its pseudo-physical memory map (`XENMEM_memory_map`); empty if none was set.
    pub e820: Vec<hypercall_abi::memory::E820Entry>,
    /// Its `console_io` output (unprivileged domains: prefixed lines, rate-limited).
    pub console: crate::console::guest::GuestConsole,
}

impl Domain {
    /// A domain with `nr_vcpus` vCPUs, nothing else set up yet.
    pub fn new(id: DomId, privileged: bool, nr_vcpus: u32, shared_info: Mfn) -> Domain {
        let vcpus = (0..nr_vcpus)
            .map(|i| {
                let mut v = Vcpu::new(i);
                if usize::try_from(i).is_ok_and(|i| i < XEN_LEGACY_MAX_VCPUS) {
                    v.vcpu_info = crate::types::Paddr(shared_info.paddr().0 + u64::from(i) * 64);
                }
                v
            })
            .collect();
        Domain {
            id,
            privileged,
            hardware: privileged,
            vcpus,
            shared_info,
            vm_assist: 0,
            state: RunState::Running,
            crash_reason: None,
            shutdown_code: None,
            tot_pages: 0,
            max_pages: 0,
            e820: Vec::new(),
            console: crate::console::guest::GuestConsole::new(id.0),
        }
    }

    /// Whether assist `ty` (a `VMASST_TYPE_*` number) is on.
    pub fn assist(&self, ty: u32) -> bool {
        ty < 64 && self.vm_assist & (1 << ty) != 0
    }

    /// Machine address of vCPU `v`'s `vcpu_info` (its slot in shared_info, or where the guest
    /// registered it); 0 if the vCPU has none.
    pub fn vcpu_info_addr(&self, v: u32) -> u64 {
        usize::try_from(v)
            .ok()
            .and_then(|i| self.vcpus.get(i))
            .map_or(0, |vc| vc.vcpu_info.0)
    }

    /// The vCPU reference of vCPU `v` of this domain.
    pub fn vcpu_ref(&self, v: u32) -> crate::types::VcpuRef {
        crate::types::VcpuRef {
            dom: self.id,
            vcpu: v,
        }
    }
}

/// Every domain, by id. While a domain is being worked on (its hypercall, its exception) it
/// is taken out, so the others stay reachable alongside it.
#[derive(Debug, Default)]
pub struct Domains {
    slots: Vec<Option<Box<Domain>>>,
}

impl Domains {
    /// No domains.
    pub const fn new() -> Domains {
        Domains { slots: Vec::new() }
    }

    fn slot(id: DomId) -> usize {
        usize::from(id.0)
    }

    /// Adds `dom` (replacing a domain with the same id, which the caller must not have).
    pub fn insert(&mut self, dom: Box<Domain>) {
        let i = Self::slot(dom.id);
        if self.slots.len() <= i {
            self.slots.resize_with(i + 1, || None);
        }
        self.slots[i] = Some(dom);
    }

    /// Takes domain `id` out (to work on it); put it back with [`Domains::insert`].
    pub fn take(&mut self, id: DomId) -> Option<Box<Domain>> {
        self.slots.get_mut(Self::slot(id)).and_then(Option::take)
    }

    /// Domain `id`, if it exists (and is not taken out).
    pub fn get(&self, id: DomId) -> Option<&Domain> {
        self.slots.get(Self::slot(id)).and_then(|d| d.as_deref())
    }

    /// Domain `id`, mutably.
    pub fn get_mut(&mut self, id: DomId) -> Option<&mut Domain> {
        self.slots
            .get_mut(Self::slot(id))
            .and_then(|d| d.as_deref_mut())
    }

    /// The ids of the domains present, in order.
    pub fn ids(&self) -> Vec<DomId> {
        self.iter().map(|d| d.id).collect()
    }

    /// The domains present, in id order.
    pub fn iter(&self) -> impl Iterator<Item = &Domain> {
        self.slots.iter().filter_map(|d| d.as_deref())
    }

    /// The number of domains present.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
