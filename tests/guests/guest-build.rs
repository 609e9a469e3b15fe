//! The build script of every test guest: links the bare-metal binary with pv-guest-kit's
//! linker script (the same lines any guest crate's `build.rs` has; see pv-guest-kit's README).

fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        let script = std::env::var("DEP_PV_GUEST_KIT_LINKER_SCRIPT")
            .expect("pv-guest-kit publishes its linker script");
        println!("cargo:rerun-if-env-changed=DEP_PV_GUEST_KIT_LINKER_SCRIPT");
        println!("cargo:rustc-link-arg-bins=-T{script}");
        println!("cargo:rustc-link-arg-bins=--no-pie");
    }
}
