//! The `#[global_allocator]` comparison under mimalloc (see `src/ga_workload.rs`).
#[global_allocator]
static A: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../ga_workload.rs"]
mod ga_workload;

fn main() {
    ga_workload::main("mimalloc");
}
