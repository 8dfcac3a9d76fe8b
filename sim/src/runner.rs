//! The runner: replays a trace on a fresh `Allocator` over `SimOs`, keeps
//! the model of live blocks, checks the user contract on every op and the
//! allocator's books (`check_live`) after every `check_every` ops and at
//! the end, then brings the allocator to quiescence (free everything, exit
//! every thread, trim) and checks that the OS holds nothing beyond the
//! retention.
//!
//! The runner is total: an op naming a handle that was never allocated, or
//! allocating a handle that is live, is skipped (counted), so that deleting
//! lines from a failing trace — what the minimizer does — always leaves a
//! runnable trace.
//!
//! Misuse ops (a free of a dead handle, of a pointer inside a block, of a
//! foreign pointer) expect a typed error from the allocator; the error is
//! recorded in the report and the run goes on. An undetected misuse is a
//! failure (I7 MISUSE-UNDETECTED).

use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::ptr::NonNull;

use hakmem::{
    AllocError, Allocator, Config, FreeError, Geometry, Heap, Invariant, NativeSched, Os, Platform,
    ReallocError, Stats, Violation,
};

use crate::model::{self, Block, Model};
use crate::sim_os::{SimOs, SimOsConfig, SimOsStats};
use crate::trace::{Op, OsFailKind, Trace, MAX_THREADS};

/// The simulation platform with the tiny geometry (the default).
pub struct SimTiny;
impl Platform for SimTiny {
    type Os = SimOs;
    type Sched = NativeSched;
    const GEOMETRY: Geometry = Geometry::TINY;
}

/// The simulation platform with the production geometry.
pub struct SimProd;
impl Platform for SimProd {
    type Os = SimOs;
    type Sched = NativeSched;
    const GEOMETRY: Geometry = Geometry::PRODUCTION;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GeometryKind {
    Tiny,
    Production,
}

/// How to run a trace.
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub geometry: GeometryKind,
    /// Allocator knobs (and the zoo bugs switched on).
    pub alloc: Config,
    /// Full check after every `check_every` ops (1: after every op; 0: only
    /// at the end). The user-contract checks run on every op regardless.
    pub check_every: usize,
    /// At the end: free everything, exit every thread, trim, and check the
    /// OS books fall back to the retention.
    pub quiescence: bool,
    pub sim_os: SimOsConfig,
}

impl RunConfig {
    /// Tiny geometry, tiny caches, a check after every op.
    pub fn tiny() -> Self {
        RunConfig {
            geometry: GeometryKind::Tiny,
            alloc: Config::TINY,
            check_every: 1,
            quiescence: true,
            sim_os: SimOsConfig {
                arena_size: 1 << 30,
                ..SimOsConfig::default()
            },
        }
    }

    /// The production geometry and defaults.
    pub fn production() -> Self {
        RunConfig {
            geometry: GeometryKind::Production,
            alloc: Config {
                tag_key: 0x5eed_0000_0000_f00f,
                ..Config::DEFAULT
            },
            check_every: 1,
            quiescence: true,
            sim_os: SimOsConfig {
                arena_size: 16 << 30,
                ..SimOsConfig::default()
            },
        }
    }

    /// The configuration a trace file's `# geometry:` header asks for:
    /// `tiny` (also without the header) or `production`, a check after
    /// every op. (The file's other settings are in the trace itself.)
    pub fn for_headers(headers: &[(String, String)]) -> Result<RunConfig, String> {
        match headers.iter().find(|(k, _)| k == "geometry") {
            None => Ok(RunConfig::tiny()),
            Some((_, v)) if v == "tiny" => Ok(RunConfig::tiny()),
            Some((_, v)) if v == "production" => Ok(RunConfig::production()),
            Some((_, v)) => Err(format!(
                "unknown geometry '{v}' (expected tiny or production)"
            )),
        }
    }

    pub fn check_every(mut self, k: usize) -> Self {
        self.check_every = k;
        self
    }
}

/// What a run that passed saw.
#[derive(Clone, Debug, Default)]
pub struct RunReport {
    pub ops: usize,
    /// Ops skipped: unknown handles, live handles re-allocated, misuse ops
    /// whose pointer is live again under another handle.
    pub skipped: usize,
    /// Misuse ops and the typed error the allocator reported for each.
    pub misuse: Vec<(usize, FreeError)>,
    /// Allocations refused because the OS refused memory (legitimately).
    pub oom: usize,
    pub checks: usize,
    pub stats: Stats,
    /// The simulated OS's counters at the end (calls, refusals, VMAs).
    pub os: SimOsStats,
}

/// Why a run failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// An invariant of the allocator's books, or of the user contract.
    Violation {
        invariant: Invariant,
        clause: String,
    },
    /// The allocator panicked.
    Panic,
    /// The run died from a signal (only seen through `run_isolated`).
    Crash { signal: i32 },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The op at which it was found; `None`: during the final quiescence.
    pub op_index: Option<usize>,
    pub op: Option<Op>,
    pub kind: FailureKind,
    pub detail: String,
}

impl Failure {
    /// What the minimizer keeps constant: `I3 SLAB-USED`, `PANIC`, `CRASH 11`.
    pub fn id(&self) -> String {
        match &self.kind {
            FailureKind::Violation { invariant, clause } => format!("{invariant} {clause}"),
            FailureKind::Panic => "PANIC".to_string(),
            FailureKind::Crash { signal } => format!("CRASH {signal}"),
        }
    }

    /// Rebuilds a failure from its `id()` and detail (what an isolated
    /// child process reports).
    pub fn from_id(op_index: Option<usize>, id: &str, detail: String) -> Failure {
        let kind = if id == "PANIC" {
            FailureKind::Panic
        } else if let Some(sig) = id.strip_prefix("CRASH ") {
            FailureKind::Crash {
                signal: sig.parse().unwrap_or(0),
            }
        } else {
            let (inv, clause) = id.split_once(' ').unwrap_or((id, ""));
            FailureKind::Violation {
                invariant: Invariant::from_id(inv).unwrap_or(Invariant::I7),
                clause: clause.to_string(),
            }
        };
        Failure {
            op_index,
            op: None,
            kind,
            detail,
        }
    }

    pub fn invariant(&self) -> Option<Invariant> {
        match self.kind {
            FailureKind::Violation { invariant, .. } => Some(invariant),
            _ => None,
        }
    }

    fn user(op: usize, clause: &'static str, detail: String) -> Failure {
        Failure {
            op_index: Some(op),
            op: None,
            kind: FailureKind::Violation {
                invariant: Invariant::I7,
                clause: clause.to_string(),
            },
            detail,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.op_index, &self.op) {
            (Some(i), Some(op)) => write!(f, "op {} (`{op}`): ", i + 1)?,
            (Some(i), None) => write!(f, "op {}: ", i + 1)?,
            (None, _) => write!(f, "at quiescence (after the last op): ")?,
        }
        write!(f, "{}: {}", self.id(), self.detail)
    }
}

impl std::error::Error for Failure {}

/// Runs `trace` under `cfg`, the trace's settings (`set parked-heaps N`)
/// taking precedence over `cfg`'s. Panics inside the allocator become
/// `FailureKind::Panic`; a crash (a signal) kills the process — use
/// [`run_isolated`] to survive those.
pub fn run(trace: &Trace, cfg: &RunConfig) -> Result<RunReport, Failure> {
    let mut cfg = cfg.clone();
    if let Some(n) = trace.parked_heaps {
        cfg.alloc.parked_heaps = n;
    }
    match cfg.geometry {
        GeometryKind::Tiny => run_on::<SimTiny>(trace, &cfg),
        GeometryKind::Production => run_on::<SimProd>(trace, &cfg),
    }
}

fn run_on<P: Platform<Os = SimOs>>(trace: &Trace, cfg: &RunConfig) -> Result<RunReport, Failure> {
    let os = SimOs::new(cfg.sim_os);
    let arena = (os.base(), os.config().arena_size);
    // After a failure the allocator's state is corrupt: running its
    // destructors (heap exits, teardown) could crash on it. It is leaked
    // then, and only the arena is returned, wholesale.
    let alloc = std::mem::ManuallyDrop::new(Allocator::<P>::new(os, cfg.alloc));
    let at = std::cell::Cell::new(None::<usize>);
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        let mut r = Runner {
            a: &alloc,
            cfg,
            heaps: (0..MAX_THREADS).map(|_| None).collect(),
            model: Model::default(),
            report: RunReport::default(),
            foreign: [0u64; 8],
        };
        let outcome = r.run_all(trace, &at);
        if outcome.is_err() {
            std::mem::forget(std::mem::take(&mut r.heaps));
        }
        outcome.map(|()| {
            r.report.ops = trace.ops.len();
            r.report.stats = alloc.stats();
            r.report.os = alloc.os().stats();
            r.report
        })
    }));
    let result = match result {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "(non-string panic)".into());
            let i = at.get();
            Err(Failure {
                op_index: i,
                op: i.map(|i| trace.ops[i].clone()),
                kind: FailureKind::Panic,
                detail: msg,
            })
        }
    };
    match result {
        Ok(report) => {
            drop(std::mem::ManuallyDrop::into_inner(alloc));
            Ok(report)
        }
        Err(f) => {
            // SAFETY: the allocator (and its SimOs) are leaked and never
            // used again; nothing else refers to the arena.
            unsafe { libc::munmap(arena.0 as *mut libc::c_void, arena.1) };
            Err(relative(f, arena))
        }
    }
}

/// Rewrites arena addresses in a failure's text as `@+offset`, so the same
/// failure prints the same way every run.
fn relative(mut f: Failure, arena: (usize, usize)) -> Failure {
    f.detail = relative_addresses(&f.detail, arena);
    f
}

/// `text` with every `0x…` address inside the arena `(base, size)` written
/// as `@+offset`; other numbers stay as they are.
pub(crate) fn relative_addresses(text: &str, (base, size): (usize, usize)) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("0x") {
        out.push_str(&rest[..i]);
        let hex: String = rest[i + 2..]
            .chars()
            .take_while(|c| c.is_ascii_hexdigit())
            .collect();
        match usize::from_str_radix(&hex, 16) {
            Ok(v) if v >= base && v < base + size => out.push_str(&format!("@+{:#x}", v - base)),
            _ => {
                out.push_str("0x");
                out.push_str(&hex);
            }
        }
        rest = &rest[i + 2 + hex.len()..];
    }
    out.push_str(rest);
    out
}

struct Runner<'a, P: Platform<Os = SimOs>> {
    a: &'a Allocator<P>,
    cfg: &'a RunConfig,
    heaps: Vec<Option<Heap<'a, P>>>,
    model: Model,
    report: RunReport,
    /// Memory the allocator never made, for `free foreign`.
    foreign: [u64; 8],
}

fn violation_failure(op: Option<usize>, v: Violation) -> Failure {
    let text = v.to_string();
    let prefix = format!("{} {}: ", v.invariant, v.clause);
    Failure {
        op_index: op,
        op: None,
        kind: FailureKind::Violation {
            invariant: v.invariant,
            clause: v.clause.to_string(),
        },
        detail: text.strip_prefix(&prefix).unwrap_or(&text).to_string(),
    }
}

impl<'a, P: Platform<Os = SimOs>> Runner<'a, P> {
    fn os(&self) -> &SimOs {
        self.a.os()
    }

    fn run_all(
        &mut self,
        trace: &Trace,
        at: &std::cell::Cell<Option<usize>>,
    ) -> Result<(), Failure> {
        for (i, op) in trace.ops.iter().enumerate() {
            at.set(Some(i));
            self.step(i, op).map_err(|f| Failure {
                op: Some(op.clone()),
                ..f
            })?;
            if self.cfg.check_every != 0 && (i + 1) % self.cfg.check_every == 0 {
                self.check(Some(i)).map_err(|f| Failure {
                    op: Some(op.clone()),
                    ..f
                })?;
            }
        }
        at.set(None);
        self.check(None)?;
        if self.cfg.quiescence {
            self.quiesce()?;
        }
        Ok(())
    }

    /// The heap of logical thread `t`, created on first use (None if the
    /// OS refused memory for its record).
    fn heap(&mut self, t: u8) -> Option<&mut Heap<'a, P>> {
        let slot = &mut self.heaps[t as usize];
        if slot.is_none() {
            *slot = self.a.heap().ok();
        }
        slot.as_mut()
    }

    fn check(&mut self, op: Option<usize>) -> Result<(), Failure> {
        self.report.checks += 1;
        // SAFETY: the simulation is single-threaded: quiescent.
        unsafe { self.a.check_live(self.model.pointers()) }
            .map(|_| ())
            .map_err(|v| violation_failure(op, v))
    }

    fn step(&mut self, i: usize, op: &Op) -> Result<(), Failure> {
        match *op {
            Op::Alloc {
                t,
                id,
                size,
                align,
                zeroed,
            } => self.alloc(i, t, id, size, align, zeroed),
            Op::Free { t, id } => self.free(i, t, id),
            Op::FreeInterior { t, id, offset } => self.free_interior(i, t, id, offset),
            Op::FreeForeign { t } => {
                let p = NonNull::from(&self.foreign[3]).cast::<u8>();
                let r = match self.heap(t) {
                    Some(h) => h.free(p),
                    None => self.a.free_unowned(p),
                };
                match r {
                    Err(e @ FreeError::NotOwned { .. }) => {
                        self.report.misuse.push((i, e));
                        Ok(())
                    }
                    other => Err(Failure::user(
                        i,
                        "MISUSE-UNDETECTED",
                        format!("free of a foreign pointer returned {other:?}, expected NotOwned"),
                    )),
                }
            }
            Op::Realloc { t, id, size } => self.realloc(i, t, id, size),
            Op::Drain { t } => {
                if let Some(h) = self.heaps[t as usize].as_mut() {
                    h.flush();
                }
                Ok(())
            }
            Op::Collect { t } => {
                if let Some(h) = self.heaps[t as usize].as_mut() {
                    h.collect();
                }
                Ok(())
            }
            Op::Exit { t } => {
                self.heaps[t as usize] = None;
                Ok(())
            }
            Op::Trim => {
                self.a.trim();
                Ok(())
            }
            Op::OsFail { what, count } => {
                match what {
                    OsFailKind::Map => self.os().fail_next_maps(count),
                    OsFailKind::Commit => self.os().fail_next_commits(count),
                }
                Ok(())
            }
            Op::Check => self.check(Some(i)),
        }
    }

    /// Whether an allocation error is legitimate: the OS refused something
    /// during this op, or the request cannot be served at all.
    fn legit_alloc_error(
        &self,
        e: AllocError,
        refusals_before: usize,
        size: usize,
        align: usize,
    ) -> bool {
        match e {
            AllocError::OutOfMemory(_) => self.os().refusal_count() > refusals_before,
            AllocError::TooLarge { .. } => size > isize::MAX as usize / 2,
            AllocError::BadAlign { .. } => align > P::GEOMETRY.segment_size() / 2,
        }
    }

    /// Checks a fresh block against the contract and the model.
    fn accept_block(
        &mut self,
        i: usize,
        id: u32,
        t: u8,
        ptr: NonNull<u8>,
        size: usize,
        align: usize,
    ) -> Result<(), Failure> {
        let p = ptr.as_ptr() as usize;
        if !p.is_multiple_of(align) {
            return Err(Failure::user(
                i,
                "USER-ALIGN",
                format!("block {p:#x} of p{id} is not aligned to {align}"),
            ));
        }
        let usable = self.heaps[t as usize]
            .as_mut()
            .expect("the allocating heap exists")
            .usable_size(ptr)
            .map_err(|e| {
                Failure::user(
                    i,
                    "USER-USABLE",
                    format!("usable_size of the new block p{id} failed: {e}"),
                )
            })?;
        if usable < size {
            return Err(Failure::user(
                i,
                "USER-USABLE",
                format!("p{id}: usable size {usable} < requested {size}"),
            ));
        }
        if let Some((other, b)) = self.model.overlapping(p, size) {
            return Err(Failure::user(
                i,
                "USER-OVERLAP",
                format!(
                    "p{id} [{p:#x}, +{size}) overlaps live p{other} [{:#x}, +{})",
                    b.ptr, b.size
                ),
            ));
        }
        let seed = model::seed_of(id);
        // SAFETY: a live block of at least `size` bytes we own.
        unsafe { model::fill(p, size, seed) };
        self.model.insert(
            id,
            Block {
                ptr: p,
                size,
                align,
                owner: t,
                seed,
            },
        );
        Ok(())
    }

    fn verify(&self, i: usize, id: u32, b: &Block, size: usize) -> Result<(), Failure> {
        // SAFETY: a live block of the model.
        if let Some(at) = unsafe { model::first_mismatch(b.ptr, size, b.seed) } {
            return Err(Failure::user(
                i,
                "USER-CONTENTS",
                format!(
                    "live p{id} at {:#x} changed at byte {at} of {}",
                    b.ptr, b.size
                ),
            ));
        }
        Ok(())
    }

    fn alloc(
        &mut self,
        i: usize,
        t: u8,
        id: u32,
        size: usize,
        align: usize,
        zeroed: bool,
    ) -> Result<(), Failure> {
        if self.model.live(id).is_some() {
            self.report.skipped += 1;
            return Ok(());
        }
        let before = self.os().refusal_count();
        let Some(h) = self.heap(t) else {
            self.report.oom += 1;
            return Ok(()); // the heap record itself was refused
        };
        let r = if zeroed {
            h.alloc_zeroed(size, align)
        } else {
            h.alloc(size, align)
        };
        match r {
            Ok(p) => {
                if zeroed {
                    // SAFETY: a fresh block of at least `size` bytes.
                    if let Some(at) = unsafe { model::first_nonzero(p.as_ptr() as usize, size) } {
                        return Err(Failure::user(
                            i,
                            "USER-ZERO",
                            format!("zeroed p{id} has a non-zero byte at {at}"),
                        ));
                    }
                }
                self.accept_block(i, id, t, p, size, align)
            }
            Err(e) if self.legit_alloc_error(e, before, size, align) => {
                self.report.oom += 1;
                Ok(())
            }
            Err(e) => Err(Failure::user(
                i,
                "SPURIOUS-ERROR",
                format!("alloc of {size} bytes (align {align}) failed without cause: {e}"),
            )),
        }
    }

    fn free(&mut self, i: usize, t: u8, id: u32) -> Result<(), Failure> {
        if let Some(b) = self.model.live(id).copied() {
            self.verify(i, id, &b, b.size)?;
            let p = NonNull::new(b.ptr as *mut u8).unwrap();
            let r = match self.heap(t) {
                Some(h) => h.free(p),
                None => self.a.free_unowned(p),
            };
            r.map_err(|e| Failure::user(i, "FREE-REJECTED", format!("free of live p{id}: {e}")))?;
            self.model.remove(id);
            return Ok(());
        }
        self.misuse_dead(i, t, id, "free")
    }

    /// A free or realloc of a dead handle: the allocator must report it,
    /// unless its address now starts another live block.
    fn misuse_dead(&mut self, i: usize, t: u8, id: u32, what: &str) -> Result<(), Failure> {
        let Some(ptr) = self.model.dead_ptr(id) else {
            self.report.skipped += 1;
            return Ok(());
        };
        if self.model.is_live_start(ptr) {
            self.report.skipped += 1;
            return Ok(());
        }
        let p = NonNull::new(ptr as *mut u8).unwrap();
        let a = self.a;
        let r: Result<(), FreeError> = match (what, self.heap(t)) {
            ("free", Some(h)) => h.free(p),
            ("free", None) => a.free_unowned(p),
            // A realloc the allocator accepted (or tried to serve) is as
            // undetected as an accepted free.
            (_, Some(h)) => match h.realloc(p, 64, 16) {
                Err(ReallocError::Free(e)) => Err(e),
                Ok(_) | Err(ReallocError::Alloc(_)) => Ok(()),
            },
            (_, None) => {
                self.report.skipped += 1;
                return Ok(());
            }
        };
        match r {
            Err(e) => {
                self.report.misuse.push((i, e));
                Ok(())
            }
            Ok(()) => Err(Failure::user(
                i,
                "MISUSE-UNDETECTED",
                format!(
                    "{what} of dead p{id} ({ptr:#x}) was accepted: a double free went undetected"
                ),
            )),
        }
    }

    fn free_interior(&mut self, i: usize, t: u8, id: u32, offset: usize) -> Result<(), Failure> {
        let Some(b) = self.model.live(id).copied() else {
            self.report.skipped += 1;
            return Ok(());
        };
        if offset == 0 || offset >= b.size {
            self.report.skipped += 1;
            return Ok(());
        }
        let p = NonNull::new((b.ptr + offset) as *mut u8).unwrap();
        let r = match self.heap(t) {
            Some(h) => h.free(p),
            None => self.a.free_unowned(p),
        };
        match r {
            Err(e @ FreeError::Interior { block, .. }) if block == b.ptr => {
                self.report.misuse.push((i, e));
                self.verify(i, id, &b, b.size)
            }
            other => Err(Failure::user(
                i,
                "MISUSE-UNDETECTED",
                format!("free of p{id}+{offset} returned {other:?}, expected Interior {{ block: {:#x} }}", b.ptr),
            )),
        }
    }

    fn realloc(&mut self, i: usize, t: u8, id: u32, size: usize) -> Result<(), Failure> {
        let Some(b) = self.model.live(id).copied() else {
            return self.misuse_dead(i, t, id, "realloc");
        };
        self.verify(i, id, &b, b.size)?;
        let before = self.os().refusal_count();
        let Some(h) = self.heap(t) else {
            self.report.oom += 1;
            return Ok(());
        };
        let p = NonNull::new(b.ptr as *mut u8).unwrap();
        match h.realloc(p, size, b.align) {
            Ok(q) => {
                let keep = b.size.min(size);
                let moved = Block {
                    ptr: q.as_ptr() as usize,
                    ..b
                };
                // The kept prefix must have survived the move.
                self.verify(i, id, &moved, keep)?;
                self.model.remove(id);
                self.accept_block(i, id, t, q, size, b.align)
            }
            Err(ReallocError::Alloc(e)) if self.legit_alloc_error(e, before, size, b.align) => {
                self.report.oom += 1;
                self.verify(i, id, &b, b.size)
            }
            Err(e) => Err(Failure::user(
                i,
                "SPURIOUS-ERROR",
                format!("realloc of live p{id} to {size}: {e}"),
            )),
        }
    }

    /// Free everything (each block by its owner), exit every thread, trim;
    /// then the OS holds only metadata (and the configured retention).
    fn quiesce(&mut self) -> Result<(), Failure> {
        self.os().fail_next_maps(0);
        self.os().fail_next_commits(0);
        let mut blocks: Vec<(u32, Block)> = self.model.blocks().collect();
        blocks.sort_by_key(|&(id, _)| id);
        for (id, b) in blocks {
            self.verify(usize::MAX, id, &b, b.size)
                .map_err(|f| Failure {
                    op_index: None,
                    ..f
                })?;
            let p = NonNull::new(b.ptr as *mut u8).unwrap();
            let r = match self.heap(b.owner) {
                Some(h) => h.free(p),
                None => self.a.free_unowned(p),
            };
            r.map_err(|e| Failure {
                op_index: None,
                ..Failure::user(0, "FREE-REJECTED", format!("final free of p{id}: {e}"))
            })?;
            self.model.remove(id);
        }
        self.check(None)?;
        // Exit every thread, checking after each: a corruption shows up as
        // the violation it is, before it can turn into a crash.
        for t in 0..self.heaps.len() {
            if self.heaps[t].take().is_some() {
                self.check(None)?;
            }
        }
        self.a.trim();
        // SAFETY: single-threaded.
        let report = unsafe { self.a.check() }.map_err(|v| violation_failure(None, v))?;
        if report.live_small + report.live_large != 0 {
            return Err(Failure {
                op_index: None,
                op: None,
                kind: FailureKind::Violation {
                    invariant: Invariant::I3,
                    clause: "SLAB-USED".into(),
                },
                detail: format!(
                    "after every block was freed, slabs still count {} blocks as used (leaked: never returned)",
                    report.live_small + report.live_large
                ),
            });
        }
        let s = self.a.stats();
        let retained = s.segments_cached * P::GEOMETRY.segment_size();
        let allowed = self.a.meta_bytes() + retained.min(self.cfg.alloc.retain_bytes);
        let books = self.os().books().expect("SimOs keeps books");
        if s.mapped_bytes != allowed || books.mapped_size != allowed {
            return Err(Failure {
                op_index: None,
                op: None,
                kind: FailureKind::Violation {
                    invariant: Invariant::I5,
                    clause: "QUIESCENCE".into(),
                },
                detail: format!(
                    "after freeing everything, exiting every thread and trim, {} bytes stay mapped (OS books: {}); retention allows {allowed} ({} segments, {} large mappings live)",
                    s.mapped_bytes, books.mapped_size, s.segments_live, s.large_live + s.large_cached
                ),
            });
        }
        Ok(())
    }
}
