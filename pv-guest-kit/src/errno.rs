//! Hypercall results as `Result<u64, Errno>`.
//!
//! Xen returns a non-negative value on success and `-errno` (in `[-4095, -1]`) on failure
//! (reference §3). Every typed wrapper in the `hypercall` module returns a [`HypercallResult`].

pub use hypercall_abi::errno::Errno;
use hypercall_abi::errno::is_error_ret;

/// What a typed hypercall wrapper returns: the non-negative result, or the error.
pub type HypercallResult<T = u64> = Result<T, Errno>;

/// Splits a raw hypercall return value (`rax` as `i64`) into success or [`Errno`].
///
/// Values in `[-4095, -1]` are errors. A value in that range that names no Xen errno (Xen never
/// returns one) is reported as [`Errno::Eio`], so that it can never pass for an expected
/// error code. Values below `-4095` are successes (large unsigned results).
///
/// ```
/// use pv_guest_kit::errno::{Errno, result_from_ret};
/// assert_eq!(result_from_ret(0x0004_0011), Ok(0x0004_0011));
/// assert_eq!(result_from_ret(-38), Err(Errno::Enosys));
/// assert_eq!(result_from_ret(-15), Err(Errno::Eio)); // 15 is not a Xen errno
/// ```
///
/// # Errors
/// The error half of the return value, as described above.
pub fn result_from_ret(ret: i64) -> HypercallResult {
    if is_error_ret(ret) {
        Err(Errno::from_ret(ret).unwrap_or(Errno::Eio))
    } else {
        Ok(ret.cast_unsigned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_error_and_unknown_values() {
        assert_eq!(result_from_ret(0), Ok(0));
        assert_eq!(result_from_ret(4096), Ok(4096));
        assert_eq!(result_from_ret(-22), Err(Errno::Einval));
        assert_eq!(result_from_ret(-14), Err(Errno::Efault));
        assert_eq!(result_from_ret(-4095), Err(Errno::Eio));
        // Below the error range: a large unsigned success value.
        assert_eq!(result_from_ret(-4096), Ok(0xffff_ffff_ffff_f000));
        assert_eq!(result_from_ret(i64::MIN), Ok(1 << 63));
    }
}
