#![no_main]
// Must crash with `use-after-poison` under ASan: see hakmem_sim::fuzz::asan_selftest.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = hakmem_sim::fuzz::asan_selftest(data);
});
