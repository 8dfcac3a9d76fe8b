//! Detects an AddressSanitizer build (`-Zsanitizer=address`, as cargo-fuzz
//! passes it) and sets `cfg(hakmem_asan)`, under which `SimOs::mark_block`
//! poisons freed blocks.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(hakmem_asan)");
    println!("cargo::rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let asan = flags
        .split('\u{1f}')
        .any(|flag| flag.contains("sanitizer=address"));
    if asan {
        println!("cargo::rustc-cfg=hakmem_asan");
    }
}
