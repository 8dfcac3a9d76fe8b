//! The bug zoo: the historic bugs of the C allocator this design follows
//! (see `shared/seeds/`), each re-introducible at run time so the harness
//! can prove it catches them.
//!
//! Only with the non-default cargo feature `zoo` can a bug be switched on;
//! without it [`Zoo::on`] is a constant `false` and every hook folds away.
//! The switch is per allocator (a field of [`Config`](crate::Config)), so
//! tests running in parallel threads do not see each other's bugs.

/// One historic bug. Each hook is as small as the original mistake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Bug {
    /// 1. Thread-cache drains never decrement `used`: slabs never empty,
    ///    retirement and the segment LRU are unreachable (seed f95448c7).
    DrainForgetsUsed = 0,
    /// 2. Collecting the remote queue splices it into the free list but
    ///    leaves it on the queue too: blocks on both lists, user data
    ///    overwritten by a link (the TLS_SLL_HDR_RESET hunt).
    SpliceKeepsRemote = 1,
    /// 3. Capacity computed with one stride, carving with another: carving
    ///    overruns the slab (seed 1010a961).
    StrideMismatch = 2,
    /// 4. The segment header is larger than the data offset: blocks of
    ///    slab 0 overlap the slab table (seed d2f0d845).
    HeaderOverlap = 3,
    /// 5. A batch refill from the free list forgets to count the blocks as
    ///    used: counter underflow (seeds c9053a43, d9b334b9).
    RefillForgetsUsed = 4,
    /// 6. A remote free decrements `used` before its push lands, so the
    ///    owner can retire the slab while the free is still in flight.
    RetireWithRemoteInFlight = 5,
    /// 7. The remote push is a load + store instead of a compare-exchange.
    RemotePushLoadStore = 6,
    /// 8. Thread exit forgets the thread cache: its blocks leak.
    ExitLeaksCache = 7,
    /// 9. The large cache accepts a mapping that is already in it (or still
    ///    live), so it is handed out twice.
    LargeCacheDoubleInsert = 8,
}

impl Bug {
    pub const ALL: [Bug; 9] = [
        Bug::DrainForgetsUsed,
        Bug::SpliceKeepsRemote,
        Bug::StrideMismatch,
        Bug::HeaderOverlap,
        Bug::RefillForgetsUsed,
        Bug::RetireWithRemoteInFlight,
        Bug::RemotePushLoadStore,
        Bug::ExitLeaksCache,
        Bug::LargeCacheDoubleInsert,
    ];

    /// A short stable name, used on command lines and in repro files.
    pub const fn name(self) -> &'static str {
        match self {
            Bug::DrainForgetsUsed => "drain-forgets-used",
            Bug::SpliceKeepsRemote => "splice-keeps-remote",
            Bug::StrideMismatch => "stride-mismatch",
            Bug::HeaderOverlap => "header-overlap",
            Bug::RefillForgetsUsed => "refill-forgets-used",
            Bug::RetireWithRemoteInFlight => "retire-with-remote-in-flight",
            Bug::RemotePushLoadStore => "remote-push-load-store",
            Bug::ExitLeaksCache => "exit-leaks-cache",
            Bug::LargeCacheDoubleInsert => "large-cache-double-insert",
        }
    }

    pub fn from_name(name: &str) -> Option<Bug> {
        Bug::ALL.into_iter().find(|b| b.name() == name)
    }
}

/// The set of bugs switched on for one allocator.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Zoo(u32);

impl Zoo {
    pub const NONE: Zoo = Zoo(0);

    /// A set with `bug` switched on. Without the `zoo` feature the set is
    /// still built, but [`Zoo::on`] ignores it.
    pub const fn with(self, bug: Bug) -> Zoo {
        Zoo(self.0 | 1 << bug as u32)
    }

    /// True when the `zoo` feature is compiled in (a bug can be switched on).
    pub const COMPILED: bool = cfg!(feature = "zoo");

    #[inline(always)]
    pub const fn on(self, bug: Bug) -> bool {
        Self::COMPILED && self.0 & (1 << bug as u32) != 0
    }
}
