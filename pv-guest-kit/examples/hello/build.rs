//! Links the guest with pv-guest-kit's linker script (bare-metal builds only).

fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        // Published by pv-guest-kit's build script (its `links = "pv_guest_kit"` key).
        let script = std::env::var("DEP_PV_GUEST_KIT_LINKER_SCRIPT")
            .expect("pv-guest-kit publishes its linker script");
        println!("cargo:rerun-if-env-changed=DEP_PV_GUEST_KIT_LINKER_SCRIPT");
        println!("cargo:rustc-link-arg-bins=-T{script}");
        // A fixed-address image: the kernel is linked where the domain builder maps it.
        println!("cargo:rustc-link-arg-bins=--no-pie");
    }
}
