//! Domains: kernel images, the initial layout, and (with the architecture layer) building and
//! running them.

pub mod build;
pub mod image;
pub mod layout;
pub mod vcpu;
