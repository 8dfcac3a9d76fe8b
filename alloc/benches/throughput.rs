//! Alloc/free throughput of `HakMem` against the system allocator, in one
//! binary: each workload runs under both, interleaved (H S H S ...) for
//! several rounds; the table shows medians and the time ratio
//! hakmem/system (below 1.00 means hakmem is faster).
//!
//!     cargo bench -p hakmem --bench throughput
//!
//! `HAKMEM_BENCH_ROUNDS` (default 5) and `HAKMEM_BENCH_SCALE` (default 1)
//! size it. This is a benchmark, not a test: it asserts nothing.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::time::{Duration, Instant};

use hakmem::HakMem;

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
    run_hakmem: Box<dyn Fn()>,
    run_system: Box<dyn Fn()>,
    ops: usize,
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
        cases.push(Case {
            name: format!("pair {size} B, 1 thread"),
            run_hakmem: Box::new(move || pair(&HakMem, size, n)),
            run_system: Box::new(move || pair(&System, size, n)),
            ops: n,
        });
    }
    for size in [16usize, 256, 4096] {
        cases.push(Case {
            name: format!("batch {size} B, 1 thread"),
            run_hakmem: Box::new(move || batch(&HakMem, size, n)),
            run_system: Box::new(move || batch(&System, size, n)),
            ops: n,
        });
        cases.push(Case {
            name: format!("batch {size} B, 2 threads"),
            run_hakmem: Box::new(move || threaded(&HakMem, 2, batch::<HakMem>, size, n)),
            run_system: Box::new(move || threaded(&System, 2, batch::<System>, size, n)),
            ops: 2 * n,
        });
        cases.push(Case {
            name: format!("batch {size} B, 4 threads"),
            run_hakmem: Box::new(move || threaded(&HakMem, 4, batch::<HakMem>, size, n / 2)),
            run_system: Box::new(move || threaded(&System, 4, batch::<System>, size, n / 2)),
            ops: 2 * n,
        });
    }
    for size in [64usize, 1024] {
        cases.push(Case {
            name: format!("cross-thread {size} B, 2 threads"),
            run_hakmem: Box::new(move || cross(&HakMem, size, n / 2)),
            run_system: Box::new(move || cross(&System, size, n / 2)),
            ops: n / 2,
        });
    }
    cases.push(Case {
        name: "pair 256 KiB (large), 1 thread".into(),
        run_hakmem: Box::new(move || pair(&HakMem, 256 << 10, n / 50)),
        run_system: Box::new(move || pair(&System, 256 << 10, n / 50)),
        ops: n / 50,
    });

    println!("hakmem vs system allocator: {rounds} interleaved rounds, medians; ratio = hakmem time / system time");
    println!(
        "{:<34} {:>12} {:>12} {:>8}",
        "workload", "hakmem ns/op", "system ns/op", "ratio"
    );
    let mut ratios = Vec::new();
    for c in &cases {
        // warm up both
        (c.run_hakmem)();
        (c.run_system)();
        let (mut th, mut ts) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            let t = Instant::now();
            (c.run_hakmem)();
            th.push(t.elapsed());
            let t = Instant::now();
            (c.run_system)();
            ts.push(t.elapsed());
        }
        let (h, s) = (median(th), median(ts));
        let per = |d: Duration| d.as_nanos() as f64 / c.ops as f64;
        let ratio = h.as_secs_f64() / s.as_secs_f64();
        ratios.push(ratio);
        println!(
            "{:<34} {:>12.2} {:>12.2} {:>8.2}",
            c.name,
            per(h),
            per(s),
            ratio
        );
    }
    let gm = (ratios.iter().map(|r| r.ln()).sum::<f64>() / ratios.len() as f64).exp();
    println!("{:<34} {:>12} {:>12} {:>8.2}", "geometric mean", "", "", gm);
}
