//! What the domain builder hands the guest at entry: the `start_info` page (reference §5) and
//! the initial stack pointer (reference §4.6).

use core::ops::Deref;

use hypercall_abi::start_info::{self as abi, SifFlags};

use crate::layout::InitialMapping;
use crate::text::cstr;

/// The guest's view of its `start_info` page, passed to the guest's main function.
///
/// It dereferences to the ABI struct ([`hypercall_abi::start_info::StartInfo`]) and adds typed
/// accessors. The page stays valid for the domain's lifetime; the hypervisor rewrites it only
/// on resume after a suspend, which the kit does not support.
#[derive(Clone, Copy)]
pub struct StartInfo {
    raw: &'static abi::StartInfo,
    initial_rsp: u64,
}

impl core::fmt::Debug for StartInfo {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("StartInfo")
            .field("magic", &self.magic())
            .field("nr_pages", &self.raw.nr_pages)
            .field("flags", &self.flags())
            .field("pt_base", &format_args!("{:#x}", self.raw.pt_base))
            .field("nr_pt_frames", &self.raw.nr_pt_frames)
            .field("initial_rsp", &format_args!("{:#x}", self.initial_rsp))
            .field("cmdline", &self.cmdline())
            .finish_non_exhaustive()
    }
}

impl StartInfo {
    /// Wraps the page the builder passed in `rsi`, and the `rsp` the guest was entered with.
    pub const fn new(raw: &'static abi::StartInfo, initial_rsp: u64) -> StartInfo {
        StartInfo { raw, initial_rsp }
    }

    /// The ABI struct itself.
    pub const fn raw(&self) -> &'static abi::StartInfo {
        self.raw
    }

    /// The magic string, e.g. `"xen-3.0-x86_64"` (up to its NUL; non-UTF-8 text is cut).
    pub fn magic(&self) -> &'static str {
        cstr(&self.raw.magic)
    }

    /// Whether the magic starts with `"xen-3.0"`, the prefix guests check.
    pub fn has_valid_magic(&self) -> bool {
        self.raw.has_valid_magic()
    }

    /// The `SIF_*` flags.
    pub const fn flags(&self) -> SifFlags {
        self.raw.sif_flags()
    }

    /// Whether this is the initial domain (dom0): `SIF_INITDOMAIN`.
    pub const fn is_initial_domain(&self) -> bool {
        self.raw.flags & abi::SIF_INITDOMAIN != 0
    }

    /// The kernel command line (up to its NUL; non-UTF-8 text is cut).
    pub fn cmdline(&self) -> &'static str {
        cstr(&self.raw.cmd_line)
    }

    /// The `rsp` the builder entered the guest with: the end of the bootstrap stack page.
    pub const fn initial_rsp(&self) -> u64 {
        self.initial_rsp
    }

    /// Where the initial mapping lies, for an image linked at `virt_base`.
    pub fn initial_mapping(&self, virt_base: u64) -> Option<InitialMapping> {
        InitialMapping::new(virt_base, self.initial_rsp, self.raw.nr_pages)
    }
}

impl Deref for StartInfo {
    type Target = abi::StartInfo;

    fn deref(&self) -> &abi::StartInfo {
        self.raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leak(si: abi::StartInfo) -> &'static abi::StartInfo {
        Box::leak(Box::new(si))
    }

    #[test]
    fn accessors() {
        let mut raw = abi::StartInfo::new_x86_64();
        raw.nr_pages = 0x1000;
        raw.flags = abi::SIF_PRIVILEGED | abi::SIF_INITDOMAIN;
        raw.set_cmd_line(b"hello arg1").expect("short");
        let si = StartInfo::new(leak(raw), 0xffff_ffff_8012_3000);
        assert_eq!(si.magic(), "xen-3.0-x86_64");
        assert!(si.has_valid_magic());
        assert!(si.is_initial_domain());
        assert!(si.flags().contains(SifFlags::PRIVILEGED));
        assert_eq!(si.cmdline(), "hello arg1");
        assert_eq!(si.nr_pages, 0x1000);
        assert_eq!(si.initial_rsp(), 0xffff_ffff_8012_3000);
        let debug = format!("{si:?}");
        assert!(debug.contains("xen-3.0-x86_64") && debug.contains("hello arg1"));
    }
}
