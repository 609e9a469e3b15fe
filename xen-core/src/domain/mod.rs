//! Domains: kernel images, the initial layout, building, and the per-domain and per-vCPU
//! state the hypervisor keeps.

pub mod build;
pub mod image;
pub mod layout;
pub mod vcpu;

use crate::types::{DomId, Mfn};
use alloc::vec::Vec;
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
}

impl Domain {
    /// A domain with `nr_vcpus` vCPUs, nothing else set up yet.
    pub fn new(id: DomId, privileged: bool, nr_vcpus: u32, shared_info: Mfn) -> Domain {
        Domain {
            id,
            privileged,
            hardware: privileged,
            vcpus: (0..nr_vcpus).map(Vcpu::new).collect(),
            shared_info,
            vm_assist: 0,
            state: RunState::Running,
            crash_reason: None,
            shutdown_code: None,
            tot_pages: 0,
            max_pages: 0,
            e820: Vec::new(),
        }
    }

    /// Whether assist `ty` (a `VMASST_TYPE_*` number) is on.
    pub fn assist(&self, ty: u32) -> bool {
        ty < 64 && self.vm_assist & (1 << ty) != 0
    }

    /// Machine address of vCPU `v`'s `vcpu_info` (its slot in shared_info).
    pub fn vcpu_info_addr(&self, v: u32) -> u64 {
        self.shared_info.paddr().0 + u64::from(v) * 64
    }
}
