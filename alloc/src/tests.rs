//! Unit tests of the allocator core over the native OS layer with the tiny
//! geometry, so slab-empty and segment-empty transitions happen in a few
//! ops. Every test ends with the checker (`check_live` with the blocks it
//! still holds).

use core::ptr::NonNull;

use crate::geometry::Geometry;
use crate::native::{NativeOs, NativeSched};
use crate::platform::MutexOps;
use crate::size_class::{class_of, class_size};
use crate::{AllocError, Allocator, Config, FreeError, Invariant, Platform};

struct Tiny;
impl Platform for Tiny {
    type Os = NativeOs;
    type Sched = NativeSched;
    const GEOMETRY: Geometry = Geometry::TINY;
}

fn tiny() -> Allocator<Tiny> {
    Allocator::new(NativeOs, Config::TINY)
}

fn check(a: &Allocator<Tiny>, live: &[NonNull<u8>]) -> crate::CheckReport {
    // SAFETY: single-threaded test: quiescent.
    unsafe { a.check_live(live.iter().map(|p| p.as_ptr() as usize)) }
        .unwrap_or_else(|v| panic!("{v}"))
}

fn fill(p: NonNull<u8>, n: usize, seed: u8) {
    // SAFETY: the caller owns `n` bytes at `p`.
    unsafe { core::ptr::write_bytes(p.as_ptr(), seed, n) }
}

fn verify(p: NonNull<u8>, n: usize, seed: u8) {
    // SAFETY: the caller owns `n` bytes at `p`.
    let s = unsafe { core::slice::from_raw_parts(p.as_ptr(), n) };
    assert!(
        s.iter().all(|&b| b == seed),
        "block {p:?} lost its contents"
    );
}

#[test]
fn every_class_allocates_aligned_usable_blocks_and_frees_cleanly() {
    let a = tiny();
    let mut h = a.heap().unwrap();
    let mut live = Vec::new();
    for c in 0..Geometry::TINY.class_count() {
        for _ in 0..5 {
            let size = class_size(c);
            let p = h.alloc(size, 16).unwrap();
            assert_eq!(p.as_ptr() as usize % 16, 0);
            assert!(h.usable_size(p).unwrap() >= size);
            fill(p, size, c as u8);
            live.push((p, size, c as u8));
        }
    }
    check(&a, &live.iter().map(|l| l.0).collect::<Vec<_>>());
    for (p, size, seed) in live.drain(..) {
        verify(p, size, seed);
        h.free(p).unwrap();
    }
    check(&a, &[]);
}

#[test]
fn zero_size_requests_get_unique_blocks() {
    let a = tiny();
    let mut h = a.heap().unwrap();
    let p = h.alloc(0, 1).unwrap();
    let q = h.alloc(0, 1).unwrap();
    assert_ne!(p, q);
    h.free(p).unwrap();
    h.free(q).unwrap();
}

#[test]
fn double_free_is_reported_while_cached_drained_and_large() {
    let a = tiny();
    let mut h = a.heap().unwrap();
    let p = h.alloc(40, 16).unwrap();
    h.free(p).unwrap();
    assert_eq!(
        h.free(p),
        Err(FreeError::DoubleFree {
            ptr: p.as_ptr() as usize
        })
    );
    // (p, q, p) with p drained to its slab's free list in between
    let p = h.alloc(40, 16).unwrap();
    let q = h.alloc(40, 16).unwrap();
    h.free(p).unwrap();
    h.free(q).unwrap();
    h.flush();
    let e = h.free(p).unwrap_err();
    assert!(
        matches!(
            e,
            FreeError::DoubleFree { .. } | FreeError::NotAllocated { .. }
        ),
        "{e:?}"
    );
    let big = h.alloc(100_000, 16).unwrap();
    h.free(big).unwrap();
    assert!(h.free(big).is_err());
    check(&a, &[]);
}

#[test]
fn bogus_pointers_are_reported_without_touching_them() {
    let a = tiny();
    let mut h = a.heap().unwrap();
    let p = h.alloc(100, 16).unwrap();
    let stack = 0u64;
    let sp = NonNull::from(&stack).cast::<u8>();
    assert_eq!(
        h.free(sp),
        Err(FreeError::NotOwned {
            ptr: sp.as_ptr() as usize
        })
    );
    // SAFETY: p + 8 is inside the block.
    let inner = unsafe { NonNull::new_unchecked(p.as_ptr().add(8)) };
    assert_eq!(
        h.free(inner),
        Err(FreeError::Interior {
            ptr: inner.as_ptr() as usize,
            block: p.as_ptr() as usize
        })
    );
    // An uncarved block of the same slab.
    // SAFETY: only the address is formed, never dereferenced by the test.
    let far = unsafe {
        NonNull::new_unchecked(
            p.as_ptr()
                .add(class_size(crate::size_class::class_of(100)) * 3),
        )
    };
    assert!(matches!(h.free(far), Err(FreeError::NotAllocated { .. })));
    let big = h.alloc(50_000, 16).unwrap();
    // SAFETY: address arithmetic only.
    let big_inner = unsafe { NonNull::new_unchecked(big.as_ptr().add(64)) };
    assert!(matches!(h.free(big_inner), Err(FreeError::Interior { .. })));
    check(&a, &[p, big]);
    h.free(p).unwrap();
    h.free(big).unwrap();
    check(&a, &[]);
}

#[test]
fn remote_frees_are_collected_by_the_owner() {
    let a = tiny();
    let mut owner = a.heap().unwrap();
    let mut other = a.heap().unwrap();
    let blocks: Vec<_> = (0..20).map(|_| owner.alloc(64, 16).unwrap()).collect();
    for &b in &blocks[..10] {
        other.free(b).unwrap();
    }
    let r = check(&a, &blocks[10..]);
    assert_eq!(r.remote_blocks, 10);
    owner.collect();
    let r = check(&a, &blocks[10..]);
    assert_eq!(r.remote_blocks, 0);
    assert!(a.stats().remote_frees >= 10);
    for &b in &blocks[10..] {
        owner.free(b).unwrap();
    }
    owner.flush();
    check(&a, &[]);
}

#[test]
fn a_remote_queue_that_fits_the_empty_cache_moves_there_whole() {
    // TINY caches 8 blocks of 32 B and refills 4 at a time.
    let a = tiny();
    let mut owner = a.heap().unwrap();
    let mut other = a.heap().unwrap();
    let c = class_of(32);
    assert_eq!(owner.data().caches[c].cap, 8);
    let mut blocks = Vec::new();
    while blocks.len() < 8 || owner.data().caches[c].count() != 0 {
        blocks.push(owner.alloc(32, 16).unwrap());
    }
    // All from one fresh slab, carved in order: the owner's free list is
    // empty and so is its cache.
    let slab_of = |p: NonNull<u8>| p.as_ptr() as usize >> Geometry::TINY.small_slab_shift;
    assert!(blocks.iter().all(|&p| slab_of(p) == slab_of(blocks[0])));
    let freed: Vec<_> = blocks.drain(..6).collect();
    for (i, &b) in freed.iter().enumerate() {
        fill(b, 32, i as u8);
        other.free(b).unwrap();
    }
    let r = check(&a, &blocks);
    assert_eq!(r.remote_blocks, 6);
    // The refill takes all six, more than its batch of four, unwalked.
    let first = owner.alloc(32, 16).unwrap();
    assert_eq!(owner.data().caches[c].count(), 5);
    let r = check(&a, &[&blocks[..], &[first]].concat());
    assert_eq!(r.remote_blocks, 0);
    // Handed out in stack order: the last freed first.
    let mut again = vec![first];
    again.extend((0..5).map(|_| owner.alloc(32, 16).unwrap()));
    let mut want = freed.clone();
    want.reverse();
    assert_eq!(again, want);
    blocks.extend(&again);
    check(&a, &blocks);
    for b in blocks {
        owner.free(b).unwrap();
    }
    drop(other);
    owner.flush();
    check(&a, &[]);
}

#[test]
fn checker_reports_a_remote_count_that_disagrees_with_the_queue() {
    let a = tiny();
    let mut owner = a.heap().unwrap();
    let mut other = a.heap().unwrap();
    let p = owner.alloc(32, 16).unwrap();
    let q = owner.alloc(32, 16).unwrap();
    other.free(p).unwrap();
    check(&a, &[q]);
    let seg = crate::segment::Segment::<Tiny>::of(p.as_ptr() as usize);
    // SAFETY: the segment and slab records of a block we allocated, live.
    let remote = unsafe { &(*(*seg).slab_of(p.as_ptr() as usize)).remote };
    remote.skew_count(1);
    // SAFETY: single-threaded.
    let v = unsafe { a.check_live([q.as_ptr() as usize]) }.unwrap_err();
    assert_eq!(
        (v.invariant, v.clause),
        (Invariant::I3, "REMOTE-COUNT"),
        "{v}"
    );
    remote.skew_count(-1);
    check(&a, &[q]);
    owner.free(q).unwrap();
}

#[test]
fn exited_heaps_slabs_are_adopted_and_remote_frees_not_lost() {
    let a = tiny();
    let mut keeper = a.heap().unwrap();
    let blocks: Vec<_> = {
        let mut t = a.heap().unwrap();
        let v: Vec<_> = (0..30)
            .map(|i| {
                let p = t.alloc(48, 16).unwrap();
                fill(p, 48, i);
                p
            })
            .collect();
        v
        // `t` exits here with 30 live blocks
    };
    check(&a, &blocks);
    // Another thread frees half of them after the owner exited.
    for &b in &blocks[..15] {
        keeper.free(b).unwrap();
    }
    check(&a, &blocks[15..]);
    // A new heap adopts the abandoned slabs when it needs that class.
    let mut adopter = a.heap().unwrap();
    let fresh: Vec<_> = (0..40).map(|_| adopter.alloc(48, 16).unwrap()).collect();
    assert!(a.stats().adoptions > 0);
    for (i, &b) in blocks[15..].iter().enumerate() {
        verify(b, 48, 15 + i as u8);
        adopter.free(b).unwrap();
    }
    for &b in &fresh {
        adopter.free(b).unwrap();
    }
    drop(adopter);
    drop(keeper);
    a.trim();
    check(&a, &[]);
    assert_eq!(a.stats().mapped_bytes, a.meta_bytes(), "{:?}", a.stats());
}

#[test]
fn interleaved_drains_return_every_block_to_its_own_slab() {
    // Caches that hold blocks of several slabs per class, and no periodic
    // drain while the test fills them.
    let a = Allocator::<Tiny>::new(
        NativeOs,
        Config {
            cache_bytes: 64 * 1024,
            cache_max: 4096,
            drain_interval: u32::MAX,
            ..Config::TINY
        },
    );
    let mut h = a.heap().unwrap();
    // Unequal counts, the smallest class with the fewest: the walks end
    // in an order unlike the classes' (a finished walk's slot is reused).
    let sizes = [16, 48, 128, 256];
    let counts = [60, 300, 150, 220];
    let blocks: Vec<_> = (0..300)
        .flat_map(|i| {
            sizes
                .iter()
                .zip(counts)
                .filter(move |&(_, k)| i < k)
                .map(|(&s, _)| s)
                .collect::<Vec<_>>()
        })
        .map(|s| h.alloc(s, 16).unwrap())
        .collect();
    // Freed in a scrambled order (a stride coprime to the count), so each
    // cache alternates between slabs and holds runs of every length.
    let n = blocks.len();
    for i in 0..n {
        h.free(blocks[i * 7 % n]).unwrap();
    }
    let classes: Vec<usize> = sizes.iter().map(|&s| class_of(s)).collect();
    let before: Vec<u32> = classes
        .iter()
        .map(|&c| h.data().caches[c].count())
        .collect();
    assert!(before.iter().all(|&k| k >= 60), "{before:?}");
    let slabs_before = a.stats().slabs_retired;

    // Half of every cache, all classes walked side by side: the books
    // (every block on its own slab's list, `used` and the caches' counts
    // balanced) hold, and each cache kept half.
    h.data().drain_all(|_, k| k / 2);
    check(&a, &[]);
    for (i, &c) in classes.iter().enumerate() {
        assert_eq!(h.data().caches[c].count(), before[i] / 2, "class {c}");
    }
    // All of it (a flush): the caches are empty and the emptied slabs
    // retired (I5 is checked after a flush).
    h.flush();
    check(&a, &[]);
    for &c in &classes {
        assert_eq!(h.data().caches[c].count(), 0, "class {c}");
    }
    assert!(a.stats().slabs_retired > slabs_before);
}

#[test]
fn overflowing_frees_bypass_the_full_cache_to_their_slabs() {
    // Caches that never grow, so the capacity stays what it was.
    let a = Allocator::<Tiny>::new(
        NativeOs,
        Config {
            cache_bytes_max: 0,
            ..Config::TINY
        },
    );
    let mut h = a.heap().unwrap();
    let c = class_of(48);
    let cap = h.data().caches[c].cap;
    let blocks: Vec<_> = (0..4 * cap).map(|_| h.alloc(48, 16).unwrap()).collect();
    for &b in &blocks {
        h.free(b).unwrap();
        // Never over capacity between calls, and the books balance after
        // every overflowing free (the block went to its slab).
        assert!(h.data().caches[c].count() <= cap);
    }
    assert_eq!(h.data().caches[c].count(), cap);
    check(&a, &[]);
}

#[test]
fn caches_grow_under_overflowing_batches_and_shrink_when_left_unused() {
    // 64 B blocks: a cache of 4 to start, up to 16; a periodic drain every
    // 4 refills.
    let a = Allocator::<Tiny>::new(
        NativeOs,
        Config {
            cache_bytes: 4 * 64,
            cache_bytes_max: 16 * 64,
            cache_max: 64,
            drain_interval: 4,
            ..Config::TINY
        },
    );
    let mut h = a.heap().unwrap();
    let c = class_of(64);
    assert_eq!(h.data().caches[c].cap, 4);
    // Batches of 40, freed in a row: each overflows the cache by far.
    let mut caps = Vec::new();
    for _ in 0..4 {
        let batch: Vec<_> = (0..40).map(|_| h.alloc(64, 16).unwrap()).collect();
        for b in batch {
            h.free(b).unwrap();
            let cache = &h.data().caches[c];
            assert!(cache.count() <= cache.cap);
        }
        caps.push(h.data().caches[c].cap);
        check(&a, &[]);
    }
    // Doubled at each half-cache of overflows, up to the maximum, and
    // kept full.
    assert_eq!(caps, [16, 16, 16, 16]);
    assert_eq!(h.data().caches[c].count(), 16);
    // Another class refills (and so drives periodic drains) while the 64 B
    // class is left alone: it goes back to its starting capacity.
    for _ in 0..12 {
        let batch: Vec<_> = (0..16).map(|_| h.alloc(32, 16).unwrap()).collect();
        for b in batch {
            h.free(b).unwrap();
        }
    }
    let cache = &h.data().caches[c];
    assert_eq!(cache.cap, 4, "an unused class shrinks back");
    assert!(cache.count() <= 4);
    check(&a, &[]);
}

#[test]
fn periodic_drains_halve_only_the_caches_left_unused() {
    // Caches of 16 blocks at most; a periodic drain every 4 refills.
    let a = Allocator::<Tiny>::new(
        NativeOs,
        Config {
            cache_bytes: 16 * 64,
            cache_max: 16,
            drain_interval: 4,
            ..Config::TINY
        },
    );
    let mut h = a.heap().unwrap();
    let (idle, busy, other) = (class_of(64), class_of(16), class_of(32));
    // Class `idle`: a full cache, then left alone.
    let cap = h.data().caches[idle].cap;
    let parked: Vec<_> = (0..cap).map(|_| h.alloc(64, 16).unwrap()).collect();
    for &b in &parked {
        h.free(b).unwrap();
    }
    assert_eq!(h.data().caches[idle].count(), cap);
    // Class `busy`: one block taken from its cache per round and kept.
    // Class `other`: batches of twice its cache's capacity, so each round
    // empties its cache and refills it twice (half a cache each), which
    // is what drives the periodic drains.
    let batch_len = 2 * h.data().caches[other].cap as usize;
    let mut kept = Vec::new();
    let mut busy_count = Vec::new();
    let mut idle_count = Vec::new();
    for _ in 0..24 {
        kept.push(h.alloc(16, 16).unwrap());
        let batch: Vec<_> = (0..batch_len).map(|_| h.alloc(32, 16).unwrap()).collect();
        for b in batch {
            h.free(b).unwrap();
        }
        busy_count.push(h.data().caches[busy].count());
        idle_count.push(h.data().caches[idle].count());
        check(&a, &kept);
    }
    // The idle class was halved, down to nothing in the end (halving
    // rounds down); the class in use lost one block a round, to the
    // program (or refilled when it had none left), none to the drains;
    // the refilling class kept its blocks.
    assert!(
        idle_count.windows(2).all(|w| w[1] <= w[0]),
        "{idle_count:?}"
    );
    assert_eq!(*idle_count.last().unwrap(), 0, "{idle_count:?}");
    assert!(
        busy_count
            .windows(2)
            .all(|w| w[1] + 1 == w[0] || (w[0] == 0 && w[1] > 0)),
        "{busy_count:?}"
    );
    assert!(h.data().caches[other].count() > 0);
}

#[test]
fn empty_slabs_retire_segments_cache_and_trim_returns_everything() {
    let a = tiny();
    {
        let mut h = a.heap().unwrap();
        // Enough 256-byte blocks to fill several 64 KiB tiny segments.
        let blocks: Vec<_> = (0..2000).map(|_| h.alloc(256, 16).unwrap()).collect();
        let s = a.stats();
        assert!(s.segments_live >= 8, "{s:?}");
        for b in blocks {
            h.free(b).unwrap();
        }
        h.flush();
        check(&a, &[]);
        let s = a.stats();
        assert!(s.slabs_retired > 0 && s.segments_unmapped > 0, "{s:?}");
        assert!(
            s.segments_cached * Geometry::TINY.segment_size() <= Config::TINY.segment_cache_bytes
        );
    }
    a.trim();
    check(&a, &[]);
    let s = a.stats();
    assert_eq!(s.mapped_bytes, a.meta_bytes(), "{s:?}");
    assert_eq!(s.segments_live, 0);
}

#[test]
fn large_blocks_are_cached_and_reused() {
    let a = tiny();
    let mut h = a.heap().unwrap();
    for round in 0..10 {
        let p = h.alloc(200_000, 16).unwrap();
        fill(p, 200_000, round);
        h.free(p).unwrap();
    }
    let s = a.stats();
    assert_eq!(s.large_allocs, 10);
    assert!(s.large_cache_hits >= 9, "{s:?}");
    let z = h.alloc_zeroed(200_000, 16).unwrap();
    verify(z, 200_000, 0);
    h.free(z).unwrap();
    check(&a, &[]);
    a.trim();
    assert_eq!(a.stats().large_cached, 0);
    check(&a, &[]);
}

#[test]
fn large_mappings_give_up_their_surplus_and_take_in_cached_pages() {
    let seg = Geometry::TINY.segment_size();
    let a = Allocator::<Tiny>::new(
        NativeOs,
        Config {
            large_cache_bytes: 64 * seg,
            large_cache_count: 16,
            ..Config::TINY
        },
    );
    assert_eq!(a.share_min(), 2 * seg);
    let mut h = a.heap().unwrap();
    // A 16-segment block, freed: one cached mapping.
    let big = h.alloc(16 * seg - 4096, 16).unwrap();
    fill(big, 16 * seg - 4096, 0xa1);
    h.free(big).unwrap();
    check(&a, &[]);
    let maps = a.stats().maps;
    // A 3-segment block fits no cached mapping within 25 %: it takes the
    // big one's first 3 segments (same address), and the other 13 are
    // cached on their own (a split: one mapping more, no system call).
    let head = h.alloc(3 * seg - 4096, 16).unwrap();
    assert_eq!(head, big, "the split keeps the mapping's start");
    let s = a.stats();
    assert_eq!((s.maps, s.large_cached), (maps + 1, 1), "{s:?}");
    check(&a, &[head]);
    // The 13 segments serve a block that fits them within 25 %.
    let tail = h.alloc(12 * seg, 16).unwrap();
    assert_eq!(
        tail.as_ptr() as usize,
        big.as_ptr() as usize + 3 * seg,
        "the surplus was cached at the segment boundary"
    );
    check(&a, &[head, tail]);
    fill(head, 3 * seg - 4096, 0xb2);
    fill(tail, 12 * seg, 0xc3);
    h.free(head).unwrap();
    h.free(tail).unwrap();
    check(&a, &[]);
    // 18 segments: more than either cached mapping. The bigger one (13
    // segments) is moved to the start of a fresh mapping and the other
    // after it: resident pages, not fresh zero ones.
    let (maps, unmaps) = (a.stats().maps, a.stats().unmaps);
    let n = 18 * seg - 4096;
    let q = h.alloc(n, 16).unwrap();
    let s = a.stats();
    assert_eq!(
        s.large_cached, 0,
        "both cached mappings were taken in: {s:?}"
    );
    assert_eq!((s.maps, s.unmaps), (maps + 1, unmaps + 2), "{s:?}");
    check(&a, &[q]);
    let base = q.as_ptr() as usize & !(seg - 1);
    // SAFETY: both bytes lie inside the live block `q`.
    let (in_first, in_second) = unsafe {
        (
            *((base + 5 * seg) as *const u8),
            *((base + 13 * seg + 4096) as *const u8),
        )
    };
    assert_eq!(
        (in_first, in_second),
        (0xc3, 0xb2),
        "the pages of both cached mappings were spliced in"
    );
    // The block is the caller's whole: every byte writable and kept.
    fill(q, n, 0xd4);
    verify(q, n, 0xd4);
    // Growing it: the kernel grows no mapping of several VMAs, but since
    // Linux 6.17 moves it whole into a bigger reservation (`remap`'s last
    // step) rather than leave realloc to copy it (which would cache the
    // old mapping).
    let r = h.realloc(q, 30 * seg, 16).unwrap();
    verify(r, n, 0xd4);
    if kernel_at_least(6, 17) {
        let s = a.stats();
        assert_eq!(s.large_cached, 0, "the pieces moved, not copied: {s:?}");
    }
    check(&a, &[r]);
    h.free(r).unwrap();
    check(&a, &[]);
    a.trim();
    check(&a, &[]);
}

/// Whether the running kernel is at least `major.minor`.
fn kernel_at_least(major: u32, minor: u32) -> bool {
    // SAFETY: `uname` fills the zeroed struct we pass.
    let mut u: libc::utsname = unsafe { core::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::uname(&mut u) } != 0 {
        return false;
    }
    let release: String = u
        .release
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8 as char)
        .collect();
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let num = |p: Option<&str>| p.and_then(|x| x.parse::<u32>().ok()).unwrap_or(0);
    let (ma, mi) = (num(parts.next()), num(parts.next()));
    (ma, mi) >= (major, minor)
}

#[test]
fn a_large_block_takes_the_closest_cached_mapping_of_either_cache() {
    // TINY: a heap keeps up to 128 KiB of freed mappings for itself.
    let a = tiny();
    let mut h = a.heap().unwrap();
    let g = h.alloc(100 * 1024, 16).unwrap();
    let l = h.alloc(120 * 1024, 16).unwrap();
    h.free(g).unwrap();
    // `l`'s mapping does not fit beside `g`'s in the heap's own cache:
    // `g`'s goes to the global cache.
    h.free(l).unwrap();
    check(&a, &[]);
    // Neither fits 60 KiB within 25 %; the global one is closer.
    let q = h.alloc(60 * 1024, 16).unwrap();
    assert_eq!(q, g, "the closer mapping, from the global cache");
    // And a fit in the heap's own cache is taken from there.
    let r = h.alloc(120 * 1024, 16).unwrap();
    assert_eq!(r, l);
    check(&a, &[q, r]);
    h.free(q).unwrap();
    h.free(r).unwrap();
    check(&a, &[]);
}

#[test]
fn realloc_keeps_contents_in_place_or_moved() {
    let a = tiny();
    let mut h = a.heap().unwrap();
    let p = h.alloc(100, 16).unwrap();
    fill(p, 100, 7);
    let q = h.realloc(p, 110, 16).unwrap();
    assert_eq!(p, q, "same class: in place");
    let r = h.realloc(q, 1500, 16).unwrap();
    verify(r, 100, 7);
    let s = h.realloc(r, 300_000, 16).unwrap();
    verify(s, 100, 7);
    let t = h.realloc(s, 40, 16).unwrap();
    verify(t, 40, 7);
    assert!(matches!(
        h.realloc(p, 10, 16),
        Err(crate::ReallocError::Free(_))
    ));
    check(&a, &[t]);
    h.free(t).unwrap();
    check(&a, &[]);
}

#[test]
fn alignments_of_every_power_of_two_up_to_four_segments_are_honoured() {
    let a = tiny();
    let mut h = a.heap().unwrap();
    let mut live = Vec::new();
    let mut align = 1;
    while align <= Geometry::TINY.segment_size() * 4 {
        for size in [1, 24, 100, 3000] {
            let p = h.alloc(size, align).unwrap();
            assert_eq!(p.as_ptr() as usize % align, 0, "align {align} size {size}");
            fill(p, size, 1);
            live.push(p);
        }
        align *= 2;
    }
    assert_eq!(h.alloc(8, 3), Err(AllocError::BadAlign { align: 3 }));
    assert_eq!(h.alloc(8, 0), Err(AllocError::BadAlign { align: 0 }));
    check(&a, &live);
    // An over-aligned block: its interior is an error, and so is a second free.
    let big = h.alloc(100, Geometry::TINY.segment_size() * 2).unwrap();
    // SAFETY: address arithmetic only.
    let inner = unsafe { NonNull::new_unchecked(big.as_ptr().add(16)) };
    assert!(matches!(h.free(inner), Err(FreeError::Interior { .. })));
    assert!(h.usable_size(big).unwrap() >= 100);
    h.free(big).unwrap();
    assert!(
        h.free(big).is_err(),
        "a second free of an over-aligned block"
    );
    for p in live {
        h.free(p).unwrap();
    }
    check(&a, &[]);
    drop(h);
    a.trim();
    assert_eq!(
        a.stats().mapped_bytes,
        a.meta_bytes(),
        "over-aligned mappings are unmapped"
    );
}

#[test]
fn impossible_sizes_are_errors_not_crashes() {
    let a = tiny();
    let mut h = a.heap().unwrap();
    assert!(matches!(
        h.alloc(usize::MAX, 16),
        Err(AllocError::TooLarge { .. })
    ));
    assert!(matches!(
        h.alloc(usize::MAX / 2, 16),
        Err(AllocError::TooLarge { .. } | AllocError::OutOfMemory(_))
    ));
    assert!(matches!(
        h.alloc(1 << 47, 16),
        Err(AllocError::OutOfMemory(_))
    ));
    check(&a, &[]);
}

#[test]
fn checker_reports_a_live_block_missing_from_the_callers_set() {
    let a = tiny();
    let mut h = a.heap().unwrap();
    let p = h.alloc(32, 16).unwrap();
    let q = h.alloc(32, 16).unwrap();
    // SAFETY: single-threaded.
    let v = unsafe { a.check_live([p.as_ptr() as usize]) }.unwrap_err();
    assert_eq!(v.invariant, Invariant::I3);
    assert_eq!(v.clause, "SLAB-USED");
    check(&a, &[p, q]);
    h.free(p).unwrap();
    h.free(q).unwrap();
}

#[test]
fn checker_reports_a_broken_thread_cache() {
    // TINY caches 8 blocks of 32 B and refills 4 at a time: after one
    // malloc the array holds the other three carved blocks.
    let a = tiny();
    let mut h = a.heap().unwrap();
    let c = class_of(32);
    let p = h.alloc(32, 16).unwrap();
    check(&a, &[p]);
    assert_eq!(h.data().caches[c].array_len(), 3);
    // The check fails with `clause`, in a message that says `says`.
    let expect = |a: &Allocator<Tiny>, clause: (Invariant, &str), says: &str| {
        // SAFETY: single-threaded.
        let v = unsafe { a.check_live([p.as_ptr() as usize]) }.unwrap_err();
        assert_eq!((v.invariant, v.clause), clause, "{v}");
        assert!(v.to_string().contains(says), "{v}");
    };
    let tc_bound = (Invariant::I3, "TC-BOUND");
    // Each corruption is undone before the next, and a clean check follows.
    let cache = &mut h.data().caches[c];
    let (base, top, limit) = (cache.base, cache.top, cache.limit);
    // An array that is not the class's own slots.
    cache.base = base.wrapping_add(1);
    expect(&a, tc_bound, "not the class's own slots");
    let cache = &mut h.data().caches[c];
    cache.base = base;
    // `top` above `limit`.
    cache.top = limit.wrapping_add(1);
    expect(&a, tc_bound, "over capacity");
    let cache = &mut h.data().caches[c];
    cache.top = top;
    // A chain shorter than the capacity the array leaves it.
    cache.limit = limit.wrapping_sub(1);
    expect(&a, tc_bound, "chain length");
    let cache = &mut h.data().caches[c];
    cache.limit = limit;
    // The same block in two slots (top moved up over a copy of slot 0).
    // SAFETY: slot 3 is below `limit` (the array holds 3 of 8).
    unsafe { *top = *base };
    cache.top = top.wrapping_add(1);
    expect(&a, (Invariant::I1, "BLOCK-ONE"), "twice");
    let cache = &mut h.data().caches[c];
    cache.top = top;
    // A guard that is not null: an empty array's pop would hand it out.
    // SAFETY: the slot below `base` is the class's guard, in the heap's
    // slot.
    unsafe { *base.wrapping_sub(1) = *base };
    expect(&a, tc_bound, "below a thread cache's array is not null");
    // SAFETY: as above.
    unsafe { *base.wrapping_sub(1) = core::ptr::null_mut() };
    check(&a, &[p]);
    h.free(p).unwrap();
    check(&a, &[]);
}

#[test]
fn an_empty_array_pops_its_chain_not_its_guard() {
    // TINY caches 8 blocks of 32 B and refills 4 at a time: the first
    // malloc carves 4 into the array and returns one.
    let a = tiny();
    let mut h = a.heap().unwrap();
    let c = class_of(32);
    let mut live: Vec<_> = (0..3).map(|_| h.alloc(32, 16).unwrap()).collect();
    live.push(h.alloc(32, 16).unwrap());
    assert_eq!(h.data().caches[c].array_len(), 0);
    // The array is empty: its top is its base, and the slot below is the
    // guard. The next malloc must refill, not take the guard (null) or a
    // stale pointer, and every block it returns must be new.
    let q = h.alloc(32, 16).unwrap();
    assert!(!live.contains(&q));
    live.push(q);
    check(&a, &live);
    for p in live {
        h.free(p).unwrap();
    }
    check(&a, &[]);
}

#[test]
fn checker_reports_a_live_block_that_is_also_cached() {
    let a = tiny();
    let mut h = a.heap().unwrap();
    let p = h.alloc(32, 16).unwrap();
    h.free(p).unwrap();
    // SAFETY: single-threaded.
    let v = unsafe { a.check_live([p.as_ptr() as usize]) }.unwrap_err();
    assert_eq!(v.invariant, Invariant::I1, "{v}");
    // The walk restored every mark: a clean check passes afterwards.
    check(&a, &[]);
}

#[test]
fn the_allocator_never_allocates_through_the_system_heap() {
    // Metadata comes from the OS layer: this whole workload runs with the
    // test harness's global allocator untouched (counted by the test
    // binary's allocator below).
    let before = crate::tests::counting::allocations();
    let a = tiny();
    let mut h = a.heap().unwrap();
    let mut v = [None; 64];
    for i in 0..10_000usize {
        let slot = &mut v[i % 64];
        if let Some(p) = slot.take() {
            h.free(p).unwrap();
        }
        *slot = Some(h.alloc((i * 37) % 3000, 16).unwrap());
    }
    for p in v.iter_mut().filter_map(Option::take) {
        h.free(p).unwrap();
    }
    drop(h);
    a.trim();
    drop(a);
    let after = crate::tests::counting::allocations_on_this_thread_since(before);
    assert_eq!(
        after, 0,
        "the allocator allocated through the global allocator"
    );
}

/// A counting global allocator for this test binary (per thread, so other
/// tests running in parallel do not disturb the count).
pub(crate) mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        static COUNT: Cell<usize> = const { Cell::new(0) };
    }

    struct Counting;

    // SAFETY: forwards to System; the counter is a const-initialised
    // thread-local without a destructor, so touching it never allocates.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, l: Layout) -> *mut u8 {
            let _ = COUNT.try_with(|c| c.set(c.get() + 1));
            // SAFETY: forwarded contract.
            unsafe { System.alloc(l) }
        }
        unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
            // SAFETY: forwarded contract.
            unsafe { System.dealloc(p, l) }
        }
    }

    #[global_allocator]
    static A: Counting = Counting;

    pub(crate) fn allocations() -> usize {
        COUNT.with(|c| c.get())
    }

    pub(crate) fn allocations_on_this_thread_since(before: usize) -> usize {
        allocations() - before
    }
}

#[test]
fn registry_kind_byte_sends_frees_to_the_right_slab_and_is_checked() {
    let a = tiny();
    let mut h = a.heap().unwrap();
    let small = h.alloc(32, 16).unwrap();
    let mid = h.alloc(1000, 16).unwrap();
    let shift = Geometry::TINY.segment_shift;
    let reg = a.registry_view();
    let seg_of = |p: NonNull<u8>| p.as_ptr() as usize & !Geometry::TINY.segment_mask();
    assert_eq!(
        reg.segment_kind(seg_of(small), shift),
        Some(crate::geometry::SlabKind::Small)
    );
    assert_eq!(
        reg.segment_kind(seg_of(mid), shift),
        Some(crate::geometry::SlabKind::Mid)
    );
    check(&a, &[small, mid]);
    // A byte naming the wrong kind is an I6 violation.
    reg.mark_segment(seg_of(mid), shift, crate::geometry::SlabKind::Small);
    // SAFETY: single-threaded.
    let v = unsafe { a.check_live([small.as_ptr() as usize, mid.as_ptr() as usize]) }.unwrap_err();
    assert_eq!((v.invariant, v.clause), (Invariant::I6, "REG-MARK"), "{v}");
    reg.mark_segment(seg_of(mid), shift, crate::geometry::SlabKind::Mid);
    h.free(small).unwrap();
    h.free(mid).unwrap();
    check(&a, &[]);
    drop(h);
    // A segment emptied and reused for the other kind is re-marked: fill
    // whole segments with one kind, free them all, then take the other.
    let a = tiny();
    let mut h = a.heap().unwrap();
    let n = 3 * Geometry::TINY.segment_size() / 256;
    let smalls: Vec<_> = (0..n).map(|_| h.alloc(256, 16).unwrap()).collect();
    let small_segs: std::collections::HashSet<usize> = smalls.iter().map(|&p| seg_of(p)).collect();
    for p in smalls {
        h.free(p).unwrap();
    }
    h.flush();
    let mids: Vec<_> = (0..n / 3).map(|_| h.alloc(1024, 16).unwrap()).collect();
    assert!(
        mids.iter().any(|&p| small_segs.contains(&seg_of(p))),
        "no segment changed kind"
    );
    check(&a, &mids);
    for p in mids {
        h.free(p).unwrap();
    }
    check(&a, &[]);
}

#[test]
fn fixed_registry_bounds_read_the_same_bytes_as_the_loaded_ones() {
    // NativeOs has a FIXED_RANGE: the free path compares with constants,
    // and `granule_after_init` reads the shared table directly, its index
    // masked. Both must agree with the view's loaded bounds in range; out
    // of it, the masked read gives the byte and start of the granule the
    // address aliases, and the fast free must refuse the alias.
    let a = tiny();
    let mut h = a.heap().unwrap();
    let small = h.alloc(32, 16).unwrap();
    let mid = h.alloc(1000, 16).unwrap();
    let large = h.alloc(1 << 20, 16).unwrap();
    let shift = Geometry::TINY.segment_shift;
    let view = a.registry_view();
    let stack = 0u64;
    let addrs = [
        small.as_ptr() as usize,
        mid.as_ptr() as usize,
        large.as_ptr() as usize,
        &stack as *const u64 as usize,
        0,
        1 << 47,
        (1 << 47) - 1,
        usize::MAX,
        0xffff_8000_0000_1000,
    ];
    let mut kinds = Vec::new();
    for addr in addrs {
        let loaded = view.byte(addr, shift);
        assert_eq!(
            view.with_fixed_bounds::<NativeOs>(shift).byte(addr, shift),
            loaded,
            "{addr:#x}"
        );
        let alias = addr & ((1 << 47) - 1);
        assert_eq!(
            a.registry.granule_after_init::<NativeOs>(addr, shift),
            (view.byte(alias, shift), alias & !((1 << shift) - 1)),
            "{addr:#x}"
        );
        kinds.push(loaded);
    }
    // The blocks are found (and are of three different kinds); the rest is
    // nobody's.
    assert!(kinds[..3].iter().all(|&k| k != 0), "{kinds:?}");
    assert!(kinds[0] != kinds[1] && kinds[1] != kinds[2], "{kinds:?}");
    assert!(kinds[3..].iter().all(|&k| k == 0), "{kinds:?}");
    let bogus = NonNull::new(0xffff_8000_0000_1000 as *mut u8).unwrap();
    assert_eq!(
        h.free(bogus),
        Err(FreeError::NotOwned {
            ptr: 0xffff_8000_0000_1000
        })
    );
    // Addresses above the user range whose low 47 bits are a live small or
    // mid block: the masked read finds that block's segment, and the fast
    // free must refuse them (the block-start test); the full free says
    // they are not ours, and the blocks stay live.
    for p in [small, mid] {
        let p = p.as_ptr() as usize;
        for alias in [p | 1 << 47, p | 0xffff_8000_0000_0000] {
            let (byte, granule) = a.registry.granule_after_init::<NativeOs>(alias, shift);
            assert_ne!(byte, 0, "{alias:#x} aliases a live segment");
            assert!(!h.data().free_fast_byte(alias, granule, byte), "{alias:#x}");
            let alias = NonNull::new(alias as *mut u8).unwrap();
            assert_eq!(
                h.free(alias),
                Err(FreeError::NotOwned {
                    ptr: alias.as_ptr() as usize
                })
            );
        }
    }
    check(&a, &[small, mid, large]);
    h.free(small).unwrap();
    h.free(mid).unwrap();
    h.free(large).unwrap();
    check(&a, &[]);
}

#[test]
fn large_cache_size_index_follows_the_list_and_is_checked() {
    // TINY keeps 128 KiB of large mappings per heap and 256 KiB globally:
    // 160 KiB blocks go to the global cache, and its size index.
    let a = tiny();
    let mut h = a.heap().unwrap();
    let blocks: Vec<_> = (0..3)
        .map(|i| h.alloc((150 + i) << 10, 16).unwrap())
        .collect();
    for &p in &blocks {
        h.free(p).unwrap();
    }
    let cached = a.large.with(|st| st.cached.len);
    assert!(cached >= 1, "nothing reached the global cache");
    a.large.with(|st| assert_eq!(st.index_len, st.cached.len));
    check(&a, &[]);
    // A best fit comes out of the index (and off the list) ...
    let p = h.alloc(151 << 10, 16).unwrap();
    a.large.with(|st| assert_eq!(st.index_len, st.cached.len));
    check(&a, &[p]);
    h.free(p).unwrap();
    check(&a, &[]);
    // ... and an entry with the wrong size is an I6 violation.
    a.large.with(|st| st.index[0].size += 4096);
    // SAFETY: single-threaded.
    let v = unsafe { a.check_live([]) }.unwrap_err();
    assert_eq!(
        (v.invariant, v.clause),
        (Invariant::I6, "LARGE-BOOKS"),
        "{v}"
    );
    a.large.with(|st| st.index[0].size -= 4096);
    check(&a, &[]);
    // Trim empties list and index together.
    a.trim();
    a.large
        .with(|st| assert_eq!((st.cached.len, st.index_len), (0, 0)));
    check(&a, &[]);
}

#[test]
fn an_exited_heap_parks_whole_and_the_next_new_heap_takes_it_warm() {
    let a = Allocator::<Tiny>::new(
        NativeOs,
        Config {
            parked_heaps: 1,
            ..Config::TINY
        },
    );
    let mut h1 = a.heap().unwrap();
    let blocks: Vec<_> = (0..6).map(|_| h1.alloc(48, 16).unwrap()).collect();
    let (live, freed) = blocks.split_at(3);
    for &p in freed {
        h1.free(p).unwrap();
    }
    let last_freed = freed[2];
    drop(h1);
    let s = a.stats();
    assert_eq!(
        (s.heaps_live, s.heaps_parked, s.adoptions),
        (1, 1, 0),
        "{s:?}"
    );
    // The parked heap is checked like any: its caches, its slabs.
    check(&a, live);
    // A new heap is the parked one: its cache hands out what it held.
    let mut h2 = a.heap().unwrap();
    let s = a.stats();
    assert_eq!((s.heaps_created, s.heaps_reused, s.heaps_parked), (1, 1, 0));
    let q = h2.alloc(48, 16).unwrap();
    assert_eq!(q, last_freed, "the reused heap's cache was not kept");
    // Blocks the old thread left live are the new one's to free locally.
    for &p in live {
        h2.free(p).unwrap();
    }
    assert_eq!(a.stats().remote_frees, 0);
    check(&a, &[q]);
    // With one parked already, a second exit flushes and abandons.
    let h3 = a.heap().unwrap();
    h2.free(q).unwrap();
    drop(h2);
    drop(h3);
    let s = a.stats();
    assert_eq!(
        (s.heaps_created, s.heaps_parked, s.heaps_live),
        (2, 1, 1),
        "{s:?}"
    );
    check(&a, &[]);
    // A wrong count is an I4 violation.
    a.heaps.with(|hl| hl.parked_count += 1);
    // SAFETY: single-threaded.
    let v = unsafe { a.check_live([]) }.unwrap_err();
    assert_eq!(
        (v.invariant, v.clause),
        (Invariant::I4, "HEAP-PARKED"),
        "{v}"
    );
    a.heaps.with(|hl| hl.parked_count -= 1);
    // Trim releases the parked heap: nothing but metadata stays mapped.
    a.trim();
    let s = a.stats();
    assert_eq!((s.heaps_parked, s.heaps_live), (0, 0), "{s:?}");
    assert_eq!(s.mapped_bytes, a.meta_bytes(), "{s:?}");
    check(&a, &[]);
}
