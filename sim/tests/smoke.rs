//! Seeded traces of every mix and random fuzz-byte traces replay cleanly
//! with a check after every op (both geometries).

use hakmem::Config;
use hakmem_sim::{
    decode, generate, run, Mix, Op, OsFailKind, RunConfig, SimOsConfig, SplitMix64, Trace,
};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn every_mix_replays_cleanly_on_the_tiny_geometry() {
    let seeds = env("HAKMEM_SIM_SEEDS", 8);
    for mix in Mix::ALL {
        for seed in 0..seeds {
            let t = generate(mix, seed, 2000);
            if let Err(f) = run(&t, &RunConfig::tiny()) {
                panic!("mix {mix} seed {seed}: {f}\nreplay: hakmem-sim gen --mix {mix} --seed {seed} --ops 2000 | hakmem-sim replay -");
            }
        }
    }
}

/// Large blocks only (2..=24 segments of the tiny geometry, where sharing
/// starts at 2), freed in random order by their own or another thread,
/// some reallocated, with refused maps now and then: the cached mappings
/// are split and spliced into each other, and the checker runs after
/// every op over the simulated OS's books. Twice: on a kernel that moves
/// mappings made of several VMAs (Linux 6.17 and later), and on one that
/// refuses to (older kernels), where splices of assembled mappings and
/// their growing remaps fail and the fallbacks (copying, leaving pieces
/// cached) must keep the books.
/// The same with exited threads' heaps parked whole and taken by the next
/// new thread (`Config::parked_heaps`; off in `Config::TINY`, on in the
/// production defaults): the parked heaps are checked after every op, new
/// threads get them warm, and the final trim releases them.
#[test]
fn every_mix_replays_cleanly_with_parked_heaps() {
    let seeds = env("HAKMEM_SIM_SEEDS", 8);
    let (mut reused, mut exits) = (0, 0);
    for mix in Mix::ALL {
        for seed in 0..seeds {
            let t = generate(mix, seed, 2000);
            exits += t
                .ops
                .iter()
                .filter(|op| matches!(op, Op::Exit { .. }))
                .count();
            let cfg = RunConfig {
                alloc: Config {
                    parked_heaps: 2,
                    ..Config::TINY
                },
                ..RunConfig::tiny()
            };
            match run(&t, &cfg) {
                Ok(r) => reused += r.stats.heaps_reused,
                Err(f) => panic!("mix {mix} seed {seed} (parked heaps): {f}"),
            }
        }
    }
    assert!(reused > 0, "no parked heap was reused ({exits} exits)");
}

/// A trace's `set parked-heaps` reaches the allocator: on the tiny
/// geometry (which parks nothing by itself) the second thread takes the
/// first one's heap.
#[test]
fn a_trace_setting_parks_heaps_on_the_tiny_geometry() {
    let ops = "t1 alloc p1 16\nt1 exit\nt2 alloc p2 16\nt2 free p1\n";
    let reused = |text: &str| {
        let t = hakmem_sim::Trace::parse(text).unwrap();
        let r = run(&t, &RunConfig::tiny()).unwrap_or_else(|f| panic!("{text}: {f}"));
        (r.stats.heaps_reused, r.stats.adoptions)
    };
    // parked: t2 gets t1's heap whole; not parked: t1's heap flushed and
    // abandoned its slab, which t2 adopts
    assert_eq!(reused(&format!("set parked-heaps 1\n{ops}")), (1, 0));
    assert_eq!(reused(ops), (0, 1));
    assert_eq!(reused(&format!("set parked-heaps 0\n{ops}")), (0, 1));
}

#[test]
fn large_blocks_share_cached_pages_under_the_checker() {
    for moves_multi_vma in [true, false] {
        large_blocks_share_cached_pages(moves_multi_vma);
    }
}

fn large_blocks_share_cached_pages(moves_multi_vma: bool) {
    let seg = 64 * 1024;
    // 2..=24 segments, less up to a page.
    let large_size = |rng: &mut SplitMix64| (2 + rng.below(23)) * seg - rng.below(4096);
    let seeds = env("HAKMEM_SIM_SEEDS", 8);
    let (mut splits, mut splices, mut refusals, mut peak_vmas) = (0, 0, 0, 0);
    for seed in 0..seeds {
        let mut rng = SplitMix64::new(seed);
        let mut ops = Vec::new();
        let mut live: Vec<u32> = Vec::new();
        for id in 0..400u32 {
            let t = rng.below(2) as u8;
            if live.len() > 6 || (!live.is_empty() && rng.below(3) == 0) {
                let victim = live.swap_remove(rng.below(live.len()));
                if rng.below(5) == 0 {
                    let size = large_size(&mut rng);
                    ops.push(Op::Realloc {
                        t,
                        id: victim,
                        size,
                    });
                    live.push(victim);
                } else {
                    ops.push(Op::Free { t, id: victim });
                }
            }
            if rng.below(40) == 0 {
                ops.push(Op::OsFail {
                    what: OsFailKind::Map,
                    count: 1,
                });
            }
            let size = large_size(&mut rng);
            ops.push(Op::Alloc {
                t,
                id,
                size,
                align: 16,
                zeroed: rng.below(8) == 0,
            });
            live.push(id);
        }
        let t = Trace::new(ops);
        let cfg = RunConfig {
            alloc: Config {
                large_cache_bytes: 64 * seg,
                large_cache_count: 8,
                large_cache_share: 3,
                ..Config::TINY
            },
            sim_os: SimOsConfig {
                moves_multi_vma,
                ..RunConfig::tiny().sim_os
            },
            ..RunConfig::tiny()
        };
        match run(&t, &cfg) {
            Ok(r) => {
                splits += r.stats.large_splits;
                splices += r.stats.large_splices;
                refusals += r.os.multi_vma_refusals;
                peak_vmas = peak_vmas.max(r.os.peak_vmas);
            }
            Err(f) => panic!("seed {seed} (moves_multi_vma {moves_multi_vma}): {f}\n{t}"),
        }
    }
    assert!(
        splits > 0 && splices > 0,
        "no cached mapping was split ({splits}) or spliced ({splices})"
    );
    // An older kernel's refusals happened, so the fallbacks ran; a newer
    // one refuses nothing.
    assert_eq!(
        refusals > 0,
        !moves_multi_vma,
        "{refusals} multi-VMA moves refused (moves_multi_vma {moves_multi_vma})"
    );
    eprintln!(
        "moves_multi_vma {moves_multi_vma}: {splits} splits, {splices} splices, \
         {refusals} multi-VMA refusals, at most {peak_vmas} VMAs"
    );
}

#[test]
fn every_mix_replays_cleanly_on_the_production_geometry() {
    for mix in Mix::ALL {
        let t = generate(mix, 1, 3000);
        let r = run(&t, &RunConfig::production().check_every(50))
            .unwrap_or_else(|f| panic!("mix {mix}: {f}"));
        assert!(r.checks > 0);
    }
}

#[test]
fn random_fuzz_bytes_replay_cleanly() {
    let n = env("HAKMEM_SIM_SEEDS", 8) * 25;
    let mut rng = SplitMix64::new(env("HAKMEM_SIM_SEED", 42));
    let mut misuse = 0;
    for i in 0..n {
        let len = rng.below(4000);
        let bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        let t = decode(&bytes);
        match run(&t, &RunConfig::tiny()) {
            Ok(r) => misuse += r.misuse.len(),
            Err(f) => panic!("random input {i}: {f}\n{t}"),
        }
    }
    assert!(
        misuse > 0,
        "the decoder produced no misuse op in {n} inputs"
    );
}
