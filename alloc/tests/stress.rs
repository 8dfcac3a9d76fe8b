//! Native multi-threaded stress: real threads pass blocks to each other
//! through a shared slot array; every block carries a per-allocation
//! pattern verified at free; threads exit and are replaced; the checker
//! runs at every quiescent point, and at the end — everything freed, every
//! heap gone, `trim` — the mapping falls back to the metadata.
//!
//! Size with HAKMEM_STRESS_OPS (ops per thread per round, default 20000)
//! and HAKMEM_STRESS_ROUNDS (default 4).

use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};

use hakmem::{Allocator, Config, Native, NativeOs};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// splitmix64
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn random_size(r: &mut Rng) -> usize {
    match r.below(100) {
        0..=69 => 8 + r.below(512) as usize,
        70..=94 => 512 + r.below(8192) as usize,
        95..=98 => 8192 + r.below(40_000) as usize,
        _ => 40_000 + r.below(400_000) as usize,
    }
}

/// Block layout: [size: u64][seed: u64][pattern bytes...].
fn write_block(p: NonNull<u8>, size: usize, seed: u64) {
    // SAFETY: the block is ours and at least `size >= 16` bytes long.
    unsafe {
        let w = p.as_ptr().cast::<u64>();
        w.write(size as u64);
        w.add(1).write(seed);
        for i in 16..size {
            *p.as_ptr().add(i) = (seed as u8).wrapping_add(i as u8);
        }
    }
}

fn verify_block(p: NonNull<u8>) -> usize {
    // SAFETY: a live block written by `write_block`.
    unsafe {
        let w = p.as_ptr().cast::<u64>();
        let size = w.read() as usize;
        let seed = w.add(1).read();
        for i in 16..size {
            assert_eq!(
                *p.as_ptr().add(i),
                (seed as u8).wrapping_add(i as u8),
                "block {p:?} corrupted at {i}"
            );
        }
        size
    }
}

#[test]
fn threads_passing_blocks_through_a_shared_array_keep_the_books() {
    let ops = env("HAKMEM_STRESS_OPS", 20_000);
    let rounds = env("HAKMEM_STRESS_ROUNDS", 4);
    let threads = 4;
    let slots: Vec<AtomicUsize> = (0..4096).map(|_| AtomicUsize::new(0)).collect();
    let a: Allocator<Native> = Allocator::new(NativeOs, Config::DEFAULT);
    for round in 0..rounds {
        std::thread::scope(|s| {
            for t in 0..threads {
                let (a, slots) = (&a, &slots);
                s.spawn(move || {
                    let mut h = a.heap().unwrap();
                    let mut r = Rng((round * 1000 + t) as u64 + 1);
                    for _ in 0..ops {
                        let slot = &slots[r.below(slots.len() as u64) as usize];
                        let size = random_size(&mut r).max(16);
                        let p = h.alloc(size, 16).unwrap();
                        write_block(p, size, r.next());
                        let old = slot.swap(p.as_ptr() as usize, Ordering::AcqRel);
                        if let Some(old) = NonNull::new(old as *mut u8) {
                            verify_block(old);
                            h.free(old).unwrap();
                        }
                    }
                    // the heap exits here with its caches and slabs
                });
            }
        });
        // Quiescent: every thread of the round has exited.
        let live: Vec<usize> = slots
            .iter()
            .map(|s| s.load(Ordering::Acquire))
            .filter(|&p| p != 0)
            .collect();
        // SAFETY: no other thread runs.
        let report = unsafe { a.check_live(live.iter().copied()) }
            .unwrap_or_else(|v| panic!("round {round}: {v}"));
        assert_eq!(report.live_small + report.live_large, live.len());
    }
    let st = a.stats();
    assert!(st.remote_frees > 0 && st.adoptions > 0, "{st:?}");
    {
        let mut h = a.heap().unwrap();
        for s in &slots {
            if let Some(p) = NonNull::new(s.swap(0, Ordering::AcqRel) as *mut u8) {
                verify_block(p);
                h.free(p).unwrap();
            }
        }
    }
    a.trim();
    // SAFETY: single-threaded from here.
    unsafe { a.check() }.unwrap_or_else(|v| panic!("{v}"));
    let st = a.stats();
    assert_eq!(
        st.mapped_bytes,
        a.meta_bytes() + a.config().retain_bytes.min(st.segments_cached * (2 << 20)),
        "after everything was freed, every heap exited and trim(): {st:?}"
    );
    assert_eq!(st.segments_live, 0);
    assert_eq!(st.large_live + st.large_cached, 0);
}
