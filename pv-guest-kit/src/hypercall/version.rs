//! `xen_version` (hypercall 17; reference §15.1), every sub-operation.

use hypercall_abi::hypercall::HYPERVISOR_XEN_VERSION;
use hypercall_abi::version::{
    XENVER_BUILD_ID, XENVER_CAPABILITIES, XENVER_CHANGESET, XENVER_COMMANDLINE,
    XENVER_COMPILE_INFO, XENVER_EXTRAVERSION, XENVER_GET_FEATURES, XENVER_GUEST_HANDLE,
    XENVER_PAGESIZE, XENVER_PLATFORM_PARAMETERS, XENVER_VERSION, XenCapabilitiesInfo,
    XenChangesetInfo, XenCommandline, XenCompileInfo, XenDomainHandle, XenExtraversion,
    XenFeatureInfo, XenPlatformParameters,
};

use super::{HypercallResult, hypercall2, result_from_ret};

/// Calls `xen_version(cmd, arg)` with `arg` pointing at a `T` the hypervisor may fill.
fn query<T>(cmd: u32, arg: &mut T) -> HypercallResult {
    // The sizes are the ABI's (reference §15.1).
    // SAFETY: each sub-operation writes at most `size_of::<T>()` bytes, for its own `T`.
    result_from_ret(unsafe {
        hypercall2(
            HYPERVISOR_XEN_VERSION,
            u64::from(cmd),
            core::ptr::from_mut(arg) as u64,
        )
    })
}

/// `XENVER_version`: `major << 16 | minor` (4.17 → `0x00040011`). Also the cheapest hypercall,
/// used to make the hypervisor deliver pending events.
///
/// # Errors
/// Not expected (Xen always allows it).
pub fn version() -> HypercallResult<u32> {
    // SAFETY: no memory argument.
    let ret = unsafe { hypercall2(HYPERVISOR_XEN_VERSION, u64::from(XENVER_VERSION), 0) };
    result_from_ret(ret).map(|v| (v & 0xffff_ffff) as u32)
}

/// `XENVER_extraversion`, e.g. `".0"` (NUL-padded).
///
/// # Errors
/// The hypervisor's error.
pub fn extraversion() -> HypercallResult<XenExtraversion> {
    let mut buf: XenExtraversion = [0; _];
    query(XENVER_EXTRAVERSION, &mut buf).map(|_| buf)
}

/// `XENVER_compile_info`.
///
/// # Errors
/// The hypervisor's error.
pub fn compile_info() -> HypercallResult<XenCompileInfo> {
    let mut info = XenCompileInfo {
        compiler: [0; 64],
        compile_by: [0; 16],
        compile_domain: [0; 32],
        compile_date: [0; 32],
    };
    query(XENVER_COMPILE_INFO, &mut info).map(|_| info)
}

/// `XENVER_capabilities`, e.g. `"xen-3.0-x86_64 hvm-3.0-x86_32 ..."`, into `buf`.
///
/// # Errors
/// The hypervisor's error.
pub fn capabilities(buf: &mut XenCapabilitiesInfo) -> HypercallResult {
    query(XENVER_CAPABILITIES, buf)
}

/// `XENVER_changeset`.
///
/// # Errors
/// The hypervisor's error.
pub fn changeset() -> HypercallResult<XenChangesetInfo> {
    let mut buf: XenChangesetInfo = [0; _];
    query(XENVER_CHANGESET, &mut buf).map(|_| buf)
}

/// `XENVER_platform_parameters`: `virt_start` (`HYPERVISOR_VIRT_START`).
///
/// # Errors
/// The hypervisor's error.
pub fn platform_parameters() -> HypercallResult<XenPlatformParameters> {
    let mut params = XenPlatformParameters::default();
    query(XENVER_PLATFORM_PARAMETERS, &mut params).map(|_| params)
}

/// `XENVER_get_features`: the `XENFEAT_*` bitmap word `submap_idx` (only 0 exists).
///
/// # Errors
/// `-EINVAL` for a submap that does not exist.
pub fn get_features(submap_idx: u32) -> HypercallResult<u32> {
    let mut info = XenFeatureInfo {
        submap_idx,
        submap: 0,
    };
    query(XENVER_GET_FEATURES, &mut info).map(|_| info.submap)
}

/// `XENVER_pagesize`: 4096.
///
/// # Errors
/// The hypervisor's error.
pub fn pagesize() -> HypercallResult {
    // SAFETY: no memory argument.
    result_from_ret(unsafe { hypercall2(HYPERVISOR_XEN_VERSION, u64::from(XENVER_PAGESIZE), 0) })
}

/// `XENVER_guest_handle`: the domain's handle (UUID set by the toolstack; zero for dom0).
///
/// # Errors
/// The hypervisor's error.
pub fn guest_handle() -> HypercallResult<XenDomainHandle> {
    let mut handle: XenDomainHandle = [0; _];
    query(XENVER_GUEST_HANDLE, &mut handle).map(|_| handle)
}

/// `XENVER_commandline`: the hypervisor's command line (privileged), into `buf`.
///
/// # Errors
/// The hypervisor's error.
pub fn commandline(buf: &mut XenCommandline) -> HypercallResult {
    query(XENVER_COMMANDLINE, buf)
}

/// `XENVER_build_id` into `buf` (the first 4 bytes are the header: `len` in, and the id
/// follows). Returns the id's length.
///
/// # Errors
/// `-ENODATA` when the hypervisor has no build id, `-ENOBUFS` when `buf` is too small, or
/// `-EPERM` when not privileged.
pub fn build_id(buf: &mut [u8]) -> HypercallResult {
    let header = hypercall_abi::version::XEN_BUILD_ID_BUF_OFFSET;
    if buf.len() < header {
        return Err(super::Errno::Einval);
    }
    let room = u32::try_from(buf.len() - header).unwrap_or(u32::MAX);
    if let Some(len) = buf.get_mut(..header) {
        len.copy_from_slice(&room.to_le_bytes());
    }
    // SAFETY: the hypervisor writes at most `room` bytes after the 4-byte header: inside `buf`.
    result_from_ret(unsafe {
        hypercall2(
            HYPERVISOR_XEN_VERSION,
            u64::from(XENVER_BUILD_ID),
            buf.as_mut_ptr() as u64,
        )
    })
}
