//! `SimOs`: the deterministic, accounted, fault-injecting OS layer.
//!
//! It reserves one real arena of address space (`PROT_NONE`,
//! `MAP_NORESERVE`) and hands out ranges of it:
//!
//! * **Deterministic placement.** `map` takes the lowest free range (by
//!   offset) that fits and is aligned: first fit by address. The arena base
//!   is aligned to [`ARENA_BASE_ALIGN`] (or the arena size, if smaller), so
//!   the same sequence of calls gives the same *offsets* every run, wherever
//!   the arena landed. Dumps print offsets ([`SimOs::offset`]).
//! * **Real protection.** A mapped or committed range is read-write and
//!   zero-filled; an unmapped or decommitted range is `MADV_DONTNEED`ed and
//!   made `PROT_NONE`, so a use after unmap or after decommit faults
//!   (stricter than Linux, on purpose). With `protect: false` the
//!   `mprotect` calls are skipped (faster) but the books are the same.
//! * **Books.** Every live mapping, its committed pages and call counters;
//!   [`Os::books`] gives the totals the checker compares (I6).
//! * **Misuse is counted, never a crash.** An unmap of anything but exactly
//!   one live mapping (double unmap, partial unmap, unknown pointer), or a
//!   commit/decommit not inside one mapping or not page aligned, is counted
//!   with a description ([`SimOs::misuses`]) and otherwise ignored.
//! * **Fault injection.** [`SimOs::fail_next_maps`] /
//!   [`SimOs::fail_next_commits`] make the next n calls fail with an
//!   injected `ENOMEM`; exhaustion of the arena is a real `ENOMEM`.
//!   [`SimOs::refusal_count`] counts both, so a runner can tell whether a
//!   null from the allocator was legitimate.
//!
//! * **VMAs.** Each mapping keeps where the kernel's VMAs in it start: a
//!   splice (`mremap` of one mapping over part of another) leaves the
//!   moved pages a VMA of their own, as Linux does (moved anonymous pages
//!   do not merge with their new neighbours). [`SimOs::vma_count`] and
//!   the peak in [`SimOsStats`] bound what a program would spend of
//!   `vm.max_map_count`. With [`SimOsConfig::moves_multi_vma`] off, a
//!   splice or a growing remap of a mapping made of several VMAs is
//!   refused (`EFAULT`), as kernels before 6.17 refuse it, so the
//!   allocator's fallbacks for them run under the checker.
//!
//! It is `Send + Sync` (one `std::sync::Mutex` inside) and never calls out
//! while holding its lock except into the kernel, so it is safe to use from
//! shuttle threads.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::ptr::NonNull;
use std::sync::{Mutex, MutexGuard};

use hakmem::{Os, OsBooks, OsError};

/// The arena base is aligned to this (or to the arena size rounded up to a
/// power of two, if smaller): placement is deterministic for alignments up
/// to it.
pub const ARENA_BASE_ALIGN: usize = 1 << 30;

/// Misuse descriptions kept (all misuses are counted).
const MISUSES_KEPT: usize = 1000;

/// How a [`SimOs`] is set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimOsConfig {
    /// Bytes of address space reserved (rounded up to `page_size`).
    pub arena_size: usize,
    /// Granularity of map / commit / decommit: a power of two and a
    /// multiple of the machine's page size.
    pub page_size: usize,
    /// Make unmapped and decommitted memory inaccessible (`mprotect`).
    pub protect: bool,
    /// Whether `remap` and `splice` move a source made of several VMAs
    /// (Linux 6.17 and later do); false models older kernels, which
    /// refuse it with `EFAULT`.
    pub moves_multi_vma: bool,
}

impl Default for SimOsConfig {
    /// A 4 GiB arena of 4 KiB pages, protected.
    fn default() -> SimOsConfig {
        SimOsConfig {
            arena_size: 4 << 30,
            page_size: 4096,
            protect: true,
            moves_multi_vma: true,
        }
    }
}

/// Call counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimOsStats {
    pub map_calls: usize,
    pub unmap_calls: usize,
    pub commit_calls: usize,
    pub decommit_calls: usize,
    pub split_calls: usize,
    pub splice_calls: usize,
    /// Maps and commits refused, injected or not (misuses not included).
    pub refusals: usize,
    /// Of `refusals`, those injected by `fail_next_*`.
    pub injected_refusals: usize,
    /// Splices and growing remaps refused because the source spans
    /// several VMAs (only with `moves_multi_vma` off).
    pub multi_vma_refusals: usize,
    /// The most VMAs live at once (see [`SimOs::vma_count`]).
    pub peak_vmas: usize,
}

/// One live mapping, as [`SimOs::mappings`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MappingInfo {
    /// Offset from the arena base.
    pub offset: usize,
    pub size: usize,
    /// Bytes of it currently committed.
    pub committed_size: usize,
}

impl fmt::Display for MappingInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "mapping @{:#x} size {:#x} committed {:#x}",
            self.offset, self.size, self.committed_size
        )
    }
}

/// A live mapping's books.
#[derive(Debug)]
struct Mapping {
    /// Length in pages.
    pages: usize,
    /// One bit per page, set while the page is committed.
    committed: Vec<u64>,
    /// Number of bits set in `committed`.
    committed_pages: usize,
    /// The pages at which a VMA starts (always 0, and every page where
    /// pages moved in by a splice begin or end).
    vmas: BTreeSet<usize>,
}

impl Mapping {
    fn new(pages: usize) -> Mapping {
        let mut committed = vec![u64::MAX; pages.div_ceil(64)];
        if !pages.is_multiple_of(64) {
            *committed.last_mut().expect("a mapping has pages") = (1u64 << (pages % 64)) - 1;
        }
        Mapping {
            pages,
            committed,
            committed_pages: pages,
            vmas: BTreeSet::from([0]),
        }
    }

    /// Sets pages `first..first + count` to `on`; returns how many changed.
    fn set_pages(&mut self, first: usize, count: usize, on: bool) -> usize {
        let mut changed = 0;
        for page in first..first + count {
            let (word, bit) = (page / 64, 1u64 << (page % 64));
            if (self.committed[word] & bit != 0) != on {
                self.committed[word] ^= bit;
                changed += 1;
            }
        }
        if on {
            self.committed_pages += changed;
        } else {
            self.committed_pages -= changed;
        }
        changed
    }
}

/// Everything behind the lock.
#[derive(Debug, Default)]
struct State {
    /// Live mappings by offset (in bytes) from the base.
    maps: BTreeMap<usize, Mapping>,
    /// Offsets and sizes (bytes) of mappings unmapped since that range was
    /// last reused: tells a double unmap from an unmap of garbage.
    unmapped: BTreeMap<usize, usize>,
    mapped_size: usize,
    committed_size: usize,
    fail_maps: u32,
    fail_commits: u32,
    misuse_count: usize,
    misuses: Vec<String>,
    stats: SimOsStats,
    /// VMAs in all live mappings.
    vmas: usize,
    /// Offset past the end of every mapping ever made (`OsBooks::mapped_end`).
    high_water: usize,
}

impl State {
    /// Sets mapping `off`'s VMA starts to `vmas` and keeps the count.
    fn set_vmas(&mut self, off: usize, vmas: BTreeSet<usize>) {
        let m = self.maps.get_mut(&off).expect("a live mapping");
        self.vmas = self.vmas - m.vmas.len() + vmas.len();
        m.vmas = vmas;
        self.stats.peak_vmas = self.stats.peak_vmas.max(self.vmas);
    }

    fn misuse(&mut self, what: String) {
        self.misuse_count += 1;
        if self.misuses.len() < MISUSES_KEPT {
            self.misuses.push(what);
        }
    }
}

/// The deterministic simulated OS (see the module docs).
pub struct SimOs {
    /// Start of the arena, aligned to [`ARENA_BASE_ALIGN`] or to the arena
    /// size rounded up to a power of two, whichever is smaller.
    base: usize,
    cfg: SimOsConfig,
    state: Mutex<State>,
}

impl fmt::Debug for SimOs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimOs")
            .field("base", &format_args!("{:#x}", self.base))
            .field("cfg", &self.cfg)
            .field("books", &self.books())
            .finish()
    }
}

fn errno_error(what: &str) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

impl SimOs {
    /// Reserves the arena.
    ///
    /// # Panics
    /// If the configuration is invalid or the address space cannot be
    /// reserved (see [`SimOs::try_new`]).
    pub fn new(cfg: SimOsConfig) -> SimOs {
        SimOs::try_new(cfg).unwrap_or_else(|e| panic!("SimOs::new({cfg:?}): {e}"))
    }

    /// Reserves the arena; `Err` if the configuration is invalid (page size
    /// not a power of two, not a multiple of the machine page, zero arena)
    /// or `mmap` fails.
    pub fn try_new(cfg: SimOsConfig) -> io::Result<SimOs> {
        // SAFETY: sysconf has no memory-safety preconditions.
        let machine_page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        if !cfg.page_size.is_power_of_two() || !cfg.page_size.is_multiple_of(machine_page) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "page size {} is not a power-of-two multiple of the machine page {machine_page}",
                    cfg.page_size
                ),
            ));
        }
        let arena_size = cfg
            .arena_size
            .checked_next_multiple_of(cfg.page_size)
            .filter(|&s| s > 0 && s <= 1 << 46)
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "arena size out of range")
            })?;
        let base_align = arena_size
            .next_power_of_two()
            .clamp(cfg.page_size, ARENA_BASE_ALIGN);
        let reserve = arena_size + base_align;
        // Unprotected, the whole arena is read-write from the start and
        // `mprotect` is never called.
        let prot = if cfg.protect {
            libc::PROT_NONE
        } else {
            libc::PROT_READ | libc::PROT_WRITE
        };
        // SAFETY: an anonymous private mapping at an address of the kernel's
        // choosing touches no existing memory.
        let raw = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                reserve,
                prot,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if raw == libc::MAP_FAILED {
            return Err(errno_error("mmap of the arena"));
        }
        let raw = raw as usize;
        let base = raw.next_multiple_of(base_align);
        // Give back the slack before and after the aligned arena.
        for (start, len) in [
            (raw, base - raw),
            (base + arena_size, raw + reserve - (base + arena_size)),
        ] {
            if len > 0 {
                // SAFETY: [start, start + len) is part of the reservation
                // just made and lies outside the arena we keep.
                unsafe { libc::munmap(start as *mut libc::c_void, len) };
            }
        }
        Ok(SimOs {
            base,
            cfg: SimOsConfig { arena_size, ..cfg },
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock (an assertion in a test) must not
        // turn every later call into a second panic.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The configuration (with `arena_size` rounded up to the page size).
    pub fn config(&self) -> SimOsConfig {
        self.cfg
    }

    /// The arena's start address.
    pub fn base(&self) -> usize {
        self.base
    }

    /// `addr - base` if `addr` lies in the arena.
    pub fn offset(&self, addr: usize) -> Option<usize> {
        addr.checked_sub(self.base)
            .filter(|&off| off < self.cfg.arena_size)
    }

    /// The next `n` calls to `map` fail with an injected `ENOMEM` (replacing
    /// any count still pending; `n == 0` cancels).
    pub fn fail_next_maps(&self, n: u32) {
        self.lock().fail_maps = n;
    }

    /// The next `n` calls to `commit` fail with an injected `ENOMEM`
    /// (replacing any count still pending; `n == 0` cancels).
    pub fn fail_next_commits(&self, n: u32) {
        self.lock().fail_commits = n;
    }

    /// Injected failures still pending: (maps, commits).
    pub fn pending_failures(&self) -> (u32, u32) {
        let st = self.lock();
        (st.fail_maps, st.fail_commits)
    }

    /// Maps and commits refused so far, injected or not (misuses excluded).
    pub fn refusal_count(&self) -> usize {
        self.lock().stats.refusals
    }

    /// Call counters.
    pub fn stats(&self) -> SimOsStats {
        self.lock().stats
    }

    /// VMAs in the live mappings: one per mapping, plus one for every run
    /// of pages spliced into another mapping and every piece those split.
    pub fn vma_count(&self) -> usize {
        self.lock().vmas
    }

    /// Misuses counted so far (also in [`OsBooks::misuse_count`]).
    pub fn misuse_count(&self) -> usize {
        self.lock().misuse_count
    }

    /// Descriptions of the misuses seen, in order (the first 1000), with
    /// addresses as arena offsets.
    pub fn misuses(&self) -> Vec<String> {
        self.lock().misuses.clone()
    }

    /// Every live mapping, by offset.
    pub fn mappings(&self) -> Vec<MappingInfo> {
        let page = self.cfg.page_size;
        self.lock()
            .maps
            .iter()
            .map(|(&offset, m)| MappingInfo {
                offset,
                size: m.pages * page,
                committed_size: m.committed_pages * page,
            })
            .collect()
    }

    /// Whether every page of `[ptr, ptr + size)` is inside one live mapping
    /// and committed (`size == 0` asks about the page holding `ptr`).
    pub fn is_committed(&self, ptr: usize, size: usize) -> bool {
        let page = self.cfg.page_size;
        let Some(off) = self.offset(ptr) else {
            return false;
        };
        let st = self.lock();
        let Some((start, m)) = containing(&st, page, off, size.max(1)) else {
            return false;
        };
        let first = (off - start) / page;
        let last = (off + size.max(1) - 1 - start) / page;
        (first..=last).all(|p| m.committed[p / 64] & (1 << (p % 64)) != 0)
    }

    /// Checks that `[ptr, ptr + size)` is page aligned and inside one live
    /// mapping; returns (mapping offset, first page, page count) or records
    /// a misuse naming `verb`.
    fn sub_range(
        &self,
        st: &mut State,
        verb: &str,
        ptr: usize,
        size: usize,
    ) -> Option<(usize, usize, usize)> {
        let page = self.cfg.page_size;
        let Some(off) = self.offset(ptr) else {
            st.misuse(format!("{verb} of {ptr:#x}+{size:#x}: outside the arena"));
            return None;
        };
        if !off.is_multiple_of(page) || !size.is_multiple_of(page) {
            st.misuse(format!(
                "{verb} of @{off:#x}+{size:#x}: not aligned to the page size {page:#x}"
            ));
            return None;
        }
        match containing(st, page, off, size) {
            Some((start, _)) => Some((start, (off - start) / page, size / page)),
            None => {
                st.misuse(format!(
                    "{verb} of @{off:#x}+{size:#x}: not inside one live mapping"
                ));
                None
            }
        }
    }

    /// Makes `[off, off + size)` read-write (zero pages unless they were
    /// committed already). `false` if the kernel refused.
    fn make_accessible(&self, off: usize, size: usize) -> bool {
        if !self.cfg.protect {
            return true;
        }
        // SAFETY: the range lies inside the arena this SimOs reserved and
        // owns; changing its protection affects no other memory.
        let rc = unsafe {
            libc::mprotect(
                (self.base + off) as *mut libc::c_void,
                size,
                libc::PROT_READ | libc::PROT_WRITE,
            )
        };
        rc == 0
    }

    /// Drops the contents of `[off, off + size)` (it reads as zero when next
    /// made accessible) and, when protecting, makes it inaccessible.
    fn make_inaccessible(&self, off: usize, size: usize) {
        let addr = (self.base + off) as *mut libc::c_void;
        // SAFETY: the range lies inside the arena this SimOs owns; the caller
        // (the allocator, by the `Os` contract) no longer uses its contents.
        unsafe { libc::madvise(addr, size, libc::MADV_DONTNEED) };
        if self.cfg.protect {
            // SAFETY: as above; PROT_NONE only makes later accesses fault.
            // If the kernel refuses (too many VMAs), the range merely stays
            // accessible: the books are unaffected.
            unsafe { libc::mprotect(addr, size, libc::PROT_NONE) };
        }
        asan::unpoison(self.base + off, size);
    }

    /// The lowest offset of a free range of `size` bytes aligned to
    /// `align` (an address alignment), if any.
    fn first_fit(&self, st: &State, size: usize, align: usize) -> Option<usize> {
        let page = self.cfg.page_size;
        let fits = |cursor: usize, limit: usize| -> Option<usize> {
            let addr = (self.base + cursor).checked_next_multiple_of(align)?;
            let cand = addr - self.base;
            (cand.checked_add(size)? <= limit).then_some(cand)
        };
        let mut cursor = 0;
        for (&off, m) in &st.maps {
            if let Some(cand) = fits(cursor, off) {
                return Some(cand);
            }
            cursor = off + m.pages * page;
        }
        fits(cursor, self.cfg.arena_size)
    }

    /// An older kernel's refusal to move a source made of several VMAs.
    fn refuse_multi_vma(st: &mut State, size: usize) -> OsError {
        st.stats.multi_vma_refusals += 1;
        OsError {
            errno: libc::EFAULT,
            size,
            injected: false,
        }
    }

    fn refuse(st: &mut State, size: usize, injected: bool) -> OsError {
        st.stats.refusals += 1;
        if injected {
            st.stats.injected_refusals += 1;
        }
        OsError {
            errno: libc::ENOMEM,
            size,
            injected,
        }
    }
}

fn containing(st: &State, page: usize, off: usize, len: usize) -> Option<(usize, &Mapping)> {
    let (&start, m) = st.maps.range(..=off).next_back()?;
    (off.checked_add(len)? <= start + m.pages * page).then_some((start, m))
}

// SAFETY: `map` returns `size` bytes inside the arena this SimOs reserved,
// aligned to `align` (by address), made read-write by `mprotect` (or left
// read-write when not protecting) and zero-filled (never touched since the
// arena was reserved, or `MADV_DONTNEED`ed when last unmapped). First fit
// only picks ranges between live mappings, so it overlaps none. The memory
// stays mapped until `unmap` of exactly that mapping, or until the SimOs is
// dropped.
unsafe impl Os for SimOs {
    fn page_size(&self) -> usize {
        self.cfg.page_size
    }

    fn address_range(&self) -> (usize, usize) {
        (self.base, self.base + self.cfg.arena_size)
    }

    fn map(&self, size: usize, align: usize) -> Result<NonNull<u8>, OsError> {
        let page = self.cfg.page_size;
        let mut st = self.lock();
        st.stats.map_calls += 1;
        if size == 0 || !size.is_multiple_of(page) || !align.is_power_of_two() {
            st.misuse(format!(
                "map of {size:#x} bytes aligned to {align:#x}: the size must be a positive \
                 multiple of the page size {page:#x} and the alignment a power of two"
            ));
            return Err(OsError {
                errno: libc::EINVAL,
                size,
                injected: false,
            });
        }
        if st.fail_maps > 0 {
            st.fail_maps -= 1;
            return Err(SimOs::refuse(&mut st, size, true));
        }
        let Some(off) = self.first_fit(&st, size, align.max(page)) else {
            return Err(SimOs::refuse(&mut st, size, false));
        };
        if !self.make_accessible(off, size) {
            return Err(SimOs::refuse(&mut st, size, false));
        }
        if !self.cfg.protect {
            // Unprotected, a stray write may have landed in the free range:
            // drop it so the mapping is zero-filled as promised.
            // SAFETY: the range is inside the arena and in no live mapping.
            unsafe {
                libc::madvise(
                    (self.base + off) as *mut libc::c_void,
                    size,
                    libc::MADV_DONTNEED,
                )
            };
        }
        asan::unpoison(self.base + off, size);
        st.maps.insert(off, Mapping::new(size / page));
        st.vmas += 1;
        st.stats.peak_vmas = st.stats.peak_vmas.max(st.vmas);
        st.mapped_size += size;
        st.committed_size += size;
        st.high_water = st.high_water.max(off + size);
        // The range is live again: an unmap there is no longer a double one.
        let stale: Vec<usize> = st
            .unmapped
            .range(..off + size)
            .filter(|&(&o, &s)| o + s > off)
            .map(|(&o, _)| o)
            .collect();
        for o in stale {
            st.unmapped.remove(&o);
        }
        // SAFETY: base + off is inside the arena, which starts above zero.
        Ok(unsafe { NonNull::new_unchecked((self.base + off) as *mut u8) })
    }

    unsafe fn remap(
        &self,
        ptr: NonNull<u8>,
        old_size: usize,
        new_size: usize,
        align: usize,
    ) -> Result<NonNull<u8>, OsError> {
        // Deterministic and simple: a new mapping, the contents copied, the
        // old one unmapped (a real kernel moves pages; the books are the
        // same). Injected map failures apply.
        let page = self.cfg.page_size;
        let src_vmas = {
            let mut st = self.lock();
            let vmas = self
                .offset(ptr.as_ptr() as usize)
                .and_then(|off| st.maps.get(&off))
                .map(|m| m.vmas.clone());
            // A mapping made of several VMAs neither grows nor moves whole
            // on an older kernel (natively every step fails with EFAULT).
            if vmas.as_ref().is_some_and(|v| v.len() > 1)
                && new_size > old_size
                && !self.cfg.moves_multi_vma
            {
                return Err(SimOs::refuse_multi_vma(&mut st, new_size));
            }
            vmas
        };
        let dst = self.map(new_size, align)?;
        // A kernel moves pages without reading them: whatever the allocator
        // poisoned in the old mapping (a cached large block) is no error.
        asan::unpoison(ptr.as_ptr() as usize, old_size);
        // SAFETY: the caller passes one whole live mapping of `old_size`
        // bytes; `dst` is a fresh one of `new_size`.
        unsafe {
            std::ptr::copy_nonoverlapping(ptr.as_ptr(), dst.as_ptr(), old_size.min(new_size));
            self.unmap(ptr, old_size);
        }
        // One VMA stays one (grown in place or moved); several move whole
        // at their size (Linux 6.17), the fresh rest a VMA of its own, or
        // shrink to those in the new size.
        if let Some(vmas) = src_vmas.filter(|v| v.len() > 1) {
            let (old_pages, new_pages) = (old_size / page, new_size / page);
            let mut kept: BTreeSet<usize> = vmas.range(..new_pages).copied().collect();
            if new_pages > old_pages {
                kept.insert(old_pages);
            }
            let off = self
                .offset(dst.as_ptr() as usize)
                .expect("mapped in the arena");
            self.lock().set_vmas(off, kept);
        }
        Ok(dst)
    }

    unsafe fn split(&self, ptr: NonNull<u8>, size: usize, at: usize) -> Result<(), OsError> {
        let page = self.cfg.page_size;
        let mut st = self.lock();
        st.stats.split_calls += 1;
        let addr = ptr.as_ptr() as usize;
        let misuse = |st: &mut State, what: &str| {
            st.misuse(format!("split of {addr:#x}+{size:#x} at {at:#x}: {what}"));
            Err(OsError {
                errno: libc::EINVAL,
                size,
                injected: false,
            })
        };
        let Some(off) = self.offset(addr) else {
            return misuse(&mut st, "outside the arena");
        };
        if at == 0 || at >= size || !at.is_multiple_of(page) {
            return misuse(&mut st, "not a page boundary inside the mapping");
        }
        if st.maps.get(&off).map(|m| m.pages * page) != Some(size) {
            return misuse(&mut st, "not one whole live mapping");
        }
        let m = st.maps.remove(&off).expect("just found");
        let (head, tail) = (at / page, (size - at) / page);
        let bit = |p: usize| m.committed[p / 64] & (1 << (p % 64)) != 0;
        let mut a = Mapping::new(head);
        let mut b = Mapping::new(tail);
        for p in 0..head {
            if !bit(p) {
                a.set_pages(p, 1, false);
            }
        }
        for p in 0..tail {
            if !bit(head + p) {
                b.set_pages(p, 1, false);
            }
        }
        // Each piece keeps the VMAs in its range; the tail's first page
        // starts one whether or not it did before.
        let head_vmas: BTreeSet<usize> = m.vmas.range(..head).copied().collect();
        let mut tail_vmas: BTreeSet<usize> = m.vmas.range(head..).map(|&v| v - head).collect();
        tail_vmas.insert(0);
        // (`set_vmas` replaces the one VMA each new piece starts with.)
        st.vmas = st.vmas - m.vmas.len() + 2;
        st.maps.insert(off, a);
        st.maps.insert(off + at, b);
        st.set_vmas(off, head_vmas);
        st.set_vmas(off + at, tail_vmas);
        Ok(())
    }

    unsafe fn splice(
        &self,
        src: NonNull<u8>,
        size: usize,
        dst: NonNull<u8>,
    ) -> Result<(), OsError> {
        let page = self.cfg.page_size;
        let (s_addr, d_addr) = (src.as_ptr() as usize, dst.as_ptr() as usize);
        {
            let mut st = self.lock();
            st.stats.splice_calls += 1;
            let misuse = |st: &mut State, what: &str| {
                st.misuse(format!(
                    "splice of {s_addr:#x}+{size:#x} to {d_addr:#x}: {what}"
                ));
                Err(OsError {
                    errno: libc::EINVAL,
                    size,
                    injected: false,
                })
            };
            let (Some(s_off), Some(d_off)) = (self.offset(s_addr), self.offset(d_addr)) else {
                return misuse(&mut st, "outside the arena");
            };
            if st.maps.get(&s_off).map(|m| m.pages * page) != Some(size) {
                return misuse(&mut st, "the source is not one whole live mapping");
            }
            if d_off % page != 0 {
                return misuse(&mut st, "the destination is not page aligned");
            }
            let Some((d_start, dm)) = containing(&st, page, d_off, size) else {
                return misuse(&mut st, "the destination is not inside one live mapping");
            };
            let first = (d_off - d_start) / page;
            let dst_committed =
                (first..first + size / page).all(|p| dm.committed[p / 64] & (1 << (p % 64)) != 0);
            if d_start == s_off {
                return misuse(&mut st, "the destination lies in the source");
            }
            let whole = st
                .maps
                .get(&s_off)
                .is_some_and(|m| m.committed_pages == m.pages);
            if !whole || !dst_committed {
                return misuse(&mut st, "a page of either range is decommitted");
            }
            // The moved pages start a VMA, and so does what follows them;
            // VMAs inside the destination range go with its old pages, and
            // the source's own VMAs move whole (Linux 6.17) or, on an older
            // kernel, make it refuse the move.
            let src_vmas = st.maps.get(&s_off).expect("checked above").vmas.clone();
            if src_vmas.len() > 1 && !self.cfg.moves_multi_vma {
                return Err(SimOs::refuse_multi_vma(&mut st, size));
            }
            let (count, pages) = (size / page, dm.pages);
            let mut vmas: BTreeSet<usize> = dm
                .vmas
                .iter()
                .copied()
                .filter(|&v| v < first || v >= first + count)
                .collect();
            vmas.extend(src_vmas.iter().map(|&v| first + v));
            if first + count < pages {
                vmas.insert(first + count);
            }
            // The source's VMAs are the destination's now (its unmap below
            // then takes none off the count).
            st.maps.get_mut(&s_off).expect("checked above").vmas.clear();
            st.vmas -= src_vmas.len();
            st.set_vmas(d_start, vmas);
        }
        // A kernel moves pages without reading them: whatever the allocator
        // poisoned in either range is no error.
        asan::unpoison(s_addr, size);
        asan::unpoison(d_addr, size);
        // SAFETY: both ranges are live mappings of this arena (checked
        // above), distinct ones, so they do not overlap; the caller owns
        // both. The source then goes the way of any unmap.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), dst.as_ptr(), size);
            self.unmap(src, size);
        }
        Ok(())
    }

    unsafe fn unmap(&self, ptr: NonNull<u8>, size: usize) {
        let page = self.cfg.page_size;
        let mut st = self.lock();
        st.stats.unmap_calls += 1;
        let addr = ptr.as_ptr() as usize;
        let Some(off) = self.offset(addr) else {
            st.misuse(format!("unmap of {addr:#x}+{size:#x}: outside the arena"));
            return;
        };
        match st.maps.get(&off).map(|m| m.pages * page) {
            Some(mapped) if mapped == size => {
                let m = st.maps.remove(&off).expect("just found");
                st.vmas -= m.vmas.len();
                st.mapped_size -= size;
                st.committed_size -= m.committed_pages * page;
                st.unmapped.insert(off, size);
                self.make_inaccessible(off, size);
            }
            Some(mapped) => st.misuse(format!(
                "unmap of @{off:#x}+{size:#x}: the mapping there has size {mapped:#x}"
            )),
            None => {
                let what = if st.unmapped.get(&off) == Some(&size) {
                    "double unmap".to_string()
                } else if let Some((start, _)) = containing(&st, page, off, 1) {
                    format!("not the start of the mapping at @{start:#x}")
                } else {
                    "nothing is mapped there".to_string()
                };
                st.misuse(format!("unmap of @{off:#x}+{size:#x}: {what}"));
            }
        }
    }

    unsafe fn commit(&self, ptr: NonNull<u8>, size: usize) -> Result<(), OsError> {
        let page = self.cfg.page_size;
        let mut st = self.lock();
        st.stats.commit_calls += 1;
        if size == 0 {
            return Ok(());
        }
        let Some((start, first, count)) =
            self.sub_range(&mut st, "commit", ptr.as_ptr() as usize, size)
        else {
            return Err(OsError {
                errno: libc::EINVAL,
                size,
                injected: false,
            });
        };
        if st.fail_commits > 0 {
            st.fail_commits -= 1;
            return Err(SimOs::refuse(&mut st, size, true));
        }
        if !self.make_accessible(start + first * page, size) {
            return Err(SimOs::refuse(&mut st, size, false));
        }
        asan::unpoison(ptr.as_ptr() as usize, size);
        let m = st.maps.get_mut(&start).expect("sub_range found it");
        let changed = m.set_pages(first, count, true);
        st.committed_size += changed * page;
        Ok(())
    }

    unsafe fn decommit(&self, ptr: NonNull<u8>, size: usize) {
        let page = self.cfg.page_size;
        let mut st = self.lock();
        st.stats.decommit_calls += 1;
        if size == 0 {
            return;
        }
        let Some((start, first, count)) =
            self.sub_range(&mut st, "decommit", ptr.as_ptr() as usize, size)
        else {
            return;
        };
        self.make_inaccessible(start + first * page, size);
        let m = st.maps.get_mut(&start).expect("sub_range found it");
        let changed = m.set_pages(first, count, false);
        st.committed_size -= changed * page;
    }

    fn books(&self) -> Option<OsBooks> {
        let st = self.lock();
        Some(OsBooks {
            mapped_size: st.mapped_size,
            map_count: st.maps.len(),
            committed_size: st.committed_size,
            misuse_count: st.misuse_count,
            mapped_end: if st.high_water == 0 {
                0
            } else {
                self.base + st.high_water
            },
        })
    }

    fn is_mapped(&self, ptr: usize, size: usize) -> Option<bool> {
        let Some(off) = self.offset(ptr) else {
            return Some(false);
        };
        let st = self.lock();
        Some(containing(&st, self.cfg.page_size, off, size.max(1)).is_some())
    }

    const MARKS_BLOCKS: bool = true;

    #[inline]
    fn mark_block(&self, ptr: *mut u8, size: usize, live: bool) {
        if live {
            asan::unpoison(ptr as usize, size);
        } else {
            // The link words stay usable (a carved block may come from
            // poisoned uncarved space); the rest is poisoned.
            asan::unpoison(ptr as usize, size.min(FREE_LINK_SIZE));
            if size > FREE_LINK_SIZE {
                asan::poison(ptr as usize + FREE_LINK_SIZE, size - FREE_LINK_SIZE);
            }
        }
    }

    fn mark_uncarved(&self, ptr: *mut u8, size: usize) {
        asan::poison(ptr as usize, size);
    }
}

/// Bytes at the start of a free block the allocator keeps its links in;
/// `mark_block` leaves them unpoisoned.
pub const FREE_LINK_SIZE: usize = 16;

impl Drop for SimOs {
    fn drop(&mut self) {
        asan::unpoison(self.base, self.cfg.arena_size);
        // SAFETY: the arena was reserved by `try_new` and is owned by this
        // SimOs alone; nothing may use memory from it once the SimOs is
        // gone (everything mapped from it borrows the SimOs).
        unsafe { libc::munmap(self.base as *mut libc::c_void, self.cfg.arena_size) };
    }
}

/// AddressSanitizer hooks: real under `cfg(hakmem_asan)`, no-ops otherwise.
mod asan {
    #[cfg(hakmem_asan)]
    extern "C" {
        fn __asan_poison_memory_region(addr: *const core::ffi::c_void, size: usize);
        fn __asan_unpoison_memory_region(addr: *const core::ffi::c_void, size: usize);
    }

    /// Marks `[addr, addr + size)` as not to be touched.
    #[inline(always)]
    pub(super) fn poison(addr: usize, size: usize) {
        #[cfg(hakmem_asan)]
        // SAFETY: poisoning only changes ASan's shadow bytes for the range;
        // it never touches the range itself.
        unsafe {
            __asan_poison_memory_region(addr as *const core::ffi::c_void, size)
        };
        let _ = (addr, size);
    }

    /// Marks `[addr, addr + size)` as usable again.
    #[inline(always)]
    pub(super) fn unpoison(addr: usize, size: usize) {
        #[cfg(hakmem_asan)]
        // SAFETY: as for `poison`.
        unsafe {
            __asan_unpoison_memory_region(addr as *const core::ffi::c_void, size)
        };
        let _ = (addr, size);
    }
}

#[cfg(test)]
#[path = "sim_os_tests.rs"]
mod tests;
