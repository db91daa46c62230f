//! Release builds of the binary for x86_64 Linux fold identical functions at link time (lld's `--icf=all`):
//! generic code instantiated for many types (the AWS SDKs' operations, serde's visitors, futures) often compiles
//! to identical machine code, and keeping one copy is what holds the shipped binary within its size budget.
//! Only where the linker is lld, which rustc uses for that target since 1.90: the GNU linkers of other targets
//! (the image's aarch64 cross build) do not know the flag. Rust promises nothing about function addresses being
//! distinct, so folding them changes no behaviour.

use std::process::Command;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    if var("TARGET") == "x86_64-unknown-linux-gnu" && var("PROFILE") == "release" && rustc_minor() >= 90 {
        println!("cargo::rustc-link-arg-bins=-Wl,--icf=all");
    }
}

/// The minor version of the compiler building this crate (`rustc 1.95.0 (…)` → 95); 0 when it cannot tell.
fn rustc_minor() -> u32 {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(rustc).arg("--version").output().ok();
    let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    text.split_whitespace().nth(1).and_then(|v| v.split('.').nth(1)).and_then(|m| m.parse().ok()).unwrap_or(0)
}
