//! dom0-tools: Oxen's toolstack (domain builder, `xl`-style CLI, XenStore, backends).
//!
//! Nothing here yet: it needs a running dom0, which later issues build.
#![no_std]
#![deny(unsafe_code)]
