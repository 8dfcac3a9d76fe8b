//! Allocation loops through `HakMem`, mimalloc or `System`, for instruction
//! counting under callgrind:
//!
//!     valgrind --tool=callgrind --toggle-collect='pair_count::run*' \
//!         target/release/examples/pair_count hakmem|mimalloc|system pair|batch [size] [iters]
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;

#[inline(never)]
fn run_pair<A: GlobalAlloc>(a: &A, size: usize, n: usize) {
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

#[inline(never)]
fn run_batch<A: GlobalAlloc>(a: &A, size: usize, n: usize) {
    let l = Layout::from_size_align(size, 16).unwrap();
    let mut v = vec![std::ptr::null_mut::<u8>(); 1000];
    for _ in 0..n / 1000 {
        for s in v.iter_mut() {
            // SAFETY: a valid layout.
            unsafe {
                *s = a.alloc(l);
                **s = 1;
            }
        }
        for &p in v.iter() {
            // SAFETY: allocated above with `l`.
            unsafe { a.dealloc(p, l) };
        }
    }
}

fn go<A: GlobalAlloc>(a: &A, mode: &str, size: usize, n: usize) {
    match mode {
        "batch" => {
            run_batch(a, size, 10_000);
            run_batch(a, size, n);
        }
        _ => {
            run_pair(a, size, 10);
            run_pair(a, size, n);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let who = args.get(1).map_or("hakmem", String::as_str);
    let mode = args.get(2).map_or("pair", String::as_str);
    let size = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(32);
    let n = args
        .get(4)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    match who {
        "system" => go(&System, mode, size, n),
        "mimalloc" => go(&mimalloc::MiMalloc, mode, size, n),
        _ => go(&hakmem::HakMem, mode, size, n),
    }
}
