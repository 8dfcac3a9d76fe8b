//! Fuzz bytes choose the per-thread op traces and the scheduling decisions
//! of a shuttle execution of the real allocator (see
//! `hakmem_sim::shuttle::sched_fuzz`). Seed corpus: `corpus/alloc_sched/`.
//! With `--features zoo`, `HAKMEM_ZOO=<bug,...>` switches historic bugs on.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hakmem_sim::shuttle::fuzz_alloc_sched(data));
