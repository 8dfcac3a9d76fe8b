#![no_main]
// A text trace (a repro file) replayed with a check after every op.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hakmem_sim::fuzz::alloc_text(data);
});
