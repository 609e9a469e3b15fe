//! Publishes the guest linker script to dependent crates.
//!
//! Because the package declares `links = "pv_guest_kit"`, the `linker_script` key below reaches
//! the build script of every crate that depends on the kit directly, as the environment variable
//! `DEP_PV_GUEST_KIT_LINKER_SCRIPT`. A guest crate's `build.rs` passes it to the linker (see
//! README.md, "Building").

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    println!("cargo:rerun-if-changed=link.ld");
    println!("cargo:linker_script={dir}/link.ld");
}
