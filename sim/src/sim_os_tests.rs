use super::*;

const PAGE: usize = 4096;
const MIB: usize = 1 << 20;

fn small(protect: bool) -> SimOs {
    SimOs::new(SimOsConfig {
        arena_size: 64 * MIB,
        page_size: PAGE,
        protect,
        moves_multi_vma: true,
    })
}

fn map(os: &SimOs, size: usize, align: usize) -> usize {
    os.map(size, align).expect("map").as_ptr() as usize
}

fn nn(addr: usize) -> NonNull<u8> {
    NonNull::new(addr as *mut u8).unwrap()
}

fn unmap(os: &SimOs, addr: usize, size: usize) {
    // SAFETY: the tests only touch memory through SimOs calls after this.
    unsafe { os.unmap(nn(addr), size) }
}

fn commit(os: &SimOs, addr: usize, size: usize) -> Result<(), OsError> {
    // SAFETY: as for `unmap`.
    unsafe { os.commit(nn(addr), size) }
}

fn decommit(os: &SimOs, addr: usize, size: usize) {
    // SAFETY: as for `unmap`.
    unsafe { os.decommit(nn(addr), size) }
}

/// The books, with `mapped_end` as an offset from the arena base (0 if
/// nothing was ever mapped), so that two instances' books compare.
fn books(os: &SimOs) -> OsBooks {
    let b = os.books().unwrap();
    OsBooks {
        mapped_end: b.mapped_end.saturating_sub(os.base()),
        ..b
    }
}

/// A fixed script of maps and unmaps; returns the offsets it got.
fn script(os: &SimOs) -> Vec<usize> {
    let mut got = Vec::new();
    let a = map(os, 64 * 1024, 64 * 1024);
    let b = map(os, PAGE, PAGE);
    let c = map(os, 2 * MIB, 2 * MIB);
    unmap(os, a, 64 * 1024);
    let d = map(os, 3 * PAGE, PAGE);
    let e = map(os, 8 * PAGE, 32 * 1024);
    for addr in [a, b, c, d, e] {
        got.push(os.offset(addr).unwrap());
    }
    unmap(os, b, PAGE);
    got.push(os.offset(map(os, 16 * PAGE, PAGE)).unwrap());
    got
}

#[test]
fn the_same_calls_give_the_same_offsets_wherever_the_arena_lands() {
    let (x, y) = (small(true), small(false));
    assert_ne!(x.base(), y.base());
    let got = script(&x);
    assert_eq!(got, script(&y));
    // first fit by address: d and e reuse a's hole (e at its next 32 KiB
    // boundary), the last map takes b's hole, now joined to the gap after it
    assert_eq!(got, vec![0, 0x10000, 0x20_0000, 0, 0x8000, 0x10000]);
}

#[test]
fn mappings_are_aligned_and_first_fit_fills_holes() {
    let os = small(true);
    let a = map(&os, PAGE, PAGE);
    let b = map(&os, 2 * MIB, 2 * MIB);
    assert_eq!(b % (2 * MIB), 0);
    assert_eq!(os.offset(b), Some(2 * MIB));
    let c = map(&os, PAGE, PAGE);
    assert_eq!(c, a + PAGE, "the hole before b is used first");
    let d = map(&os, 8 * MIB, 4 * MIB);
    assert_eq!(d % (4 * MIB), 0);
    assert_eq!(os.offset(d), Some(4 * MIB));
    // alignment below the page size means the page size
    let e = map(&os, PAGE, 16);
    assert_eq!(e, c + PAGE);
}

#[test]
fn mapped_memory_is_zeroed_writable_and_zeroed_again_after_reuse() {
    let os = small(true);
    let a = map(&os, 4 * PAGE, PAGE);
    let p = a as *mut u8;
    // SAFETY: [a, a + 4 pages) is a live mapping.
    unsafe {
        assert!((0..4 * PAGE).all(|i| *p.add(i) == 0));
        p.write_bytes(0xab, 4 * PAGE);
    }
    decommit(&os, a + PAGE, PAGE);
    commit(&os, a + PAGE, PAGE).unwrap();
    // SAFETY: recommitted; the other pages kept their contents.
    unsafe {
        assert_eq!(*p.add(PAGE), 0, "a recommitted page reads zero");
        assert_eq!(*p, 0xab, "pages left committed keep their data");
    }
    unmap(&os, a, 4 * PAGE);
    let b = map(&os, 4 * PAGE, PAGE);
    assert_eq!(a, b);
    // SAFETY: live mapping again.
    unsafe { assert!((0..4 * PAGE).all(|i| *(b as *const u8).add(i) == 0)) };
}

#[test]
fn books_follow_map_unmap_commit_and_decommit() {
    let os = small(true);
    assert_eq!(books(&os), OsBooks::default());
    let a = map(&os, 16 * PAGE, PAGE);
    let b = map(&os, 4 * PAGE, PAGE);
    assert_eq!(
        books(&os),
        OsBooks {
            mapped_size: 20 * PAGE,
            map_count: 2,
            committed_size: 20 * PAGE,
            misuse_count: 0,
            mapped_end: 20 * PAGE,
        }
    );
    decommit(&os, a + 2 * PAGE, 4 * PAGE);
    decommit(&os, a + 4 * PAGE, 4 * PAGE); // overlaps: only 2 more pages
    assert_eq!(books(&os).committed_size, 14 * PAGE);
    assert!(!os.is_committed(a + 3 * PAGE, 8));
    assert!(os.is_committed(a + PAGE, PAGE));
    commit(&os, a + 2 * PAGE, 2 * PAGE).unwrap();
    assert_eq!(books(&os).committed_size, 16 * PAGE);
    assert_eq!(
        os.mappings(),
        vec![
            MappingInfo {
                offset: 0,
                size: 16 * PAGE,
                committed_size: 12 * PAGE
            },
            MappingInfo {
                offset: 16 * PAGE,
                size: 4 * PAGE,
                committed_size: 4 * PAGE
            },
        ]
    );
    assert_eq!(os.is_mapped(a, 16 * PAGE), Some(true));
    assert_eq!(
        os.is_mapped(a + 15 * PAGE, 2 * PAGE),
        Some(false),
        "spans two mappings"
    );
    assert_eq!(os.is_mapped(b + 4 * PAGE, 1), Some(false));
    assert_eq!(os.is_mapped(8, 1), Some(false), "outside the arena");
    unmap(&os, a, 16 * PAGE);
    assert_eq!(
        books(&os),
        OsBooks {
            mapped_size: 4 * PAGE,
            map_count: 1,
            committed_size: 4 * PAGE,
            misuse_count: 0,
            // `b`, still live, ends there.
            mapped_end: 20 * PAGE,
        }
    );
    let s = os.stats();
    assert_eq!(
        (s.map_calls, s.unmap_calls, s.commit_calls, s.decommit_calls),
        (2, 1, 1, 2)
    );
    // The high-water mark outlives the mappings that set it.
    unmap(&os, b, 4 * PAGE);
    assert_eq!(
        books(&os),
        OsBooks {
            mapped_end: 20 * PAGE,
            ..OsBooks::default()
        }
    );
}

#[test]
fn misuse_is_counted_described_and_ignored() {
    let os = small(true);
    let a = map(&os, 4 * PAGE, PAGE);
    unmap(&os, a, 4 * PAGE);
    unmap(&os, a, 4 * PAGE); // double unmap
    let b = map(&os, 4 * PAGE, PAGE);
    unmap(&os, b, 2 * PAGE); // partial
    unmap(&os, b + PAGE, PAGE); // not a start
    unmap(&os, b + 64 * PAGE, PAGE); // nothing there
    unmap(&os, 4096, PAGE); // outside the arena
    decommit(&os, b + 3 * PAGE, 2 * PAGE); // runs off the mapping
    decommit(&os, b + 1, PAGE); // unaligned
    assert!(commit(&os, b + 8 * PAGE, PAGE).is_err()); // outside any mapping
    assert_eq!(os.map(100, PAGE).unwrap_err().errno, libc::EINVAL);
    let m = os.misuses();
    assert_eq!(m.len(), 9, "{m:#?}");
    assert_eq!(books(&os).misuse_count, 9);
    assert_eq!(os.misuse_count(), 9);
    assert!(m[0].contains("double unmap"), "{}", m[0]);
    assert!(
        m[1].contains("the mapping there has size 0x4000"),
        "{}",
        m[1]
    );
    assert!(
        m[2].contains("not the start of the mapping at @0x0"),
        "{}",
        m[2]
    );
    assert!(m[3].contains("nothing is mapped there"), "{}", m[3]);
    assert!(m[4].contains("outside the arena"), "{}", m[4]);
    assert!(
        m[5].contains("decommit of @0x3000+0x2000: not inside one live mapping"),
        "{}",
        m[5]
    );
    assert!(m[6].contains("not aligned"), "{}", m[6]);
    assert!(m[7].contains("commit of @0x8000+0x1000"), "{}", m[7]);
    assert!(m[8].contains("map of 0x64 bytes"), "{}", m[8]);
    // nothing was changed by the misuses, and misuses are not refusals
    assert_eq!(books(&os).mapped_size, 4 * PAGE);
    assert_eq!(books(&os).committed_size, 4 * PAGE);
    assert_eq!(os.refusal_count(), 0);
    // SAFETY: b is still mapped and committed.
    unsafe { (b as *mut u8).add(3 * PAGE).write(1) };
}

#[test]
fn a_reused_range_is_no_longer_a_double_unmap() {
    let os = small(false);
    let a = map(&os, PAGE, PAGE);
    unmap(&os, a, PAGE);
    let b = map(&os, PAGE, PAGE);
    assert_eq!(a, b);
    unmap(&os, b, PAGE);
    assert_eq!(books(&os).misuse_count, 0);
}

#[test]
fn injected_failures_hit_exactly_the_next_calls() {
    let os = small(true);
    os.fail_next_maps(2);
    for _ in 0..2 {
        let e = os.map(PAGE, PAGE).unwrap_err();
        assert_eq!(
            e,
            OsError {
                errno: libc::ENOMEM,
                size: PAGE,
                injected: true
            }
        );
    }
    let a = map(&os, 2 * PAGE, PAGE);
    assert_eq!(os.offset(a), Some(0), "failed maps take no space");
    decommit(&os, a, 2 * PAGE);
    os.fail_next_commits(1);
    assert!(commit(&os, a, PAGE).unwrap_err().injected);
    commit(&os, a, PAGE).unwrap();
    os.fail_next_maps(3);
    assert_eq!(os.pending_failures(), (3, 0));
    os.fail_next_maps(1); // replaces, does not add
    assert!(os.map(PAGE, PAGE).is_err());
    assert!(os.map(PAGE, PAGE).is_ok());
    assert_eq!(os.refusal_count(), 4);
    assert_eq!(os.stats().injected_refusals, 4);
    assert_eq!(books(&os).misuse_count, 0);
}

#[test]
fn an_exhausted_arena_refuses_without_injection() {
    let os = SimOs::new(SimOsConfig {
        arena_size: MIB,
        page_size: PAGE,
        protect: true,
        ..SimOsConfig::default()
    });
    let e = os.map(2 * MIB, PAGE).unwrap_err();
    assert_eq!((e.errno, e.injected), (libc::ENOMEM, false));
    let a = map(&os, MIB / 2, PAGE);
    assert!(os.map(MIB / 2, MIB).is_err(), "no 1 MiB-aligned room left");
    assert!(os.map(MIB / 2, PAGE).is_ok());
    assert!(os.map(PAGE, PAGE).is_err());
    unmap(&os, a, MIB / 2);
    assert!(os.map(PAGE, PAGE).is_ok());
    assert_eq!(os.refusal_count(), 3);
    assert_eq!(os.stats().injected_refusals, 0);
}

#[test]
fn bad_configurations_are_rejected() {
    for (arena_size, page_size) in [(0, PAGE), (MIB, 3000), (MIB, 2048)] {
        let cfg = SimOsConfig {
            arena_size,
            page_size,
            protect: false,
            ..SimOsConfig::default()
        };
        assert!(SimOs::try_new(cfg).is_err(), "{cfg:?}");
    }
    let os = SimOs::new(SimOsConfig {
        arena_size: MIB + 1,
        page_size: 16 * 1024,
        protect: false,
        ..SimOsConfig::default()
    });
    assert_eq!(os.config().arena_size, MIB + 16 * 1024);
    assert_eq!(os.page_size(), 16 * 1024);
    let (start, end) = os.address_range();
    assert_eq!((start, end - start), (os.base(), MIB + 16 * 1024));
    assert_eq!(os.offset(start - 1), None);
    assert_eq!(os.offset(end), None);
    assert_eq!(os.offset(end - 1), Some(end - 1 - start));
}

#[test]
fn the_default_arena_is_four_gib_and_aligned() {
    let os = SimOs::new(SimOsConfig::default());
    let (start, end) = os.address_range();
    assert_eq!(end - start, 4 << 30);
    assert_eq!(start % ARENA_BASE_ALIGN, 0);
}

#[test]
fn sim_os_is_send_and_sync_and_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<SimOs>();
    let os = small(true);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for i in 0..200 {
                    let size = PAGE * (1 + i % 5);
                    let a = map(&os, size, PAGE);
                    // SAFETY: a fresh live mapping of `size` bytes.
                    unsafe { (a as *mut u8).add(size - 1).write(7) };
                    unmap(&os, a, size);
                }
            });
        }
    });
    // First fit with one other mapping live, [s, s + l): a new one of n
    // pages goes at 0 if s >= n, else at s + l, so it ends by
    // (n - 1) + l + n <= 14 pages.
    let end = books(&os).mapped_end;
    assert!(end > 0 && end <= 14 * PAGE, "mapped_end {end:#x}");
    assert_eq!(
        books(&os),
        OsBooks {
            mapped_end: end,
            ..OsBooks::default()
        }
    );
    assert_eq!(os.stats().map_calls, 400);
}

#[test]
fn mark_block_without_asan_is_harmless() {
    let os = small(true);
    let a = map(&os, PAGE, PAGE) as *mut u8;
    os.mark_block(a, 64, false);
    os.mark_block(a, 64, true);
    // SAFETY: live mapping.
    unsafe { a.write(1) };
}

#[cfg(hakmem_asan)]
#[test]
fn mark_block_poisons_all_but_the_links_of_a_freed_block() {
    extern "C" {
        fn __asan_address_is_poisoned(addr: *const core::ffi::c_void) -> i32;
    }
    let poisoned = |p: *mut u8| {
        // SAFETY: only reads ASan's shadow memory for the address.
        unsafe { __asan_address_is_poisoned(p as *const core::ffi::c_void) != 0 }
    };
    let os = small(true);
    let a = map(&os, PAGE, PAGE) as *mut u8;
    // SAFETY: offsets within the live one-page mapping.
    let at = |i: usize| unsafe { a.add(i) };
    os.mark_block(a, 64, false);
    assert!(!poisoned(at(0)) && !poisoned(at(15)), "links stay usable");
    assert!(poisoned(at(16)) && poisoned(at(63)));
    assert!(!poisoned(at(64)), "the next block is untouched");
    os.mark_block(a, 64, true);
    assert!(!poisoned(at(16)) && !poisoned(at(63)));
    os.mark_block(a, 64, false);
    // SAFETY: unmapping the only mapping; nothing uses it afterwards.
    unsafe { os.unmap(nn(a as usize), PAGE) };
    let b = map(&os, PAGE, PAGE) as *mut u8;
    assert_eq!(a, b);
    assert!(!poisoned(at(32)), "a fresh mapping is unpoisoned");
}

/// Runs `read(addr)` in a forked child; true if the child died of SIGSEGV
/// (or SIGBUS). The child does nothing but the read and `_exit`, so forking
/// from a multi-threaded test process is fine.
fn read_faults(addr: usize) -> bool {
    // SAFETY: the child only performs a volatile read and `_exit`, both
    // async-signal-safe; it never returns into the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // SAFETY: this read is the experiment: it either succeeds or the
        // kernel kills this child process with SIGSEGV.
        std::hint::black_box(unsafe { std::ptr::read_volatile(addr as *const u8) });
        // SAFETY: ends the child without running the parent's atexit hooks.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: waits for the child just forked; `status` is a valid out-pointer.
    let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(rc, pid);
    let signalled =
        libc::WIFSIGNALED(status) && matches!(libc::WTERMSIG(status), libc::SIGSEGV | libc::SIGBUS);
    // AddressSanitizer catches the SIGSEGV itself, reports it and exits(1).
    let asan_report =
        cfg!(hakmem_asan) && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) != 0;
    signalled || asan_report
}

#[test]
fn reading_unmapped_or_decommitted_memory_really_faults() {
    let os = small(true);
    let a = map(&os, 4 * PAGE, PAGE);
    let b = map(&os, 4 * PAGE, PAGE);
    assert!(!read_faults(a), "a live mapping reads fine");
    assert!(read_faults(b + 4 * PAGE), "never mapped");
    decommit(&os, a + PAGE, PAGE);
    assert!(read_faults(a + PAGE + 100), "decommitted");
    assert!(!read_faults(a + 2 * PAGE), "the rest stays readable");
    commit(&os, a + PAGE, PAGE).unwrap();
    assert!(!read_faults(a + PAGE), "recommitted");
    unmap(&os, b, 4 * PAGE);
    assert!(read_faults(b + 3 * PAGE), "unmapped");
}

#[test]
fn without_protection_the_books_are_the_same_and_nothing_faults() {
    let (x, y) = (small(true), small(false));
    for os in [&x, &y] {
        let a = map(os, 8 * PAGE, PAGE);
        decommit(os, a, 2 * PAGE);
        let b = map(os, PAGE, PAGE);
        unmap(os, b, PAGE);
    }
    assert_eq!(books(&x), books(&y));
    assert_eq!(x.mappings(), y.mappings());
    let a = y.base();
    assert!(!read_faults(a), "decommitted but not protected");
}

#[test]
fn split_makes_two_mappings_and_splice_moves_pages_over_another() {
    let os = small(true);
    let a = map(&os, 8 * PAGE, PAGE);
    // SAFETY: `a` is a live mapping of 8 pages.
    unsafe { core::ptr::write_bytes(a as *mut u8, 0x5a, 8 * PAGE) };
    // SAFETY: `a` is one whole mapping; 3 pages is inside it.
    unsafe { os.split(nn(a), 8 * PAGE, 3 * PAGE) }.unwrap();
    let b = books(&os);
    assert_eq!((b.map_count, b.mapped_size), (2, 8 * PAGE));
    // Each half is a whole mapping now: the tail unmaps on its own.
    unmap(&os, a + 3 * PAGE, 5 * PAGE);
    assert_eq!(books(&os).mapped_size, 3 * PAGE);
    // Splice the 3-page head over the middle of a fresh 6-page mapping.
    let d = map(&os, 6 * PAGE, PAGE);
    // SAFETY: `a` is one whole committed mapping; `d + PAGE .. + 3 pages`
    // lies inside another.
    unsafe { os.splice(nn(a), 3 * PAGE, nn(d + PAGE)) }.unwrap();
    let b = books(&os);
    assert_eq!(
        (b.map_count, b.mapped_size, b.misuse_count),
        (1, 6 * PAGE, 0)
    );
    // SAFETY: `d` is live and 6 pages long.
    let got = unsafe { core::slice::from_raw_parts(d as *const u8, 6 * PAGE) };
    assert!(got[..PAGE].iter().all(|&x| x == 0));
    assert!(
        got[PAGE..4 * PAGE].iter().all(|&x| x == 0x5a),
        "the pages moved"
    );
    assert!(got[4 * PAGE..].iter().all(|&x| x == 0));
    assert!(read_faults(a), "the source is gone");
    assert_eq!(os.stats().split_calls, 1);
    assert_eq!(os.stats().splice_calls, 1);
}

#[test]
fn split_and_splice_misuses_are_refused_and_change_nothing() {
    let os = small(true);
    let a = map(&os, 4 * PAGE, PAGE);
    let d = map(&os, 4 * PAGE, PAGE);
    let split = |p: usize, size: usize, at: usize| {
        // SAFETY: refused calls touch nothing.
        unsafe { os.split(nn(p), size, at) }.is_err()
    };
    let splice = |s: usize, size: usize, t: usize| {
        // SAFETY: as above.
        unsafe { os.splice(nn(s), size, nn(t)) }.is_err()
    };
    assert!(split(a, 4 * PAGE, 0)); // no head
    assert!(split(a, 4 * PAGE, 4 * PAGE)); // no tail
    assert!(split(a, 4 * PAGE, PAGE + 1)); // not a page boundary
    assert!(split(a, 3 * PAGE, PAGE)); // not the whole mapping
    assert!(splice(a, 2 * PAGE, d)); // not the whole source
    assert!(splice(a, 4 * PAGE, d + PAGE)); // runs off the destination
    assert!(splice(a, 4 * PAGE, a)); // onto itself
    decommit(&os, d + PAGE, PAGE);
    assert!(splice(a, 4 * PAGE, d)); // over a decommitted page
    let m = os.misuses();
    assert_eq!(m.len(), 8, "{m:#?}");
    assert!(m[3].contains("not one whole live mapping"), "{}", m[3]);
    assert!(m[5].contains("not inside one live mapping"), "{}", m[5]);
    assert!(m[6].contains("lies in the source"), "{}", m[6]);
    assert!(m[7].contains("decommitted"), "{}", m[7]);
    let b = books(&os);
    assert_eq!((b.map_count, b.mapped_size), (2, 8 * PAGE));
}

#[test]
fn vmas_follow_splits_and_splices_and_an_older_kernel_refuses_to_move_several() {
    for moves in [true, false] {
        let os = SimOs::new(SimOsConfig {
            arena_size: 64 * MIB,
            moves_multi_vma: moves,
            ..SimOsConfig::default()
        });
        let d = map(&os, 8 * PAGE, PAGE);
        let s1 = map(&os, 2 * PAGE, PAGE);
        assert_eq!(os.vma_count(), 2);
        // Pages moved into the middle: three VMAs where there was one.
        // SAFETY: `s1` is one whole mapping; the range lies inside `d`.
        unsafe { os.splice(nn(s1), 2 * PAGE, nn(d + 2 * PAGE)) }.unwrap();
        assert_eq!(os.vma_count(), 3);
        // At the end of the destination: one more, nothing after it.
        let s2 = map(&os, 2 * PAGE, PAGE);
        // SAFETY: as above.
        unsafe { os.splice(nn(s2), 2 * PAGE, nn(d + 6 * PAGE)) }.unwrap();
        assert_eq!(os.vma_count(), 4);
        // A split keeps each piece's VMAs: [0, 2) and [2, 4) | [4, 6), [6, 8).
        // SAFETY: `d` is one whole mapping of 8 pages.
        unsafe { os.split(nn(d), 8 * PAGE, 4 * PAGE) }.unwrap();
        assert_eq!(os.vma_count(), 4);
        // Moving a two-VMA piece: whole since Linux 6.17, refused before.
        let t = map(&os, 4 * PAGE, PAGE);
        // SAFETY: `d + 4 pages` is one whole mapping of 4 pages now; `t`
        // is another.
        let r = unsafe { os.splice(nn(d + 4 * PAGE), 4 * PAGE, nn(t)) };
        // SAFETY: `d` is one whole mapping of 4 pages (two VMAs).
        let g = unsafe { os.remap(nn(d), 4 * PAGE, 6 * PAGE, PAGE) };
        if moves {
            r.unwrap();
            let g = g.unwrap().as_ptr() as usize;
            // The piece's two VMAs in `t`; `d`'s two plus its fresh rest.
            assert_eq!(os.vma_count(), 5);
            assert_eq!(os.stats().multi_vma_refusals, 0);
            unmap(&os, g, 6 * PAGE);
            assert_eq!(os.vma_count(), 2);
        } else {
            assert_eq!(r.unwrap_err().errno, libc::EFAULT);
            assert_eq!(g.unwrap_err().errno, libc::EFAULT);
            assert_eq!(os.stats().multi_vma_refusals, 2);
            // Nothing changed: the pieces are still there, whole.
            assert_eq!(os.vma_count(), 5);
            assert_eq!(books(&os).misuse_count, 0);
            // One VMA still grows.
            // SAFETY: `t` is one whole single-VMA mapping.
            unsafe { os.remap(nn(t), 4 * PAGE, 8 * PAGE, PAGE) }.unwrap();
        }
        assert!(os.stats().peak_vmas >= 5);
    }
}
