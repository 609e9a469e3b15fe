//! pv-guest-kit: what a guest kernel author uses to run on the Xen x86-64 PV ABI.
//!
//! Nothing here yet: the first version arrives with the first-PV-domain work.
#![no_std]
#![deny(unsafe_code)]
