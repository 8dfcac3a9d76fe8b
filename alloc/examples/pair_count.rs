//! A malloc+free pair loop through `HakMem` (or `System` with `system` as
//! the first argument), for instruction counting under callgrind:
//!
//!     valgrind --tool=callgrind --toggle-collect='pair_count::pair*' \
//!         target/release/examples/pair_count [system] [size] [iters]
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;

#[inline(never)]
fn pair<A: GlobalAlloc>(a: &A, size: usize, n: usize) {
    let l = Layout::from_size_align(size, 16).unwrap();
    for _ in 0..n {
        // SAFETY: a valid layout; freed with it.
        unsafe {
            let p = a.alloc(l);
            *black_box(p) = 1;
            a.dealloc(p, l);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let system = args.get(1).is_some_and(|a| a == "system");
    let size = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(32);
    let n = args
        .get(3)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    if system {
        pair(&System, size, 10);
        pair(&System, size, n);
    } else {
        pair(&hakmem::HakMem, size, 10);
        pair(&hakmem::HakMem, size, n);
    }
}
