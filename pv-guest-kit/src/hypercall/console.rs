//! `console_io` (hypercall 18; reference §13.1).

use hypercall_abi::console::{CONSOLEIO_READ, CONSOLEIO_WRITE};
use hypercall_abi::hypercall::HYPERVISOR_CONSOLE_IO;

use super::{HypercallResult, hypercall3, result_from_ret};

/// Largest count one `console_io` call takes here (the kit splits longer writes).
const MAX_CHUNK: usize = 1 << 16;

/// `CONSOLEIO_write`: writes `bytes` to the hypervisor console (Xen permits it for dom0; a
/// release Xen answers `-EPERM` to other domains). Returns the last call's result.
///
/// # Errors
/// The hypervisor's error for the first chunk that failed.
pub fn write(bytes: &[u8]) -> HypercallResult {
    let mut last = 0;
    for chunk in bytes.chunks(MAX_CHUNK) {
        // SAFETY: the hypervisor only reads `chunk.len()` bytes from `chunk`.
        last = result_from_ret(unsafe {
            hypercall3(
                HYPERVISOR_CONSOLE_IO,
                u64::from(CONSOLEIO_WRITE),
                chunk.len() as u64,
                chunk.as_ptr() as u64,
            )
        })?;
    }
    Ok(last)
}

/// `CONSOLEIO_read`: reads pending console input into `buf` (privileged domains). Returns the
/// number of bytes read.
///
/// # Errors
/// The hypervisor's error (`-EPERM` for unprivileged domains).
pub fn read(buf: &mut [u8]) -> HypercallResult {
    let count = buf.len().min(MAX_CHUNK) as u64;
    // SAFETY: the hypervisor writes at most `count <= buf.len()` bytes into `buf`.
    result_from_ret(unsafe {
        hypercall3(
            HYPERVISOR_CONSOLE_IO,
            u64::from(CONSOLEIO_READ),
            count,
            buf.as_mut_ptr() as u64,
        )
    })
}
