//! Alloc/free throughput of `HakMem` against the system allocator and a
//! current mimalloc (the `mimalloc` crate), in one binary: each workload
//! runs under all three, interleaved (H M S H M S ...) for several rounds;
//! the table shows medians and the time ratios hakmem/system and
//! hakmem/mimalloc (below 1.00 means hakmem is faster).
//!
//!     cargo bench -p hakmem --bench throughput
//!
//! `HAKMEM_BENCH_ROUNDS` (default 5) and `HAKMEM_BENCH_SCALE` (default 1)
//! size it. This is a benchmark, not a test: it asserts nothing.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::time::{Duration, Instant};

use hakmem::HakMem;
use mimalloc::MiMalloc;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One malloc+free pair of the same size, repeated: the thread-cache hit.
fn pair<A: GlobalAlloc>(a: &A, size: usize, iters: usize) {
    let l = Layout::from_size_align(size, 16).unwrap();
    for _ in 0..iters {
        // SAFETY: a valid layout; the block is freed with it.
        unsafe {
            let p = a.alloc(l);
            *black_box(p) = 1;
            a.dealloc(p, l);
        }
    }
}

/// Allocate a batch, touch it, free it in the same order: refill and drain.
fn batch<A: GlobalAlloc>(a: &A, size: usize, iters: usize) {
    let l = Layout::from_size_align(size, 16).unwrap();
    let mut v = vec![std::ptr::null_mut::<u8>(); 1000];
    for _ in 0..iters / v.len() {
        for slot in v.iter_mut() {
            // SAFETY: a valid layout.
            *slot = unsafe { a.alloc(l) };
            // SAFETY: freshly allocated, at least one byte.
            unsafe { **slot = 1 };
        }
        for &p in v.iter() {
            // SAFETY: allocated above with `l`.
            unsafe { a.dealloc(p, l) };
        }
    }
}

/// Producer/consumer: one thread allocates batches, another frees them.
fn cross<A: GlobalAlloc + Sync>(a: &A, size: usize, iters: usize) {
    let l = Layout::from_size_align(size, 16).unwrap();
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<usize>>(4);
    std::thread::scope(|s| {
        s.spawn(move || {
            for _ in 0..iters / 256 {
                // SAFETY: a valid layout; freed by the consumer with it.
                let v: Vec<usize> = (0..256).map(|_| unsafe { a.alloc(l) } as usize).collect();
                tx.send(v).unwrap();
            }
        });
        s.spawn(move || {
            for v in rx {
                for p in v {
                    // SAFETY: allocated by the producer with `l`.
                    unsafe { a.dealloc(p as *mut u8, l) };
                }
            }
        });
    });
}

fn threaded<A: GlobalAlloc + Sync>(
    a: &A,
    threads: usize,
    f: fn(&A, usize, usize),
    size: usize,
    iters: usize,
) {
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(move || f(a, size, iters));
        }
    });
}

struct Case {
    name: String,
    /// hakmem, mimalloc, system
    runs: [Box<dyn Fn()>; 3],
    ops: usize,
}

/// Builds the three runs of a workload generic over the allocator.
macro_rules! case {
    ($name:expr, $ops:expr, |$a:ident| $body:expr) => {
        Case {
            name: $name,
            runs: [
                Box::new(move || {
                    let $a = &HakMem;
                    $body
                }),
                Box::new(move || {
                    let $a = &MiMalloc;
                    $body
                }),
                Box::new(move || {
                    let $a = &System;
                    $body
                }),
            ],
            ops: $ops,
        }
    };
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let rounds = env("HAKMEM_BENCH_ROUNDS", 5);
    let scale = env("HAKMEM_BENCH_SCALE", 1);
    let n = 2_000_000 * scale;
    let mut cases: Vec<Case> = Vec::new();
    for size in [16usize, 64, 256, 1024, 8192] {
        cases.push(case!(format!("pair {size} B, 1 thread"), n, |a| pair(
            a, size, n
        )));
    }
    for size in [16usize, 256, 4096] {
        cases.push(case!(format!("batch {size} B, 1 thread"), n, |a| batch(
            a, size, n
        )));
        cases.push(case!(format!("batch {size} B, 2 threads"), 2 * n, |a| {
            threaded(a, 2, batch, size, n)
        }));
        cases.push(case!(format!("batch {size} B, 4 threads"), 2 * n, |a| {
            threaded(a, 4, batch, size, n / 2)
        }));
    }
    for size in [64usize, 1024] {
        cases.push(case!(
            format!("cross-thread {size} B, 2 threads"),
            n / 2,
            |a| cross(a, size, n / 2)
        ));
    }
    cases.push(case!(
        "pair 256 KiB (large), 1 thread".into(),
        n / 50,
        |a| pair(a, 256 << 10, n / 50)
    ));

    println!("hakmem vs mimalloc (crate, current) vs system: {rounds} interleaved rounds, medians");
    println!("ratio = hakmem time / peer time (below 1.00: hakmem is faster)");
    println!(
        "{:<34} {:>10} {:>10} {:>10} {:>9} {:>9}",
        "workload", "hakmem ns", "mimalloc", "system", "vs mi", "vs sys"
    );
    let (mut rm, mut rs) = (Vec::new(), Vec::new());
    for c in &cases {
        for r in &c.runs {
            r(); // warm up
        }
        let mut t: [Vec<Duration>; 3] = Default::default();
        for _ in 0..rounds {
            for (i, r) in c.runs.iter().enumerate() {
                let s = Instant::now();
                r();
                t[i].push(s.elapsed());
            }
        }
        let [h, m, s] = t.map(median);
        let per = |d: Duration| d.as_nanos() as f64 / c.ops as f64;
        let (vm, vs) = (
            h.as_secs_f64() / m.as_secs_f64(),
            h.as_secs_f64() / s.as_secs_f64(),
        );
        rm.push(vm);
        rs.push(vs);
        println!(
            "{:<34} {:>10.2} {:>10.2} {:>10.2} {:>9.2} {:>9.2}",
            c.name,
            per(h),
            per(m),
            per(s),
            vm,
            vs
        );
    }
    let gm = |v: &[f64]| (v.iter().map(|r| r.ln()).sum::<f64>() / v.len() as f64).exp();
    println!(
        "{:<34} {:>10} {:>10} {:>10} {:>9.2} {:>9.2}",
        "geometric mean",
        "",
        "",
        "",
        gm(&rm),
        gm(&rs)
    );
}
