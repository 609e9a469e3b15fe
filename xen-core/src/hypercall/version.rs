//! `xen_version` (hypercall 17): version, capabilities, features and build facts.

use super::{Ctx, HcResult, read_guest, write_guest};
use hypercall_abi::errno::Errno;
use hypercall_abi::version::{self as v, XenCompileInfo, XenFeatureInfo, XenPlatformParameters};

/// What Oxen reports after the version number (`XENVER_extraversion`).
pub const EXTRAVERSION: &[u8] = b".0-oxen";
/// Build facts for `XENVER_compile_info` and `XENVER_changeset`.
const COMPILER: &str = "rustc (Rust 2024)";
const CHANGESET: &str = concat!("oxen ", env!("CARGO_PKG_VERSION"));

/// The `XENFEAT_*` submap 0 a domain sees: Xen 4.17's PV set, plus `dom0` for the hardware
/// domain.
pub fn features(hardware_domain: bool) -> u32 {
    if hardware_domain {
        v::XENFEAT_PV64_DOM0
    } else {
        v::XENFEAT_PV64_DOMU
    }
}

/// Copies `s` into a zero-padded buffer of `N` bytes (always NUL-terminated).
fn fixed<const N: usize>(s: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    let n = s.len().min(N - 1);
    out[..n].copy_from_slice(&s[..n]);
    out
}

/// `xen_version(cmd, arg)`.
pub fn xen_version(cx: &mut Ctx<'_>, args: [u64; 5]) -> HcResult {
    let cmd = super::lo32(args[0]);
    let arg = args[1];
    let privileged = cx.dom.privileged;
    match cmd {
        v::XENVER_VERSION => Ok(u64::from(v::XEN_VERSION_PACKED)),
        v::XENVER_EXTRAVERSION => {
            let b: [u8; v::XEN_EXTRAVERSION_LEN] = fixed(EXTRAVERSION);
            cx.mem.write(arg, &b)?;
            Ok(0)
        }
        v::XENVER_COMPILE_INFO => {
            let info = XenCompileInfo {
                compiler: fixed(COMPILER.as_bytes()),
                compile_by: fixed(b"oxen"),
                compile_domain: fixed(b""),
                compile_date: fixed(b"unknown"),
            };
            write_guest(cx.mem, arg, &info)?;
            Ok(0)
        }
        v::XENVER_CAPABILITIES => {
            let b: [u8; v::XEN_CAPABILITIES_INFO_LEN] = fixed(v::XEN_CAPABILITIES_PV64);
            cx.mem.write(arg, &b)?;
            Ok(0)
        }
        v::XENVER_CHANGESET => {
            let b: [u8; v::XEN_CHANGESET_INFO_LEN] = fixed(CHANGESET.as_bytes());
            cx.mem.write(arg, &b)?;
            Ok(0)
        }
        v::XENVER_PLATFORM_PARAMETERS => {
            let p = XenPlatformParameters {
                virt_start: hypercall_abi::mm::HYPERVISOR_VIRT_START,
            };
            write_guest(cx.mem, arg, &p)?;
            Ok(0)
        }
        v::XENVER_GET_FEATURES => {
            let mut fi: XenFeatureInfo = read_guest(cx.mem, arg)?;
            if fi.submap_idx >= v::XENFEAT_NR_SUBMAPS {
                return Err(Errno::Einval);
            }
            fi.submap = features(cx.dom.hardware);
            write_guest(cx.mem, arg, &fi)?;
            Ok(0)
        }
        v::XENVER_PAGESIZE => {
            if arg != 0 {
                return Err(Errno::Einval);
            }
            Ok(v::XENVER_PAGESIZE_VALUE)
        }
        v::XENVER_GUEST_HANDLE => {
            cx.mem.write(arg, &[0u8; v::XEN_DOMAIN_HANDLE_LEN])?;
            Ok(0)
        }
        v::XENVER_COMMANDLINE => {
            let b: [u8; v::XEN_COMMANDLINE_LEN] = if privileged {
                fixed(cx.plat.hypervisor_cmdline().as_bytes())
            } else {
                fixed(v::XENVER_DENIED_STRING)
            };
            cx.mem.write(arg, &b)?;
            Ok(0)
        }
        v::XENVER_BUILD_ID => {
            if !privileged {
                return Err(Errno::Eperm);
            }
            // Oxen images carry no build id.
            Err(Errno::Enodata)
        }
        _ => Err(Errno::Enosys),
    }
}
