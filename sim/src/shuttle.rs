//! The schedules world: the real allocator with real (shuttle) threads
//! under shuttle's schedulers, so races between owners and remote freers
//! are explored systematically and every failure replays.
//!
//! * [`platform`]: [`ShuttleTiny`], the platform of `SimOs` memory,
//!   shuttle's atomics, mutex and yield, and the tiny geometry — the same
//!   `Allocator<P>` as every other world, no copy of allocator code.
//! * [`world`]: a fresh allocator per execution, heaps that fill and verify
//!   a pattern in every block, the checker at quiescence.
//! * [`scenarios`]: the concurrent programs explored.
//! * [`explore`]: `check_random` / `check_pct` with 1 MiB task stacks,
//!   failing schedules written to `repro/shuttle/` with one replay command,
//!   replay of those files, `SHUTTLE_ALWAYS_PERSIST_SEED` for aborts.
//! * [`sched_fuzz`]: the `alloc_sched` fuzz driver, whose bytes choose the
//!   op traces of each thread and the scheduling decisions.
//!
//! shuttle runs every atomic as SeqCst: it finds interleaving bugs, never
//! ordering bugs. The orderings of the remote-free stack and the slab-empty
//! hand-off are model-checked by loom in `alloc/tests/loom_remote.rs`.
//!
//! Tests: `tests/shuttle.rs` runs every scenario under both schedulers
//! (`HAKMEM_SHUTTLE_ITERS` schedules each, 3000 by default) and replays
//! `repro/shuttle/`; `tests/shuttle_zoo.rs` (`--features zoo`) shows the
//! broken remote push caught. Soak:
//!
//! ```text
//! HAKMEM_SHUTTLE_ITERS=100000 cargo test --release -p hakmem-sim --test shuttle -- --nocapture
//! ```
//!
//! Schedules are bound to the shuttle version (`shuttle = "=0.9.9"`,
//! `shuttle-engine = "=0.1.7"`, pinned in `Cargo.toml`); repro files keep
//! the seed too, and a replay whose schedule no longer fits the code
//! finishes under a seeded random scheduler instead of stopping.

pub mod explore;
pub mod platform;
pub mod scenarios;
pub mod sched_fuzz;
pub mod world;

pub use explore::{
    check_pct, check_random, explore, replay, Found, Options, Replayed, Report, ReproFile, Strategy,
};
pub use platform::{ShuttleSched, ShuttleTiny};
pub use scenarios::Scenario;
pub use sched_fuzz::{fuzz_alloc_sched, run_alloc_sched, run_alloc_sched_stats, SchedInput};
pub use world::{Blk, ThreadHeap, World};
