//! The `#[global_allocator]` comparison under hakmem (see `src/ga_workload.rs`).
#[global_allocator]
static A: hakmem::HakMem = hakmem::HakMem;

#[path = "../ga_workload.rs"]
mod ga_workload;

fn main() {
    ga_workload::main("hakmem");
}
