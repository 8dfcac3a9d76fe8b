//! The `#[global_allocator]` comparison under system (see `src/ga_workload.rs`).
#[global_allocator]
static A: std::alloc::System = std::alloc::System;

#[path = "../ga_workload.rs"]
mod ga_workload;

fn main() {
    ga_workload::main("system");
}
