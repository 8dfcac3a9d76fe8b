//! `libhakmem.so`: the C allocator ABI over hakmem, for `LD_PRELOAD`.
//!
//! ```sh
//! cargo build --release -p hakmem-preload && LD_PRELOAD=$PWD/target/release/libhakmem.so prog
//! ```
//!
//! * [`abi`]: `malloc`, `free`, `calloc`, `realloc`, `reallocarray`,
//!   `posix_memalign`, `aligned_alloc`, `memalign`, `valloc`, `pvalloc`,
//!   `malloc_usable_size`, `malloc_trim`, `malloc_stats`, `cfree`, with
//!   glibc's semantics (see the module doc for each decision).
//! * [`lifecycle`]: the library constructor (sets up the first heap and the
//!   exit and fork hooks before `main`) and `HAKMEM_STATS=1` at exit.
//!
//! The thread-local heap pointer, the exit hook, the fallback heap, the
//! fork handlers and the misuse messages live in the core
//! (`hakmem::HakMem`, `alloc/src/global.rs`), shared with the Rust
//! `#[global_allocator]`. Nothing here allocates: no `std` collections, no
//! formatting into a `String`, no `std::env`.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod abi;
mod lifecycle;
