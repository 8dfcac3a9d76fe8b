#![no_main]
// Bytes -> trace -> run on the tiny geometry; a failure panics (a crash).
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hakmem_sim::fuzz::alloc_ops(data);
});
